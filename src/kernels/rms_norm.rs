//! RMSNorm over the last dimension (transformers' `LlamaRMSNorm`) with its own backward pass.
//! Composed, it is a square, a mean, an add, a square root, a division and a product, each a
//! pass over the activations in both directions; here each direction is one pass per row.
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::cpu::{OutPtr, par_for, rows_mut, slice, zeros};
use super::reduce::sum_rows;
use super::vmath;

/// `1 / sqrt(mean(x²) + eps)` of a row.
#[inline(always)]
fn rstd(x: &[f32], eps: f32) -> f32 {
    1.0 / (vmath::sum_map(x, |v| v * v) / x.len() as f32 + eps).sqrt()
}

vmath::multiversion! {
    /// One row forward: `o = x rstd w`.
    fn rms_row(x: &[f32], w: &[f32], o: &mut [f32], eps: f32) {
        let r = rstd(x, eps);
        for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
            *o = x * r * w;
        }
    }
}

vmath::multiversion! {
    /// One row backward: `dx = rstd (g w − x̂ mean(g w x̂))` and `gx = g x̂` (summed over rows
    /// into the weight's gradient), with `x̂ = x rstd`.
    fn rms_row_bwd(x: &[f32], g: &[f32], w: &[f32], dx: &mut [f32], gx: &mut [f32], eps: f32) {
        let r = rstd(x, eps);
        let mut acc = [0f32; 8];
        for (((xc, gc), wc), gxc) in x
            .chunks(8)
            .zip(g.chunks(8))
            .zip(w.chunks(8))
            .zip(gx.chunks_mut(8))
        {
            for i in 0..xc.len() {
                let xh = xc[i] * r;
                acc[i] += gc[i] * wc[i] * xh;
                gxc[i] = gc[i] * xh;
            }
        }
        let m = acc.iter().sum::<f32>() / x.len() as f32;
        for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
            *dx = r * (g * w - x * r * m);
        }
    }
}

struct RmsNormOp {
    eps: f32,
}

/// The row width `d` of `x [.., d]`, checked against the weight's length.
fn width(x: &Layout, w: &[f32]) -> Result<usize> {
    let d = x.dims().last().copied().unwrap_or(1);
    if w.len() != d {
        bail!(
            "rms_norm: weight of {} elements for x {:?}: expected [{d}]",
            w.len(),
            x.dims()
        );
    }
    Ok(d)
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "massivetext-rms-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(s1, l1, "rms_norm")?, slice(s2, l2, "rms_norm")?);
        let d = width(l1, w)?;
        let mut out = zeros(x.len());
        rows_mut(&mut out, d, |r, o| {
            rms_row(&x[r * d..(r + 1) * d], w, o, self.eps)
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::rms_norm_fwd((s1, l1), (s2, l2), self.eps)
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let rows = x.elem_count() / d.max(1);
        // packed[0] = dx, packed[1] = g * xhat (summed over rows into dw)
        let packed = x.apply_op3_no_bwd(w, &g.contiguous()?, &RmsNormBwd { eps: self.eps })?;
        let dx = packed.get(0)?.reshape(x.shape())?;
        let dw = sum_rows(&packed.get(1)?.reshape((rows, d))?)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

struct RmsNormBwd {
    eps: f32,
}

impl CustomOp3 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "massivetext-rms-norm-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (
            slice(s1, l1, "rms_norm_bwd")?,
            slice(s2, l2, "rms_norm_bwd")?,
            slice(s3, l3, "rms_norm_bwd")?,
        );
        let d = width(l1, w)?;
        let n = x.len();
        if g.len() != n {
            bail!(
                "rms_norm backward: the gradient does not match x {:?}",
                l1.dims()
            );
        }
        let mut out = vec![0f32; 2 * n];
        let (dx, gx) = out.split_at_mut(n);
        let (pdx, pgx) = (OutPtr(dx.as_mut_ptr()), OutPtr(gx.as_mut_ptr()));
        par_for(n / d.max(1), n, |range| {
            for r in range {
                let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
                // SAFETY: row r of each half is only written by this chunk.
                let (dxr, gxr) = unsafe { (pdx.slice(r * d, d), pgx.slice(r * d, d)) };
                rms_row_bwd(xr, gr, w, dxr, gxr, self.eps);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((2, n))))
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::rms_norm_bwd((s1, l1), (s2, l2), (s3, l3), self.eps)
    }
}

/// RMSNorm of `x [.., d]` with `weight [d]` (f32, on the CPU or, built with `cuda`, the GPU).
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNormOp { eps: eps as f32 })
}
