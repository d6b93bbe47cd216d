//! The shape checks of the Llama family's ops (RMSNorm, RoPE, SwiGLU, grouped-query attention),
//! run before either path so that the fused kernel and its composed twin refuse the same inputs
//! with the same message, naming the shapes and what was expected.
use candle_core::{Result, Tensor, bail};

pub(super) fn rms_norm(x: &Tensor, weight: &Tensor) -> Result<()> {
    let d = x.dims().last().copied();
    if x.rank() == 0 || weight.dims() != [d.unwrap_or(0)] {
        bail!(
            "rms_norm: x {:?} and weight {:?}: expected x [.., d] and weight [d]",
            x.dims(),
            weight.dims()
        );
    }
    Ok(())
}

pub(super) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<()> {
    let ok = match x.dims() {
        &[b, _, t, hd] => {
            let cb = cos.dims().first().copied().unwrap_or(0);
            hd % 2 == 0
                && cos.dims() == sin.dims()
                && cos.dims() == [cb, t, hd / 2]
                && (cb == b || cb == 1)
        }
        _ => false,
    };
    if !ok {
        bail!(
            "rope: x {:?}, cos {:?}, sin {:?}: expected x [b, heads, t, hd] with hd even and \
             cos, sin [b, t, hd / 2] (or [1, t, hd / 2] for every sequence)",
            x.dims(),
            cos.dims(),
            sin.dims()
        );
    }
    Ok(())
}

pub(super) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<()> {
    if gate.dims() != up.dims() {
        bail!(
            "swiglu: gate {:?} and up {:?} must have the same shape",
            gate.dims(),
            up.dims()
        );
    }
    Ok(())
}

pub(super) fn gqa_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<()> {
    let fits = match (q.dims(), k.dims()) {
        (&[b, heads, _, hd], &[kb, kv, _, khd]) => {
            kb == b && khd == hd && kv > 0 && heads % kv == 0 && v.dims() == k.dims()
        }
        _ => false,
    };
    if !fits {
        bail!(
            "gqa_attention: q {:?}, k {:?}, v {:?}: expected q [b, heads, t, hd] and k, v \
             [b, kv_heads, t_k, hd] with heads a multiple of kv_heads",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if let Some(m) = mask {
        let (b, t, tk) = (q.dims()[0], q.dims()[2], k.dims()[2]);
        let ok =
            matches!(m.dims(), &[mb, 1, mt, mk] if (mb == b || mb == 1) && mt == t && mk == tk);
        if !ok {
            bail!(
                "gqa_attention: mask {:?} for q {:?} and k {:?}: expected [{b}, 1, {t}, {tk}]",
                m.dims(),
                q.dims(),
                k.dims()
            );
        }
    }
    Ok(())
}

/// `kv [2, b, kv_heads, capacity, hd]` and `k`, `v` `[b, kv_heads, t, hd]` written at `past`.
pub(super) fn gqa_cache(kv: &Tensor, k: &Tensor, v: &Tensor, past: usize) -> Result<()> {
    let ok = match (kv.dims(), k.dims()) {
        (&[2, b, kvh, cap, hd], &[kb, kkv, t, khd]) => {
            (kb, kkv, khd) == (b, kvh, hd) && v.dims() == k.dims() && past + t <= cap
        }
        _ => false,
    };
    if !ok {
        bail!(
            "gqa_kv_cache_write: k {:?} and v {:?} at position {past} do not fit the cache {:?}: \
             expected k, v [b, kv_heads, t, hd] and a cache [2, b, kv_heads, capacity, hd] with \
             past + t <= capacity",
            k.dims(),
            v.dims(),
            kv.dims()
        );
    }
    Ok(())
}

/// `q [b, heads, t, hd]` over the first `len` positions of `kv [2, b, kv_heads, capacity, hd]`.
pub(super) fn gqa_cached(q: &Tensor, kv: &Tensor, len: usize) -> Result<()> {
    let ok = match kv.dims() {
        &[2, _, _, cap, _] => len <= cap && q.rank() == 4,
        _ => false,
    };
    if !ok {
        bail!(
            "gqa_cached_attention: q {:?} over {len} positions of the cache {:?}: expected q \
             [b, heads, t, hd] and a cache [2, b, kv_heads, capacity, hd] with len <= capacity",
            q.dims(),
            kv.dims()
        );
    }
    Ok(())
}
