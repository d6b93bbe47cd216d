//! `massivetext code`: a code model from scratch on the Python standard library, and the three
//! code metrics of it.
//!
//! 1. The corpus ([`code_corpus`](super::code_corpus)): the `*.py` files of the machine's
//!    `python3` standard library, split by file into train and held-out.
//! 2. A byte-level BPE tokenizer trained on the training files (`<|endoftext|>` separates
//!    documents).
//! 3. A small Llama trained from scratch with the [`Trainer`] on the training files, each
//!    after `<|endoftext|>`, packed into blocks of the model's context (`group_texts`).
//! 4. On the held-out files: bits per byte
//!    ([`bits_per_byte_of_texts`](crate::metrics::bits_per_byte_of_texts)), next-line exact
//!    match and the parse rate of generated function bodies (the definitions are in
//!    [`metrics`](crate::metrics), `code_completion`); printed, and written with the model and
//!    tokenizer to the output folder (`code_report.json`, `train_files.txt`,
//!    `held_out_files.txt`).
//!
//! `--quick` is a run of seconds for tests (a few dozen files, a 2-layer 64-wide model, 30
//! steps): it shows every step, not a model that writes code.
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::code_corpus::{CodeCorpus, load_corpus, stdlib_dir, write_split};
pub use super::code_eval::{CodeEvalSpec, CodeMetrics, code_metrics, held_out_functions};
use super::code_pretrained::{PretrainedReport, PretrainedSpec, run_pretrained};
use crate::data::Dataset;
use crate::models::{AutoModelForCausalLM, LlamaConfig, TokenIds};
use crate::tokenizer::{Tokenizer, TokenizerKind, TrainOptions};
use crate::train::{IntervalStrategy, SchedulerType, Steps, Trainer, TrainingArguments};
use crate::{Error, Result, io};

/// Where the corpus comes from and how it is split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorpusSpec {
    /// The interpreter whose standard library is the corpus.
    pub python: String,
    /// The folder itself, instead of asking `python`.
    pub stdlib: Option<PathBuf>,
    /// Files held out, in percent (by a hash of the path).
    pub held_out_percent: u64,
    /// At most this many training / held-out files, in path order (0: all).
    pub max_train_files: usize,
    pub max_held_out_files: usize,
    /// Files larger than this are left out (0: none).
    pub max_file_bytes: usize,
}

impl Default for CorpusSpec {
    fn default() -> Self {
        Self {
            python: "python3".into(),
            stdlib: None,
            held_out_percent: 10,
            max_train_files: 0,
            max_held_out_files: 40,
            max_file_bytes: 200_000,
        }
    }
}

/// The model trained from scratch (a Llama).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodeModelSpec {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// The context, and the length of the training blocks.
    pub max_position_embeddings: usize,
}

impl Default for CodeModelSpec {
    fn default() -> Self {
        Self {
            vocab_size: 4096,
            hidden_size: 256,
            intermediate_size: 704,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 256,
        }
    }
}

/// A whole code job (`[corpus]`, `[model]`, `[eval]`, `[training]`, `[pretrained]` in a TOML
/// file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodeJob {
    pub corpus: CorpusSpec,
    pub model: CodeModelSpec,
    pub eval: CodeEvalSpec,
    pub training: TrainingArguments,
    /// A pretrained model (GGUF) measured as read and after a LoRA fine-tune on the same data.
    pub pretrained: PretrainedSpec,
}

impl Default for CodeJob {
    /// The full run: every training file of the library (under 200 kB), 40 held-out files, a
    /// 4096-token BPE, a 4-layer 256-wide Llama with 256 positions, 2,000 steps of 16 blocks.
    fn default() -> Self {
        Self {
            corpus: CorpusSpec::default(),
            model: CodeModelSpec::default(),
            eval: CodeEvalSpec::default(),
            pretrained: PretrainedSpec::default(),
            training: TrainingArguments {
                output_dir: PathBuf::from("code-run"),
                max_steps: Some(2000),
                per_device_train_batch_size: 16,
                learning_rate: 1e-3,
                weight_decay: 0.1,
                adam_beta2: 0.95,
                warmup_steps: 100,
                lr_scheduler_type: SchedulerType::Cosine,
                logging_steps: Steps::Every(100),
                eval_strategy: IntervalStrategy::No,
                save_strategy: IntervalStrategy::No,
                seed: 1,
                ..Default::default()
            },
        }
    }
}

