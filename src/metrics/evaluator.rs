//! `Evaluator`: run a language model over an eval set batch by batch and report eval_loss,
//! perplexity and token accuracy, keeping only running sums (never all the logits).
//!
//! ```
//! use massivetext::prelude::*;
//! use massivetext::metrics::Evaluator;
//! let config = Gpt2Config { n_layer: 1, n_embd: 32, n_head: 2, n_positions: 16, ..Gpt2Config::small(50) };
//! let model = AutoModelForCausalLM::from_config(&config, &Device::Cpu)?;
//! let blocks = vec![vec![1u32, 2, 3, 4, 5, 6], vec![7, 8, 9, 10, 11, 12]];
//! let result = Evaluator::new().batch_size(2).evaluate_ids(&model, &blocks)?;
//! assert_eq!(result.num_tokens, 10); // 5 predicted tokens per block
//! assert!((result.perplexity - result.eval_loss.exp()).abs() < 1e-9);
//! # Ok::<(), massivetext::Error>(())
//! ```
use std::fmt;

use candle_core::{D, DType, Device, Tensor};
use serde_json::Value;

use crate::data::Dataset;
use crate::kernels;
use crate::models::{ForwardArgs, PreTrainedModel, Task};
use crate::{Error, Result};

pub use crate::kernels::IGNORE_INDEX;

/// Logits `[batch, seq, vocab]` of a language model for u32 `input_ids` and a 0/1 mask.
pub(crate) fn lm_logits<M: PreTrainedModel>(
    model: &M,
    input_ids: &Tensor,
    attention_mask: Option<&Tensor>,
) -> Result<Tensor> {
    let mut args = ForwardArgs::new(input_ids);
    args.attention_mask = attention_mask.cloned();
    Ok(model.forward_with(&args)?.logits)
}

/// True for left-to-right models (labels are shifted inside, as transformers does).
pub(crate) fn is_causal<M: PreTrainedModel>(model: &M) -> bool {
    model.task() == Task::CausalLm
}

/// The longest sequence the model takes (its position table), unbounded when it does not say.
pub(crate) fn max_positions<M: PreTrainedModel>(model: &M) -> usize {
    model.max_positions().unwrap_or(usize::MAX)
}

/// The model's `model_type`, for messages.
pub(crate) fn model_type<M: PreTrainedModel>(model: &M) -> String {
    model.config_json()["model_type"]
        .as_str()
        .unwrap_or("unknown")
        .to_string()
}

/// Per position of `logits` (`[n, vocab]`): the negative log-likelihood of `targets[i]` (0 where
/// the target is [`IGNORE_INDEX`]) and the arg-max token. Computed as `logsumexp - logit[target]`
/// in f32, like PyTorch's cross-entropy; the `[n, vocab]` log-softmax is never materialised.
pub(crate) fn nll_and_argmax(logits: &Tensor, targets: &[i64]) -> Result<(Vec<f32>, Vec<u32>)> {
    let (n, v) = logits.dims2()?;
    if n != targets.len() {
        return Err(Error::InvalidArgument(format!(
            "{} targets for {n} logit rows",
            targets.len()
        )));
    }
    for &t in targets {
        kernels::check_label(t, v)?;
    }
    let x = logits.to_dtype(DType::F32)?;
    let max = x.max_keepdim(D::Minus1)?;
    let lse = x
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)?;
    let idx: Vec<u32> = targets
        .iter()
        .map(|&t| if t == IGNORE_INDEX { 0 } else { t as u32 })
        .collect();
    let idx = Tensor::from_vec(idx, (n, 1), x.device())?;
    let picked = x.gather(&idx, 1)?;
    let nll: Vec<f32> = lse.sub(&picked)?.squeeze(1)?.to_vec1()?;
    let nll = nll
        .into_iter()
        .zip(targets)
        .map(|(l, &t)| if t == IGNORE_INDEX { 0.0 } else { l })
        .collect();
    let argmax: Vec<u32> = x.argmax(D::Minus1)?.to_vec1()?;
    Ok((nll, argmax))
}

