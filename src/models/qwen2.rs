//! Qwen2 (`Qwen2ForCausalLM`, `model_type` "qwen2"; Qwen2 and Qwen2.5): the Llama-style
//! decoder of `decoder.rs` with biases on q, k and v (none on `o_proj` or the MLP), usually a
//! tied head, and an optional sliding window on the layers from `max_window_layers` on
//! (`use_sliding_window`, or per layer by `layer_types`). This file owns the config and its
//! names.

use serde::{Deserialize, Serialize};

use super::decoder::{DecoderSpec, decoder_family, decoder_spec};
use super::decoder_config::{RopeParameters, TokenIds};

/// Qwen2 hyper-parameters, with Hugging Face's key names (`Qwen2Config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Qwen2Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Key/value heads; `None` means as many as query heads.
    pub num_key_value_heads: Option<usize>,
    /// The size of a head; `None` means `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub initializer_range: f64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeParameters>,
    /// transformers 5's name for the rotary settings, read when `rope_scaling` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    /// Whether `sliding_window` applies (to the layers from `max_window_layers` on).
    pub use_sliding_window: bool,
    pub sliding_window: Option<usize>,
    pub max_window_layers: usize,
    /// Per layer `full_attention` or `sliding_attention`; derived from the keys above when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    pub attention_dropout: f64,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

impl Default for Qwen2Config {
    /// transformers' `Qwen2Config()`.
    fn default() -> Self {
        Self {
            vocab_size: 151936,
            hidden_size: 4096,
            intermediate_size: 22016,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: Some(32),
            head_dim: None,
            hidden_act: "silu".into(),
            max_position_embeddings: 32768,
            initializer_range: 0.02,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: None,
            rope_parameters: None,
            use_sliding_window: false,
            sliding_window: Some(4096),
            max_window_layers: 28,
            layer_types: None,
            attention_dropout: 0.0,
            tie_word_embeddings: false,
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }
}

impl Qwen2Config {
    /// Each layer's window, as transformers' `Qwen2Config` derives `layer_types`.
    fn windows(&self) -> std::result::Result<Vec<Option<usize>>, String> {
        let window = self.sliding_window.filter(|_| self.use_sliding_window);
        match &self.layer_types {
            Some(types) => {
                if types.len() != self.num_hidden_layers {
                    return Err(format!(
                        "`layer_types` has {} entries for {} layers (`num_hidden_layers`)",
                        types.len(),
                        self.num_hidden_layers
                    ));
                }
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        "full_attention" => Ok(None),
                        "sliding_attention" => Ok(window),
                        other => Err(format!(
                            "`layer_types` holds `{other}`; supported: full_attention, sliding_attention"
                        )),
                    })
                    .collect()
            }
            None => Ok((0..self.num_hidden_layers)
                .map(|i| window.filter(|_| i >= self.max_window_layers))
                .collect()),
        }
    }

    fn spec(&self) -> std::result::Result<DecoderSpec, String> {
        decoder_spec!(
            self,
            qkv_bias: true,
            o_bias: false,
            mlp_bias: false,
            windows: self.windows()?,
        )
    }
}

/// The Qwen2 family.
pub(crate) struct Qwen2;

decoder_family!(
    Qwen2,
    Qwen2Config,
    "qwen2",
    "Qwen2Model",
    "Qwen2ForCausalLM",
    ["sliding_window", "num_key_value_heads"]
);
