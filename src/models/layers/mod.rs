//! The layers the model families compose, in candle-transformers' spirit: each family file
//! (`gpt2.rs`, `bert.rs`, `marian.rs`, ...) builds its own blocks from these pieces under its own
//! Hugging Face names, so no layer here knows a family or carries a family's flag.
//!
//! - `ctx`: training mode and the dropout stream of one call;
//! - `linear`: dense layers (`nn.Linear`, GPT-2's `Conv1D`), LayerNorm and RMSNorm, with their
//!   builders;
//! - `attention`: multi-head self-attention (fused, cached or composed) and cross-attention;
//! - `gqa`: grouped-query self-attention with rotary positions and a KV cache of the kv heads;
//! - `rope`: rotary position embeddings (default, `linear` and `llama3` scaling);
//! - `mlp`: the two-layer feed-forward block and the gated (SwiGLU) one;
//! - `embedding`: token lookups, learned / padding-offset / sinusoidal positions;
//! - `mask`: input checks, causal, sliding-window and padding masks;
//! - `packing`: a right-padded batch's real tokens in one row, padding skipped;
//! - `cache`: the KV caches of decoding; `stack`: a stack of layers run over them;
//! - `grad_mode`: evaluation without a graph across layers (`NoGrad`).
mod attention;
mod cache;
mod ctx;
mod embedding;
mod gqa;
mod grad_mode;
mod linear;
mod mask;
mod mlp;
mod packing;
mod rope;
mod stack;

pub(crate) use attention::{Attention, CacheSlot, CrossAttention, Qkv};
pub use cache::{EncoderDecoderCache, KvCache};
pub(crate) use ctx::{Ctx, DropoutStream};
pub(crate) use embedding::{Embeddings, Positions, embed_tokens, sinusoidal_positions};
pub(crate) use gqa::GqaAttention;
pub(crate) use grad_mode::{NoGrad, grad_enabled};
pub(crate) use linear::{
    LayerNorm, Linear, RmsNorm, conv1d, layer_norm, linear, linear_maybe_bias, lora_delta, rms_norm,
};
pub use mask::check_token_id;
pub(crate) use mask::{Window, build_mask, build_windowed_mask, cross_mask, mask_in, read_ids};
pub(crate) use mlp::{GatedMlp, Mlp};
pub(crate) use packing::Packing;
pub(crate) use rope::{Rope, RopeScaling};
pub(crate) use stack::{Collect, run_layers};

use candle_core::{D, Tensor};

use crate::Result;

/// Mean of `hidden [b, t, h]` over the positions where `attention_mask [b, t]` is 1: the
/// sentence embedding of sentence-transformers' mean pooling.
pub fn mean_pooling(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let m = attention_mask
        .to_dtype(hidden.dtype())?
        .unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    Ok(summed.broadcast_div(&counts)?)
}
