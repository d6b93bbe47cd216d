# shellcheck shell=bash
# The CUDA toolchain for `cargo build --features cuda` on a machine without a GPU or a system
# CUDA: NVIDIA's own PyPI wheels of CUDA 13.0 (nvcc, cicc, ptxas, headers, cuBLAS, cuRAND, NVRTC,
# NCCL)
# in a venv of the cache. Source it, don't run it:
#
#   source scripts/cuda-env.sh && cargo build --features cuda
#
# Why 13.0 exactly: the GPU machines this project is checked on run driver 580 (CUDA 13.0) with
# PyTorch's cu130 wheels, and the driver only JIT-compiles PTX of its own CUDA version or older;
# the binaries link against the libraries' major version (libcublas.so.13), which the GPU
# machine provides from its Python packages (scripts/device-check.sh sets LD_LIBRARY_PATH).
# CUDA_COMPUTE_CAP=90 (H100/H200) so that no build step probes for a GPU (candle-kernels would
# call nvidia-smi). The driver library itself (libcuda.so.1) ships with the driver, not in any
# wheel: a stub with the driver API's symbols is generated for the linker, as the toolkit's own
# lib/stubs/libcuda.so is; at run time the real driver is loaded.
#
# MASSIVETEXT_CUDA_CACHE moves the venv (default ~/.cache/massivetext-cuda; ~1.2 GB, a 2-minute
# download once).
_mt_cuda_setup() {
    local cache="${MASSIVETEXT_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/massivetext-cuda}"
    local venv="$cache/cuda13"
    local pins=(
        "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-crt==13.0.88"
        "nvidia-cuda-runtime==13.0.88" "nvidia-cuda-cccl==13.0.85" "nvidia-cuda-nvrtc==13.0.88"
        "nvidia-cublas==13.0.2.14" "nvidia-curand==10.4.0.35"
        # NCCL for `--features nccl` (the version PyTorch's cu130 wheels pin)
        "nvidia-nccl-cu13==2.27.7"
    )
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || return 1
    fi
    local py="$venv/bin/python"
    local root
    root="$("$py" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))' 2>/dev/null)"
    local nccl
    nccl="$("$py" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "nccl"))' 2>/dev/null)"
    if [ ! -x "$root/bin/nvcc" ] || [ ! -f "$root/lib/libcurand.so.10" ] || [ ! -f "$nccl/lib/libnccl.so.2" ]; then
        echo "cuda-env: installing CUDA 13.0 from PyPI into $venv" >&2
        "$py" -m pip install -q "${pins[@]}" || return 1
        root="$("$py" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
        nccl="$("$py" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "nccl"))')"
    fi
    ln -sf libnccl.so.2 "$nccl/lib/libnccl.so"
    # Unversioned names for the linker (-lcublas …); the wheels ship only the versioned ones.
    local lib
    for lib in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13; do
        ln -sf "$lib" "$root/lib/${lib%.so.*}.so"
    done
    # libcuda.so for the linker: every driver-API function cudarc binds, as an empty function,
    # under the real library's soname so that the binary asks for libcuda.so.1 at run time.
    if [ ! -f "$root/lib/stubs/libcuda.so" ]; then
        local cudarc
        cudarc="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | tail -n 1)"
        if [ -z "$cudarc" ]; then
            cargo fetch -q || return 1
            cudarc="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | tail -n 1)"
        fi
        mkdir -p "$root/lib/stubs"
        grep -o 'load::<_F>("cu[A-Za-z0-9_]*")' "$cudarc/src/driver/sys/mod.rs" |
            sed 's/.*("\(.*\)")/void \1(void) {}/' | sort -u >"$root/lib/stubs/libcuda.c"
        cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so" \
            "$root/lib/stubs/libcuda.c" || return 1
    fi
    export CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_HOME="$root"
    export CUDA_COMPUTE_CAP=90
    export PATH="$root/bin:$PATH"
    export LIBRARY_PATH="$root/lib:$root/lib/stubs:$nccl/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
    # nccl.h for cudarc's build, beside the toolkit's headers
    export CPATH="$nccl/include${CPATH:+:$CPATH}"
    echo "cuda-env: $(nvcc --version | tail -n 2 | head -n 1), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
}
_mt_cuda_setup
