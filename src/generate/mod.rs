//! Text generation as transformers' `generate`: [`GenerationConfig`], greedy decoding,
//! multinomial sampling with temperature / top-k / top-p, repetition penalty, no-repeat n-grams,
//! beam search with length penalty and early stopping, several return sequences, EOS and padding
//! — over any [`PreTrainedModel`] with a causal-LM head, through [`GenerationMixin`]. Text in,
//! text out with [`GenerationMixin::generate_text`], streamed piece by piece with
//! [`GenerationMixin::generate_text_stream`]; [`pipeline`]s on top.
//!
//! ```
//! use massivetext::prelude::*;
//! let config = Gpt2Config { n_layer: 1, n_embd: 16, n_head: 2, n_positions: 32, ..Gpt2Config::small(50) };
//! let model = AutoModelForCausalLM::from_config(config, &Device::Cpu)?;
//! let prompt = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
//! let greedy = GenerationConfig { max_new_tokens: 5, ..Default::default() };
//! let out = model.generate(&prompt, &greedy)?;
//! assert_eq!(out.dims(), &[1, 8]); // the prompt and 5 new tokens
//! # Ok::<(), massivetext::Error>(())
//! ```
mod config;
mod fim;
mod logits;
mod pipeline;
mod pipeline_source;
mod pipeline_tasks;
mod search;
mod stop;
mod text;

pub use config::{EarlyStopping, GenerationConfig};
pub use fim::{FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, FimTokens, fim_prompt};
pub use pipeline::{
    FeatureExtractionPipeline, FillMaskPipeline, FillMaskPrediction, GeneratedText, PIPELINE_TASKS,
    Pipeline, PipelineOutput, TextGenerationPipeline,
};
pub use pipeline_source::{PipelineOptions, PipelineSource, pipeline};
pub use pipeline_tasks::{
    Answer, ClassificationFunction, ClassificationLabel, QuestionAnsweringPipeline,
    TextClassificationPipeline,
};

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use serde_json::Value;

use crate::models::layers::read_ids;
use crate::models::{ForwardArgs, PreTrainedModel, Task};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use search::Prompts;

/// `generate` for every model with a causal-LM head (transformers' `GenerationMixin`).
pub trait GenerationMixin: PreTrainedModel {
    /// The checkpoint's own generation settings (`generation_config.json`, else `config.json`,
    /// else the defaults), as an owned value to start from:
    /// `GenerationConfig { max_new_tokens: 50, ..model.generation_config()? }`.
    ///
    /// A setting of the wrong type or value (`"temperature": "hot"`, `"max_new_tokens": -5`) is
    /// an error naming the file and the key: dropping the file's settings for the defaults would
    /// decode differently from what the checkpoint asks, without a word.
    ///
    /// For an encoder–decoder, `max_length` (which counts the decoder start token) becomes
    /// `max_new_tokens = max_length - 1` when the settings do not name `max_new_tokens`, and a
    /// missing `decoder_start_token_id` comes from `config.json`.
    fn generation_config(&self) -> Result<GenerationConfig> {
        let v = self.generation_config_json();
        // a model's config.json names its model_type; generation_config.json does not
        let mut c = if v.get("model_type").is_some() {
            GenerationConfig::from_config_json(&v, Path::new("config.json"))?
        } else {
            GenerationConfig::from_value(&v, Path::new("generation_config.json"))?
        };
        if self.is_encoder_decoder() {
            let max_length = v.get("max_length").and_then(Value::as_u64);
            if let (Some(n), None) = (max_length, v.get("max_new_tokens")) {
                c.max_new_tokens = (n as usize).saturating_sub(1).max(1);
            }
            if c.decoder_start_token_id.is_none() {
                c.decoder_start_token_id = self
                    .config_json()
                    .get("decoder_start_token_id")
                    .and_then(Value::as_u64)
                    .map(|x| x as u32);
            }
        }
        Ok(c)
    }

