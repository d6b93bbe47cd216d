//! Hugging Face `config.json` for the supported architectures: required keys are checked with an
//! error that names them, the rest take transformers' defaults, and unknown keys are kept so that
//! `save_pretrained` writes them back.
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Model types this crate can build.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["gpt2", "bert", "roberta"];

/// GPT-2 hyper-parameters, with Hugging Face's key names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    /// Length of the position table (the longest sequence).
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; `None` means `4 * n_embd`.
    pub n_inner: Option<usize>,
    pub activation_function: String,
    pub resid_pdrop: f64,
    pub embd_pdrop: f64,
    pub attn_pdrop: f64,
    pub layer_norm_epsilon: f64,
    pub initializer_range: f64,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    /// The padding id; GPT-2 has none, and `GPT2ForSequenceClassification` needs one to find
    /// the last real token of each row of a padded batch (set it to the eos id, as is usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

impl Gpt2Config {
    /// A small GPT-2 for training from scratch: 6 layers, 6 heads, 384 wide, 256 positions.
    pub fn small(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            n_positions: 256,
            n_embd: 384,
            n_layer: 6,
            n_head: 6,
            ..Self::gpt2()
        }
    }

    /// The hyper-parameters of the original 124M `gpt2` checkpoint.
    pub fn gpt2() -> Self {
        Self {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            n_inner: None,
            activation_function: "gelu_new".into(),
            resid_pdrop: 0.1,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            layer_norm_epsilon: 1e-5,
            initializer_range: 0.02,
            bos_token_id: Some(50256),
            eos_token_id: Some(50256),
            pad_token_id: None,
        }
    }

    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
}

/// BERT and RoBERTa hyper-parameters, with Hugging Face's key names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: u32,
}

/// RoBERTa hyper-parameters: BERT's keys, its own type, so that
/// `AutoModelForMaskedLM::from_config(&RobertaConfig::small(v), ..)` builds a RoBERTa (position
/// ids after `padding_idx`, `roberta.` / `lm_head.` names), not a BERT of the same sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobertaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    /// Position table length; RoBERTa reserves the first `pad_token_id + 1` rows.
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: u32,
}

impl RobertaConfig {
    /// A small RoBERTa for training from scratch: 4 layers, 4 heads, 256 wide, one token type,
    /// padding id 1 and 514 positions (512 usable: position ids start after `padding_idx`).
    pub fn small(vocab_size: usize) -> Self {
        BertConfig {
            type_vocab_size: 1,
            pad_token_id: 1,
            max_position_embeddings: 514,
            layer_norm_eps: 1e-5,
            ..BertConfig::small(vocab_size)
        }
        .into()
    }

    /// The hyper-parameters of `roberta-base` (125M).
    pub fn roberta_base() -> Self {
        Self {
            vocab_size: 50265,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            ..Self::small(50265)
        }
    }
}

impl From<BertConfig> for RobertaConfig {
    fn from(c: BertConfig) -> Self {
        Self {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            hidden_act: c.hidden_act,
            hidden_dropout_prob: c.hidden_dropout_prob,
            attention_probs_dropout_prob: c.attention_probs_dropout_prob,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            initializer_range: c.initializer_range,
            layer_norm_eps: c.layer_norm_eps,
            pad_token_id: c.pad_token_id,
        }
    }
}

impl From<RobertaConfig> for BertConfig {
    fn from(c: RobertaConfig) -> Self {
        Self {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            hidden_act: c.hidden_act,
            hidden_dropout_prob: c.hidden_dropout_prob,
            attention_probs_dropout_prob: c.attention_probs_dropout_prob,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            initializer_range: c.initializer_range,
            layer_norm_eps: c.layer_norm_eps,
            pad_token_id: c.pad_token_id,
        }
    }
}

impl BertConfig {
    /// A small BERT for training from scratch: 4 layers, 4 heads, 256 wide, 512 positions.
    pub fn small(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 256,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            intermediate_size: 1024,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        }
    }
}

/// The configuration of any supported model, tagged by Hugging Face's `model_type`.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    Gpt2(Gpt2Config),
    Bert(BertConfig),
    Roberta(BertConfig),
}

impl From<Gpt2Config> for ModelConfig {
    fn from(c: Gpt2Config) -> Self {
        Self::Gpt2(c)
    }
}

impl From<BertConfig> for ModelConfig {
    fn from(c: BertConfig) -> Self {
        Self::Bert(c)
    }
}

impl From<RobertaConfig> for ModelConfig {
    fn from(c: RobertaConfig) -> Self {
        Self::Roberta(c.into())
    }
}

impl From<&RobertaConfig> for ModelConfig {
    fn from(c: &RobertaConfig) -> Self {
        Self::Roberta(c.clone().into())
    }
}

