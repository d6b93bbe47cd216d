"""PyTorch reference for examples/nanogpt_shakespeare.rs: nanoGPT's CPU configuration on
tinyshakespeare (char level), the same model as Hugging Face GPT-2 (4 layers, 4 heads, 128 wide,
block 64, dropout 0), batch 12, AdamW lr 1e-3 (betas 0.9/0.99, weight decay 0.1 except biases
and LayerNorm weights), 100 warmup steps, cosine to 1e-4 over ITERS, grad clip 1.0.

Usage: python benches/nanogpt_torch.py ITERS THREADS PATH/input.txt [--gpu [--bf16]]
Prints `torch tokens/s: X` and `torch val loss: Y`.

`--gpu`: nanoGPT's GPU configuration instead (its shakespeare-char run: 6 layers, 6 heads, 384
wide, block 256, batch 64, dropout 0.2) on CUDA, eager (no torch.compile), float32 (TF32 off, as
our f32) or with `--bf16` under autocast (float32 master weights, bfloat16 matmuls); also prints
`torch peak memory MiB: Z` (torch.cuda.max_memory_allocated). scripts/device-check.sh runs it.
"""
import math
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel, get_scheduler

iters, threads, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
gpu, bf16 = "--gpu" in sys.argv[4:], "--bf16" in sys.argv[4:]
device = "cuda" if gpu else "cpu"
if gpu:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
if threads > 0:  # 0: torch's own default, as a user runs it
    torch.set_num_threads(threads)
torch.manual_seed(1337)
text = open(path).read()
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long, device=device)
n = int(0.9 * len(data))
train, val = data[:n], data[n:]
if gpu:
    block, batch, width, layers, heads, dropout = 256, 64, 384, 6, 6, 0.2
else:
    block, batch, width, layers, heads, dropout = 64, 12, 128, 4, 4, 0.0
cfg = GPT2Config(vocab_size=len(chars), n_positions=block, n_embd=width, n_layer=layers,
                 n_head=heads, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
model = GPT2LMHeadModel(cfg).to(device)
amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)
decay = [p for n_, p in model.named_parameters() if not ("bias" in n_ or "ln_" in n_)]
no_decay = [p for n_, p in model.named_parameters() if "bias" in n_ or "ln_" in n_]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.99))
sched = get_scheduler("cosine_with_min_lr", opt, num_warmup_steps=100, num_training_steps=iters,
                      scheduler_specific_kwargs={"min_lr": 1e-4})

t0 = time.time()
for it in range(iters):
    ix = torch.randint(len(train) - block, (batch,))
    x = torch.stack([train[i:i + block] for i in ix])
    with amp:
        loss = model(input_ids=x, labels=x).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
if gpu:
    torch.cuda.synchronize()
dt = time.time() - t0
print(f"torch tokens/s: {iters * batch * block / dt:.0f}")
model.eval()
with torch.no_grad():
    nw = len(val) // block
    take = min(2400, nw)
    starts = [(k * nw // take) * block for k in range(take)]
    tot, cnt = 0.0, 0
    for i in range(0, take, 64):
        x = torch.stack([val[s:s + block] for s in starts[i:i + 64]])
        with amp:
            l = model(input_ids=x, labels=x).loss
        tot += l.item() * x.shape[0] * (block - 1)
        cnt += x.shape[0] * (block - 1)
print(f"torch val loss: {tot / cnt:.4f}")
if gpu:
    print(f"torch peak memory MiB: {torch.cuda.max_memory_allocated() / 2**20:.0f}")
