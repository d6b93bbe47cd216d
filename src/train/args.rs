//! `TrainingArguments`: the knobs of a training run, with Hugging Face's names and defaults, so a
//! `TrainingArguments(...)` call from Python reads the same here and a JSON/TOML file written for
//! one works for the other.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Result};

/// Which learning-rate schedule follows the warmup (Hugging Face `lr_scheduler_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerType {
    /// Linear warmup, then linear decay to 0 at the last step.
    #[default]
    Linear,
    /// Linear warmup, then half a cosine wave down to 0.
    Cosine,
    /// Linear warmup, then a cosine down to `lr_scheduler_kwargs.min_lr` (or `min_lr_rate` × lr):
    /// nanoGPT's schedule.
    CosineWithMinLr,
    /// The same learning rate throughout (the warmup is ignored, as in Hugging Face).
    Constant,
    /// Linear warmup, then constant.
    ConstantWithWarmup,
}

/// Why `fp16: true` is refused, and what to use instead.
const FP16_REFUSED: &str = "fp16 mixed precision needs dynamic loss scaling (f16 gradients underflow without it), which this Trainer does not implement; use bf16: true on a GPU (bf16 has f32's range, so no loss scaling), or f32 (both false) on the CPU";

/// When to evaluate, save or log (Hugging Face `IntervalStrategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalStrategy {
    #[default]
    No,
    Steps,
    Epoch,
}

/// How often a step-based event comes (`logging_steps`, `eval_steps`, `save_steps`): every N
/// optimiser steps, or a share of the run's steps. In a JSON or TOML file it is transformers'
/// number: a whole number of at least 1 is a step count, a number in (0, 1) a share.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Steps {
    /// Every N optimiser steps (N >= 1).
    Every(usize),
    /// Every `ceil(r * max_steps)` steps, for r in (0, 1) (transformers' float form).
    Ratio(f64),
}

impl From<usize> for Steps {
    fn from(n: usize) -> Self {
        Steps::Every(n)
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Steps::Every(n) => write!(f, "{n}"),
            Steps::Ratio(r) => write!(f, "{r}"),
        }
    }
}

impl Steps {
    /// The interval in steps for a run of `total` optimiser steps (at least 1).
    pub fn resolve(self, total: usize) -> usize {
        match self {
            Steps::Every(n) => n.max(1),
            Steps::Ratio(r) => ((total as f64 * r).ceil() as usize).max(1),
        }
    }

    /// Why the value cannot be used, if it cannot.
    fn check(self) -> std::result::Result<(), String> {
        match self {
            Steps::Every(0) => Err("must be at least 1 step".into()),
            Steps::Ratio(r) if !(r > 0.0 && r < 1.0) => Err(format!(
                "a share of the run must be in (0, 1), got {r}; give a step count (a whole number) or a share such as 0.1"
            )),
            _ => Ok(()),
        }
    }

    /// transformers' number: whole >= 1 is a count, (0, 1) a share; anything else is refused.
    fn from_number(v: f64) -> std::result::Result<Steps, String> {
        if !v.is_finite() || v <= 0.0 {
            Err(format!("must be a positive number of steps, got {v}"))
        } else if v < 1.0 {
            Ok(Steps::Ratio(v))
        } else if v.fract() == 0.0 && v <= usize::MAX as f64 {
            Ok(Steps::Every(v as usize))
        } else {
            Err(format!(
                "{v} steps: a step count above 1 must be a whole number (a share of the run is a number in (0, 1))"
            ))
        }
    }
}

impl Serialize for Steps {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            Steps::Every(n) => s.serialize_u64(n as u64),
            Steps::Ratio(r) => s.serialize_f64(r),
        }
    }
}

impl<'de> Deserialize<'de> for Steps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Steps::from_number(v).map_err(serde::de::Error::custom)
    }
}

/// A [`Steps`] field's number from a file, its key named in the error (serde's own message has
/// no key).
fn named_steps<E: serde::de::Error>(key: &str, v: f64) -> std::result::Result<Steps, E> {
    Steps::from_number(v).map_err(|m| E::custom(format!("{key}: {m}")))
}

fn logging_steps_de<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Steps, D::Error> {
    named_steps("logging_steps", f64::deserialize(d)?)
}

fn save_steps_de<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Steps, D::Error> {
    named_steps("save_steps", f64::deserialize(d)?)
}

fn eval_steps_de<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Steps>, D::Error> {
    Option::<f64>::deserialize(d)?
        .map(|v| named_steps("eval_steps", v))
        .transpose()
}

