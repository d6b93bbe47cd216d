//! Greedy decoding of 256 new tokens from a 6-layer, 384-wide GPT-2 (vocab 8192) on CPU:
//! massivetext with its KV cache and without (recomputing the prefix), against transformers'
//! `generate` on the same weights, prompts and thread count; also a batch of 8 and beam search
//! with 4 beams. One run prints tokens/s of each and the ratios, and checks that both sides
//! produced the same tokens. Then the same with the weights stored in bf16
//! (`with_weight_dtype`, computed in f32) against transformers in f32 and in bfloat16.
//!
//!     cargo bench --bench generate                       # default threads, no variable set (as a user runs it)
//!     BENCH_THREADS=1 BENCH_RUNS=5 cargo bench --bench generate
//!     BENCH_PYTHON=/path/to/venv/bin/python cargo bench --bench generate
//!     BENCH_CASES=greedy_b1 BENCH_NO_UNCACHED=1 BENCH_NO_TORCH=1 cargo bench --bench generate  # to profile
//!     BENCH_NO_BF16=1 ...                                # f32 weights only (a profile of one case)
//!
//! Needs a python with torch and transformers for the reference side (skipped if absent).
mod common;

use std::time::Instant;

use massivetext::prelude::*;

use common::{bench_threads, env_or};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> massivetext::Result<()> {
    let threads = bench_threads();
    let runs = env_or("BENCH_RUNS", 3);
    let new_tokens = env_or("BENCH_NEW_TOKENS", 256);
    let vocab = 8192;
    let cfg = Gpt2Config {
        vocab_size: vocab,
        n_layer: 6,
        n_embd: 384,
        n_head: 6,
        n_positions: 512,
        bos_token_id: None,
        eos_token_id: None,
        ..Gpt2Config::small(vocab)
    };
    let mut model = AutoModelForCausalLM::from_config(&cfg, &Device::Cpu)?;
    model.eval();
    let dir =
        tempfile::tempdir().map_err(|e| massivetext::Error::InvalidArgument(e.to_string()))?;
    model.save_pretrained(dir.path())?;
    let prompts: Vec<Vec<u32>> = (0..8)
        .map(|r| {
            (0..16)
                .map(|i| ((r * 131 + i * 7919) % vocab) as u32)
                .collect()
        })
        .collect();
    let base = GenerationConfig {
        max_new_tokens: new_tokens,
        min_new_tokens: new_tokens,
        pad_token_id: Some(0),
        ..Default::default()
    };
    let cases: Vec<(&str, usize, GenerationConfig)> = vec![
        ("greedy_b1", 1, base.clone()),
        ("greedy_b8", 8, base.clone()),
        (
            "beam4_b1",
            1,
            GenerationConfig {
                num_beams: 4,
                ..base.clone()
            },
        ),
    ];
    println!(
        "GPT-2 6 layers, 384 wide, vocab {vocab}; prompt 16 tokens, {new_tokens} new tokens; {threads}; median of {runs} runs"
    );
    let only = std::env::var("BENCH_CASES").ok();
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(name, _, _)| {
            only.as_ref()
                .is_none_or(|o| o.split(',').any(|c| c == *name))
        })
        .collect();
    let uncached_too = std::env::var("BENCH_NO_UNCACHED").is_err();
    let ours = measure(
        &model,
        &cases,
        &prompts,
        (runs, new_tokens),
        uncached_too,
        "",
    )?;
    // the same weights stored in bf16, computed in f32 (`with_weight_dtype`)
    let bf16 = model.with_weight_dtype(DType::BF16)?;
    let ours_bf16 = if std::env::var("BENCH_NO_BF16").is_ok() {
        serde_json::Map::new()
    } else {
        measure(
            &bf16,
            &cases,
            &prompts,
            (runs, new_tokens),
            false,
            " bf16 weights",
        )?
    };
    for (name, _, _) in cases.iter().filter(|(n, _, _)| ours_bf16.contains_key(*n)) {
        let same = ours[*name]["sequences"] == ours_bf16[*name]["sequences"];
        println!("massivetext {name}: bf16 weights give the f32 tokens: {same}");
    }
    if std::env::var("BENCH_NO_TORCH").is_ok() {
        return Ok(());
    }
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/generate_torch.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(dir.path())
        .args(
            [threads.torch_arg(), new_tokens, runs]
                .iter()
                .map(|v| v.to_string()),
        )
        .arg(serde_json::to_string(&prompts).unwrap_or_default())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value =
                serde_json::from_str(text.trim().lines().last().unwrap_or("")).unwrap_or_default();
            for (name, _, _) in &cases {
                let theirs = v["float32"][name]["tokens_per_s"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                let mine = ours[*name]["tps"].as_f64().unwrap_or(f64::NAN);
                let same = v["float32"][name]["sequences"] == ours[*name]["sequences"];
                println!(
                    "transformers {name}: {theirs:.0} tokens/s; ratio ours/transformers {:.2}x; same tokens: {same}",
                    mine / theirs
                );
                let theirs_bf16 = v["bfloat16"][name]["tokens_per_s"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                match ours_bf16.get(*name).and_then(|v| v["tps"].as_f64()) {
                    Some(mine_bf16) => println!(
                        "transformers {name} in bfloat16: {theirs_bf16:.0} tokens/s; ratio ours (bf16 weights) / transformers f32 {:.2}x, / transformers bf16 {:.2}x",
                        mine_bf16 / theirs,
                        mine_bf16 / theirs_bf16
                    ),
                    // BENCH_NO_BF16: no ratio to print, only their figure
                    None => println!(
                        "transformers {name} in bfloat16: {theirs_bf16:.0} tokens/s (ours with bf16 weights not run)"
                    ),
                }
            }
        }
        Ok(o) => println!(
            "transformers reference failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => println!("transformers reference not run (python missing?): {e}"),
    }
    Ok(())
}

/// Tokens/s (median of `runs`) and the sequences of each case, printed as they come.
fn measure(
    model: &AutoModelForCausalLM,
    cases: &[(&str, usize, GenerationConfig)],
    prompts: &[Vec<u32>],
    (runs, new_tokens): (usize, usize),
    uncached_too: bool,
    label: &str,
) -> massivetext::Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    for (name, b, c) in cases {
        let ids = Tensor::from_vec(prompts[..*b].concat(), (*b, 16), &Device::Cpu)?;
        let args = ForwardArgs::new(&ids);
        let mut seqs = model.generate_with(&args, c)?;
        let times: Vec<f64> = (0..runs)
            .map(|_| {
                let t0 = Instant::now();
                seqs = model.generate_with(&args, c)?;
                Ok(t0.elapsed().as_secs_f64())
            })
            .collect::<massivetext::Result<_>>()?;
        let tps = (*b * new_tokens) as f64 / median(times);
        if uncached_too {
            let t0 = Instant::now();
            let uncached = model.generate_without_cache(&args, c)?;
            let tps_nc = (*b * new_tokens) as f64 / t0.elapsed().as_secs_f64();
            let same = uncached.to_vec2::<u32>()? == seqs.to_vec2::<u32>()?;
            println!(
                "massivetext{label} {name}: {tps:.0} tokens/s with the KV cache, {tps_nc:.0} without ({:.1}x); same tokens: {same}",
                tps / tps_nc
            );
        } else {
            println!("massivetext{label} {name}: {tps:.0} tokens/s with the KV cache");
        }
        out.insert(
            name.to_string(),
            serde_json::json!({"tps": tps, "sequences": seqs.to_vec2::<u32>()?}),
        );
    }
    Ok(out)
}
