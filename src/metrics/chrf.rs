//! chrF and chrF++ as sacrebleu 2.x computes them (`sacrebleu.metrics.chrf.CHRF`).
//!
//! Character n-grams of orders 1..=6 over the segment with whitespace removed, plus (chrF++)
//! word unigrams and bigrams after sacrebleu's punctuation split; per segment the reference with
//! the best F-score is kept; the corpus score is the F-beta of the precision and recall averaged
//! over the n-gram orders that occur on both sides ("effective order", sacrebleu's default).
use super::{Interner, SACREBLEU_VERSION, check_streams, py_split};
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

/// Sorted `(n-gram, count)` pairs for one order, and their total count.
#[derive(Default, Clone)]
struct Counts {
    pairs: Vec<(u128, u32)>,
    total: u64,
}

fn counts_from(mut keys: Vec<u128>) -> Counts {
    keys.sort_unstable();
    let total = keys.len() as u64;
    let mut pairs: Vec<(u128, u32)> = Vec::with_capacity(keys.len());
    for k in keys {
        match pairs.last_mut() {
            Some((pk, c)) if *pk == k => *c += 1,
            _ => pairs.push((k, 1)),
        }
    }
    Counts { pairs, total }
}

/// `[hyp, ref, match]` as sacrebleu's `_get_match_statistics`.
fn match_stats(h: &Counts, r: &Counts) -> [u64; 3] {
    let (mut i, mut j, mut m) = (0, 0, 0u64);
    while i < h.pairs.len() && j < r.pairs.len() {
        let (hk, hc) = h.pairs[i];
        let (rk, rc) = r.pairs[j];
        if hk == rk {
            m += hc.min(rc) as u64;
            i += 1;
            j += 1;
        } else if hk < rk {
            i += 1;
        } else {
            j += 1;
        }
    }
    [if r.total > 0 { h.total } else { 0 }, r.total, m]
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

    /// All n-gram counts of a segment: character orders, then word orders.
    fn extract(&self, text: &str, interner: &mut Interner) -> Vec<Counts> {
        let lowered;
        let text = if self.lowercase {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        let chars: Vec<u32> = if self.whitespace {
            text.chars().map(|c| c as u32).collect()
        } else {
            text.chars()
                .filter(|&c| !super::py_isspace(c))
                .map(|c| c as u32)
                .collect()
        };
        let mut out = Vec::with_capacity(self.order());
        for n in 1..=self.char_order {
            let keys: Vec<u128> = if chars.len() >= n {
                chars
                    .windows(n)
                    .map(|w| {
                        w.iter()
                            .enumerate()
                            .fold(0u128, |k, (i, &c)| k | ((c as u128) << (21 * i)))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            out.push(counts_from(keys));
        }
        if self.word_order > 0 {
            let ids: Vec<u32> = remove_punctuation(text)
                .into_iter()
                .map(|w| interner.id(w))
                .collect();
            for n in 1..=self.word_order {
                let keys: Vec<u128> = if ids.len() >= n {
                    ids.windows(n)
                        .map(|w| {
                            w.iter()
                                .enumerate()
                                .fold(0u128, |k, (i, &id)| k | ((id as u128 + 1) << (32 * i)))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                out.push(counts_from(keys));
            }
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

    fn segment_stats<H: AsRef<str>, R: AsRef<str>, V: AsRef<[R]>>(
        &self,
        hyps: &[H],
        refs: &[V],
    ) -> Vec<Vec<[u64; 3]>> {
        let mut interner = Interner::default();
        let mut out = Vec::with_capacity(hyps.len());
        for (i, hyp) in hyps.iter().enumerate() {
            let h = self.extract(hyp.as_ref(), &mut interner);
            let mut best: Vec<[u64; 3]> = Vec::new();
            let mut best_f = -1.0;
            for stream in refs {
                let r = self.extract(stream.as_ref()[i].as_ref(), &mut interner);
                let stats: Vec<[u64; 3]> =
                    h.iter().zip(&r).map(|(h, r)| match_stats(h, r)).collect();
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

    /// Corpus chrF; `refs` holds one stream per reference set, aligned with `hyps`.
    pub fn corpus_score<H: AsRef<str>, R: AsRef<str>, V: AsRef<[R]>>(
        &self,
        hyps: &[H],
        refs: &[V],
    ) -> Result<ChrfScore> {
        self.validate()?;
        check_streams(hyps, refs)?;
        let stats = self.segment_stats(hyps, refs);
        Ok(self.score_from_stats(&stats, refs.len()))
    }

    /// chrF of one hypothesis against one or more references.
    pub fn sentence_score<R: AsRef<str>>(&self, hyp: &str, refs: &[R]) -> Result<ChrfScore> {
        self.validate()?;
        if refs.is_empty() {
            return Err(Error::EmptyMetricInput {
                what: "the reference list".into(),
            });
        }
        let streams: Vec<[&str; 1]> = refs.iter().map(|r| [r.as_ref()]).collect();
        let stats = self.segment_stats(&[hyp], &streams);
        Ok(self.score_from_stats(&stats, refs.len()))
    }
}

/// `sacrebleu.corpus_chrf(hyps, refs)` with default settings (chrF2, character order 6).
pub fn corpus_chrf<H: AsRef<str>, R: AsRef<str>, V: AsRef<[R]>>(
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
        super::evcxr_html(&self.to_html());
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
