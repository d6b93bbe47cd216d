//! Learning-rate schedules equal to Hugging Face's `get_scheduler`: a multiplier of the base
//! learning rate as a function of the number of optimiser steps already taken. As with
//! PyTorch's `LambdaLR`, step `k` (0-based) runs at `lr * lambda(k)`, so a run with warmup starts
//! at learning rate 0.
use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::args::{SchedulerType, TrainingArguments};
use crate::{Error, Result};

/// A schedule over `num_training_steps` optimiser steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrScheduler {
    pub kind: SchedulerType,
    pub base_lr: f64,
    pub num_warmup_steps: usize,
    pub num_training_steps: usize,
    /// For `cosine_with_min_lr`: the floor as a fraction of `base_lr`.
    pub min_lr_rate: f64,
    /// Number of optimiser steps taken (PyTorch's `last_epoch`).
    pub last_step: usize,
}

impl LrScheduler {
    /// Hugging Face `get_scheduler(name, optimizer, num_warmup_steps, num_training_steps)`.
    pub fn new(
        kind: SchedulerType,
        base_lr: f64,
        num_warmup_steps: usize,
        num_training_steps: usize,
    ) -> Self {
        LrScheduler {
            kind,
            base_lr,
            num_warmup_steps,
            num_training_steps,
            min_lr_rate: 0.0,
            last_step: 0,
        }
    }

    /// The schedule `args` describe for a run of `num_training_steps` steps.
    pub fn from_args(args: &TrainingArguments, num_training_steps: usize) -> Result<Self> {
        let mut s = Self::new(
            args.lr_scheduler_type,
            args.learning_rate,
            args.get_warmup_steps(num_training_steps),
            num_training_steps,
        );
        if args.lr_scheduler_type == SchedulerType::CosineWithMinLr {
            let kw = &args.lr_scheduler_kwargs;
            let get = |k: &str| -> Result<Option<f64>> {
                match kw.get(k) {
                    None => Ok(None),
                    Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                        Error::InvalidConfig(format!(
                            "TrainingArguments.lr_scheduler_kwargs.{k} must be a number, got {v}"
                        ))
                    }),
                }
            };
            s.min_lr_rate = match (get("min_lr")?, get("min_lr_rate")?) {
                (Some(_), Some(_)) => {
                    return Err(Error::ConflictingArguments(
                        "TrainingArguments.lr_scheduler_kwargs: give only one of min_lr and min_lr_rate".into(),
                    ));
                }
                (Some(m), None) if args.learning_rate > 0.0 => m / args.learning_rate,
                (Some(_), None) => 0.0,
                (None, Some(r)) => r,
                (None, None) => {
                    return Err(Error::InvalidConfig(
                        "TrainingArguments.lr_scheduler_kwargs: cosine_with_min_lr needs min_lr or min_lr_rate".into(),
                    ));
                }
            };
        }
        Ok(s)
    }

    /// The multiplier after `step` optimiser steps (Hugging Face's `lr_lambda`).
    pub fn lambda(&self, step: usize) -> f64 {
        let warm = self.num_warmup_steps;
        let total = self.num_training_steps;
        let warmup = || step as f64 / warm.max(1) as f64;
        let progress = || (step as f64 - warm as f64) / (total.saturating_sub(warm)).max(1) as f64;
        match self.kind {
            SchedulerType::Constant => 1.0,
            SchedulerType::ConstantWithWarmup => {
                if step < warm {
                    warmup()
                } else {
                    1.0
                }
            }
            SchedulerType::Linear => {
                if step < warm {
                    warmup()
                } else {
                    (0.0f64).max(
                        (total as f64 - step as f64) / (total.saturating_sub(warm)).max(1) as f64,
                    )
                }
            }
            SchedulerType::Cosine | SchedulerType::CosineWithMinLr => {
                if step < warm {
                    return warmup();
                }
                let f = 0.5 * (1.0 + (PI * 0.5 * 2.0 * progress()).cos());
                let r = if self.kind == SchedulerType::Cosine {
                    0.0
                } else {
                    self.min_lr_rate
                };
                (f * (1.0 - r) + r).max(0.0)
            }
        }
    }

    /// The learning rate after `step` optimiser steps.
    pub fn lr_at(&self, step: usize) -> f64 {
        self.base_lr * self.lambda(step)
    }

    /// The learning rate the next optimiser step uses (PyTorch `get_last_lr()[0]`).
    pub fn get_last_lr(&self) -> f64 {
        self.lr_at(self.last_step)
    }

    /// Advances by one optimiser step.
    pub fn step(&mut self) {
        self.last_step += 1;
    }
}
