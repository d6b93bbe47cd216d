//! One error type for the whole crate; every message says what went wrong and where.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}; check that the file exists and is readable")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid UTF-8 at byte offset {offset}; re-encode the file as UTF-8")]
    InvalidUtf8 { path: PathBuf, offset: usize },
    #[error("unknown dataset kind `{kind}`; supported kinds: {supported}")]
    UnknownKind { kind: String, supported: String },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("unknown column `{column}`; available columns: {available}")]
    UnknownColumn { column: String, available: String },
    #[error("the glob `{pattern}` is unusable: {message}; check the pattern and the folder")]
    Glob { pattern: String, message: String },
    #[error("no data files given for split `{split}`")]
    NoDataFiles { split: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("unknown split `{split}`; available splits: {available}")]
    UnknownSplit { split: String, available: String },
    // -- tokenizer --
    // -- models --
    // -- train --
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(
        "training stopped at step {step}: the {what} is {value}; lower the learning_rate or raise warmup_steps, check the data, then resume from the last good checkpoint ({last_checkpoint})"
    )]
    NonFiniteLoss {
        what: String,
        value: f64,
        step: usize,
        last_checkpoint: String,
    },
    // -- metrics --
}
