//! The [`Trainer`]: one optimiser step at a time (`step`), or a whole run (`train`) with
//! logging, evaluation, checkpoints and progress.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::{IntervalStrategy, TrainingArguments, interval};
use super::collator::{
    Batch, Collator, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq,
    DataCollatorWithPadding, Example,
};
use super::data::{EpochOrder, TokenWindows, TrainData};
use super::optimizer::{AdamW, AdamWConfig, Grads};
use super::predict::{ComputeMetrics, EvalPrediction, Metrics, PredictionOutput, concat_padded};
use super::progress::{Progress, ProgressMode, fmt_rate};
use super::schedule::LrScheduler;
use super::state::{
    LogEntry, TrainerState, checkpoint_step, get_last_checkpoint, rotate_checkpoints,
    sweep_leftovers,
};
use crate::data::Dataset;
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::io::{self, read_json, write_json};
use crate::models::core::check_token_id;
use crate::models::{PreTrainedModel, Task};
use crate::viz::TrainingCurves;
use crate::{Error, Result};

/// The batch's mean loss: the model in training (dropout on, seeded by the batch, so a resumed
/// run draws the same masks) or evaluation mode. The clone shares the weights, so this is cheap.
pub fn compute_loss<M: PreTrainedModel>(model: &M, batch: &Batch, train: bool) -> Result<Tensor> {
    let mut m = model.clone();
    m.set_training(train);
    if train {
        m.set_seed(batch.dropout_seed);
    }
    m.loss_with(&batch.forward_args())
}

/// The collator a model's task calls for, from what the model knows: the causal collator for a
/// causal LM; for a masked LM an MLM collator with the config's vocabulary size and padding id
/// but no mask id (nothing in a model names its mask token), which refuses to collate with an
/// error saying to pass `with_tokenizer` or `with_collator` — never a causal collator, which
/// would teach a masked LM to copy its input.
fn default_collator<M: PreTrainedModel>(model: &M) -> DataCollatorForLanguageModeling {
    let config = model.config_json();
    let pad = config
        .get("pad_token_id")
        .and_then(Value::as_u64)
        .map(|p| p as u32);
    match model.task() {
        Task::MaskedLm => {
            let mut c = DataCollatorForLanguageModeling::causal(pad.unwrap_or(0));
            c.mlm = true;
            c.shift_labels = false;
            c.vocab_size = model.vocab_size().unwrap_or(0);
            c.special_token_ids = pad.into_iter().collect();
            c
        }
        _ => DataCollatorForLanguageModeling::causal(pad.unwrap_or(0)),
    }
}

/// Whether the model predicts one target per example (a class, an answer span), so that
/// batches come from [`DataCollatorWithPadding`].
fn is_task_model<M: PreTrainedModel>(model: &M) -> bool {
    matches!(
        model.task(),
        Task::SequenceClassification | Task::QuestionAnswering
    )
}

/// The config's `pad_token_id` (0 when it has none).
fn config_pad<M: PreTrainedModel>(model: &M) -> u32 {
    model
        .config_json()
        .get("pad_token_id")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u32
}

/// `DataCollatorWithPadding` with the config's `pad_token_id` (0 when it has none).
fn default_padding_collator<M: PreTrainedModel>(model: &M) -> DataCollatorWithPadding {
    DataCollatorWithPadding::new(config_pad(model))
}

/// Whether `compute_metrics` may produce any metric (a task model's, a seq2seq model's BLEU),
/// so `metric_for_best_model` is checked at the first evaluation instead of up front.
fn metrics_are_free<M: PreTrainedModel>(model: &M) -> bool {
    is_task_model(model) || model.task() == Task::Seq2SeqLm
}

fn collator_for_tokenizer<M: PreTrainedModel>(
    model: &M,
    tok: &crate::tokenizer::Tokenizer,
) -> Result<DataCollatorForLanguageModeling> {
    let base = default_collator(model);
    let pad = tok
        .pad_token_id()
        .or_else(|| tok.eos_token_id())
        .unwrap_or(base.pad_token_id);
    if model.task() != Task::MaskedLm {
        return Ok(DataCollatorForLanguageModeling::causal(pad));
    }
    let mask = tok.mask_token_id().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "the model is a masked language model but the tokenizer ({}) has no mask token; give it one (`add_special_tokens`) or pass `.with_collator(DataCollatorForLanguageModeling::mlm(..))`",
            tok.tokenizer_class()
        ))
    })?;
    let mut special: Vec<u32> = tok
        .special_tokens()
        .all()
        .iter()
        .filter_map(|t| tok.token_to_id(t))
        .collect();
    special.sort_unstable();
    special.dedup();
    let vocab = model.vocab_size().unwrap_or_else(|| tok.vocab_size());
    Ok(DataCollatorForLanguageModeling::mlm(
        mask, pad, vocab, special,
    ))
}

/// The metrics `evaluate()` logs, under which `metric_for_best_model` may name one.
pub const EVAL_METRICS: [&str; 2] = ["eval_loss", "eval_perplexity"];

/// Rejects a `metric_for_best_model` that evaluation never produces: it would never pick a
/// best checkpoint. Accepted as Hugging Face does, with or without the `eval_` prefix. A task
/// model's `compute_metrics` may produce any name, so its metric is checked at the first
/// evaluation instead.
fn check_best_metric(args: &TrainingArguments, task_model: bool) -> Result<()> {
    let Some(name) = &args.metric_for_best_model else {
        return Ok(());
    };
    if task_model {
        return Ok(());
    }
    let key = args.best_metric_key();
    if EVAL_METRICS.contains(&key.as_str()) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "TrainingArguments.metric_for_best_model: evaluation never produces `{name}`; it produces {} (also accepted without the `eval_` prefix: loss, perplexity)",
        EVAL_METRICS.join(", ")
    )))
}

