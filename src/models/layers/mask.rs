//! What goes into a model checked once, and the masks attention applies: the vocabulary check,
//! `input_ids` read as u32, the causal / sliding-window / padding mask and the cross-attention
//! mask.
use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// The one vocabulary check (the model's inputs, the Trainer's and the Evaluator's data): an id
/// at or above `vocab_size` is an error naming both.
pub fn check_token_id(max_id: u32, vocab_size: usize) -> Result<()> {
    if max_id as usize >= vocab_size {
        return Err(Error::TokenOutOfVocab {
            id: max_id,
            vocab_size,
        });
    }
    Ok(())
}

/// Checks `input_ids` is an integer `[batch, seq]` tensor and returns it as u32 on `device`.
pub(crate) fn read_ids(input_ids: &Tensor, device: &Device) -> Result<(Tensor, (usize, usize))> {
    let (b, t) = input_ids.dims2().map_err(|_| {
        Error::InvalidArgument(format!(
            "input_ids must be [batch, seq], got shape {:?}",
            input_ids.dims()
        ))
    })?;
    if b == 0 || t == 0 {
        return Err(Error::InvalidArgument(format!(
            "input_ids is empty (shape [{b}, {t}])"
        )));
    }
    let ids = match input_ids.dtype() {
        DType::U32 | DType::U8 => input_ids.to_dtype(DType::U32)?,
        DType::I64 => {
            let min = input_ids.min_all()?.to_scalar::<i64>()?;
            let max = input_ids.max_all()?.to_scalar::<i64>()?;
            if min < 0 || max > u32::MAX as i64 {
                let bad = if min < 0 { min } else { max };
                return Err(Error::InvalidArgument(format!(
                    "input_ids holds {bad}, which is not a token id"
                )));
            }
            input_ids.to_dtype(DType::U32)?
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "input_ids must be u32 or i64, got {other:?}"
            )));
        }
    };
    Ok((ids.to_device(device)?, (b, t)))
}

/// The additive mask `[b, 1, t, past + t]` on `device`: 0 where a query may attend, `f32::MIN`
/// where not (a future key, or padding), applied once as transformers' eager attention does (so
/// fully masked rows match too). Built with tensor ops; the one value read back says whether the
/// attention mask has any padding at all (none and not causal: no mask).
pub(crate) fn build_mask(
    attention_mask: Option<&Tensor>,
    causal: bool,
    (b, t): (usize, usize),
    past: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    let window = if causal { Window::Causal } else { Window::None };
    build_windowed_mask(attention_mask, window, (b, t), past, device)
}

/// Which keys a query at position `q` (counted over cached + new tokens) may see besides
/// padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Window {
    /// Every key (an encoder).
    None,
    /// Keys `k <= q`.
    Causal,
    /// Keys `q - w < k <= q`: Mistral's `sliding_window` (transformers'
    /// `sliding_window_overlay` on the causal mask).
    Sliding(usize),
}

/// [`build_mask`] for any [`Window`]: with a sliding window, a single new token (a decoding
/// step) is masked too once the cache holds more than the window.
pub(crate) fn build_windowed_mask(
    attention_mask: Option<&Tensor>,
    window: Window,
    (b, t): (usize, usize),
    past: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    let tk = past + t;
    let padding = match attention_mask {
        None => None,
        Some(m) => {
            let (mb, mt) = m.dims2().map_err(|_| {
                Error::InvalidArgument(format!(
                    "attention_mask must be [batch, seq], got shape {:?}",
                    m.dims()
                ))
            })?;
            if mb != b || mt != tk {
                return Err(Error::InvalidArgument(format!(
                    "attention_mask has shape [{mb}, {mt}], expected [{b}, {tk}] (batch, cached + new tokens)"
                )));
            }
            let keep = m.to_device(device)?.to_dtype(DType::F32)?.ne(0f32)?;
            let padded =
                (keep.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as usize) < b * tk;
            padded.then(|| keep.reshape((b, 1, 1, tk))).transpose()?
        }
    };
    let causal = match window {
        Window::Causal if t > 1 => {
            let q = Tensor::arange(past as u32, tk as u32, device)?.reshape((t, 1))?;
            let k = Tensor::arange(0u32, tk as u32, device)?.reshape((1, tk))?;
            Some(k.broadcast_le(&q)?.reshape((1, 1, t, tk))?)
        }
        Window::Sliding(w) if t > 1 || tk > w => {
            // k <= q and k + w > q, in u32 (k + w never overflows: both are positions)
            let q = Tensor::arange(past as u32, tk as u32, device)?.reshape((t, 1))?;
            let k = Tensor::arange(0u32, tk as u32, device)?.reshape((1, tk))?;
            let k_plus_w = Tensor::arange(w as u32, (tk + w) as u32, device)?.reshape((1, tk))?;
            let keep = k.broadcast_le(&q)?.mul(&k_plus_w.broadcast_gt(&q)?)?;
            Some(keep.reshape((1, 1, t, tk))?)
        }
        _ => None,
    };
    let keep = match (padding, causal) {
        (None, None) => return Ok(None),
        (Some(p), None) => p.broadcast_as((b, 1, t, tk))?.contiguous()?,
        (None, Some(c)) => c.broadcast_as((b, 1, t, tk))?.contiguous()?,
        (Some(p), Some(c)) => p.broadcast_mul(&c)?,
    };
    // (1 - keep) * MIN: 0 (as -0.0, which adds nothing) where kept, f32::MIN where masked
    let blocked = (1.0 - keep.to_dtype(DType::F32)?)?;
    Ok(Some((blocked * f32::MIN as f64)?))
}

/// An additive mask of [`build_mask`] (0 or `f32::MIN`) in `dtype`, the attention scores'. In
/// bf16 `f32::MIN` would round to -inf, and a row masked everywhere (a padding query) would turn
/// into NaN in softmax and spread through the gradients; it becomes the dtype's lowest finite
/// value instead, which masks the same (transformers uses `finfo(dtype).min` for this).
pub(crate) fn mask_in(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let lowest = match dtype {
        DType::BF16 => half::bf16::MIN.to_f64(),
        DType::F16 => half::f16::MIN.to_f64(),
        _ => return Ok(mask.to_dtype(dtype)?),
    };
    Ok(mask.maximum(lowest)?.to_dtype(dtype)?)
}

/// The additive cross-attention mask `[b, 1, t, s]` from the sources' 0/1 mask `[b, s]`:
/// 0 where a source token is real, `f32::MIN` where it is padding (as transformers'
/// bidirectional mask).
pub(crate) fn cross_mask(
    src_mask: Option<&Tensor>,
    t: usize,
    dtype: DType,
) -> Result<Option<Tensor>> {
    let Some(m) = src_mask else {
        return Ok(None);
    };
    let (b, s) = m.dims2()?;
    let keep = m.ne(0f32)?.to_dtype(DType::F32)?.reshape((b, 1, 1, s))?;
    let blocked = ((1.0 - keep)? * f32::MIN as f64)?;
    Ok(Some(mask_in(
        &blocked.broadcast_as((b, 1, t, s))?.contiguous()?,
        dtype,
    )?))
}
