//! The [`Trainer`]: one optimiser step at a time (`step`), or a whole run (`train`) with
//! logging, evaluation, checkpoints and progress.
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::{DType, Tensor};
use serde_json::json;

use super::args::{IntervalStrategy, TrainingArguments};
use super::callbacks::{TrainerCallback, TrainerControl};
use super::collator::{
    Batch, Collator, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq,
    DataCollatorWithPadding, Example,
};
use super::data::{EpochOrder, TokenWindows, TrainData};
use super::log_history::LogHistory;
use super::optimizer::{AdamW, AdamWConfig, Grads};
use super::policy::{check_best_metric, collator_for, collator_for_tokenizer, metrics_are_free};
use super::predict::{ComputeMetrics, EvalPrediction, Metrics};
use super::progress::{Progress, ProgressMode, fmt_rate};
use super::schedule::LrScheduler;
use super::state::{LogEntry, TrainerState, get_last_checkpoint};
use crate::data::Dataset;
use crate::dist::{self, Reduce, World};
use crate::models::PreTrainedModel;
use crate::models::layers::check_token_id;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The batch's mean loss: the model in training (dropout on, seeded by the batch, so a resumed
/// run draws the same masks) or evaluation mode. The handle shares the weights
/// ([`PreTrainedModel::share`]), so this is cheap and the gradients reach the model's own.
pub fn compute_loss<M: PreTrainedModel>(model: &M, batch: &Batch, train: bool) -> Result<Tensor> {
    let mut m = model.share();
    m.set_training(train);
    if train {
        m.set_seed(batch.dropout_seed);
    }
    m.loss_with(&batch.forward_args())
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

/// Trains a [`PreTrainedModel`] with [`TrainingArguments`]: AdamW, a schedule, clipping,
/// accumulation, logging, evaluation and checkpoints.
#[derive(Clone)]
pub struct Trainer<M: PreTrainedModel> {
    pub(super) model: M,
    pub(super) args: TrainingArguments,
    pub(super) train_data: TrainData,
    pub(super) eval_data: Option<TrainData>,
    /// What batches are built with: chosen from the model's task when the trainer is built
    /// (`train/policy.rs`), replaced whole by `with_tokenizer` / `with_collator`.
    pub(super) collator: Collator,
    pub(super) compute_metrics: Option<ComputeMetrics>,
    pub(super) optimizer: AdamW,
    pub(super) scheduler: LrScheduler,
    pub(super) state: TrainerState,
    pub(super) order: EpochOrder,
    pub(super) updates_per_epoch: usize,
    pub(super) max_steps: usize,
    // since the last log
    pub(super) log_loss_sum: f64,
    pub(super) log_steps: usize,
    pub(super) log_tokens: usize,
    pub(super) log_start: Option<Instant>,
    pub(super) last_tokens_per_s: f64,
    pub(super) last_eval_improved: bool,
    /// Whether `prepare_output_dir` ran (train() runs it once, first).
    pub(super) output_dir_ready: bool,
    /// The checkpoint `prepare_output_dir` resumed from.
    pub(super) resumed_from: Option<PathBuf>,
    /// The user's callbacks, called in the order they were added.
    pub(super) callbacks: Vec<Box<dyn TrainerCallback>>,
    /// What the callbacks asked for.
    pub(super) control: TrainerControl,
    /// The data-parallel ranks this trainer runs with (world size 1 alone): see
    /// docs/distributed.md.
    pub(super) comm: World,
}

impl<M: PreTrainedModel> Trainer<M> {
    /// A trainer for `model` on `train_dataset` (a [`Dataset`] with an `input_ids` column, or
    /// [`TokenWindows`]). The collator follows the model's task: the causal-LM collator for a
    /// causal LM; for a masked LM an MLM collator that still needs the mask token's id, so
    /// chain [`with_tokenizer`](Self::with_tokenizer) or [`with_collator`](Self::with_collator)
    /// (the first step says so otherwise). A `metric_for_best_model` that evaluation never
    /// produces ([`EVAL_METRICS`](super::EVAL_METRICS), with or without `eval_`) is an error here.
    ///
    /// Under `mpirun -n N` (the `mpi` feature) the trainer joins the N processes
    /// ([`crate::dist::world`], `args.ddp_backend`): each trains its share of every batch of
    /// `N × per_device_train_batch_size`, and the run equals one process with that batch
    /// (docs/distributed.md). The ranks' arguments, model config and data size are compared
    /// here; a difference is an error on every rank.
    pub fn new(
        mut model: M,
        args: TrainingArguments,
        train_dataset: impl IntoTrainData,
    ) -> Result<Self> {
        args.validate()?;
        model.set_compute_dtype(args.compute_dtype(model.device())?)?; // bf16 mixed precision
        let comm = dist::world(args.ddp_backend.as_deref())?;
        let train_data = train_dataset.into_train_data()?;
        check_vocab(&model, &train_data)?;
        let world = comm.world_size();
        check_same_setup(comm.as_ref(), &args, &model, &train_data)?;
        let bs = args.per_device_train_batch_size;
        // DistributedSampler: each rank sees ceil(len / world) examples an epoch
        let micro_per_epoch = train_data.per_rank_len(world).div_ceil(bs).max(1);
        let updates_per_epoch = micro_per_epoch
            .div_ceil(args.gradient_accumulation_steps)
            .max(1);
        let max_steps = args.max_steps.unwrap_or_else(|| {
            ((args.num_train_epochs * updates_per_epoch as f64).ceil() as usize).max(1)
        });
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
            logging_steps: args.logging_steps.resolve(max_steps),
            eval_steps: args
                .eval_steps
                .unwrap_or(args.logging_steps)
                .resolve(max_steps),
            save_steps: args.save_steps.resolve(max_steps),
            max_steps,
            num_train_epochs: (max_steps as f64 / updates_per_epoch as f64).ceil() as usize,
            train_batch_size: bs,
            ..Default::default()
        };
        check_saves_follow_evals(&args, &state)?;
        let collator = collator_for(&model, args.seed);
        let order = if args.group_by_length {
            // grouped by the global batch, so N ranks see the batches one process would
            EpochOrder::length_grouped(train_data.lengths(), bs * world)
        } else {
            EpochOrder::default()
        };
        Ok(Trainer {
            model,
            args,
            train_data,
            eval_data: None,
            collator,
            compute_metrics: None,
            optimizer,
            scheduler,
            state,
            order,
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
            callbacks: Vec::new(),
            control: TrainerControl::default(),
            comm,
        })
    }

    /// The data-parallel communicator: this process's rank and the world size (1 alone).
    pub fn world(&self) -> &World {
        &self.comm
    }

    /// Whether this process writes files and prints progress: rank 0 (or the only process).
    pub fn is_main_process(&self) -> bool {
        self.comm.is_main_process()
    }

    /// Adds a [`TrainerCallback`] (e.g. [`EarlyStoppingCallback`](super::EarlyStoppingCallback)),
    /// called after those added before it.
    pub fn with_callback(mut self, callback: impl TrainerCallback + 'static) -> Self {
        self.add_callback(callback);
        self
    }

    /// Adds a [`TrainerCallback`] to a trainer already built, as transformers' `add_callback`.
    pub fn add_callback(&mut self, callback: impl TrainerCallback + 'static) {
        self.callbacks.push(Box::new(callback));
    }

    /// The callbacks, in the order they are called.
    pub fn callbacks(&self) -> &[Box<dyn TrainerCallback>] {
        &self.callbacks
    }

    /// What the callbacks have asked for (`should_training_stop`, ...).
    pub fn control(&self) -> &TrainerControl {
        &self.control
    }

    /// Calls `f` on every callback in turn with the arguments, the state and the control.
    pub(super) fn fire(
        &mut self,
        f: impl Fn(
            &mut dyn TrainerCallback,
            &TrainingArguments,
            &TrainerState,
            &mut TrainerControl,
        ) -> Result<()>,
    ) -> Result<()> {
        for cb in &mut self.callbacks {
            f(cb.as_mut(), &self.args, &self.state, &mut self.control)?;
        }
        Ok(())
    }

    /// Adds an evaluation set (for `evaluate()` and `eval_strategy`).
    pub fn with_eval_dataset(mut self, eval_dataset: impl IntoTrainData) -> Result<Self> {
        let d = eval_dataset.into_train_data()?;
        check_vocab(&self.model, &d)?;
        self.eval_data = Some(d);
        Ok(self)
    }

    /// Builds the collator for the model's task from the tokenizer (see
    /// `train/policy.rs`): for a masked LM, the MLM collator with the tokenizer's mask and
    /// padding ids and its special tokens never masked; for a causal LM, the causal collator
    /// padding with the tokenizer's pad (else eos) id. For a task model (classification, QA),
    /// `DataCollatorWithPadding` with the tokenizer's pad (else eos) id; for an encoder–decoder,
    /// `DataCollatorForSeq2Seq` with it.
    pub fn with_tokenizer(self, tokenizer: &Tokenizer) -> Result<Self> {
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
        self.collator = collator.with_seed(seed);
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

    /// The collator an encoder–decoder batches with (`None` for other models).
    pub fn seq2seq_collator(&self) -> Option<&DataCollatorForSeq2Seq> {
        match &self.collator {
            Collator::Seq2Seq(c) => Some(c),
            _ => None,
        }
    }

    /// The collator a task model batches with (`None` for language models).
    pub fn padding_collator(&self) -> Option<&DataCollatorWithPadding> {
        match &self.collator {
            Collator::WithPadding(c) => Some(c),
            _ => None,
        }
    }

    pub fn model(&self) -> &M {
        &self.model
    }
    /// The language-modelling collator batches are built with (see
    /// [`with_collator`](Self::with_collator)). A trainer that batches with another collator
    /// ([`padding_collator`](Self::padding_collator), [`seq2seq_collator`](Self::seq2seq_collator),
    /// or any through [`data_collator`](Self::data_collator)) has none, and shows the causal
    /// collator that no batch of it uses.
    pub fn collator(&self) -> &DataCollatorForLanguageModeling {
        static UNUSED: OnceLock<DataCollatorForLanguageModeling> = OnceLock::new();
        match &self.collator {
            Collator::LanguageModeling(c) => c,
            _ => UNUSED.get_or_init(|| DataCollatorForLanguageModeling::causal(0)),
        }
    }
    /// The collator batches are built with, whichever kind it is (transformers'
    /// `data_collator`).
    pub fn data_collator(&self) -> &Collator {
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
    /// Every log entry so far (`loss`, `learning_rate`, `grad_norm`, `eval_loss`, `step`,
    /// `epoch`): a slice of [`LogEntry`] that prints as JSON rows and shows in a notebook as
    /// transformers' progress table.
    pub fn log_history(&self) -> LogHistory<'_> {
        LogHistory(&self.state.log_history)
    }

    /// This rank's micro-batches of optimiser step `step`, collated on `device`. The step's
    /// examples over all ranks come from [`TrainData::step_examples`]; this rank takes every
    /// world-th, in micro-batches of `per_device_train_batch_size`. A masked-LM batch is
    /// masked as a whole (every rank collates the step's global batch with the step's stream,
    /// then keeps its rows), so the masks do not depend on the world size or the accumulation
    /// either; other collators draw nothing at random and collate this rank's rows alone.
    fn step_batches(&mut self, step: usize, device: &candle_core::Device) -> Result<Vec<Batch>> {
        let accum = self.args.gradient_accumulation_steps;
        let bs = self.args.per_device_train_batch_size;
        let (world, rank) = (self.comm.world_size(), self.comm.rank());
        let epoch = step / self.updates_per_epoch;
        let u = step % self.updates_per_epoch;
        let global = self.train_data.step_examples(
            self.args.seed,
            epoch,
            u,
            accum * bs,
            world,
            &mut self.order,
        );
        // this rank's rows of the global batch, in order
        let mine: Vec<usize> = (rank..global.len()).step_by(world).collect();
        let masked = matches!(&self.collator, Collator::LanguageModeling(c) if c.mlm);
        // One process without accumulation collates its one micro-batch directly: the same
        // examples and stream as the global batch, without the copy of its rows.
        let split = world > 1 || accum > 1;
        let whole = if masked && split && !global.is_empty() {
            let stream = ((epoch as u64) << 40) | u as u64;
            Some(self.collator.collate(&global, stream, device)?)
        } else {
            None
        };
        let mut out = Vec::new();
        for (a, rows) in mine.chunks(bs).enumerate() {
            let m = u * accum + a;
            // one dropout stream per micro-batch and rank
            let stream = ((epoch as u64) << 40) | (m * world + rank) as u64;
            let mut b = match &whole {
                Some(w) => select_rows(w, rows, &global)?,
                None => {
                    let ex: Vec<Example> = rows.iter().map(|&i| global[i].clone()).collect();
                    self.collator.collate(&ex, stream, device)?
                }
            };
            // the global batch's one seed, told apart per micro-batch and rank
            if whole.is_some() {
                b.dropout_seed ^= stream.rotate_left(17);
            }
            out.push(b);
        }
        Ok(out)
    }

    /// One optimiser update: forward and backward over `gradient_accumulation_steps`
    /// micro-batches (each weighted by its share of the labelled tokens, so the update equals
    /// that of one big batch), clipping, AdamW at the scheduled learning rate, then logging,
    /// evaluation and saving as the arguments ask. A NaN or infinite loss stops with an error
    /// before any parameter changes. A step at `max_steps` or past it is refused: the schedule
    /// ends there (build a Trainer with a larger `max_steps` and resume to go on).
    pub fn step(&mut self) -> Result<StepOutput> {
        let out = self.update()?;
        self.after_step(&out, None)?;
        Ok(out)
    }

    /// One optimiser update without its logging, evaluation, saving and callbacks (`step()`
    /// adds them; `train()` adds them with progress attached).
    fn update(&mut self) -> Result<StepOutput> {
        let step = self.state.global_step;
        if step >= self.max_steps {
            // The schedule ends at max_steps (its learning rate is at its floor from there on):
            // a step past it would be a silent extra update, not a planned one.
            return Err(Error::InvalidArgument(format!(
                "step(): the run is complete at step {step} of max_steps {}; nothing was changed. To train further, build a Trainer with a larger TrainingArguments.max_steps (the schedule is planned for it) and resume_from_checkpoint from this run's checkpoint, or keep this one's weights with save_model()",
                self.max_steps
            )));
        }
        let device = self.model.device().clone();
        let started = Instant::now();
        let batches = self.step_batches(step, &device)?;
        // The weights are shares of the labelled tokens of the step over all ranks, so the
        // gradients summed over ranks are those of one batch of them all (transformers'
        // num_items_in_batch, gathered across processes).
        let mut counts = [
            batches.iter().map(|b| b.num_label_tokens).sum::<usize>() as f64,
            batches.iter().map(|b| b.num_input_tokens).sum::<usize>() as f64,
        ];
        self.comm.all_reduce_sum_f64(&mut counts)?;
        let (total, input_tokens) = (counts[0] as usize, counts[1] as usize);
        if total == 0 {
            return Err(Error::InvalidArgument(format!(
                "step {}: the batch has no labelled tokens (every label is -100); check the collator and the data",
                step + 1
            )));
        }
        let mut grads = Grads::default();
        let mut loss_sum = 0.0f64;
        let mut bad = None;
        for b in &batches {
            if b.num_label_tokens == 0 {
                continue;
            }
            let loss = compute_loss(&self.model, b, true)?;
            let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                bad = Some(value);
                break;
            }
            let w = b.num_label_tokens as f64 / total as f64;
            loss_sum += value * w;
            let g = loss.backward()?;
            grads.add_scaled(self.optimizer.grads(&g), w as f32)?;
        }
        if self.comm.world_size() > 1 {
            loss_sum = self.all_reduce_grads(&mut grads, loss_sum, &mut bad)?;
        }
        if let Some(value) = bad {
            return Err(self.non_finite("loss", value, step + 1));
        }
        let (grad_norm, clip) = grads.clip_coef(self.args.max_grad_norm)?;
        if !grad_norm.is_finite() {
            return Err(self.non_finite("gradient norm", grad_norm, step + 1));
        }
        let lr = self.scheduler.get_last_lr();
        self.optimizer.config.lr = lr;
        self.optimizer.step_grads_scaled(&grads, clip)?;
        self.scheduler.step();
        self.state.global_step += 1;
        self.state.epoch = self.state.global_step as f64 / self.updates_per_epoch as f64;
        self.state.num_input_tokens_seen += input_tokens as u64;

        self.log_start.get_or_insert(started);
        self.log_loss_sum += loss_sum;
        self.log_steps += 1;
        self.log_tokens += input_tokens;
        Ok(StepOutput {
            step: self.state.global_step,
            loss: loss_sum,
            learning_rate: lr,
            grad_norm,
            num_tokens: input_tokens,
        })
    }

    /// Sums the step's loss and gradients over the ranks (each rank's already weighted by
    /// its share of the global labelled tokens), the gradients in buckets of
    /// `ddp_bucket_cap_mb`. A gradient that some rank has and this one lacks (its micro-batches
    /// had no labels) counts as zeros here; one no rank has stays absent, as in one process. A
    /// non-finite loss on any rank makes `bad` set on every rank, so they all stop together.
    fn all_reduce_grads(
        &self,
        grads: &mut Grads,
        loss_sum: f64,
        bad: &mut Option<f64>,
    ) -> Result<f64> {
        let names = self.optimizer.param_names();
        let p = names.len();
        if grads.0.is_empty() {
            grads.0 = vec![None; p];
        }
        let mut scalars = vec![0.0f64; 2 + p];
        scalars[0] = loss_sum;
        scalars[1] = f64::from(u8::from(bad.is_some()));
        for (i, g) in grads.0.iter().enumerate() {
            scalars[2 + i] = f64::from(u8::from(g.is_some()));
        }
        self.comm.all_reduce_sum_f64(&mut scalars)?;
        if scalars[1] > 0.0 {
            *bad = Some(bad.unwrap_or(f64::NAN));
            return Ok(scalars[0]);
        }
        let vars =
            self.model.varmap().data().lock().map_err(|_| {
                Error::InvalidArgument("the model's VarMap lock is poisoned".into())
            })?;
        let mut present = Vec::new();
        for (i, g) in grads.0.iter_mut().enumerate() {
            if scalars[2 + i] == 0.0 {
                continue;
            }
            if g.is_none() {
                let var = vars.get(&names[i]).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "parameter `{}` left the model while training",
                        names[i]
                    ))
                })?;
                *g = Some(var.as_tensor().zeros_like()?.to_dtype(DType::F32)?);
            }
            present.push(i);
        }
        drop(vars);
        let mut tensors: Vec<Tensor> = present.iter().filter_map(|&i| grads.0[i].clone()).collect();
        let cap = self.args.ddp_bucket_cap_mb.saturating_mul(1 << 20);
        dist::all_reduce_tensors(self.comm.as_ref(), &mut tensors, Reduce::Sum, cap)?;
        for (i, t) in present.into_iter().zip(tensors) {
            grads.0[i] = Some(t);
        }
        Ok(scalars[0])
    }

    fn non_finite(&self, what: &str, value: f64, step: usize) -> Error {
        Error::NonFiniteLoss {
            what: what.to_string(),
            value,
            step,
            last_checkpoint: get_last_checkpoint(&self.args.output_dir)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }

    /// Logging, evaluation and saving after step `out.step`.
    fn after_step(&mut self, out: &StepOutput, progress: Option<&Progress>) -> Result<()> {
        let step = out.step;
        self.fire(|cb, a, s, c| cb.on_step_end(a, s, c))?;
        let stop = self.control.should_training_stop;
        let asked = std::mem::replace(
            &mut self.control,
            TrainerControl {
                should_training_stop: stop,
                ..Default::default()
            },
        );
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
            || (last && a.logging_strategy != IntervalStrategy::No && self.log_steps > 0)
            || (asked.should_log && self.log_steps > 0);
        let eval_now = self.eval_data.is_some()
            && (due(a.eval_strategy, self.state.eval_steps) || asked.should_evaluate);
        let save_now = due(a.save_strategy, self.state.save_steps) || asked.should_save;
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
            self.state.log_history.push(e.clone());
            self.fire(|cb, a, s, c| cb.on_log(a, s, c, &e))?;
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
            self.fire(|cb, a, s, c| cb.on_save(a, s, c))?;
            if let Some(p) = progress {
                p.message(&format!("saved {}", dir.display()));
            }
        }
        Ok(())
    }

    /// Runs `step()` until `max_steps`, with progress. First (once) [`prepare_output_dir`]
    /// (Self::prepare_output_dir): leftovers swept, then a resume when
    /// `args.resume_from_checkpoint` is set, else a non-empty `output_dir` refused unless
    /// `args.overwrite_output_dir`. Writes `trainer_state.json` to `output_dir` at the end.
    pub fn train(&mut self) -> Result<TrainOutput> {
        // Here rather than in new(): `with_compute_metrics` may come after it.
        check_best_metric(
            &self.args,
            metrics_are_free(&self.model) || self.compute_metrics.is_some(),
        )?;
        let resumed_from = self.prepare_output_dir()?;
        let start_step = self.state.global_step;
        // only rank 0 prints
        let quiet = self.args.disable_tqdm || !self.is_main_process();
        let progress = Progress::new(ProgressMode::detect(quiet), start_step, self.max_steps);
        if let Some(dir) = &resumed_from
            && !quiet
        {
            progress.message(&format!(
                "resumed from {} at step {start_step}",
                dir.file_name().unwrap_or(dir.as_os_str()).to_string_lossy()
            ));
        }
        self.control = TrainerControl::default();
        self.fire(|cb, a, s, c| cb.on_train_begin(a, s, c))?;
        let t0 = Instant::now();
        let mut loss_total = 0.0;
        let mut tokens = 0usize;
        while self.state.global_step < self.max_steps && !self.control.should_training_stop {
            // without step()'s own after_step, so progress lines interleave correctly
            let out = self.update()?;
            loss_total += out.loss;
            tokens += out.num_tokens;
            let tps = tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            progress.update(out.step, out.loss, out.learning_rate, tps);
            self.after_step(&out, Some(&progress))?;
        }
        progress.finish();
        // The steps' freed buffers were kept for the next step's reuse; none is coming, so
        // they go back to the system rather than sit under whatever the process does next.
        crate::kernels::release_freed_buffers();
        if self.state.global_step < self.max_steps {
            progress.message(&format!(
                "a callback stopped training at step {} of {}",
                self.state.global_step, self.max_steps
            ));
        }
        let runtime = t0.elapsed().as_secs_f64();
        let steps = self.state.global_step - start_step;
        let training_loss = if steps > 0 {
            loss_total / steps as f64
        } else {
            0.0
        };
        if self.args.load_best_model_at_end
            && let Some(best) = self.best_checkpoint_dir()
        {
            self.load_model_weights(&best.join(self.model.weights_file_name()))?;
            progress.message(&format!("loaded the best model from {}", best.display()));
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
        self.fire(|cb, a, s, c| cb.on_train_end(a, s, c))?;
        if crate::display::in_notebook() && !quiet {
            // transformers' notebook table; the returned TrainOutput shows the totals
            self.log_history().evcxr_display();
        } else if !quiet {
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
}

/// With `load_best_model_at_end`, every save must fall on an evaluation in this run's step
/// counts too: ratios that are multiples of each other can round to counts that are not (11
/// steps: 0.2 evaluates every 3, 0.6 saves every 7).
fn check_saves_follow_evals(args: &TrainingArguments, state: &TrainerState) -> Result<()> {
    if args.load_best_model_at_end
        && args.eval_strategy == IntervalStrategy::Steps
        && !state.save_steps.is_multiple_of(state.eval_steps.max(1))
    {
        return Err(Error::InvalidConfig(format!(
            "TrainingArguments.load_best_model_at_end: in this run of {} steps, save_steps ({}) saves every {} steps and eval_steps ({}) evaluates every {} steps, so some checkpoints would hold weights that were never evaluated; give save_steps and eval_steps as step counts, save_steps a multiple of eval_steps",
            state.max_steps,
            args.save_steps,
            state.save_steps,
            args.eval_steps.unwrap_or(args.logging_steps),
            state.eval_steps
        )));
    }
    Ok(())
}

pub(super) fn check_vocab<M: PreTrainedModel>(model: &M, data: &TrainData) -> Result<()> {
    match (model.vocab_size(), data.max_token_id()) {
        (Some(v), Some(max)) => check_token_id(max, v),
        _ => Ok(()),
    }
}

/// Batch rows `rows` of `whole` (collated from `examples`), with their own token counts: a
/// masked-LM batch's labels are the chosen tokens, unshifted, so the count is of its labels.
fn select_rows(whole: &Batch, rows: &[usize], examples: &[Example]) -> Result<Batch> {
    let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let idx = Tensor::new(idx.as_slice(), whole.input_ids.device())?;
    let labels = whole.labels.index_select(&idx, 0)?;
    let num_label_tokens = labels
        .flatten_all()?
        .to_vec1::<i64>()?
        .iter()
        .filter(|&&l| l != super::collator::IGNORE_INDEX)
        .count();
    Ok(Batch {
        input_ids: whole.input_ids.index_select(&idx, 0)?,
        attention_mask: whole.attention_mask.index_select(&idx, 0)?,
        labels,
        num_label_tokens,
        num_input_tokens: rows.iter().map(|&r| examples[r].input_ids.len()).sum(),
        dropout_seed: whole.dropout_seed,
        token_type_ids: whole
            .token_type_ids
            .as_ref()
            .map(|t| t.index_select(&idx, 0))
            .transpose()?,
        answer_spans: whole.answer_spans,
        labelled: whole.labelled,
    })
}

/// Every rank must train the same run: the same arguments, data size and model. A hash of
/// them is gathered from all ranks at the start, and a difference is an error on every rank
/// (naming the ranks that differ from rank 0), before any step could hang or diverge.
fn check_same_setup<M: PreTrainedModel>(
    comm: &dyn dist::Communicator,
    args: &TrainingArguments,
    model: &M,
    data: &TrainData,
) -> Result<()> {
    if comm.world_size() == 1 {
        return Ok(());
    }
    use std::hash::Hasher;
    let mut h = twox_hash::XxHash3_64::with_seed(0);
    h.write(args.to_json().as_bytes());
    h.write(model.config_json().to_string().as_bytes());
    h.write(&(data.len() as u64).to_le_bytes());
    h.write(&(model.varmap().all_vars().len() as u64).to_le_bytes());
    let all = comm.all_gather_u64(h.finish())?;
    let odd: Vec<String> = (0..all.len())
        .filter(|&r| all[r] != all[0])
        .map(|r| r.to_string())
        .collect();
    if odd.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidConfig(format!(
        "data-parallel ranks disagree on the run: rank(s) {} have other TrainingArguments, model config or training data size than rank 0 (this is rank {}); start every rank with the same command and files",
        odd.join(", "),
        comm.rank()
    )))
}
