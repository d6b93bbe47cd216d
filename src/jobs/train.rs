//! `massivetext train`: the first command of the README. On a fresh machine it generates the
//! embedded story corpus ([`crate::data::corpus`]), trains a small character-level GPT on it
//! with the [`Trainer`], and writes `output_dir` with checkpoints, `trainer_state.json`, the
//! final model, `loss_curve.svg`, `samples.txt` (greedy completions, checked against the
//! stories' answers) and last `train_results.json` (the mark of a finished run). Before anything
//! is allocated the model and batch are checked to fit in the machine's memory
//! ([`crate::jobs::memory`]); while it runs, the job holds the lock `.NAME.lock` beside the
//! folder, so a second run into it is refused.
//!
//! The defaults (1,500 steps of a 3 × 96 GPT) get about two thirds of the held-out sums right;
//! `--max-steps 600` learns the sentences but not yet the sums (timings: docs/benchmarks.md).
//! Settings come from the defaults, then a TOML file (`--config job.toml` with `[training]`,
//! `[model]` and `[corpus]` tables), then overrides: any key of those tables
//! ([`TrainJob::from_overrides`]).
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::corpus::{CharVocab, Story, corpus_text, stories};
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::io::{DirLock, write_atomic};
use crate::jobs::memory::{MachineMemory, TrainingMemory};
use crate::models::{AutoModelForCausalLM, Gpt2Config, LlamaConfig, ModelConfig};
use crate::tokenizer::Tokenizer;
use crate::train::{
    IntervalStrategy, SchedulerType, Steps, TokenWindows, Trainer, TrainingArguments,
};
use crate::{Error, Result};

/// The model of the job: a GPT-2 (or a Llama) with character vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// `gpt2` or `llama` (RMSNorm, rotary positions, SwiGLU of width `8/3 n_embd`, tied head;
    /// as many kv heads as heads).
    pub model_type: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Context length (training windows and `n_positions`).
    pub block_size: usize,
    pub dropout: f64,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            model_type: "gpt2".into(),
            n_layer: 3,
            n_head: 4,
            n_embd: 96,
            block_size: 96,
            dropout: 0.0,
        }
    }
}

/// The model of `m` over the vocabulary `vocab` (end of sequence: the newline).
fn model_config(m: &ModelSpec, vocab: &CharVocab) -> ModelConfig {
    let newline = vocab.encode("\n").ok().map(|v| v[0]);
    if m.model_type == "llama" {
        return LlamaConfig {
            vocab_size: vocab.len(),
            hidden_size: m.n_embd,
            // SwiGLU's three matrices at about the weights of GPT-2's two of width 4 n_embd
            intermediate_size: (8 * m.n_embd / 3).max(1),
            num_hidden_layers: m.n_layer,
            num_attention_heads: m.n_head,
            num_key_value_heads: None,
            max_position_embeddings: m.block_size,
            attention_dropout: m.dropout,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_id: newline.map(crate::models::TokenIds::One),
            ..LlamaConfig::default()
        }
        .into();
    }
    Gpt2Config {
        vocab_size: vocab.len(),
        n_positions: m.block_size,
        n_embd: m.n_embd,
        n_layer: m.n_layer,
        n_head: m.n_head,
        resid_pdrop: m.dropout,
        embd_pdrop: m.dropout,
        attn_pdrop: m.dropout,
        bos_token_id: None,
        eos_token_id: newline,
        ..Gpt2Config::gpt2()
    }
    .into()
}

/// The embedded corpus: how many stories, from which seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorpusSpec {
    pub train_stories: usize,
    pub eval_stories: usize,
    pub seed: u64,
    /// Held-out stories whose answers are checked after training.
    pub check_stories: usize,
}

impl Default for CorpusSpec {
    fn default() -> Self {
        CorpusSpec {
            train_stories: 20_000,
            eval_stories: 500,
            seed: 1,
            check_stories: 100,
        }
    }
}

/// A whole training job, as a TOML file holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainJob {
    pub training: TrainingArguments,
    pub model: ModelSpec,
    pub corpus: CorpusSpec,
}

