//! The losses of the task heads, as transformers computes them: sequence classification by
//! `problem_type` (cross-entropy, MSE, BCE-with-logits) and extractive QA (the mean of the start
//! and end cross-entropies, positions clamped to `[0, seq_len]` with `seq_len` ignored).
//! Built from candle ops (and the cross-entropy kernel), so each has a backward pass.
use candle_core::{DType, Tensor};

use super::labels::ProblemType;
use crate::kernels::{self, IGNORE_INDEX};
use crate::{Error, Result};

fn is_integer(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::U8 | DType::U32 | DType::I64)
}

/// The loss of a sequence classifier's `logits [b, n]` against `labels`; `problem_type`
/// `None` is inferred as transformers does ([`ProblemType::infer`]).
pub(crate) fn classification_loss(
    logits: &Tensor,
    labels: &Tensor,
    problem_type: Option<ProblemType>,
) -> Result<Tensor> {
    let (b, n) = logits.dims2()?;
    let logits = logits.to_dtype(DType::F32)?;
    let labels = labels.to_device(logits.device())?;
    let problem = problem_type.unwrap_or_else(|| ProblemType::infer(n, is_integer(&labels)));
    match problem {
        ProblemType::SingleLabelClassification => {
            if !is_integer(&labels) {
                return Err(Error::InvalidArgument(format!(
                    "single-label classification needs integer class ids as labels (u32 or i64 [batch]), got {:?}; for soft or multiple labels set problem_type to multi_label_classification",
                    labels.dtype()
                )));
            }
            if labels.elem_count() != b {
                return Err(Error::InvalidArgument(format!(
                    "labels have shape {:?}: single-label classification takes one class id per example, [{b}]",
                    labels.dims()
                )));
            }
            let labels = labels.to_dtype(DType::I64)?.flatten_all()?;
            // one small read: the ids, checked here so the message names num_labels
            let host: Vec<i64> = labels.to_vec1()?;
            if let Some(&bad) = host
                .iter()
                .find(|&&l| l != IGNORE_INDEX && (l < 0 || l as usize >= n))
            {
                return Err(Error::InvalidArgument(format!(
                    "label {bad} is out of range for a model with num_labels = {n} (ids 0..{n}); check the label column, or load the model with that many labels (LabelConfig::new)"
                )));
            }
            Ok(kernels::cross_entropy(&logits, &labels)?)
        }
        ProblemType::Regression => {
            let labels = labels.to_dtype(DType::F32)?;
            // transformers: MSE(logits.squeeze(), labels.squeeze()) for one label
            let (pred, target) = if n == 1 {
                if labels.elem_count() != b {
                    return Err(Error::InvalidArgument(format!(
                        "labels have shape {:?}: regression with one output takes one float per example, [{b}]",
                        labels.dims()
                    )));
                }
                (logits.flatten_all()?, labels.flatten_all()?)
            } else {
                if labels.dims() != [b, n] {
                    return Err(Error::InvalidArgument(format!(
                        "labels have shape {:?}: regression with {n} outputs takes floats [{b}, {n}]",
                        labels.dims()
                    )));
                }
                (logits, labels)
            };
            Ok((pred - target)?.sqr()?.mean_all()?)
        }
        ProblemType::MultiLabelClassification => {
            if labels.dims() != [b, n] {
                return Err(Error::InvalidArgument(format!(
                    "labels have shape {:?}: multi-label classification takes a float 0/1 (or probability) per label, [{b}, {n}]",
                    labels.dims()
                )));
            }
            let y = labels.to_dtype(DType::F32)?;
            // BCEWithLogits, stably: max(x, 0) - x y + log(1 + exp(-|x|))
            let soft = ((logits.abs()?.neg()?.exp()? + 1.0)?).log()?;
            let per = ((logits.relu()? - (&logits * &y)?)? + soft)?;
            Ok(per.mean_all()?)
        }
    }
}

/// Positions `[b]` (or `[b, 1]`) clamped to `[0, t]`, with `t` (out of the sequence) ignored.
fn clamp_positions(p: &Tensor, b: usize, t: usize, what: &str) -> Result<Tensor> {
    if !is_integer(p) || p.elem_count() != b {
        return Err(Error::InvalidArgument(format!(
            "{what} must be integer token indices, one per example ([{b}]), got {:?} {:?}",
            p.dtype(),
            p.dims()
        )));
    }
    let p = p
        .to_dtype(DType::I64)?
        .flatten_all()?
        .clamp(0i64, t as i64)?;
    let ignored = Tensor::full(IGNORE_INDEX, b, p.device())?;
    Ok(p.eq(t as i64)?.where_cond(&ignored, &p)?)
}

/// transformers' QA loss: the mean of the start and end cross-entropies; a position beyond
/// the sequence (or exactly `seq_len`) leaves that example out, a negative one counts as 0.
pub(crate) fn question_answering_loss(
    start_logits: &Tensor,
    end_logits: &Tensor,
    start_positions: &Tensor,
    end_positions: &Tensor,
) -> Result<Tensor> {
    let (b, t) = start_logits.dims2()?;
    let dev = start_logits.device();
    let s = clamp_positions(&start_positions.to_device(dev)?, b, t, "start_positions")?;
    let e = clamp_positions(&end_positions.to_device(dev)?, b, t, "end_positions")?;
    let ls = kernels::cross_entropy(&start_logits.to_dtype(DType::F32)?, &s)?;
    let le = kernels::cross_entropy(&end_logits.to_dtype(DType::F32)?, &e)?;
    Ok(((ls + le)? / 2.0)?)
}

/// A language model's loss from its last hidden states `h [b, t, d]`, `labels [b, t]` (already
/// aligned with `h`: -100 where no token is predicted) and its `head` (hidden rows → logits):
/// the mean cross-entropy over the labelled rows, as transformers computes it.
///
/// Why not logits for every row: transformers runs the vocabulary projection, the largest
/// matrix product in a small model, over every position, then ignores the -100 ones. Padding in
/// a translation batch (a third of the decoder rows) and the unmasked 85% of a masked-LM batch
/// are such rows. Here the head and the cross-entropy see only the labelled rows, so the loss
/// and every gradient are the same and that work is skipped. Gathering copies the kept rows and
/// scatters their gradient back, which pays only when a real share of rows is ignored: a causal
/// LM ignores just the last position of each row and keeps the plain path.
pub(crate) fn lm_loss(
    h: &Tensor,
    labels: &Tensor,
    head: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let labels = labels.to_dtype(DType::I64)?.flatten_all()?;
    let d = h.dim(candle_core::D::Minus1)?;
    let rows = h.elem_count() / d.max(1);
    if labels.elem_count() != rows {
        return Err(Error::InvalidArgument(format!(
            "{} labels for {rows} hidden rows {:?}",
            labels.elem_count(),
            h.dims()
        )));
    }
    let host: Vec<i64> = labels.to_vec1()?;
    let kept: Vec<u32> = (0..host.len() as u32)
        .filter(|&i| host[i as usize] != IGNORE_INDEX)
        .collect();
    // gather when at least one row in 8 is ignored (and some row is not)
    let (h, labels) = if !kept.is_empty() && kept.len() * 8 <= rows * 7 {
        let n = kept.len();
        let kept = Tensor::from_vec(kept, n, h.device())?;
        let h = h.reshape((rows, d))?.index_select(&kept, 0)?;
        (h, labels.index_select(&kept, 0)?)
    } else {
        (h.clone(), labels)
    };
    let logits = head(&h)?;
    Ok(kernels::cross_entropy(
        &logits.to_dtype(DType::F32)?,
        &labels,
    )?)
}
