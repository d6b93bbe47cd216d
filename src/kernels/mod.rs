//! The numerical kernels under every model: dense layer, self-attention, LayerNorm, softmax,
//! GELU, cross-entropy, dropout masks and the AdamW update, and the Llama family's RMSNorm,
//! RoPE, SwiGLU and grouped-query attention. Knows nothing of models.
//!
//! Each op has two implementations, chosen here and only here:
//! - a **fused** CPU kernel (f32) with its own backward pass, written on `gemm` and vectorised
//!   row loops (`linear` and its LoRA form `lora`, `attention`, `norm`, `softmax`, `gelu`,
//!   `cross_entropy`, `adamw`, `rms_norm`, `rope`, `swiglu`, `gqa`); the Llama ops' shapes are
//!   checked first (`checks`), so both paths refuse the same inputs with the same message;
//! - its **composed** twin ([`composed`]) from candle's differentiable ops, which runs on every
//!   device and dtype; the CPU runs it when `MASSIVETEXT_FUSED=0` is set (or inside
//!   [`with_fused`]`(false, ..)`), which is how the tests hold the fused kernels to it;
//! - with the `cuda` feature, a **CUDA** twin for the ops that dominate a GPU step besides the
//!   matrix products (LayerNorm, softmax, the activations, cross-entropy, AdamW; `cuda.rs`, f32):
//!   the same candle op as the CPU kernel with a `cuda_fwd`, so backward passes are shared;
//!   attention's is its own pair of ops ([`flash`]: the GPU recomputes the probabilities in the
//!   backward pass where the CPU keeps them). Other ops, and other dtypes, run composed on the
//!   GPU (matrix products are cuBLAS's).
//!
//! Mixed precision ([`with_autocast`], as `torch.autocast(bfloat16)`): matrix products in
//! bf16 on the composed path, over f32 weights cast where used; norms, softmax and
//! cross-entropy widen to f32 and run their f32 kernel (fused on the CPU), the activations and
//! RoPE compute in f32 and round once; residual additions promote ([`precision`]).
//!
//! Models call only the functions of this module, as candle-transformers calls candle-nn.
//!
//! ```
//! use massivetext::kernels;
//! use candle_core::{Device, Tensor};
//! let x = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu)?;
//! let fused = kernels::softmax_last_dim(&x)?;
//! let composed = kernels::with_fused(false, || kernels::softmax_last_dim(&x))?;
//! let d = (fused - composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(d < 1e-6);
//! # Ok::<(), candle_core::Error>(())
//! ```
mod adamw;
mod attention;
mod checks;
pub mod composed;
mod cpu;
mod cross_entropy;
#[cfg(feature = "cuda")]
mod cuda;
mod decode;
mod dropout;
#[cfg(feature = "cuda")]
mod flash;
mod gelu;
mod gemm;
mod gemv;
mod gemv_tiles;
mod gqa;
mod linear;
mod linear_bf16;
mod lora;
mod malloc;
mod norm;
pub mod precision;
mod q4_1;
mod q8_0;
mod quant_rows;
mod reduce;
mod rms_norm;
mod rope;
mod rows;
mod softmax;
mod strided;
mod swiglu;
mod view;
pub(crate) mod vmath;

use std::cell::Cell;
use std::sync::OnceLock;

use candle_core::{D, DType, Result, Tensor, Var, bail};

pub use precision::{autocast, with_autocast};
use precision::{cast, is_half, needs_f32, statistics_out, widen, wider};
pub use rows::{RowMap, embedding, pack_rows, unpack_rows};

pub use adamw::AdamWStep;
pub use cross_entropy::IGNORE_INDEX;
pub(crate) use cross_entropy::check_label;
pub use dropout::dropout_mask;
pub use gelu::Gelu;
pub(crate) use q4_1::q4_1_linear;
pub(crate) use q8_0::q8_0_linear;

