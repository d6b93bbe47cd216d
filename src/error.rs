//! One error type for the whole crate; every message says what went wrong and where.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a failed read or write should tell the user to do, from the OS error's kind.
fn io_hint(e: &std::io::Error, writing: bool) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound if writing => "; check that the folder exists",
        NotFound => "; check the path",
        PermissionDenied => "; check the permissions of the file and its folder",
        AlreadyExists => "; remove it or choose another name",
        StorageFull => "; free some disk space and try again",
        ReadOnlyFilesystem => "; write to a writable location",
        IsADirectory => "; give a file, not a folder",
        NotADirectory => "; a part of the path is a file, not a folder",
        _ if writing => "",
        _ => "; check that the file exists and is readable",
    }
}

/// candle's message without the backtrace it carries when `RUST_BACKTRACE` is set (20 lines of
/// frames inside candle that tell a user nothing about what to change).
fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        e => e.to_string(),
    }
}

/// The crate's error. Its `Debug` form is its message, as `anyhow`'s is: that is what a
/// notebook shows for `?` on a cell's last line and what `main` prints for an `Err`, so it must
/// say what went wrong and what to do, not dump the enum.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read {path}: {source}{}", io_hint(source, false))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}{}", io_hint(source, true))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid UTF-8 at byte offset {offset}; re-encode the file as UTF-8")]
    InvalidUtf8 { path: PathBuf, offset: usize },
    #[error("unknown dataset kind `{kind}`; supported kinds: {supported}")]
    UnknownKind { kind: String, supported: String },
    #[error("{}: {message}", position(.path, .line, .column))]
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
    /// A dataset transform's function (`map`, `filter`, their batched and column forms) failed;
    /// `at` names the row or the batch of rows it failed on. Nothing was cached.
    #[error("{op}: the function failed on {at}: {source}")]
    Transform {
        op: String,
        at: String,
        source: Box<Error>,
    },
    /// A value the caller passed is not usable; the message says which and what is expected.
    #[error("{0}")]
    InvalidArgument(String),
    /// A setting of a configuration (`TrainingArguments`, `GenerationConfig`, a job file) has a
    /// value that cannot work; the message names the key and what to give instead.
    #[error("{0}")]
    InvalidConfig(String),
    /// Two settings or inputs that each make sense cannot be given together (or one needs the
    /// other); the message names both.
    #[error("{0}")]
    ConflictingArguments(String),
    /// What was asked needs something this build or this model does not have (a cargo
    /// feature, a decoding mode, an activation); the message says what to do instead.
    #[error("{0}")]
    Unsupported(String),
    #[error("unknown split `{split}`; available splits: {available}")]
    UnknownSplit { split: String, available: String },
    #[error(
        "output folder {dir} is not empty (it holds {found}); resume that run with --resume-from-checkpoint latest (resume_from_checkpoint = \"latest\"), start over in it with --overwrite-output-dir (overwrite_output_dir = true; its checkpoints are deleted), or choose another --output-dir"
    )]
    OutputDirNotEmpty { dir: PathBuf, found: String },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(
        "training stopped at step {step}: the {what} is {value}; lower the learning_rate or raise warmup_steps, check the data, then {}",
        resume_advice(.last_checkpoint)
    )]
    NonFiniteLoss {
        what: String,
        value: f64,
        step: usize,
        /// The newest checkpoint folder; empty when none was saved.
        last_checkpoint: String,
    },
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
    #[error(
        "{what} is a `{model_type}` model, not a causal language model: perplexity needs left-to-right next-token probabilities (model types: gpt2); score a masked LM (bert, roberta) with Evaluator on masked tokens instead"
    )]
    NotCausalLm { what: String, model_type: String },
    #[error("tensor error: {}", candle_message(.0))]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: unsupported model_type `{model_type}`; supported model types: {supported}")]
    UnsupportedModelType {
        path: PathBuf,
        model_type: String,
        supported: String,
    },
    #[error(
        "a `{model_type}` model cannot be loaded as {task}; model types for {task}: {supported}"
    )]
    WrongTask {
        model_type: String,
        task: String,
        supported: String,
    },
    #[error(
        "{path}: weight `{name}` is missing; the file holds {found} tensors, none with this name (is this checkpoint for another architecture?)"
    )]
    MissingWeight {
        path: PathBuf,
        name: String,
        found: usize,
    },
    #[error("{path}: weight `{name}` has shape {found:?}, expected {expected:?} from config.json")]
    WeightShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path} is not a valid safetensors file: {message}; download or save it again")]
    CorruptWeights { path: PathBuf, message: String },
    #[error(
        "sequence length {len} is longer than the model's position table ({max} positions); truncate the input to {max} tokens"
    )]
    SequenceTooLong { len: usize, max: usize },
    #[error(
        "token id {id} is outside the vocabulary (vocab_size {vocab_size}); was the input made with another tokenizer?"
    )]
    TokenOutOfVocab { id: u32, vocab_size: usize },
    #[error("model `{id}` not found; looked in: {looked}. {hint}")]
    ModelNotFound {
        id: String,
        looked: String,
        hint: String,
    },
    #[error("downloading `{id}` from the Hugging Face Hub failed: {message}")]
    Hub { id: String, message: String },
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
    EncodingTooLong { length: usize, max_length: usize },
    #[error("column `{column}` row {row}: expected {expected}, found {found}")]
    ColumnType {
        column: String,
        row: usize,
        expected: String,
        found: String,
    },
}

/// What to do after a non-finite loss: resume when a checkpoint exists, else start over
/// (resume advice with nothing to resume from misleads).
fn resume_advice(last_checkpoint: &str) -> String {
    if last_checkpoint.is_empty() {
        "train again: no checkpoint was saved yet (save_steps sets how often one is)".into()
    } else {
        format!("resume from the last good checkpoint ({last_checkpoint})")
    }
}

/// `file:line:column`, or only the file when the reader knows no position (line 0): a
/// `file:0:0` sends an editor to a line that does not exist.
fn position(path: &std::path::Path, line: &u64, column: &u64) -> String {
    match (*line, *column) {
        (0, _) => path.display().to_string(),
        (l, 0) => format!("{}:{l}", path.display()),
        (l, c) => format!("{}:{l}:{c}", path.display()),
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
