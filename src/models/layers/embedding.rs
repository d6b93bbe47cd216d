//! Token and position embeddings: the lookup (with the vocabulary check), learned absolute
//! positions (GPT-2, BERT), RoBERTa's positions counted after `padding_idx`, and the sinusoidal
//! table Marian computes rather than stores.
use candle_core::{DType, Device, Tensor};

use super::{Ctx, LayerNorm, check_token_id};
use crate::{Error, Result, kernels};

/// How position ids are made.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Positions {
    /// `0, 1, 2, ...` (offset by the KV cache length): GPT-2 and BERT.
    Absolute,
    /// RoBERTa: the running count of non-padding tokens, plus `padding_idx`; padding gets
    /// `padding_idx` itself.
    PaddingOffset { padding_idx: u32 },
}

#[derive(Clone)]
pub(crate) struct Embeddings {
    pub word: Tensor,
    pub position: Tensor,
    pub token_type: Option<Tensor>,
    /// BERT normalises the embedding sum; GPT-2 does not.
    pub ln: Option<LayerNorm>,
    pub positions: Positions,
    pub dropout: f64,
}

impl Embeddings {
    pub fn vocab_size(&self) -> usize {
        self.word.dims()[0]
    }

    /// The longest sequence the position table allows.
    pub fn max_len(&self) -> usize {
        let n = self.position.dims()[0];
        match self.positions {
            Positions::Absolute => n,
            Positions::PaddingOffset { padding_idx } => n.saturating_sub(padding_idx as usize + 1),
        }
    }

    /// `ids` u32 `[b, t]` on the model's device; positions start after `past` cached tokens.
    pub fn forward(
        &self,
        ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        past: usize,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = self.word.device();
        let vocab = self.vocab_size();
        // one scalar read: the largest id
        check_token_id(ids.max_all()?.to_scalar::<u32>()?, vocab)?;
        if past + t > self.max_len() {
            return Err(Error::SequenceTooLong {
                len: past + t,
                max: self.max_len(),
            });
        }
        let h = self.word.dim(1)?;
        // in the position table's dtype: the compute dtype, also when the word embeddings are
        // stored in bf16 as the LM head (`with_weight_dtype`)
        let mut x = kernels::embedding(&self.word, ids)?.to_dtype(self.position.dtype())?;
        let pos = match (position_ids, self.positions) {
            (Some(p), _) => {
                if p.dims() != [b, t] {
                    return Err(Error::InvalidArgument(format!(
                        "position_ids has shape {:?}, expected [{b}, {t}] like input_ids",
                        p.dims()
                    )));
                }
                let p = p.to_device(dev)?.to_dtype(DType::U32)?;
                let max = p.max_all()?.to_scalar::<u32>()? as usize;
                if max >= self.position.dim(0)? {
                    return Err(Error::SequenceTooLong {
                        len: max + 1,
                        max: self.position.dim(0)?,
                    });
                }
                p
            }
            (None, Positions::Absolute) => {
                let p = Tensor::arange(past as u32, (past + t) as u32, dev)?;
                p.unsqueeze(0)?.broadcast_as((b, t))?.contiguous()?
            }
            (None, Positions::PaddingOffset { padding_idx }) => {
                // the running count of real tokens (plus the cached ones), padding_idx added;
                // padding itself gets padding_idx
                let real = ids.ne(padding_idx)?.to_dtype(DType::F32)?;
                let count = (real.cumsum(1)? + past as f64)?;
                ((count * &real)? + padding_idx as f64)?.to_dtype(DType::U32)?
            }
        };
        x = (x + kernels::embedding(&self.position, &pos)?)?;
        if let Some(tt) = &self.token_type {
            let types = match token_type_ids {
                Some(types) => {
                    let types = types.to_dtype(DType::U32)?;
                    if types.elem_count() != b * t {
                        return Err(Error::InvalidArgument(format!(
                            "token_type_ids has {} elements, input_ids {}",
                            types.elem_count(),
                            b * t
                        )));
                    }
                    let types = types.flatten_all()?.to_device(dev)?;
                    let max = tt.dim(0)?;
                    let bad = types.max_all()?.to_scalar::<u32>()?;
                    if bad as usize >= max {
                        return Err(Error::InvalidArgument(format!(
                            "token_type_id {bad} is >= type_vocab_size {max}"
                        )));
                    }
                    types
                }
                None => Tensor::zeros(b * t, DType::U32, dev)?,
            };
            x = (x + kernels::embedding(tt, &types)?)?;
        }
        let mut x = x.reshape((b, t, h))?;
        if let Some(ln) = &self.ln {
            x = ln.forward(&x)?;
        }
        ctx.dropout(&x, self.dropout)
    }
}

/// The sinusoidal table `[n_pos, dim]` of `MarianSinusoidalPositionalEmbedding`: angles
/// `pos / 10000^(2 (j / 2) / dim)` in f64, the sines of the even `j` in the first half of each
/// row, the cosines of the odd `j` in the second, rounded to f32.
pub(crate) fn sinusoidal_positions(n_pos: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let sentinel = dim.div_ceil(2);
    let mut out = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        let row = &mut out[pos * dim..(pos + 1) * dim];
        let angle = |j: usize| pos as f64 / 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
        let (sines, cosines) = row.split_at_mut(sentinel);
        for (i, x) in sines.iter_mut().enumerate() {
            *x = angle(2 * i).sin() as f32;
        }
        for (i, x) in cosines.iter_mut().enumerate() {
            *x = angle(2 * i + 1).cos() as f32;
        }
    }
    Ok(Tensor::from_vec(out, (n_pos, dim), device)?)
}

/// Token embeddings of `ids [b, t]` (u32) in `dtype` (the compute dtype, also when the table is
/// stored in bf16), times `scale`. As `nn.Embedding(padding_idx=pad)`, the rows looked up for
/// padding tokens pass no gradient back to the table.
pub(crate) fn embed_tokens(
    table: &Tensor,
    ids: &Tensor,
    (pad, scale): (u32, f64),
    dtype: DType,
) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let d = table.dim(1)?;
    check_token_id(ids.max_all()?.to_scalar::<u32>()?, table.dim(0)?)?;
    let flat = ids.flatten_all()?;
    let rows = kernels::embedding(table, &flat)?.to_dtype(dtype)?;
    let real = flat.ne(pad)?.unsqueeze(1)?.broadcast_as(rows.shape())?;
    let rows = real.where_cond(&rows, &rows.detach())?;
    let x = rows.reshape((b, t, d))?;
    Ok(if scale != 1.0 { (x * scale)? } else { x })
}
