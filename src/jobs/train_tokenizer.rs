//! `massivetext train-tokenizer`: trains a BPE, WordPiece or Unigram tokenizer on the non-empty
//! lines of text files and saves it; returns the summary to print.
use crate::io::read_error as io_err;
use crate::tokenizer::{Tokenizer, TokenizerKind, TrainOptions};
use crate::{Error, Result};
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
            let r = match &mut self.reader {
                Some(r) => r,
                None => {
                    let path = self.files.get(self.idx)?;
                    match std::fs::File::open(path) {
                        Ok(f) => self.reader.insert(BufReader::with_capacity(1 << 20, f)),
                        Err(e) => {
                            let e = io_err(path, e);
                            self.fail(e);
                            return None;
                        }
                    }
                }
            };
            let mut line = String::new();
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

/// What `massivetext train-tokenizer` trains: `TrainTokenizerOptions::new(kind, vocab_size, out,
/// files)` with the flags' defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTokenizerOptions {
    pub kind: TokenizerKind,
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// The folder written (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`).
    pub out: PathBuf,
    /// Merges/pieces seen fewer times are dropped (0: keep all).
    pub min_frequency: u64,
    /// Keep case (by default the text is lowercased).
    pub cased: bool,
    /// Extra special tokens, after the kind's own.
    pub special_tokens: Vec<String>,
    /// Text files, one document per non-empty line.
    pub files: Vec<PathBuf>,
    /// Replace a `tokenizer.json` already in `out` (by default refused: it is often a model
    /// folder's own tokenizer, which a new one would silently replace).
    pub force: bool,
}

impl TrainTokenizerOptions {
    pub fn new(kind: TokenizerKind, vocab_size: usize, out: PathBuf, files: Vec<PathBuf>) -> Self {
        TrainTokenizerOptions {
            kind,
            vocab_size,
            out,
            min_frequency: 0,
            cased: false,
            special_tokens: Vec::new(),
            files,
            force: false,
        }
    }
}

/// `massivetext train-tokenizer`: trains a tokenizer on the files' lines and saves it to `out`;
/// returns the summary.
pub fn train_tokenizer(o: &TrainTokenizerOptions) -> Result<String> {
    if o.files.is_empty() {
        return Err(Error::InvalidArgument(
            "no input FILE given; name one or more text files to train on".into(),
        ));
    }
    for f in &o.files {
        std::fs::metadata(f).map_err(|e| io_err(f, e))?;
    }
    let existing = o.out.join("tokenizer.json");
    if !o.force && existing.exists() {
        return Err(Error::InvalidArgument(format!(
            "{} already exists (the folder may hold a model whose tokenizer it is); pass --force (TrainTokenizerOptions::force) to replace it, or choose another --out folder",
            existing.display()
        )));
    }
    let kind = o.kind;
    let out = &o.out;
    let mut opts = TrainOptions::new(o.vocab_size);
    opts.min_frequency = o.min_frequency;
    opts.special_tokens = o.special_tokens.clone();
    opts.lowercase = !o.cased;
    opts.show_progress = std::io::stderr().is_terminal();
    let error = Arc::new(Mutex::new(None));
    let lines = FileLines {
        files: o.files.clone(),
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
            what: o
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        },
        e => e,
    })?;
    tok.save_pretrained(out)?;
    Ok(format!(
        "trained {kind:?} tokenizer: vocab size {} in {:.1}s; saved to {} (tokenizer.json, tokenizer_config.json, special_tokens_map.json)",
        tok.vocab_size(),
        started.elapsed().as_secs_f64(),
        out.display()
    ))
}
