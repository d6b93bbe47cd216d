"""transformers side of benches/generate.rs: the same weights (loaded from the folder our bench
saved), the same prompts and thread count, `model.generate` with the default attention (SDPA),
in float32 and in bfloat16 (`torch_dtype=torch.bfloat16`, what a transformers user does to go
faster). Prints one JSON line: per dtype, tokens/s per case (median of runs) and the sequences."""
import json
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM

model_dir, threads, new_tokens, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
prompts = json.loads(sys.argv[5])
if threads > 0:  # 0: torch's own default, as a user runs it
    torch.set_num_threads(threads)
cases = {
    "greedy_b1": (prompts[:1], dict(num_beams=1)),
    "greedy_b8": (prompts[:8], dict(num_beams=1)),
    "beam4_b1": (prompts[:1], dict(num_beams=4)),
}
out = {"float32": {}, "bfloat16": {}}
for dtype, name, (p, kw) in [(d, n, c) for d in out for n, c in cases.items()]:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    ids = torch.tensor(p)
    args = dict(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
        **kw,
    )
    with torch.no_grad():
        model.generate(**{**args, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            seqs = model.generate(**args)
            times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    out[dtype][name] = {"tokens_per_s": len(p) * new_tokens / t, "seconds": t, "sequences": seqs.tolist()}
print(json.dumps(out))
