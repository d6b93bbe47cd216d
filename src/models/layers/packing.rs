//! Padding skipped inside an encoder: the real tokens of a right-padded batch `[b, t]` packed
//! into one row `[1, n, h]` for the position-wise work (projections, feed-forward, LayerNorm,
//! dropout, residuals), and laid back out `[b, t, ·]` only for attention, which needs each
//! sequence on its own. transformers computes every padded position of every layer and drops
//! them at the end; a batch of AG News headlines padded to its longest row is about a fifth
//! padding, so this is that much less work with the same values at the real positions (a
//! real position never reads a padded one: attention masks them).
//!
//! Used only where the caller reads nothing at the padded positions (a classifier on the first
//! token, see [`Ctx::first_token_only`](super::Ctx)), since those positions are not computed.
use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::Result;
use crate::kernels::{self, RowMap};

/// Where a right-padded batch's real tokens sit: `pack` gathers them, `unpack` lays them back
/// out with zero rows at the padding (which attention masks, as keys; as queries, their rows
/// are dropped by the next `pack`).
pub(crate) struct Packing {
    rows: Arc<RowMap>,
    /// Each row's first token among the packed ones, as a map over `[1, n]` (one per row).
    firsts: Arc<RowMap>,
}

impl Packing {
    /// The packing of `attention_mask [b, t]` (1 real, 0 padding), or `None` when there is
    /// nothing to skip: no padding, or padding that is not all at the end of its row (left
    /// padding, holes), where the first position may itself be padding.
    pub fn of_mask(attention_mask: &Tensor) -> Result<Option<Self>> {
        let (b, t) = attention_mask.dims2()?;
        let rows = attention_mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let mut lens = Vec::with_capacity(b);
        for row in &rows {
            let len = row.iter().take_while(|&&m| m != 0.0).count();
            if len == 0 || row[len..].iter().any(|&m| m != 0.0) {
                return Ok(None);
            }
            lens.push(len);
        }
        if lens.iter().all(|&l| l == t) {
            return Ok(None);
        }
        let (mut real, mut firsts) = (Vec::new(), Vec::with_capacity(b));
        for (r, &len) in lens.iter().enumerate() {
            firsts.push(real.len() as u32);
            real.extend((0..len).map(|p| (r * t + p) as u32));
        }
        let n = real.len();
        Ok(Some(Self {
            rows: Arc::new(RowMap::new(real, (b, t))?),
            firsts: Arc::new(RowMap::new(firsts, (1, n))?),
        }))
    }

    /// `x [b, t, c]` → `[1, n, c]`: the real tokens.
    pub fn pack(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::pack_rows(x, &self.rows)?)
    }

    /// `x [1, n, c]` → `[b, t, c]`, zeros at the padding.
    pub fn unpack(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::unpack_rows(x, &self.rows)?)
    }

    /// `x [1, n, c]` → `[b, 1, c]`: each row's first token.
    pub fn first_tokens(&self, x: &Tensor) -> Result<Tensor> {
        let c = x.dim(2)?;
        Ok(kernels::pack_rows(x, &self.firsts)?.reshape((self.firsts.len(), 1, c))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn mask(rows: &[&[u32]]) -> Tensor {
        Tensor::new(
            rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
            &Device::Cpu,
        )
        .unwrap()
    }

    #[test]
    fn packs_right_padding_and_declines_the_rest() {
        let dev = Device::Cpu;
        let m = mask(&[&[1, 1, 1], &[1, 0, 0], &[1, 1, 0]]);
        let p = Packing::of_mask(&m).unwrap().unwrap();
        let x = Tensor::arange(0f32, 18., &dev)
            .unwrap()
            .reshape((3, 3, 2))
            .unwrap();
        let packed = p.pack(&x).unwrap();
        assert_eq!(packed.dims(), [1, 6, 2]);
        let rows: Vec<f32> = packed.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(rows, [0., 1., 2., 3., 4., 5., 6., 7., 12., 13., 14., 15.]);
        let back = p.unpack(&packed).unwrap().to_vec3::<f32>().unwrap();
        // real positions are restored, padded ones are zero
        assert_eq!(back[0], x.get(0).unwrap().to_vec2::<f32>().unwrap());
        assert_eq!(back[1], [[6., 7.], [0., 0.], [0., 0.]]);
        assert_eq!(back[2], [[12., 13.], [14., 15.], [0., 0.]]);
        let firsts = p.first_tokens(&packed).unwrap();
        assert_eq!(firsts.dims(), [3, 1, 2]);
        assert_eq!(
            firsts.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0., 1., 6., 7., 12., 13.]
        );
        // nothing to skip, left padding, a hole, an empty row
        for rows in [
            &[&[1u32, 1][..], &[1, 1]][..],
            &[&[0, 1], &[1, 1]],
            &[&[1, 0, 1], &[1, 1, 1]],
            &[&[0, 0], &[1, 1]],
        ] {
            assert!(Packing::of_mask(&mask(rows)).unwrap().is_none());
        }
    }
}
