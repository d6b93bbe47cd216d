//! The CUDA kernels' logic, tested where there is no GPU: tests/cuda_emulated/attention.cpp
//! includes the flash-attention kernels (src/kernels/cuda/attention.cu) through a shim that runs
//! each CUDA thread of a block as a fiber on one CPU thread (tests/cuda_emulated/shim.h), and
//! holds their output and gradients to attention computed in double precision. On a GPU,
//! examples/device_check.rs holds the same kernels to the composed path (docs/gpu.md).
use std::path::Path;
use std::process::Command;

#[test]
fn flash_attention_kernels_match_attention_in_double_precision() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_emulated");
    let out = tempfile::tempdir().expect("a temporary folder");
    let exe = out.path().join("attention");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&cxx)
        .args(["-std=c++20", "-O2", "-o"])
        .arg(&exe)
        .arg(dir.join("attention.cpp"))
        .output()
        .unwrap_or_else(|e| {
            panic!("running the C++ compiler `{cxx}`: {e}; install one (`apt-get install g++`) or set CXX")
        });
    assert!(
        built.status.success(),
        "{cxx} could not build tests/cuda_emulated/attention.cpp:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .expect("running the emulated kernels");
    let report = String::from_utf8_lossy(&run.stdout);
    println!("{report}");
    assert!(
        run.status.success(),
        "the emulated flash-attention kernels differ from the reference:\n{report}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok")).count(),
        6,
        "{report}"
    );
}