/// Anything the Trainer can read examples from.
pub trait IntoTrainData {
    fn into_train_data(self) -> Result<TrainData>;
}

impl IntoTrainData for TrainData {
    fn into_train_data(self) -> Result<TrainData> {
        Ok(self)
    }
}
impl IntoTrainData for Dataset {
    fn into_train_data(self) -> Result<TrainData> {
        TrainData::from_dataset(&self)
    }
}
impl IntoTrainData for &Dataset {
    fn into_train_data(self) -> Result<TrainData> {
        TrainData::from_dataset(self)
    }
}
impl IntoTrainData for TokenWindows {
    fn into_train_data(self) -> Result<TrainData> {
        Ok(TrainData::Windows(self))
    }
}
impl IntoTrainData for Vec<Example> {
    fn into_train_data(self) -> Result<TrainData> {
        if self.is_empty() {
            return Err(Error::InvalidArgument(
                "no examples to train or evaluate on".into(),
            ));
        }
        Ok(TrainData::from(self))
    }
}

/// The result of one optimiser step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    pub step: usize,
    /// Token-weighted mean loss over the step's micro-batches.
    pub loss: f64,
    /// The learning rate this step used.
    pub learning_rate: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    pub num_tokens: usize,
}

/// The result of `evaluate()`.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOutput {
    pub eval_loss: f64,
    /// `exp(eval_loss)`; logged for language models only.
    pub eval_perplexity: f64,
    /// What `compute_metrics` returned, each name with the `eval_` prefix (`eval_accuracy`).
    pub metrics: Metrics,
    pub eval_runtime: f64,
    pub eval_samples: usize,
    pub eval_tokens: usize,
}

/// The result of `train()`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutput {
    pub global_step: usize,
    /// The optimiser steps this `train()` ran (fewer than `global_step` after a resume).
    pub steps_run: usize,
    /// The checkpoint this run resumed from, if it did.
    pub resumed_from: Option<PathBuf>,
    /// Mean loss over the steps this `train()` ran.
    pub training_loss: f64,
    pub train_runtime: f64,
    pub tokens_per_second: f64,
}

#[derive(Serialize, Deserialize)]
struct RngState {
    seed: u64,
    global_step: usize,
    model: Option<Value>,
}

/// Trains a [`PreTrainedModel`] with [`TrainingArguments`]: AdamW, a schedule, clipping,
/// accumulation, logging, evaluation and checkpoints.
#[derive(Clone)]
pub struct Trainer<M: PreTrainedModel> {
    model: M,
    args: TrainingArguments,
    train_data: TrainData,
    eval_data: Option<TrainData>,
    collator: DataCollatorForLanguageModeling,
    /// Task models (classification, QA) batch with this instead.
    padding_collator: Option<DataCollatorWithPadding>,
    /// Encoder–decoder models batch with this instead.
    seq2seq_collator: Option<DataCollatorForSeq2Seq>,
    compute_metrics: Option<ComputeMetrics>,
    optimizer: AdamW,
    scheduler: LrScheduler,
    state: TrainerState,
    order: EpochOrder,
    micro_per_epoch: usize,
    updates_per_epoch: usize,
    max_steps: usize,
    // since the last log
    log_loss_sum: f64,
    log_steps: usize,
    log_tokens: usize,
    log_start: Option<Instant>,
    last_tokens_per_s: f64,
    last_eval_improved: bool,
    /// Whether `prepare_output_dir` ran (train() runs it once, first).
    output_dir_ready: bool,
    /// The checkpoint `prepare_output_dir` resumed from.
    resumed_from: Option<PathBuf>,
}

impl<M: PreTrainedModel> Trainer<M> {
    /// A trainer for `model` on `train_dataset` (a [`Dataset`] with an `input_ids` column, or
    /// [`TokenWindows`]). The collator follows the model's task: the causal-LM collator for a
    /// causal LM; for a masked LM an MLM collator that still needs the mask token's id, so
    /// chain [`with_tokenizer`](Self::with_tokenizer) or [`with_collator`](Self::with_collator)
    /// (the first step says so otherwise). A `metric_for_best_model` that evaluation never
    /// produces ([`EVAL_METRICS`], with or without `eval_`) is an error here.
    pub fn new(
        model: M,
        args: TrainingArguments,
        train_dataset: impl IntoTrainData,
    ) -> Result<Self> {
        args.validate()?;
        let train_data = train_dataset.into_train_data()?;
        check_vocab(&model, &train_data)?;
        let bs = args.per_device_train_batch_size;
        let micro_per_epoch = train_data.len().div_ceil(bs).max(1);
        let updates_per_epoch = micro_per_epoch
            .div_ceil(args.gradient_accumulation_steps)
            .max(1);
        let max_steps = if args.max_steps > 0 {
            args.max_steps as usize
        } else {
            ((args.num_train_epochs * updates_per_epoch as f64).ceil() as usize).max(1)
        };
        let optimizer = AdamW::new(
            model.varmap(),
            AdamWConfig {
                lr: args.learning_rate,
                beta1: args.adam_beta1,
                beta2: args.adam_beta2,
                eps: args.adam_epsilon,
                weight_decay: args.weight_decay,
            },
        )?;
        let scheduler = LrScheduler::from_args(&args, max_steps)?;
        let state = TrainerState {
            logging_steps: interval(args.logging_steps, max_steps),
            eval_steps: interval(args.eval_steps.unwrap_or(args.logging_steps), max_steps),
            save_steps: interval(args.save_steps, max_steps),
            max_steps,
            num_train_epochs: (max_steps as f64 / updates_per_epoch as f64).ceil() as usize,
            train_batch_size: bs,
            ..Default::default()
        };
        check_best_metric(&args, metrics_are_free(&model))?;
        let collator = default_collator(&model).with_seed(args.seed);
        let padding_collator =
            is_task_model(&model).then(|| default_padding_collator(&model).with_seed(args.seed));
        let seq2seq_collator = (model.task() == Task::Seq2SeqLm)
            .then(|| DataCollatorForSeq2Seq::new(config_pad(&model)).with_seed(args.seed));
        let order = if args.group_by_length {
            EpochOrder::length_grouped(train_data.lengths(), bs)
        } else {
            EpochOrder::default()
        };
        Ok(Trainer {
            model,
            args,
            train_data,
            eval_data: None,
            collator,
            padding_collator,
            seq2seq_collator,
            compute_metrics: None,
            optimizer,
            scheduler,
            state,
            order,
            micro_per_epoch,
            updates_per_epoch,
            max_steps,
            log_loss_sum: 0.0,
            log_steps: 0,
            log_tokens: 0,
            log_start: None,
            last_tokens_per_s: 0.0,
            last_eval_improved: false,
            output_dir_ready: false,
            resumed_from: None,
        })
    }

