//! LayerNorm over the last dimension with its own backward pass (candle-nn's fused
//! `layer_norm` has none, so every parameter before it would silently get no gradient).
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{OutPtr, par_for, rows_mut, slice, zeros};
use super::reduce::sum_rows;
use super::vmath;

struct LayerNormOp {
    eps: f32,
}

/// Mean and `1 / sqrt(var + eps)` of a row (biased variance, as PyTorch).
#[inline(always)]
fn ln_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = vmath::sum(x) / d;
    let var = vmath::sum_map(x, |v| (v - mean) * (v - mean)) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

vmath::multiversion! {
    /// One row of LayerNorm forward.
    fn ln_row(x: &[f32], w: &[f32], b: &[f32], o: &mut [f32], eps: f32) {
        let (mean, rstd) = ln_stats(x, eps);
        for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
            *o = (x - mean) * rstd * w + b;
        }
    }
}

vmath::multiversion! {
    /// One row of LayerNorm backward: `dx`, and `gx = g * xhat` (summed over rows into dw).
    fn ln_row_bwd(x: &[f32], g: &[f32], w: &[f32], dx: &mut [f32], gx: &mut [f32], eps: f32) {
        let d = x.len() as f32;
        let (mean, rstd) = ln_stats(x, eps);
        let (mut m1, mut m2) = ([0f32; 8], [0f32; 8]);
        for (((xc, gc), wc), gxc) in x
            .chunks(8)
            .zip(g.chunks(8))
            .zip(w.chunks(8))
            .zip(gx.chunks_mut(8))
        {
            for i in 0..xc.len() {
                let xh = (xc[i] - mean) * rstd;
                let gw = gc[i] * wc[i];
                m1[i] += gw;
                m2[i] += gw * xh;
                gxc[i] = gc[i] * xh;
            }
        }
        let m1 = m1.iter().sum::<f32>() / d;
        let m2 = m2.iter().sum::<f32>() / d;
        for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
            let xh = (x - mean) * rstd;
            *dx = rstd * (g * w - m1 - xh * m2);
        }
    }
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "massivetext-layer-norm"
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
        let (x, w, b) = (
            slice(s1, l1, "layer_norm")?,
            slice(s2, l2, "layer_norm")?,
            slice(s3, l3, "layer_norm")?,
        );
        let d = w.len();
        let mut out = zeros(x.len());
        rows_mut(&mut out, d, |r, o| {
            ln_row(&x[r * d..(r + 1) * d], w, b, o, self.eps)
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
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::layer_norm_fwd((s1, l1), (s2, l2), (s3, l3), self.eps)
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let rows = x.elem_count() / d;
        let g = g.contiguous()?;
        // packed[0] = dx, packed[1] = g * xhat (summed over rows into dw)
        let packed = x.apply_op3_no_bwd(w, &g, &LayerNormBwd { eps: self.eps })?;
        let dx = packed.get(0)?.reshape(x.shape())?;
        let dw = sum_rows(&packed.get(1)?.reshape((rows, d))?)?;
        let db = sum_rows(&g.reshape((rows, d))?)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct LayerNormBwd {
    eps: f32,
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "massivetext-layer-norm-bwd"
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
            slice(s1, l1, "layer_norm_bwd")?,
            slice(s2, l2, "layer_norm_bwd")?,
            slice(s3, l3, "layer_norm_bwd")?,
        );
        let d = w.len();
        let n = x.len();
        let mut out = vec![0f32; 2 * n];
        let (dx, gx) = out.split_at_mut(n);
        let work = |r: usize, dxr: &mut [f32], gxr: &mut [f32]| {
            let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            ln_row_bwd(xr, gr, w, dxr, gxr, self.eps);
        };
        let (pdx, pgx) = (OutPtr(dx.as_mut_ptr()), OutPtr(gx.as_mut_ptr()));
        par_for(n / d.max(1), n, |range| {
            for r in range {
                // SAFETY: row r of each half is only written by this chunk.
                work(r, unsafe { pdx.slice(r * d, d) }, unsafe {
                    pgx.slice(r * d, d)
                });
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
        super::cuda::layer_norm_bwd((s1, l1), (s2, l2), (s3, l3), self.eps)
    }
}

/// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * weight + bias`, biased
/// variance as in PyTorch.
pub(crate) fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(weight, bias, LayerNormOp { eps: eps as f32 })
}
