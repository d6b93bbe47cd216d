//! `massivetext train`: the flags; the job is [`crate::jobs::train`].
//!
//! Settings come from the job's defaults, then `--config job.toml`, then the named flags, then
//! each `--set KEY=VALUE` in order. Every key of the `[training]` (TrainingArguments), `[model]`
//! and `[corpus]` tables can be set with `--set`; the common ones have their own flag.
use super::values::{
    at_least_two, non_negative, positive, positive_steps, positive_usize, probability,
};
use crate::jobs::train::{TrainJob, run_job};
use crate::{Error, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;

/// Where the model is trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The GPU when built with the `cuda` feature and one is present, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (needs the `cuda` feature and a GPU).
    Cuda,
}

impl DeviceArg {
    /// The candle device, or an error saying why a GPU cannot be used.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceArg::Auto => Ok(crate::models::best_device()),
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::Unsupported(
                        "--device cuda: this massivetext was built without the `cuda` feature; rebuild with `cargo build --release --features cuda`, or use --device cpu".into(),
                    ));
                }
                Device::new_cuda(0).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "--device cuda: no usable CUDA GPU ({e}); check the driver with nvidia-smi, or use --device cpu"
                    ))
                })
            }
        }
    }
}

/// `KEY=VALUE` for `--set`.
fn setting(s: &str) -> std::result::Result<(String, Value), String> {
    TrainJob::parse_override(s).map_err(|e| e.to_string())
}

/// `massivetext train [--config job.toml] [--max-steps N] [--output-dir DIR] ...`
#[derive(Debug, Default, Args)]
pub struct TrainArgs {
    /// A TOML job file with [training], [model] and [corpus] tables; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the settings as TOML (a job file for --config) and stop.
    #[arg(long, alias = "print_config")]
    pub print_config: bool,
    /// Where to train: auto picks a CUDA GPU when built with the `cuda` feature and one is present.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,

