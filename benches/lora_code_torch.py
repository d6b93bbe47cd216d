"""transformers + peft side of benches/lora_code.rs: SmolLM2-135M-Instruct from the same GGUF file
(dequantized to float32 by transformers' GGUF loader), the LoRA adapter our side drew and saved
(loaded trainable), the same blocks in the same order, AdamW (no weight decay, constant rate,
gradients clipped at norm 1) for the same steps; held-out loss (mean per token) before and
after, training tokens/s and peak RSS. Prints one JSON line."""
import json
import os
import resource
import sys
import time

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from transformers.utils import logging

logging.set_verbosity_error()
cfg = json.load(open(sys.argv[1]))
if cfg["threads"] > 0:  # 0: torch's own default, as a user runs it
    torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
gguf = cfg["gguf"]
base = AutoModelForCausalLM.from_pretrained(
    os.path.dirname(gguf), gguf_file=os.path.basename(gguf), dtype=torch.float32
)
model = PeftModel.from_pretrained(base, cfg["adapter_init"], is_trainable=True)
train = torch.tensor(cfg["train"], dtype=torch.long)
held = torch.tensor(cfg["held_out"], dtype=torch.long)
steps, batch = cfg["steps"], cfg["batch"]


def held_out_loss():
    model.eval()
    with torch.no_grad():
        losses = [model(input_ids=held[i : i + 4], labels=held[i : i + 4]).loss.item()
                  for i in range(0, len(held), 4)]
        sizes = [len(held[i : i + 4]) for i in range(0, len(held), 4)]
    # blocks of equal length: the mean over batches weighted by rows is the mean per token
    return sum(l * n for l, n in zip(losses, sizes)) / sum(sizes)


before = held_out_loss()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
model.train()
t0 = time.perf_counter()
total = 0.0
for s in range(steps):
    x = train[s * batch : (s + 1) * batch]
    loss = model(input_ids=x, labels=x).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    total += loss.item()
train_s = time.perf_counter() - t0
after = held_out_loss()
print(json.dumps({
    "before": before, "after": after, "train_loss": total / steps, "train_s": train_s,
    "tokens_per_s": steps * batch * train.shape[1] / train_s,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
