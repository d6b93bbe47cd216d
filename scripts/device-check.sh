#!/usr/bin/env bash
# The GPU check of issue 31 as one bundle and one command (see docs/gpu.md).
#
#   scripts/device-check.sh bundle     # here: build with --features nccl (cuda + NCCL), make .device/bundle
#   scripts/device-check.sh dry-run    # here: the same bundle built for the CPU, run with DRY=1
#
# The bundle (≤ 64 MiB, checked) holds the stripped `device_check` binary, the fixtures it
# compares against, tinyshakespeare, the PyTorch twins and run.sh. On the GPU machine (driver,
# PyTorch, transformers; no Rust) the device tool runs it with `carry: [".device"]`:
#
#   bash .device/bundle/run.sh         # → $OUT/results.json
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-bundle}"
DATA="${MASSIVETEXT_DATA:-../shared/data}/tinyshakespeare/input.txt"
[ -f "$DATA" ] || {
    echo "device-check: $DATA not found (set MASSIVETEXT_DATA to the shared data folder)" >&2
    exit 1
}
case "$MODE" in
bundle)
    # shellcheck source=scripts/cuda-env.sh
    source scripts/cuda-env.sh
    TARGET=target/cuda
    cargo build --release --features nccl --example device_check --target-dir "$TARGET"
    BUNDLE=.device/bundle
    ;;
dry-run)
    TARGET=target
    cargo build --release --example device_check
    BUNDLE=.device/dry-run
    ;;
*)
    echo "usage: scripts/device-check.sh [bundle|dry-run]" >&2
    exit 2
    ;;
esac
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/fixtures/models"
# Stripped (debug info is most of the 250 MB) and xz-compressed (the CUDA build's PTX and
# cubins compress ~8x): run.sh unpacks it with Python's lzma, which every image has.
cp "$TARGET/release/examples/device_check" "$BUNDLE/"
strip "$BUNDLE/device_check"
xz -6 -T1 -f "$BUNDLE/device_check"
cp -r tests/fixtures/models/gpt2 tests/fixtures/models/bert tests/fixtures/models/roberta \
    "$BUNDLE/fixtures/models/"
mkdir -p "$BUNDLE/fixtures/generate"
cp tests/fixtures/generate/expected.json "$BUNDLE/fixtures/generate/"
cp "$DATA" "$BUNDLE/input.txt"
cp benches/nanogpt_torch.py scripts/device/decode_torch.py scripts/device/summarize.py \
    scripts/device/run.sh "$BUNDLE/"
# The device tool carries the whole working tree (tracked files) and the bundle: 64 MiB in all.
SIZE=$(du -sm "$BUNDLE" | cut -f1)
TREE=$(git ls-files -z | xargs -0 du -cm 2>/dev/null | tail -n 1 | cut -f1)
echo "device-check: $BUNDLE is ${SIZE} MiB, the tracked tree ${TREE} MiB"
if [ $((SIZE + TREE)) -gt 60 ]; then
    echo "device-check: bundle and tree must stay under the device tool's 64 MiB" >&2
    exit 1
fi
if [ "$MODE" = dry-run ]; then
    PY="${MASSIVETEXT_REF_PYTHON:-$(.ci/reference)}"
    OUT="$BUNDLE/out" DRY=1 ITERS=20 PYTHON="$PY" bash "$BUNDLE/run.sh"
    echo "device-check: dry run done, results in $BUNDLE/out/results.json"
fi
