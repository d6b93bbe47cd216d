//! The logits processors and warpers of transformers' `generate`, one row at a time, in its
//! order: repetition penalty, no-repeat n-grams, bad words, minimum new tokens, forced EOS;
//! then, when sampling, temperature, top-k, top-p (and, for beam search, `renormalize_logits`).
use super::config::GenerationConfig;
use crate::kernels::vmath;

/// Where the row stands: its whole sequence (prompt, with any left padding, and new tokens),
/// and how many tokens are new.
pub(crate) struct RowState<'a> {
    pub tokens: &'a [u32],
    pub new_tokens: usize,
}

/// `RepetitionPenaltyLogitsProcessor`: each token already in the sequence has its score divided
/// by the penalty when positive, multiplied when negative.
fn repetition_penalty(scores: &mut [f32], tokens: &[u32], penalty: f32) {
    let mut seen = vec![false; scores.len()];
    for &t in tokens {
        let t = t as usize;
        if t < scores.len() && !seen[t] {
            seen[t] = true;
            let s = scores[t];
            scores[t] = if s < 0.0 { s * penalty } else { s / penalty };
        }
    }
}

/// `NoRepeatNGramLogitsProcessor`: a token that would complete an n-gram already in the
/// sequence is banned.
fn no_repeat_ngram(scores: &mut [f32], tokens: &[u32], n: usize) {
    let len = tokens.len();
    if n == 0 || len + 1 < n {
        return;
    }
    let prefix = &tokens[len + 1 - n..];
    for start in 0..=(len - n) {
        if &tokens[start..start + n - 1] == prefix {
            let banned = tokens[start + n - 1] as usize;
            if banned < scores.len() {
                scores[banned] = f32::NEG_INFINITY;
            }
        }
    }
}

