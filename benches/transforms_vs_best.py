# Issue 34's targets compare each of our forms with `datasets`' *best* form for the same work
# (its batched map with num_proc=2, its batched filter), which the bench, pairing a form with
# the same form, does not run at 1 GB (datasets' row map of 1 GB takes ~40 minutes). This
# drives the bench binary's own children (`--child MODE`) and benches/transforms_datasets.py
# alternately, medians of RUNS:
#
#   exe=$(cargo bench --bench transforms --no-run --message-format=json 2>/dev/null \
#         | python3 -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('executable') and 'transforms' in m['executable']][0])")
#   MB=1024 RUNS=3 python3 benches/transforms_vs_best.py "$exe" "$(.ci/reference)" \
#       benches/transforms_datasets.py ../shared
#
# OURS / THEIRS: comma-separated forms (THEIRS may be empty); MB: the corpus size in MiB
# (tinyshakespeare repeated).
import os, subprocess, sys, tempfile, statistics, time
exe, py, script, shared = sys.argv[1:5]
mb = int(os.environ.get("MB", "100")); runs = int(os.environ.get("RUNS", "3"))
ours_forms = os.environ.get("OURS", "map-row,map-row-2,map-batched,filter-row,filter-batched").split(",")
theirs_forms = [f for f in os.environ.get("THEIRS", "map-batched,map-batched-2,filter-batched").split(",") if f]
work = tempfile.mkdtemp(prefix="massivetext-bench34-")
path = os.path.join(work, f"shakespeare_{mb}mb.txt")
src = open(os.path.join(shared, "data/tinyshakespeare/input.txt"), "rb").read()
with open(path, "wb") as f:
    n = 0
    while n < mb << 20:
        f.write(src); n += len(src)
oc, hc = os.path.join(work, "ours-cache"), os.path.join(work, "hf-cache")
def ours(mode):
    out = subprocess.run([exe, "--child", mode, path], env=dict(os.environ, MASSIVETEXT_DATASETS_CACHE=oc), capture_output=True, text=True, check=True).stdout.split()
    return [float(x) for x in out[-5:]]
def hf(mode):
    out = subprocess.run([py, script, path, hc, mode], capture_output=True, text=True, check=True).stdout.split()
    return [float(x) for x in out[-5:]]
print("load", ours("load")[0], hf("load")[0] if theirs_forms else "-", "load average", open("/proc/loadavg").read().split()[:3], flush=True)
res = {}
for r in range(runs):
    for f in ours_forms: res.setdefault(("ours", f), []).append(ours(f))
    for f in theirs_forms: res.setdefault(("datasets", f), []).append(hf(f))
for (who, f), v in res.items():
    print(f"{who:9} {f:16} rows {int(v[0][0]):>9} s {statistics.median(x[1] for x in v):8.3f} peak MB {statistics.median(x[2] for x in v):7.0f} children MB {statistics.median(x[4] for x in v):6.0f}")
print("load average at the end", open("/proc/loadavg").read().split()[:3])
import shutil; shutil.rmtree(work)
