//! SQuAD exact match and F1 as the official v1.1 evaluation script (and Hugging Face
//! `evaluate`'s `squad`) computes them: answers normalised (lowercase; ASCII punctuation
//! removed; the words a, an, the removed; whitespace collapsed), each prediction scored against
//! its best ground truth, means reported on a 0–100 scale.
//!
//! Empty answers follow v1.1 exactly: two empty answers match exactly (EM 1) but have F1 0,
//! because the script's F1 counts common tokens and there are none.
use std::collections::HashMap;

use super::accuracy::check_lengths;
use super::py_split;
use crate::{Error, Result};

/// Exact match and F1 over a set of predictions, 0–100.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SquadScore {
    pub exact_match: f64,
    pub f1: f64,
}

/// Python's `\w` (Unicode): letters, digits and the underscore.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The script's `normalize_answer`: lower, remove punctuation, remove articles, fix whitespace.
pub fn squad_normalize_answer(s: &str) -> String {
    let lowered = s.to_lowercase();
    let no_punct: String = lowered
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // re.sub(r'\b(a|an|the)\b', ' ', text): a whole run of word characters equal to an article
    let mut no_articles = String::with_capacity(no_punct.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punct.chars() {
        if is_word(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut no_articles);
            no_articles.push(c);
        }
    }
    flush(&mut word, &mut no_articles);
    py_split(&no_articles).collect::<Vec<_>>().join(" ")
}

/// Whether the normalised answers are equal.
pub fn squad_exact_match(prediction: &str, ground_truth: &str) -> bool {
    squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth)
}

/// Token F1 of the normalised answers (0..=1): the harmonic mean of the shares of common
/// tokens (counted with multiplicity) in the prediction and in the ground truth.
pub fn squad_f1(prediction: &str, ground_truth: &str) -> f64 {
    let p = squad_normalize_answer(prediction);
    let g = squad_normalize_answer(ground_truth);
    let pt: Vec<&str> = py_split(&p).collect();
    let gt: Vec<&str> = py_split(&g).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &gt {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pt {
        if let Some(c) = counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pt.len() as f64;
    let recall = same as f64 / gt.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Exact match and F1 (0–100) of `predictions` against their ground truths (one list of
/// acceptable answers per prediction; the best one counts).
///
/// ```
/// use massivetext::metrics::squad;
/// let s = squad(&["the Eiffel Tower", "in 1889"], &[vec!["Eiffel Tower"], vec!["1889"]]).unwrap();
/// assert_eq!(s.exact_match, 50.0);
/// assert!((s.f1 - 100.0 * (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-9);
/// ```
pub fn squad<P: AsRef<str>, G: AsRef<str>>(
    predictions: &[P],
    references: &[Vec<G>],
) -> Result<SquadScore> {
    check_lengths(predictions.len(), references.len())?;
    let (mut em, mut f1) = (0.0, 0.0);
    for (i, (p, gts)) in predictions.iter().zip(references).enumerate() {
        if gts.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "prediction {i} has no ground-truth answers; give at least one (\"\" for an empty answer)"
            )));
        }
        let p = p.as_ref();
        em += if gts.iter().any(|g| squad_exact_match(p, g.as_ref())) {
            1.0
        } else {
            0.0
        };
        f1 += gts
            .iter()
            .map(|g| squad_f1(p, g.as_ref()))
            .fold(0.0, f64::max);
    }
    let n = predictions.len() as f64;
    Ok(SquadScore {
        exact_match: 100.0 * em / n,
        f1: 100.0 * f1 / n,
    })
}