impl CodeJob {
    /// Seconds, for tests: 30 training and 4 held-out files of at most 20 kB, a 512-token BPE,
    /// a 2-layer 64-wide Llama with 64 positions, 30 steps, 8 next-line tasks and 4 bodies.
    pub fn quick() -> Self {
        let mut job = Self::default();
        job.corpus.max_train_files = 30;
        job.corpus.max_held_out_files = 4;
        job.corpus.max_file_bytes = 20_000;
        job.model = CodeModelSpec {
            vocab_size: 512,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 64,
        };
        job.eval = CodeEvalSpec {
            lines_per_function: 1,
            max_next_line_tasks: 8,
            next_line_max_new_tokens: 12,
            max_body_functions: 4,
            body_max_new_tokens: 24,
            batch_size: 8,
            context: 64,
        };
        job.pretrained = PretrainedSpec::quick(None);
        job.training.max_steps = Some(30);
        job.training.warmup_steps = 5;
        job.training.per_device_train_batch_size = 8;
        job.training.learning_rate = 3e-3;
        job.training.logging_steps = Steps::Every(10);
        job
    }

    /// Reads a TOML job file (missing tables and keys keep their defaults).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = io::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!(
                "{}; the file has [corpus], [model], [eval], [training] and [pretrained] tables",
                e.message()
            ),
        })
    }

    /// The job as TOML (`--print-config`).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| Error::InvalidArgument(format!("cannot write the job as TOML: {e}")))
    }

    /// The Llama of `model` over a vocabulary of `vocab_size`, `<|endoftext|>` as EOS.
    pub fn llama_config(&self, vocab_size: usize, eos: u32) -> LlamaConfig {
        let m = &self.model;
        LlamaConfig {
            hidden_size: m.hidden_size,
            intermediate_size: m.intermediate_size,
            num_hidden_layers: m.num_hidden_layers,
            num_attention_heads: m.num_attention_heads,
            num_key_value_heads: Some(m.num_key_value_heads),
            max_position_embeddings: m.max_position_embeddings,
            bos_token_id: Some(eos),
            eos_token_id: Some(TokenIds::One(eos)),
            ..LlamaConfig::small(vocab_size)
        }
    }

    /// The corpus folder: `corpus.stdlib`, else `corpus.python`'s standard library.
    pub fn corpus_dir(&self) -> Result<PathBuf> {
        match &self.corpus.stdlib {
            Some(d) => Ok(d.clone()),
            None => stdlib_dir(&self.corpus.python),
        }
    }
}

/// What a run of the job did and measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CodeReport {
    pub corpus_dir: String,
    pub train_files: usize,
    pub train_bytes: usize,
    pub held_out_files: usize,
    pub held_out_bytes: usize,
    pub held_out_functions: usize,
    pub vocab_size: usize,
    pub parameters: usize,
    pub steps: usize,
    pub train_loss: f64,
    pub train_seconds: f64,
    pub train_tokens_per_second: f64,
    pub metrics: CodeMetrics,
    pub eval_seconds: f64,
    /// The pretrained model as read and LoRA-tuned, when the job has one.
    pub pretrained: Option<PretrainedReport>,
}

impl CodeReport {
    /// The lines `massivetext code` prints.
    pub fn summary(&self) -> String {
        let m = &self.metrics;
        format!(
            "corpus: {} ({} training files, {} bytes; {} held-out files, {} bytes, {} functions)\n\
             model: Llama, {} parameters, vocabulary {}; {} steps, train loss {:.4}, {:.0} tokens/s, {:.1} s\n\
             bits per byte (held-out): {:.4} (loss {:.4} per token)\n\
             next-line exact match: {:.4} of {} tasks\n\
             parse rate of generated bodies: {:.4} of {}",
            self.corpus_dir,
            self.train_files,
            self.train_bytes,
            self.held_out_files,
            self.held_out_bytes,
            self.held_out_functions,
            self.parameters,
            self.vocab_size,
            self.steps,
            self.train_loss,
            self.train_tokens_per_second,
            self.train_seconds,
            m.bits_per_byte,
            m.loss_per_token,
            m.next_line_exact_match,
            m.next_line_tasks,
            m.parse_rate,
            m.bodies,
        ) + &self.table()
    }

    /// The three models side by side (only the scratch model's row without a pretrained one).
    pub fn table(&self) -> String {
        let row = |name: &str, m: &CodeMetrics| {
            format!(
                "\n{name:<24} {:>13.4} {:>21.4} {:>10.4}",
                m.bits_per_byte, m.next_line_exact_match, m.parse_rate
            )
        };
        let mut t = format!(
            "\n\n{:<24} {:>13} {:>21} {:>10}",
            "model", "bits per byte", "next-line exact match", "parse rate"
        );
        t += &row("Llama from scratch", &self.metrics);
        if let Some(p) = &self.pretrained {
            t += &row("pretrained (GGUF)", &p.base);
            t += &row("pretrained + LoRA", &p.lora);
            t += &format!(
                "\nLoRA: {} trainable of {} parameters; {} steps, train loss {:.4}, {:.0} tokens/s, {:.1} s",
                p.trainable_parameters,
                p.parameters,
                p.steps,
                p.train_loss,
                p.train_tokens_per_second,
                p.train_seconds
            );
        }
        t
    }
}

