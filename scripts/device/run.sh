#!/usr/bin/env bash
# Runs on the GPU machine, from the bundle that scripts/device-check.sh made (no Rust there):
#
#   bash .device/bundle/run.sh            # writes $OUT/results.json (OUT: the device tool's)
#   ITERS=300 bash .device/bundle/run.sh  # a shorter training run
#   DRY=1 bash .device/bundle/run.sh      # here, on the CPU: quick settings, no nvidia-smi
#
# Order: our checks and speeds (device_check), then PyTorch's nanoGPT twin in float32 and in
# bf16 autocast, then transformers' decoding twin, then summarize.py. Every step's output is kept
# under $OUT, so a run cut short still returns what it finished.
set -uo pipefail
B="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$B/out}"
mkdir -p "$OUT"
ITERS="${ITERS:-1000}"
PY="${PYTHON:-python3}"
now() { date +%s.%N; }
phase() { echo "$1 $(now) $2" >>"$OUT/phases.txt"; }
: >"$OUT/phases.txt"

if [ "${DRY:-0}" = 1 ]; then
    DEVICE=cpu QUICK=(--quick) TORCH_GPU=() DECODE_TOKENS=16 TORCH_DEVICE=cpu
else
    DEVICE=cuda QUICK=() TORCH_GPU=(--gpu) DECODE_TOKENS=128 TORCH_DEVICE=cuda
    # The CUDA libraries our binary links (libcublas.so.13, libcurand.so.10, libnvrtc.so.13)
    # come from the image's Python packages (PyTorch's cu130 wheels).
    LIBS="$("$PY" -c 'import nvidia, os; r = os.path.join(nvidia.__path__[0], "cu13", "lib"); print(r)')"
    # libnccl.so.2 (the `nccl` feature) from PyTorch's nvidia-nccl wheel, beside them
    NCCL_LIBS="$("$PY" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "nccl", "lib"))')"
    export LD_LIBRARY_PATH="$LIBS:$NCCL_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
    (
        while true; do
            echo "$(now),$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1)"
            sleep 0.2
        done
    ) >"$OUT/memory.csv" 2>/dev/null &
    SAMPLER=$!
    trap 'kill $SAMPLER 2>/dev/null' EXIT
fi
if [ ! -x "$B/device_check" ]; then
    "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$B/device_check.xz" "$B/device_check" && chmod +x "$B/device_check"
fi
ldd "$B/device_check" >"$OUT/ldd.txt" 2>&1

phase ours start
"$B/device_check" --device "$DEVICE" "${QUICK[@]}" --iters "$ITERS" \
    --fixtures "$B/fixtures" --data "$B/input.txt" --out "$OUT/ours.json" 2>&1 | tee "$OUT/ours.log"
phase ours end
for run in f32 bf16; do
    extra=()
    [ "$run" = bf16 ] && extra=(--bf16)
    [ "${DRY:-0}" = 1 ] && [ "$run" = bf16 ] && continue
    phase "torch_$run" start
    "$PY" "$B/nanogpt_torch.py" "$ITERS" 0 "$B/input.txt" "${TORCH_GPU[@]}" "${extra[@]}" \
        >"$OUT/torch_$run.txt" 2>"$OUT/torch_$run.err"
    phase "torch_$run" end
done
"$PY" "$B/decode_torch.py" "$DECODE_TOKENS" "$TORCH_DEVICE" "${QUICK[@]}" \
    >"$OUT/torch_decode.txt" 2>"$OUT/torch_decode.err"
"$PY" "$B/summarize.py" "$OUT"
