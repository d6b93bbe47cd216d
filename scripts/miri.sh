#!/usr/bin/env bash
# Runs the unit tests of the modules that hold `unsafe` code (src/kernels, src/data, src/io.rs)
# under Miri, which checks every operation they execute for undefined behaviour (out-of-bounds
# or dangling reads, aliasing violations, invalid UTF-8 in a `&str`, data races).
#
#   scripts/miri.sh                 # all of them (about 10-20 min on 2 cores, mostly the build)
#   scripts/miri.sh data::ipc       # only tests whose path contains this
#
# Needs the nightly toolchain with Miri: `rustup toolchain install nightly --component miri`.
#
# Sizes: tests that loop over many points or large shapes shrink under `cfg(miri)` (the same
# code paths on fewer elements); none is skipped. What Miri cannot run, and so is not checked
# here (the integration tests and the property tests cover it natively):
# - memory maps of files (`memmap2::Mmap::map`: Miri has no file-backed `mmap`): the mapping in
#   `data::ipc::read_arrow`, `io::map_file` (safetensors) and the token shards reader. The
#   decoding and validation of the mapped bytes (`data::ipc::decode_stream`) is tested here on
#   an in-memory buffer, which is the same code after the mapping.
# - `MADV_DONTNEED` in `data::ipc::release` (compiled out under Miri: an FFI call).
# - the AVX2 copies of the `vmath` kernels: Miri runs the baseline build of the same bodies
#   (`is_x86_feature_detected!` answers no), so the AVX2 instruction selection is not checked.
# - the fused kernels reached only through candle tensors (attention, linear, norm, softmax,
#   cross-entropy, dropout, AdamW): their unsafe row splitting (`kernels::cpu::OutPtr`) is the
#   same as `gemv`'s, which runs here; candle's own matmul (the `gemm` crate) is too slow under
#   Miri to be useful and is not our code.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "Miri is not installed: rustup toolchain install nightly --component miri" >&2
    exit 2
fi
# tempfile and the environment need the host; the default features pull the CLI, downloads,
# PNG and Parquet, none of which these tests use.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(kernels:: data:: io::)
cargo +nightly miri test --lib --no-default-features -- "${filters[@]}"
