//! chrF and chrF++ as sacrebleu 2.x computes them (`sacrebleu.metrics.chrf.CHRF`).
//!
//! Character n-grams of orders 1..=6 over the segment with whitespace removed, plus (chrF++)
//! word unigrams and bigrams after sacrebleu's punctuation split; per segment the reference with
//! the best F-score is kept; the corpus score is the F-beta of the precision and recall averaged
//! over the n-gram orders that occur on both sides ("effective order", sacrebleu's default).
use super::segments::SegmentMetric;
use super::{Interner, SACREBLEU_VERSION, py_split};
use crate::{Error, Result};
use serde::Serialize;
use std::fmt;

/// chrF settings; `Chrf::default()` is `sacrebleu.CHRF()` and [`Chrf::plus_plus`] is
/// `sacrebleu.CHRF(word_order=2)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Chrf {
    /// Character n-gram order, 1..=6 (default 6).
    pub char_order: usize,
    /// Word n-gram order, 0..=4 (0 for chrF, 2 for chrF++).
    pub word_order: usize,
    /// Recall is `beta` times as important as precision (default 2).
    pub beta: u32,
    pub lowercase: bool,
    /// Keep whitespace inside character n-grams (default false).
    pub whitespace: bool,
    /// chrF++.py-style epsilon smoothing instead of sacrebleu's effective order.
    pub eps_smoothing: bool,
}

impl Default for Chrf {
    fn default() -> Self {
        Chrf {
            char_order: 6,
            word_order: 0,
            beta: 2,
            lowercase: false,
            whitespace: false,
            eps_smoothing: false,
        }
    }
}

/// A chrF result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChrfScore {
    /// The score on sacrebleu's 0–100 scale.
    pub score: f64,
    /// `chrF2` or `chrF2++`, as sacrebleu names it.
    pub name: String,
    pub char_order: usize,
    pub word_order: usize,
    pub beta: u32,
    /// sacrebleu's signature, e.g. `nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0`.
    pub signature: String,
}

const PUNCTS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// sacrebleu's `_remove_punctuation`: one leading or trailing ASCII punctuation mark is split
/// off each word (a trailing one first).
fn remove_punctuation(sent: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for w in py_split(sent) {
        let mut chars = w.chars();
        let first = chars.next();
        let last = w.chars().next_back();
        let single = chars.next().is_none();
        match (first, last) {
            _ if single => out.push(w),
            (_, Some(l)) if PUNCTS.contains(l) => {
                let cut = w.len() - l.len_utf8();
                out.push(&w[..cut]);
                out.push(&w[cut..]);
            }
            (Some(f), _) if PUNCTS.contains(f) => {
                let cut = f.len_utf8();
                out.push(&w[..cut]);
                out.push(&w[cut..]);
            }
            _ => out.push(w),
        }
    }
    out
}

/// `[hyp, ref, match]` as sacrebleu's `_get_match_statistics`, on sorted n-gram keys.
/// `shift` turns a key into the n-gram of the order being counted; keys whose n-gram is
/// incomplete (the segment ends first) map to a value with an empty last slot and are skipped.
fn match_stats(h: &[u128], r: &[u128], shift: u32, slot_mask: u128) -> [u64; 3] {
    let complete = |k: u128| (k >> shift) & slot_mask != 0;
    let key = |k: u128| k >> shift;
    // Keys are sorted with incomplete ones (an empty last slot) among them; count the complete.
    let nh = h.iter().filter(|&&k| complete(k)).count() as u64;
    let nr = r.iter().filter(|&&k| complete(k)).count() as u64;
    if nh == 0 || nr == 0 {
        return [if nr > 0 { nh } else { 0 }, nr, 0];
    }
    let (mut i, mut j, mut m) = (0, 0, 0u64);
    while i < h.len() && j < r.len() {
        if !complete(h[i]) {
            i += 1;
            continue;
        }
        if !complete(r[j]) {
            j += 1;
            continue;
        }
        let (hk, rk) = (key(h[i]), key(r[j]));
        if hk == rk {
            let (mut a, mut b) = (0usize, 0usize);
            while i < h.len() && key(h[i]) == hk {
                i += 1;
                a += 1;
            }
            while j < r.len() && key(r[j]) == rk {
                j += 1;
                b += 1;
            }
            m += a.min(b) as u64;
        } else if hk < rk {
            i += 1;
        } else {
            j += 1;
        }
    }
    [if nr > 0 { nh } else { 0 }, nr, m]
}

impl Chrf {
    /// chrF++: character order 6 plus word unigrams and bigrams.
    pub fn plus_plus() -> Self {
        Chrf {
            word_order: 2,
            ..Chrf::default()
        }
    }