    // [training]
    /// Folder for checkpoints, trainer_state.json, the model, loss_curve.svg and samples.txt [default: massivetext-run].
    #[arg(
        long,
        value_name = "DIR",
        alias = "output_dir",
        help_heading = "Training"
    )]
    pub output_dir: Option<PathBuf>,
    /// Optimiser steps to run [default: 1500].
    #[arg(long, value_name = "N", alias = "max_steps", allow_negative_numbers = true,
          value_parser = positive_steps, help_heading = "Training")]
    pub max_steps: Option<usize>,
    /// Peak learning rate [default: 0.002].
    #[arg(long, value_name = "X", alias = "learning_rate", allow_negative_numbers = true,
          value_parser = non_negative, help_heading = "Training")]
    pub learning_rate: Option<f64>,
    /// Sequences per training batch [default: 16].
    #[arg(long, value_name = "N", alias = "per_device_train_batch_size",
          allow_negative_numbers = true, value_parser = positive_usize, help_heading = "Training")]
    pub per_device_train_batch_size: Option<usize>,
    /// Sequences per evaluation batch [default: 32].
    #[arg(long, value_name = "N", alias = "per_device_eval_batch_size",
          allow_negative_numbers = true, value_parser = positive_usize, help_heading = "Training")]
    pub per_device_eval_batch_size: Option<usize>,
    /// Batches whose gradients are summed per optimiser step [default: 1].
    #[arg(long, value_name = "N", alias = "gradient_accumulation_steps",
          allow_negative_numbers = true, value_parser = positive_usize, help_heading = "Training")]
    pub gradient_accumulation_steps: Option<usize>,
    /// AdamW weight decay [default: 0.1].
    #[arg(long, value_name = "X", alias = "weight_decay", allow_negative_numbers = true,
          value_parser = non_negative, help_heading = "Training")]
    pub weight_decay: Option<f64>,
    /// Linear warmup length in optimiser steps [default: 30].
    #[arg(long, value_name = "N", alias = "warmup_steps", allow_negative_numbers = true,
          value_parser = clap::value_parser!(usize), help_heading = "Training")]
    pub warmup_steps: Option<usize>,
    /// Log the loss every N steps (below 1: a ratio of all steps) [default: 25].
    #[arg(long, value_name = "N", alias = "logging_steps", allow_negative_numbers = true,
          value_parser = positive, help_heading = "Training")]
    pub logging_steps: Option<f64>,
    /// Evaluate every N steps (below 1: a ratio of all steps) [default: 250].
    #[arg(long, value_name = "N", alias = "eval_steps", allow_negative_numbers = true,
          value_parser = positive, help_heading = "Training")]
    pub eval_steps: Option<f64>,
    /// Save a checkpoint every N steps (below 1: a ratio of all steps) [default: 500].
    #[arg(long, value_name = "N", alias = "save_steps", allow_negative_numbers = true,
          value_parser = positive, help_heading = "Training")]
    pub save_steps: Option<f64>,
    /// Keep at most N checkpoints [default: 2].
    #[arg(long, value_name = "N", alias = "save_total_limit", allow_negative_numbers = true,
          value_parser = positive_usize, help_heading = "Training")]
    pub save_total_limit: Option<usize>,
    /// Resume from a checkpoint folder, or from the newest in --output-dir with `latest`.
    #[arg(
        long,
        value_name = "DIR|latest",
        alias = "resume_from_checkpoint",
        help_heading = "Training"
    )]
    pub resume_from_checkpoint: Option<String>,
    /// Train into a non-empty --output-dir anyway: its checkpoint-N folders are deleted and its
    /// files overwritten (without it, a folder holding files is refused unless resuming).
    #[arg(long, alias = "overwrite_output_dir", help_heading = "Training")]
    pub overwrite_output_dir: bool,
    /// No progress bar or log lines (`--disable-tqdm` or `--disable-tqdm true|false`).
    #[arg(long, value_name = "BOOL", alias = "disable_tqdm", num_args = 0..=1,
          default_missing_value = "true", help_heading = "Training")]
    pub disable_tqdm: Option<bool>,
    /// Seed of the corpus and of the training run (initialisation, shuffling, dropout); sets
    /// both [default: corpus 1, training 42].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Training"
    )]
    pub seed: Option<u64>,

    // [model]
    /// Transformer layers [default: 3].
    #[arg(long, value_name = "N", alias = "n_layer", allow_negative_numbers = true,
          value_parser = positive_usize, help_heading = "Model")]
    pub n_layer: Option<usize>,
    /// Attention heads; must divide --n-embd [default: 4].
    #[arg(long, value_name = "N", alias = "n_head", allow_negative_numbers = true,
          value_parser = positive_usize, help_heading = "Model")]
    pub n_head: Option<usize>,
    /// Embedding width [default: 96].
    #[arg(long, value_name = "N", alias = "n_embd", allow_negative_numbers = true,
          value_parser = positive_usize, help_heading = "Model")]
    pub n_embd: Option<usize>,
    /// Context length: training windows and position table [default: 96].
    #[arg(long, value_name = "N", alias = "block_size", allow_negative_numbers = true,
          value_parser = at_least_two, help_heading = "Model")]
    pub block_size: Option<usize>,
    /// Dropout probability in [0, 1) [default: 0].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = probability,
          help_heading = "Model")]
    pub dropout: Option<f64>,

    // [corpus]
    /// Stories in the training corpus, at least 10 [default: 20000].
    #[arg(long, value_name = "N", alias = "train_stories", allow_negative_numbers = true,
          value_parser = positive_usize, help_heading = "Corpus")]
    pub train_stories: Option<usize>,
    /// Stories in the evaluation corpus [default: 500].
    #[arg(long, value_name = "N", alias = "eval_stories", allow_negative_numbers = true,
          value_parser = positive_usize, help_heading = "Corpus")]
    pub eval_stories: Option<usize>,
    /// Held-out stories whose answers are checked after training [default: 100].
    #[arg(long, value_name = "N", alias = "check_stories", allow_negative_numbers = true,
          value_parser = clap::value_parser!(usize), help_heading = "Corpus")]
    pub check_stories: Option<usize>,

    /// Any other key of the [training], [model] or [corpus] table, e.g.
    /// `--set lr_scheduler_type=cosine --set adam_beta2=0.95`; repeatable, applied after the flags
    /// above (`--print-config` lists every key).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = setting)]
    pub set: Vec<(String, Value)>,
}