    /// The full sequences (prompt + new tokens) as a u32 tensor `[batch * n, len]` for prompts
    /// `input_ids [batch, t]`; finished rows are padded with `pad_token_id`. For an
    /// encoder–decoder, `input_ids` are the sources and the sequences are the decoder's,
    /// starting with `decoder_start_token_id`.
    fn generate(&self, input_ids: &Tensor, config: &GenerationConfig) -> Result<Tensor> {
        self.generate_with(&ForwardArgs::new(input_ids), config)
    }

    /// As [`generate`](Self::generate), with an attention mask for left-padded prompts: the
    /// positions follow the mask, so a padded prompt gives the tokens it gives alone. For an
    /// encoder–decoder, the sources are encoded once (with their `attention_mask`; without one,
    /// padding tokens are masked, as transformers infers) and `args.decoder_input_ids`, when
    /// given, start every decoder sequence instead of the decoder start token alone.
    fn generate_with(&self, args: &ForwardArgs, config: &GenerationConfig) -> Result<Tensor> {
        run(self, args, config, true, None, |_| Ok(()))
    }

    /// As [`generate_with`](Self::generate_with), with the model's tokenizer, which
    /// `config.stop_strings` needs to read the tokens as text (transformers'
    /// `generate(..., stop_strings=..., tokenizer=tokenizer)`).
    ///
    /// ```
    /// use massivetext::prelude::*;
    /// # let texts = ["def f(x):\n    return x\n", "def g(y):\n    return y + 1\n"];
    /// # let tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(300))?;
    /// let config = Gpt2Config { n_layer: 1, n_embd: 16, n_head: 2, n_positions: 64, ..Gpt2Config::small(tok.vocab_size()) };
    /// let model = AutoModelForCausalLM::from_config(config, &Device::Cpu)?;
    /// let ids = tok.encode_plain("def f(")?;
    /// let prompt = Tensor::from_vec(ids.clone(), (1, ids.len()), &Device::Cpu)?;
    /// let c = GenerationConfig { max_new_tokens: 30, stop_strings: vec!["\n".into()], ..Default::default() };
    /// let out = model.generate_with_tokenizer(&ForwardArgs::new(&prompt), &c, &tok)?;
    /// let text = tok.decode(&out.get(0)?.to_vec1::<u32>()?, DecodeOptions::SKIP_SPECIAL_TOKENS)?;
    /// // the row ended at its first new line, or ran to max_new_tokens without one
    /// assert!(text.matches('\n').count() <= 1);
    /// assert!(model.generate(&prompt, &c).is_err()); // no tokenizer to read the stop strings
    /// # Ok::<(), massivetext::Error>(())
    /// ```
    fn generate_with_tokenizer(
        &self,
        args: &ForwardArgs,
        config: &GenerationConfig,
        tokenizer: &Tokenizer,
    ) -> Result<Tensor> {
        run(self, args, config, true, Some(tokenizer), |_| Ok(()))
    }

    /// As [`generate_with`](Self::generate_with), recomputing the whole prefix at every step
    /// instead of using a KV cache (the reference the cache is tested against).
    fn generate_without_cache(
        &self,
        args: &ForwardArgs,
        config: &GenerationConfig,
    ) -> Result<Tensor> {
        run(self, args, config, false, None, |_| Ok(()))
    }

    /// Text in, text out: the prompt's continuation (new text only, special tokens skipped).
    fn generate_text(
        &self,
        tokenizer: &Tokenizer,
        prompt: &str,
        config: &GenerationConfig,
    ) -> Result<String> {
        text::generate_text(self, tokenizer, prompt, config, |_| {})
    }

    /// As [`generate_text`](Self::generate_text), handing each new piece of text to `on_text`
    /// as soon as it decodes to whole characters (in a notebook, print it: stdout lines stream
    /// while the cell runs).
    fn generate_text_stream(
        &self,
        tokenizer: &Tokenizer,
        prompt: &str,
        config: &GenerationConfig,
        on_text: impl FnMut(&str),
    ) -> Result<String> {
        text::generate_text(self, tokenizer, prompt, config, on_text)
    }

