//! `massivetext generate`: the flags; decoding is [`crate::generate`].
use super::values::positive_usize;
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::models::AutoModelForCausalLM;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use candle_core::Tensor;
use clap::Args;

/// `massivetext generate --model DIR --prompt TEXT`
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
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub max_new_tokens: Option<usize>,
    /// Sample instead of taking the most likely token.
    #[arg(long)]
    pub do_sample: bool,
    /// Sample among the K most likely tokens (0: all) [default: 50].
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample from the smallest set of tokens whose probability reaches P, in (0, 1].
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// Divide the logits by T before sampling (> 0).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
    /// Beam search with B beams.
    #[arg(long, value_name = "B", value_parser = positive_usize)]
    pub num_beams: Option<usize>,
    /// Sequences to print (≤ --num-beams for beam search).
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub num_return_sequences: Option<usize>,
    /// > 1 discourages tokens already in the text.
    #[arg(long, value_name = "R")]
    pub repetition_penalty: Option<f64>,
    /// No n-gram of this size appears twice.
    #[arg(long, value_name = "N")]
    pub no_repeat_ngram_size: Option<usize>,
    /// Seed of the sampling stream (the same seed gives the same text).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
}

impl GenerateArgs {
    /// The checkpoint's generation settings with the flags on top.
    pub fn config(&self, model: &AutoModelForCausalLM) -> GenerationConfig {
        let mut c = model.generation_config();
        c.do_sample |= self.do_sample;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            max_new_tokens,
            top_k,
            top_p,
            temperature,
            num_beams,
            num_return_sequences
        );
        set!(repetition_penalty, no_repeat_ngram_size, seed);
        c
    }

    pub fn run(&self) -> Result<String> {
        let model = AutoModelForCausalLM::from_pretrained(&self.model)?;
        let tok = Tokenizer::from_pretrained(self.tokenizer.as_deref().unwrap_or(&self.model))?;
        let config = self.config(&model);
        let ids = tok.encode_plain(&self.prompt)?;
        if ids.is_empty() && config.bos_token_id.is_none() {
            return Err(Error::InvalidArgument(
                "--prompt is empty and the model has no bos_token_id to start from; give a prompt"
                    .into(),
            ));
        }
        let input = Tensor::from_vec(ids.clone(), (1, ids.len()), model.device())?;
        let out: Vec<Vec<u32>> = model.generate(&input, &config)?.to_vec2()?;
        let pad = config.pad_id();
        let texts = out
            .iter()
            .map(|row| {
                let new: Vec<u32> = row[ids.len().min(row.len())..]
                    .iter()
                    .copied()
                    .filter(|&t| Some(t) != pad || config.eos_token_id.contains(&t))
                    .collect();
                Ok(format!("{}{}", self.prompt, tok.decode(&new, true)?))
            })
            .collect::<Result<Vec<String>>>()?;
        Ok(texts.join("\n---\n"))
    }
}