impl Default for TrainJob {
    fn default() -> Self {
        TrainJob {
            training: TrainingArguments {
                output_dir: PathBuf::from("massivetext-run"),
                max_steps: Some(1500),
                per_device_train_batch_size: 16,
                per_device_eval_batch_size: 32,
                learning_rate: 2e-3,
                weight_decay: 0.1,
                adam_beta2: 0.99,
                warmup_steps: 30,
                lr_scheduler_type: SchedulerType::CosineWithMinLr,
                lr_scheduler_kwargs: [("min_lr".to_string(), Value::from(2e-4))]
                    .into_iter()
                    .collect(),
                logging_steps: Steps::Every(25),
                eval_strategy: IntervalStrategy::Steps,
                eval_steps: Some(Steps::Every(250)),
                save_steps: Steps::Every(500),
                save_total_limit: Some(2),
                ..Default::default()
            },
            model: ModelSpec::default(),
            corpus: CorpusSpec::default(),
        }
    }
}

/// The tables a job key can live in, searched in this order.
const TABLES: [&str; 3] = ["training", "model", "corpus"];

impl TrainJob {
    /// Defaults, then the `config` TOML file, then `overrides` in order: each a key of the
    /// `[training]`, `[model]` or `[corpus]` table (`-` or `_`, e.g. `max-steps`, `n_layer`) with
    /// its value. `seed` sets both the corpus seed and the training seed.
    pub fn from_overrides(config: Option<&Path>, overrides: &[(String, Value)]) -> Result<Self> {
        let job = match config {
            Some(path) => Self::from_file(path)?,
            None => TrainJob::default(),
        };
        let mut v = serde_json::to_value(&job)
            .map_err(|e| Error::InvalidArgument(format!("cannot represent the job: {e}")))?;
        for (key, value) in overrides {
            let key = key.replace('-', "_");
            if key == "seed" {
                v["corpus"]["seed"] = value.clone();
                v["training"]["seed"] = value.clone();
                continue;
            }
            let table = TABLES
                .into_iter()
                .find(|t| v[*t].get(&key).is_some())
                .ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "unknown setting `{key}`; use a key of the [training] (TrainingArguments), [model] or [corpus] table, e.g. max_steps, n_layer, train_stories (`massivetext train --print-config` lists them all)"
                    ))
                })?;
            v[table][&key] = value.clone();
        }
        let job: TrainJob = serde_json::from_value(v).map_err(|e| {
            Error::InvalidConfig(format!(
                "bad setting value: {e}; `massivetext train --print-config` shows each setting with a value of the right type"
            ))
        })?;
        job.training.validate()?;
        job.validate()?;
        Ok(job)
    }

    /// Parses `key=value` (as `--set` takes it): numbers, booleans and JSON stay typed, anything
    /// else is a string.
    pub fn parse_override(s: &str) -> Result<(String, Value)> {
        let (key, value) = s.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "`{s}`: write a setting as KEY=VALUE, e.g. warmup_steps=10"
            ))
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "`{s}`: the key before `=` is empty; write KEY=VALUE, e.g. warmup_steps=10"
            )));
        }
        let parsed: Value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        Ok((key.to_string(), parsed))
    }

    /// The job as a TOML file (`[training]`, `[model]`, `[corpus]`), as `--config` reads it.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| Error::InvalidArgument(format!("cannot write the job as TOML: {e}")))
    }

    /// Reads a TOML job file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let job: TrainJob = toml::from_str(&text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    (
                        before.matches('\n').count() as u64 + 1,
                        before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1,
                    )
                })
                .unwrap_or((0, 0));
            Error::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: format!(
                    "{}; the file has [training], [model] and [corpus] tables",
                    e.message()
                ),
            }
        })?;
        // the settings' errors name the file, as its parse errors do
        let in_file = |e: Error| match e {
            Error::InvalidConfig(m) => Error::InvalidConfig(format!("{}: {m}", path.display())),
            other => other,
        };
        job.training.validate().map_err(in_file)?;
        job.validate().map_err(in_file)?;
        Ok(job)
    }

    fn validate(&self) -> Result<()> {
        let m = &self.model;
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if m.n_layer == 0 || m.n_head == 0 || m.n_embd == 0 || m.block_size < 2 {
            return bad(
                "model: n_layer, n_head and n_embd must be at least 1 and block_size at least 2"
                    .into(),
            );
        }
        if !m.n_embd.is_multiple_of(m.n_head) {
            return bad(format!(
                "model: n_embd ({}) must be a multiple of n_head ({})",
                m.n_embd, m.n_head
            ));
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return bad(format!(
                "model: dropout must be in [0, 1), got {}",
                m.dropout
            ));
        }
        if !matches!(m.model_type.as_str(), "gpt2" | "llama") {
            return bad(format!(
                "model: model_type `{}` is not supported; supported: gpt2, llama",
                m.model_type
            ));
        }
        if self.corpus.train_stories < 10 || self.corpus.eval_stories == 0 {
            return bad(
                "corpus: train_stories must be at least 10 and eval_stories at least 1".into(),
            );
        }
        Ok(())
    }
}

