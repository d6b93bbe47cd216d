//! Precision, recall and F1 as scikit-learn's `precision_recall_fscore_support` computes them:
//! per class from true positives, predicted and true counts over the labels that occur in either
//! list (sorted), then averaged `binary`, `micro`, `macro` or `weighted` (by each class's true
//! count). A ratio with a zero denominator is 0, scikit-learn's default
//! (`zero_division="warn"` warns and returns 0), so a class that is never predicted has
//! precision 0 and a class that never occurs has recall 0.
use std::collections::BTreeMap;

use super::accuracy::check_lengths;
use crate::{Error, Result};

/// How per-class scores become one number (scikit-learn's `average`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Average {
    /// The scores of the positive class only (scikit-learn's default, `pos_label=1`); the
    /// labels must be at most two classes.
    Binary { pos_label: i64 },
    /// Counts summed over classes first: for single-label data, precision = recall = F1 =
    /// accuracy.
    Micro,
    /// The unweighted mean over classes.
    Macro,
    /// The mean over classes weighted by how often each is the true label.
    Weighted,
}

impl Average {
    /// `binary`, `micro`, `macro` or `weighted` (`binary` with `pos_label` 1).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "binary" => Self::Binary { pos_label: 1 },
            "micro" => Self::Micro,
            "macro" => Self::Macro,
            "weighted" => Self::Weighted,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "average `{other}` is not one of binary, micro, macro, weighted"
                )));
            }
        })
    }
}

/// Precision, recall and F1 (each 0..=1) of one average.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrecisionRecallF1 {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: f64,
    pred: f64,
    truth: f64,
}

impl Counts {
    fn scores(&self) -> PrecisionRecallF1 {
        PrecisionRecallF1 {
            precision: ratio(self.tp, self.pred),
            recall: ratio(self.tp, self.truth),
            // scikit-learn >= 1.3: from the counts, 2 tp / (2 tp + fp + fn)
            f1: ratio(2.0 * self.tp, self.pred + self.truth),
        }
    }
}

/// Precision, recall and F1 of `predictions` against `references` (class ids), averaged as
/// asked, equal to scikit-learn's `precision_recall_fscore_support(references, predictions,
/// average=...)`.
///
/// ```
/// use massivetext::metrics::{Average, precision_recall_f1};
/// // class 2 is never predicted: its precision counts as 0
/// let s = precision_recall_f1(&[0, 1, 1, 0], &[0, 1, 2, 0], Average::Macro).unwrap();
/// assert!((s.precision - 0.5).abs() < 1e-12);
/// assert!((s.recall - 2.0 / 3.0).abs() < 1e-12);
/// ```
pub fn precision_recall_f1(
    predictions: &[i64],
    references: &[i64],
    average: Average,
) -> Result<PrecisionRecallF1> {
    check_lengths(predictions.len(), references.len())?;
    let mut per: BTreeMap<i64, Counts> = BTreeMap::new();
    for (&p, &r) in predictions.iter().zip(references) {
        per.entry(p).or_default().pred += 1.0;
        per.entry(r).or_default().truth += 1.0;
        if p == r {
            per.entry(p).or_default().tp += 1.0;
        }
    }
    Ok(match average {
        Average::Binary { pos_label } => {
            if per.len() > 2 {
                return Err(Error::InvalidArgument(format!(
                    "average binary needs at most two classes, the labels hold {} ({}); use Average::Macro, Micro or Weighted for more",
                    per.len(),
                    per.keys()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if per.len() == 2 && !per.contains_key(&pos_label) {
                return Err(Error::InvalidArgument(format!(
                    "pos_label {pos_label} is not one of the labels ({}); pass the positive class as Average::Binary {{ pos_label }}",
                    per.keys()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            per.get(&pos_label).copied().unwrap_or_default().scores()
        }
        Average::Micro => {
            let sum = per.values().fold(Counts::default(), |a, c| Counts {
                tp: a.tp + c.tp,
                pred: a.pred + c.pred,
                truth: a.truth + c.truth,
            });
            sum.scores()
        }
        Average::Macro | Average::Weighted => {
            let weighted = average == Average::Weighted;
            let total: f64 = per.values().map(|c| c.truth).sum();
            let (mut p, mut r, mut f) = (0.0, 0.0, 0.0);
            for c in per.values() {
                let w = if weighted {
                    ratio(c.truth, total)
                } else {
                    1.0 / per.len() as f64
                };
                let s = c.scores();
                p += w * s.precision;
                r += w * s.recall;
                f += w * s.f1;
            }
            PrecisionRecallF1 {
                precision: p,
                recall: r,
                f1: f,
            }
        }
    })
}

/// F1 of `predictions` against `references` (scikit-learn's `f1_score`).
pub fn f1_score(predictions: &[i64], references: &[i64], average: Average) -> Result<f64> {
    Ok(precision_recall_f1(predictions, references, average)?.f1)
}

/// Precision (scikit-learn's `precision_score`).
pub fn precision_score(predictions: &[i64], references: &[i64], average: Average) -> Result<f64> {
    Ok(precision_recall_f1(predictions, references, average)?.precision)
}

/// Recall (scikit-learn's `recall_score`).
pub fn recall_score(predictions: &[i64], references: &[i64], average: Average) -> Result<f64> {
    Ok(precision_recall_f1(predictions, references, average)?.recall)
}
