//! `massivetext perplexity`: the flags; the job is [`crate::jobs::perplexity`].
use super::values::{positive_usize, whole_number};
use crate::Result;
use crate::jobs::perplexity::{PerplexityOptions, perplexity_of_file};
use clap::Args;
use std::path::PathBuf;

/// `massivetext perplexity --model DIR --data FILE`
#[derive(Debug, Args)]
pub struct PerplexityArgs {
    /// The causal language model: a folder with config.json and model.safetensors, or a Hub id.
    #[arg(long, value_name = "DIR")]
    pub model: String,
    /// The text file; the whole file is scored as one text.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// The tokenizer folder or Hub id [default: the --model folder].
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<String>,
    /// Tokens per window [default: the model's n_positions].
    #[arg(long, value_name = "N", value_parser = whole_number)]
    pub max_length: Option<usize>,
    /// Tokens the window moves each time [default: --max-length, no overlap].
    #[arg(long, value_name = "N", value_parser = whole_number)]
    pub stride: Option<usize>,
    /// Windows run together in one forward pass (the numbers do not depend on it).
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub batch_size: Option<usize>,
    /// Print one JSON object (perplexity, mean_nll, nll_sum, num_tokens, ...) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl PerplexityArgs {
    pub fn options(&self) -> PerplexityOptions {
        PerplexityOptions {
            model: self.model.clone(),
            data: self.data.clone(),
            tokenizer: self.tokenizer.clone(),
            max_length: self.max_length,
            stride: self.stride,
            batch_size: self.batch_size,
            json: self.json,
        }
    }

    pub fn run(&self) -> Result<String> {
        perplexity_of_file(&self.options())
    }
}