thread_local! {
    static FUSED_OVERRIDE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the fused CPU kernels may run: not when the environment says `MASSIVETEXT_FUSED=0`
/// (read once per process), unless [`with_fused`] decides for the current thread.
pub fn fused_enabled() -> bool {
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    FUSED_OVERRIDE.with(|o| o.get()).unwrap_or_else(|| {
        *FROM_ENV.get_or_init(|| {
            !matches!(
                std::env::var("MASSIVETEXT_FUSED").as_deref(),
                Ok("0") | Ok("false") | Ok("off")
            )
        })
    })
}

/// Runs `f` with the fused kernels on (`true`) or off (`false`) for this thread, whatever the
/// environment says: the tests run both paths in one process this way.
pub fn with_fused<T>(enabled: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FUSED_OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(FUSED_OVERRIDE.with(|o| o.replace(Some(enabled))));
    f()
}

/// Every op first checks that this is the process's only copy of the crate
/// ([`crate::single_copy`]): a second copy's tensors would get wrong gradients.
fn one_copy() -> Result<()> {
    crate::single_copy::check().map_err(|m| candle_core::Error::Msg(m.to_string()))
}

/// Hands the freed buffers the allocator keeps for reuse ([`malloc`]) back to the system: for
/// the end of a training run, after which no step will reuse them.
pub(crate) fn release_freed_buffers() {
    malloc::release_freed_buffers();
}

/// A trainable copy of the weight `t` (what `Var::from_tensor` makes). A large f32 weight on the
/// CPU is copied into memory backed with huge pages where the system grants them
/// ([`malloc::on_huge_pages`]): every decoding step streams all the weights once.
pub(crate) fn weight_var(t: &Tensor) -> Result<candle_core::Var> {
    // (a variable is shared, as `Var::from_tensor` does)
    if !use_fused(t) || t.is_variable() {
        return candle_core::Var::from_tensor(t);
    }
    let copy = {
        let (storage, layout) = t.storage_and_layout();
        let src = match &*storage {
            candle_core::Storage::Cpu(s) => cpu::slice(s, layout, "weight").ok(),
            _ => None,
        };
        src.map(|src| {
            let mut data: Vec<f32> = Vec::with_capacity(src.len());
            let bytes = std::mem::size_of_val(src);
            malloc::on_huge_pages(data.as_ptr().cast(), bytes, || data.extend_from_slice(src));
            data
        })
    };
    match copy {
        Some(data) => candle_core::Var::from_vec(data, t.shape(), t.device()),
        None => candle_core::Var::from_tensor(t),
    }
}

/// Whether `x` takes the fused path: f32 on the CPU, fused kernels enabled. The first call also
/// tunes the allocator once ([`malloc`]), since every op allocates its output afresh.
pub(crate) fn use_fused(x: &Tensor) -> bool {
    crate::threads::init();
    malloc::keep_freed_buffers();
    x.device().is_cpu() && x.dtype() == DType::F32 && fused_enabled()
}

/// Whether `x` takes an op's own kernel on whichever device has one: the CPU's (see
/// [`use_fused`]) or, built with the `cuda` feature, the GPU's twin (f32; kernels/cuda). Only
/// the ops with a CUDA twin ask this: LayerNorm, RMSNorm, softmax, the activations, SwiGLU,
/// cross-entropy, AdamW.
pub(crate) fn use_own_kernel(x: &Tensor) -> bool {
    use_fused(x)
        || (cfg!(feature = "cuda")
            && x.device().is_cuda()
            && x.dtype() == DType::F32
            && fused_enabled())
}

/// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * weight + bias`, biased
/// variance as in PyTorch.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    one_copy()?;
    if needs_f32(x) {
        let y = with_autocast(None, || {
            layer_norm(&widen(x)?, &widen(weight)?, &widen(bias)?, eps)
        })?;
        return cast(&y, statistics_out(x));
    }
    if use_own_kernel(x) && use_own_kernel(weight) && use_own_kernel(bias) {
        norm::layer_norm(x, weight, bias, eps)
    } else {
        composed::layer_norm(x, weight, bias, eps)
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    one_copy()?;
    if needs_f32(x) {
        let y = with_autocast(None, || softmax_last_dim(&widen(x)?))?;
        return cast(&y, statistics_out(x));
    }
    if use_own_kernel(x) {
        softmax::softmax_last_dim(x)
    } else {
        composed::softmax_last_dim(x)
    }
}

/// A dense layer over `x [.., in]`: `x Wᵀ + b` for `nn.Linear` (`W [out, in]`), `x W + b`
/// for GPT-2's `Conv1D` (`conv1d`, `W [in, out]`).
///
/// A bf16 weight with f32 inputs (a model with bf16 weights, see
/// `AutoModelForCausalLM::with_weight_dtype`) is multiplied in f32: straight from its bf16
/// bits for the few rows of a decoding step on the CPU, else widened to f32 first.
///
/// Under autocast the input, the (f32) weight and the bias are cast to bf16 and the product
/// is bf16; the weight's gradient comes back through the cast in f32 ([`precision`]). On the
/// CPU the bf16 operands are multiplied by the fused f32 kernel and the result rounded once,
/// as a bf16 gemm with f32 accumulation and its bias in the epilogue (oneDNN's, cuBLASLt's);
/// elsewhere candle's bf16 product and a bf16 bias add (two roundings).
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, conv1d: bool) -> Result<Tensor> {
    one_copy()?;
    if let Some(dt) = autocast() {
        let bias = bias.map(|b| cast(b, dt)).transpose()?;
        let (x, weight) = (cast(x, dt)?, cast(weight, dt)?);
        if x.device().is_cpu() && fused_enabled() {
            let (x32, w32) = (widen(&x)?, widen(&weight)?);
            let b32 = bias.as_ref().map(widen).transpose()?;
            let y = with_autocast(None, || linear(&x32, &w32, b32.as_ref(), conv1d))?;
            return y.to_dtype(dt);
        }
        return composed::linear(&x, &weight, bias.as_ref(), conv1d);
    }
    if weight.dtype() == DType::BF16 && x.dtype() == DType::F32 {
        if use_fused(x)
            && weight.device().is_cpu()
            && bias.is_none_or(use_fused)
            && linear_bf16::applies(x)
        {
            return linear_bf16::linear_bf16(x, weight, bias, conv1d);
        }
        return linear(x, &weight.to_dtype(DType::F32)?, bias, conv1d);
    }
    if use_fused(x) && use_fused(weight) && bias.is_none_or(use_fused) {
        linear::linear(x, weight, bias, conv1d)
    } else {
        composed::linear(x, weight, bias, conv1d)
    }
}

