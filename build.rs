//! With the `cuda` feature, compiles the GPU kernels (src/kernels/cuda/*.cu) to PTX with
//! nvcc through cudaforge, the builder candle-kernels uses; the PTX is embedded in the library
//! and loaded by the driver on first use. The target GPU comes from `CUDA_COMPUTE_CAP` (e.g. 90
//! for the H100; scripts/cuda-env.sh sets it) or from nvidia-smi. Without the feature, nothing.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        let ptx = cudaforge::KernelBuilder::new()
            .source_files([
                "src/kernels/cuda/kernels.cu",
                "src/kernels/cuda/attention.cu",
            ])
            .arg("-O3")
            .arg("-std=c++17")
            .build_ptx()
            .unwrap_or_else(|e| {
                panic!(
                    "compiling src/kernels/cuda/*.cu with nvcc failed: {e}\n\
                     (set up CUDA first: `source scripts/cuda-env.sh`, see docs/gpu.md)"
                )
            });
        ptx.write(out.join("ptx.rs"))
            .unwrap_or_else(|e| panic!("writing {}/ptx.rs: {e}", out.display()));
    }
}
