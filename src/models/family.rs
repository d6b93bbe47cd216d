//! The contract of a model family. A family (one file: `gpt2.rs`, `bert.rs`, `roberta.rs`,
//! `marian.rs`) owns everything particular to its architecture — its config (serde, the keys of
//! `config.json`), its Hugging Face weight names, its heads, its architecture names — and says it
//! through [`Family`]; it builds a [`Network`] from the layers of [`super::layers`]. What every
//! family shares — reading `config.json`, loading and saving weights, `with_weight_dtype`, the
//! summary, attentions and the `Auto*` faces — is written once, in `model.rs` and `auto.rs`, over
//! these two traits. `registry.rs` maps `model_type` to the family.
use std::sync::Arc;

use candle_core::{DType, Tensor};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::args::ForwardArgs;
use super::heads::Task;
use super::labels::LabelConfig;
use super::layers::{Ctx, EncoderDecoderCache, KvCache};
use super::params::Params;
use crate::{Error, Result};

/// One model family: its `model_type`, config, tasks, architecture names and builder.
pub(crate) trait Family {
    /// The hyper-parameters, with Hugging Face's key names (serde reads and writes
    /// `config.json` through it).
    type Config: Clone + Serialize + DeserializeOwned;
    /// Hugging Face's `model_type`.
    const MODEL_TYPE: &'static str;
    /// The keys `config.json` must hold; the others take [`defaults`](Self::defaults).
    const REQUIRED_KEYS: &'static [&'static str];
    /// Keys whose `null` in `config.json` means "none" (an `Option` that defaults to `Some`);
    /// any other `null` means "the default".
    const NULL_MEANS_NONE: &'static [&'static str] = &[];
    /// The tasks (heads) the family has.
    const TASKS: &'static [Task];

    /// transformers' defaults for the keys `config.json` may leave out.
    fn defaults() -> Self::Config;
    /// Checks the numbers fit together; the message names the field and what to give instead.
    fn validate(c: &Self::Config) -> std::result::Result<(), String>;
    /// The architecture name of the model for `task` (`GPT2LMHeadModel`, ...).
    fn architecture(c: &Self::Config, task: Task) -> &'static str;
    /// The family's rows of a summary: layers, width, heads, vocabulary, positions, ...
    fn summary_rows(c: &Self::Config) -> Vec<(String, String)>;
    /// `(layers, hidden size, attention heads)` (an encoder–decoder: the encoder's).
    fn dims(c: &Self::Config) -> (usize, usize, usize);
    fn vocab_size(c: &Self::Config) -> usize;
    fn set_vocab_size(c: &mut Self::Config, vocab_size: usize);
    /// The number of positions the model can read.
    fn max_positions(c: &Self::Config) -> usize;
    fn initializer_range(c: &Self::Config) -> f64;
    /// The size a training run of the model has to hold, counted from the config before
    /// anything is allocated (the jobs' memory pre-check: an allocation the system refuses
    /// aborts the process, so the check must come first).
    fn size(c: &Self::Config) -> ModelSize;
    /// The config as `config.json` holds it (without `model_type` and `architectures`).
    fn to_json_value(c: &Self::Config) -> Value {
        serde_json::to_value(c).unwrap_or(Value::Null)
    }
    /// The generation settings transformers derives from the config, when they are more than
    /// the config's own keys (Marian's beam search and `bad_words_ids`).
    fn generation_defaults(_c: &Self::Config) -> Option<Value> {
        None
    }
    /// The network for `task`, its weights loaded or drawn by `p` under the family's names.
    fn build(
        c: &Self::Config,
        p: &mut Params,
        task: Task,
        labels: &LabelConfig,
    ) -> Result<Arc<dyn Network>>;
}

/// What a model of a config weighs, from the config alone ([`Family::size`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelSize {
    /// The parameters of the body and its language-model head (a task head's few are left
    /// out).
    pub parameters: f64,
    /// Transformer layers, every stack counted (an encoder–decoder: both).
    pub layers: usize,
    pub hidden_size: usize,
    pub heads: usize,
    /// The widest activation of a layer's MLP (its intermediate size).
    pub intermediate_size: usize,
}

