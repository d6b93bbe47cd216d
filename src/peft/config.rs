//! [`LoraConfig`]: peft's `LoraConfig` with its names and defaults, read from and written to
//! `adapter_config.json` (keys this crate does not model are kept and written back), and its
//! rules: which modules get an adapter, which train whole, the adapter's scale.
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result, io};

/// peft's `target_modules`: names matched as a suffix of a module's full name (`"c_attn"`
/// matches `transformer.h.0.attn.c_attn`), or one regular expression matched against the whole
/// name (`"all-linear"`: every dense layer but the LM head).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    Names(Vec<String>),
    Regex(String),
}

impl<S: AsRef<str>> From<&[S]> for TargetModules {
    fn from(names: &[S]) -> Self {
        Self::Names(names.iter().map(|s| s.as_ref().to_string()).collect())
    }
}

impl<S: AsRef<str>, const N: usize> From<[S; N]> for TargetModules {
    fn from(names: [S; N]) -> Self {
        Self::Names(names.iter().map(|s| s.as_ref().to_string()).collect())
    }
}

/// peft's `init_lora_weights`: `true` (A Kaiming-uniform, B zeros: the adapted model starts as
/// the base), `false` (B random too), or `"gaussian"` (A normal(0, 1/r)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InitLoraWeights {
    Bool(bool),
    Method(String),
}

/// peft's `LoraConfig`: the same keys, defaults and meaning; `..Default::default()` fills the
/// rest.
///
/// ```
/// use massivetext::peft::LoraConfig;
/// let config = LoraConfig {
///     r: 16,
///     lora_alpha: 32.0,
///     lora_dropout: 0.05,
///     target_modules: Some(["q_proj", "v_proj"].into()),
///     ..Default::default()
/// };
/// assert_eq!(config.scaling(), 2.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraConfig {
    /// The rank of the update (`lora_A` is `[r, in]`, `lora_B` `[out, r]`).
    pub r: usize,
    /// The update is scaled by `lora_alpha / r` (or `/ sqrt(r)` with `use_rslora`).
    pub lora_alpha: f64,
    /// Dropout on the adapter's input, in training.
    pub lora_dropout: f64,
    /// The modules that get an adapter; `None`: peft's default for the model type (GPT-2:
    /// `c_attn`; Llama, Mistral, Qwen2, Marian: `q_proj`, `v_proj`; BERT, RoBERTa: `query`,
    /// `value`).
    pub target_modules: Option<TargetModules>,
    /// Modules never adapted, matched as `target_modules` is.
    pub exclude_modules: Option<TargetModules>,
    /// `true` for layers stored `[in, out]` (GPT-2's `Conv1D`); set to match the model when
    /// it does not, with a warning, as peft does.
    pub fan_in_fan_out: bool,
    /// Which biases train: `"none"`, `"all"` or `"lora_only"` (those of adapted layers).
    pub bias: String,
    /// Rank-stabilised LoRA: scale by `lora_alpha / sqrt(r)`.
    pub use_rslora: bool,
    /// Modules trained whole and saved with the adapter (a classifier head: `["score"]`).
    pub modules_to_save: Option<Vec<String>>,
    pub init_lora_weights: InitLoraWeights,
    /// `"CAUSAL_LM"`, `"SEQ_CLS"`, ... (peft sets `modules_to_save` of a classifier from it).
    pub task_type: Option<String>,
    pub base_model_name_or_path: Option<String>,
    pub revision: Option<String>,
    /// `true` in a saved config (peft's `from_pretrained` loads it frozen unless told
    /// `is_trainable`).
    pub inference_mode: bool,
    pub peft_type: String,
    /// The other keys of `adapter_config.json`, written back as read. Those naming a feature
    /// this crate does not have (DoRA, `rank_pattern`, `layers_to_transform`, ...) must hold
    /// their default (null, false or empty), else the config is refused.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: None,
            exclude_modules: None,
            fan_in_fan_out: false,
            bias: "none".into(),
            use_rslora: false,
            modules_to_save: None,
            init_lora_weights: InitLoraWeights::Bool(true),
            task_type: None,
            base_model_name_or_path: None,
            revision: None,
            inference_mode: false,
            peft_type: "LORA".into(),
            extra: Map::new(),
        }
    }
}

/// Keys of peft's `LoraConfig` for features this crate does not implement: each must be null,
/// false, 0-free or empty.
const UNSUPPORTED: [&str; 16] = [
    "use_dora",
    "lora_bias",
    "layers_to_transform",
    "layers_pattern",
    "rank_pattern",
    "alpha_pattern",
    "layer_replication",
    "target_parameters",
    "trainable_token_indices",
    "use_qalora",
    "alora_invocation_tokens",
    "megatron_config",
    "loftq_config",
    "eva_config",
    "corda_config",
    "use_bdlora",
];

