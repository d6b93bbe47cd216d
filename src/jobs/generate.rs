//! `massivetext generate`: a causal LM continues a prompt (greedy, sampling or beam search, as
//! [`crate::generate`] decodes); returns the continuations to print.
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::models::AutoModelForCausalLM;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use candle_core::Tensor;
use std::path::Path;

/// What `massivetext generate` decodes: the checkpoint's generation settings with each `Some`
/// on top, so an unset flag keeps what the model was saved with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerateOptions {
    /// The causal language model: a folder or a Hub id.
    pub model: String,
    /// The text to continue.
    pub prompt: String,
    /// The tokenizer folder or Hub id; defaults to `model`.
    pub tokenizer: Option<String>,
    pub max_new_tokens: Option<usize>,
    /// Sample (on top of the checkpoint's `do_sample`, never turning it off).
    pub do_sample: bool,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub temperature: Option<f64>,
    pub num_beams: Option<usize>,
    pub num_return_sequences: Option<usize>,
    pub repetition_penalty: Option<f64>,
    pub no_repeat_ngram_size: Option<usize>,
    pub seed: Option<u64>,
}

impl GenerateOptions {
    /// The checkpoint's generation settings with the options on top; a bad setting in the
    /// checkpoint's file is an error naming the file (in the model's folder) and the key.
    pub fn config(&self, model: &AutoModelForCausalLM) -> Result<GenerationConfig> {
        let mut c = model.generation_config().map_err(|e| match e {
            Error::Config { path, message } if Path::new(&self.model).is_dir() => Error::Config {
                path: Path::new(&self.model).join(path),
                message,
            },
            e => e,
        })?;
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
        Ok(c)
    }
}

/// `massivetext generate`: the prompt and each continuation, separated by `---` lines.
pub fn generate_text(o: &GenerateOptions) -> Result<String> {
    let model = AutoModelForCausalLM::from_pretrained(&o.model)?;
    let tok = Tokenizer::from_pretrained(o.tokenizer.as_deref().unwrap_or(&o.model))?;
    let config = o.config(&model)?;
    for w in config.warnings() {
        eprintln!("warning: {w}");
    }
    let ids = tok.encode_plain(&o.prompt)?;
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
            Ok(format!("{}{}", o.prompt, tok.decode(&new, true)?))
        })
        .collect::<Result<Vec<String>>>()?;
    Ok(texts.join("\n---\n"))
}
