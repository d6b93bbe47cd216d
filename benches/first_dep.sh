#!/usr/bin/env bash
# How long a notebook's first `:dep` takes, cold (an empty evcxr build folder) and warm (the
# same folder, a new kernel), for two first cells side by side:
#   old: `:dep massivetext = { path = ".." }` (all default features, linked statically into
#        each cell, evcxr's default profile: opt-level 2 with debug assertions);
#   new: the notebooks' first cell (`:opt 3`, two `:build_env`, `massivetext-notebook`: a lean
#        dynamic library).
# Each variant gets its own empty build folder; the two cold builds run at the same time
# (PARALLEL=0 runs them one after the other), so on a shared machine read the ratio.
#
#   benches/first_dep.sh
#
# Warm only, the new first cell in a build folder that is already warm, alternating between
# evcxr_jupyter builds (each run a new kernel); prints each run with the load average, then
# the medians:
#
#   WARM=~/.cache/massivetext-ci/evcxr ROUNDS=5 benches/first_dep.sh \
#       ~/.cargo/bin/evcxr_jupyter "$RELEASE_BUILD"/bin/evcxr_jupyter
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
probe() { # name, first cell (JSON string)
    python3 - "$TMP/$1.ipynb" "$2" <<'PY'
import json, sys
cell = lambda i, src: {"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None,
                       "outputs": [], "source": src}
nb = {"cells": [cell(0, sys.argv[2]),
                cell(1, "use massivetext::prelude::*;\nlet t = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?;\nprintln!(\"{}\", t.sum_all()?.to_scalar::<f32>()?);")],
      "metadata": {"kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"}},
      "nbformat": 4, "nbformat_minor": 5}
json.dump(nb, open(sys.argv[1], "w"))
PY
}
probe old ":dep massivetext = { path = \"$REPO\" }"
probe new ":opt 3
:build_env CARGO_PROFILE_DEV_DEBUG_ASSERTIONS=false
:build_env CARGO_PROFILE_DEV_OVERFLOW_CHECKS=false
:dep massivetext = { package = \"massivetext-notebook\", path = \"$REPO/notebooks/kernel\" }"
run() { # name, label[, build folder] -> prints "name label: dep N s, next cell M s"
    MASSIVETEXT_EVCXR_TMPDIR="${3:-$TMP/evcxr-$1}" .ci/notebooks --refresh --no-compare --no-screens "$TMP/$1.ipynb" >"$TMP/$1-${2//\//_}.log" 2>&1 \
        || { echo "$1 $2: failed"; tail -5 "$TMP/$1-${2//\//_}.log"; return 1; }
    python3 -c "
import json, sys
c = json.load(open('$TMP/$1.ipynb'))['cells']
s = [x['metadata'].get('massivetext', {}).get('seconds') for x in c]
print(f'$1 $2: first cell (:dep) {s[0]} s, the next cell {s[1]} s')"
}
if [ -n "${WARM:-}" ]; then
    [ "$#" -ge 1 ] || { echo "first_dep: WARM=<build folder> needs one or more evcxr_jupyter paths" >&2; exit 2; }
    for round in $(seq "${ROUNDS:-3}"); do
        for bin in "$@"; do
            load="$(uptime | sed 's/.*load average: //')"
            EVCXR_JUPYTER="$bin" run new "$bin" "$WARM" | sed "s/\$/ (round $round, load $load)/"
        done
    done | tee "$TMP/warm.txt"
    python3 - "$TMP/warm.txt" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"new (\S+): first cell \(:dep\) ([\d.]+) s, the next cell ([\d.]+) s", line)
    if m:
        runs.setdefault(m[1], []).append((float(m[2]), float(m[3])))
for bin, r in runs.items():
    dep, nxt = statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)
    print(f"median of {len(r)}: {bin}: first cell {dep:.1f} s, the next cell {nxt:.1f} s, both {dep + nxt:.1f} s")
PY
    exit 0
fi
if [ "${PARALLEL:-1}" = 1 ]; then
    run old cold & a=$!
    run new cold & b=$!
    wait $a; wait $b
else
    run old cold
    run new cold
fi
run old warm
run new warm