/// A dense layer plus its LoRA adapter: `linear(x, weight, bias) + linear(h, lora_b)`, where
/// `h [.., r]` is the adapter's scaled middle (`scale · x Aᵀ`) and `lora_b [out, r]`. With the
/// base weight and bias frozen, the fused path is one op that keeps only the sum for the
/// backward pass ([`lora`]); otherwise the two products are added.
pub fn lora_linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    conv1d: bool,
    h: &Tensor,
    lora_b: &Tensor,
) -> Result<Tensor> {
    one_copy()?;
    let frozen = !weight.track_op() && bias.is_none_or(|b| !b.track_op());
    if frozen
        && autocast().is_none()
        && use_fused(x)
        && use_fused(weight)
        && bias.is_none_or(use_fused)
        && use_fused(h)
        && use_fused(lora_b)
    {
        return lora::lora_linear(x, weight, bias, conv1d, h, lora_b);
    }
    linear(x, weight, bias, conv1d)? + linear(h, lora_b, None, false)?
}

/// Multi-head self-attention from the packed projections `qkv [b, t, 3h]` (queries, keys,
/// values side by side) to the merged heads `[b, t, h]`, with an optional additive mask
/// `[b, 1, t, t]`.
pub fn self_attention(qkv: &Tensor, mask: Option<&Tensor>, n_head: usize) -> Result<Tensor> {
    one_copy()?;
    if let Some(dt) = autocast() {
        return composed::self_attention(&cast(qkv, dt)?, mask, n_head);
    }
    if use_fused(qkv) && mask.is_none_or(use_fused) {
        return attention::self_attention(qkv, mask, n_head, None);
    }
    #[cfg(feature = "cuda")]
    {
        let (b, t, h3) = qkv.dims3()?;
        let hd = h3 / 3 / n_head.max(1);
        if flash::applies(qkv, mask, (b, n_head, hd, t)) {
            return flash::self_attention(qkv, mask, n_head);
        }
    }
    composed::self_attention(qkv, mask, n_head)
}