    /// Fill in the middle: the code this model writes between `prefix` and `suffix`, prompted
    /// in StarCoder's PSM order ([`fim_prompt`]); an error naming the missing tokens when the
    /// tokenizer has no FIM tokens. Set `stop_strings` (`"\n"` for one line) or let the model
    /// end with its EOS token.
    fn generate_fim(
        &self,
        tokenizer: &Tokenizer,
        prefix: &str,
        suffix: &str,
        config: &GenerationConfig,
    ) -> Result<String> {
        let ids = fim_prompt(tokenizer, prefix, suffix)?;
        text::generate_from_ids(self, tokenizer, ids, config, |_| {})
    }
}

impl<M: PreTrainedModel> GenerationMixin for M {}

/// The prompts of `args` on the host: ids, and the attention mask (given, or inferred from
/// `pad_token_id` as transformers does when the pad token is not an EOS token).
fn prompts<M: PreTrainedModel>(
    model: &M,
    args: &ForwardArgs,
    c: &GenerationConfig,
) -> Result<Prompts> {
    let ids = &args.input_ids;
    let (b, t) = ids.dims2().map_err(|_| {
        Error::InvalidArgument(format!(
            "input_ids must be [batch, seq], got shape {:?}",
            ids.dims()
        ))
    })?;
    if b == 0 {
        return Err(Error::InvalidArgument("input_ids has no rows".into()));
    }
    // the one check of input_ids that forward_with makes (integer dtype, no negative ids)
    let mut rows: Vec<Vec<u32>> = if t == 0 {
        vec![Vec::new(); b]
    } else {
        read_ids(ids, &Device::Cpu)?.0.to_vec2()?
    };
    let mut mask: Vec<Vec<u32>> = match &args.attention_mask {
        Some(m) => {
            if m.dims() != [b, t] {
                return Err(Error::InvalidArgument(format!(
                    "attention_mask has shape {:?}, expected [{b}, {t}] like input_ids",
                    m.dims()
                )));
            }
            m.to_dtype(DType::F32)?
                .to_vec2::<f32>()?
                .into_iter()
                .map(|r| r.into_iter().map(|x| (x != 0.0) as u32).collect())
                .collect()
        }
        None => {
            let infer = c
                .pad_token_id
                .filter(|p| !c.eos_token_id.contains(p) && rows.iter().flatten().any(|x| x == p));
            rows.iter()
                .map(|r| r.iter().map(|x| u32::from(Some(*x) != infer)).collect())
                .collect()
        }
    };
    if t == 0 {
        let bos = c.bos_token_id.ok_or_else(|| {
            Error::InvalidArgument(
                "the prompt is empty and the generation config has no bos_token_id to start from; give at least one token or set bos_token_id".into(),
            )
        })?;
        rows = vec![vec![bos]; b];
        mask = vec![vec![1]; b];
    }
    let len = rows[0].len();
    if let Some(max) = model.max_positions() {
        if c.max_new_tokens >= max {
            return Err(Error::InvalidArgument(format!(
                "max_new_tokens ({}) does not fit the model's context of {max} positions",
                c.max_new_tokens
            )));
        }
        if len + c.max_new_tokens > max {
            if !c.truncate_prompt {
                return Err(Error::InvalidArgument(format!(
                    "the prompt ({len} tokens) plus max_new_tokens ({}) exceeds the model's context of {max} positions; shorten the prompt, lower max_new_tokens, or set truncate_prompt to cut the prompt from the left",
                    c.max_new_tokens
                )));
            }
            let cut = len + c.max_new_tokens - max;
            rows.iter_mut().for_each(|r| drop(r.drain(..cut)));
            mask.iter_mut().for_each(|r| drop(r.drain(..cut)));
        }
    }
    Ok(Prompts { ids: rows, mask })
}