    fn order(&self) -> usize {
        self.char_order + self.word_order
    }

    /// sacrebleu's signature for this configuration and number of references.
    pub fn signature(&self, nrefs: usize) -> String {
        format!(
            "nrefs:{nrefs}|case:{}|eff:{}|nc:{}|nw:{}|space:{}|version:{SACREBLEU_VERSION}",
            if self.lowercase { "lc" } else { "mixed" },
            if self.eps_smoothing { "no" } else { "yes" },
            self.char_order,
            self.word_order,
            if self.whitespace { "yes" } else { "no" },
        )
    }

    /// The metric's name as sacrebleu prints it (`chrF2`, `chrF2++`).
    pub fn name(&self) -> String {
        format!("chrF{}{}", self.beta, "+".repeat(self.word_order))
    }

    /// Sorted n-gram keys of a segment into `out` (one buffer per order, reused across
    /// segments): character orders, then word orders.
    fn extract(
        &self,
        text: &str,
        interner: &mut Interner,
        chars: &mut Vec<u32>,
        out: &mut Vec<Vec<u128>>,
    ) {
        let lowered;
        let text = if self.lowercase {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        chars.clear();
        if self.whitespace {
            chars.extend(text.chars().map(|c| c as u32));
        } else {
            chars.extend(
                text.chars()
                    .filter(|&c| !super::py_isspace(c))
                    .map(|c| c as u32),
            );
        }
        // One key per start position: the next `char_order` characters (each stored + 1, so an
        // empty slot is 0), first character in the highest bits. Sorting these once orders every
        // n-gram order at the same time: equal n-grams are equal key prefixes, hence adjacent.
        out.resize_with(1 + self.word_order, Vec::new);
        let co = self.char_order;
        let keys = &mut out[0];
        keys.clear();
        for i in 0..chars.len() {
            let mut k = 0u128;
            for slot in 0..co {
                let c = chars.get(i + slot).map_or(0, |&c| c as u128 + 1);
                k |= c << (21 * (co - 1 - slot));
            }
            keys.push(k);
        }
        keys.sort_unstable();
        if self.word_order > 0 {
            let ids: Vec<u32> = remove_punctuation(text)
                .into_iter()
                .map(|w| interner.id(w))
                .collect();
            for (n, keys) in (1..=self.word_order).zip(out[1..].iter_mut()) {
                keys.clear();
                if ids.len() >= n {
                    keys.extend(ids.windows(n).map(|w| {
                        w.iter()
                            .enumerate()
                            .fold(0u128, |k, (i, &id)| k | ((id as u128 + 1) << (32 * i)))
                    }));
                }
                keys.sort_unstable();
            }
        }
    }

    /// Per-order `[hyp, ref, match]` triples: character orders 1..=char_order, then words.
    fn stats(&self, h: &[Vec<u128>], r: &[Vec<u128>]) -> Vec<[u64; 3]> {
        let co = self.char_order as u32;
        let mut out = Vec::with_capacity(self.order());
        for n in 1..=co {
            out.push(match_stats(&h[0], &r[0], 21 * (co - n), (1 << 21) - 1));
        }
        for (hw, rw) in h[1..].iter().zip(&r[1..]) {
            // Word keys are complete by construction (each slot holds id + 1).
            out.push(match_stats(hw, rw, 0, u128::MAX));
        }
        out
    }

    /// sacrebleu's `_compute_f_score` on flattened `[hyp, ref, match]` triples, 0–100.
    fn f_score(&self, stats: &[[u64; 3]]) -> f64 {
        let eps = 1e-16;
        let mut score = 0.0;
        let mut effective_order = 0usize;
        let factor = (self.beta * self.beta) as f64;
        let (mut avg_prec, mut avg_rec) = (0.0, 0.0);
        for &[n_hyp, n_ref, n_match] in stats {
            let prec = if n_hyp > 0 {
                n_match as f64 / n_hyp as f64
            } else {
                eps
            };
            let rec = if n_ref > 0 {
                n_match as f64 / n_ref as f64
            } else {
                eps
            };
            let denom = factor * prec + rec;
            score += if denom > 0.0 {
                (1.0 + factor) * prec * rec / denom
            } else {
                eps
            };
            if n_hyp > 0 && n_ref > 0 {
                avg_prec += prec;
                avg_rec += rec;
                effective_order += 1;
            }
        }
        if self.eps_smoothing {
            return 100.0 * score / stats.len() as f64;
        }
        if effective_order == 0 {
            avg_prec = 0.0;
            avg_rec = 0.0;
        } else {
            avg_prec /= effective_order as f64;
            avg_rec /= effective_order as f64;
        }
        if avg_prec + avg_rec != 0.0 {
            let mut s = (1.0 + factor) * avg_prec * avg_rec;
            s /= (factor * avg_prec) + avg_rec;
            100.0 * s
        } else {
            0.0
        }
    }

    /// Corpus chrF; `refs` holds one stream per reference set, aligned with `hyps`.
    pub fn corpus_score<H: AsRef<str> + Sync, R: AsRef<str> + Sync, V: AsRef<[R]> + Sync>(
        &self,
        hyps: &[H],
        refs: &[V],
    ) -> Result<ChrfScore> {
        self.corpus(hyps, refs)
    }

    /// chrF of one hypothesis against one or more references.
    pub fn sentence_score<R: AsRef<str>>(&self, hyp: &str, refs: &[R]) -> Result<ChrfScore> {
        self.sentence(hyp, refs)
    }
}

impl SegmentMetric for Chrf {
    type Stats = Vec<[u64; 3]>;
    type Score = ChrfScore;

