//! [`GenerationConfig`]: how to decode, with Hugging Face's names, meanings and defaults.
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::{Error, Result, io};

/// When beam search stops (Hugging Face's `early_stopping`: `True`, `False` or `"never"`;
/// written as `generation_config.json` writes it: `true`, `false`, `"never"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EarlyStopping {
    /// Stop as soon as `num_beams` hypotheses are finished.
    True,
    /// Stop when no running beam can still beat the finished ones, estimated with the current
    /// length (transformers' heuristic).
    #[default]
    False,
    /// Stop only when no running beam can beat the finished ones at any length.
    Never,
}

impl From<bool> for EarlyStopping {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

impl Serialize for EarlyStopping {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::True => s.serialize_bool(true),
            Self::False => s.serialize_bool(false),
            Self::Never => s.serialize_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(b.into()),
            Value::String(s) if s == "never" => Ok(Self::Never),
            other => Err(serde::de::Error::custom(format!(
                "early_stopping must be true, false or \"never\", got {other}"
            ))),
        }
    }
}

/// One token id or several (`eos_token_id` may be either in Hugging Face's files).
fn ids<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u32>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(vec![]),
        Value::Number(n) => n
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .map(|x| vec![x])
            .ok_or_else(|| serde::de::Error::custom(format!("not a token id: {n}"))),
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| serde::de::Error::custom(format!("not a token id: {v}")))
            })
            .collect(),
        other => Err(serde::de::Error::custom(format!("not a token id: {other}"))),
    }
}

/// One string or several (`stop_strings` may be either, as transformers accepts).
fn strings<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(vec![s]),
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(serde::de::Error::custom(format!("not a string: {other}"))),
            })
            .collect(),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a list of strings, got {other}"
        ))),
    }
}

/// How to decode, as Hugging Face's `GenerationConfig`. `Default` is greedy decoding of 20 new
/// tokens (transformers' `max_length = 20` counts the prompt; here the count is of new tokens).
///
/// ```
/// use massivetext::generate::GenerationConfig;
/// let beam = GenerationConfig { max_new_tokens: 50, num_beams: 4, ..Default::default() };
/// assert!(!beam.do_sample && beam.top_k == 50);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// New tokens to generate at most.
    pub max_new_tokens: usize,
    /// End-of-sequence tokens cannot be chosen before this many new tokens.
    pub min_new_tokens: usize,
    /// Sample from the (processed) distribution instead of taking the most likely token.
    pub do_sample: bool,
    /// Divides the logits before sampling (> 0).
    pub temperature: f64,
    /// Sample only among the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Sample only from the smallest set of tokens whose probability reaches `top_p` (in (0, 1]).
    pub top_p: f64,
    /// > 1 discourages tokens already in the sequence (CTRL's penalty).
    pub repetition_penalty: f64,
    /// No n-gram of this size appears twice (0: off).
    pub no_repeat_ngram_size: usize,
    /// Beam search with this many beams (1: no beam search).
    pub num_beams: usize,
    /// Beam scores are divided by `length ** length_penalty`.
    pub length_penalty: f64,
    pub early_stopping: EarlyStopping,
    /// Sequences returned per input (≤ `num_beams` for beam search).
    pub num_return_sequences: usize,
    /// Tokens that end a sequence.
    #[serde(deserialize_with = "ids")]
    pub eos_token_id: Vec<u32>,
    /// Fills finished rows; the first EOS token when unset, as transformers does.
    pub pad_token_id: Option<u32>,
    /// Starts the sequence when the prompt is empty.
    pub bos_token_id: Option<u32>,
    /// First decoder token of an encoder-decoder model.
    pub decoder_start_token_id: Option<u32>,
    /// Forced as the last token when `max_new_tokens` is reached.
    pub forced_eos_token_id: Option<u32>,
    /// Token sequences never generated (transformers' `bad_words_ids`): a one-token entry is
    /// never chosen, the last token of a longer one not after the others. opus-mt checkpoints
    /// ban their padding token this way (`[[pad]]`).
    pub bad_words_ids: Vec<Vec<u32>>,
    /// Beam search: the processed log-probabilities are normalised again (log-softmax) before
    /// they add to the beams' scores, as transformers' `renormalize_logits` (opus-mt sets it).
    pub renormalize_logits: bool,
    /// Seed of the sampling stream: the same seed gives the same text.
    pub seed: u64,
    /// A prompt longer than the model's context is cut from the left to fit (else an error).
    pub truncate_prompt: bool,
    /// Generation of a row ends once its text ends with one of these strings (transformers'
    /// `stop_strings`, e.g. `"\ndef "` for code): the stop string ends inside the last new token
    /// and stays in the output, as transformers keeps it. Matched on the bytes the tokens stand
    /// for, so it needs the tokenizer: `generate_text`, or `generate_with_tokenizer`. In
    /// `generation_config.json` a single string or a list; unset when empty.
    #[serde(deserialize_with = "strings", skip_serializing_if = "Vec::is_empty")]
    pub stop_strings: Vec<String>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 20,
            min_new_tokens: 0,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::False,
            num_return_sequences: 1,
            eos_token_id: vec![],
            pad_token_id: None,
            bos_token_id: None,
            decoder_start_token_id: None,
            forced_eos_token_id: None,
            bad_words_ids: vec![],
            renormalize_logits: false,
            seed: 42,
            truncate_prompt: false,
            stop_strings: vec![],
        }
    }
}