/// [`self_attention`] with inverted dropout of probability `p` on the attention probabilities,
/// the mask of [`dropout`] for `(seed, stream)`: one fused op on the CPU (the mask regenerated in
/// the backward pass), the composed ops elsewhere.
pub fn self_attention_dropout(
    qkv: &Tensor,
    mask: Option<&Tensor>,
    n_head: usize,
    (p, seed, stream): (f64, u64, u64),
) -> Result<Tensor> {
    one_copy()?;
    if autocast().is_none() && use_fused(qkv) && mask.is_none_or(use_fused) && p > 0.0 && p < 1.0 {
        let drop = attention::ProbsDropout::new(p, seed, stream);
        return attention::self_attention(qkv, mask, n_head, Some(drop));
    }
    let qkv = match autocast() {
        Some(dt) => cast(qkv, dt)?,
        None => qkv.clone(),
    };
    composed::self_attention_dropout(&qkv, mask, n_head, (p, seed, stream))
}

/// A layer's KV cache of zeros, shaped `shape`, of `like`'s dtype and device. On the fused path
/// its pages are written now, on the pool: `Tensor::zeros` takes fresh memory the system maps
/// page by page at first write, which happened inside the decoding steps' serial cache writes
/// (a fault every 16 positions of every head and row), or zeroes reused memory on one thread;
/// and in huge pages where the system grants them, since every step reads across the whole
/// filled cache (`malloc::on_huge_pages`).
pub fn kv_cache_zeros(shape: impl Into<candle_core::Shape>, like: &Tensor) -> Result<Tensor> {
    let shape = shape.into();
    if use_fused(like) {
        Tensor::from_vec(
            cpu::zeros_on_huge_pages(shape.elem_count()),
            shape,
            like.device(),
        )
    } else {
        Tensor::zeros(shape, like.dtype(), like.device())
    }
}

/// Writes the keys and values of `qkv [b, t, 3h]` into positions `past..past + t` of a layer's
/// KV cache `kv [2, b, heads, capacity, hd]` (keys, then values), in place.
pub fn kv_cache_write(kv: &Tensor, qkv: &Tensor, n_head: usize, past: usize) -> Result<()> {
    one_copy()?;
    if use_fused(kv) && use_fused(qkv) {
        decode::cache_write(kv, qkv, n_head, past)
    } else {
        composed::kv_cache_write(kv, qkv, n_head, past)
    }
}

/// Beam search: row `i` of a layer's KV cache `kv [2, b, heads, capacity, hd]` becomes old row
/// `rows[i]` (`rows` has `b` entries) over its first `len` positions, where row `i` already
/// holds old row `rows[i]`'s keys and values before position `from[i]`. Returns the cache to
/// use from now on: the same buffer, reordered in place (copying positions `from[i]..len` of
/// the rows that move), on the fused path; a reordered copy elsewhere.
pub fn kv_cache_reorder(kv: &Tensor, rows: &[u32], from: &[usize], len: usize) -> Result<Tensor> {
    one_copy()?;
    if use_fused(kv) && kv.is_contiguous() {
        decode::cache_reorder(kv, rows, from, len)?;
        Ok(kv.clone())
    } else {
        let idx = Tensor::from_slice(rows, rows.len(), kv.device())?;
        kv.index_select(&idx, 1)
    }
}

