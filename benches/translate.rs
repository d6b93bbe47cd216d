//! The translation job (Multi30k en→de, a Marian trained from scratch) in massivetext and the
//! same model in PyTorch transformers, in one run: the same joint tokenizer and token ids, the
//! same initial weights (ours, saved before training and loaded by `MarianMTModel`), the same
//! batches in the same order, AdamW with the same hyper-parameters and the same linear
//! warmup/decay schedule, the same thread count; then both translate the test set with beam
//! search and both are scored by the same sacreBLEU-exact BLEU. Prints BLEU and training
//! tokens/s (source + target tokens, padding excluded) of both, and the ratios.
//!
//!     cargo bench --bench translate
//!     BENCH_STEPS=600 BENCH_TEST=200 cargo bench --bench translate   # a shorter run
//!     BENCH_NO_TORCH=1 cargo bench --bench translate                  # ours only
//!
//! Settings: `TranslationJob::default()` (a 2 + 2 layer, 128-wide Marian, batches of 64,
//! learning rate 2e-3 with 100 warmup steps, 4 beams), with `BENCH_STEPS`, `BENCH_TRAIN`
//! (training pairs), `BENCH_TEST` (test sentences), `BENCH_THREADS`, `BENCH_GROUP_BY_LENGTH`
//! (`true` / `false`: batches of similar lengths; the job's own setting, off, by default),
//! `BENCH_REFERENCE_ONLY=dir` (write the transformers side's input there and stop), `BENCH_DATA` (default
//! `../shared/data/multi30k`); the transformers side is benches/translate_torch.py, run with
//! `BENCH_PYTHON` (default `python`).
mod common;

use std::path::PathBuf;
use std::time::Instant;

use massivetext::prelude::*;
use massivetext::train::{DataCollatorForSeq2Seq, EpochOrder};
use massivetext::translate::{TranslationJob, parallel_examples, train_tokenizer, translate};
use serde_json::json;

use common::{bench_threads, env_or};

