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
    #[error("unknown split `{split}`; available splits: {available}")]
    UnknownSplit { split: String, available: String },
    #[error("tokenizer folder {dir}: {message}")]
    TokenizerFiles { dir: PathBuf, message: String },
    #[error(
        "{path}: {message}; the file is corrupt or not a tokenizer file, re-download or re-save it"
    )]
    TokenizerParse { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error(
        "vocabulary size {vocab_size} is smaller than the alphabet ({alphabet} symbols incl. special tokens); use --vocab-size {alphabet} or more"
    )]
    VocabTooSmall { vocab_size: usize, alphabet: usize },
    #[error("empty corpus: {what} holds no text; check the file paths or the column")]
    EmptyCorpus { what: String },
    #[error(
        "{dir} was built with another tokenizer (manifest fingerprint {found}, this tokenizer {expected}); rebuild the shards with this tokenizer or load the matching one"
    )]
    ShardTokenizerMismatch {
        dir: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}: {message}")]
    ShardFormat { path: PathBuf, message: String },
    #[error(
        "sequence of {length} tokens is longer than max_length {max_length}; pass Truncation::Truncate to cut it or raise max_length"
    )]
    SequenceTooLong { length: usize, max_length: usize },
    #[error("column `{column}` row {row}: expected {expected}, found {found}")]
    ColumnType {
        column: String,
        row: usize,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    InvalidArgument(String),
}
