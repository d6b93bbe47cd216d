//! The command jobs, one file each: what a `massivetext` subcommand does, composed from the
//! layers below (data, tokenizer, models, generate, train, metrics, viz). Each takes plain
//! options and returns the text to print, so the command line ([`crate::cli`], flags only), the
//! tests and the notebooks run the same code. A new subcommand's work goes here.
pub mod code;
pub mod code_corpus;
pub mod code_eval;
pub mod code_pretrained;
pub mod dataset;
pub mod generate;
pub mod memory;
pub mod metrics;
pub mod perplexity;
pub mod tokenize;
pub mod tokenize_ranks;
pub mod train;
pub mod train_tokenizer;
pub mod translate;