impl TrainArgs {
    /// The named flags that were given, then the `--set` ones, as (key, value) overrides.
    pub fn overrides(&self) -> Vec<(String, Value)> {
        let mut o: Vec<(String, Value)> = Vec::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                o.push((key.to_string(), v));
            }
        };
        put(
            "output_dir",
            self.output_dir
                .as_ref()
                .map(|p| Value::from(p.to_string_lossy().into_owned())),
        );
        put("max_steps", self.max_steps.map(Value::from));
        put("learning_rate", self.learning_rate.map(Value::from));
        put(
            "per_device_train_batch_size",
            self.per_device_train_batch_size.map(Value::from),
        );
        put(
            "per_device_eval_batch_size",
            self.per_device_eval_batch_size.map(Value::from),
        );
        put(
            "gradient_accumulation_steps",
            self.gradient_accumulation_steps.map(Value::from),
        );
        put("weight_decay", self.weight_decay.map(Value::from));
        put("warmup_steps", self.warmup_steps.map(Value::from));
        put("logging_steps", self.logging_steps.map(Value::from));
        put("eval_steps", self.eval_steps.map(Value::from));
        put("save_steps", self.save_steps.map(Value::from));
        put("save_total_limit", self.save_total_limit.map(Value::from));
        put(
            "resume_from_checkpoint",
            self.resume_from_checkpoint.clone().map(Value::from),
        );
        if self.overwrite_output_dir {
            put("overwrite_output_dir", Some(Value::Bool(true)));
        }
        put("disable_tqdm", self.disable_tqdm.map(Value::from));
        put("seed", self.seed.map(Value::from));
        put("n_layer", self.n_layer.map(Value::from));
        put("n_head", self.n_head.map(Value::from));
        put("n_embd", self.n_embd.map(Value::from));
        put("block_size", self.block_size.map(Value::from));
        put("dropout", self.dropout.map(Value::from));
        put("train_stories", self.train_stories.map(Value::from));
        put("eval_stories", self.eval_stories.map(Value::from));
        put("check_stories", self.check_stories.map(Value::from));
        o.extend(self.set.iter().cloned());
        o
    }

    /// The job these flags describe (defaults, `--config`, flags, `--set`), checked.
    pub fn job(&self) -> Result<TrainJob> {
        let mut job = TrainJob::from_overrides(self.config.as_deref(), &self.overrides())?;
        // The overrides are JSON, which holds only text: the folder itself is kept as the
        // system gave it (a name that is not UTF-8 stays byte for byte), unless a later
        // `--set output_dir=...` replaced it.
        if let Some(dir) = &self.output_dir
            && !self
                .set
                .iter()
                .any(|(k, _)| k.replace('-', "_") == "output_dir")
        {
            job.training.output_dir = dir.clone();
        }
        Ok(job)
    }

    /// Prints the settings (`--print-config`) or trains on `--device`; returns what to print.
    pub fn run(&self) -> Result<String> {
        let job = self.job()?;
        if self.print_config {
            return job.to_toml();
        }
        let device = self.device.device()?;
        let world = crate::dist::world(job.training.ddp_backend.as_deref())?;
        match run_job(&job, &device) {
            // a rank that fails stops them all, with its message, rather than leaving the
            // others waiting for it in a collective
            Err(e) if world.world_size() > 1 => {
                crate::dist::abort_with(world.as_ref(), &e.to_string())
            }
            done => {
                crate::dist::finalize();
                done
            }
        }
    }
}
