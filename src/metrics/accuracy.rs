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
    if predictions.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the prediction list".into(),
        });
    }
    if predictions.len() != references.len() {
        return Err(Error::MetricLengthMismatch {
            what: "the reference list".into(),
            found: references.len(),
            expected_what: "the predictions".into(),
            expected: predictions.len(),
        });
    }
    let correct = predictions
        .iter()
        .zip(references)
        .filter(|(p, r)| p == r)
        .count();
    Ok(correct as f64 / predictions.len() as f64)
}