/// Running sums of an evaluation: summed NLL, predicted tokens, correct arg-max predictions.
/// Feed it one batch of logits at a time (what a training loop's eval step does) and read the
/// result at the end; nothing of the batch is kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalAccumulator {
    pub nll_sum: f64,
    pub num_tokens: usize,
    pub num_correct: usize,
    pub num_samples: usize,
    pub num_batches: usize,
}

impl EvalAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch: `logits` `[batch, seq, vocab]`, `labels` integer `[batch, seq]` with -100
    /// on positions left out. Causal: logits at t are scored against labels at t+1 (the shift
    /// transformers does inside the model); masked: logits at t against labels at t.
    pub fn update(&mut self, logits: &Tensor, labels: &Tensor, causal: bool) -> Result<()> {
        let (b, t, v) = logits.dims3()?;
        if labels.dims() != [b, t] {
            return Err(Error::InvalidArgument(format!(
                "labels have shape {:?}, expected [{b}, {t}] like the logits",
                labels.dims()
            )));
        }
        let mut targets: Vec<i64> = labels.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
        if causal {
            for row in targets.chunks_mut(t) {
                row.rotate_left(1);
                row[t - 1] = IGNORE_INDEX;
            }
        }
        let (nll, argmax) = nll_and_argmax(&logits.reshape((b * t, v))?, &targets)?;
        for ((l, p), &y) in nll.iter().zip(&argmax).zip(&targets) {
            if y != IGNORE_INDEX {
                self.nll_sum += *l as f64;
                self.num_tokens += 1;
                if *p as i64 == y {
                    self.num_correct += 1;
                }
            }
        }
        self.num_samples += b;
        self.num_batches += 1;
        Ok(())
    }

    /// The metrics so far; an error when no token was scored.
    pub fn finish(&self) -> Result<EvalResult> {
        if self.num_tokens == 0 {
            return Err(Error::EmptyMetricInput {
                what: "the eval set (no position has a label other than -100)".into(),
            });
        }
        let eval_loss = self.nll_sum / self.num_tokens as f64;
        Ok(EvalResult {
            eval_loss,
            perplexity: eval_loss.exp(),
            accuracy: self.num_correct as f64 / self.num_tokens as f64,
            num_tokens: self.num_tokens,
            num_samples: self.num_samples,
            num_batches: self.num_batches,
        })
    }
}

/// What [`Evaluator`] reports.
///
/// `eval_loss` is the mean NLL over every labelled (predicted) token of the eval set and
/// `perplexity = exp(eval_loss)`. Hugging Face's Trainer instead averages per-batch mean losses
/// weighted by batch size; the two agree whenever every row has the same number of labelled
/// tokens (the fixed-length blocks of `group_texts`), and ours is the exact corpus value otherwise.
/// `accuracy` is token accuracy: arg-max predictions equal to the label over the same tokens
/// (masked-token accuracy for a masked LM), as run_clm.py / run_mlm.py's `compute_metrics`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EvalResult {
    pub eval_loss: f64,
    pub perplexity: f64,
    pub accuracy: f64,
    /// Tokens scored (labels other than -100, after the causal shift).
    pub num_tokens: usize,
    pub num_samples: usize,
    pub num_batches: usize,
}

impl EvalResult {
    /// The metrics under Trainer's names: `eval_loss`, `perplexity`, `eval_accuracy`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        vec![
            ("eval_loss".into(), self.eval_loss),
            ("perplexity".into(), self.perplexity),
            ("eval_accuracy".into(), self.accuracy),
        ]
    }

    pub fn to_html(&self) -> String {
        super::html_table(
            &["eval_loss", "perplexity", "accuracy", "tokens", "samples"],
            &[vec![
                format!("{:.4}", self.eval_loss),
                format!("{:.4}", self.perplexity),
                format!("{:.4}", self.accuracy),
                self.num_tokens.to_string(),
                self.num_samples.to_string(),
            ]],
        )
    }

    /// Renders the result as an HTML table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        crate::display::emit("text/html", &self.to_html());
    }
}