    /// Adds an evaluation set (for `evaluate()` and `eval_strategy`).
    pub fn with_eval_dataset(mut self, eval_dataset: impl IntoTrainData) -> Result<Self> {
        let d = eval_dataset.into_train_data()?;
        check_vocab(&self.model, &d)?;
        self.eval_data = Some(d);
        Ok(self)
    }

    /// Builds the collator for the model's task from the tokenizer: for a masked LM, the MLM
    /// collator with the tokenizer's mask and padding ids and its special tokens never masked;
    /// for a causal LM, the causal collator padding with the tokenizer's pad (else eos) id.
    /// For a task model (classification, QA), `DataCollatorWithPadding` with the tokenizer's
    /// pad (else eos) id; for an encoder–decoder, `DataCollatorForSeq2Seq` with it.
    pub fn with_tokenizer(self, tokenizer: &crate::tokenizer::Tokenizer) -> Result<Self> {
        if self.model.task() == Task::Seq2SeqLm {
            let pad = tokenizer
                .pad_token_id()
                .unwrap_or_else(|| config_pad(&self.model));
            return self.with_collator(DataCollatorForSeq2Seq::new(pad));
        }
        if is_task_model(&self.model) {
            let pad = tokenizer
                .pad_token_id()
                .or_else(|| tokenizer.eos_token_id())
                .unwrap_or(0);
            return self.with_collator(DataCollatorWithPadding::new(pad));
        }
        let collator = collator_for_tokenizer(&self.model, tokenizer)?;
        self.with_collator(collator)
    }

    /// Replaces the collator: a [`DataCollatorForLanguageModeling`] (e.g. the MLM one) or a
    /// [`DataCollatorWithPadding`] (task examples). Its seed is taken from `args.seed` unless
    /// you changed it from the default 42.
    pub fn with_collator(mut self, collator: impl Into<Collator>) -> Result<Self> {
        let collator = collator.into();
        collator.validate()?;
        let seed = if collator.seed() == 42 {
            self.args.seed
        } else {
            collator.seed()
        };
        match collator.with_seed(seed) {
            Collator::LanguageModeling(c) => {
                self.collator = c;
                self.padding_collator = None;
                self.seq2seq_collator = None;
            }
            Collator::WithPadding(c) => {
                self.padding_collator = Some(c);
                self.seq2seq_collator = None;
            }
            Collator::Seq2Seq(c) => {
                self.seq2seq_collator = Some(c);
                self.padding_collator = None;
            }
        }
        Ok(self)
    }

    /// Metrics computed at each evaluation and by [`predict`](Self::predict) from every
    /// example's predictions (logits) and labels, as transformers' `compute_metrics`; they are
    /// logged with the `eval_` prefix, and `metric_for_best_model` may name any of them.
    ///
    /// ```no_run
    /// # use massivetext::prelude::*;
    /// # use massivetext::train::EvalPrediction;
    /// # fn f(trainer: Trainer<AutoModelForSequenceClassification>) -> Result<()> {
    /// let trainer = trainer.with_compute_metrics(|p: &EvalPrediction| {
    ///     let (preds, labels) = (p.argmax()?, p.labels()?);
    ///     Ok([("accuracy".to_string(), accuracy(&preds, &labels)?)].into())
    /// });
    /// # Ok(()) }
    /// ```
    pub fn with_compute_metrics(
        mut self,
        f: impl Fn(&EvalPrediction) -> Result<Metrics> + Send + Sync + 'static,
    ) -> Self {
        self.compute_metrics = Some(std::sync::Arc::new(f));
        self
    }

    /// Collates with the task collator when there is one.
    fn collate(
        &self,
        examples: &[Example],
        stream: u64,
        device: &candle_core::Device,
    ) -> Result<Batch> {
        if let Some(c) = &self.seq2seq_collator {
            return c.collate(examples, stream, device);
        }
        match &self.padding_collator {
            Some(c) => c.collate(examples, stream, device),
            None => self.collator.collate(examples, stream, device),
        }
    }

    /// The collator an encoder–decoder batches with (`None` for other models).
    pub fn seq2seq_collator(&self) -> Option<&DataCollatorForSeq2Seq> {
        self.seq2seq_collator.as_ref()
    }

    /// The settings `predict_with_generate` generates with: the model's generation config,
    /// with `generation_max_length` and `generation_num_beams` from the arguments when set.
    pub fn generation_config(&self) -> GenerationConfig {
        let mut c = self.model.generation_config();
        if let Some(n) = self.args.generation_max_length {
            c.max_new_tokens = n.saturating_sub(1).max(1);
        }
        if let Some(n) = self.args.generation_num_beams {
            c.num_beams = n.max(1);
            c.num_return_sequences = 1;
        }
        c
    }

