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
    // -- metrics --
    #[error(
        "{what} has {found} lines but {expected_what} has {expected}; give one line per segment in both"
    )]
    MetricLengthMismatch {
        what: String,
        found: usize,
        expected_what: String,
        expected: usize,
    },
    #[error("{what} is empty; a metric needs at least one segment to score")]
    EmptyMetricInput { what: String },
    #[error("unknown {option} `{value}`; valid values: {valid}")]
    UnknownMetricOption {
        option: String,
        value: String,
        valid: String,
    },
    #[error("{0}")]
    MetricUsage(String),
}