/// The parameters of a stack of `layers` transformer layers of width `e`: attention (query and
/// output `e × e`, key and value `e × kv`, biased or not), an MLP of `matrices` matrices
/// `e × ffn`, and `norms` normalisations of width `e` (two numbers each for a LayerNorm).
pub(crate) fn stack_parameters(
    layers: usize,
    (e, kv, ffn): (usize, usize, usize),
    matrices: usize,
    norm_numbers: usize,
) -> f64 {
    let (e, kv, ffn) = (e as f64, kv as f64, ffn as f64);
    let attention = 2.0 * e * e + 2.0 * e * kv + 2.0 * e + 2.0 * kv;
    let mlp = matrices as f64 * (e * ffn + ffn);
    layers as f64 * (attention + mlp + norm_numbers as f64 * e)
}

/// Reads a family's config from the `config.json` object `map`: the required keys checked (an
/// error names a missing one), `null`s read as the defaults (or as none, for
/// [`Family::NULL_MEANS_NONE`]), then serde over the defaults. Errors are messages for the
/// caller to place (the file's path, or `InvalidConfig`).
pub(crate) fn read_config<F: Family>(
    map: &Map<String, Value>,
) -> std::result::Result<F::Config, String> {
    for key in F::REQUIRED_KEYS {
        if map.get(*key).is_none_or(Value::is_null) {
            return Err(format!(
                "missing key `{key}` (required for model_type `{}`); add it to config.json",
                F::MODEL_TYPE
            ));
        }
    }
    let Ok(Value::Object(mut merged)) = serde_json::to_value(F::defaults()) else {
        return Err("the family's defaults are not a JSON object".into());
    };
    let from_file = |(k, v): (&String, &Value)| {
        (!v.is_null() || F::NULL_MEANS_NONE.contains(&k.as_str())).then(|| (k.clone(), v.clone()))
    };
    let base = merged.clone();
    merged.extend(map.iter().filter_map(from_file));
    serde_json::from_value(Value::Object(merged)).map_err(|e| {
        // serde does not say which key: find the one whose value alone fails
        let culprit = map.iter().filter_map(from_file).find(|(k, v)| {
            let mut one = base.clone();
            one.insert(k.clone(), v.clone());
            serde_json::from_value::<F::Config>(Value::Object(one)).is_err()
        });
        match culprit {
            Some((k, v)) => format!("key `{k}` has an unusable value {v}: {e}"),
            None => format!("invalid {} setting: {e}", F::MODEL_TYPE),
        }
    })
}

/// The checks every family's sizes share, each failing with the field's name: sizes that must
/// be at least 1 (zero layers are allowed, as in transformers: embeddings and the head).
pub(crate) fn positive(fields: &[(&str, usize)]) -> std::result::Result<(), String> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(format!("`{name}` is 0; it must be at least 1")),
        None => Ok(()),
    }
}

/// `width` split over `heads` heads: both named when it does not divide.
pub(crate) fn divisible(
    (width_name, width): (&str, usize),
    (heads_name, heads): (&str, usize),
) -> std::result::Result<(), String> {
    if heads == 0 {
        return Err(format!("`{heads_name}` is 0; it must be at least 1"));
    }
    if !width.is_multiple_of(heads) {
        return Err(format!(
            "`{width_name}` {width} is not divisible by `{heads_name}` {heads}: each head gets `{width_name} / {heads_name}` dimensions"
        ));
    }
    Ok(())
}

/// Dropout probabilities: finite, in `[0, 1)`; the message names the field.
pub(crate) fn probability(fields: &[(&str, f64)]) -> std::result::Result<(), String> {
    match fields
        .iter()
        .find(|(_, p)| !p.is_finite() || *p < 0.0 || *p >= 1.0)
    {
        Some((name, p)) => Err(format!(
            "`{name}` is {p}; a dropout probability must be in [0, 1)"
        )),
        None => Ok(()),
    }
}

