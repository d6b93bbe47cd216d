//! The registry: Hugging Face's `model_type` to the family that builds it. [`ModelConfig`] is
//! the config of any registered family, one variant each; each of its methods is the family's
//! own answer ([`Family`]), dispatched here once. Adding a family is one line of the
//! `families!` list at the end of this file.
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::bert::{Bert, BertConfig};
use super::family::{Family, Network, read_config};
use super::gpt2::{Gpt2, Gpt2Config};
use super::heads::Task;
use super::labels::LabelConfig;
use super::llama::{Llama, LlamaConfig};
use super::marian::{Marian, MarianConfig};
use super::mistral::{Mistral, MistralConfig};
use super::params::Params;
use super::qwen2::{Qwen2, Qwen2Config};
use super::roberta::{Roberta, RobertaConfig};
use crate::{Error, Result};

macro_rules! families {
    ($($variant:ident($config:ty) => $family:ty),* $(,)?) => {
        /// The configuration of any supported model, tagged by Hugging Face's `model_type`.
        #[derive(Clone, Debug, PartialEq)]
        pub enum ModelConfig {
            $($variant($config)),*
        }

        /// Model types this crate can build, in the registry's order.
        pub const SUPPORTED_MODEL_TYPES: &[&str] = &[$(<$family as Family>::MODEL_TYPE),*];

        impl ModelConfig {
            /// Reads the config of the family `config.json` names (`model_type`).
            fn read(model_type: &str, map: &Map<String, Value>) -> Option<std::result::Result<Self, String>> {
                $(if model_type == <$family as Family>::MODEL_TYPE {
                    return Some(read_config::<$family>(map).map(Self::$variant));
                })*
                None
            }

            /// Hugging Face's `model_type`.
            pub fn model_type(&self) -> &'static str {
                match self { $(Self::$variant(_) => <$family as Family>::MODEL_TYPE),* }
            }

            /// The tasks the family has a head for.
            pub(crate) fn tasks(&self) -> &'static [Task] {
                match self { $(Self::$variant(_) => <$family as Family>::TASKS),* }
            }

            pub fn vocab_size(&self) -> usize {
                match self { $(Self::$variant(c) => <$family as Family>::vocab_size(c)),* }
            }

            /// The number of positions the model reads (GPT-2 `n_positions`, BERT
            /// `max_position_embeddings`, less RoBERTa's two reserved offsets).
            pub fn max_positions(&self) -> usize {
                match self { $(Self::$variant(c) => <$family as Family>::max_positions(c)),* }
            }

            /// `(layers, hidden size, attention heads)` (an encoder–decoder: its encoder's).
            pub fn dims(&self) -> (usize, usize, usize) {
                match self { $(Self::$variant(c) => <$family as Family>::dims(c)),* }
            }

            /// Sets the vocabulary size (after `resize_token_embeddings`).
            pub fn set_vocab_size(&mut self, vocab_size: usize) {
                match self { $(Self::$variant(c) => <$family as Family>::set_vocab_size(c, vocab_size)),* }
            }

            /// What a model of this config weighs, counted before anything is allocated.
            pub fn size(&self) -> super::family::ModelSize {
                match self { $(Self::$variant(c) => <$family as Family>::size(c)),* }
            }

            pub fn initializer_range(&self) -> f64 {
                match self { $(Self::$variant(c) => <$family as Family>::initializer_range(c)),* }
            }

            /// The config's keys as `config.json` holds them (without `model_type`).
            fn json_value(&self) -> Value {
                match self { $(Self::$variant(c) => <$family as Family>::to_json_value(c)),* }
            }

            /// Checks the numbers fit together; the message names the field.
            fn check(&self) -> std::result::Result<(), String> {
                match self { $(Self::$variant(c) => <$family as Family>::validate(c)),* }
            }

            /// The architecture name of the model for `task`.
            pub(crate) fn architecture(&self, task: Task) -> &'static str {
                match self { $(Self::$variant(c) => <$family as Family>::architecture(c, task)),* }
            }

            /// The family's rows of a summary.
            pub(crate) fn summary_rows(&self) -> Vec<(String, String)> {
                match self { $(Self::$variant(c) => <$family as Family>::summary_rows(c)),* }
            }

            /// Generation settings beyond the config's own keys (Marian's beam search).
            pub(crate) fn generation_defaults(&self) -> Option<Value> {
                match self { $(Self::$variant(c) => <$family as Family>::generation_defaults(c)),* }
            }

            /// The family's network for `task`, weights from `p`.
            pub(crate) fn build(
                &self,
                p: &mut Params,
                task: Task,
                labels: &LabelConfig,
            ) -> Result<Arc<dyn Network>> {
                match self { $(Self::$variant(c) => <$family as Family>::build(c, p, task, labels)),* }
            }
        }

        /// Model types with a head for `task`, for error messages.
        pub(crate) fn model_types_for(task: Task) -> String {
            let mut out = Vec::new();
            $(if <$family as Family>::TASKS.contains(&task) {
                out.push(<$family as Family>::MODEL_TYPE);
            })*
            out.join(", ")
        }
    };
}