fn run<M: PreTrainedModel>(
    model: &M,
    args: &ForwardArgs,
    c: &GenerationConfig,
    use_cache: bool,
    tokenizer: Option<&Tokenizer>,
    on_step: impl FnMut(&[Vec<u32>]) -> Result<()>,
) -> Result<Tensor> {
    // inference only: no graph across layers (models::layers::grad_mode)
    let _graph = crate::models::layers::NoGrad::enter();
    c.validate()?;
    let mut stops = match (c.stop_strings.is_empty(), tokenizer) {
        (true, _) => None,
        (false, Some(t)) => Some(stop::StopStrings::new(t, &c.stop_strings)?),
        (false, None) => {
            return Err(Error::InvalidArgument(format!(
                "stop_strings ({:?}) are matched on the text of the tokens, which needs the model's tokenizer: call generate_with_tokenizer(args, config, &tokenizer) or generate_text",
                c.stop_strings
            )));
        }
    };
    let mut model = model.share();
    model.set_training(false);
    let n = search::rows_per_input(c);
    if model.is_encoder_decoder() {
        let (p, mut dec) = seq2seq_start(&model, args, c, n)?;
        return if c.num_beams > 1 {
            search::beam_search(&mut dec, p, c, stops.as_mut())
        } else {
            search::sample(&mut dec, p, c, stops.as_mut(), on_step)
        };
    }
    if model.task() != Task::CausalLm {
        return Err(Error::InvalidArgument(format!(
            "generate needs a causal language model (AutoModelForCausalLM) or an encoder-decoder (AutoModelForSeq2SeqLM); this is a {:?} model — a masked LM fills masks instead: use pipeline(\"fill-mask\", ..)",
            model.task()
        )));
    }
    let p = prompts(&model, args, c)?;
    let capacity = p.ids[0].len() + c.max_new_tokens;
    let mut dec = search::Decoder::new(&model, use_cache && model.has_kv_cache(), capacity);
    let p = p.expand(n);
    if c.num_beams > 1 {
        search::beam_search(&mut dec, p, c, stops.as_mut())
    } else {
        search::sample(&mut dec, p, c, stops.as_mut(), on_step)
    }
}

/// An encoder–decoder's start: the decoder prompts (the decoder start token, or
/// `args.decoder_input_ids`), each repeated `n` times, and the sources encoded once.
fn seq2seq_start<'a, M: PreTrainedModel>(
    model: &'a M,
    args: &ForwardArgs,
    c: &GenerationConfig,
    n: usize,
) -> Result<(Prompts, search::Seq2SeqDecoder<'a, M>)> {
    let (b, _) = args.input_ids.dims2().map_err(|_| {
        Error::InvalidArgument(format!(
            "input_ids (the sources) must be [batch, seq], got shape {:?}",
            args.input_ids.dims()
        ))
    })?;
    let rows: Vec<Vec<u32>> = match &args.decoder_input_ids {
        Some(d) => {
            if d.dims2()?.0 != b {
                return Err(Error::InvalidArgument(format!(
                    "decoder_input_ids has shape {:?}, expected {b} rows like input_ids",
                    d.dims()
                )));
            }
            read_ids(d, &Device::Cpu)?.0.to_vec2()?
        }
        None => {
            let start = c.decoder_start_token_id.or(c.bos_token_id).ok_or_else(|| {
                Error::InvalidArgument(
                    "the generation config has no decoder_start_token_id (nor bos_token_id) to start the decoder from; set it (Marian: the padding id)".into(),
                )
            })?;
            vec![vec![start]; b]
        }
    };
    let len = rows[0].len();
    if let Some(max) = model.max_positions()
        && len + c.max_new_tokens > max
    {
        return Err(Error::InvalidArgument(format!(
            "the decoder prompt ({len} tokens) plus max_new_tokens ({}) exceeds the model's {max} positions; lower max_new_tokens",
            c.max_new_tokens
        )));
    }
    let mut enc_args = args.clone();
    enc_args.decoder_input_ids = None;
    if enc_args.attention_mask.is_none()
        && let Some(pad) = c.pad_token_id.filter(|p| !c.eos_token_id.contains(p))
    {
        // transformers infers the sources' mask from the padding token
        let keep = args.input_ids.to_dtype(DType::U32)?.ne(pad)?;
        if keep.min_all()?.to_scalar::<u8>()? == 0 {
            enc_args.attention_mask = Some(keep.to_dtype(DType::U32)?);
        }
    }
    let dec = search::Seq2SeqDecoder::new(model, &enc_args, n, len + c.max_new_tokens)?;
    let p = Prompts {
        mask: vec![vec![1; len]; b],
        ids: rows,
    }
    .expand(n);
    Ok((p, dec))
}
