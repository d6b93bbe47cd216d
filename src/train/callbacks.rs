//! Callbacks, as transformers' `TrainerCallback`: code of the user's that the [`Trainer`]
//! calls at fixed points of a run (a step ends, a log row is written, an evaluation is done, a
//! checkpoint is saved), with a [`TrainerControl`] it may change to stop training or to ask
//! for a log, an evaluation or a save now. [`EarlyStoppingCallback`] is the one transformers
//! ships.
//!
//! [`Trainer`]: super::Trainer
use super::args::{IntervalStrategy, TrainingArguments};
use super::state::{LogEntry, TrainerState};
use crate::{Error, Result};

/// What callbacks ask of the training loop, as transformers' `TrainerControl`. The loop reads
/// the flags after each call and clears the `should_log` / `should_evaluate` / `should_save`
/// requests once done; `should_training_stop` ends `train()` after the current step's logging,
/// evaluation and saving.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainerControl {
    pub should_training_stop: bool,
    pub should_log: bool,
    pub should_evaluate: bool,
    pub should_save: bool,
}

/// Code called by the [`Trainer`](super::Trainer) during a run. Every method has an empty
/// default; implement the ones you need. An `Err` stops training with that error.
///
/// The callback sees the arguments, the state (`global_step`, `epoch`, `log_history`,
/// `best_metric`, …) and the control; `on_log` and `on_evaluate` also get the row just written
/// to `log_history`.
///
/// ```
/// use massivetext::train::{TrainerCallback, TrainerControl, TrainerState, TrainingArguments};
/// /// Stops a run once the training loss is below a target.
/// #[derive(Clone)]
/// struct StopBelow(f64);
/// impl TrainerCallback for StopBelow {
///     fn on_log(
///         &mut self,
///         _args: &TrainingArguments,
///         _state: &TrainerState,
///         control: &mut TrainerControl,
///         logs: &massivetext::train::LogEntry,
///     ) -> massivetext::Result<()> {
///         if logs.get("loss").and_then(|v| v.as_f64()).is_some_and(|l| l < self.0) {
///             control.should_training_stop = true;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait TrainerCallback: CloneCallback + Send {
    /// Once, when `train()` starts (after a resume).
    fn on_train_begin(
        &mut self,
        _args: &TrainingArguments,
        _state: &TrainerState,
        _control: &mut TrainerControl,
    ) -> Result<()> {
        Ok(())
    }
    /// After each optimiser update, before its logging, evaluation and saving.
    fn on_step_end(
        &mut self,
        _args: &TrainingArguments,
        _state: &TrainerState,
        _control: &mut TrainerControl,
    ) -> Result<()> {
        Ok(())
    }
    /// After a row of training logs (`loss`, `learning_rate`, `grad_norm`, …) is added.
    fn on_log(
        &mut self,
        _args: &TrainingArguments,
        _state: &TrainerState,
        _control: &mut TrainerControl,
        _logs: &LogEntry,
    ) -> Result<()> {
        Ok(())
    }
    /// After an evaluation, with its row (`eval_loss`, the `eval_` metrics). As in
    /// transformers, `state.best_metric` is still the best of the evaluations before this one.
    fn on_evaluate(
        &mut self,
        _args: &TrainingArguments,
        _state: &TrainerState,
        _control: &mut TrainerControl,
        _metrics: &LogEntry,
    ) -> Result<()> {
        Ok(())
    }
    /// After a checkpoint is written.
    fn on_save(
        &mut self,
        _args: &TrainingArguments,
        _state: &TrainerState,
        _control: &mut TrainerControl,
    ) -> Result<()> {
        Ok(())
    }
    /// When `train()` ends, stopped early or not.
    fn on_train_end(
        &mut self,
        _args: &TrainingArguments,
        _state: &TrainerState,
        _control: &mut TrainerControl,
    ) -> Result<()> {
        Ok(())
    }
}

/// Lets a [`Trainer`](super::Trainer) holding callbacks be cloned (each clone gets its own copy
/// of each callback's state). Implemented for every `Clone` callback: derive `Clone`.
pub trait CloneCallback {
    fn clone_box(&self) -> Box<dyn TrainerCallback>;
}

impl<T: TrainerCallback + Clone + 'static> CloneCallback for T {
    fn clone_box(&self) -> Box<dyn TrainerCallback> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn TrainerCallback> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Stops training when the metric that picks the best model (`metric_for_best_model`, with
/// `greater_is_better`) has not improved for `patience` evaluations in a row, as transformers'
/// `EarlyStoppingCallback(early_stopping_patience, early_stopping_threshold)`: an evaluation
/// counts as an improvement when it beats the best so far by more than `threshold`.
///
/// Needs, as transformers asserts: `load_best_model_at_end`, a `metric_for_best_model`, and an
/// evaluation strategy; the first call of `train()` says which is missing.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStoppingCallback {
    pub patience: usize,
    pub threshold: f64,
    /// Evaluations since the last improvement.
    pub patience_counter: usize,
}

impl EarlyStoppingCallback {
    pub fn new(patience: usize, threshold: f64) -> Self {
        Self {
            patience,
            threshold,
            patience_counter: 0,
        }
    }
}

impl Default for EarlyStoppingCallback {
    /// transformers' defaults: patience 1, threshold 0.
    fn default() -> Self {
        Self::new(1, 0.0)
    }
}

impl TrainerCallback for EarlyStoppingCallback {
    fn on_train_begin(
        &mut self,
        args: &TrainingArguments,
        _state: &TrainerState,
        _control: &mut TrainerControl,
    ) -> Result<()> {
        let missing = if !args.load_best_model_at_end {
            Some("load_best_model_at_end = true")
        } else if args.metric_for_best_model.is_none() {
            Some("a metric_for_best_model (e.g. \"eval_loss\")")
        } else if args.eval_strategy == IntervalStrategy::No {
            Some("an eval_strategy of \"steps\" or \"epoch\"")
        } else {
            None
        };
        match missing {
            Some(what) => Err(Error::InvalidConfig(format!(
                "EarlyStoppingCallback needs {what} in TrainingArguments, as in transformers: it watches the metric that picks the best checkpoint"
            ))),
            None => Ok(()),
        }
    }

    fn on_evaluate(
        &mut self,
        args: &TrainingArguments,
        state: &TrainerState,
        control: &mut TrainerControl,
        metrics: &LogEntry,
    ) -> Result<()> {
        let key = args.best_metric_key();
        // transformers warns and carries on when the metric is missing; evaluate() has
        // already refused a metric_for_best_model it does not produce.
        let Some(value) = metrics.get(&key).and_then(|v| v.as_f64()) else {
            return Ok(());
        };
        let improved = match state.best_metric {
            None => true,
            Some(best) => {
                let better = if args.greater_is_better() {
                    value > best
                } else {
                    value < best
                };
                better && (value - best).abs() > self.threshold
            }
        };
        if improved {
            self.patience_counter = 0;
        } else {
            self.patience_counter += 1;
        }
        if self.patience_counter >= self.patience {
            control.should_training_stop = true;
        }
        Ok(())
    }
}