/// peft's default `target_modules` per `model_type`
/// (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`).
pub(crate) fn default_targets(model_type: &str) -> Option<&'static [&'static str]> {
    Some(match model_type {
        "gpt2" => &["c_attn"],
        "llama" | "mistral" | "qwen2" | "marian" => &["q_proj", "v_proj"],
        "bert" | "roberta" => &["query", "value"],
        _ => return None,
    })
}

fn falsy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

impl LoraConfig {
    /// The factor of the update: `lora_alpha / r`, or `lora_alpha / sqrt(r)` with rsLoRA.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Checks the settings; the message names the key (and `path`, the file it came from).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        if self.peft_type != "LORA" {
            return Err(bad(format!(
                "`peft_type` is {:?}; only LoRA adapters (\"LORA\") are supported",
                self.peft_type
            )));
        }
        if self.r == 0 {
            return Err(bad("`r` is 0; the rank must be at least 1".into()));
        }
        if !self.lora_alpha.is_finite() {
            return Err(bad(format!(
                "`lora_alpha` is {}; give a finite number",
                self.lora_alpha
            )));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(bad(format!(
                "`lora_dropout` is {}; a dropout probability must be in [0, 1)",
                self.lora_dropout
            )));
        }
        if !matches!(self.bias.as_str(), "none" | "all" | "lora_only") {
            return Err(bad(format!(
                "`bias` is {:?}; give \"none\", \"all\" or \"lora_only\"",
                self.bias
            )));
        }
        match &self.init_lora_weights {
            InitLoraWeights::Bool(_) => {}
            InitLoraWeights::Method(m) if m == "gaussian" => {}
            InitLoraWeights::Method(m) => {
                return Err(bad(format!(
                    "`init_lora_weights` {m:?} is not supported; give true, false or \"gaussian\""
                )));
            }
        }
        for (kind, t) in [
            ("target_modules", &self.target_modules),
            ("exclude_modules", &self.exclude_modules),
        ] {
            if let Some(TargetModules::Regex(re)) = t
                && re != "all-linear"
                && let Err(e) = regex::Regex::new(&format!("^(?:{re})$"))
            {
                return Err(bad(format!(
                    "`{kind}` {re:?} is not a valid regular expression: {e}"
                )));
            }
        }
        for key in UNSUPPORTED {
            if let Some(v) = self.extra.get(key)
                && !falsy(v)
            {
                return Err(bad(format!(
                    "`{key}` is {v}: this LoRA variant is not supported here; remove the key or set it to null"
                )));
            }
        }
        Ok(())
    }

    /// Reads `dir/adapter_config.json` (peft's `save_pretrained`) and checks it.
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join("adapter_config.json");
        let v: Value = io::read_json(&path)?;
        let config: Self = serde_json::from_value(v).map_err(|e| Error::Config {
            path: path.clone(),
            message: format!("not a LoRA adapter config: {e}"),
        })?;
        config.validate(&path)?;
        Ok(config)
    }

    /// Writes `dir/adapter_config.json` as peft does (through a temporary file).
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        io::create_dir_all(dir)?;
        let mut saved = self.clone();
        saved.inference_mode = true;
        io::write_json(&dir.join("adapter_config.json"), &saved)
    }
}

/// Whether the module `key` is picked by `targets`, as peft's `check_target_module_exists`:
/// a list matches the name itself or a suffix after a dot; a string is a regular expression
/// over the whole name.
pub(crate) fn matches(targets: &TargetModules, key: &str) -> bool {
    match targets {
        TargetModules::Names(names) => names
            .iter()
            .any(|t| key == t || key.ends_with(&format!(".{t}"))),
        TargetModules::Regex(re) if re == "all-linear" => {
            let last = key.rsplit('.').next().unwrap_or(key);
            last != "lm_head"
        }
        TargetModules::Regex(re) => regex::Regex::new(&format!("^(?:{re})$"))
            .map(|r| r.is_match(key))
            .unwrap_or(false),
    }
}

/// Whether the module `key` lies inside one of `modules_to_save` (peft wraps a module whose
/// name ends with an entry, and everything under it).
pub(crate) fn in_modules_to_save(modules: &[String], key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    (1..=parts.len()).any(|n| {
        let ancestor = parts[..n].join(".");
        modules.iter().any(|m| ancestor.ends_with(m.as_str()))
    })
}
