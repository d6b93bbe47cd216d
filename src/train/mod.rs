//! Training: [`TrainingArguments`] and a [`Trainer`] with Hugging Face's vocabulary — AdamW with
//! no-decay groups, learning-rate schedules, clipping, gradient accumulation normalised by token
//! count, collators for causal and masked LM, evaluation, checkpoints that resume exactly, and
//! progress for terminals and notebooks.
//!
//! The Trainer knows models only through [`PreTrainedModel`]: a forward pass with labels that
//! returns the loss, a `VarMap` of named parameters, the device, and `save_pretrained`.
//!
//! ```
//! use massivetext::train::{LrScheduler, SchedulerType, TrainingArguments};
//! let args = TrainingArguments {
//!     output_dir: "out".into(),
//!     learning_rate: 1e-3,
//!     warmup_steps: 10,
//!     lr_scheduler_type: SchedulerType::Cosine,
//!     ..Default::default()
//! };
//! let sched = LrScheduler::from_args(&args, 100)?;
//! assert_eq!(sched.lr_at(0), 0.0);
//! assert_eq!(sched.lr_at(10), 1e-3);
//! # Ok::<(), massivetext::Error>(())
//! ```
mod args;
mod args_show;
pub mod cli;
mod collator;
mod data;
mod optimizer;
mod predict;
mod progress;
mod qa;
mod schedule;
mod state;
mod trainer;

pub use crate::models::{PreTrainedModel, uses_weight_decay};
pub use args::{IntervalStrategy, SchedulerType, TrainingArguments};
pub use collator::{
    Batch, Collator, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq,
    DataCollatorWithPadding, Example, IGNORE_INDEX, TaskLabel,
};
pub use data::{EpochOrder, TokenWindows, TrainData};
pub use optimizer::{AdamW, AdamWConfig, Grads};
pub use predict::{ComputeMetrics, EvalPrediction, Metrics, PredictionOutput};
pub use progress::ProgressMode;
pub use qa::question_answering_example;
pub use schedule::LrScheduler;
pub use state::{
    LogEntry, TrainerState, checkpoint_step, get_last_checkpoint, rotate_checkpoints,
    sorted_checkpoints, sweep_leftovers,
};
pub use trainer::{
    EVAL_METRICS, EvalOutput, IntoTrainData, StepOutput, TrainOutput, Trainer, compute_loss,
};
