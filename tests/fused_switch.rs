//! `MASSIVETEXT_FUSED=0` forces every kernel onto its composed twin (candle ops: the path a GPU
//! runs). A training run must not depend on which path ran: the same losses, step by step.
use std::path::Path;
use std::process::Command;

use candle_core::Device;
use massivetext::kernels::with_fused;
use massivetext::models::{AutoModelForCausalLM, Gpt2Config};
use massivetext::train::{TokenWindows, Trainer, TrainingArguments};
use serde_json::Value;

fn losses(state: &Value) -> Vec<(u64, f64)> {
    state["log_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["step"].as_u64()?, e.get("loss")?.as_f64()?)))
        .collect()
}

fn assert_close(fused: &[(u64, f64)], composed: &[(u64, f64)]) {
    assert!(!fused.is_empty());
    assert_eq!(fused.len(), composed.len());
    let mut worst = 0f64;
    for ((s1, a), (s2, b)) in fused.iter().zip(composed) {
        assert_eq!(s1, s2);
        let rel = (a - b).abs() / a.abs().max(1e-12);
        worst = worst.max(rel);
        assert!(
            rel <= 1e-3,
            "step {s1}: fused loss {a} vs composed {b} ({rel:.2e} relative)"
        );
    }
    println!("worst relative loss difference, fused vs composed: {worst:.2e}");
}

/// The Trainer on a small GPT with dropout: the same losses on both paths (dropout masks are
/// the same on both by construction).
#[test]
fn trainer_losses_equal_on_fused_and_composed_kernels() {
    let run = |fused: bool| {
        with_fused(fused, || {
            let dir = tempfile::tempdir().unwrap();
            let config = Gpt2Config {
                n_layer: 2,
                n_embd: 32,
                n_head: 4,
                n_positions: 16,
                resid_pdrop: 0.1,
                embd_pdrop: 0.1,
                attn_pdrop: 0.1,
                ..Gpt2Config::small(40)
            };
            let model = AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap();
            let ids: Vec<u32> = (0..2000u32).map(|i| (i * 7 + i / 13) % 40).collect();
            let data = TokenWindows::new(ids, 16).unwrap();
            let args = TrainingArguments {
                output_dir: dir.path().to_path_buf(),
                max_steps: Some(15),
                per_device_train_batch_size: 4,
                learning_rate: 3e-3,
                warmup_steps: 3,
                weight_decay: 0.1,
                disable_tqdm: true,
                ..Default::default()
            };
            let mut t = Trainer::new(model, args, data).unwrap();
            (0..15)
                .map(|_| {
                    let s = t.step().unwrap();
                    (s.step as u64, s.loss)
                })
                .collect::<Vec<_>>()
        })
    };
    assert_close(&run(true), &run(false));
}

fn train_job(dir: &Path, fused: bool) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_massivetext"));
    cmd.args([
        "train",
        "--max-steps",
        "40",
        "--logging-steps",
        "5",
        "--output-dir",
    ])
    .arg(dir);
    if !fused {
        cmd.env("MASSIVETEXT_FUSED", "0");
    } else {
        cmd.env_remove("MASSIVETEXT_FUSED");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "massivetext train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(dir.join("trainer_state.json")).unwrap()).unwrap()
}

/// The README's main job, 40 steps, with and without `MASSIVETEXT_FUSED=0`: the same losses at
/// every logged step (≤ 1e-3 relative).
#[test]
fn train_job_logs_the_same_losses_with_massivetext_fused_0() {
    let dir = tempfile::tempdir().unwrap();
    let fused = train_job(&dir.path().join("fused"), true);
    let composed = train_job(&dir.path().join("composed"), false);
    let (f, c) = (losses(&fused), losses(&composed));
    assert_eq!(f.len(), 8, "{f:?}");
    assert_close(&f, &c);
}
