"""transformers side of benches/translate.rs: the same Marian (MarianMTModel, loaded from the
initial weights the Rust side saved, so both start from the same parameters), trained with
torch's AdamW and transformers' linear warmup/decay schedule on the same batches in the same
order (the token ids and the batch order come from the Rust side), with the same
hyper-parameters and thread count; then beam search over the test sources with the model's
generation config. Prints one JSON line: train_s, tokens (source + target tokens trained on,
padding excluded), translate_s, final_loss, and the generated ids (written to a file)."""
import json
import os
import sys
import time

import torch
from transformers import MarianMTModel, get_linear_schedule_with_warmup
from transformers.utils import logging

logging.set_verbosity_error()
cfg = json.load(open(sys.argv[1]))
if cfg["threads"] > 0:  # 0: torch's own default, as a user runs it
    torch.set_num_threads(cfg["threads"])
torch.manual_seed(int(os.environ.get("BENCH_TORCH_SEED", cfg["seed"])))
model = MarianMTModel.from_pretrained(cfg["init"], attn_implementation="eager")
model.train()
pad = model.config.pad_token_id
examples = cfg["examples"]
decay = [p for n, p in model.named_parameters() if p.requires_grad and not (n.endswith("bias") or "layer_norm" in n)]
no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (n.endswith("bias") or "layer_norm" in n)]
opt = torch.optim.AdamW(
    [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
    lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
)
sched = get_linear_schedule_with_warmup(opt, cfg["warmup_steps"], len(cfg["batches"]))


def collate(idx):
    src = [examples[i]["input_ids"] for i in idx]
    tgt = [examples[i]["labels"] for i in idx]
    s, t = max(map(len, src)), max(map(len, tgt))
    ids = torch.full((len(idx), s), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), s), dtype=torch.long)
    labels = torch.full((len(idx), t), -100, dtype=torch.long)
    for r, (a, b) in enumerate(zip(src, tgt)):
        ids[r, : len(a)] = torch.tensor(a)
        mask[r, : len(a)] = 1
        labels[r, : len(b)] = torch.tensor(b)
    return ids, mask, labels, sum(map(len, src)) + sum(map(len, tgt))


tokens = 0
losses = []
t0 = time.perf_counter()
for step, idx in enumerate(cfg["batches"]):
    ids, mask, labels, n = collate(idx)
    tokens += n
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["max_grad_norm"])
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    losses.append(loss.item())
    if (step + 1) % int(os.environ.get("BENCH_LOG_EVERY", 500)) == 0:
        print(f"torch step {step + 1}: loss {sum(losses[-100:]) / len(losses[-100:]):.3f}", file=sys.stderr)
train_s = time.perf_counter() - t0

model.eval()
gen = dict(num_beams=cfg["num_beams"], max_new_tokens=cfg["max_new_tokens"])
src = cfg["test"]
order = sorted(range(len(src)), key=lambda i: -len(src[i]))
out = [None] * len(src)
t0 = time.perf_counter()
with torch.no_grad():
    for k in range(0, len(order), cfg["decode_batch"]):
        chunk = order[k : k + cfg["decode_batch"]]
        s = max(len(src[i]) for i in chunk)
        ids = torch.full((len(chunk), s), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), s), dtype=torch.long)
        for r, i in enumerate(chunk):
            ids[r, : len(src[i])] = torch.tensor(src[i])
            mask[r, : len(src[i])] = 1
        seqs = model.generate(input_ids=ids, attention_mask=mask, **gen)
        for r, i in enumerate(chunk):
            out[i] = seqs[r].tolist()
translate_s = time.perf_counter() - t0
json.dump(out, open(cfg["hyps_out"], "w"))
print(json.dumps({"train_s": train_s, "tokens": tokens, "translate_s": translate_s,
                  "final_loss": sum(losses[-100:]) / len(losses[-100:])}))