/// `NoBadWordsLogitsProcessor`: a one-token bad word is never chosen; the last token of a
/// longer one is banned where the sequence ends with the others. Bad words that are exactly an
/// EOS token are left out, as transformers leaves them out.
fn bad_words(scores: &mut [f32], tokens: &[u32], words: &[Vec<u32>], eos: &[u32]) {
    for w in words {
        let Some((&last, prefix)) = w.split_last() else {
            continue;
        };
        if prefix.is_empty() && eos.contains(&last) {
            continue;
        }
        if tokens.ends_with(prefix)
            && let Some(s) = scores.get_mut(last as usize)
        {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// The processors every decoding runs (`scores` are logits for greedy and sampling,
/// log-probabilities for beam search, as in transformers).
pub(crate) fn process(scores: &mut [f32], row: &RowState<'_>, c: &GenerationConfig) {
    if c.repetition_penalty != 1.0 {
        repetition_penalty(scores, row.tokens, c.repetition_penalty as f32);
    }
    if c.no_repeat_ngram_size > 0 {
        no_repeat_ngram(scores, row.tokens, c.no_repeat_ngram_size);
    }
    if !c.bad_words_ids.is_empty() {
        bad_words(scores, row.tokens, &c.bad_words_ids, &c.eos_token_id);
    }
    if row.new_tokens < c.min_new_tokens {
        for &e in &c.eos_token_id {
            if let Some(s) = scores.get_mut(e as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
    if let Some(eos) = c.forced_eos_token_id
        && row.new_tokens + 1 == c.max_new_tokens
    {
        scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
        if let Some(s) = scores.get_mut(eos as usize) {
            *s = 0.0;
        }
    }
}

/// Temperature, top-k and top-p, in transformers' order (sampling only).
pub(crate) fn warp(scores: &mut [f32], c: &GenerationConfig) {
    if c.temperature != 1.0 {
        let t = c.temperature as f32;
        scores.iter_mut().for_each(|s| *s /= t);
    }
    if c.top_k > 0 && c.top_k < scores.len() {
        // keep every token scoring at least the k-th highest score (ties kept, as torch)
        let mut sorted = scores.to_vec();
        let k = c.top_k;
        sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = sorted[k - 1];
        scores
            .iter_mut()
            .filter(|s| **s < kth)
            .for_each(|s| *s = f32::NEG_INFINITY);
    }
    if c.top_p < 1.0 {
        top_p(scores, c.top_p);
    }
}

/// `TopPLogitsWarper`: sorted ascending, tokens whose cumulative probability is at most
/// `1 - top_p` are removed; the most likely token always stays.
fn top_p(scores: &mut [f32], p: f64) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let probs = softmax(&order.iter().map(|&i| scores[i]).collect::<Vec<_>>());
    let mut cum = 0f32;
    let threshold = (1.0 - p) as f32;
    let last = order.len() - 1;
    for (rank, (&i, &q)) in order.iter().zip(&probs).enumerate() {
        cum += q;
        if cum <= threshold && rank < last {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

/// Softmax of a row, in f32, shifted by the maximum.
pub(crate) fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Log-softmax of a row, in f32.
pub(crate) fn log_softmax(x: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    log_softmax_into(x, &mut out);
    out
}

/// Log-softmax of a row, in f32, appended to `out`. The maximum and the sum of exponentials
/// run in vector lanes (the kernels' `max` and `exp`): beam search takes this of every beam's
/// row at every step, straight into its buffer of all beams' scores.
pub(crate) fn log_softmax_into(x: &[f32], out: &mut Vec<f32>) {
    let max = vmath::max(x);
    let lse = max + vmath::sum_exp_shifted(x, max).ln();
    out.extend(x.iter().map(|&v| v - lse));
}

/// The index of the largest score (the first of equal ones, as `torch.argmax`; 0 when `x` is
/// empty): the largest, then where it first is, two vectorised passes (a running comparison
/// with the best so far is one element at a time, over every row's vocabulary each step).
pub(crate) fn argmax(x: &[f32]) -> u32 {
    vmath::position_of(x, vmath::max(x)).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first index of the largest value, as a plain scan gives, whatever lane or tail it
    /// falls in, with ties across lanes, and 0 when every score is `-inf`.
    #[test]
    fn argmax_is_the_first_largest() {
        let scan = |x: &[f32]| {
            let mut best = 0;
            for (i, &v) in x.iter().enumerate() {
                if v > x[best] {
                    best = i;
                }
            }
            best as u32
        };
        for len in [1, 7, 8, 9, 16, 31, 100] {
            for top in 0..len {
                for twin in [None, Some((top * 5 + 3) % len)] {
                    let mut x: Vec<f32> = (0..len).map(|i| ((i * 7) % 5) as f32 - 9.0).collect();
                    x[top] = 4.0;
                    if let Some(t) = twin {
                        x[t] = 4.0;
                    }
                    assert_eq!(argmax(&x), scan(&x), "len {len} top {top} twin {twin:?}");
                }
            }
            assert_eq!(argmax(&vec![f32::NEG_INFINITY; len]), 0);
        }
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_scores() {
        let mut s = vec![2.0, -2.0, 1.0];
        repetition_penalty(&mut s, &[0, 1, 1], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn no_repeat_ngram_bans_the_completing_token() {
        let mut s = vec![0.0; 5];
        // bigram (1, 2) seen; the sequence ends with 1: 2 is banned
        no_repeat_ngram(&mut s, &[1, 2, 3, 1], 2);
        assert_eq!(s[2], f32::NEG_INFINITY);
        assert!(s.iter().filter(|v| v.is_infinite()).count() == 1);
    }

    #[test]
    fn bad_words_ban_single_tokens_and_completions_but_not_eos() {
        let mut s = vec![0.0; 6];
        let words = vec![vec![5], vec![1, 2], vec![3, 4], vec![0]];
        bad_words(&mut s, &[7, 1], &words, &[0]);
        assert_eq!(s[5], f32::NEG_INFINITY);
        assert_eq!(s[2], f32::NEG_INFINITY);
        assert_eq!(s[4], 0.0, "prefix 3 does not end the sequence");
        assert_eq!(s[0], 0.0, "a bad word that is the EOS token is ignored");
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // probabilities ~ 0.64, 0.24, 0.09, 0.03
        let mut s = vec![3.0, 2.0, 1.0, -0.2];
        top_p(&mut s, 0.8);
        assert!(s[0].is_finite() && s[1].is_finite());
        assert!(s[2].is_infinite() && s[3].is_infinite());
    }
}
