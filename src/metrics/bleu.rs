//! BLEU as sacrebleu 2.x computes it (`sacrebleu.metrics.bleu.BLEU`), number for number.
//!
//! Each step mirrors sacrebleu: optional lowercasing, the tokenizer on the right-stripped
//! segment, word n-grams of orders 1..=4 clipped by the maximum count over the references, the
//! closest reference length (shorter wins ties), corpus sums of the statistics, and
//! `compute_bleu` with its smoothing and effective-order rules.
use super::segments::SegmentMetric;
use super::{FxHashMap, Interner, SACREBLEU_VERSION, Tokenize, py_split};
use crate::{Error, Result};
use serde::Serialize;
use std::fmt;

/// sacrebleu's smoothing methods (Chen & Cherry 2014), with the value for `floor` and `add-k`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Smoothing {
    /// NIST geometric smoothing (mteval-v13a), sacrebleu's default: the k-th zero precision
    /// becomes `1 / (2^k * total)`.
    Exp,
    /// A zero precision becomes `value / total` (sacrebleu default 0.1).
    Floor(f64),
    /// Add `value` to matches and totals for orders above 1 (sacrebleu default 1).
    AddK(f64),
    /// No smoothing: one zero precision makes BLEU 0.
    None,
}

impl Smoothing {
    /// All methods, by their sacrebleu names.
    pub const NAMES: [&'static str; 4] = ["exp", "floor", "add-k", "none"];

    /// Parses sacrebleu's `smooth_method` and optional `smooth_value` (defaults: floor 0.1,
    /// add-k 1).
    pub fn parse(method: &str, value: Option<f64>) -> Result<Self> {
        Ok(match method {
            "exp" => Smoothing::Exp,
            "floor" => Smoothing::Floor(value.unwrap_or(0.1)),
            "add-k" => Smoothing::AddK(value.unwrap_or(1.0)),
            "none" => Smoothing::None,
            _ => {
                return Err(Error::UnknownMetricOption {
                    option: "BLEU smoothing method".into(),
                    value: method.into(),
                    valid: Self::NAMES.join(", "),
                });
            }
        })
    }

    /// The `smooth:` part of sacrebleu's signature, e.g. `exp` or `floor[0.10]`.
    fn signature(self) -> String {
        match self {
            Smoothing::Exp => "exp".into(),
            Smoothing::None => "none".into(),
            Smoothing::Floor(v) => format!("floor[{v:.2}]"),
            Smoothing::AddK(v) => format!("add-k[{v:.2}]"),
        }
    }
}

/// BLEU settings, with sacrebleu's defaults (`Bleu::default()` is `sacrebleu.BLEU()`).
#[derive(Clone, Debug, PartialEq)]
pub struct Bleu {
    pub tokenize: Tokenize,
    pub lowercase: bool,
    pub smoothing: Smoothing,
    /// Stop at the highest n-gram order the hypothesis has (for sentence-level BLEU).
    pub effective_order: bool,
    /// Highest n-gram order, 1..=4 (sacrebleu's `max_ngram_order`, default 4).
    pub max_ngram_order: usize,
}

impl Default for Bleu {
    fn default() -> Self {
        Bleu {
            tokenize: Tokenize::V13a,
            lowercase: false,
            smoothing: Smoothing::Exp,
            effective_order: false,
            max_ngram_order: 4,
        }
    }
}

/// A BLEU result with everything sacrebleu reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BleuScore {
    /// BLEU on sacrebleu's 0–100 scale.
    pub score: f64,
    /// Clipped n-gram matches per order (before any add-k smoothing).
    pub counts: Vec<u64>,
    /// Hypothesis n-grams per order.
    pub totals: Vec<u64>,
    /// n-gram precisions per order, 0–100, after smoothing.
    pub precisions: Vec<f64>,
    /// Brevity penalty.
    pub bp: f64,
    /// `sys_len / ref_len` (0 when `ref_len` is 0).
    pub ratio: f64,
    /// Hypothesis tokens over the corpus.
    pub sys_len: u64,
    /// Closest-reference tokens over the corpus.
    pub ref_len: u64,
    /// sacrebleu's reproducibility signature, e.g.
    /// `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`.
    pub signature: String,
}

/// Sufficient statistics of one segment: `[hyp_len, ref_len, correct.., total..]`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SegmentStats {
    hyp_len: u64,
    ref_len: u64,
    correct: [u64; 4],
    total: [u64; 4],
}

/// Packs an n-gram of token ids (n <= 4) into one integer; orders never collide because every
/// slot holds `id + 1`.
#[inline]
fn pack(ids: &[u32]) -> u128 {
    let mut key = 0u128;
    for (k, &id) in ids.iter().enumerate() {
        key |= ((id as u128) + 1) << (32 * k);
    }
    key
}

fn ngram_keys(ids: &[u32], max_order: usize, out: &mut Vec<(u8, u128)>) {
    out.clear();
    for n in 1..=max_order {
        if ids.len() < n {
            break;
        }
        for w in ids.windows(n) {
            out.push((n as u8, pack(w)));
        }
    }
}