/// `max_steps` as transformers writes it: -1 (or any number <= 0) for "not set".
fn max_steps_from_number<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<usize>, D::Error> {
    let v = Option::<i64>::deserialize(d)?;
    Ok(v.filter(|&n| n > 0).map(|n| n as usize))
}

fn max_steps_as_number<S: serde::Serializer>(
    v: &Option<usize>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_i64(v.map_or(-1, |n| n as i64))
}

/// The arguments of a training run. Every field has Hugging Face's name and default, so
/// `TrainingArguments { output_dir: "out".into(), ..Default::default() }` is a complete run.
///
/// Step intervals are [`Steps`] (`Steps::Every(50)`, or a share of the run as transformers'
/// floats below 1 are); a fractional `warmup_steps` in a file becomes `warmup_ratio`, as in
/// transformers 5.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingArguments {
    /// Where checkpoints, `trainer_state.json`, the final model and the loss curve go. Any path
    /// the system allows, UTF-8 or not (files such as `training_args.json` show a non-UTF-8
    /// one with U+FFFD, as JSON and TOML hold only text; the folder itself keeps its bytes).
    #[serde(serialize_with = "path_as_text")]
    pub output_dir: PathBuf,
    /// Start from a fresh `output_dir` even if it holds checkpoints (resuming is explicit anyway).
    pub overwrite_output_dir: bool,
    pub num_train_epochs: f64,
    /// The number of optimiser steps to run; overrides `num_train_epochs` when set (files may
    /// say -1 for unset, as transformers writes it).
    #[serde(
        deserialize_with = "max_steps_from_number",
        serialize_with = "max_steps_as_number"
    )]
    pub max_steps: Option<usize>,
    pub per_device_train_batch_size: usize,
    pub per_device_eval_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Global-norm gradient clipping; 0 turns clipping off.
    pub max_grad_norm: f64,
    pub lr_scheduler_type: SchedulerType,
    /// Extra schedule arguments, e.g. `{"min_lr": 1e-4}` for `cosine_with_min_lr`.
    pub lr_scheduler_kwargs: serde_json::Map<String, serde_json::Value>,
    /// Warmup length in optimiser steps (a value in (0, 1) given in a file is a ratio).
    #[serde(deserialize_with = "steps_or_ratio")]
    pub warmup_steps: usize,
    /// Warmup as a ratio of all steps; used when `warmup_steps` is 0.
    pub warmup_ratio: f64,
    /// Where `train()` also writes `log_history.json` (Hugging Face writes TensorBoard logs here).
    #[serde(serialize_with = "opt_path_as_text")]
    pub logging_dir: Option<PathBuf>,
    pub logging_strategy: IntervalStrategy,
    #[serde(deserialize_with = "logging_steps_de")]
    pub logging_steps: Steps,
    pub logging_first_step: bool,
    pub eval_strategy: IntervalStrategy,
    /// Defaults to `logging_steps` when unset, as in Hugging Face.
    #[serde(deserialize_with = "eval_steps_de")]
    pub eval_steps: Option<Steps>,
    pub save_strategy: IntervalStrategy,
    #[serde(deserialize_with = "save_steps_de")]
    pub save_steps: Steps,
    /// Keep at most this many checkpoints (the newest, plus the best when metrics are tracked).
    pub save_total_limit: Option<usize>,
    pub load_best_model_at_end: bool,
    /// `eval_loss` by default; a metric name from `evaluate()` (with or without `eval_`).
    pub metric_for_best_model: Option<String>,
    /// Defaults to true unless the metric is a loss.
    pub greater_is_better: Option<bool>,
    pub seed: u64,
    /// Batches of examples of similar length (transformers' `LengthGroupedSampler`): each
    /// epoch's shuffled order is cut into mega-batches of up to 50 batches, each sorted
    /// longest first, the longest example of all in the first batch. Less padding, so
    /// shorter steps; the batches are less random. Examples' length is their `input_ids`'.
    pub group_by_length: bool,
    /// bf16 mixed precision, as transformers' `bf16=True` (`torch.autocast(bfloat16)`): matrix
    /// products and activations in bf16; master weights, gradients, the optimiser's state, the
    /// loss, softmax and norm statistics in f32 (the Trainer sets the model's compute dtype,
    /// `with_compute_dtype`). It needs a model with f32 parameters. On a GPU it is the fast
    /// setting; on the CPU it trains correctly but slower than f32, since the CPU has no bf16
    /// matrix product here (docs/benchmarks.md, Mixed precision).
    pub bf16: bool,
    /// fp16 mixed precision (transformers' `fp16=True`). Refused: f16 training needs dynamic
    /// loss scaling, which the Trainer does not have; use `bf16` on a GPU, f32 on the CPU.
    pub fp16: bool,
    /// No progress bar or log lines.
    pub disable_tqdm: bool,
    /// Resume from this checkpoint folder, or from the latest in `output_dir` with `"latest"`.
    pub resume_from_checkpoint: Option<String>,
    /// Encoder–decoder models: evaluation and `predict` generate each example's output
    /// (`EvalPrediction::predictions` then holds the generated token ids, not logits), so
    /// `compute_metrics` can score BLEU, chrF or ROUGE (transformers'
    /// `Seq2SeqTrainingArguments.predict_with_generate`).
    pub predict_with_generate: bool,
    /// The `max_length` of those generations (the decoder start token included); the model's
    /// generation config when unset.
    pub generation_max_length: Option<usize>,
    /// The `num_beams` of those generations; the model's generation config when unset.
    pub generation_num_beams: Option<usize>,
    /// The data-parallel engine (transformers' name): `"mpi"` (CPUs, under `mpirun`; the `mpi`
    /// feature) or `"nccl"` (not built yet); unset, it is picked from the environment: an MPI
    /// launcher's variables mean MPI, none mean one process (docs/distributed.md).
    pub ddp_backend: Option<String>,
    /// Gradients are all-reduced in buckets of at most this many MiB (PyTorch DDP's
    /// `bucket_cap_mb`, default 25): fewer, larger messages.
    pub ddp_bucket_cap_mb: usize,
}

