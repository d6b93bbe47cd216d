//! The layers the model families compose, in candle-transformers' spirit: each family file
//! (`gpt2.rs`, `bert.rs`, `marian.rs`, ...) builds its own blocks from these pieces under its own
//! Hugging Face names, so no layer here knows a family or carries a family's flag.
//!
//! - `ctx`: training mode and the dropout stream of one call;
//! - `linear`: dense layers (`nn.Linear`, GPT-2's `Conv1D`) and LayerNorm, with their builders;
//! - `attention`: multi-head self-attention (fused, cached or composed) and cross-attention;
//! - `mlp`: the two-layer feed-forward block;
//! - `embedding`: token lookups, learned / padding-offset / sinusoidal positions;
//! - `mask`: input checks, causal and padding masks;
//! - `cache`: the KV caches of decoding; `stack`: a stack of layers run over them.
mod attention;
mod cache;
mod ctx;
mod embedding;
mod linear;
mod mask;
mod mlp;
mod stack;

pub(crate) use attention::{Attention, CacheSlot, CrossAttention, Qkv};
pub use cache::{EncoderDecoderCache, KvCache};
pub(crate) use ctx::{Ctx, DropoutStream};
pub(crate) use embedding::{Embeddings, Positions, embed_tokens, sinusoidal_positions};
pub(crate) use linear::{LayerNorm, Linear, layer_norm, linear};
pub use mask::check_token_id;
pub(crate) use mask::{build_mask, cross_mask, read_ids};
pub(crate) use mlp::Mlp;
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
