//! `massivetext tokenize`: text files into memory-mapped token shards, with a progress bar and
//! a summary; returns the summary to print.
use super::tokenize_ranks::{agree, build_on_ranks};
use crate::sys::peak_rss_bytes;
use crate::tokenizer::{ShardBuildOptions, ShardManifest, TokenShards, Tokenizer};
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
/// (documents, tokens, MB/s, peak memory). Under `mpirun -n N` (the `mpi` feature) the N
/// processes split the input and write the folder one process writes
/// ([`super::tokenize_ranks`]); rank 0 returns the summary, the others nothing.
pub fn tokenize_files(o: &TokenizeOptions) -> Result<String> {
    let opts = build_options(o)?;
    let world = crate::dist::world(None)?;
    if world.world_size() > 1 {
        let done = tokenize_on_ranks(o, &opts, world.as_ref());
        crate::dist::finalize();
        return done;
    }
    let tok = Tokenizer::from_pretrained(&o.tokenizer)?;
    let report = TokenShards::build_from_files(&tok, &o.files, &o.out, &opts)?;
    Ok(summary(
        o,
        &report.manifest,
        report.reused,
        report.bytes,
        report.seconds,
        "",
    ))
}

/// The shard options of `o`, checked.
fn build_options(o: &TokenizeOptions) -> Result<ShardBuildOptions> {
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
    Ok(opts)
}

/// This rank's share of a distributed build; rank 0's summary, or nothing on the others.
fn tokenize_on_ranks(
    o: &TokenizeOptions,
    opts: &ShardBuildOptions,
    comm: &dyn crate::dist::Communicator,
) -> Result<String> {
    let tok = agree(comm, "tokenize", Tokenizer::from_pretrained(&o.tokenizer))?;
    let r = build_on_ranks(comm, &tok, &o.files, &o.out, opts)?;
    if !comm.is_main_process() {
        return Ok(String::new());
    }
    let ranks = format!(" by {} ranks", comm.world_size());
    Ok(summary(
        o,
        &r.manifest,
        r.reused,
        r.bytes,
        r.seconds,
        &ranks,
    ))
}

/// The line `massivetext tokenize` prints.
fn summary(
    o: &TokenizeOptions,
    m: &ShardManifest,
    reused: bool,
    bytes: u64,
    seconds: f64,
    by: &str,
) -> String {
    let out = &o.out;
    if reused {
        return format!(
            "{} already holds these files tokenized with this tokenizer ({} documents, {} tokens); pass --force to rebuild",
            out.display(),
            m.num_documents,
            m.num_tokens
        );
    }
    let mb = bytes as f64 / 1e6;
    let peak = peak_rss_bytes()
        .map(|b| format!("{:.1} MB", b as f64 / 1e6))
        .unwrap_or_else(|| "unknown".into());
    let rate = mb / seconds.max(1e-9);
    let tokens_per_s = m.num_tokens as f64 / seconds.max(1e-9);
    format!(
        "{} documents, {} tokens ({:?}, {} shard(s)) from {:.1} MB in {:.1}s{by}: {:.2} MB/s, {:.0} tokens/s; peak memory {}; written to {}",
        m.num_documents,
        m.num_tokens,
        m.dtype,
        m.shards.len(),
        mb,
        seconds,
        rate,
        tokens_per_s,
        peak,
        out.display()
    )
}
