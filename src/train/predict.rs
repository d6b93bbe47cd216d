//! What evaluation and `Trainer::predict` hand to `compute_metrics`: every example's
//! predictions (the model's logits) and labels, gathered over the batches on the CPU
//! (transformers' `EvalPrediction`), and what `predict` returns (`PredictionOutput`).
use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{D, DType, Device, Tensor};

use crate::kernels::IGNORE_INDEX;
use crate::tokenizer::DecodeOptions;
use crate::{Error, Result};

/// Named metrics (`accuracy`, `f1`, ...), sorted by name.
pub type Metrics = BTreeMap<String, f64>;

/// A `compute_metrics` function: predictions and labels to named metrics.
pub type ComputeMetrics = Arc<dyn Fn(&EvalPrediction) -> Result<Metrics> + Send + Sync>;

/// Predictions and labels of a whole evaluation set, on the CPU.
#[derive(Clone, Debug)]
pub struct EvalPrediction {
    /// The logits of every example, f32 `[n, ..]`: `[n, num_labels]` for a classifier,
    /// `[n, seq, 2]` (start, end) for a QA model, `[n, seq, vocab]` for a language model.
    /// Rows of different lengths are padded with -100, as transformers pads them.
    pub predictions: Tensor,
    /// The labels the collator built, `[n]` (class ids, i64; regression targets, f32),
    /// `[n, k]` (multi-label floats; QA start and end, i64), or `[n, seq]` (language models,
    /// -100 padded).
    pub label_ids: Tensor,
}

impl EvalPrediction {
    /// The predicted class of each example: the argmax of the last axis of `[n, num_labels]`
    /// logits (transformers users write `np.argmax(logits, axis=-1)`).
    pub fn argmax(&self) -> Result<Vec<i64>> {
        let p = &self.predictions;
        if p.rank() != 2 {
            return Err(Error::InvalidArgument(format!(
                "EvalPrediction::argmax expects [examples, num_labels] logits (a sequence classifier), got {:?}",
                p.dims()
            )));
        }
        Ok(p.argmax(D::Minus1)?
            .to_dtype(DType::I64)?
            .to_vec1::<i64>()?)
    }

    /// Generated sequences (with `predict_with_generate`; `[n, len]` token ids): each row's
    /// ids without the -100 that pads rows of different batches to one length.
    pub fn sequences(&self) -> Result<Vec<Vec<u32>>> {
        rows_of_ids(&self.predictions, "predictions")
    }

    /// Each example's label ids (`[n, seq]`: a seq2seq target, or a language model's labels)
    /// without the -100 that pads them.
    pub fn label_sequences(&self) -> Result<Vec<Vec<u32>>> {
        rows_of_ids(&self.label_ids, "label_ids")
    }

    /// The generated texts and the reference texts (labels), decoded with `tokenizer`,
    /// special tokens (padding, EOS, the decoder start) skipped: what BLEU, chrF and ROUGE
    /// score, as `tokenizer.batch_decode(preds, skip_special_tokens=True)` in a transformers
    /// `compute_metrics`.
    ///
    /// ```no_run
    /// # use massivetext::prelude::*;
    /// # use massivetext::train::EvalPrediction;
    /// # fn f(trainer: Trainer<AutoModelForSeq2SeqLM>, tok: Tokenizer) -> Result<()> {
    /// let trainer = trainer.with_compute_metrics(move |p: &EvalPrediction| {
    ///     let (hyps, refs) = p.decode(&tok)?;
    ///     let bleu = corpus_bleu(&hyps, &[refs])?;
    ///     Ok([("bleu".to_string(), bleu.score)].into())
    /// });
    /// # Ok(()) }
    /// ```
    pub fn decode(
        &self,
        tokenizer: &crate::tokenizer::Tokenizer,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let dec = |rows: Vec<Vec<u32>>| -> Result<Vec<String>> {
            rows.iter()
                .map(|r| tokenizer.decode(r, DecodeOptions::SKIP_SPECIAL_TOKENS))
                .collect()
        };
        Ok((dec(self.sequences()?)?, dec(self.label_sequences()?)?))
    }

    /// The label ids as integers, one per example (`[n]` labels).
    pub fn labels(&self) -> Result<Vec<i64>> {
        let l = &self.label_ids;
        if l.rank() != 1 {
            return Err(Error::InvalidArgument(format!(
                "EvalPrediction::labels expects one label per example, got shape {:?}",
                l.dims()
            )));
        }
        Ok(l.to_dtype(DType::I64)?.to_vec1::<i64>()?)
    }
}

/// The rows of an integer `[n, len]` tensor without -100 (nor negative values).
fn rows_of_ids(t: &Tensor, what: &str) -> Result<Vec<Vec<u32>>> {
    if t.rank() != 2 || t.dtype().is_float() {
        return Err(Error::InvalidArgument(format!(
            "{what} must be token ids [examples, len] (set predict_with_generate for generated ids), got {:?} {:?}",
            t.dtype(),
            t.dims()
        )));
    }
    Ok(t.to_dtype(DType::I64)?
        .to_vec2::<i64>()?
        .into_iter()
        .map(|r| {
            r.into_iter()
                .filter(|&x| x >= 0)
                .map(|x| x as u32)
                .collect()
        })
        .collect())
}

/// What `Trainer::predict` returns (transformers' `PredictionOutput`).
#[derive(Clone, Debug)]
pub struct PredictionOutput {
    /// The logits of every example (see [`EvalPrediction::predictions`]).
    pub predictions: Tensor,
    /// The labels, when the data had them.
    pub label_ids: Option<Tensor>,
    /// `test_loss` (when labelled) and `compute_metrics`'s metrics with the `test_` prefix,
    /// and `test_runtime`.
    pub metrics: Metrics,
}

/// Concatenates `[b_i, ..]` tensors along the first axis on the CPU, padding the second
/// axis (when lengths differ) with -100 as transformers' `nested_concat` does.
pub(crate) fn concat_padded(parts: &[Tensor]) -> Result<Tensor> {
    let Some(first) = parts.first() else {
        return Err(Error::InvalidArgument("nothing to gather".into()));
    };
    if first.rank() < 2 || parts.iter().all(|p| p.dims()[1..] == first.dims()[1..]) {
        return Ok(Tensor::cat(parts, 0)?);
    }
    let longest = parts
        .iter()
        .map(|p| p.dim(1).unwrap_or(0))
        .max()
        .unwrap_or(0);
    let padded = parts
        .iter()
        .map(|p| {
            let n = p.dim(1)?;
            if n == longest {
                return Ok(p.clone());
            }
            let mut shape = p.dims().to_vec();
            shape[1] = longest - n;
            let fill = (Tensor::ones(shape, p.dtype(), &Device::Cpu)? * IGNORE_INDEX as f64)?;
            Ok(Tensor::cat(&[p, &fill], 1)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&padded, 0)?)
}