/// An activation name the kernels know, or an error naming `key`.
pub(crate) fn known_activation(key: &str, name: &str) -> std::result::Result<(), String> {
    match super::activation::Activation::from_hf(name) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{key}` `{name}` is not supported; supported: {}",
            super::activation::Activation::SUPPORTED
        )),
    }
}

/// A special-token id inside the vocabulary, or an error naming `key`.
pub(crate) fn in_vocab(
    key: &str,
    id: Option<u32>,
    vocab: usize,
) -> std::result::Result<(), String> {
    match id {
        Some(id) if id as usize >= vocab => Err(format!(
            "`{key}` {id} is outside the vocabulary of {vocab} tokens (`vocab_size`)"
        )),
        _ => Ok(()),
    }
}

/// What a network's stack produced for one call.
pub(crate) struct Body {
    /// `[b, t, h]`: the last layer's output (an encoder–decoder: the decoder's).
    pub last_hidden_state: Tensor,
    /// The embeddings' output, then each layer's (`layers + 1`), when asked for.
    pub hidden_states: Option<Vec<Tensor>>,
    /// Per layer `[b, heads, t, t_k]` (an encoder–decoder: the decoder's self-attention), when
    /// asked for.
    pub attentions: Option<Vec<Tensor>>,
    /// Encoder–decoders: the encoder's side of the call.
    pub encoder: Option<EncoderSide>,
    /// Encoder–decoders: per decoder layer, the cross-attention `[b, heads, t, s]`, when asked
    /// for.
    pub cross_attentions: Option<Vec<Tensor>>,
}

impl Body {
    /// A decoder-only or encoder-only stack's output.
    pub fn new(
        last_hidden_state: Tensor,
        hidden_states: Option<Vec<Tensor>>,
        attentions: Option<Vec<Tensor>>,
    ) -> Self {
        Self {
            last_hidden_state,
            hidden_states,
            attentions,
            encoder: None,
            cross_attentions: None,
        }
    }
}

/// The encoder's output of an encoder–decoder call.
pub(crate) struct EncoderSide {
    pub last_hidden_state: Tensor,
    pub hidden_states: Option<Vec<Tensor>>,
    pub attentions: Option<Vec<Tensor>>,
}

fn no_head(what: &str, entry: &str) -> Error {
    Error::InvalidArgument(format!(
        "this model has no {what} head; load it with {entry}"
    ))
}

/// A built model of one family and task: the stack, its head, and what generation needs. The
/// generic model (`model.rs`) runs it; every method a family does not have says so.
pub(crate) trait Network: Send + Sync {
    /// The stack over `args` (and, for a decoder, the tokens already in `cache`).
    fn body(&self, args: &ForwardArgs, cache: Option<&mut KvCache>, ctx: &Ctx) -> Result<Body>;
    /// Logits `[.., vocab]` of hidden states `[.., hidden]` through the language-model head.
    fn lm_logits(&self, _h: &Tensor) -> Result<Tensor> {
        Err(no_head(
            "language-model",
            "AutoModelForCausalLM or AutoModelForMaskedLM",
        ))
    }
    /// Sequence-classification logits `[b, num_labels]` from the last hidden states (and the
    /// input ids, for a decoder's last real token).
    fn classify(&self, _h: &Tensor, _input_ids: &Tensor, _ctx: &Ctx) -> Result<Tensor> {
        Err(no_head(
            "sequence-classification",
            "AutoModelForSequenceClassification",
        ))
    }
    /// Start and end logits `[b, t]` each.
    fn answer_span(&self, _h: &Tensor) -> Result<(Tensor, Tensor)> {
        Err(no_head(
            "question-answering",
            "AutoModelForQuestionAnswering",
        ))
    }
    /// A bare model's pooled output `[b, h]` (BERT's pooler), when it has one.
    fn pooled(&self, _h: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// Tensors saved with the weights that are not parameters (Marian's `final_logits_bias`).
    fn buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// The tensors with a row per token (the token embeddings, an LM bias), which
    /// `resize_token_embeddings` resizes; empty when the family cannot resize.
    fn vocab_tensors(&self) -> Vec<Tensor> {
        Vec::new()
    }
    /// The dtype the token embeddings are stored in (what a summary shows: bf16 after
    /// `with_weight_dtype(BF16)`).
    fn dtype(&self) -> DType;
    /// Whether `body` takes a [`KvCache`].
    fn has_kv_cache(&self) -> bool {
        false
    }
    /// Encoder–decoders: the encoder run once over the sources, each repeated
    /// `rows_per_source` times, with room for `capacity` decoder tokens.
    fn start_decoding(
        &self,
        _args: &ForwardArgs,
        _rows_per_source: usize,
        _capacity: usize,
        _ctx: &Ctx,
    ) -> Result<EncoderDecoderCache> {
        Err(Error::InvalidArgument(
            "this model has no encoder; encode is for encoder-decoder models (AutoModelForSeq2SeqLM)".into(),
        ))
    }
    /// Encoder–decoders: logits `[rows, t, vocab]` of new decoder tokens after those in `cache`.
    fn decode_cached(
        &self,
        _ids: &Tensor,
        _cache: &mut EncoderDecoderCache,
        _ctx: &Ctx,
    ) -> Result<Tensor> {
        Err(Error::InvalidArgument(
            "this model has no decoder over an encoder; decode_cached is for encoder-decoder models (AutoModelForSeq2SeqLM)".into(),
        ))
    }
}
