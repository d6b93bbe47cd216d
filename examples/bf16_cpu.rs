//! bf16 mixed precision on the CPU against f32, side by side in one process (issue 28):
//!
//! 1. speed: training steps of GPT-2 6 layers x 384 (6 heads, context 256, vocabulary 8192,
//!    batch 8), f32 and `bf16: true` alternating, after one warm-up step each; medians;
//! 2. agreement: 200 steps of a 2-layer GPT-2 (128 wide, context 64, batch 16) on the
//!    generated story corpus read as bytes, f32 and bf16 from the same initial weights and
//!    batches; the loss at the end (the mean of the last 10 steps) of each.
//!
//! Run it as:
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release --example bf16_cpu
//! BENCH_ROUNDS=3 BENCH_STEPS=50 cargo run --release --example bf16_cpu   # shorter
//! ```
use std::time::Instant;

use massivetext::prelude::*;
use massivetext::train::TokenWindows;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn args(bf16: bool, steps: usize, batch: usize) -> TrainingArguments {
    TrainingArguments {
        output_dir: std::env::temp_dir().join("massivetext-bf16-bench"),
        overwrite_output_dir: true,
        max_steps: Some(steps),
        per_device_train_batch_size: batch,
        learning_rate: 1e-3,
        warmup_steps: 10,
        disable_tqdm: true,
        save_strategy: IntervalStrategy::No,
        logging_steps: Steps::Every(1_000_000_000),
        bf16,
        ..Default::default()
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> massivetext::Result<()> {
    let rounds = env_or("BENCH_ROUNDS", 7);
    let steps = env_or("BENCH_STEPS", 200);
    let dev = Device::Cpu;

    // 1. speed
    let cfg = Gpt2Config {
        n_positions: 256,
        resid_pdrop: 0.0,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        ..Gpt2Config::small(8192)
    };
    let ids: Vec<u32> = (0..400_000u32).map(|i| (i * 7919 + i / 3) % 8192).collect();
    let windows = TokenWindows::new(ids, 256)?;
    let model = AutoModelForCausalLM::from_config(&cfg, &dev)?;
    let mut trainers = [
        Trainer::new(model.clone(), args(false, 1000, 8), windows.clone())?,
        Trainer::new(model.clone(), args(true, 1000, 8), windows.clone())?,
    ];
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..=rounds {
        for (i, t) in trainers.iter_mut().enumerate() {
            let start = Instant::now();
            t.step()?;
            if round > 0 {
                times[i].push(start.elapsed().as_secs_f64());
            }
        }
    }
    let tokens = (8 * 256) as f64;
    let [f, b] = [median(&mut times[0]), median(&mut times[1])];
    println!(
        "GPT-2 6x384, ctx 256, batch 8, {} threads, {rounds} alternating steps each:",
        massivetext::threads::num_threads()
    );
    println!("  f32  {:.3} s/step, {:.0} tokens/s", f, tokens / f);
    println!("  bf16 {:.3} s/step, {:.0} tokens/s", b, tokens / b);
    println!("  bf16 / f32 speed: {:.2}x", f / b);
    drop(trainers);

    // 2. agreement over `steps` steps
    let text = massivetext::corpus::corpus_text(3000, 7);
    let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
    let windows = TokenWindows::new(bytes, 64)?;
    let small = Gpt2Config {
        vocab_size: 256,
        n_positions: 64,
        n_embd: 128,
        n_layer: 2,
        n_head: 4,
        resid_pdrop: 0.0,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        ..Gpt2Config::gpt2()
    };
    let model = AutoModelForCausalLM::from_config(&small, &dev)?;
    let mut last = [0.0; 2];
    for (i, bf16) in [false, true].into_iter().enumerate() {
        let mut t = Trainer::new(model.clone(), args(bf16, steps, 16), windows.clone())?;
        let start = Instant::now();
        let losses: Vec<f64> = (0..steps)
            .map(|_| t.step().map(|s| s.loss))
            .collect::<massivetext::Result<_>>()?;
        let tail = &losses[losses.len().saturating_sub(10)..];
        last[i] = tail.iter().sum::<f64>() / tail.len() as f64;
        println!(
            "GPT-2 2x128 on story bytes, {steps} steps {}: first loss {:.4}, mean of the last 10 {:.4} ({:.1} s)",
            if bf16 { "bf16" } else { "f32 " },
            losses[0],
            last[i],
            start.elapsed().as_secs_f64()
        );
    }
    println!(
        "  |bf16 - f32| after {steps} steps: {:.4} (target <= 0.02)",
        (last[1] - last[0]).abs()
    );
    Ok(())
}