impl fmt::Display for EvalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "eval_loss = {:.4} | perplexity = {:.4} | accuracy = {:.4} ({} tokens, {} samples)",
            self.eval_loss, self.perplexity, self.accuracy, self.num_tokens, self.num_samples
        )
    }
}

/// One row of an eval set, as the model sees it.
struct EvalRow {
    ids: Vec<u32>,
    mask: Vec<u32>,
    labels: Vec<i64>,
}

/// Runs a language model over an eval set in batches (Hugging Face's `Trainer.evaluate` loop
/// without a trainer): each batch is padded on the right, run in inference mode, reduced to
/// [`EvalAccumulator`] sums and dropped, so memory stays at one batch of logits.
#[derive(Clone, Debug)]
pub struct Evaluator {
    batch_size: usize,
}

impl Default for Evaluator {
    fn default() -> Self {
        Self { batch_size: 8 }
    }
}

impl Evaluator {
    /// Batch size 8 (Trainer's `per_device_eval_batch_size` default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows per forward pass (0 is treated as 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Evaluates token-id rows; every token is a label (a causal LM predicts all but the first
    /// of each row). For a masked LM use [`Evaluator::evaluate_labeled`].
    pub fn evaluate_ids<M: PreTrainedModel>(
        &self,
        model: &M,
        rows: &[Vec<u32>],
    ) -> Result<EvalResult> {
        self.run(model, rows.len(), |i| {
            let ids = rows[i].clone();
            Ok(EvalRow {
                mask: vec![1; ids.len()],
                labels: ids.iter().map(|&x| x as i64).collect(),
                ids,
            })
        })
    }

    /// Evaluates rows with explicit labels (-100 where not scored), e.g. masked inputs and the
    /// original ids at the masked positions for a masked LM.
    pub fn evaluate_labeled<M: PreTrainedModel>(
        &self,
        model: &M,
        rows: &[Vec<u32>],
        labels: &[Vec<i64>],
    ) -> Result<EvalResult> {
        if rows.len() != labels.len() {
            return Err(Error::MetricLengthMismatch {
                what: "the labels".into(),
                found: labels.len(),
                expected_what: "the input rows".into(),
                expected: rows.len(),
            });
        }
        self.run(model, rows.len(), |i| {
            if rows[i].len() != labels[i].len() {
                return Err(Error::InvalidArgument(format!(
                    "row {i}: {} labels for {} input ids; give one label per token (-100 to skip)",
                    labels[i].len(),
                    rows[i].len()
                )));
            }
            Ok(EvalRow {
                ids: rows[i].clone(),
                mask: vec![1; rows[i].len()],
                labels: labels[i].clone(),
            })
        })
    }