/// Keys of `config.json` that older checkpoints use for generation settings.
const CONFIG_KEYS: &[&str] = &[
    "max_new_tokens",
    "min_new_tokens",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "num_beams",
    "length_penalty",
    "early_stopping",
    "num_return_sequences",
    "eos_token_id",
    "pad_token_id",
    "bos_token_id",
    "decoder_start_token_id",
    "forced_eos_token_id",
    "bad_words_ids",
    "renormalize_logits",
];

impl GenerationConfig {
    /// The settings of a model folder: `generation_config.json`, else the generation keys of
    /// `config.json`, else the defaults. `max_length` (which counts the prompt) is not mapped.
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let gen_path = dir.join("generation_config.json");
        if gen_path.is_file() {
            let v: Value = io::read_json(&gen_path)?;
            return Self::from_value(&v, &gen_path);
        }
        let cfg_path = dir.join("config.json");
        if cfg_path.is_file() {
            let v: Value = io::read_json(&cfg_path)?;
            return Self::from_config_json(&v, &cfg_path);
        }
        Ok(Self::default())
    }

    /// The generation keys of a model's `config.json` value.
    pub fn from_config_json(config: &Value, path: &Path) -> Result<Self> {
        let mut picked = serde_json::Map::new();
        if let Some(o) = config.as_object() {
            for k in CONFIG_KEYS {
                if let Some(v) = o.get(*k).filter(|v| !v.is_null()) {
                    picked.insert(k.to_string(), v.clone());
                }
            }
        }
        Self::from_value(&Value::Object(picked), path)
    }

    /// Parses a `generation_config.json` value; unknown keys are ignored, a wrong type or value
    /// is an error naming the file and the key (`"temperature": "hot"`, `"max_new_tokens": -5`).
    pub fn from_value(v: &Value, path: &Path) -> Result<Self> {
        let mut v = v.clone();
        let Some(o) = v.as_object_mut() else {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "expected a JSON object of generation settings, got {}",
                    kind_of(&v)
                ),
            });
        };
        // keys whose null means "unset" in transformers' files
        o.retain(|k, val| !(val.is_null() && k != "eos_token_id"));
        serde_json::from_value(v.clone()).map_err(|e| bad_key(&v, path, e))
    }

    /// The settings with the keys of `changes` (a JSON object, `generation_config.json`'s
    /// names) replaced, as transformers' `GenerationConfig.update(**kwargs)`: the rest, the
    /// model's eos / pad / bos ids among them, stay. A wrong type or value is an error naming
    /// the key.
    ///
    /// ```
    /// use massivetext::prelude::*;
    /// let base = GenerationConfig { eos_token_id: vec![2], ..Default::default() };
    /// let c = base.update(&json!({"do_sample": true, "top_k": 5}))?;
    /// assert_eq!((c.do_sample, c.top_k, c.eos_token_id.clone()), (true, 5, vec![2]));
    /// assert!(c.update(&json!({"top_k": "many"})).unwrap_err().to_string().contains("top_k"));
    /// // the same with the setters
    /// let s = base.clone().do_sample(true).top_k(5).temperature(0.7);
    /// assert_eq!((s.do_sample, s.top_k, s.temperature, s.eos_token_id), (true, 5, 0.7, vec![2]));
    /// # Ok::<(), massivetext::Error>(())
    /// ```
    pub fn update(&self, changes: &Value) -> Result<Self> {
        let Some(changes) = changes.as_object() else {
            return Err(Error::InvalidArgument(format!(
                "GenerationConfig::update: expected a JSON object of settings, got {}",
                kind_of(changes)
            )));
        };
        let mut v = serde_json::to_value(self).map_err(|e| {
            Error::InvalidArgument(format!(
                "GenerationConfig::update: cannot write the settings: {e}"
            ))
        })?;
        if let Some(o) = v.as_object_mut() {
            for (k, val) in changes {
                o.insert(k.clone(), val.clone());
            }
        }
        Self::from_value(&v, Path::new("GenerationConfig::update"))
    }

    /// The token that fills finished rows: `pad_token_id`, else the first EOS token.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_token_id.or(self.eos_token_id.first().copied())
    }

    /// Every float setting is a number (NaN or an infinity would stop beam search early or make
    /// every score NaN): an error naming the first that is not.
    fn check_floats(&self) -> Result<()> {
        for (name, x) in [
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("repetition_penalty", self.repetition_penalty),
            ("length_penalty", self.length_penalty),
        ] {
            if !x.is_finite() {
                return Err(Error::InvalidConfig(format!(
                    "{name} must be a finite number, got {x}"
                )));
            }
        }
        Ok(())
    }

    /// Checks the settings, with an error naming the setting and what is allowed. Settings that
    /// only sampling reads (`temperature`, `top_p`) are checked for range when `do_sample` is
    /// set; otherwise an unusable value is only a [warning](Self::warnings), as transformers
    /// does.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        self.check_floats()?;
        if self.num_beams == 0 {
            return bad("num_beams must be at least 1 (1 is greedy or sampling)".into());
        }
        if self.num_return_sequences == 0 {
            return bad("num_return_sequences must be at least 1".into());
        }
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return bad(format!(
                "num_return_sequences ({}) must be <= num_beams ({}) for beam search",
                self.num_return_sequences, self.num_beams
            ));
        }
        if self.num_beams == 1 && !self.do_sample && self.num_return_sequences > 1 {
            return bad(
                "greedy decoding returns one sequence per input; set do_sample or num_beams to return several".into(),
            );
        }
        if self.do_sample {
            if self.temperature <= 0.0 {
                return bad(format!(
                    "temperature must be > 0 when sampling, got {}; use do_sample: false for greedy decoding",
                    self.temperature
                ));
            }
            if !(self.top_p > 0.0 && self.top_p <= 1.0) {
                return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
            }
        }
        if let Some(i) = self.stop_strings.iter().position(String::is_empty) {
            return bad(format!(
                "stop_strings[{i}] is empty, and an empty stop string never matches; remove it"
            ));
        }
        if self.repetition_penalty <= 0.0 {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        Ok(())
    }

    /// Settings that have no effect as set, in transformers' words: `temperature`, `top_p` or
    /// `top_k` set without `do_sample` (greedy and beam search never read them).
    pub fn warnings(&self) -> Vec<String> {
        let d = Self::default();
        let mut out = Vec::new();
        if !self.do_sample {
            for (name, value, default) in [
                ("temperature", self.temperature, d.temperature),
                ("top_p", self.top_p, d.top_p),
                ("top_k", self.top_k as f64, d.top_k as f64),
            ] {
                if value != default {
                    out.push(format!(
                        "`do_sample` is not set, so `{name}` ({value}) is not used: it only affects sampling; set do_sample (--do-sample) or leave {name} unset"
                    ));
                }
            }
        }
        out
    }
}

