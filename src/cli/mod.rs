//! The `massivetext` command line, on clap: one module per subcommand with its flags (their doc
//! comments are the `--help` text) and the dispatch; the jobs themselves live in
//! [`crate::jobs`] and return the text to print, so tests and notebooks can run a command line
//! without a process ([`run_from`]).
//!
//! ```text
//! massivetext train [--config job.toml] [--device auto|cpu|cuda] [--max-steps N] [--n-layer N] ...
//!                   [--set KEY=VALUE]... [--print-config]
//! massivetext dataset info|head --kind text|csv|json FILE...
//! massivetext train-tokenizer --kind bpe|wordpiece|unigram --vocab-size N --out DIR FILE...
//! massivetext tokenize --tokenizer PATH --out DIR FILE...
//! massivetext generate --model DIR --prompt TEXT [--max-new-tokens N] [--do-sample] [--top-k K]
//!                      [--top-p P] [--temperature T] [--num-beams B] [--seed S]
//! massivetext perplexity --model DIR --data FILE [--stride N] [--max-length N] [--json]
//! massivetext metrics bleu|chrf|rouge --hyp FILE --ref FILE [--ref FILE]... [--json]
//! massivetext translate-train [--quick] [--config job.toml] [--data-dir DIR] [--max-steps N]
//!                             [--num-beams B] [--output-dir DIR] [--print-config]
//! massivetext code [--quick] [--config job.toml] [--python PYTHON | --stdlib DIR] [--max-steps N]
//!                  [--output-dir DIR] [--json] [--print-config]
//! ```
//! `massivetext SUBCOMMAND --help` lists every flag.
pub mod code;
pub mod dataset;
pub mod generate;
pub mod metrics;
pub mod perplexity;
pub mod tokenizer;
pub mod train;
pub mod translate;
mod values;

use crate::{Error, Result};
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::ffi::OsString;

/// The language-model workflow from the command line.
#[derive(Debug, Parser)]
#[command(name = "massivetext", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a small GPT on the embedded story corpus (or as configured in --config job.toml).
    Train(Box<train::TrainArgs>),
    /// Inspect a dataset: `info` (splits, rows, column types) or `head` (first rows).
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Train a BPE, WordPiece or Unigram tokenizer on text files.
    TrainTokenizer(tokenizer::TrainTokenizerArgs),
    /// Tokenize text files into memory-mapped token shards.
    Tokenize(tokenizer::TokenizeArgs),
    /// Continue a prompt with a causal LM: greedy, sampling (top-k/top-p) or beam search.
    Generate(generate::GenerateArgs),
    /// Sliding-window perplexity of a causal LM on a text file.
    Perplexity(perplexity::PerplexityArgs),
    /// Score line-aligned files like sacrebleu / rouge-score: bleu, chrf or rouge.
    #[command(subcommand)]
    Metrics(metrics::MetricsCommand),
    /// Train a Marian translation model from scratch (Multi30k en-de by default) and score its
    /// beam-search translations of the test set with BLEU and chrF.
    TranslateTrain(Box<translate::TranslateArgs>),
    /// Train a small Llama from scratch on the Python standard library and measure it on
    /// held-out files: bits per byte, next-line exact match, parse rate of generated functions.
    Code(Box<code::CodeArgs>),
}

/// Runs a parsed command line and returns what to print.
pub fn run(cli: Cli) -> Result<String> {
    match cli.command {
        Command::Train(a) => a.run(),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::TrainTokenizer(a) => a.run(),
        Command::Tokenize(a) => a.run(),
        Command::Generate(a) => a.run(),
        Command::Perplexity(a) => a.run(),
        Command::Metrics(cmd) => metrics::run(&cmd),
        Command::TranslateTrain(a) => a.run(),
        Command::Code(a) => a.run(),
    }
}

/// Parses a whole command line (program name first, as `std::env::args()` gives it) and runs it.
/// `--help` and `--version` return their text; any other clap error (unknown or missing flag,
/// bad value) is an [`Error::InvalidArgument`] holding clap's message and usage.
pub fn run_from<I, T>(args: I) -> Result<String>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run(cli),
        Err(e) => {
            let text = e.render().to_string();
            let text = text.trim_end();
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Ok(text.to_string()),
                _ => Err(Error::InvalidArgument(
                    text.strip_prefix("error: ").unwrap_or(text).to_string(),
                )),
            }
        }
    }
}