    /// Evaluates a tokenized [`Dataset`]: columns `input_ids`, optional `attention_mask` and
    /// optional `labels` (as `group_texts` or a masking collator writes them). Without `labels`,
    /// a causal LM is scored on every unpadded token; a masked LM needs `labels`.
    pub fn evaluate<M: PreTrainedModel>(&self, model: &M, dataset: &Dataset) -> Result<EvalResult> {
        let ids_col = dataset.column("input_ids")?;
        let mask_col = dataset.column("attention_mask").ok();
        let labels_col = dataset.column("labels").ok();
        if labels_col.is_none() && !is_causal(model) {
            return Err(Error::InvalidArgument(
                "a masked LM is evaluated on masked tokens: the dataset needs a `labels` column (original ids at masked positions, -100 elsewhere)".into(),
            ));
        }
        self.run(model, dataset.num_rows(), |i| {
            let ids: Vec<u32> = int_list(&ids_col[i], "input_ids", i)?
                .into_iter()
                .map(|x| {
                    u32::try_from(x).map_err(|_| {
                        Error::InvalidArgument(format!("input_ids row {i}: token id {x} is negative"))
                    })
                })
                .collect::<Result<_>>()?;
            let mask: Vec<u32> = match mask_col {
                Some(c) => int_list(&c[i], "attention_mask", i)?
                    .into_iter()
                    .map(|x| u32::from(x != 0))
                    .collect(),
                None => vec![1; ids.len()],
            };
            let labels: Vec<i64> = match labels_col {
                Some(c) => int_list(&c[i], "labels", i)?,
                None => ids
                    .iter()
                    .zip(&mask)
                    .map(|(&x, &m)| if m == 1 { x as i64 } else { IGNORE_INDEX })
                    .collect(),
            };
            if mask.len() != ids.len() || labels.len() != ids.len() {
                return Err(Error::InvalidArgument(format!(
                    "row {i}: input_ids has {} entries, attention_mask {}, labels {}; they must have the same length",
                    ids.len(),
                    mask.len(),
                    labels.len()
                )));
            }
            Ok(EvalRow { ids, mask, labels })
        })
    }

    fn run<M: PreTrainedModel>(
        &self,
        model: &M,
        n: usize,
        row: impl Fn(usize) -> Result<EvalRow>,
    ) -> Result<EvalResult> {
        if n == 0 {
            return Err(Error::EmptyMetricInput {
                what: "the eval set".into(),
            });
        }
        // scoring only: no graph across layers (models::layers::grad_mode)
        let _graph = crate::models::layers::NoGrad::enter();
        let model = model.eval_copy();
        let max = max_positions(&model);
        let dev = model.device();
        let mut acc = EvalAccumulator::new();
        let mut start = 0;
        while start < n {
            let end = (start + self.batch_size).min(n);
            let rows: Vec<EvalRow> = (start..end).map(&row).collect::<Result<_>>()?;
            let t = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
            if t == 0 {
                start = end;
                continue;
            }
            if t > max {
                let i = start + rows.iter().position(|r| r.ids.len() == t).unwrap_or(0);
                return Err(Error::InvalidArgument(format!(
                    "eval row {i} has {t} tokens but the model holds {max} positions; cut the text into blocks (group_texts) of at most {max} tokens"
                )));
            }
            let b = rows.len();
            let (mut ids, mut mask, mut labels) = (
                Vec::with_capacity(b * t),
                Vec::with_capacity(b * t),
                Vec::with_capacity(b * t),
            );
            for r in &rows {
                let pad = t - r.ids.len();
                ids.extend_from_slice(&r.ids);
                ids.extend(std::iter::repeat_n(0u32, pad));
                mask.extend_from_slice(&r.mask);
                mask.extend(std::iter::repeat_n(0u32, pad));
                labels.extend_from_slice(&r.labels);
                labels.extend(std::iter::repeat_n(IGNORE_INDEX, pad));
            }
            let ids = Tensor::from_vec(ids, (b, t), dev)?;
            let mask = Tensor::from_vec(mask, (b, t), dev)?;
            let labels = Tensor::from_vec(labels, (b, t), &Device::Cpu)?;
            let logits = lm_logits(&model, &ids, Some(&mask))?;
            acc.update(&logits, &labels, is_causal(&model))?;
            start = end;
        }
        acc.finish()
    }
}

/// A JSON array of integers from dataset column `column`, row `row`.
fn int_list(v: &Value, column: &str, row: usize) -> Result<Vec<i64>> {
    let type_err = |found: &str| Error::ColumnType {
        column: column.to_string(),
        row,
        expected: "a list of integers".into(),
        found: found.to_string(),
    };
    let Value::Array(items) = v else {
        return Err(type_err("a non-list value"));
    };
    items
        .iter()
        .map(|x| {
            x.as_i64()
                .ok_or_else(|| type_err(&format!("the element {x}")))
        })
        .collect()
}
