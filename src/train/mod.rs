//! The training layer; its public face, with the docs, is `crate::train` in lib.rs.
mod args;
mod args_show;
mod batch_layout;
mod callbacks;
mod checkpoint;
mod collator;
mod data;
mod evaluate;
mod log_history;
mod optimizer;
mod outputs_show;
mod policy;
mod predict;
mod progress;
mod qa;
mod schedule;
mod state;
mod trainer;

pub use crate::models::{PreTrainedModel, uses_weight_decay};
pub use args::{IntervalStrategy, SchedulerType, Steps, TrainingArguments};
pub use callbacks::{CloneCallback, EarlyStoppingCallback, TrainerCallback, TrainerControl};
pub use collator::{
    Batch, Collator, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq,
    DataCollatorWithPadding, Example, IGNORE_INDEX, TaskLabel,
};
pub use data::{EpochOrder, TokenWindows, TrainData};
pub use evaluate::EvalOutput;
pub use log_history::LogHistory;
pub use optimizer::{AdamW, AdamWConfig, Grads};
pub use policy::EVAL_METRICS;
pub use predict::{ComputeMetrics, EvalPrediction, Metrics, PredictionOutput};
pub use progress::ProgressMode;
pub use qa::question_answering_example;
pub use schedule::LrScheduler;
pub use state::{
    LogEntry, TrainerState, checkpoint_step, get_last_checkpoint, rotate_checkpoints,
    sorted_checkpoints, sweep_leftovers,
};
pub use trainer::{IntoTrainData, StepOutput, TrainOutput, Trainer, compute_loss};