/// Runs the whole job on `device`, reporting progress lines to `log`; writes the model, the
/// tokenizer, the split and `code_report.json` into `training.output_dir`.
pub fn run_code_job(
    job: &CodeJob,
    device: &Device,
    mut log: impl FnMut(&str),
) -> Result<CodeReport> {
    let out_dir = &job.training.output_dir;
    let _lock = io::DirLock::beside(
        out_dir,
        &format!("the code job's folder {}", out_dir.display()),
    )?;
    if job.pretrained.gguf.is_some() {
        job.pretrained.model_file()?;
    }
    let dir = job.corpus_dir()?;
    let c = &job.corpus;
    let corpus = load_corpus(
        &dir,
        c.held_out_percent,
        c.max_train_files,
        c.max_held_out_files,
        c.max_file_bytes,
    )?;
    let functions = held_out_functions(&corpus)?;
    if functions.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the {} held-out files hold no Python function to complete; hold out more files (corpus.max_held_out_files)",
            corpus.held_out.len()
        )));
    }
    log(&format!(
        "corpus: {} training and {} held-out files ({} functions) from {}",
        corpus.train.len(),
        corpus.held_out.len(),
        functions.len(),
        dir.display()
    ));

    let t0 = Instant::now();
    let mut opts = TrainOptions::new(job.model.vocab_size);
    opts.show_progress = false;
    let tok = Tokenizer::train(
        TokenizerKind::Bpe,
        corpus.train.iter().map(|f| f.text.as_str()),
        &opts,
    )?;
    let eos = tok.eos_token_id().ok_or_else(|| {
        Error::InvalidArgument("the trained tokenizer has no <|endoftext|> token".into())
    })?;
    let eos_text = tok.id_to_token(eos).unwrap_or_default();
    log(&format!(
        "tokenizer: byte-level BPE, {} tokens in {:.1} s",
        tok.vocab_size(),
        t0.elapsed().as_secs_f64()
    ));

    // each file after <|endoftext|>, as bits per byte scores it
    let rows = corpus.train.iter().map(|f| {
        json!({"text": format!("{eos_text}{}", f.text)})
            .as_object()
            .cloned()
            .unwrap_or_default()
    });
    let blocks = Dataset::from_rows(rows)
        .tokenize(&tok, "text")?
        .group_texts(job.model.max_position_embeddings)?;
    let config = job.llama_config(tok.vocab_size(), eos);
    let model = AutoModelForCausalLM::from_config_seeded(config, device, job.training.seed)?;
    let parameters = model.num_parameters();
    log(&format!(
        "model: Llama {} layers, hidden {}, {} parameters; {} training blocks of {} tokens",
        job.model.num_hidden_layers,
        job.model.hidden_size,
        parameters,
        blocks.num_rows(),
        job.model.max_position_embeddings
    ));
    let mut trainer = Trainer::new(model, job.training.clone(), blocks)?;
    let out = trainer.train()?;
    let model = trainer.model().share();
    model.save_pretrained(out_dir)?;
    tok.save_pretrained(out_dir)?;
    write_split(&corpus, out_dir)?;

    let t1 = Instant::now();
    let metrics = code_metrics(&model, &tok, &corpus, &functions, &job.eval)?;
    let mut report = CodeReport {
        corpus_dir: dir.display().to_string(),
        train_files: corpus.train.len(),
        train_bytes: CodeCorpus::bytes(&corpus.train),
        held_out_files: corpus.held_out.len(),
        held_out_bytes: CodeCorpus::bytes(&corpus.held_out),
        held_out_functions: functions.len(),
        vocab_size: tok.vocab_size(),
        parameters,
        steps: out.global_step,
        train_loss: out.training_loss,
        train_seconds: out.train_runtime,
        train_tokens_per_second: out.tokens_per_second,
        metrics,
        eval_seconds: t1.elapsed().as_secs_f64(),
        pretrained: None,
    };
    log(&format!(
        "from scratch: bits per byte {:.4}, next-line exact match {:.4}, parse rate {:.4}",
        report.metrics.bits_per_byte,
        report.metrics.next_line_exact_match,
        report.metrics.parse_rate
    ));
    if job.pretrained.gguf.is_some() {
        report.pretrained = Some(run_pretrained(
            &job.pretrained,
            &job.training,
            &corpus,
            &functions,
            &job.eval,
            device,
            &mut log,
        )?);
    }
    io::write_json(&out_dir.join("code_report.json"), &report)?;
    Ok(report)
}
