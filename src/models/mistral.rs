//! Mistral (`MistralForCausalLM`, `model_type` "mistral"): the Llama-style decoder of
//! `decoder.rs` without biases, with a `sliding_window` on every layer (a query sees the last
//! `sliding_window` positions, itself included, as transformers' eager path masks them; `null`
//! for none, as Mistral 7B v0.2 on). This file owns the config and its names.

use serde::{Deserialize, Serialize};

use super::decoder::{DecoderSpec, decoder_family, decoder_spec};
use super::decoder_config::{RopeParameters, TokenIds};

/// Mistral hyper-parameters, with Hugging Face's key names (`MistralConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MistralConfig {
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
    /// How many positions (itself included) a query sees; `None` for all.
    pub sliding_window: Option<usize>,
    pub attention_dropout: f64,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

impl Default for MistralConfig {
    /// transformers' `MistralConfig()` (Mistral 7B's sizes).
    fn default() -> Self {
        Self {
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 14336,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: Some(8),
            head_dim: None,
            hidden_act: "silu".into(),
            max_position_embeddings: 4096 * 32,
            initializer_range: 0.02,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: None,
            rope_parameters: None,
            sliding_window: Some(4096),
            attention_dropout: 0.0,
            tie_word_embeddings: false,
            bos_token_id: Some(1),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: None,
        }
    }
}

impl MistralConfig {
    fn spec(&self) -> std::result::Result<DecoderSpec, String> {
        decoder_spec!(
            self,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            windows: vec![self.sliding_window; self.num_hidden_layers],
        )
    }
}

/// The Mistral family.
pub(crate) struct Mistral;

decoder_family!(
    Mistral,
    MistralConfig,
    "mistral",
    "MistralModel",
    "MistralForCausalLM",
    [
        "sliding_window",
        "num_key_value_heads",
        "bos_token_id",
        "eos_token_id"
    ]
);
