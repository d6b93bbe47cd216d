//! The `massivetext` command line: one module per subcommand, each returning the text to print
//! so that tests can call it without a process.
pub mod dataset;

use clap::{Parser, Subcommand};

/// The language-model workflow from the command line.
#[derive(Debug, Parser)]
#[command(name = "massivetext", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a small GPT on the embedded story corpus (or as configured): `train [--config job.toml] [--max-steps N] [--output-dir DIR] ...`.
    Train(Passthrough),
    /// Inspect a dataset: `info` (splits, rows, column types) or `head` (first rows).
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Train a tokenizer: `train-tokenizer --kind bpe|wordpiece|unigram --vocab-size N --out DIR FILE...`.
    TrainTokenizer(Passthrough),
    /// Tokenize files into memory-mapped token shards: `tokenize --tokenizer PATH --out DIR FILE...`.
    Tokenize(Passthrough),
    /// Perplexity of a causal LM on a text file: `perplexity --model DIR --data FILE [--stride N --max-length N]`.
    Perplexity(Passthrough),
    /// Score line-aligned files like sacrebleu / rouge-score: `metrics bleu|chrf|rouge --hyp F --ref F`.
    Metrics(Passthrough),
}

/// Arguments handed as they are to a subcommand's own parser (which prints its usage on error).
#[derive(Debug, clap::Args)]
pub struct Passthrough {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs a parsed command line and returns what to print.
pub fn run(cli: Cli) -> crate::Result<String> {
    match cli.command {
        Command::Train(p) => crate::train::cli::run_train_cli(&p.args),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::TrainTokenizer(p) => crate::tokenizer::cli::run_train_tokenizer(&p.args),
        Command::Tokenize(p) => crate::tokenizer::cli::run_tokenize(&p.args),
        Command::Perplexity(p) => crate::metrics::perplexity_cli::run_perplexity_cli(&p.args),
        Command::Metrics(p) => crate::metrics::cli::run_metrics_cli(&p.args),
    }
}