impl From<&ModelConfig> for ModelConfig {
    fn from(c: &ModelConfig) -> Self {
        c.clone()
    }
}

impl From<&Gpt2Config> for ModelConfig {
    fn from(c: &Gpt2Config) -> Self {
        Self::Gpt2(c.clone())
    }
}

impl From<&BertConfig> for ModelConfig {
    fn from(c: &BertConfig) -> Self {
        Self::Bert(c.clone())
    }
}

struct Reader<'a> {
    map: &'a Map<String, Value>,
    path: &'a Path,
    model_type: &'a str,
}

impl Reader<'_> {
    fn err(&self, message: String) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            message,
        }
    }
    fn usize(&self, key: &str) -> Result<usize> {
        match self.map.get(key) {
            None | Some(Value::Null) => Err(self.err(format!(
                "missing key `{key}` (required for model_type `{}`); add it to config.json",
                self.model_type
            ))),
            Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
                self.err(format!(
                    "key `{key}` must be a non-negative integer, got {v}"
                ))
            }),
        }
    }
    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.usize(key).map(Some),
        }
    }
    fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.opt_usize(key)?.map(|x| x as u32))
    }
    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.err(format!("key `{key}` must be a number, got {v}"))),
        }
    }
    fn string_or(&self, key: &str, default: &str) -> Result<String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.err(format!("key `{key}` must be a string, got {v}"))),
        }
    }
}