/// Python's `my_log`: log with 0 floored to -9999999999.
fn my_log(x: f64) -> f64 {
    if x == 0.0 { -9_999_999_999.0 } else { x.ln() }
}

impl Bleu {
    fn preprocess(&self, s: &str) -> String {
        let s = if self.lowercase {
            s.to_lowercase()
        } else {
            s.to_string()
        };
        self.tokenize
            .tokenize(s.trim_end_matches(super::py_isspace))
    }

    /// sacrebleu's signature for this configuration and number of references.
    pub fn signature(&self, nrefs: usize) -> String {
        format!(
            "nrefs:{nrefs}|case:{}|eff:{}|tok:{}|smooth:{}|version:{SACREBLEU_VERSION}",
            if self.lowercase { "lc" } else { "mixed" },
            if self.effective_order { "yes" } else { "no" },
            self.tokenize.name(),
            self.smoothing.signature()
        )
    }

    /// sacrebleu's `BLEU.compute_bleu` on summed statistics (the signature is left empty).
    pub fn compute_bleu(
        &self,
        correct: &[u64],
        total: &[u64],
        sys_len: u64,
        ref_len: u64,
    ) -> BleuScore {
        let order = correct.len();
        let mut bp = 1.0;
        if sys_len < ref_len {
            bp = if sys_len > 0 {
                (1.0 - ref_len as f64 / sys_len as f64).exp()
            } else {
                0.0
            };
        }
        let mut precisions = vec![0.0; order];
        let ratio = if ref_len > 0 {
            sys_len as f64 / ref_len as f64
        } else {
            0.0
        };
        let mut result = BleuScore {
            score: 0.0,
            counts: correct.to_vec(),
            totals: total.to_vec(),
            precisions: precisions.clone(),
            bp,
            ratio,
            sys_len,
            ref_len,
            signature: String::new(),
        };
        if correct.iter().all(|&c| c == 0) {
            return result;
        }
        let mut corr: Vec<f64> = correct.iter().map(|&c| c as f64).collect();
        let mut tot: Vec<f64> = total.iter().map(|&c| c as f64).collect();
        let mut smooth_mteval = 1.0;
        let mut eff_order = order;
        for n in 1..=order {
            if let Smoothing::AddK(k) = self.smoothing
                && n > 1
            {
                corr[n - 1] += k;
                tot[n - 1] += k;
            }
            if tot[n - 1] == 0.0 {
                break;
            }
            if self.effective_order {
                eff_order = n;
            }
            if corr[n - 1] == 0.0 {
                match self.smoothing {
                    Smoothing::Exp => {
                        smooth_mteval *= 2.0;
                        precisions[n - 1] = 100.0 / (smooth_mteval * tot[n - 1]);
                    }
                    Smoothing::Floor(v) => precisions[n - 1] = 100.0 * v / tot[n - 1],
                    _ => {}
                }
            } else {
                precisions[n - 1] = 100.0 * corr[n - 1] / tot[n - 1];
            }
        }
        let mut log_sum = 0.0;
        for &p in &precisions[..eff_order] {
            log_sum += my_log(p);
        }
        result.score = bp * (log_sum / eff_order as f64).exp();
        result.precisions = precisions;
        result
    }

    /// Corpus BLEU: `hyps[i]` is scored against `refs[r][i]` for every reference stream `r`
    /// (sacrebleu's layout: one list per reference set, each aligned with the hypotheses).
    pub fn corpus_score<H: AsRef<str> + Sync, R: AsRef<str> + Sync, V: AsRef<[R]> + Sync>(
        &self,
        hyps: &[H],
        refs: &[V],
    ) -> Result<BleuScore> {
        self.corpus(hyps, refs)
    }

    /// BLEU of one hypothesis against one or more references.
    pub fn sentence_score<R: AsRef<str>>(&self, hyp: &str, refs: &[R]) -> Result<BleuScore> {
        self.sentence(hyp, refs)
    }
}

impl SegmentMetric for Bleu {
    type Stats = SegmentStats;
    type Score = BleuScore;

    fn validate(&self) -> Result<()> {
        if !(1..=4).contains(&self.max_ngram_order) {
            return Err(Error::UnknownMetricOption {
                option: "BLEU max_ngram_order".into(),
                value: self.max_ngram_order.to_string(),
                valid: "1, 2, 3, 4".into(),
            });
        }
        Ok(())
    }

