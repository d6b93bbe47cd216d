#!/usr/bin/env bash
# Training throughput inside a notebook against the release binary, on the same code:
# `massivetext train` (release build) and benches/notebook_speed.ipynb (the evcxr kernel, with
# the notebooks' build settings) run the same job, alternately, ROUNDS times each.
#
#   benches/notebook_speed.sh     # SPEED_SETTINGS, ROUNDS and MASSIVETEXT_BIN override the defaults
set -euo pipefail
cd "$(dirname "$0")/.."
SETTINGS="${SPEED_SETTINGS:-max_steps=150 n_layer=4 n_embd=128 eval_strategy=no save_strategy=no check_stories=3 disable_tqdm=true}"
ROUNDS="${ROUNDS:-2}"
# MASSIVETEXT_BIN: an already built release binary (else it is built here).
if [ -z "${MASSIVETEXT_BIN:-}" ]; then
    cargo build --release --bin massivetext
fi
BIN="${MASSIVETEXT_BIN:-${CARGO_TARGET_DIR:-target}/release/massivetext}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
sets=()
for s in $SETTINGS; do sets+=(--set "$s"); done
rate() { grep -o '([0-9]* tokens/s)' | head -1 | tr -dc '0-9'; }
bins=() nbs=()
for r in $(seq "$ROUNDS"); do
    b=$("$BIN" train --device cpu "${sets[@]}" --set "output_dir=$TMP/bin-$r" | rate)
    n=$(SPEED_SETTINGS="$SETTINGS" .ci/notebooks --no-compare --print-stdout benches/notebook_speed.ipynb | rate)
    echo "round $r: release binary $b tokens/s, notebook $n tokens/s"
    bins+=("$b") nbs+=("$n")
done
python3 - "${bins[*]}" "${nbs[*]}" <<'PY'
import sys
b = [float(x) for x in sys.argv[1].split()]
n = [float(x) for x in sys.argv[2].split()]
print(f"release binary {sum(b)/len(b):.0f} tokens/s, notebook {sum(n)/len(n):.0f} tokens/s: "
      f"notebook/binary {sum(n)/sum(b):.2f}")
PY