impl ModelConfig {
    /// The config as a JSON value with its `model_type`, for summaries.
    pub fn to_value(&self) -> Value {
        let mut v = self.json_value();
        if let Some(o) = v.as_object_mut() {
            o.insert("model_type".into(), self.model_type().into());
        }
        v
    }

    /// Reads a `config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_map(&read_config_object(path)?, path)
    }

    /// Parses `config.json` text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let map = parse_config_object(text, path)?;
        Self::from_map(&map, path)
    }

    /// The config of the family `map["model_type"]` names, read and validated; errors name
    /// `path` and the key.
    pub(crate) fn from_map(map: &Map<String, Value>, path: &Path) -> Result<Self> {
        let err = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let supported = SUPPORTED_MODEL_TYPES.join(", ");
        let Some(Value::String(model_type)) = map.get("model_type") else {
            return Err(err(format!(
                "missing key `model_type` (one of: {supported}); add it to config.json"
            )));
        };
        let config = Self::read(model_type, map)
            .ok_or_else(|| Error::UnsupportedModelType {
                path: path.to_path_buf(),
                model_type: model_type.clone(),
                supported,
            })?
            .map_err(err)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks the numbers fit together (sizes at least 1, heads divide the width, a known
    /// activation, ids inside the vocabulary...), with an error naming `path` and the field.
    pub fn validate(&self, path: &Path) -> Result<()> {
        self.check().map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The check of a config given in code (`from_config`): `InvalidConfig` naming the field.
    pub(crate) fn validate_in_code(&self) -> Result<()> {
        self.check()
            .map_err(|m| Error::InvalidConfig(format!("{} config: {m}", self.model_type())))
    }

    /// Refuses a task the family has no head for, naming the entry point that loads it.
    pub(crate) fn check_task(&self, task: Task) -> Result<()> {
        if self.tasks().contains(&task) {
            return Ok(());
        }
        let mut supported = model_types_for(task);
        if let Some(other) = self.tasks().first() {
            supported.push_str(&format!(
                " (a `{}` model loads with {})",
                self.model_type(),
                other.entry_point()
            ));
        }
        Err(Error::WrongTask {
            model_type: self.model_type().into(),
            task: task.describe().into(),
            supported,
        })
    }

    /// The JSON object written to `config.json`: `extra` (keys read from the original file)
    /// overwritten with this config's values, `model_type` and `architectures`.
    pub(crate) fn to_json(&self, architecture: &str, extra: &Map<String, Value>) -> Result<String> {
        let mut map = extra.clone();
        if let Value::Object(o) = self.json_value() {
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

impl From<Gpt2Config> for ModelConfig {
    fn from(c: Gpt2Config) -> Self {
        Self::Gpt2(c)
    }
}

impl From<&Gpt2Config> for ModelConfig {
    fn from(c: &Gpt2Config) -> Self {
        Self::Gpt2(c.clone())
    }
}

impl From<BertConfig> for ModelConfig {
    fn from(c: BertConfig) -> Self {
        Self::Bert(c)
    }
}

impl From<&BertConfig> for ModelConfig {
    fn from(c: &BertConfig) -> Self {
        Self::Bert(c.clone())
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

impl From<MarianConfig> for ModelConfig {
    fn from(c: MarianConfig) -> Self {
        Self::Marian(c)
    }
}

impl From<&MarianConfig> for ModelConfig {
    fn from(c: &MarianConfig) -> Self {
        Self::Marian(c.clone())
    }
}

impl From<LlamaConfig> for ModelConfig {
    fn from(c: LlamaConfig) -> Self {
        Self::Llama(c)
    }
}

impl From<&LlamaConfig> for ModelConfig {
    fn from(c: &LlamaConfig) -> Self {
        Self::Llama(c.clone())
    }
}

impl From<Qwen2Config> for ModelConfig {
    fn from(c: Qwen2Config) -> Self {
        Self::Qwen2(c)
    }
}

impl From<&Qwen2Config> for ModelConfig {
    fn from(c: &Qwen2Config) -> Self {
        Self::Qwen2(c.clone())
    }
}

impl From<MistralConfig> for ModelConfig {
    fn from(c: MistralConfig) -> Self {
        Self::Mistral(c)
    }
}

impl From<&MistralConfig> for ModelConfig {
    fn from(c: &MistralConfig) -> Self {
        Self::Mistral(c.clone())
    }
}

impl From<&ModelConfig> for ModelConfig {
    fn from(c: &ModelConfig) -> Self {
        c.clone()
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

families! {
    Gpt2(Gpt2Config) => Gpt2,
    Bert(BertConfig) => Bert,
    Roberta(BertConfig) => Roberta,
    Marian(MarianConfig) => Marian,
    Llama(LlamaConfig) => Llama,
    Qwen2(Qwen2Config) => Qwen2,
    Mistral(MistralConfig) => Mistral,
}
