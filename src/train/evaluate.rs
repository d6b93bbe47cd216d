//! Evaluation and prediction: the loss (and `compute_metrics`' metrics) over an evaluation set,
//! logged and tracked for the best checkpoint, and transformers' `predict`.
use std::time::Instant;

use candle_core::{DType, Tensor};
use serde_json::json;

use super::collator::Example;
use super::data::TrainData;
use super::policy::is_task_model;
use super::predict::{EvalPrediction, Metrics, PredictionOutput, concat_padded};
use super::state::LogEntry;
use super::trainer::{IntoTrainData, Trainer, check_vocab};
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::models::PreTrainedModel;
use crate::{Error, Result};

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

impl<M: PreTrainedModel> Trainer<M> {
    /// The settings `predict_with_generate` generates with: the model's generation config,
    /// with `generation_max_length` and `generation_num_beams` from the arguments when set.
    pub fn generation_config(&self) -> Result<GenerationConfig> {
        let mut c = self.model.generation_config()?;
        if let Some(n) = self.args.generation_max_length {
            c.max_new_tokens = n.saturating_sub(1).max(1);
        }
        if let Some(n) = self.args.generation_num_beams {
            c.num_beams = n.max(1);
            c.num_return_sequences = 1;
        }
        Ok(c)
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
        self.state.log_history.push(e.clone());
        // Before the best metric moves, as transformers calls on_evaluate.
        self.fire(|cb, a, s, c| cb.on_evaluate(a, s, c, &e))?;
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
    ///
    /// With several data-parallel ranks and nothing to gather, the batches are shared out
    /// (batch k to rank k mod world) and the loss sums added up over the ranks; with
    /// predictions to gather, every rank runs every batch (the same weights give the same
    /// predictions, so `compute_metrics` sees the whole set everywhere).
    fn run_eval(&self, examples: &[Example], gather: bool) -> Result<EvalRun> {
        let (world, rank) = (self.comm.world_size(), self.comm.rank());
        let shard = world > 1 && !gather;
        let device = self.model.device().clone();
        let bs = self.args.per_device_eval_batch_size;
        // scoring only: no graph across layers (models::layers::grad_mode)
        let _graph = crate::models::layers::NoGrad::enter();
        let model = self.model.eval_copy();
        let mut run = EvalRun::default();
        let (mut preds, mut labels) = (Vec::new(), Vec::new());
        let generate = gather && self.args.predict_with_generate && model.is_encoder_decoder();
        let gen_config = generate.then(|| self.generation_config()).transpose()?;
        for (k, chunk) in examples.chunks(bs).enumerate() {
            if shard && k % world != rank {
                continue;
            }
            let b = self.collator.collate(chunk, u64::MAX - k as u64, &device)?;
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
        if shard {
            let mut sums = [run.loss_sum, run.loss_weight as f64];
            self.comm.all_reduce_sum_f64(&mut sums)?;
            run.loss_sum = sums[0];
            run.loss_weight = sums[1] as usize;
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
