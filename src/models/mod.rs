//! GPT-2, BERT and RoBERTa on one transformer core, numerically identical to Hugging Face
//! transformers and trainable (every op has a backward pass).
//!
//! - [`core`]: embeddings, attention, MLP, blocks, masks, KV cache, dropout.
//! - [`ops`]: fused dense layer, self-attention, LayerNorm, softmax, GELU and cross-entropy, each
//!   with its own backward, and the same maths composed from candle ops as their reference.
//!   Their kernels: `linear` and `attention` (on `gemm`), `vmath` (vectorisable `exp`).
//! - `gpt2`, `bert`, `roberta`: Hugging Face names and configs mapped onto the core.
//! - [`auto`]: `AutoModelForCausalLM`, `AutoModelForMaskedLM`, `AutoModel`.
mod attention;
pub mod auto;
pub mod config;
pub mod core;
pub mod device;
pub mod ops;

mod bert;
mod gemm;
mod gpt2;
mod linear;
mod model;
mod params;
mod roberta;
mod vmath;

pub use auto::{AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM};
pub use config::{BertConfig, Gpt2Config, ModelConfig, RobertaConfig, SUPPORTED_MODEL_TYPES};
pub use core::{KvCache, mean_pooling};
pub use device::{DeviceExt, best_device};
pub use model::{BaseModelOutput, ForwardArgs, ModelOutput};
pub use ops::Activation;

/// Whether AdamW should skip weight decay for the parameter `name`: biases and LayerNorm weights
/// (BERT's `LayerNorm`, RoBERTa's `layer_norm`, GPT-2's `ln_1`, `ln_2`, `ln_f`), as Hugging Face's
/// Trainer groups them.
pub fn no_weight_decay(name: &str) -> bool {
    let last = name.rsplit('.').nth(1).unwrap_or("");
    name.ends_with(".bias")
        || name.ends_with("predictions.bias")
        || name == "lm_head.bias"
        || last.contains("LayerNorm")
        || last.contains("layer_norm")
        || last.starts_with("ln_")
}