/// Attention of the queries of `qkv [b, t, 3h]` over the first `len` positions of the KV cache
/// `kv [2, b, heads, capacity, hd]`, with an optional additive mask `[b, 1, t, len]`; returns the
/// merged heads `[b, t, h]`. Inference only (no backward).
pub fn cached_attention(
    qkv: &Tensor,
    kv: &Tensor,
    len: usize,
    mask: Option<&Tensor>,
    n_head: usize,
) -> Result<Tensor> {
    one_copy()?;
    if use_fused(kv) && use_fused(qkv) && mask.is_none_or(use_fused) {
        decode::cached_attention(qkv, kv, len, mask, n_head)
    } else {
        composed::cached_attention(qkv, kv, len, mask, n_head)
    }
}

/// Attention of the queries `q [b, t, h]` over the first `len` positions of keys and values
/// computed elsewhere, `kv [2, b, heads, capacity, hd]` (an encoder's keys and values, for an
/// encoder–decoder's cross-attention while decoding), with an optional additive mask
/// `[b, 1, t, len]`; returns the merged heads `[b, t, h]`. Inference only (no backward).
pub fn cached_cross_attention(
    q: &Tensor,
    kv: &Tensor,
    len: usize,
    mask: Option<&Tensor>,
    n_head: usize,
) -> Result<Tensor> {
    one_copy()?;
    if use_fused(kv) && use_fused(q) && mask.is_none_or(use_fused) {
        decode::cached_cross_attention(q, kv, len, mask, n_head)
    } else {
        composed::cached_cross_attention(q, kv, len, mask, n_head)
    }
}

/// SiLU (`swish`): `x sigmoid(x)`, element-wise, with its backward pass.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    one_copy()?;
    if is_half(x.dtype()) {
        return with_autocast(None, || silu(&widen(x)?))?.to_dtype(x.dtype());
    }
    if use_own_kernel(x) {
        gelu::silu(x)
    } else {
        composed::silu(x)
    }
}

/// RMSNorm over the last dimension, as transformers' `LlamaRMSNorm`: `x / sqrt(mean(x²) + eps)`
/// computed in f32, cast back to `x`'s dtype, then times `weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    one_copy()?;
    checks::rms_norm(x, weight)?;
    if needs_f32(x) {
        let y = with_autocast(None, || rms_norm(&widen(x)?, &widen(weight)?, eps))?;
        return cast(&y, statistics_out(x));
    }
    if use_own_kernel(x) && use_own_kernel(weight) {
        rms_norm::rms_norm(x, weight, eps)
    } else {
        composed::rms_norm(x, weight, eps)
    }
}

/// Rotary position embedding in transformers' Llama convention (rotate half: the first and the
/// second half of each head are the pair, not neighbours): `x [b, heads, t, hd]`, `cos` and
/// `sin` `[b, t, hd / 2]` (one row of angles per sequence, so left-padded rows get their own
/// positions).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    one_copy()?;
    checks::rope(x, cos, sin)?;
    if is_half(x.dtype()) {
        let y = with_autocast(None, || rope(&widen(x)?, &widen(cos)?, &widen(sin)?))?;
        return y.to_dtype(x.dtype());
    }
    if use_fused(x) && use_fused(cos) && use_fused(sin) {
        rope::rope(x, cos, sin)
    } else {
        composed::rope(x, cos, sin)
    }
}

/// SwiGLU, the gate of Llama's MLP: `silu(gate) * up`, element-wise.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    one_copy()?;
    checks::swiglu(gate, up)?;
    if is_half(gate.dtype()) || is_half(up.dtype()) {
        let dt = wider(gate.dtype(), up.dtype());
        let y = with_autocast(None, || swiglu(&widen(gate)?, &widen(up)?))?;
        return cast(&y, dt);
    }
    if use_own_kernel(gate) && use_own_kernel(up) {
        swiglu::swiglu(gate, up)
    } else {
        composed::swiglu(gate, up)
    }
}

