//! `massivetext generate`: a causal LM continues a prompt (greedy, sampling or beam search, as
//! [`crate::generate`] decodes); returns the continuations to print.
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::models::AutoModelForCausalLM;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use candle_core::Tensor;

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
    /// The checkpoint's generation settings with the options on top.
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
}

/// `massivetext generate`: the prompt and each continuation, separated by `---` lines.
pub fn generate_text(o: &GenerateOptions) -> Result<String> {
    // A file is no model and no Hub id: say so instead of trying a download of its name.
    let given = std::path::Path::new(&o.model);
    if given.is_file() {
        return Err(Error::InvalidArgument(format!(
            "--model {}: is a file; give a model folder (config.json and model.safetensors, as `massivetext train` writes) or a Hugging Face Hub id",
            given.display()
        )));
    }
    let model = AutoModelForCausalLM::from_pretrained(&o.model)?;
    let tok = Tokenizer::from_pretrained(o.tokenizer.as_deref().unwrap_or(&o.model))?;
    let config = o.config(&model);
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