/// The error for a settings value that does not parse: the first key that fails on its own,
/// with serde's reason, and the file.
fn bad_key(v: &Value, path: &Path, whole: serde_json::Error) -> Error {
    let failing = v.as_object().and_then(|o| {
        o.iter().find_map(|(k, val)| {
            let one = Value::Object([(k.clone(), val.clone())].into_iter().collect());
            serde_json::from_value::<GenerationConfig>(one)
                .err()
                .map(|e| (k.clone(), val.clone(), e))
        })
    });
    let message = match failing {
        Some((k, val, e)) => {
            format!("key `{k}` = {val} is not a valid setting ({e}); fix or remove the key")
        }
        None => format!("invalid generation setting: {whole}"),
    };
    Error::Config {
        path: path.to_path_buf(),
        message,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Builder-style setters, one per setting, for a model's own settings changed in place of a
/// struct literal whose `..Default::default()` would drop the model's eos / pad ids:
/// `model.generation_config()?.max_new_tokens(40).do_sample(true).temperature(0.8)`.
macro_rules! setters {
    ($($name:ident: $t:ty),* $(,)?) => {
        impl GenerationConfig {
            $(
                #[doc = concat!("Sets `", stringify!($name), "`, keeping every other setting.")]
                pub fn $name(mut self, value: $t) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    max_new_tokens: usize,
    min_new_tokens: usize,
    do_sample: bool,
    temperature: f64,
    top_k: usize,
    top_p: f64,
    repetition_penalty: f64,
    no_repeat_ngram_size: usize,
    num_beams: usize,
    length_penalty: f64,
    early_stopping: EarlyStopping,
    num_return_sequences: usize,
    seed: u64,
    truncate_prompt: bool,
    stop_strings: Vec<String>,
}
