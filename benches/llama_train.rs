//! Training speed of a 6-layer, 384-wide Llama (`LlamaConfig::small`: 6 query heads over 2 kv
//! heads, MLP 1024, tied head) on tinyshakespeare with characters as tokens: massivetext
//! against the same model in transformers (`LlamaForCausalLM`, eager attention) in one run —
//! the same initial weights (ours, saved and loaded there), the same batches in the same order,
//! AdamW with the same hyper-parameters (lr 1e-3, no weight decay), the same thread count —
//! then both models' validation loss on the same held-out windows. Prints training tokens/s of
//! both and the ratio, the first step's loss of both (equal when the weights and batches are)
//! and the validation losses.
//!
//!     cargo bench --bench llama_train                     # default threads, no variable set
//!     BENCH_STEPS=40 BENCH_THREADS=2 cargo bench --bench llama_train
//!
//! `BENCH_STEPS` (default 100), `BENCH_BATCH` (8), `BENCH_CTX` (256), `BENCH_PYTHON` (default
//! `python`: torch and transformers), `BENCH_NO_TORCH=1` (ours only); tinyshakespeare from
//! `MASSIVETEXT_DATA` or `../shared/data`. The transformers side: benches/llama_train_torch.py.
mod common;

use std::time::Instant;

use massivetext::models::LlamaConfig;
use massivetext::prelude::*;
use massivetext::train::{AdamW, AdamWConfig};

use common::{bench_threads, data, env_or, last_json_line};

/// The first dataset position of row `b` of step `s`'s batch: a fixed stride through the
/// training part, the same formula as the Python side's.
fn start(s: usize, b: usize, batch: usize, span: usize) -> usize {
    ((s * batch + b) * 7919 + 13) % span
}

fn windows(ids: &[u32], starts: &[usize], ctx: usize, dev: &Device) -> Result<Tensor> {
    let rows: Vec<u32> = starts
        .iter()
        .flat_map(|&s| ids[s..s + ctx].iter().copied())
        .collect();
    Ok(Tensor::from_vec(rows, (starts.len(), ctx), dev)?)
}

fn loss_of(model: &AutoModelForCausalLM, x: &Tensor) -> Result<Tensor> {
    let labels = x.to_dtype(DType::I64)?;
    model
        .forward_with(&ForwardArgs::new(x).labels(&labels))?
        .loss
        .ok_or_else(|| Error::InvalidArgument("the model returned no loss".into()))
}

fn main() -> Result<()> {
    let threads = bench_threads();
    let steps: usize = env_or("BENCH_STEPS", 100);
    let batch: usize = env_or("BENCH_BATCH", 8);
    let ctx: usize = env_or("BENCH_CTX", 256);
    let lr = 1e-3;
    let path = data("tinyshakespeare/input.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::InvalidArgument(format!(
            "{}: {e}; set MASSIVETEXT_DATA to the shared data folder",
            path.display()
        ))
    })?;
    // characters as tokens, in code point order (Python's sorted(set(text)))
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let ids: Vec<u32> = text
        .chars()
        .map(|c| chars.binary_search(&c).unwrap_or(0) as u32)
        .collect();
    let n_train = ids.len() * 9 / 10;
    let span = n_train - ctx - 1;
    let val_starts: Vec<usize> = (0..16)
        .map(|k| n_train + k * (ids.len() - n_train - ctx - 1) / 16)
        .collect();

    let dev = Device::Cpu;
    let cfg = LlamaConfig {
        max_position_embeddings: ctx.max(256),
        ..LlamaConfig::small(chars.len())
    };
    let mut model = AutoModelForCausalLM::from_config_seeded(cfg, &dev, 0)?;
    let work = tempfile::tempdir().map_err(|e| Error::InvalidArgument(e.to_string()))?;
    model.save_pretrained(work.path())?;
    model.train();
    let mut opt = AdamW::new(
        model.varmap(),
        AdamWConfig {
            lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mut first = f32::NAN;
    let mut t0 = Instant::now();
    for s in 0..steps {
        let starts: Vec<usize> = (0..batch).map(|b| start(s, b, batch, span)).collect();
        let x = windows(&ids, &starts, ctx, &dev)?;
        let loss = loss_of(&model, &x)?;
        let grads = loss.backward()?;
        opt.step(&grads)?;
        if s == 0 {
            // the first step (warm-up) is not timed
            first = loss.to_scalar::<f32>()?;
            t0 = Instant::now();
        }
    }
    let ours_tps = (batch * ctx * (steps - 1)) as f64 / t0.elapsed().as_secs_f64();
    model.eval();
    let val = loss_of(&model, &windows(&ids, &val_starts, ctx, &dev)?)?.to_scalar::<f32>()?;
    println!(
        "Llama 6 layers, 384 wide, 6 heads over 2 kv heads, MLP 1024, vocab {}, context {ctx}, batch {batch}, {steps} steps, AdamW lr {lr}, {threads}",
        chars.len()
    );
    println!(
        "massivetext:  train {ours_tps:.0} tokens/s, first loss {first:.5}, validation loss {val:.4}"
    );
    if std::env::var("BENCH_NO_TORCH").is_ok() {
        return Ok(());
    }
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/llama_train_torch.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(work.path())
        .arg(&path)
        .args(
            [threads.torch_arg(), steps, batch, ctx]
                .iter()
                .map(|v| v.to_string()),
        )
        .arg(lr.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v = last_json_line(&o.stdout);
            let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let (tps, tfirst, tval) = (
                num("train_tokens_per_s"),
                num("first_loss"),
                num("val_loss"),
            );
            println!(
                "transformers: train {tps:.0} tokens/s, first loss {tfirst:.5}, validation loss {tval:.4}"
            );
            println!(
                "ratio (ours / transformers): train throughput {:.2}x; first-loss difference {:.1e}; validation loss difference {:+.4}",
                ours_tps / tps,
                (first as f64 - tfirst).abs(),
                val as f64 - tval
            );
        }
        Ok(o) => println!(
            "transformers side failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => println!("transformers side not run ({python} missing?): {e}"),
    }
    Ok(())
}
