//! The same maths as the fused kernels, from candle's differentiable primitive ops: slower on
//! CPU, but it runs on every device and dtype. It is what CUDA runs, what `MASSIVETEXT_FUSED=0`
//! forces on CPU, and the reference the fused kernels are tested against.
use candle_core::{D, DType, Result, Tensor, bail};

use super::cross_entropy::IGNORE_INDEX;
use super::gelu::{GELU_C, Gelu, SQRT_2_OVER_PI};

pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let d = x.rank() - 1;
    let mean = x.mean_keepdim(d)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(d)?;
    let xh = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xh.to_dtype(dtype)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, conv1d: bool) -> Result<Tensor> {
    let y = if conv1d {
        x.broadcast_matmul(weight)?
    } else {
        x.broadcast_matmul(&weight.t()?)?
    };
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `[b, t, h]` to `[b, heads, t, h / heads]`.
pub fn split_heads(y: &Tensor, n_head: usize) -> Result<Tensor> {
    let (b, t, h) = y.dims3()?;
    y.reshape((b, t, n_head, h / n_head))?
        .transpose(1, 2)?
        .contiguous()
}

/// `[b, heads, t, hd]` back to `[b, t, heads * hd]`.
pub fn merge_heads(y: &Tensor) -> Result<Tensor> {
    let (b, n_head, t, hd) = y.dims4()?;
    y.transpose(1, 2)?
        .contiguous()?
        .reshape((b, t, n_head * hd))
}

/// `softmax(q kᵀ / sqrt(hd) + mask)` for `q [b, heads, t, hd]`, `k [b, heads, t_k, hd]`.
pub fn attention_probs(q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let hd = q.dim(D::Minus1)?;
    let q = (q * (1.0 / (hd as f64).sqrt()))?;
    let mut scores = q.matmul(&k.t()?)?;
    if let Some(m) = mask {
        // bf16 scores and an f32 mask (autocast): added in f32, as PyTorch promotes
        let dt = super::precision::wider(scores.dtype(), m.dtype());
        scores = scores.to_dtype(dt)?.broadcast_add(&m.to_dtype(dt)?)?;
    }
    super::softmax_last_dim(&scores)
}

/// Attention probabilities times the values, the probabilities cast to the values' dtype
/// (f32 softmax over bf16 values under autocast, as transformers' `.to(value.dtype)`).
pub fn weighted(probs: &Tensor, v: &Tensor) -> Result<Tensor> {
    probs.to_dtype(v.dtype())?.matmul(v)
}

pub fn self_attention(qkv: &Tensor, mask: Option<&Tensor>, n_head: usize) -> Result<Tensor> {
    let h = qkv.dim(2)? / 3;
    let split = |i: usize| split_heads(&qkv.narrow(2, i * h, h)?, n_head);
    let (q, k, v) = (split(0)?, split(1)?, split(2)?);
    merge_heads(&weighted(&attention_probs(&q, &k, mask)?, &v)?)
}

/// [`self_attention`] with `kernels::dropout(probs, p, seed, stream)` between the probabilities
/// and the values (the fused op's reference).
pub fn self_attention_dropout(
    qkv: &Tensor,
    mask: Option<&Tensor>,
    n_head: usize,
    (p, seed, stream): (f64, u64, u64),
) -> Result<Tensor> {
    let h = qkv.dim(2)? / 3;
    let split = |i: usize| split_heads(&qkv.narrow(2, i * h, h)?, n_head);
    let (q, k, v) = (split(0)?, split(1)?, split(2)?);
    let probs = super::dropout(&attention_probs(&q, &k, mask)?, p, seed, stream)?;
    merge_heads(&weighted(&probs, &v)?)
}

/// The keys and values of `qkv [b, t, 3h]` into positions `past..` of `kv [2, b, heads, cap, hd]`.
pub fn kv_cache_write(kv: &Tensor, qkv: &Tensor, n_head: usize, past: usize) -> Result<()> {
    let h = qkv.dim(2)? / 3;
    let k = split_heads(&qkv.narrow(2, h, h)?, n_head)?;
    let v = split_heads(&qkv.narrow(2, 2 * h, h)?, n_head)?;
    kv.slice_set(&Tensor::stack(&[k, v], 0)?, 3, past)
}

/// The keys (`which` 0) or values (1) of the first `len` cached positions, `[b, heads, len, hd]`.
pub fn cached(kv: &Tensor, which: usize, len: usize) -> Result<Tensor> {
    kv.get(which)?.narrow(2, 0, len)
}

/// Attention of the queries of `qkv` over the first `len` positions of the cache.
pub fn cached_attention(
    qkv: &Tensor,
    kv: &Tensor,
    len: usize,
    mask: Option<&Tensor>,
    n_head: usize,
) -> Result<Tensor> {
    let h = qkv.dim(2)? / 3;
    let q = split_heads(&qkv.narrow(2, 0, h)?, n_head)?;
    let (k, v) = (cached(kv, 0, len)?, cached(kv, 1, len)?);
    merge_heads(&weighted(&attention_probs(&q, &k, mask)?, &v)?)
}

/// Attention of the queries `q [b, t, h]` over the first `len` positions of keys and values
/// `kv [2, b, heads, cap, hd]` computed elsewhere (an encoder's, for cross-attention).
pub fn cached_cross_attention(
    q: &Tensor,
    kv: &Tensor,
    len: usize,
    mask: Option<&Tensor>,
    n_head: usize,
) -> Result<Tensor> {
    let q = split_heads(q, n_head)?;
    let (k, v) = (cached(kv, 0, len)?, cached(kv, 1, len)?);
    merge_heads(&weighted(&attention_probs(&q, &k, mask)?, &v)?)
}

pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let d = x.rank() - 1;
    let max = x.max_keepdim(d)?;
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(d)?)
}