    fn validate(&self) -> Result<()> {
        if !(1..=6).contains(&self.char_order) {
            return Err(Error::UnknownMetricOption {
                option: "chrF char_order".into(),
                value: self.char_order.to_string(),
                valid: "1, 2, 3, 4, 5, 6".into(),
            });
        }
        if self.word_order > 4 {
            return Err(Error::UnknownMetricOption {
                option: "chrF word_order".into(),
                value: self.word_order.to_string(),
                valid: "0, 1, 2, 3, 4".into(),
            });
        }
        Ok(())
    }

    fn segment_stats_range<H: AsRef<str>, R: AsRef<str>, V: AsRef<[R]>>(
        &self,
        hyps: &[H],
        refs: &[V],
        range: std::ops::Range<usize>,
    ) -> Vec<Vec<[u64; 3]>> {
        let mut interner = Interner::default();
        let mut out = Vec::with_capacity(hyps.len());
        let (mut chars, mut h, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for i in range {
            let hyp = &hyps[i];
            self.extract(hyp.as_ref(), &mut interner, &mut chars, &mut h);
            let mut best: Vec<[u64; 3]> = Vec::new();
            let mut best_f = -1.0;
            for stream in refs {
                self.extract(
                    stream.as_ref()[i].as_ref(),
                    &mut interner,
                    &mut chars,
                    &mut r,
                );
                let stats = self.stats(&h, &r);
                let f = self.f_score(&stats);
                if f > best_f {
                    best_f = f;
                    best = stats;
                }
            }
            out.push(best);
        }
        out
    }

    fn score_from_stats(&self, stats: &[Vec<[u64; 3]>], nrefs: usize) -> ChrfScore {
        let mut sum = vec![[0u64; 3]; self.order()];
        for seg in stats {
            for (s, t) in sum.iter_mut().zip(seg) {
                for k in 0..3 {
                    s[k] += t[k];
                }
            }
        }
        ChrfScore {
            score: self.f_score(&sum),
            name: self.name(),
            char_order: self.char_order,
            word_order: self.word_order,
            beta: self.beta,
            signature: self.signature(nrefs),
        }
    }
}

/// `sacrebleu.corpus_chrf(hyps, refs)` with default settings (chrF2, character order 6).
pub fn corpus_chrf<H: AsRef<str> + Sync, R: AsRef<str> + Sync, V: AsRef<[R]> + Sync>(
    hyps: &[H],
    refs: &[V],
) -> Result<ChrfScore> {
    Chrf::default().corpus_score(hyps, refs)
}

/// `sacrebleu.sentence_chrf(hyp, refs)` with default settings.
pub fn sentence_chrf<R: AsRef<str>>(hyp: &str, refs: &[R]) -> Result<ChrfScore> {
    Chrf::default().sentence_score(hyp, refs)
}

impl ChrfScore {
    /// An HTML table of the result.
    pub fn to_html(&self) -> String {
        let row = vec![
            self.name.clone(),
            format!("{:.2}", self.score),
            self.signature.clone(),
        ];
        super::html_table(&["metric", "score", "signature"], &[row])
    }

    /// Renders the result as an HTML table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        crate::display::emit("text/html", &self.to_html());
    }
}

impl fmt::Display for ChrfScore {
    /// sacrebleu's text line: `chrF2|signature = 58.12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{} = {:.2}", self.name, self.signature, self.score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_split_follows_sacrebleu() {
        assert_eq!(
            remove_punctuation("(hi) a, .b c"),
            vec!["(hi", ")", "a", ",", ".", "b", "c"]
        );
    }
}
