//! `massivetext train-tokenizer` and `massivetext tokenize`: the flags; the jobs are
//! [`crate::jobs::train_tokenizer`] and [`crate::jobs::tokenize`].
use super::values::{positive, positive_u64, positive_usize};
use crate::Result;
use crate::jobs::tokenize::{TokenizeOptions, tokenize_files};
use crate::jobs::train_tokenizer::{TrainTokenizerOptions, train_tokenizer};
use crate::tokenizer::TokenizerKind;
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use std::path::PathBuf;

/// `massivetext train-tokenizer --kind bpe|wordpiece|unigram --vocab-size N --out DIR FILE...`
#[derive(Debug, Args)]
pub struct TrainTokenizerArgs {
    /// The model: byte-level BPE (GPT-2), WordPiece (BERT) or Unigram (SentencePiece-style).
    #[arg(
        long,
        value_name = "KIND",
        ignore_case = true,
        value_parser = PossibleValuesParser::new(["bpe", "wordpiece", "unigram"])
            .try_map(|s| s.parse::<TokenizerKind>())
    )]
    pub kind: TokenizerKind,
    /// Target vocabulary size, special tokens included: at least the alphabet (bpe: the 256
    /// bytes plus the special tokens; wordpiece and unigram: the files' characters plus the
    /// special tokens; a smaller size is refused with the figure).
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub vocab_size: usize,
    /// The folder to write (tokenizer.json, tokenizer_config.json, special_tokens_map.json).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Drop merges/pieces seen fewer than N times (0 keeps all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_frequency: u64,
    /// Keep case (by default the text is lowercased).
    #[arg(long)]
    pub cased: bool,
    /// An extra special token, after the kind's own; repeat for several.
    #[arg(long = "special-token", value_name = "TOK")]
    pub special_tokens: Vec<String>,
    /// Replace a tokenizer.json already in --out (refused without it).
    #[arg(long)]
    pub force: bool,
    /// Text files to train on, one document per non-empty line.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

impl TrainTokenizerArgs {
    pub fn options(&self) -> TrainTokenizerOptions {
        TrainTokenizerOptions {
            min_frequency: self.min_frequency,
            cased: self.cased,
            special_tokens: self.special_tokens.clone(),
            force: self.force,
            ..TrainTokenizerOptions::new(
                self.kind,
                self.vocab_size,
                self.out.clone(),
                self.files.clone(),
            )
        }
    }

    pub fn run(&self) -> Result<String> {
        train_tokenizer(&self.options())
    }
}

/// `massivetext tokenize --tokenizer PATH --out DIR FILE...`
#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// The tokenizer: a folder saved by train-tokenizer, a tokenizer.json, or a Hub id.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: String,
    /// The folder to write the token shards and their manifest to.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Token ids per shard file [default: 134217728].
    #[arg(long, value_name = "N", value_parser = positive_u64)]
    pub shard_tokens: Option<u64>,
    /// Megabytes of text tokenized per parallel batch; memory stays a few times this [default: 4.2].
    #[arg(long, value_name = "MB", value_parser = positive)]
    pub batch_mb: Option<f64>,
    /// Rebuild even when DIR already holds these files tokenized with this tokenizer, or
    /// replace shards built from other files or with another tokenizer (refused without it).
    #[arg(long)]
    pub force: bool,
    /// Text files to tokenize, one document per non-empty line.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

impl TokenizeArgs {
    pub fn options(&self) -> TokenizeOptions {
        TokenizeOptions {
            shard_tokens: self.shard_tokens,
            batch_mb: self.batch_mb,
            force: self.force,
            ..TokenizeOptions::new(self.tokenizer.clone(), self.out.clone(), self.files.clone())
        }
    }

    pub fn run(&self) -> Result<String> {
        tokenize_files(&self.options())
    }
}
