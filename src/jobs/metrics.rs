//! `massivetext metrics bleu|chrf|rouge`: score line-aligned files like sacrebleu's and
//! rouge-score's command lines; each returns what to print.
//!
//! Files hold one segment (sentence or summary) per line. For ROUGE each line is one summary,
//! so `rougeLsum` sees one sentence per summary there; use the library API for multi-sentence
//! summaries.
use crate::data::read_lines;
use crate::metrics::{Bleu, Chrf, RougeCorpusScore, RougeScorer};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Reads a text file as one segment per line ([`read_lines`]); an empty file is refused, as a
/// metric needs a segment to score.
pub fn read_segments(path: &Path) -> Result<Vec<String>> {
    let lines = read_lines(path)?;
    if lines.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: format!("file {}", path.display()),
        });
    }
    Ok(lines)
}

/// The files a metric scores: one hypothesis file and one or more reference files, all with
/// the same number of lines; `json` asks for one JSON object instead of the one-line summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScoreFiles {
    pub hyp: PathBuf,
    pub refs: Vec<PathBuf>,
    pub json: bool,
}

impl ScoreFiles {
    /// Reads the hypotheses and the reference streams, checking that the line counts agree.
    fn read(&self) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        if self.refs.is_empty() {
            return Err(Error::MetricUsage(
                "at least one reference file is required (`--ref FILE`)".into(),
            ));
        }
        let hyps = read_segments(&self.hyp)?;
        let mut refs = Vec::with_capacity(self.refs.len());
        for p in &self.refs {
            let lines = read_segments(p)?;
            if lines.len() != hyps.len() {
                return Err(Error::MetricLengthMismatch {
                    what: format!("reference file {}", p.display()),
                    found: lines.len(),
                    expected_what: format!("hypothesis file {}", self.hyp.display()),
                    expected: hyps.len(),
                });
            }
            refs.push(lines);
        }
        Ok((hyps, refs))
    }
}

/// `massivetext metrics bleu`: sacrebleu's one-line summary, or with `json` one JSON object
/// (`name`, `score`, `signature`, `precisions`, `bp`, `ratio`, `sys_len`, `ref_len`, `counts`,
/// `totals`).
pub fn score_bleu(files: &ScoreFiles, bleu: &Bleu) -> Result<String> {
    let (hyps, refs) = files.read()?;
    let s = bleu.corpus_score(&hyps, &refs)?;
    if files.json {
        let v = serde_json::json!({
            "name": "BLEU",
            "score": s.score,
            "signature": s.signature,
            "precisions": s.precisions,
            "bp": s.bp,
            "ratio": s.ratio,
            "sys_len": s.sys_len,
            "ref_len": s.ref_len,
            "counts": s.counts,
            "totals": s.totals,
        });
        Ok(v.to_string())
    } else {
        Ok(s.to_string())
    }
}

/// `massivetext metrics chrf`: sacrebleu's one-line summary, or with `json` one JSON object
/// (`name`, `score`, `signature`).
pub fn score_chrf(files: &ScoreFiles, chrf: &Chrf) -> Result<String> {
    let (hyps, refs) = files.read()?;
    let s = chrf.corpus_score(&hyps, &refs)?;
    if files.json {
        let v = serde_json::json!({
            "name": s.name,
            "score": s.score,
            "signature": s.signature,
        });
        Ok(v.to_string())
    } else {
        Ok(s.to_string())
    }
}

/// `massivetext metrics rouge`: the mean precision, recall and F-measure of each ROUGE type
/// (the best reference per line when there are several), as text or with `json` as JSON.
pub fn score_rouge(files: &ScoreFiles, scorer: &RougeScorer) -> Result<String> {
    let (hyps, refs) = files.read()?;
    let s: RougeCorpusScore = if refs.len() == 1 {
        scorer.corpus_score(&hyps, &refs[0])?
    } else {
        scorer.corpus_score_multi(&hyps, &refs)?
    };
    if files.json {
        Ok(s.mean.to_json().to_string())
    } else {
        Ok(s.mean.to_string())
    }
}