/// Grouped-query attention: queries `q [b, heads, t, hd]` over keys and values
/// `k`, `v [b, kv_heads, t_k, hd]` (`heads` a multiple of `kv_heads`; query head `i` reads kv
/// head `i / (heads / kv_heads)`), an optional additive mask `[b, 1, t, t_k]` (causal, padding,
/// sliding window); returns the merged heads `[b, t, heads * hd]`.
pub fn gqa_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    one_copy()?;
    checks::gqa_attention(q, k, v, mask)?;
    if let Some(dt) = autocast() {
        return composed::gqa_attention(&cast(q, dt)?, &cast(k, dt)?, &cast(v, dt)?, mask);
    }
    if use_fused(q) && use_fused(k) && use_fused(v) && mask.is_none_or(use_fused) {
        return gqa::gqa_attention(q, k, v, mask);
    }
    #[cfg(feature = "cuda")]
    {
        let (b, heads, _, hd) = q.dims4()?;
        let same = |x: &Tensor| x.dtype() == q.dtype() && x.device().same_device(q.device());
        if same(k) && same(v) && flash::applies(q, mask, (b, heads, hd, k.dim(2)?)) {
            return flash::gqa_attention(q, k, v, mask);
        }
    }
    composed::gqa_attention(q, k, v, mask)
}

/// Writes the keys and values `k`, `v` `[b, kv_heads, t, hd]` of `t` new positions into
/// positions `past..past + t` of a layer's grouped-query KV cache `kv [2, b, kv_heads,
/// capacity, hd]` (keys, then values), in place: the cache holds the kv heads only, not one
/// copy per query head. Read it back with [`gqa_cached_attention`].
pub fn gqa_kv_cache_write(kv: &Tensor, k: &Tensor, v: &Tensor, past: usize) -> Result<()> {
    one_copy()?;
    checks::gqa_cache(kv, k, v, past)?;
    kv.slice_set(&Tensor::stack(&[k, v], 0)?.contiguous()?, 3, past)
}

/// Attention of new queries `q [b, heads, t, hd]` over the first `len` positions of a
/// grouped-query KV cache `kv [2, b, kv_heads, capacity, hd]` (written by
/// [`gqa_kv_cache_write`]), with an optional additive mask `[b, 1, t, len]`: the same result as
/// [`gqa_attention`] over those keys and values, `[b, t, heads * hd]`, for a decoding step.
/// Inference only (no backward pass); the fused path reads the cache in place.
pub fn gqa_cached_attention(
    q: &Tensor,
    kv: &Tensor,
    len: usize,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    one_copy()?;
    checks::gqa_cached(q, kv, len)?;
    let (k, v) = (composed::cached(kv, 0, len)?, composed::cached(kv, 1, len)?);
    checks::gqa_attention(q, &k, &v, mask)?;
    if use_fused(q) && use_fused(kv) && mask.is_none_or(use_fused) {
        gqa::gqa_attention_inference(q, &k, &v, mask)
    } else {
        Ok(composed::gqa_attention(q, &k, &v, mask)?.detach())
    }
}

/// A residual connection `x + y` in the wider of the two dtypes, as PyTorch's type promotion:
/// under autocast the residual stream `x` stays f32 while a block's output `y` arrives in bf16.
pub fn residual(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    one_copy()?;
    let dt = wider(x.dtype(), y.dtype());
    cast(x, dt)? + cast(y, dt)?
}

/// ReLU: `max(x, 0)`, element-wise.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    one_copy()?;
    x.relu()
}

