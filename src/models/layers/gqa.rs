//! Grouped-query self-attention with rotary positions (Llama, Qwen2, Mistral): `heads` query
//! heads over `kv_heads` key/value heads, query head `i` reading kv head
//! `i / (heads / kv_heads)`. Its KV cache holds only the `kv_heads` (the memory GQA saves), in
//! the same `[2, b, kv_heads, capacity, head_dim]` buffer as the other caches, so `KvCache`'s
//! reorder and capacity work unchanged.
use candle_core::Tensor;

use super::{CacheSlot, Ctx, Linear};
use crate::Result;
use crate::kernels::{self, composed};

#[derive(Clone)]
pub(crate) struct GqaAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub heads: usize,
    pub kv_heads: usize,
    pub dropout: f64,
}

impl GqaAttention {
    /// `x [b, t, hidden]`, the rotary `cos`/`sin` `[b, t, head_dim / 2]` of its positions, the
    /// additive mask `[b, 1, t, t_k]`. Returns the projected output and, when `want_probs`, the
    /// probabilities `[b, heads, t, t_k]`, one map per query head (head `i` shares the keys of
    /// kv head `i / (heads / kv_heads)`).
    ///
    /// Without returned probabilities or attention dropout, [`kernels::gqa_attention`] runs
    /// (over the cache when there is one); otherwise the composed steps, which expose the
    /// probabilities.
    pub fn forward(
        &self,
        x: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        cache: Option<CacheSlot<'_>>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let q = composed::split_heads(&self.q.forward_t(x, ctx)?, self.heads)?;
        let k = composed::split_heads(&self.k.forward_t(x, ctx)?, self.kv_heads)?;
        let v = composed::split_heads(&self.v.forward_t(x, ctx)?, self.kv_heads)?;
        let q = kernels::rope(&q, cos, sin)?;
        let k = kernels::rope(&k, cos, sin)?;
        let (k, v) = match cache {
            None => (k, v),
            Some(mut slot) => {
                let t = k.dim(2)?;
                let kv = slot.buffer(k.dims4()?, &k)?;
                kv.slice_set(&Tensor::stack(&[&k, &v], 0)?, 3, slot.past)?;
                let len = slot.past + t;
                (
                    composed::cached(&kv, 0, len)?,
                    composed::cached(&kv, 1, len)?,
                )
            }
        };
        let no_dropout = !ctx.training || self.dropout <= 0.0;
        if !want_probs && no_dropout {
            let y = kernels::gqa_attention(&q, &k, &v, mask)?;
            return Ok((self.o.forward_t(&y, ctx)?, None));
        }
        let n_rep = self.heads / self.kv_heads;
        let k = composed::repeat_kv(&k, n_rep)?.contiguous()?;
        let v = composed::repeat_kv(&v, n_rep)?.contiguous()?;
        let probs = composed::attention_probs(&q, &k, mask)?;
        let dropped = ctx.dropout(&probs, self.dropout)?;
        let y = composed::merge_heads(&composed::weighted(&dropped, &v)?)?;
        Ok((self.o.forward_t(&y, ctx)?, want_probs.then_some(probs)))
    }
}
