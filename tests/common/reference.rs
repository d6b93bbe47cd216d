//! The Python reference stack that some tests run live (Hugging Face `transformers` on torch,
//! `datasets`): `.ci/reference` installs it, pinned, and prints its Python; CI sets
//! MASSIVETEXT_REF_PYTHON to that. Without it these tests fail and say how to get it.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The Python of MASSIVETEXT_REF_PYTHON.
pub fn python() -> PathBuf {
    match std::env::var_os("MASSIVETEXT_REF_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "this test checks our output with the Python reference (transformers, datasets): \
             make the pinned venv and point MASSIVETEXT_REF_PYTHON at it with\n    \
             export MASSIVETEXT_REF_PYTHON=\"$(.ci/reference)\"\n(from the repository root; \
             .ci/run does this before `cargo test`)"
        ),
    }
}

/// Runs `python tests/fixtures/<script> args…` from the repository root and returns its
/// stdout; fails with its output unless it exits 0.
pub fn run_script(script: &str, args: &[&OsStr]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = python();
    let out = std::process::Command::new(&py)
        .arg(root.join("tests/fixtures").join(script))
        .args(args)
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
