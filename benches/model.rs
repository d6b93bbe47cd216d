//! Forward+backward throughput of a small GPT-2 (6 layers, 384 wide, 6 heads, 256 context) in
//! massivetext against the same model in PyTorch (transformers' GPT2LMHeadModel, eager
//! attention) with the same thread count, and forward latency of one sequence.
//!
//!     cargo bench --bench model                      # default threads, no variable set (as a user runs it)
//!     BENCH_THREADS=1 cargo bench --bench model
//!     BENCH_MODEL=65,4,128,4,64,12 BENCH_STEPS=50 cargo bench --bench model   # nanoGPT CPU size
//!     BENCH_BUSY=2 cargo bench --bench model        # beside two busy loops (CPU contention)
//!
//! Needs a python with torch and transformers for the reference side (`BENCH_PYTHON`, default
//! `python`; skipped if absent).
mod common;

use std::time::Instant;

use massivetext::prelude::*;

use common::{bench_threads, busy_loops, env_or, last_json_line};

fn main() -> massivetext::Result<()> {
    // our fused ops also run on candle's pool: set the thread count before any tensor exists
    let threads = bench_threads();
    let steps: usize = env_or("BENCH_STEPS", 5);
    // BENCH_MODEL=vocab,layers,width,heads,ctx,batch (e.g. nanoGPT's CPU run: 65,4,128,4,64,12)
    let dims: Vec<usize> = std::env::var("BENCH_MODEL")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| v.len() == 6)
        .unwrap_or_else(|| vec![8192, 6, 384, 6, 256, 8]);
    let (vocab, layers, width, heads, ctx, batch) =
        (dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]);
    let cfg = Gpt2Config {
        vocab_size: vocab,
        n_layer: layers,
        n_embd: width,
        n_head: heads,
        n_positions: ctx,
        resid_pdrop: 0.0,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        ..Gpt2Config::small(vocab)
    };
    let dev = Device::Cpu;
    // BENCH_BUSY=2: two processes spinning beside both sides (a shared machine)
    let busy = busy_loops();
    let mut model = AutoModelForCausalLM::from_config(&cfg, &dev)?;
    let ids: Vec<u32> = (0..batch * ctx)
        .map(|i| ((i * 7919) % vocab) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, ctx), &dev)?;
    let args = ForwardArgs::new(&ids).labels(&ids.to_dtype(DType::I64)?);
    let step = || -> massivetext::Result<()> {
        let loss = model.forward_with(&args)?.loss.expect("labels given");
        let _grads = loss.backward()?;
        Ok(())
    };
    step()?;
    let t0 = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    let ours_tps = (batch * ctx * steps) as f64 / t0.elapsed().as_secs_f64();

    model.eval();
    let one = ids.narrow(0, 0, 1)?;
    model.forward(&one, None)?;
    let t0 = Instant::now();
    for _ in 0..steps {
        model.forward(&one, None)?;
    }
    let ours_ms = t0.elapsed().as_secs_f64() * 1e3 / steps as f64;

    println!(
        "GPT-2 {layers} layers, {width} wide, {heads} heads, context {ctx}, vocab {vocab}, batch {batch}, {threads}, {} busy loops beside",
        busy.count()
    );
    println!("massivetext: train {ours_tps:.0} tokens/s, forward (1 x {ctx}) {ours_ms:.1} ms");
    if std::env::var("BENCH_NO_TORCH").is_ok() {
        return Ok(());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/model_torch.py");
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python".into());
    let out = std::process::Command::new(python)
        .arg(script)
        .args(
            [
                threads.torch_arg(),
                vocab,
                layers,
                width,
                heads,
                ctx,
                batch,
                steps,
            ]
            .iter()
            .map(|v| v.to_string()),
        )
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v = last_json_line(&o.stdout);
            let (tps, ms) = (
                v["train_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
                v["forward_ms"].as_f64().unwrap_or(f64::NAN),
            );
            println!("pytorch:     train {tps:.0} tokens/s, forward (1 x {ctx}) {ms:.1} ms");
            println!(
                "ratio (ours / pytorch): train throughput {:.2}x, forward speed {:.2}x",
                ours_tps / tps,
                ms / ours_ms
            );
        }
        Ok(o) => println!(
            "pytorch reference failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => println!("pytorch reference not run (python missing?): {e}"),
    }
    Ok(())
}