    fn segment_stats_range<H: AsRef<str>, R: AsRef<str>, V: AsRef<[R]>>(
        &self,
        hyps: &[H],
        refs: &[V],
        range: std::ops::Range<usize>,
    ) -> Vec<SegmentStats> {
        let order = self.max_ngram_order;
        let mut interner = Interner::default();
        let mut ref_ngrams: FxHashMap<u128, u32> = FxHashMap::default();
        let mut this_ref: FxHashMap<u128, u32> = FxHashMap::default();
        let mut keys = Vec::new();
        let mut ids = Vec::new();
        let mut ref_lens = Vec::new();
        let mut out = Vec::with_capacity(hyps.len());
        for i in range {
            let hyp = &hyps[i];
            ref_ngrams.clear();
            ref_lens.clear();
            for (r, stream) in refs.iter().enumerate() {
                let tok = self.preprocess(stream.as_ref()[i].as_ref());
                ids.clear();
                ids.extend(py_split(&tok).map(|t| interner.id(t)));
                ref_lens.push(ids.len() as u64);
                ngram_keys(&ids, order, &mut keys);
                if r == 0 {
                    for &(_, k) in &keys {
                        *ref_ngrams.entry(k).or_insert(0) += 1;
                    }
                } else {
                    this_ref.clear();
                    for &(_, k) in &keys {
                        *this_ref.entry(k).or_insert(0) += 1;
                    }
                    for (&k, &c) in &this_ref {
                        let e = ref_ngrams.entry(k).or_insert(0);
                        *e = (*e).max(c);
                    }
                }
            }
            let tok = self.preprocess(hyp.as_ref());
            ids.clear();
            ids.extend(py_split(&tok).map(|t| interner.id(t)));
            let hyp_len = ids.len() as u64;
            // Closest reference length; among equally close ones, the shorter.
            let mut closest: Option<(u64, u64)> = None;
            for &rl in &ref_lens {
                let diff = hyp_len.abs_diff(rl);
                closest = match closest {
                    None => Some((diff, rl)),
                    Some((d, l)) if diff < d || (diff == d && rl < l) => Some((diff, rl)),
                    c => c,
                };
            }
            let mut st = SegmentStats {
                hyp_len,
                ref_len: closest.map_or(0, |c| c.1),
                ..Default::default()
            };
            ngram_keys(&ids, order, &mut keys);
            keys.sort_unstable();
            let mut j = 0;
            while j < keys.len() {
                let (n, k) = keys[j];
                let mut run = 1;
                while j + run < keys.len() && keys[j + run].1 == k {
                    run += 1;
                }
                let n = n as usize - 1;
                st.total[n] += run as u64;
                if let Some(&rc) = ref_ngrams.get(&k) {
                    st.correct[n] += (run as u64).min(rc as u64);
                }
                j += run;
            }
            out.push(st);
        }
        out
    }

    fn score_from_stats(&self, stats: &[SegmentStats], nrefs: usize) -> BleuScore {
        let mut sum = SegmentStats::default();
        for s in stats {
            sum.hyp_len += s.hyp_len;
            sum.ref_len += s.ref_len;
            for n in 0..4 {
                sum.correct[n] += s.correct[n];
                sum.total[n] += s.total[n];
            }
        }
        let order = self.max_ngram_order;
        let mut score = self.compute_bleu(
            &sum.correct[..order],
            &sum.total[..order],
            sum.hyp_len,
            sum.ref_len,
        );
        score.signature = self.signature(nrefs);
        score
    }
}

/// `sacrebleu.corpus_bleu(hyps, refs)` with default settings (13a, exp smoothing, cased).
pub fn corpus_bleu<H: AsRef<str> + Sync, R: AsRef<str> + Sync, V: AsRef<[R]> + Sync>(
    hyps: &[H],
    refs: &[V],
) -> Result<BleuScore> {
    Bleu::default().corpus_score(hyps, refs)
}

/// `sacrebleu.sentence_bleu(hyp, refs)`: default settings with effective order on.
pub fn sentence_bleu<R: AsRef<str>>(hyp: &str, refs: &[R]) -> Result<BleuScore> {
    Bleu {
        effective_order: true,
        ..Bleu::default()
    }
    .sentence_score(hyp, refs)
}

impl BleuScore {
    /// The precisions as sacrebleu prints them, `65.1/41.2/28.1/19.6`.
    pub fn precisions_string(&self) -> String {
        self.precisions
            .iter()
            .map(|p| format!("{p:.1}"))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// An HTML table of the result.
    pub fn to_html(&self) -> String {
        let header = [
            "BLEU",
            "precisions",
            "BP",
            "ratio",
            "hyp_len",
            "ref_len",
            "signature",
        ];
        let row = vec![
            format!("{:.2}", self.score),
            self.precisions_string(),
            format!("{:.3}", self.bp),
            format!("{:.3}", self.ratio),
            self.sys_len.to_string(),
            self.ref_len.to_string(),
            self.signature.clone(),
        ];
        super::html_table(&header, &[row])
    }

    /// Renders the result as an HTML table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        crate::display::emit("text/html", &self.to_html());
    }
}

impl fmt::Display for BleuScore {
    /// sacrebleu's text line: `BLEU|signature = 34.20 65.1/41.2/28.1/19.6 (BP = ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.signature.is_empty() {
            "BLEU".to_string()
        } else {
            format!("BLEU|{}", self.signature)
        };
        write!(
            f,
            "{name} = {:.2} {} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            self.precisions_string(),
            self.bp,
            self.ratio,
            self.sys_len,
            self.ref_len
        )
    }
}