pub fn gelu(x: &Tensor, kind: Gelu) -> Result<Tensor> {
    match kind {
        Gelu::Tanh => {
            let inner = ((x + (x.powf(3.0)? * GELU_C as f64)?)? * SQRT_2_OVER_PI as f64)?;
            (x * 0.5)? * (inner.tanh()? + 1.0)?
        }
        Gelu::Erf => x.gelu_erf(),
    }
}

/// SiLU: candle's op, which has its own backward pass on every device.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    x.silu()
}

pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let xh = x.broadcast_div(&(ms + eps)?.sqrt()?)?;
    xh.to_dtype(dtype)?.broadcast_mul(weight)
}

/// `x * cos + rotate_half(x) * sin`, with `cos`, `sin` `[b, t, hd / 2]` used for both halves.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let hd = x.dim(D::Minus1)?;
    let (cos, sin) = (cos.unsqueeze(1)?, sin.unsqueeze(1)?);
    let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
    let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
    let o1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let o2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Tensor::cat(&[o1, o2], D::Minus1)
}

pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

/// Each kv head repeated for the query heads that share it: `[b, kv, t, hd]` to
/// `[b, kv * n_rep, t, hd]`, as transformers' `repeat_kv`.
pub fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, kv, t, hd) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, kv, n_rep, t, hd))?
        .reshape((b, kv * n_rep, t, hd))
}

pub fn gqa_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (heads, kv_heads) = (q.dim(1)?, k.dim(1)?);
    if kv_heads == 0 || heads % kv_heads != 0 {
        bail!("attention: {heads} query heads are not a multiple of {kv_heads} kv heads");
    }
    let n_rep = heads / kv_heads;
    let (k, v) = (repeat_kv(k, n_rep)?, repeat_kv(v, n_rep)?);
    merge_heads(&weighted(
        &attention_probs(q, &k.contiguous()?, mask)?,
        &v.contiguous()?,
    )?)
}

/// Mean cross-entropy of `logits [rows, vocab]` against i64 `labels [rows]`, `-100` left out.
/// Labels are checked and picked on the logits' device: the only value read back is the count
/// of out-of-range labels.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let v = logits.dim(1)?;
    let labels = labels.to_dtype(DType::I64)?;
    let keep = labels.ne(IGNORE_INDEX)?;
    let bad = (labels.ge(v as i64)?.to_dtype(DType::U32)?
        + labels
            .lt(0i64)?
            .to_dtype(DType::U32)?
            .mul(&keep.to_dtype(DType::U32)?)?)?
    .sum_all()?
    .to_scalar::<u32>()?;
    if bad > 0 {
        let host: Vec<i64> = labels.to_vec1()?;
        if let Some(&t) = host
            .iter()
            .find(|&&t| t != IGNORE_INDEX && (t < 0 || t as usize >= v))
        {
            bail!(
                "label {t} is outside the vocabulary (vocab_size {v}); use -100 to ignore a position"
            )
        }
    }
    let idx = keep
        .where_cond(&labels, &labels.zeros_like()?)?
        .to_dtype(DType::U32)?
        .unsqueeze(1)?;
    let keep = keep.to_dtype(DType::F32)?;
    let logits = logits.to_dtype(DType::F32)?;
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
    let logp = shifted.broadcast_sub(&lse)?;
    let picked = logp.gather(&idx, 1)?.squeeze(1)?;
    // all positions ignored: 0 / 0 = NaN, as torch's mean reduction gives
    (picked * &keep)?.sum_all()?.neg()?.div(&keep.sum_all()?)
}
