//! `massivetext metrics bleu|chrf|rouge ...`: score line-aligned files like sacrebleu's CLI.
//!
//! ```text
//! massivetext metrics bleu  --hyp sys.txt --ref ref.txt [--ref ref2.txt] [--tokenize 13a]
//!                           [--lowercase] [--smooth-method exp] [--smooth-value V] [--json]
//! massivetext metrics chrf  --hyp sys.txt --ref ref.txt [--word-order 2] [--lowercase] [--json]
//! massivetext metrics rouge --hyp sys.txt --ref ref.txt [--rouge-types rouge1,rouge2,rougeL]
//!                           [--stemmer] [--json]
//! ```
//! Files hold one segment (sentence or summary) per line. For ROUGE each line is one summary,
//! so `rougeLsum` sees one sentence per summary there; use the library API for multi-sentence
//! summaries.
use super::{Bleu, Chrf, RougeCorpusScore, RougeScorer, Smoothing, Tokenize};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: massivetext metrics bleu|chrf|rouge --hyp FILE --ref FILE [--ref FILE...] \
[--tokenize 13a|intl|zh|char|none] [--lowercase] [--smooth-method exp|floor|add-k|none] \
[--smooth-value V] [--word-order N] [--rouge-types rouge1,rouge2,rougeL,rougeLsum] [--stemmer] [--json]";

/// Reads a text file as one segment per line (`\n` or `\r\n` endings; a final newline does not
/// start another segment).
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    if text.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: format!("file {}", path.display()),
        });
    }
    let body = text.strip_suffix('\n').unwrap_or(&text);
    Ok(body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

#[derive(Default)]
struct Args {
    metric: String,
    hyp: Option<PathBuf>,
    refs: Vec<PathBuf>,
    tokenize: Option<String>,
    lowercase: bool,
    smooth_method: Option<String>,
    smooth_value: Option<f64>,
    word_order: Option<usize>,
    rouge_types: Vec<String>,
    stemmer: bool,
    json: bool,
}

fn usage(msg: &str) -> Error {
    Error::MetricUsage(format!("{msg}\n{USAGE}"))
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args::default();
    let mut it = args.iter().peekable();
    a.metric = match it.next() {
        Some(m) if ["bleu", "chrf", "rouge"].contains(&m.as_str()) => m.clone(),
        Some(m) => {
            return Err(Error::UnknownMetricOption {
                option: "metric".into(),
                value: m.clone(),
                valid: "bleu, chrf, rouge".into(),
            });
        }
        None => return Err(usage("no metric given")),
    };
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<String> {
            it.next()
                .cloned()
                .ok_or_else(|| usage(&format!("{name} needs a value")))
        };
        match flag.as_str() {
            "--hyp" => a.hyp = Some(value("--hyp")?.into()),
            "--ref" => a.refs.push(value("--ref")?.into()),
            "--tokenize" => a.tokenize = Some(value("--tokenize")?),
            "--lowercase" => a.lowercase = true,
            "--smooth-method" => a.smooth_method = Some(value("--smooth-method")?),
            "--smooth-value" => {
                let v = value("--smooth-value")?;
                a.smooth_value =
                    Some(v.parse().map_err(|_| {
                        usage(&format!("--smooth-value must be a number, got `{v}`"))
                    })?);
            }
            "--word-order" => {
                let v = value("--word-order")?;
                a.word_order = Some(v.parse().map_err(|_| {
                    usage(&format!("--word-order must be a whole number, got `{v}`"))
                })?);
            }
            "--rouge-types" => {
                let v = value("--rouge-types")?;
                a.rouge_types.extend(
                    v.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
                // Also accept space-separated values: `--rouge-types rouge1 rougeL`.
                while let Some(next) = it.peek() {
                    if next.starts_with("--") {
                        break;
                    }
                    a.rouge_types
                        .extend(next.split(',').filter(|s| !s.is_empty()).map(String::from));
                    it.next();
                }
            }
            "--stemmer" => a.stemmer = true,
            "--json" => a.json = true,
            other => return Err(usage(&format!("unknown option `{other}`"))),
        }
    }
    Ok(a)
}

/// Runs `metrics bleu|chrf|rouge` on `args` (the words after `metrics`) and returns the text
/// to print: sacrebleu's one-line summary, or with `--json` one JSON object.
pub fn run_metrics_cli(args: &[String]) -> Result<String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(USAGE.to_string());
    }
    let a = parse(args)?;
    let hyp_path = a
        .hyp
        .clone()
        .ok_or_else(|| usage("--hyp FILE is required"))?;
    if a.refs.is_empty() {
        return Err(usage("at least one --ref FILE is required"));
    }
    let hyps = read_lines(&hyp_path)?;
    let mut refs = Vec::with_capacity(a.refs.len());
    for p in &a.refs {
        let lines = read_lines(p)?;
        if lines.len() != hyps.len() {
            return Err(Error::MetricLengthMismatch {
                what: format!("reference file {}", p.display()),
                found: lines.len(),
                expected_what: format!("hypothesis file {}", hyp_path.display()),
                expected: hyps.len(),
            });
        }
        refs.push(lines);
    }
    match a.metric.as_str() {
        "bleu" => {
            let bleu = Bleu {
                tokenize: a.tokenize.as_deref().unwrap_or("13a").parse::<Tokenize>()?,
                lowercase: a.lowercase,
                smoothing: Smoothing::parse(
                    a.smooth_method.as_deref().unwrap_or("exp"),
                    a.smooth_value,
                )?,
                ..Bleu::default()
            };
            let s = bleu.corpus_score(&hyps, &refs)?;
            if a.json {
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
        "chrf" => {
            let chrf = Chrf {
                word_order: a.word_order.unwrap_or(0),
                lowercase: a.lowercase,
                ..Chrf::default()
            };
            let s = chrf.corpus_score(&hyps, &refs)?;
            if a.json {
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
        _ => {
            let types = if a.rouge_types.is_empty() {
                vec!["rouge1".into(), "rouge2".into(), "rougeL".into()]
            } else {
                a.rouge_types.clone()
            };
            let scorer = RougeScorer::new(&types, a.stemmer)?;
            let s: RougeCorpusScore = if refs.len() == 1 {
                scorer.corpus_score(&hyps, &refs[0])?
            } else {
                scorer.corpus_score_multi(&hyps, &refs)?
            };
            if a.json {
                Ok(s.mean.to_json().to_string())
            } else {
                Ok(s.mean.to_string())
            }
        }
    }
}
