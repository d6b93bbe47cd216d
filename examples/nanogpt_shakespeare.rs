//! nanoGPT's CPU configuration on tinyshakespeare (char level) with our Trainer, side by side
//! with the PyTorch reference `benches/nanogpt_torch.py`:
//!
//! ```text
//! cargo run --release --example nanogpt_shakespeare -- [ITERS] [--torch]
//! ```
//!
//! 4 layers, 4 heads, 128 wide, block 64, batch 12, lr 1e-3 with 100 warmup steps and cosine
//! decay to 1e-4 over 2000 iterations, AdamW betas 0.9/0.99, weight decay 0.1, dropout 0,
//! grad clip 1.0. Prints tokens/s and the final validation loss (nanoGPT reports 1.88); with
//! `--torch` also runs the PyTorch script with the same thread count and prints the ratio.
use std::path::PathBuf;
use std::time::Instant;

use massivetext::corpus::CharVocab;
use massivetext::models::{AutoModelForCausalLM, Gpt2Config};
use massivetext::train::*;

/// A corpus under the shared data folder: `MASSIVETEXT_DATA` when set, else `../shared/data`
/// beside the repository.
fn data(p: &str) -> PathBuf {
    std::env::var_os("MASSIVETEXT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join(p)
}

fn main() -> massivetext::Result<()> {
    // Threads pinned by the user (CANDLE_NUM_THREADS / RAYON_NUM_THREADS) pin torch too; else 0:
    // each side runs its own default. Read first: massivetext's first call may set the latter.
    let pinned_threads: usize = ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let iters: usize = argv.iter().find_map(|a| a.parse().ok()).unwrap_or(2000);
    let path = data("tinyshakespeare/input.txt");
    let text = std::fs::read_to_string(&path).map_err(|source| massivetext::Error::Io {
        path: path.clone(),
        source,
    })?;
    let vocab = CharVocab::from_text(&text);
    let ids = vocab.encode(&text)?;
    let n = ids.len() * 9 / 10;
    let block = 64;
    let train = TokenWindows::new(ids[..n].to_vec(), block)?;
    // nanoGPT estimates val loss on eval_iters=200 batches of 12; we take 2400 windows spread
    // evenly over the validation split.
    let val = TokenWindows::new(ids[n..].to_vec(), block)?.with_max_eval_windows(2400);
    let config = Gpt2Config {
        vocab_size: vocab.len(),
        n_positions: block,
        n_embd: 128,
        n_layer: 4,
        n_head: 4,
        resid_pdrop: 0.0,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        ..Gpt2Config::gpt2()
    };
    let model = AutoModelForCausalLM::from_config(config, &candle_core::Device::Cpu)?;
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("min_lr".into(), 1e-4.into());
    let args = TrainingArguments {
        output_dir: std::env::temp_dir().join("massivetext-nanogpt"),
        // the example's own folder: each run replaces the last one's, so it runs again and again
        overwrite_output_dir: true,
        max_steps: Some(iters),
        per_device_train_batch_size: 12,
        per_device_eval_batch_size: 64,
        learning_rate: 1e-3,
        warmup_steps: 100,
        lr_scheduler_type: SchedulerType::CosineWithMinLr,
        lr_scheduler_kwargs: kwargs,
        adam_beta2: 0.99,
        weight_decay: 0.1,
        max_grad_norm: 1.0,
        logging_steps: Steps::Every(100),
        save_strategy: IntervalStrategy::No,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, args, train)?.with_eval_dataset(val)?;
    let t0 = Instant::now();
    let out = trainer.train()?;
    let ours_s = t0.elapsed().as_secs_f64();
    let ev = trainer.evaluate()?;
    let ours_tps = out.tokens_per_second;
    println!(
        "massivetext: {iters} iters in {ours_s:.1}s, {ours_tps:.0} tokens/s, val loss {:.4}",
        ev.eval_loss
    );
    if argv.iter().any(|a| a == "--torch") {
        let threads = pinned_threads;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/nanogpt_torch.py");
        let o = std::process::Command::new("python")
            .arg(&script)
            .arg(iters.to_string())
            .arg(threads.to_string())
            .arg(&path)
            .output()
            .map_err(|source| massivetext::Error::Io {
                path: script.clone(),
                source,
            })?;
        let s = String::from_utf8_lossy(&o.stdout);
        print!("{s}");
        if let Some(tps) = s
            .lines()
            .find_map(|l| l.strip_prefix("torch tokens/s: "))
            .and_then(|v| v.trim().parse::<f64>().ok())
        {
            println!(
                "ratio (massivetext / torch tokens/s): {:.2}",
                ours_tps / tps
            );
        } else {
            eprintln!("{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    Ok(())
}
