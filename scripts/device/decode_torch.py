"""transformers' side of device_check's `decode.gpt2`: greedy `generate` of a GPT-2-small-sized
model with random weights, batch 1, the same 8-token prompt and number of new tokens, float32.

Usage: python decode_torch.py NEW_TOKENS DEVICE [--quick]
Prints `torch decode tokens/s: X`.
"""
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

new_tokens, device = int(sys.argv[1]), sys.argv[2]
quick = "--quick" in sys.argv[3:]
torch.manual_seed(0)
cfg = GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=1000) if quick else GPT2Config()
model = GPT2LMHeadModel(cfg).to(device).eval()
ids = torch.tensor([[464, 2068, 7586, 21831, 18045, 625, 262, 16931]], device=device)
if quick:
    ids = ids % 1000
kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
          do_sample=False, eos_token_id=None, pad_token_id=0)


def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()


with torch.no_grad():
    model.generate(ids, **kw)  # warm-up
    sync()
    t0 = time.perf_counter()
    model.generate(ids, **kw)
    sync()
print(f"torch decode tokens/s: {new_tokens / (time.perf_counter() - t0):.1f}")
