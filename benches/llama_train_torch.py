"""transformers side of benches/llama_train.rs: the Llama massivetext saved (config.json and
model.safetensors) loaded as LlamaForCausalLM (eager attention), trained on the same batches of
tinyshakespeare characters with AdamW (the same lr, no weight decay) and the same thread count,
then its validation loss on the same windows. Prints one JSON line."""
import json
import sys
import time

import torch
from transformers import LlamaForCausalLM

model_dir, text_path = sys.argv[1], sys.argv[2]
threads, steps, batch, ctx = map(int, sys.argv[3:7])
lr = float(sys.argv[7])
if threads > 0:  # 0: torch's own default, as a user runs it
    torch.set_num_threads(threads)
text = open(text_path, encoding="utf-8").read()
chars = sorted(set(text))
index = {c: i for i, c in enumerate(chars)}
ids = torch.tensor([index[c] for c in text], dtype=torch.long)
n_train = len(ids) * 9 // 10
span = n_train - ctx - 1
val_starts = [n_train + k * (len(ids) - n_train - ctx - 1) // 16 for k in range(16)]


def start(s, b):
    return ((s * batch + b) * 7919 + 13) % span


def windows(starts):
    return torch.stack([ids[s : s + ctx] for s in starts])


model = LlamaForCausalLM.from_pretrained(model_dir, attn_implementation="eager",
                                         torch_dtype=torch.float32)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
first = None
t0 = time.perf_counter()
for s in range(steps):
    x = windows([start(s, b) for b in range(batch)])
    opt.zero_grad(set_to_none=True)
    loss = model(input_ids=x, labels=x).loss
    loss.backward()
    opt.step()
    if s == 0:  # the first step (warm-up) is not timed
        first = loss.item()
        t0 = time.perf_counter()
train_s = time.perf_counter() - t0
model.eval()
with torch.no_grad():
    x = windows(val_starts)
    val = model(input_ids=x, labels=x).loss.item()
print(json.dumps({"train_tokens_per_s": batch * ctx * (steps - 1) / train_s,
                  "first_loss": first, "val_loss": val}))
