"""The `datasets` side of benches/transforms.rs: one transform of a text file, timed.

    python transforms_datasets.py FILE CACHE_DIR MODE

Loads FILE with `datasets.load_dataset("text")` (from CACHE_DIR: the bench loads it once
before), then runs MODE, the same work as the Rust side: add `n` = the length of each line,
or keep the lines longer than 40 characters. Results are never read from the transform cache
(`load_from_cache_file=False`): each run computes. Prints one line:

    ROWS_OUT SECONDS PEAK_RSS_MB RSS_BEFORE_MB CHILDREN_PEAK_MB

PEAK is this process's `ru_maxrss`; CHILDREN_PEAK the largest worker's (num_proc > 1 forks
workers, whose memory adds to the parent's).
"""

import resource
import sys
import time

from datasets import disable_progress_bars, load_dataset

disable_progress_bars()


def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    path, cache, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    ds = load_dataset("text", data_files=path, split="train", cache_dir=cache)
    if mode == "load":
        print(len(ds), 0, 0, 0, 0)
        return
    before = rss_mb()
    kw = {"load_from_cache_file": False}
    t = time.perf_counter()
    if mode == "map-row":
        out = ds.map(lambda ex: {"n": len(ex["text"])}, **kw)
    elif mode == "map-batched":
        out = ds.map(lambda b: {"n": [len(t) for t in b["text"]]}, batched=True, **kw)
    elif mode == "map-row-2":
        out = ds.map(lambda ex: {"n": len(ex["text"])}, num_proc=2, **kw)
    elif mode == "map-batched-2":
        out = ds.map(
            lambda b: {"n": [len(t) for t in b["text"]]}, batched=True, num_proc=2, **kw
        )
    elif mode == "filter-row":
        out = ds.filter(lambda ex: len(ex["text"]) > 40, **kw)
    elif mode == "filter-batched":
        out = ds.filter(lambda b: [len(t) > 40 for t in b["text"]], batched=True, **kw)
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(len(out), seconds, peak, before, children)


main()
