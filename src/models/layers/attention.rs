//! Multi-head attention: self-attention over the layer's own input (fused, over a KV cache, or
//! composed when its probabilities or attention dropout are needed) and cross-attention from a
//! decoder onto an encoder's output.
use candle_core::Tensor;

use super::{Ctx, Linear, Packing};
use crate::kernels::{self, composed};
use crate::{Error, Result};

/// Query, key and value projections: GPT-2 fuses them into one `c_attn`, BERT keeps three.
#[derive(Clone)]
pub(crate) enum Qkv {
    Fused(Linear),
    Split { q: Linear, k: Linear, v: Linear },
}

#[derive(Clone)]
pub(crate) struct Attention {
    pub qkv: Qkv,
    pub out: Linear,
    pub n_head: usize,
    pub attn_dropout: f64,
}

/// One layer's place in a [`KvCache`]: its buffer `[2, b, heads, capacity, hd]` (keys, then
/// values), how many positions are filled, and how many to reserve when allocating.
pub(crate) struct CacheSlot<'a> {
    pub kv: &'a mut Option<Tensor>,
    pub past: usize,
    pub reserve: usize,
}

impl CacheSlot<'_> {
    /// The buffer `[2, b, heads, capacity, hd]` for `t` more positions of `heads` heads of width
    /// `hd`, `like`'s dtype and device: allocated at the reserve, grown by doubling when they do
    /// not fit (the filled positions copied over). Both attentions' caches (GPT-2's packed
    /// `qkv`, the Llama family's grouped keys) take theirs here.
    pub(super) fn buffer(
        &mut self,
        (b, heads, t, hd): (usize, usize, usize, usize),
        like: &Tensor,
    ) -> Result<Tensor> {
        let need = self.past + t;
        if let Some(kv) = self.kv.as_ref() {
            if kv.dim(1)? != b {
                return Err(Error::InvalidArgument(format!(
                    "the KV cache holds a batch of {}, the input has {b} rows; clear it (KvCache::clear) for a new batch",
                    kv.dim(1)?
                )));
            }
            if kv.dim(3)? >= need {
                return Ok(kv.clone());
            }
        }
        let old = self.kv.take();
        let old_cap = old.as_ref().map(|o| o.dim(3)).transpose()?.unwrap_or(0);
        let cap = need.max(self.reserve).max(2 * old_cap);
        let kv = kernels::kv_cache_zeros((2, b, heads, cap, hd), like)?;
        if let (Some(old), true) = (old, self.past > 0) {
            kv.slice_set(&old.narrow(3, 0, self.past)?.contiguous()?, 3, 0)?;
        }
        *self.kv = Some(kv.clone());
        Ok(kv)
    }
}

impl Attention {
    /// `x [b, t, h]`, `mask` additive `[b, 1, t, t_k]` (0 or a very negative number).
    /// Returns the projected output and, when `want_probs`, the attention probabilities
    /// `[b, heads, t, t_k]`.
    ///
    /// Without a KV cache or returned probabilities, the one fused op
    /// [`kernels::self_attention`] (or [`kernels::self_attention_dropout`] when training with
    /// attention dropout) runs; with a cache, [`kernels::cached_attention`] over the cache's
    /// buffer; otherwise the composed ops below, which expose each step.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<CacheSlot<'_>>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (_, t, h) = x.dims3()?;
        let qkv = self.project_qkv(x, ctx)?;
        let no_dropout = !ctx.training || self.attn_dropout <= 0.0;
        let composed = kernels::composed::split_heads;
        let (k, v) = match cache {
            None if !want_probs => {
                let y = self.fused(&qkv, mask, ctx)?;
                return Ok((self.out.forward_t(&y, ctx)?, None));
            }
            None => (
                composed(&qkv.narrow(2, h, h)?, self.n_head)?,
                composed(&qkv.narrow(2, 2 * h, h)?, self.n_head)?,
            ),
            Some(mut slot) => {
                let b = qkv.dim(0)?;
                let kv = slot.buffer((b, self.n_head, t, h / self.n_head), &qkv)?;
                kernels::kv_cache_write(&kv, &qkv, self.n_head, slot.past)?;
                let len = slot.past + t;
                if !want_probs && no_dropout {
                    let y = kernels::cached_attention(&qkv, &kv, len, mask, self.n_head)?;
                    return Ok((self.out.forward_t(&y, ctx)?, None));
                }
                (
                    kernels::composed::cached(&kv, 0, len)?,
                    kernels::composed::cached(&kv, 1, len)?,
                )
            }
        };
        let q = composed(&qkv.narrow(2, 0, h)?, self.n_head)?;
        let probs = kernels::composed::attention_probs(&q, &k, mask)?;
        let dropped = ctx.dropout(&probs, self.attn_dropout)?;
        let y = kernels::composed::merge_heads(&kernels::composed::weighted(&dropped, &v)?)?;
        Ok((self.out.forward_t(&y, ctx)?, Some(probs)))
    }
}

