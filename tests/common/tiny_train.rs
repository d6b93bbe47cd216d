//! Runs of a few seconds at most for tests/safety.rs and tests/runs_safety.rs: the
//! `massivetext train` flags (one layer of 16, 300 generated stories, a checkpoint every 5
//! steps), and for the library's Trainer a GPT-2 of width 16 over a 13-token vocabulary with its
//! token windows.
use std::ffi::OsString;
use std::path::Path;

use massivetext::models::Gpt2Config;
use massivetext::train::TokenWindows;

pub fn tiny_gpt2(n_layer: usize) -> Gpt2Config {
    Gpt2Config {
        vocab_size: 13,
        n_positions: 16,
        n_embd: 16,
        n_layer,
        n_head: 2,
        resid_pdrop: 0.0,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        ..Gpt2Config::gpt2()
    }
}

pub fn windows() -> TokenWindows {
    let ids: Vec<u32> = (0..600u32).map(|i| (i * 7 + i / 5) % 13).collect();
    TokenWindows::new(ids, 8).unwrap()
}

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
