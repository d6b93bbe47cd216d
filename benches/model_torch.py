"""PyTorch / transformers side of benches/model.rs: the same GPT-2 (HF GPT2LMHeadModel, eager
attention, dropout 0), the same batch, the same thread count. Prints one JSON line."""
import json
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

threads, vocab, layers, width, heads, ctx, batch, steps = map(int, sys.argv[1:9])
if threads > 0:  # 0: torch's own default, as a user runs it
    torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = GPT2Config(vocab_size=vocab, n_positions=ctx, n_embd=width, n_layer=layers, n_head=heads,
                 resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")
model = GPT2LMHeadModel(cfg)
model.train()
ids = torch.randint(0, vocab, (batch, ctx))


def step():
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()


step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
train_s = (time.perf_counter() - t0) / steps

model.eval()
one = ids[:1]
with torch.no_grad():
    model(input_ids=one)
    t0 = time.perf_counter()
    for _ in range(steps):
        model(input_ids=one)
    fwd_s = (time.perf_counter() - t0) / steps
print(json.dumps({"train_tokens_per_s": batch * ctx / train_s, "forward_ms": fwd_s * 1e3}))