impl Default for TrainingArguments {
    fn default() -> Self {
        TrainingArguments {
            output_dir: PathBuf::from("trainer_output"),
            overwrite_output_dir: false,
            num_train_epochs: 3.0,
            max_steps: None,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 8,
            gradient_accumulation_steps: 1,
            learning_rate: 5e-5,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            lr_scheduler_type: SchedulerType::Linear,
            lr_scheduler_kwargs: serde_json::Map::new(),
            warmup_steps: 0,
            warmup_ratio: 0.0,
            logging_dir: None,
            logging_strategy: IntervalStrategy::Steps,
            logging_steps: Steps::Every(500),
            logging_first_step: false,
            eval_strategy: IntervalStrategy::No,
            eval_steps: None,
            save_strategy: IntervalStrategy::Steps,
            save_steps: Steps::Every(500),
            save_total_limit: None,
            load_best_model_at_end: false,
            metric_for_best_model: None,
            greater_is_better: None,
            seed: 42,
            group_by_length: false,
            bf16: false,
            fp16: false,
            disable_tqdm: false,
            resume_from_checkpoint: None,
            predict_with_generate: false,
            generation_max_length: None,
            generation_num_beams: None,
            ddp_backend: None,
            ddp_bucket_cap_mb: 25,
        }
    }
}

/// A path as JSON/TOML text: serde refuses a path that is not UTF-8, which would make a run
/// into such a folder fail when it writes `training_args.json`; the text shows it lossily.
fn path_as_text<S: serde::Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

fn opt_path_as_text<S: serde::Serializer>(
    p: &Option<PathBuf>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&*p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

/// `warmup_steps` in a file may be an integer or (transformers 5) a float in (0, 1) meaning a
/// ratio; the parser keeps 0 steps here and `fold_warmup_ratio` moves the raw value to
/// `warmup_ratio`.
fn steps_or_ratio<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    let v = f64::deserialize(d)?;
    if v < 0.0 || !v.is_finite() {
        return Err(serde::de::Error::custom(format!(
            "warmup_steps must be >= 0, got {v}"
        )));
    }
    Ok(if v < 1.0 { 0 } else { v as usize })
}

/// A fractional `warmup_steps` from a file becomes `warmup_ratio` (transformers 5 semantics).
fn fold_warmup_ratio(args: &mut TrainingArguments, raw: Option<f64>) {
    if let Some(v) = raw
        && v > 0.0
        && v < 1.0
    {
        args.warmup_ratio = v;
        args.warmup_steps = 0;
    }
}

impl TrainingArguments {
    /// Arguments writing to `output_dir`, everything else at its default.
    pub fn new(output_dir: impl Into<PathBuf>) -> Self {
        TrainingArguments {
            output_dir: output_dir.into(),
            ..Default::default()
        }
    }