/// Greedy decoding with the KV cache: the prompt once, then one character at a time, until a
/// newline (or a `.` when `stop_at_period`) or `max_new` characters.
pub fn greedy_complete(
    model: &AutoModelForCausalLM,
    vocab: &CharVocab,
    prompt: &str,
    max_new: usize,
    max_len: usize,
    stop_at_period: bool,
) -> Result<String> {
    let ids = vocab.encode(prompt)?;
    if ids.is_empty() || max_len < 2 {
        return Err(Error::InvalidArgument(
            "greedy_complete needs a non-empty prompt and a context of at least 2".into(),
        ));
    }
    // Prompt and completion share the position table: keep the prompt's end, at least one
    // character of it, and stop when the table is full.
    let keep = ids.len().min(max_len.saturating_sub(max_new).max(1));
    let ids = &ids[ids.len() - keep..];
    let max_new = max_new.min(max_len - keep);
    // stop at the end of the line, and at the end of the sentence when asked
    let mut eos: Vec<u32> = vocab.encode("\n").unwrap_or_default();
    if stop_at_period {
        eos.extend(vocab.encode(".")?);
    }
    let config = GenerationConfig {
        max_new_tokens: max_new,
        pad_token_id: eos.first().copied(),
        eos_token_id: eos,
        ..Default::default()
    };
    let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let row: Vec<u32> = model.generate(&input, &config)?.get(0)?.to_vec1()?;
    let mut new = &row[keep..];
    if let Some(end) = new.iter().position(|t| config.eos_token_id.contains(t)) {
        new = &new[..=end];
    }
    let text = vocab.decode(new);
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

/// The character vocabulary as a `tokenizers` tokenizer: every character its own token (a
/// WordLevel model over a split that isolates each character, joined back by a Fuse decoder),
/// with the ids of [`CharVocab::encode`].
pub fn char_tokenizer(vocab: &CharVocab) -> Result<Tokenizer> {
    use tokenizers::decoders::fuse::Fuse;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::tokenizer::SplitDelimiterBehavior;
    let map = vocab
        .chars
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i as u32))
        .collect();
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| {
        Error::Tokenizer(format!("cannot build the character tokenizer: {e}"))
    };
    let model = WordLevel::builder()
        .vocab(map)
        .unk_token("<unk>".into())
        .build()
        .map_err(bad)?;
    let mut inner = tokenizers::Tokenizer::new(model);
    let split = Split::new(
        SplitPattern::Regex(r"[\s\S]".into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(bad)?;
    inner.with_pre_tokenizer(Some(split));
    inner.with_decoder(Some(Fuse::new()));
    Ok(Tokenizer::from_tokenizers(inner))
}

/// The number a completion states (`" 7 apples."` → 7, `" no apples."` → 0).
fn stated_count(completion: &str) -> Option<u32> {
    let w = completion.split_whitespace().next()?;
    if w == "no" { Some(0) } else { w.parse().ok() }
}

/// The job's last write: the run's figures, and the step it finished at. A run whose
/// `train_results.json` names the step of its last checkpoint is finished; one without was
/// stopped between that checkpoint and its final writes, and resuming finishes it.
const RESULTS: &str = "train_results.json";

/// Whether the run in `out_dir` finished at `step` (see [`RESULTS`]).
fn finished_at(out_dir: &Path, step: usize) -> bool {
    crate::io::read_json::<Value>(&out_dir.join(RESULTS))
        .ok()
        .and_then(|v| v.get("global_step").and_then(Value::as_u64))
        == Some(step as u64)
}

/// The step of the checkpoint a resume names (`latest` or a folder), when it can be read; the
/// trainer reports what cannot.
fn resume_step(out_dir: &Path, resume: &str) -> Option<(PathBuf, usize)> {
    let dir = match resume {
        "latest" | "true" => crate::train::get_last_checkpoint(out_dir)?,
        dir => PathBuf::from(dir),
    };
    let state = crate::train::TrainerState::load_from_json(&dir.join("trainer_state.json")).ok()?;
    Some((dir, state.global_step))
}

/// What a rank other than 0 does of the job: the collective parts (training, the final
/// evaluation, the last checkpoint's checksum), none of the writing; it returns no summary.
fn train_as_helper_rank(
    trainer: &mut Trainer<AutoModelForCausalLM>,
    job: &TrainJob,
    out_dir: &Path,
) -> Result<String> {
    trainer.train()?;
    trainer.evaluate()?;
    if !job.training.load_best_model_at_end
        && !out_dir
            .join(format!("checkpoint-{}", trainer.global_step()))
            .is_dir()
    {
        trainer.save_checkpoint()?;
    }
    Ok(String::new())
}

/// Runs the job on `device`; returns the summary printed at the end.
///
/// Under `mpirun -n N` (a build with the `mpi` feature) each rank runs this with the same job:
/// every rank builds the corpus and the model and trains its share of each batch; rank 0 alone
/// holds the folder's lock, writes the files and returns the summary (the others return an
/// empty one). docs/distributed.md.
pub fn run_job(job: &TrainJob, device: &Device) -> Result<String> {
    let world = crate::dist::world(job.training.ddp_backend.as_deref())?;
    let main = world.is_main_process();
    let out_dir = job.training.output_dir.clone();
    let c = &job.corpus;
    let train_text = corpus_text(c.train_stories, c.seed);
    let eval_text = corpus_text(c.eval_stories, c.seed.wrapping_add(1_000_003));
    let check: Vec<Story> = stories(c.check_stories, c.seed.wrapping_add(2_000_003));
    let vocab = CharVocab::from_text(&train_text);
    let m = &job.model;
    let config = model_config(m, &vocab);
    if device.is_cpu() {
        let t = &job.training;
        TrainingMemory::for_model(
            config.size(),
            vocab.len(),
            t.per_device_train_batch_size
                .max(t.per_device_eval_batch_size),
            m.block_size,
        )
        .check(
            MachineMemory::read(),
            "lower --block-size, --n-embd, --n-layer or --per-device-train-batch-size",
        )?;
    }
    // One run at a time in a folder: a second one waits for nothing and writes nothing (the
    // ranks of one data-parallel run are one run: rank 0 holds the lock).
    let _lock = if main {
        Some(DirLock::beside(
            &out_dir,
            &format!("the training folder {}", out_dir.display()),
        )?)
    } else {
        None
    };
    let mut model = AutoModelForCausalLM::from_config_seeded(config, device, job.training.seed)?;
    model.set_seed(job.training.seed);
    let train = TokenWindows::new(vocab.encode(&train_text)?, m.block_size)?;
    let eval = TokenWindows::new(vocab.encode(&eval_text)?, m.block_size)?;
    let mut trainer =
        Trainer::new(model.share(), job.training.clone(), train)?.with_eval_dataset(eval)?;
    if let Some((dir, step)) = job
        .training
        .resume_from_checkpoint
        .as_deref()
        .and_then(|r| resume_step(&out_dir, r))
        && step == trainer.max_steps()
        && finished_at(&out_dir, step)
    {
        return Err(Error::Checkpoint {
            path: dir,
            message: format!(
                "this checkpoint is at step {step} and max_steps is {step}: the run is finished and nothing is left to train, so nothing was changed; raise --max-steps (max_steps) above {step} to train further (the finished model is in {})",
                out_dir.display()
            ),
        });
    }
    // Before anything is written: leftovers swept, the resume checked (or a non-empty folder
    // refused without --overwrite-output-dir).
    let resumed = trainer.prepare_output_dir()?;
    if !main {
        return train_as_helper_rank(&mut trainer, job, &out_dir);
    }
    crate::io::create_dir_all(&out_dir)?;
    let write = |name: &str, text: &str| write_atomic(&out_dir.join(name), text.as_bytes());
    write(
        "vocab.json",
        &serde_json::to_string(&vocab).unwrap_or_default(),
    )?;
    write("job.toml", &job.to_toml()?)?;
    // The vocabulary as a real tokenizer (tokenizer.json), so `massivetext perplexity --model
    // DIR` and `Tokenizer::from_pretrained(DIR)` read the output folder like any model folder.
    char_tokenizer(&vocab)?.save_pretrained(&out_dir)?;
    let n_params = model.num_parameters();
    if !job.training.disable_tqdm {
        println!(
            "massivetext train: GPT-2 {} layers x {} wide, {} heads, block {}, {} parameters; {} stories ({} characters, vocabulary {}) -> {}",
            m.n_layer,
            m.n_embd,
            m.n_head,
            m.block_size,
            n_params,
            c.train_stories,
            train_text.len(),
            vocab.len(),
            out_dir.display()
        );
    }
    if let Some(dir) = &resumed
        && job.training.disable_tqdm
    {
        // with progress on, train() prints it
        eprintln!(
            "resumed from {} at step {}",
            dir.display(),
            trainer.global_step()
        );
    }
    let res = trainer.train()?;
    let ev = trainer.evaluate()?;
    // The last step as a checkpoint, to resume from with a larger max_steps. Not after
    // load_best_model_at_end: the trainer then holds the best checkpoint's weights, not the
    // last step's (a resume goes on from the last checkpoint saved).
    if !job.training.load_best_model_at_end
        && !out_dir
            .join(format!("checkpoint-{}", trainer.global_step()))
            .is_dir()
    {
        trainer.save_checkpoint()?;
    }
    trainer.save_state()?;
    trainer.save_model()?;
    let curve = trainer.loss_curve()?;
    curve.save(out_dir.join("loss_curve.svg"))?;

    // Sample generations: complete held-out stories and check the numbers.
    let mut samples = String::new();
    let mut right = 0;
    for s in &check {
        let completion = greedy_complete(&model, &vocab, &s.prompt(), 16, m.block_size, true)?;
        let ok = stated_count(&completion) == Some(s.answer);
        right += usize::from(ok);
        samples += &format!(
            "{} {}{} [{}; answer {}]\n",
            if ok { "✓" } else { "✗" },
            s.prompt(),
            completion,
            if ok { "right" } else { "wrong" },
            s.answer
        );
    }
    let free = greedy_complete(&model, &vocab, "One day", 120, m.block_size, false)?;
    let accuracy = right as f64 / check.len().max(1) as f64;
    // What always answering the most common count of the training stories would score.
    let mut counts = std::collections::HashMap::new();
    for s in stories(c.train_stories, c.seed) {
        *counts.entry(s.answer).or_insert(0usize) += 1;
    }
    let (mode, _) = counts
        .iter()
        .max_by_key(|(a, n)| (**n, std::cmp::Reverse(**a)))
        .map(|(a, n)| (*a, *n))
        .unwrap_or((0, 0));
    let baseline = check.iter().filter(|s| s.answer == mode).count();
    let header = format!(
        "answers right: {right}/{} ({:.0}%; always answering the most common count, {mode}, gets {baseline})\nfree run: One day{free}\n\n",
        check.len(),
        accuracy * 100.0
    );
    write("samples.txt", &(header.clone() + &samples))?;
    // last: what marks the run as finished (see RESULTS)
    crate::io::write_json(
        &out_dir.join(RESULTS),
        &serde_json::json!({
            "global_step": res.global_step,
            "epoch": trainer.state().epoch,
            "train_loss": res.training_loss,
            "train_runtime": res.train_runtime,
            "train_tokens_per_second": res.tokens_per_second,
            "eval_loss": ev.eval_loss,
            "eval_perplexity": ev.eval_perplexity,
            "answers_right": right,
            "answers_checked": check.len(),
        }),
    )?;
    let resumed_line = match &res.resumed_from {
        Some(dir) if res.steps_run == 0 => format!(
            "finished the run stopped after {} (step {}; no steps were left to train); ",
            dir.file_name().unwrap_or(dir.as_os_str()).to_string_lossy(),
            res.global_step
        ),
        Some(dir) => format!(
            "resumed from {} at step {}; ",
            dir.file_name().unwrap_or(dir.as_os_str()).to_string_lossy(),
            res.global_step - res.steps_run
        ),
        None => String::new(),
    };
    let mut summary = format!(
        "{resumed_line}trained {} steps in {:.0}s ({:.0} tokens/s): train_loss {:.4}, eval_loss {:.4} (perplexity {:.2})\n{header}",
        res.steps_run,
        res.train_runtime,
        res.tokens_per_second,
        res.training_loss,
        ev.eval_loss,
        ev.eval_perplexity
    );
    for line in samples.lines().take(5) {
        summary += line;
        summary.push('\n');
    }
    summary += &format!(
        "wrote {}: checkpoint-N/, model.safetensors, config.json, tokenizer.json, trainer_state.json, loss_curve.svg, samples.txt, train_results.json",
        out_dir.display()
    );
    Ok(summary)
}
