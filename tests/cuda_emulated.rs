//! The CUDA kernels' logic, tested where there is no GPU: the programs in tests/cuda_emulated/
//! include the CUDA C source (src/kernels/cuda/*.cu) through a shim that runs each CUDA thread
//! of a block as a fiber on one CPU thread (tests/cuda_emulated/shim.h), and hold the kernels'
//! outputs and gradients to the ops computed from their definitions in double precision. On a
//! GPU, examples/device_check.rs holds the same kernels to the composed path (docs/gpu.md).
use std::path::Path;
use std::process::Command;

/// Builds `tests/cuda_emulated/{name}.cpp` with the system's C++ compiler, runs it and returns
/// its report after checking that it passed with `cases` lines of "ok".
fn run(name: &str, cases: usize) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_emulated");
    let out = tempfile::tempdir().expect("a temporary folder");
    let exe = out.path().join(name);
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&cxx)
        .args(["-std=c++20", "-O2", "-o"])
        .arg(&exe)
        .arg(dir.join(format!("{name}.cpp")))
        .output()
        .unwrap_or_else(|e| {
            panic!("running the C++ compiler `{cxx}`: {e}; install one (`apt-get install g++`) or set CXX")
        });
    assert!(
        built.status.success(),
        "{cxx} could not build tests/cuda_emulated/{name}.cpp:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let ran = Command::new(&exe)
        .output()
        .expect("running the emulated kernels");
    let report = String::from_utf8_lossy(&ran.stdout).into_owned();
    println!("{report}");
    assert!(
        ran.status.success(),
        "the emulated kernels differ from the reference:\n{report}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok")).count(),
        cases,
        "{report}"
    );
    report
}

#[test]
fn flash_attention_kernels_match_attention_in_double_precision() {
    run("attention", 6);
}

#[test]
fn rms_norm_and_swiglu_kernels_match_their_definitions() {
    run("llama_ops", 8);
}
