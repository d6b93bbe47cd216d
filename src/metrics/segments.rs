//! What BLEU and chrF share around their own statistics, as sacrebleu shares it in its
//! `Metric` base class: per-segment statistics (each segment against every reference stream)
//! computed in parallel over chunks, summed into one corpus score, and the sentence score as a
//! corpus of one.
use std::ops::Range;

use rayon::prelude::*;

use super::check_streams;
use crate::{Error, Result};

/// A sacrebleu metric defined by its per-segment statistics.
pub(super) trait SegmentMetric: Sync {
    type Stats: Send;
    type Score;

    /// Rejects settings the metric cannot score with.
    fn validate(&self) -> Result<()>;

    /// The statistics of segments `range` (n-grams are only compared within a segment, so
    /// each range can have its own token interner).
    fn segment_stats_range<H: AsRef<str>, R: AsRef<str>, V: AsRef<[R]>>(
        &self,
        hyps: &[H],
        refs: &[V],
        range: Range<usize>,
    ) -> Vec<Self::Stats>;

    /// The score of summed statistics over `nrefs` reference streams.
    fn score_from_stats(&self, stats: &[Self::Stats], nrefs: usize) -> Self::Score;

    /// Per-segment statistics, computed in parallel over chunks of segments.
    fn segment_stats<H: AsRef<str> + Sync, R: AsRef<str> + Sync, V: AsRef<[R]> + Sync>(
        &self,
        hyps: &[H],
        refs: &[V],
    ) -> Vec<Self::Stats> {
        const CHUNK: usize = 128;
        let starts: Vec<usize> = (0..hyps.len()).step_by(CHUNK).collect();
        let parts: Vec<Vec<Self::Stats>> = starts
            .into_par_iter()
            .map(|s| self.segment_stats_range(hyps, refs, s..(s + CHUNK).min(hyps.len())))
            .collect();
        parts.into_iter().flatten().collect()
    }

    /// `hyps[i]` scored against `refs[r][i]` for every reference stream `r`, checked first.
    fn corpus<H: AsRef<str> + Sync, R: AsRef<str> + Sync, V: AsRef<[R]> + Sync>(
        &self,
        hyps: &[H],
        refs: &[V],
    ) -> Result<Self::Score> {
        self.validate()?;
        check_streams(hyps, refs)?;
        let stats = self.segment_stats(hyps, refs);
        Ok(self.score_from_stats(&stats, refs.len()))
    }

    /// One hypothesis against one or more references: a corpus of one segment.
    fn sentence<R: AsRef<str>>(&self, hyp: &str, refs: &[R]) -> Result<Self::Score> {
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