fn main() -> massivetext::Result<()> {
    let threads = bench_threads();
    let mut job = TranslationJob::default();
    job.data.dir = std::env::var("BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/multi30k")
        });
    job.training.max_steps = Some(env_or(
        "BENCH_STEPS",
        job.training.max_steps.unwrap_or(1500),
    ));
    job.data.max_train_examples = std::env::var("BENCH_TRAIN")
        .ok()
        .and_then(|v| v.parse().ok());
    job.data.max_test_examples = std::env::var("BENCH_TEST")
        .ok()
        .and_then(|v| v.parse().ok());
    job.training.group_by_length = env_or("BENCH_GROUP_BY_LENGTH", job.training.group_by_length);
    job.training.eval_strategy = IntervalStrategy::No;
    job.training.disable_tqdm = true;
    let work = tempfile::tempdir().map_err(|e| Error::InvalidArgument(e.to_string()))?;
    job.training.output_dir = work.path().join("run");
    let d = job.data.clone();
    let (train_src, train_tgt) = job.read_pairs(&d.train_split, d.max_train_examples)?;
    let (test_src, test_tgt) = job.read_pairs(&d.test_split, d.max_test_examples)?;
    let tok = train_tokenizer(&job, &train_src, &train_tgt)?;
    let (pad, eos) = (
        tok.pad_token_id().unwrap_or(0),
        tok.eos_token_id().unwrap_or(1),
    );
    let train = parallel_examples(&tok, &train_src, &train_tgt, d.max_tokens)?;
    let config = job.marian_config(tok.vocab_size(), pad, eos);
    let model = AutoModelForSeq2SeqLM::from_config_seeded(config, &Device::Cpu, job.training.seed)?;
    let init = work.path().join("init");
    model.save_pretrained(&init)?;

    // the batch order the Trainer draws (a permutation per epoch that depends only on the seed,
    // the epoch and the number of examples)
    let steps = job.training.max_steps.unwrap_or(1500);
    let bs = job.training.per_device_train_batch_size;
    let per_epoch = train.len().div_ceil(bs);
    let index = TrainData::from(
        (0..train.len())
            .map(|i| Example {
                input_ids: vec![i as u32],
                ..Default::default()
            })
            .collect::<Vec<_>>(),
    );
    let mut order = if job.training.group_by_length {
        EpochOrder::length_grouped(train.iter().map(|e| e.input_ids.len()).collect(), bs)
    } else {
        EpochOrder::default()
    };
    let batches: Vec<Vec<usize>> = (0..steps)
        .map(|s| {
            index
                .train_batch(
                    job.training.seed,
                    s / per_epoch,
                    s % per_epoch,
                    bs,
                    &mut order,
                )
                .iter()
                .map(|e| e.input_ids[0] as usize)
                .collect()
        })
        .collect();
    let tokens: usize = batches
        .iter()
        .flatten()
        .map(|&i| train[i].input_ids.len() + train[i].labels.as_ref().map_or(0, Vec::len))
        .sum();
    println!(
        "translate bench: {} training pairs, {} steps of {bs}, vocabulary {}, {} parameters, {threads}, {} test sentences",
        train.len(),
        steps,
        tok.vocab_size(),
        model.num_parameters(),
        test_src.len()
    );

    let eos_ids = |s: &str| -> massivetext::Result<Vec<u32>> {
        let mut v = tok.encode_plain(s)?;
        v.truncate(job.model.max_position_embeddings - 1);
        v.push(eos);
        Ok(v)
    };
    let test_ids = test_src
        .iter()
        .map(|s| eos_ids(s))
        .collect::<massivetext::Result<Vec<_>>>()?;
    let hyps_out = work.path().join("torch_hyps.json");
    let a = &job.training;
    let cfg = json!({
        "init": init, "threads": threads.torch_arg(), "seed": a.seed,
        "examples": train.iter().map(|e| json!({"input_ids": e.input_ids, "labels": e.labels})).collect::<Vec<_>>(),
        "batches": batches, "lr": a.learning_rate, "weight_decay": a.weight_decay,
        "beta1": a.adam_beta1, "beta2": a.adam_beta2, "eps": a.adam_epsilon,
        "warmup_steps": a.warmup_steps, "max_grad_norm": a.max_grad_norm,
        "test": test_ids, "num_beams": job.decode.num_beams, "max_new_tokens": job.decode.max_new_tokens,
        "decode_batch": job.decode.batch_size, "hyps_out": hyps_out,
    });
    // BENCH_REFERENCE_ONLY=dir: write the reference side's input (settings, token ids, batch
    // order, initial weights) to `dir` and stop, so `python benches/translate_torch.py
    // dir/bench.json` reruns it alone (BENCH_TORCH_SEED there changes only its dropout draws)
    if let Ok(dir) = std::env::var("BENCH_REFERENCE_ONLY") {
        let dir = PathBuf::from(dir);
        let mut cfg = cfg;
        model.save_pretrained(dir.join("init"))?;
        cfg["init"] = json!(dir.join("init"));
        cfg["hyps_out"] = json!(dir.join("torch_hyps.json"));
        std::fs::write(dir.join("bench.json"), cfg.to_string())
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        println!("wrote {}", dir.join("bench.json").display());
        return Ok(());
    }

    let mut trainer = Trainer::new(model, job.training.clone(), train.clone())?
        .with_collator(DataCollatorForSeq2Seq::new(pad))?;
    let t0 = Instant::now();
    let out = trainer.train()?;
    let ours_train = t0.elapsed().as_secs_f64();
    let model = trainer.model().clone();
    let gen_cfg = GenerationConfig {
        num_beams: job.decode.num_beams,
        max_new_tokens: job.decode.max_new_tokens,
        ..model.generation_config()?
    };
    let t0 = Instant::now();
    let hyps = translate(&model, &tok, &test_src, &gen_cfg, job.decode.batch_size)?;
    let ours_translate = t0.elapsed().as_secs_f64();
    let ours_bleu = corpus_bleu(&hyps, std::slice::from_ref(&test_tgt))?;
    // the mean loss of the last logging interval (100 steps), as the reference side prints
    let last_loss = trainer
        .log_history()
        .iter()
        .rev()
        .find_map(|e| e.get("loss").and_then(serde_json::Value::as_f64))
        .unwrap_or(out.training_loss);
    println!(
        "massivetext: train {ours_train:.0} s ({:.0} tokens/s, loss over the last 100 steps {last_loss:.3}), translate {ours_translate:.0} s, {ours_bleu}",
        tokens as f64 / ours_train,
    );
    for i in 0..3.min(hyps.len()) {
        println!("  {}\n  -> {}", test_src[i], hyps[i]);
    }
    if std::env::var("BENCH_NO_TORCH").is_ok() {
        return Ok(());
    }

    let cfg_path = work.path().join("bench.json");
    std::fs::write(&cfg_path, cfg.to_string())
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/translate_torch.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .arg(&cfg_path)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::InvalidArgument(format!("cannot run {python}: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let torch: Value = serde_json::from_str(line)
        .map_err(|e| Error::InvalidArgument(format!("the torch side printed {stdout:?}: {e}")))?;
    let ids: Vec<Vec<u32>> = serde_json::from_str(
        &std::fs::read_to_string(&hyps_out).map_err(|e| Error::InvalidArgument(e.to_string()))?,
    )
    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let torch_hyps = ids
        .iter()
        .map(|r| tok.decode(r, DecodeOptions::SKIP_SPECIAL_TOKENS))
        .collect::<massivetext::Result<Vec<_>>>()?;
    let torch_bleu = corpus_bleu(&torch_hyps, std::slice::from_ref(&test_tgt))?;
    let torch_train = torch["train_s"].as_f64().unwrap_or(f64::NAN);
    let torch_tokens = torch["tokens"].as_f64().unwrap_or(f64::NAN);
    println!(
        "transformers: train {torch_train:.0} s ({:.0} tokens/s, loss over the last 100 steps {:.3}), translate {:.0} s, {torch_bleu}",
        torch_tokens / torch_train,
        torch["final_loss"].as_f64().unwrap_or(f64::NAN),
        torch["translate_s"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "| | BLEU | train tokens/s | translate s |\n|---|---|---|---|\n| massivetext | {:.2} | {:.0} | {:.1} |\n| transformers | {:.2} | {:.0} | {:.1} |\n| ratio | {:+.2} | {:.2}x | {:.2}x |",
        ours_bleu.score,
        tokens as f64 / ours_train,
        ours_translate,
        torch_bleu.score,
        torch_tokens / torch_train,
        torch["translate_s"].as_f64().unwrap_or(f64::NAN),
        ours_bleu.score - torch_bleu.score,
        (tokens as f64 / ours_train) / (torch_tokens / torch_train),
        torch["translate_s"].as_f64().unwrap_or(f64::NAN) / ours_translate,
    );
    Ok(())
}
