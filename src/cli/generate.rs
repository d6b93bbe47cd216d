//! `massivetext generate`: the flags; the job is [`crate::jobs::generate`].
use super::values::{positive, positive_usize, whole_number};
use crate::Result;
use crate::jobs::generate::{GenerateOptions, generate_text};
use clap::Args;

/// `massivetext generate --model DIR --prompt TEXT`. Numbers may be negative (`--temperature -1`
/// is a value, refused or warned about by the job, not an unknown flag).
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The causal language model: a folder with config.json and model.safetensors, or a Hub id.
    #[arg(long, value_name = "DIR")]
    pub model: String,
    /// The text to continue.
    #[arg(long)]
    pub prompt: String,
    /// The tokenizer folder or Hub id [default: the --model folder].
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<String>,
    /// New tokens to generate at most [default: the checkpoint's setting, else 20].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive_usize)]
    pub max_new_tokens: Option<usize>,
    /// Sample instead of taking the most likely token.
    #[arg(long)]
    pub do_sample: bool,
    /// Sample among the K most likely tokens (0: all) [default: 50].
    #[arg(long, value_name = "K", allow_negative_numbers = true, value_parser = whole_number)]
    pub top_k: Option<usize>,
    /// Sample from the smallest set of tokens whose probability reaches P, in (0, 1].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub top_p: Option<f64>,
    /// Divide the logits by T before sampling (> 0).
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Beam search with B beams.
    #[arg(long, value_name = "B", allow_negative_numbers = true, value_parser = positive_usize)]
    pub num_beams: Option<usize>,
    /// Sequences to print (≤ --num-beams for beam search).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive_usize)]
    pub num_return_sequences: Option<usize>,
    /// > 1 discourages tokens already in the text.
    #[arg(long, value_name = "R", allow_negative_numbers = true, value_parser = positive)]
    pub repetition_penalty: Option<f64>,
    /// No n-gram of this size appears twice.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_number)]
    pub no_repeat_ngram_size: Option<usize>,
    /// Cut a prompt too long for the model's context from the left (by default refused).
    #[arg(long)]
    pub truncate_prompt: bool,
    /// Seed of the sampling stream (the same seed gives the same text).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub seed: Option<u64>,
}

impl GenerateArgs {
    /// The job these flags describe.
    pub fn options(&self) -> GenerateOptions {
        GenerateOptions {
            model: self.model.clone(),
            prompt: self.prompt.clone(),
            tokenizer: self.tokenizer.clone(),
            max_new_tokens: self.max_new_tokens,
            do_sample: self.do_sample,
            top_k: self.top_k,
            top_p: self.top_p,
            temperature: self.temperature,
            num_beams: self.num_beams,
            num_return_sequences: self.num_return_sequences,
            repetition_penalty: self.repetition_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            seed: self.seed,
            truncate_prompt: self.truncate_prompt,
        }
    }

    pub fn run(&self) -> Result<String> {
        generate_text(&self.options())
    }
}
