//! `massivetext generate`: a causal LM continues a prompt (greedy, sampling or beam search, as
//! [`crate::generate`] decodes); returns the continuations to print.
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::models::AutoModelForCausalLM;
use crate::tokenizer::{DecodeOptions, Tokenizer};
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
    /// Cut a prompt longer than the model's context from the left (on top of the checkpoint's
    /// setting, never turning it off).
    pub truncate_prompt: bool,
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
        c.truncate_prompt |= self.truncate_prompt;
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
    // A file is no model and no Hub id: say so instead of trying a download of its name.
    let given = std::path::Path::new(&o.model);
    if given.is_file() {
        return Err(Error::InvalidArgument(format!(
            "--model {}: is a file; give a model folder (config.json and model.safetensors, as `massivetext train` writes) or a Hugging Face Hub id",
            given.display()
        )));
    }
    check_causal(given)?;
    let model = AutoModelForCausalLM::from_pretrained(&o.model)?;
    let tok = Tokenizer::from_pretrained(o.tokenizer.as_deref().unwrap_or(&o.model))?;
    let config = o.config(&model)?;
    for w in config.warnings() {
        eprintln!("warning: {w}");
    }
    let ids = tok
        .encode_plain(&o.prompt)
        .map_err(|e| unknown_characters(&tok, &o.prompt, e))?;
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
            Ok(format!(
                "{}{}",
                o.prompt,
                tok.decode(&new, DecodeOptions::SKIP_SPECIAL_TOKENS)?
            ))
        })
        .collect::<Result<Vec<String>>>()?;
    Ok(texts.join("\n---\n"))
}

/// A model folder whose `config.json` names an encoder–decoder or an encoder is refused by
/// its kind before loading (loading it as a causal LM fails on a missing weight's name).
fn check_causal(dir: &std::path::Path) -> Result<()> {
    let Ok(config) = crate::io::read_json::<serde_json::Value>(&dir.join("config.json")) else {
        return Ok(()); // a Hub id, or a folder the loader reports on
    };
    let kind = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    let seq2seq = config
        .get("is_encoder_decoder")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let what = match kind {
        _ if seq2seq || kind == "marian" => "an encoder-decoder (translation) model",
        "bert" | "roberta" => "an encoder (masked language) model",
        _ => return Ok(()),
    };
    Err(Error::InvalidArgument(format!(
        "--model {}: is {what} (model_type `{kind}`); `generate` continues a prompt with a causal language model such as GPT-2 (what `massivetext train` writes); an encoder-decoder translates through AutoModelForSeq2SeqLM::generate in the library",
        dir.display()
    )))
}

/// The tokenizers crate's "Missing [UNK] token" for a prompt character that a vocabulary
/// without an unknown token (the `train` job's characters) lacks, as the characters.
fn unknown_characters(tok: &Tokenizer, prompt: &str, e: Error) -> Error {
    let mut missing: Vec<char> = prompt
        .chars()
        .filter(|c| tok.token_to_id(&c.to_string()).is_none())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() || !e.to_string().contains("Missing [UNK]") {
        return e;
    }
    Error::InvalidArgument(format!(
        "--prompt: the tokenizer has no token for {} and no unknown token to stand in; write the prompt with the characters the model was trained on",
        missing
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
