"""Puts device_check's JSON, the PyTorch twins' output and the GPU memory samples into one
results.json with the ratios the GPU issue asks for (ours / PyTorch, higher is better for us).

Usage: python summarize.py OUT_DIR
"""
import json
import os
import re
import sys

out = sys.argv[1]


def read(name):
    p = os.path.join(out, name)
    return open(p).read() if os.path.exists(p) else ""


def figure(text, label):
    m = re.search(re.escape(label) + r":\s*([-0-9.eE+]+)", text)
    return float(m.group(1)) if m else None


results = {"ours": json.loads(read("ours.json") or "{}")}
for run in ("f32", "bf16"):
    t = read(f"torch_{run}.txt")
    results[f"torch_nanogpt_{run}"] = {
        "tokens_per_second": figure(t, "torch tokens/s"),
        "val_loss": figure(t, "torch val loss"),
        "peak_memory_mib": figure(t, "torch peak memory MiB"),
    }
results["torch_decode"] = {"tokens_per_second": figure(read("torch_decode.txt"), "torch decode tokens/s")}

# Peak memory used on the GPU per phase, from nvidia-smi samples ("t,used_mib") between the
# phase marks ("phase t name start|end") that run.sh writes.
samples = [tuple(map(float, l.split(","))) for l in read("memory.csv").split() if "," in l]
marks = [l.split() for l in read("phases.txt").splitlines() if l.strip()]
peaks = {}
for i, m in enumerate(marks):
    if m[2] == "start":
        end = next((float(n[1]) for n in marks[i + 1:] if n[0] == m[0] and n[2] == "end"), None)
        used = [u for t, u in samples if float(m[1]) <= t <= (end or t)]
        peaks[m[0]] = max(used) if used else None
results["gpu_memory_peak_mib_nvidia_smi"] = peaks

ours = results["ours"]
train = ours.get("train.nanogpt", {})
t32 = results["torch_nanogpt_f32"]
if train.get("tokens_per_second") and t32["tokens_per_second"]:
    results["ratio_train_f32_vs_torch"] = train["tokens_per_second"] / t32["tokens_per_second"]
if train.get("val_loss") is not None and t32["val_loss"] is not None:
    results["val_loss_difference_f32"] = train["val_loss"] - t32["val_loss"]
dec = ours.get("decode.gpt2", {})
if dec.get("tokens_per_second") and results["torch_decode"]["tokens_per_second"]:
    results["ratio_decode_vs_transformers"] = (
        dec["tokens_per_second"] / results["torch_decode"]["tokens_per_second"]
    )
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=1)
print(json.dumps(results, indent=1))