    /// Parses JSON (Hugging Face's `training_args` keys); `path` names the source in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let mut args: TrainingArguments = serde_json::from_str(text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: e.line() as u64,
            column: e.column() as u64,
            message: format!("{e}; see TrainingArguments for the accepted keys"),
        })?;
        let raw: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        fold_warmup_ratio(&mut args, raw.get("warmup_steps").and_then(|v| v.as_f64()));
        args.validate().map_err(|e| in_file(path, e))?;
        Ok(args)
    }

    /// Parses TOML with the same keys; `path` names the source in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        let mut args: TrainingArguments = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            Error::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: format!(
                    "{}; see TrainingArguments for the accepted keys",
                    e.message()
                ),
            }
        })?;
        let raw: toml::Table = toml::from_str(text).unwrap_or_default();
        fold_warmup_ratio(
            &mut args,
            raw.get("warmup_steps")
                .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64))),
        );
        args.validate().map_err(|e| in_file(path, e))?;
        Ok(args)
    }

    /// Reads a `.json` or `.toml` file (by extension); every error names the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::from_json_str(&text, path),
            _ => Self::from_toml_str(&text, path),
        }
    }

    /// The arguments as pretty JSON (what `training_args.json` in a checkpoint holds).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The arguments as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::InvalidArgument(format!("cannot write TOML: {e}")))
    }

    /// Checks values that would make training meaningless, naming the key and what to do.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: String| {
            Err(Error::InvalidConfig(format!(
                "TrainingArguments.{key}: {msg}"
            )))
        };
        if self.per_device_train_batch_size == 0 {
            return bad("per_device_train_batch_size", "must be at least 1".into());
        }
        if self.per_device_eval_batch_size == 0 {
            return bad("per_device_eval_batch_size", "must be at least 1".into());
        }
        if self.gradient_accumulation_steps == 0 {
            return bad("gradient_accumulation_steps", "must be at least 1".into());
        }
        if self.ddp_bucket_cap_mb == 0 {
            return bad("ddp_bucket_cap_mb", "must be at least 1 (MiB)".into());
        }
        crate::dist::check_backend(self.ddp_backend.as_deref())?;
        // NaN and infinity first: the range checks below would let some through (NaN fails
        // every comparison) and an infinite epoch count is a run that never ends.
        for (key, v) in [
            ("num_train_epochs", self.num_train_epochs),
            ("learning_rate", self.learning_rate),
            ("weight_decay", self.weight_decay),
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
            ("adam_epsilon", self.adam_epsilon),
            ("max_grad_norm", self.max_grad_norm),
            ("warmup_ratio", self.warmup_ratio),
        ] {
            if !v.is_finite() {
                return bad(key, format!("must be a finite number, got {v}"));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate >= 0.0) {
            return bad(
                "learning_rate",
                format!("must be a finite value >= 0, got {}", self.learning_rate),
            );
        }
        for (k, v) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(k, format!("must be in [0, 1), got {v}"));
            }
        }
        if self.adam_epsilon.is_nan() || self.adam_epsilon < 0.0 {
            return bad(
                "adam_epsilon",
                format!("must be >= 0, got {}", self.adam_epsilon),
            );
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return bad(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm < 0.0 {
            return bad(
                "max_grad_norm",
                format!(
                    "must be >= 0 (0 turns clipping off), got {}",
                    self.max_grad_norm
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad(
                "warmup_ratio",
                format!("must be in [0, 1], got {}", self.warmup_ratio),
            );
        }
        if self.max_steps == Some(0) {
            return bad(
                "max_steps",
                "must be at least 1 (None trains for num_train_epochs)".into(),
            );
        }
        if self.max_steps.is_none()
            && (self.num_train_epochs.is_nan() || self.num_train_epochs <= 0.0)
        {
            return bad(
                "num_train_epochs",
                "must be positive when max_steps is not set".into(),
            );
        }
        for (key, steps) in [
            ("logging_steps", Some(self.logging_steps)),
            ("save_steps", Some(self.save_steps)),
            ("eval_steps", self.eval_steps),
        ] {
            if let Some(Err(msg)) = steps.map(Steps::check) {
                return bad(key, msg);
            }
        }
        if self.load_best_model_at_end {
            if self.eval_strategy == IntervalStrategy::No {
                return bad(
                    "load_best_model_at_end",
                    "needs an eval_strategy (\"steps\" or \"epoch\") to know which checkpoint is best".into(),
                );
            }
            if self.save_strategy != self.eval_strategy {
                return bad(
                    "load_best_model_at_end",
                    format!(
                        "needs save_strategy equal to eval_strategy (got {:?} and {:?})",
                        self.save_strategy, self.eval_strategy
                    ),
                );
            }
            if self.eval_strategy == IntervalStrategy::Steps {
                self.check_save_on_eval_steps()?;
            }
        }
        if self.fp16 {
            return bad("fp16", FP16_REFUSED.into());
        }
        if matches!(self.lr_scheduler_type, SchedulerType::CosineWithMinLr)
            && !self.lr_scheduler_kwargs.contains_key("min_lr")
            && !self.lr_scheduler_kwargs.contains_key("min_lr_rate")
        {
            return bad(
                "lr_scheduler_kwargs",
                "cosine_with_min_lr needs `min_lr` or `min_lr_rate`, e.g. {\"min_lr\": 1e-4}"
                    .into(),
            );
        }
        Ok(())
    }

    /// The compute dtype mixed precision asks for on `device`: bf16 with `bf16: true`, else
    /// none (f32). An error where the setting cannot be honoured, never a silent f32 run: fp16
    /// everywhere (no loss scaling yet), bf16 on a device other than the CPU or a CUDA GPU.
    pub fn compute_dtype(
        &self,
        device: &candle_core::Device,
    ) -> Result<Option<candle_core::DType>> {
        if self.fp16 {
            let why = if device.is_cpu() {
                "the CPU has no f16 arithmetic to speed up, and "
            } else {
                ""
            };
            return Err(Error::Unsupported(format!(
                "TrainingArguments.fp16: {why}{FP16_REFUSED}"
            )));
        }
        if !self.bf16 {
            return Ok(None);
        }
        if device.is_cpu() || device.is_cuda() {
            return Ok(Some(candle_core::DType::BF16));
        }
        Err(Error::Unsupported(format!(
            "TrainingArguments.bf16: bf16 mixed precision runs on the CPU and on CUDA GPUs, not on {device:?}; set bf16 to false to train in f32"
        )))
    }

    /// transformers' rule for `load_best_model_at_end` with `"steps"`: every save must come
    /// right after an evaluation, so that the checkpoint named best holds the weights that
    /// were scored. `save_steps` must be a whole multiple of `eval_steps` (both step counts, or
    /// both ratios of the run).
    fn check_save_on_eval_steps(&self) -> Result<()> {
        let (save, eval) = (
            self.save_steps,
            self.eval_steps.unwrap_or(self.logging_steps),
        );
        let fix = "set save_steps to a multiple of eval_steps (e.g. save_steps = eval_steps), so that each checkpoint is saved right after an evaluation and the best one holds the weights that scored best";
        let (s, e) = match (save, eval) {
            (Steps::Every(s), Steps::Every(e)) => (s as u64, e as u64),
            // ratios compared in millionths, as transformers does, against float noise
            (Steps::Ratio(s), Steps::Ratio(e)) => {
                ((s * 1e6).round() as u64, (e * 1e6).round() as u64)
            }
            _ => {
                let msg = format!(
                    "save_steps ({save}) and eval_steps ({eval}) mix a ratio of the run with a step count, so the saves cannot be guaranteed to fall on evaluations; give both as steps or both as ratios, and {fix}"
                );
                return Err(Error::InvalidConfig(format!(
                    "TrainingArguments.load_best_model_at_end: {msg}"
                )));
            }
        };
        if e > 0 && s.is_multiple_of(e) {
            return Ok(());
        }
        let msg = format!(
            "save_steps ({save}) is not a multiple of eval_steps ({eval}): some checkpoints would hold weights that were never evaluated; {fix}"
        );
        Err(Error::InvalidConfig(format!(
            "TrainingArguments.load_best_model_at_end: {msg}"
        )))
    }

    /// The warmup length for a run of `num_training_steps` (Hugging Face `get_warmup_steps`).
    pub fn get_warmup_steps(&self, num_training_steps: usize) -> usize {
        if self.warmup_steps > 0 {
            self.warmup_steps
        } else {
            (num_training_steps as f64 * self.warmup_ratio).ceil() as usize
        }
    }

    /// The metric that picks the best checkpoint, with its `eval_` prefix.
    pub fn best_metric_key(&self) -> String {
        let m = self
            .metric_for_best_model
            .clone()
            .unwrap_or_else(|| "loss".to_string());
        if m.starts_with("eval_") {
            m
        } else {
            format!("eval_{m}")
        }
    }

    /// Whether a larger value of the best-model metric is better.
    pub fn greater_is_better(&self) -> bool {
        self.greater_is_better.unwrap_or_else(|| {
            let k = self.best_metric_key();
            !(k.ends_with("loss") || k.ends_with("perplexity"))
        })
    }
}

fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, column)
}

/// A settings error of a file's contents, with the file named (as the parse errors name it).
fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(format!("{}: {m}", path.display())),
        other => other,
    }
}