    /// The collator a task model batches with (`None` for language models).
    pub fn padding_collator(&self) -> Option<&DataCollatorWithPadding> {
        self.padding_collator.as_ref()
    }

    pub fn model(&self) -> &M {
        &self.model
    }
    /// The collator batches are built with (see [`with_collator`](Self::with_collator)).
    pub fn collator(&self) -> &DataCollatorForLanguageModeling {
        &self.collator
    }
    pub fn args(&self) -> &TrainingArguments {
        &self.args
    }
    pub fn state(&self) -> &TrainerState {
        &self.state
    }
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }
    pub fn scheduler(&self) -> &LrScheduler {
        &self.scheduler
    }
    /// The number of optimiser steps `train()` runs to.
    pub fn max_steps(&self) -> usize {
        self.max_steps
    }
    pub fn global_step(&self) -> usize {
        self.state.global_step
    }
    /// Every log entry so far (`loss`, `learning_rate`, `grad_norm`, `eval_loss`, `step`, `epoch`).
    pub fn log_history(&self) -> &[LogEntry] {
        &self.state.log_history
    }

    /// The examples of micro-batch `k` of the current optimiser step.
    fn micro_batches(&mut self, step: usize) -> Vec<(Vec<Example>, u64)> {
        let accum = self.args.gradient_accumulation_steps;
        let epoch = step / self.updates_per_epoch;
        let u = step % self.updates_per_epoch;
        let lo = u * accum;
        let hi = ((u + 1) * accum).min(self.micro_per_epoch);
        let bs = self.args.per_device_train_batch_size;
        (lo..hi)
            .map(|m| {
                let ex = self
                    .train_data
                    .train_batch(self.args.seed, epoch, m, bs, &mut self.order);
                let stream = ((epoch as u64) << 40) | m as u64;
                (ex, stream)
            })
            .filter(|(ex, _)| !ex.is_empty())
            .collect()
    }

    /// One optimiser update: forward and backward over `gradient_accumulation_steps`
    /// micro-batches (each weighted by its share of the labelled tokens, so the update equals
    /// that of one big batch), clipping, AdamW at the scheduled learning rate, then logging,
    /// evaluation and saving as the arguments ask. A NaN or infinite loss stops with an error
    /// before any parameter changes.
    pub fn step(&mut self) -> Result<StepOutput> {
        let step = self.state.global_step;
        let device = self.model.device().clone();
        let started = Instant::now();
        let batches = self
            .micro_batches(step)
            .into_iter()
            .map(|(ex, stream)| self.collate(&ex, stream, &device))
            .collect::<Result<Vec<Batch>>>()?;
        let total: usize = batches.iter().map(|b| b.num_label_tokens).sum();
        if total == 0 {
            return Err(Error::InvalidArgument(format!(
                "step {}: the batch has no labelled tokens (every label is -100); check the collator and the data",
                step + 1
            )));
        }
        let mut grads = Grads::default();
        let mut loss_sum = 0.0f64;
        let mut input_tokens = 0;
        for b in &batches {
            input_tokens += b.num_input_tokens;
            if b.num_label_tokens == 0 {
                continue;
            }
            let loss = compute_loss(&self.model, b, true)?;
            let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                return Err(self.non_finite("loss", value, step + 1));
            }
            let w = b.num_label_tokens as f64 / total as f64;
            loss_sum += value * w;
            let g = loss.backward()?;
            grads.add_scaled(self.optimizer.grads(&g), w as f32)?;
        }
        let grad_norm = grads.clip_grad_norm(self.args.max_grad_norm)?;
        if !grad_norm.is_finite() {
            return Err(self.non_finite("gradient norm", grad_norm, step + 1));
        }
        let lr = self.scheduler.get_last_lr();
        self.optimizer.config.lr = lr;
        self.optimizer.step_grads(&grads)?;
        self.scheduler.step();
        self.state.global_step += 1;
        self.state.epoch = self.state.global_step as f64 / self.updates_per_epoch as f64;
        self.state.num_input_tokens_seen += input_tokens as u64;

        self.log_start.get_or_insert(started);
        self.log_loss_sum += loss_sum;
        self.log_steps += 1;
        self.log_tokens += input_tokens;
        let out = StepOutput {
            step: self.state.global_step,
            loss: loss_sum,
            learning_rate: lr,
            grad_norm,
            num_tokens: input_tokens,
        };
        self.after_step(&out, None)?;
        Ok(out)
    }

    fn non_finite(&self, what: &str, value: f64, step: usize) -> Error {
        Error::NonFiniteLoss {
            what: what.to_string(),
            value,
            step,
            last_checkpoint: get_last_checkpoint(&self.args.output_dir)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none saved yet".to_string()),
        }
    }

    /// Logging, evaluation and saving after step `out.step`.
    fn after_step(&mut self, out: &StepOutput, progress: Option<&Progress>) -> Result<()> {
        let step = out.step;
        let a = &self.args;
        let epoch_end = step.is_multiple_of(self.updates_per_epoch);
        let due = |strategy: IntervalStrategy, every: usize| match strategy {
            IntervalStrategy::No => false,
            IntervalStrategy::Steps => step.is_multiple_of(every.max(1)),
            IntervalStrategy::Epoch => epoch_end,
        };
        let last = step == self.max_steps;
        let log_now = due(a.logging_strategy, self.state.logging_steps)
            || (a.logging_first_step && step == 1)
            || (last && a.logging_strategy != IntervalStrategy::No && self.log_steps > 0);
        let eval_now = self.eval_data.is_some() && due(a.eval_strategy, self.state.eval_steps);
        let save_now = due(a.save_strategy, self.state.save_steps);
        if log_now {
            let loss = self.log_loss_sum / self.log_steps.max(1) as f64;
            let secs = self
                .log_start
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            self.last_tokens_per_s = if secs > 0.0 {
                self.log_tokens as f64 / secs
            } else {
                0.0
            };
            let mut e = LogEntry::new();
            e.insert("loss".into(), json!(loss));
            e.insert("grad_norm".into(), json!(out.grad_norm));
            e.insert("learning_rate".into(), json!(self.scheduler.get_last_lr()));
            e.insert("epoch".into(), json!(self.state.epoch));
            e.insert("step".into(), json!(step));
            self.state.log_history.push(e);
            if let Some(p) = progress {
                p.log_line(
                    step,
                    loss,
                    self.scheduler.get_last_lr(),
                    out.grad_norm,
                    self.last_tokens_per_s,
                );
            }
            self.log_loss_sum = 0.0;
            self.log_steps = 0;
            self.log_tokens = 0;
            self.log_start = None;
        }
        if eval_now {
            let ev = self.evaluate()?;
            if let Some(p) = progress {
                p.message(&format!(
                    "step {step}: eval_loss {:.4} | perplexity {:.2}",
                    ev.eval_loss, ev.eval_perplexity
                ));
            }
        }
        if save_now {
            let dir = self.save_checkpoint()?;
            if let Some(p) = progress {
                p.message(&format!("saved {}", dir.display()));
            }
        }
        Ok(())
    }

    /// What `train()` does first, before it writes anything (call it yourself to write files of
    /// your own into `output_dir` after the check): removes what a killed or failed run left
    /// (`tmp-checkpoint-*`, `.deleting-*`, `*.tmp`); then resumes from
    /// `args.resume_from_checkpoint` when set, or else refuses an `output_dir` that is not empty
    /// ([`Error::OutputDirNotEmpty`]) unless `args.overwrite_output_dir`, which deletes its
    /// `checkpoint-N` folders (so `"latest"` can only mean this run's). A trainer that already
    /// stepped is left as it is. Returns the checkpoint resumed from.
    pub fn prepare_output_dir(&mut self) -> Result<Option<PathBuf>> {
        if self.output_dir_ready {
            return Ok(self.resumed_from.clone());
        }
        let out = self.args.output_dir.clone();
        let swept = sweep_leftovers(&out)?;
        if !swept.is_empty() && !self.args.disable_tqdm {
            eprintln!(
                "removed what an interrupted run left in {}: {}",
                out.display(),
                swept
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if self.state.global_step == 0 {
            if let Some(r) = self.args.resume_from_checkpoint.clone() {
                let dir = self.resume_from_checkpoint(&r)?;
                self.resumed_from = Some(dir);
            } else {
                let mut found: Vec<String> = std::fs::read_dir(&out)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| {
                                let n = e.file_name().to_string_lossy().into_owned();
                                if e.path().is_dir() { n + "/" } else { n }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if !found.is_empty() {
                    if !self.args.overwrite_output_dir {
                        found.sort();
                        let shown = found.len().min(6);
                        let mut list = found[..shown].join(", ");
                        if found.len() > shown {
                            list += &format!(" and {} more", found.len() - shown);
                        }
                        return Err(Error::OutputDirNotEmpty {
                            dir: out,
                            found: list,
                        });
                    }
                    for cp in super::state::sorted_checkpoints(&out) {
                        io::remove_dir_atomic(&cp)?;
                    }
                }
            }
        }
        self.output_dir_ready = true;
        Ok(self.resumed_from.clone())
    }

    /// Runs `step()` until `max_steps`, with progress. First (once) [`prepare_output_dir`]
    /// (Self::prepare_output_dir): leftovers swept, then a resume when
    /// `args.resume_from_checkpoint` is set, else a non-empty `output_dir` refused unless
    /// `args.overwrite_output_dir`. Writes `trainer_state.json` to `output_dir` at the end.
    pub fn train(&mut self) -> Result<TrainOutput> {
        let resumed_from = self.prepare_output_dir()?;
        let start_step = self.state.global_step;
        let progress = Progress::new(
            ProgressMode::detect(self.args.disable_tqdm),
            start_step,
            self.max_steps,
        );
        if let Some(dir) = &resumed_from
            && !self.args.disable_tqdm
        {
            progress.message(&format!(
                "resumed from {} at step {start_step}",
                dir.file_name().unwrap_or(dir.as_os_str()).to_string_lossy()
            ));
        }
        let t0 = Instant::now();
        let mut loss_total = 0.0;
        let mut tokens = 0usize;
        while self.state.global_step < self.max_steps {
            // step() without its own after_step, so progress lines interleave correctly.
            let out = self.step_quiet()?;
            loss_total += out.loss;
            tokens += out.num_tokens;
            let tps = tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            progress.update(out.step, out.loss, out.learning_rate, tps);
            self.after_step(&out, Some(&progress))?;
        }
        progress.finish();
        let runtime = t0.elapsed().as_secs_f64();
        let steps = self.state.global_step - start_step;
        let training_loss = if steps > 0 {
            loss_total / steps as f64
        } else {
            0.0
        };
        if self.args.load_best_model_at_end
            && let Some(best) = self.state.best_model_checkpoint.clone()
        {
            self.load_model_weights(&PathBuf::from(&best).join("model.safetensors"))?;
            progress.message(&format!("loaded the best model from {best}"));
        }
        let mut e = LogEntry::new();
        e.insert("train_runtime".into(), json!(runtime));
        e.insert(
            "train_tokens_per_second".into(),
            json!(tokens as f64 / runtime.max(1e-9)),
        );
        e.insert("train_loss".into(), json!(training_loss));
        e.insert("epoch".into(), json!(self.state.epoch));
        e.insert("step".into(), json!(self.state.global_step));
        self.state.log_history.push(e);
        self.save_state()?;
        if !self.args.disable_tqdm {
            progress.message(&format!(
                "trained {steps} steps in {runtime:.1}s ({} tok/s), train_loss {training_loss:.4}",
                fmt_rate(tokens as f64 / runtime.max(1e-9))
            ));
        }
        Ok(TrainOutput {
            global_step: self.state.global_step,
            steps_run: steps,
            resumed_from,
            training_loss,
            train_runtime: runtime,
            tokens_per_second: tokens as f64 / runtime.max(1e-9),
        })
    }

    /// `step()` minus logging/eval/saving (train() does those with progress attached).
    fn step_quiet(&mut self) -> Result<StepOutput> {
        let saved = std::mem::replace(&mut self.args.logging_strategy, IntervalStrategy::No);
        let eval = std::mem::replace(&mut self.args.eval_strategy, IntervalStrategy::No);
        let save = std::mem::replace(&mut self.args.save_strategy, IntervalStrategy::No);
        let first = std::mem::replace(&mut self.args.logging_first_step, false);
        let out = self.step();
        self.args.logging_strategy = saved;
        self.args.eval_strategy = eval;
        self.args.save_strategy = save;
        self.args.logging_first_step = first;
        out
    }

    /// Evaluates on the eval dataset: token-weighted mean loss (`eval_loss`) and its
    /// exponential (`eval_perplexity`); appended to `log_history`.
    pub fn evaluate(&mut self) -> Result<EvalOutput> {
        let data = self.eval_data.clone().ok_or_else(|| {
            Error::InvalidArgument(
                "no evaluation dataset; add one with Trainer::with_eval_dataset".into(),
            )
        })?;
        let ev = self.evaluate_on(&data)?;
        let key = self.args.best_metric_key();
        let mut e = LogEntry::new();
        e.insert("eval_loss".into(), json!(ev.eval_loss));
        if !is_task_model(&self.model) {
            e.insert("eval_perplexity".into(), json!(ev.eval_perplexity));
        }
        for (k, v) in &ev.metrics {
            e.insert(k.clone(), json!(v));
        }
        if self.args.metric_for_best_model.is_some() && !e.contains_key(&key) {
            let mut have: Vec<&String> = e.keys().collect();
            have.sort();
            return Err(Error::InvalidArgument(format!(
                "TrainingArguments.metric_for_best_model is `{key}`, which evaluation did not produce; it produced {}; name one of them, or return it from compute_metrics",
                have.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        e.insert("eval_runtime".into(), json!(ev.eval_runtime));
        e.insert(
            "eval_samples_per_second".into(),
            json!(ev.eval_samples as f64 / ev.eval_runtime.max(1e-9)),
        );
        e.insert("epoch".into(), json!(self.state.epoch));
        e.insert("step".into(), json!(self.state.global_step));
        let metric = e.get(&key).and_then(|v| v.as_f64());
        self.state.log_history.push(e);
        self.last_eval_improved = false;
        if let Some(m) = metric {
            let better = match self.state.best_metric {
                None => true,
                Some(b) if self.args.greater_is_better() => m > b,
                Some(b) => m < b,
            };
            if better {
                self.state.best_metric = Some(m);
                self.state.best_global_step = Some(self.state.global_step);
                self.last_eval_improved = true;
            }
        }
        Ok(ev)
    }

    /// Evaluates on any data without touching the log: the loss, and with `compute_metrics`
    /// its metrics (with the `eval_` prefix).
    pub fn evaluate_on(&self, data: &TrainData) -> Result<EvalOutput> {
        let t0 = Instant::now();
        let examples = data.eval_examples();
        let want = self.compute_metrics.is_some();
        let run = self.run_eval(&examples, want)?;
        let n = run.loss_weight;
        if n == 0 {
            return Err(Error::InvalidArgument(
                "the evaluation data has no labelled tokens".into(),
            ));
        }
        let eval_loss = run.loss_sum / n as f64;
        let metrics = match (&self.compute_metrics, run.predictions, run.labels) {
            (Some(f), Some(predictions), Some(label_ids)) => f(&EvalPrediction {
                predictions,
                label_ids,
            })?
            .into_iter()
            .map(|(k, v)| (prefixed("eval", &k), v))
            .collect(),
            _ => Metrics::new(),
        };
        Ok(EvalOutput {
            eval_loss,
            eval_perplexity: eval_loss.exp(),
            metrics,
            eval_runtime: t0.elapsed().as_secs_f64(),
            eval_samples: examples.len(),
            eval_tokens: n,
        })
    }

    /// One pass over `examples` in evaluation mode: the label-weighted loss sum, and (when
    /// `gather`) every example's logits (or, with `predict_with_generate`, generated token
    /// ids) and labels on the CPU.
    fn run_eval(&self, examples: &[Example], gather: bool) -> Result<EvalRun> {
        let device = self.model.device().clone();
        let bs = self.args.per_device_eval_batch_size;
        let model = self.model.eval_copy();
        let mut run = EvalRun::default();
        let (mut preds, mut labels) = (Vec::new(), Vec::new());
        let generate = gather && self.args.predict_with_generate && model.is_encoder_decoder();
        let gen_config = generate.then(|| self.generation_config());
        for (k, chunk) in examples.chunks(bs).enumerate() {
            let b = self.collate(chunk, u64::MAX - k as u64, &device)?;
            let args = b.forward_args();
            let out = if b.labelled || !model.is_encoder_decoder() {
                Some(model.forward_with(&args)?)
            } else {
                // an encoder-decoder without targets has no decoder inputs to score
                None
            };
            if b.num_label_tokens > 0
                && let Some(loss) = out.as_ref().and_then(|o| o.loss.as_ref())
            {
                let v = loss.detach().to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
                run.loss_sum += v * b.num_label_tokens as f64;
                run.loss_weight += b.num_label_tokens;
            }
            if gather {
                let cpu = candle_core::Device::Cpu;
                let p = match (&gen_config, &out) {
                    (Some(g), _) => {
                        let mut a = args.clone();
                        a.labels = None;
                        model.generate_with(&a, g)?.to_dtype(DType::I64)?
                    }
                    (None, Some(o)) => o.logits.detach().to_dtype(DType::F32)?,
                    (None, None) => {
                        return Err(Error::InvalidArgument(
                            "an encoder-decoder predicts unlabelled examples by generating: set TrainingArguments.predict_with_generate".into(),
                        ));
                    }
                };
                preds.push(p.to_device(&cpu)?);
                run.unlabelled |= !b.labelled;
                labels.push(b.labels.to_device(&cpu)?);
            }
        }
        if gather && !preds.is_empty() {
            run.predictions = Some(concat_padded(&preds)?);
            if !run.unlabelled {
                run.labels = Some(concat_padded(&labels)?);
            }
        }
        Ok(run)
    }

    /// Predictions on `data` (transformers' `Trainer.predict`): every example's logits, its
    /// labels, and `test_loss` plus `compute_metrics`'s metrics with the `test_` prefix.
    pub fn predict(&self, data: impl IntoTrainData) -> Result<PredictionOutput> {
        let t0 = Instant::now();
        let data = data.into_train_data()?;
        check_vocab(&self.model, &data)?;
        let examples = data.eval_examples();
        let run = self.run_eval(&examples, true)?;
        let predictions = run
            .predictions
            .ok_or_else(|| Error::InvalidArgument("no examples to predict".into()))?;
        let label_ids = run.labels;
        let mut metrics = Metrics::new();
        if run.loss_weight > 0 && label_ids.is_some() {
            metrics.insert("test_loss".into(), run.loss_sum / run.loss_weight as f64);
        }
        if let (Some(f), Some(l)) = (&self.compute_metrics, &label_ids) {
            let m = f(&EvalPrediction {
                predictions: predictions.clone(),
                label_ids: l.clone(),
            })?;
            metrics.extend(m.into_iter().map(|(k, v)| (prefixed("test", &k), v)));
        }
        metrics.insert("test_runtime".into(), t0.elapsed().as_secs_f64());
        Ok(PredictionOutput {
            predictions,
            label_ids,
            metrics,
        })
    }

    /// Saves the model (`config.json`, `model.safetensors`) to `output_dir`.
    pub fn save_model(&self) -> Result<()> {
        self.save_model_to(&self.args.output_dir)
    }

    /// Saves the model to `dir` (created if needed).
    pub fn save_model_to(&self, dir: &Path) -> Result<()> {
        create_dir(dir)?;
        self.model.save_pretrained(dir)?;
        write_json(&dir.join("training_args.json"), &self.args)
    }

    /// Writes `output_dir/trainer_state.json`, and `log_history.json` (the list of log entries,
    /// for a loss-curve plotter) to `logging_dir` when it is set.
    pub fn save_state(&self) -> Result<()> {
        create_dir(&self.args.output_dir)?;
        self.state
            .save_to_json(&self.args.output_dir.join("trainer_state.json"))?;
        if let Some(dir) = &self.args.logging_dir {
            create_dir(dir)?;
            write_json(&dir.join("log_history.json"), &self.state.log_history)?;
        }
        Ok(())
    }

    /// Writes `output_dir/checkpoint-N/` (through `tmp-checkpoint-N` and a rename) and prunes
    /// old checkpoints by `save_total_limit`, keeping the newest and the best. A failed write
    /// removes `tmp-checkpoint-N` and leaves the checkpoints already there as they were; no
    /// folder named `checkpoint-N` is ever incomplete (a replaced or pruned one is renamed to
    /// `.deleting-checkpoint-N` before it is removed).
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        let out = self.args.output_dir.clone();
        create_dir(&out)?;
        let name = format!("checkpoint-{}", self.state.global_step);
        let tmp = out.join(format!("tmp-{name}"));
        let dir = out.join(&name);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|source| io::write_error(&tmp, source))?;
        }
        let previous_best = self.state.best_model_checkpoint.clone();
        if self.last_eval_improved {
            self.state.best_model_checkpoint = Some(dir.display().to_string());
        }
        let written = create_dir(&tmp).and_then(|_| self.write_checkpoint_files(&tmp));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            self.state.best_model_checkpoint = previous_best;
            return Err(e);
        }
        self.last_eval_improved = false;
        let aside = out.join(format!(".deleting-{name}"));
        let replaced = dir.exists();
        if replaced {
            io::rename(&dir, &aside)?;
        }
        io::rename(&tmp, &dir)?;
        if replaced {
            std::fs::remove_dir_all(&aside).map_err(|source| io::write_error(&aside, source))?;
        }
        if let Some(limit) = self.args.save_total_limit {
            let best = self.state.best_model_checkpoint.clone().map(PathBuf::from);
            rotate_checkpoints(&out, limit, best.as_deref())?;
        }
        Ok(dir)
    }

    /// The files of a checkpoint, into `tmp`.
    fn write_checkpoint_files(&self, tmp: &Path) -> Result<()> {
        self.model.save_pretrained(tmp)?;
        self.optimizer.save(&tmp.join("optimizer.safetensors"))?;
        write_json(&tmp.join("scheduler.json"), &self.scheduler)?;
        write_json(
            &tmp.join("rng_state.json"),
            &RngState {
                seed: self.args.seed,
                global_step: self.state.global_step,
                // dropout masks follow each batch's seed: nothing else to restore
                model: None,
            },
        )?;
        write_json(&tmp.join("training_args.json"), &self.args)?;
        self.state.save_to_json(&tmp.join("trainer_state.json"))
    }

    /// Restores model, optimiser, scheduler, RNG and trainer state from `checkpoint`: a
    /// `checkpoint-N` folder, or `"latest"` for the newest in `output_dir`. Training then
    /// continues exactly as if it had not stopped.
    pub fn resume_from_checkpoint(&mut self, checkpoint: &str) -> Result<PathBuf> {
        let dir = if checkpoint == "latest" || checkpoint == "true" {
            get_last_checkpoint(&self.args.output_dir).ok_or_else(|| Error::Checkpoint {
                path: self.args.output_dir.clone(),
                message: "no checkpoint-N folder to resume from; train with save_steps first"
                    .into(),
            })?
        } else {
            PathBuf::from(checkpoint)
        };
        if !dir.is_dir() {
            return Err(Error::Checkpoint {
                path: dir,
                message: "is not a checkpoint folder; give output_dir/checkpoint-N or \"latest\""
                    .into(),
            });
        }
        let state = TrainerState::load_from_json(&dir.join("trainer_state.json"))?;
        let sched: LrScheduler = read_json(&dir.join("scheduler.json"))?;
        // read to check the checkpoint is whole; dropout follows each batch's own seed
        let rng: RngState = read_json(&dir.join("rng_state.json"))?;
        // Checked before anything changes: a step count the folder's files disagree on, or
        // nothing left to train.
        let step = state.global_step;
        let named = checkpoint_step(&dir);
        if named.is_some_and(|n| n != step) || rng.global_step != step || sched.last_step != step {
            return Err(Error::Checkpoint {
                path: dir.join("trainer_state.json"),
                message: format!(
                    "global_step {step} disagrees with the checkpoint (folder step {}, rng_state.json {}, scheduler.json {}); the checkpoint is damaged: resume from another checkpoint-N folder, or start over with --overwrite-output-dir",
                    named.map_or("-".to_string(), |n| n.to_string()),
                    rng.global_step,
                    sched.last_step
                ),
            });
        }
        if step >= self.max_steps {
            return Err(Error::Checkpoint {
                path: dir.clone(),
                message: format!(
                    "this checkpoint is at step {step} and max_steps is {}: nothing is left to train, so nothing was changed; raise --max-steps (max_steps) above {step} to train further (the model of that run is in this folder)",
                    self.max_steps
                ),
            });
        }
        self.load_model_weights(&dir.join("model.safetensors"))?;
        self.optimizer.load(&dir.join("optimizer.safetensors"))?;
        self.scheduler.last_step = sched.last_step;
        self.state = TrainerState {
            max_steps: self.max_steps,
            ..state
        };
        self.log_loss_sum = 0.0;
        self.log_steps = 0;
        self.log_tokens = 0;
        self.log_start = None;
        Ok(dir)
    }

    /// Sets every model parameter from a safetensors file, by name.
    fn load_model_weights(&self, path: &Path) -> Result<()> {
        let device = self.model.device().clone();
        let tensors =
            candle_core::safetensors::load(path, &device).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("cannot read the weights: {e}"),
            })?;
        load_varmap(self.model.varmap(), &tensors, path)
    }

    /// The training curves of `log_history` (loss raw and smoothed, eval loss, learning rate,
    /// grad norm; renders inline in a notebook). The same chart as
    /// [`TrainingCurves::from_state`], so it takes the same options (`log_scale`, `title`, …).
    pub fn loss_curve(&self) -> Result<TrainingCurves> {
        Ok(TrainingCurves::from_state(&self.state))
    }

    /// A one-line summary of where training stands.
    pub fn summary(&self) -> String {
        let last = |k: &str| {
            self.state
                .log_history
                .iter()
                .rev()
                .find_map(|e| e.get(k).and_then(|v| v.as_f64()))
        };
        let mut s = format!(
            "Trainer: step {}/{} (epoch {:.2}), lr {:.3e}",
            self.state.global_step,
            self.max_steps,
            self.state.epoch,
            self.scheduler.get_last_lr()
        );
        if let Some(l) = last("loss") {
            s += &format!(", loss {l:.4}");
        }
        if let Some(l) = last("eval_loss") {
            s += &format!(", eval_loss {l:.4}");
        }
        s
    }

    /// Renders a summary and the loss curve inline in evcxr.
    pub fn evcxr_display(&self) {
        let mut html = format!(
            "<div><b>{}</b>",
            crate::display::escape_html(&self.summary())
        );
        if let Ok(svg) = self.loss_curve().and_then(|c| c.to_svg())
            && !self.state.log_history.is_empty()
        {
            html += &svg;
        }
        html += "</div>";
        crate::display::emit("text/html", &html);
    }
}

