//! `massivetext train` flags for a run of a few seconds at most (tests/safety.rs,
//! tests/runs_safety.rs): one layer of 16, 300 generated stories, a checkpoint every 5 steps.
use std::ffi::OsString;
use std::path::Path;

pub fn tiny_train(out: &Path, max_steps: usize) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["--output-dir".into(), out.as_os_str().to_owned()];
    let steps = max_steps.to_string();
    v.extend(
        [
            "--device",
            "cpu",
            "--max-steps",
            &steps,
            "--save-steps",
            "5",
            "--save-total-limit",
            "2",
            "--eval-steps",
            "1000",
            "--logging-steps",
            "5",
            "--n-layer",
            "1",
            "--n-embd",
            "16",
            "--n-head",
            "2",
            "--block-size",
            "16",
            "--per-device-train-batch-size",
            "4",
            "--train-stories",
            "300",
            "--eval-stories",
            "4",
            "--check-stories",
            "0",
            "--disable-tqdm",
            "true",
            "--set",
            "warmup_steps=2",
        ]
        .iter()
        .map(OsString::from),
    );
    v
}