/// GELU of either kind, element-wise.
pub fn gelu(x: &Tensor, kind: Gelu) -> Result<Tensor> {
    one_copy()?;
    if is_half(x.dtype()) {
        return with_autocast(None, || gelu(&widen(x)?, kind))?.to_dtype(x.dtype());
    }
    if use_own_kernel(x) {
        gelu::gelu(x, kind)
    } else {
        composed::gelu(x, kind)
    }
}

/// Mean cross-entropy of `logits [.., vocab]` (every leading position a row) against one label
/// per row (integer, any shape), leaving out positions labelled [`IGNORE_INDEX`] (-100), as
/// `torch.nn.functional.cross_entropy` does. All positions ignored gives NaN, as torch does.
/// Half-precision logits are widened first: the loss is f32.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    one_copy()?;
    let logits = &widen(logits)?;
    let labels = labels.to_dtype(DType::I64)?.flatten_all()?.contiguous()?;
    let v = logits.dim(D::Minus1)?;
    let rows = logits.elem_count() / v.max(1);
    if labels.elem_count() != rows {
        bail!(
            "cross_entropy: {} labels for {rows} rows of logits {:?}",
            labels.elem_count(),
            logits.dims()
        );
    }
    if use_own_kernel(logits) {
        cross_entropy::cross_entropy(&logits.contiguous()?, &labels)
    } else {
        composed::cross_entropy(&logits.reshape((rows, v))?, &labels)
    }
}

/// Inverted dropout, as `torch.nn.Dropout` in training mode: `x * mask / (1 - p)`, the mask
/// from [`dropout_mask`] (the same on every device and path for the same `seed` and `stream`).
pub fn dropout(x: &Tensor, p: f64, seed: u64, stream: u64) -> Result<Tensor> {
    one_copy()?;
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return x.zeros_like();
    }
    let mask = dropout_mask(x.dims(), p, seed, stream, x.device())?;
    let scale = 1.0 / (1.0 - p);
    x.mul(&(mask.to_dtype(x.dtype())? * scale)?)
}

/// One AdamW update of `weight` from its gradient: `moments` (`[2, n]` f32 on the weight's
/// device: first moments, then second) and the weight are updated in place on CPU, or replaced
/// by the composed ops' results elsewhere.
pub fn adamw_step(
    step: &AdamWStep,
    weight: &Var,
    grad: &Tensor,
    moments: &mut Tensor,
) -> Result<()> {
    adamw_step_scaled(step, weight, grad, 1.0, moments)
}

/// [`adamw_step`] from the gradient times `grad_scale` (the coefficient of a gradient clipping,
/// `Grads::clip_coef`): the same bits as scaling the gradient first, without a pass of its own on
/// the CPU.
pub fn adamw_step_scaled(
    step: &AdamWStep,
    weight: &Var,
    grad: &Tensor,
    grad_scale: f32,
    moments: &mut Tensor,
) -> Result<()> {
    one_copy()?;
    let w = weight.as_tensor();
    if use_fused(w) && use_fused(grad) && use_fused(moments) {
        return adamw::fused(step, w, grad, grad_scale, moments);
    }
    let scaled;
    let grad = if grad_scale != 1.0 {
        scaled = grad.affine(grad_scale as f64, 0.0)?;
        &scaled
    } else {
        grad
    };
    if use_own_kernel(w) && use_own_kernel(grad) && use_own_kernel(moments) {
        adamw::fused(step, w, grad, 1.0, moments)
    } else {
        let (new_w, new_m) = adamw::composed(step, w, grad, moments)?;
        weight.set(&new_w)?;
        *moments = new_m;
        Ok(())
    }
}

/// The sum of squares of `x`'s elements as an f32 scalar tensor on `x`'s device (accumulated in
/// f64 on the fused path), for global gradient norms without a copy to the host per parameter.
pub fn sum_squares(x: &Tensor) -> Result<Tensor> {
    one_copy()?;
    if use_fused(x) {
        reduce::sum_squares(x)
    } else {
        x.to_dtype(DType::F32)?.sqr()?.sum_all()
    }
}