impl ModelConfig {
    /// Hugging Face's `model_type`.
    pub fn model_type(&self) -> &'static str {
        match self {
            Self::Gpt2(_) => "gpt2",
            Self::Bert(_) => "bert",
            Self::Roberta(_) => "roberta",
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.vocab_size,
            Self::Bert(c) | Self::Roberta(c) => c.vocab_size,
        }
    }

    /// The number of positions the model's position table holds (GPT-2 `n_positions`, BERT
    /// `max_position_embeddings`, less RoBERTa's two reserved offsets).
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.n_positions,
            Self::Bert(c) => c.max_position_embeddings,
            Self::Roberta(c) => c.max_position_embeddings.saturating_sub(2),
        }
    }

    /// The config as a JSON value with its `model_type`, for summaries.
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = match self {
            Self::Gpt2(c) => serde_json::to_value(c),
            Self::Bert(c) | Self::Roberta(c) => serde_json::to_value(c),
        }
        .unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("model_type".into(), self.model_type().into());
        }
        v
    }

    /// `(layers, hidden size, attention heads)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        match self {
            Self::Gpt2(c) => (c.n_layer, c.n_embd, c.n_head),
            Self::Bert(c) | Self::Roberta(c) => {
                (c.num_hidden_layers, c.hidden_size, c.num_attention_heads)
            }
        }
    }

    /// Sets the vocabulary size (after `resize_token_embeddings`).
    pub fn set_vocab_size(&mut self, vocab_size: usize) {
        match self {
            Self::Gpt2(c) => c.vocab_size = vocab_size,
            Self::Bert(c) | Self::Roberta(c) => c.vocab_size = vocab_size,
        }
    }

    pub fn initializer_range(&self) -> f64 {
        match self {
            Self::Gpt2(c) => c.initializer_range,
            Self::Bert(c) | Self::Roberta(c) => c.initializer_range,
        }
    }

    /// Reads a `config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses `config.json` text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let map = parse_config_object(text, path)?;
        Self::from_map(&map, path)
    }

    pub(crate) fn from_map(map: &Map<String, Value>, path: &Path) -> Result<Self> {
        let supported = SUPPORTED_MODEL_TYPES.join(", ");
        let model_type = match map.get("model_type") {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "missing key `model_type` (one of: {supported}); add it to config.json"
                    ),
                });
            }
        };
        let r = Reader {
            map,
            path,
            model_type,
        };
        let config = match model_type {
            "gpt2" => Self::Gpt2(Gpt2Config {
                vocab_size: r.usize("vocab_size")?,
                n_positions: r.usize("n_positions")?,
                n_embd: r.usize("n_embd")?,
                n_layer: r.usize("n_layer")?,
                n_head: r.usize("n_head")?,
                n_inner: r.opt_usize("n_inner")?,
                activation_function: r.string_or("activation_function", "gelu_new")?,
                resid_pdrop: r.f64_or("resid_pdrop", 0.1)?,
                embd_pdrop: r.f64_or("embd_pdrop", 0.1)?,
                attn_pdrop: r.f64_or("attn_pdrop", 0.1)?,
                layer_norm_epsilon: r.f64_or("layer_norm_epsilon", 1e-5)?,
                initializer_range: r.f64_or("initializer_range", 0.02)?,
                bos_token_id: r.opt_u32("bos_token_id")?,
                eos_token_id: r.opt_u32("eos_token_id")?,
                pad_token_id: r.opt_u32("pad_token_id")?,
            }),
            "bert" | "roberta" => {
                let roberta = model_type == "roberta";
                let c = BertConfig {
                    vocab_size: r.usize("vocab_size")?,
                    hidden_size: r.usize("hidden_size")?,
                    num_hidden_layers: r.usize("num_hidden_layers")?,
                    num_attention_heads: r.usize("num_attention_heads")?,
                    intermediate_size: r.usize("intermediate_size")?,
                    hidden_act: r.string_or("hidden_act", "gelu")?,
                    hidden_dropout_prob: r.f64_or("hidden_dropout_prob", 0.1)?,
                    attention_probs_dropout_prob: r.f64_or("attention_probs_dropout_prob", 0.1)?,
                    max_position_embeddings: r.usize("max_position_embeddings")?,
                    type_vocab_size: r.opt_usize("type_vocab_size")?.unwrap_or(2),
                    initializer_range: r.f64_or("initializer_range", 0.02)?,
                    layer_norm_eps: r.f64_or("layer_norm_eps", 1e-12)?,
                    pad_token_id: r
                        .opt_u32("pad_token_id")?
                        .unwrap_or(if roberta { 1 } else { 0 }),
                };
                if roberta {
                    Self::Roberta(c)
                } else {
                    Self::Bert(c)
                }
            }
            "marian" => {
                return Err(Error::WrongTask {
                    model_type: "marian".into(),
                    task: "this kind of model (an encoder-decoder needs AutoModelForSeq2SeqLM)"
                        .into(),
                    supported,
                });
            }
            other => {
                return Err(Error::UnsupportedModelType {
                    path: path.to_path_buf(),
                    model_type: other.to_string(),
                    supported,
                });
            }
        };
        config.validate(path)?;
        Ok(config)
    }

    /// Checks the numbers fit together (heads divide the width, a known activation...).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let (hidden, heads, act) = match self {
            Self::Gpt2(c) => (c.n_embd, c.n_head, c.activation_function.as_str()),
            Self::Bert(c) | Self::Roberta(c) => {
                (c.hidden_size, c.num_attention_heads, c.hidden_act.as_str())
            }
        };
        if heads == 0 || hidden % heads != 0 {
            return Err(err(format!(
                "the hidden size {hidden} is not divisible by the number of heads {heads}"
            )));
        }
        if super::activation::Activation::from_hf(act).is_none() {
            return Err(err(format!(
                "unsupported activation `{act}`; supported: {}",
                super::activation::Activation::SUPPORTED
            )));
        }
        if let Self::Roberta(c) = self
            && c.max_position_embeddings <= c.pad_token_id as usize + 1
        {
            return Err(err(format!(
                "max_position_embeddings {} leaves no positions after padding_idx {}",
                c.max_position_embeddings, c.pad_token_id
            )));
        }
        if self.vocab_size() == 0 {
            return Err(err("vocab_size is 0".into()));
        }
        Ok(())
    }

    /// The JSON object written to `config.json`: `extra` (keys read from the original file)
    /// overwritten with this config's values, `model_type` and `architectures`.
    pub(crate) fn to_json(&self, architecture: &str, extra: &Map<String, Value>) -> Result<String> {
        let mut map = extra.clone();
        let ours = match self {
            Self::Gpt2(c) => serde_json::to_value(c),
            Self::Bert(c) | Self::Roberta(c) => serde_json::to_value(c),
        }
        .map_err(|e| Error::InvalidArgument(format!("cannot serialise the config: {e}")))?;
        if let Value::Object(o) = ours {
            map.extend(o);
        }
        map.insert("model_type".into(), Value::from(self.model_type()));
        map.insert("architectures".into(), Value::from(vec![architecture]));
        if !map.contains_key("tie_word_embeddings") {
            map.insert("tie_word_embeddings".into(), Value::from(true));
        }
        serde_json::to_string_pretty(&Value::Object(map))
            .map_err(|e| Error::InvalidArgument(format!("cannot serialise the config: {e}")))
    }
}

/// `config.json` text as its JSON object (every model's config is one); `path` names the file
/// in errors. The one reader of a config file's shape, for every model family.
pub(crate) fn parse_config_object(text: &str, path: &Path) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: format!(
            "invalid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::Config {
            path: path.to_path_buf(),
            message: "config.json must hold a JSON object".into(),
        }),
    }
}

/// Reads `path` (a `config.json`) as its JSON object.
pub(crate) fn read_config_object(path: &Path) -> Result<Map<String, Value>> {
    parse_config_object(&crate::io::read_to_string(path)?, path)
}
