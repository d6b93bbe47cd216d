//! Accuracy: the fraction of predictions equal to their reference.
use crate::{Error, Result};

/// The fraction of `predictions[i] == references[i]`, in 0..=1 (as Hugging Face `evaluate`'s
/// `accuracy` with no sample weights).
///
/// ```
/// use massivetext::metrics::accuracy;
/// assert_eq!(accuracy(&[1, 0, 1, 1], &[1, 1, 1, 0]).unwrap(), 0.5);
/// ```
pub fn accuracy<T: PartialEq>(predictions: &[T], references: &[T]) -> Result<f64> {
    check_lengths(predictions.len(), references.len())?;
    let correct = predictions
        .iter()
        .zip(references)
        .filter(|(p, r)| p == r)
        .count();
    Ok(correct as f64 / predictions.len() as f64)
}

/// One prediction per reference, and at least one: the shared input check of the metrics
/// that compare predictions with references item by item.
pub(crate) fn check_lengths(n_pred: usize, n_ref: usize) -> Result<()> {
    if n_pred == 0 {
        return Err(Error::EmptyMetricInput {
            what: "the prediction list".into(),
        });
    }
    if n_pred != n_ref {
        return Err(Error::MetricLengthMismatch {
            what: "the reference list".into(),
            found: n_ref,
            expected_what: "the predictions".into(),
            expected: n_pred,
        });
    }
    Ok(())
}
