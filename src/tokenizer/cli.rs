//! Command-line entry points; `main.rs` routes `massivetext train-tokenizer ...` and
//! `massivetext tokenize ...` here. Each returns the summary to print.
use super::shards::{ShardBuildOptions, TokenShards};
use super::train::{TokenizerKind, TrainOptions};
use super::{Tokenizer, pretrained::io_err};
use crate::{Error, Result};
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const TRAIN_USAGE: &str = "usage: massivetext train-tokenizer --kind bpe|wordpiece|unigram --vocab-size N --out DIR [--min-frequency N] [--cased] [--special-token TOK]... FILE...";
const TOKENIZE_USAGE: &str = "usage: massivetext tokenize --tokenizer PATH --out DIR [--shard-tokens N] [--batch-mb N] [--force] FILE...";

/// Peak resident memory of this process (`VmHWM` in /proc/self/status), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn usage(usage: &str, message: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{message}\n{usage}"))
}

/// `--flag value` pairs, boolean `--flags`, and the remaining positional files.
struct Args {
    values: Vec<(String, String)>,
    flags: Vec<String>,
    files: Vec<PathBuf>,
}

impl Args {
    fn parse(
        args: &[String],
        with_value: &[&str],
        flags: &[&str],
        usage_text: &str,
    ) -> Result<Self> {
        let mut out = Args {
            values: Vec::new(),
            flags: Vec::new(),
            files: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some((k, v)) = a.split_once('=').filter(|(k, _)| k.starts_with("--")) {
                if !with_value.contains(&k) {
                    return Err(usage(usage_text, format!("unknown option `{k}`")));
                }
                out.values.push((k.to_string(), v.to_string()));
            } else if with_value.contains(&a.as_str()) {
                let v = it
                    .next()
                    .ok_or_else(|| usage(usage_text, format!("`{a}` needs a value")))?;
                out.values.push((a.clone(), v.clone()));
            } else if flags.contains(&a.as_str()) {
                out.flags.push(a.clone());
            } else if a == "--help" || a == "-h" {
                return Err(usage(usage_text, "help"));
            } else if a.starts_with("--") {
                return Err(usage(usage_text, format!("unknown option `{a}`")));
            } else {
                out.files.push(PathBuf::from(a));
            }
        }
        Ok(out)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn require(&self, k: &str, usage_text: &str) -> Result<&str> {
        self.get(k)
            .ok_or_else(|| usage(usage_text, format!("missing `{k}`")))
    }
    fn number<T: std::str::FromStr>(&self, k: &str, usage_text: &str) -> Result<Option<T>> {
        self.get(k)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| usage(usage_text, format!("`{k} {v}`: not a valid number")))
            })
            .transpose()
    }
}

/// Non-empty lines of the files, streamed; the first read error is kept in `error`.
struct FileLines {
    files: Vec<PathBuf>,
    idx: usize,
    reader: Option<BufReader<std::fs::File>>,
    error: Arc<Mutex<Option<Error>>>,
}

impl Iterator for FileLines {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        loop {
            if self.reader.is_none() {
                let path = self.files.get(self.idx)?;
                match std::fs::File::open(path) {
                    Ok(f) => self.reader = Some(BufReader::with_capacity(1 << 20, f)),
                    Err(e) => {
                        self.fail(io_err(path, e));
                        return None;
                    }
                }
            }
            let mut line = String::new();
            let r = self.reader.as_mut().expect("reader is open");
            match r.read_line(&mut line) {
                Ok(0) => {
                    self.reader = None;
                    self.idx += 1;
                }
                Ok(_) => {
                    let n = line.trim_end_matches(['\n', '\r']).len();
                    line.truncate(n);
                    if !line.is_empty() {
                        return Some(line);
                    }
                }
                Err(e) => {
                    let path = self.files[self.idx].clone();
                    self.fail(io_err(&path, e));
                    return None;
                }
            }
        }
    }
}

impl FileLines {
    fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }
}

/// `massivetext train-tokenizer --kind bpe|wordpiece|unigram --vocab-size N --out DIR FILE...`
pub fn run_train_tokenizer(args: &[String]) -> Result<String> {
    let u = TRAIN_USAGE;
    let a = Args::parse(
        args,
        &[
            "--kind",
            "--vocab-size",
            "--out",
            "--min-frequency",
            "--special-token",
        ],
        &["--cased"],
        u,
    )?;
    let kind: TokenizerKind = a.require("--kind", u)?.parse()?;
    let vocab_size: usize = a
        .number("--vocab-size", u)?
        .ok_or_else(|| usage(u, "missing `--vocab-size`"))?;
    let out = PathBuf::from(a.require("--out", u)?);
    if a.files.is_empty() {
        return Err(usage(u, "no input FILE given"));
    }
    for f in &a.files {
        std::fs::metadata(f).map_err(|e| io_err(f, e))?;
    }
    let mut opts = TrainOptions::new(vocab_size);
    opts.min_frequency = a.number("--min-frequency", u)?.unwrap_or(0);
    opts.special_tokens = a.all("--special-token");
    opts.lowercase = !a.flags.iter().any(|f| f == "--cased");
    opts.show_progress = std::io::stderr().is_terminal();
    let error = Arc::new(Mutex::new(None));
    let lines = FileLines {
        files: a.files.clone(),
        idx: 0,
        reader: None,
        error: error.clone(),
    };
    let started = std::time::Instant::now();
    let trained = Tokenizer::train(kind, lines, &opts);
    if let Some(e) = error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    let tok = trained.map_err(|e| match e {
        Error::EmptyCorpus { .. } => Error::EmptyCorpus {
            what: a
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        },
        e => e,
    })?;
    tok.save(&out)?;
    Ok(format!(
        "trained {kind:?} tokenizer: vocab size {} in {:.1}s; saved to {} (tokenizer.json, tokenizer_config.json, special_tokens_map.json)",
        tok.vocab_size(),
        started.elapsed().as_secs_f64(),
        out.display()
    ))
}

/// `massivetext tokenize --tokenizer PATH --out DIR FILE...`: token shards, with a progress bar
/// (bytes/s, ETA) and a summary (documents, tokens, MB/s, peak memory).
pub fn run_tokenize(args: &[String]) -> Result<String> {
    let u = TOKENIZE_USAGE;
    let a = Args::parse(
        args,
        &["--tokenizer", "--out", "--shard-tokens", "--batch-mb"],
        &["--force"],
        u,
    )?;
    let tok = Tokenizer::from_pretrained(a.require("--tokenizer", u)?)?;
    let out = PathBuf::from(a.require("--out", u)?);
    if a.files.is_empty() {
        return Err(usage(u, "no input FILE given"));
    }
    let mut opts = ShardBuildOptions {
        show_progress: std::io::stderr().is_terminal(),
        force: a.flags.iter().any(|f| f == "--force"),
        ..Default::default()
    };
    if let Some(n) = a.number::<u64>("--shard-tokens", u)? {
        opts.shard_tokens = n;
    }
    if let Some(mb) = a.number::<f64>("--batch-mb", u)? {
        opts.batch_bytes = ((mb * 1e6) as usize).max(1);
    }
    let report = TokenShards::build_from_files(&tok, &a.files, &out, &opts)?;
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
