//! Llama (`LlamaForCausalLM`, `model_type` "llama"; SmolLM2, Llama 3.x, TinyLlama...): RMSNorm,
//! rotary positions (`rope_theta`, `rope_scaling` `linear` / `llama3`), grouped-query attention
//! (`num_key_value_heads`), a SwiGLU MLP, optional biases (`attention_bias`, `mlp_bias`) and a
//! tied or untied head. This file owns the config and its names; the network is the shared
//! decoder of `decoder.rs`.

use serde::{Deserialize, Serialize};

use super::decoder::{DecoderSpec, decoder_family, decoder_spec};
use super::decoder_config::{RopeParameters, TokenIds};

/// Llama hyper-parameters, with Hugging Face's key names (`LlamaConfig`).
///
/// ```
/// use massivetext::prelude::*;
/// let config = LlamaConfig { num_hidden_layers: 2, ..LlamaConfig::small(100) };
/// let model = AutoModelForCausalLM::from_config(&config, &Device::Cpu)?;
/// let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
/// assert_eq!(model.forward(&ids, None)?.logits.dims(), &[1, 3, 100]);
/// # Ok::<(), massivetext::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// The width of the gated MLP.
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Key/value heads, each shared by `num_attention_heads / num_key_value_heads` query heads;
    /// `None` means as many as query heads.
    pub num_key_value_heads: Option<usize>,
    /// The size of a head; `None` means `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub initializer_range: f64,
    pub rms_norm_eps: f64,
    /// The rotary base.
    pub rope_theta: f64,
    /// `linear` or `llama3` rescaling of the rotary frequencies; `None` for none.
    pub rope_scaling: Option<RopeParameters>,
    /// transformers 5's name for the rotary settings, read when `rope_scaling` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    /// Biases on q, k, v and o.
    pub attention_bias: bool,
    pub attention_dropout: f64,
    /// Biases in the MLP.
    pub mlp_bias: bool,
    /// The LM head is the token embeddings (SmolLM2, Llama 3.2 1B) or its own `lm_head`.
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<TokenIds>,
    /// Its row of the embeddings gets no gradient (`nn.Embedding(padding_idx=...)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

impl Default for LlamaConfig {
    /// transformers' `LlamaConfig()` (Llama 2 7B's sizes).
    fn default() -> Self {
        Self {
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 11008,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: None,
            head_dim: None,
            hidden_act: "silu".into(),
            max_position_embeddings: 2048,
            initializer_range: 0.02,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: None,
            rope_parameters: None,
            attention_bias: false,
            attention_dropout: 0.0,
            mlp_bias: false,
            tie_word_embeddings: false,
            bos_token_id: Some(1),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: None,
        }
    }
}

impl LlamaConfig {
    /// A small Llama for training from scratch: 6 layers, 384 wide, 6 query heads over 2 kv
    /// heads, MLP 1024, 256 positions, tied head (a GPT-2 `small` of the same width has about
    /// as many weights).
    pub fn small(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 384,
            intermediate_size: 1024,
            num_hidden_layers: 6,
            num_attention_heads: 6,
            num_key_value_heads: Some(2),
            max_position_embeddings: 256,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_id: None,
            ..Self::default()
        }
    }

    fn spec(&self) -> std::result::Result<DecoderSpec, String> {
        decoder_spec!(
            self,
            qkv_bias: self.attention_bias,
            o_bias: self.attention_bias,
            mlp_bias: self.mlp_bias,
            windows: vec![None; self.num_hidden_layers],
        )
    }
}

/// The Llama family.
pub(crate) struct Llama;

decoder_family!(
    Llama,
    LlamaConfig,
    "llama",
    "LlamaModel",
    "LlamaForCausalLM",
    ["bos_token_id", "eos_token_id"]
);
