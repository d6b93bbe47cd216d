//! `massivetext tokenize`: text files into memory-mapped token shards, with a progress bar and
//! a summary; returns the summary to print.
use crate::sys::peak_rss_bytes;
use crate::tokenizer::{ShardBuildOptions, TokenShards, Tokenizer};
use crate::{Error, Result};
use std::io::IsTerminal;
use std::path::PathBuf;

/// What `massivetext tokenize` does: `TokenizeOptions::new(tokenizer, out, files)` with the
/// flags' defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenizeOptions {
    /// A tokenizer folder, `tokenizer.json`, or a Hub id.
    pub tokenizer: String,
    /// The shard folder written.
    pub out: PathBuf,
    /// Tokens per shard file (default: [`ShardBuildOptions`]'s).
    pub shard_tokens: Option<u64>,
    /// Megabytes of text tokenized per batch (default: [`ShardBuildOptions`]'s).
    pub batch_mb: Option<f64>,
    /// Rebuild even when `out` already holds these files tokenized with this tokenizer.
    pub force: bool,
    /// Text files, one document per non-empty line.
    pub files: Vec<PathBuf>,
}

impl TokenizeOptions {
    pub fn new(tokenizer: impl Into<String>, out: PathBuf, files: Vec<PathBuf>) -> Self {
        TokenizeOptions {
            tokenizer: tokenizer.into(),
            out,
            shard_tokens: None,
            batch_mb: None,
            force: false,
            files,
        }
    }
}

/// `massivetext tokenize`: token shards, with a progress bar (bytes/s, ETA) and a summary
/// (documents, tokens, MB/s, peak memory).
pub fn tokenize_files(o: &TokenizeOptions) -> Result<String> {
    if o.files.is_empty() {
        return Err(Error::InvalidArgument(
            "no input FILE given; name one or more text files to tokenize".into(),
        ));
    }
    if let Some(mb) = o.batch_mb.filter(|mb| !(mb.is_finite() && *mb > 0.0)) {
        return Err(Error::InvalidArgument(format!(
            "batch size {mb} MB: give a positive number of megabytes"
        )));
    }
    let tok = Tokenizer::from_pretrained(&o.tokenizer)?;
    let out = &o.out;
    let mut opts = ShardBuildOptions {
        show_progress: std::io::stderr().is_terminal(),
        force: o.force,
        ..Default::default()
    };
    if let Some(n) = o.shard_tokens {
        opts.shard_tokens = n;
    }
    if let Some(mb) = o.batch_mb {
        opts.batch_bytes = ((mb * 1e6) as usize).max(1);
    }
    let report = TokenShards::build_from_files(&tok, &o.files, out, &opts)?;
    let m = &report.manifest;
    if report.reused {
        return Ok(format!(
            "{} already holds these files tokenized with this tokenizer ({} documents, {} tokens); pass --force to rebuild",
            out.display(),
            m.num_documents,
            m.num_tokens
        ));
    }
    let mb = report.bytes as f64 / 1e6;
    let peak = peak_rss_bytes()
        .map(|b| format!("{:.1} MB", b as f64 / 1e6))
        .unwrap_or_else(|| "unknown".into());
    Ok(format!(
        "{} documents, {} tokens ({:?}, {} shard(s)) from {:.1} MB in {:.1}s: {:.2} MB/s; peak memory {}; written to {}",
        m.num_documents,
        m.num_tokens,
        m.dtype,
        m.shards.len(),
        mb,
        report.seconds,
        mb / report.seconds.max(1e-9),
        peak,
        out.display()
    ))
}