/// What one evaluation pass gathered.
#[derive(Default)]
struct EvalRun {
    /// Some batch had no labels.
    unlabelled: bool,
    loss_sum: f64,
    loss_weight: usize,
    predictions: Option<Tensor>,
    labels: Option<Tensor>,
}

/// `eval_accuracy` from `accuracy` (a name already prefixed is kept).
fn prefixed(prefix: &str, name: &str) -> String {
    if name.starts_with(&format!("{prefix}_")) {
        name.to_string()
    } else {
        format!("{prefix}_{name}")
    }
}

/// Sets each `VarMap` variable from `tensors` by name (shapes checked).
pub(crate) fn load_varmap(
    varmap: &VarMap,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::InvalidArgument("the model's VarMap lock is poisoned".into()))?;
    for (name, var) in data.iter() {
        let t = tensors.get(name).ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("weight `{name}` is missing; the checkpoint belongs to another model"),
        })?;
        if t.dims() != var.dims() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!(
                    "weight `{name}` has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                ),
            });
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<()> {
    io::create_dir_all(dir)
}

fn check_vocab<M: PreTrainedModel>(model: &M, data: &TrainData) -> Result<()> {
    match (model.vocab_size(), data.max_token_id()) {
        (Some(v), Some(max)) => check_token_id(max, v),
        _ => Ok(()),
    }
}