impl Attention {
    /// Self-attention over packed tokens `x [1, n, h]` (see [`Packing`]): the projections run
    /// on the real tokens alone, the fused attention on them laid out `[b, t, ·]` with the
    /// padding `mask`.
    pub fn forward_packed(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        packing: &Packing,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let qkv = packing.unpack(&self.project_qkv(x, ctx)?)?;
        let y = self.fused(&qkv, mask, ctx)?;
        self.out.forward_t(&packing.pack(&y)?, ctx)
    }

    /// The one fused op over `qkv [b, t, 3h]`, with attention dropout when training.
    fn fused(&self, qkv: &Tensor, mask: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
        Ok(match ctx.dropout_call(self.attn_dropout) {
            Some(drop) => kernels::self_attention_dropout(qkv, mask, self.n_head, drop)?,
            None => kernels::self_attention(qkv, mask, self.n_head)?,
        })
    }

    /// `[b, t, 3h]`: queries, keys and values side by side.
    fn project_qkv(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        Ok(match &self.qkv {
            Qkv::Fused(lin) => lin.forward_t(x, ctx)?,
            Qkv::Split { q, k, v } => Tensor::cat(
                &[
                    q.forward_t(x, ctx)?,
                    k.forward_t(x, ctx)?,
                    v.forward_t(x, ctx)?,
                ],
                2,
            )?,
        })
    }
}

/// Queries from a decoder, keys and values from an encoder's output (Marian's `encoder_attn`).
#[derive(Clone)]
pub(crate) struct CrossAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub out: Linear,
    pub n_head: usize,
    pub dropout: f64,
}

impl CrossAttention {
    /// The keys and values of the encoder's output `[b, s, h]`, as `[2, b, heads, s, hd]`.
    pub fn keys_values(&self, enc: &Tensor) -> Result<Tensor> {
        let k = composed::split_heads(&self.k.forward(enc)?, self.n_head)?;
        let v = composed::split_heads(&self.v.forward(enc)?, self.n_head)?;
        Ok(Tensor::stack(&[k, v], 0)?)
    }

    /// `x [b, t, h]` attending over `kv` (from [`keys_values`](Self::keys_values)) with the
    /// additive mask `[b, 1, t, s]`. Composed ops with a backward pass, or, while decoding
    /// (`cached`, no probabilities wanted), the decode kernel. Returns the projected output and,
    /// when `want_probs`, the probabilities `[b, heads, t, s]`.
    pub fn forward(
        &self,
        x: &Tensor,
        kv: &Tensor,
        mask: Option<&Tensor>,
        (cached, want_probs): (bool, bool),
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let q = self.q.forward_t(x, ctx)?;
        let s = kv.dim(3)?;
        let no_dropout = !ctx.training || self.dropout <= 0.0;
        if cached && no_dropout && !want_probs {
            let y = kernels::cached_cross_attention(&q, kv, s, mask, self.n_head)?;
            return Ok((self.out.forward_t(&y, ctx)?, None));
        }
        let q = composed::split_heads(&q, self.n_head)?;
        let (k, v) = (kv.get(0)?, kv.get(1)?);
        let probs = composed::attention_probs(&q, &k, mask)?;
        let dropped = ctx.dropout(&probs, self.dropout)?;
        let y = composed::merge_heads(&composed::weighted(&dropped, &v)?)?;
        Ok((self.out.forward_t(&y, ctx)?, want_probs.then_some(probs)))
    }
}
