//! Rotary position embedding (transformers' Llama convention: the pairs are `(i, i + hd/2)`,
//! "rotate half") as one op with its own backward pass: a rotation by `-angle`, the transpose
//! of the forward rotation. `cos` and `sin` get no gradient (they are functions of positions).
//!
//! Composed, RoPE is two narrows, four broadcast products, a sum, a difference and a concat,
//! each a pass over memory in both directions; here it is one pass each way, reading `x` in
//! place through its strides (the heads of a projection are a transposed view).
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::cpu::{OutPtr, par_for, slice, zeros};
use super::strided::{Heads, readable};
use super::vmath;

vmath::multiversion! {
    /// One row: `o1 = x1 c - x2 s`, `o2 = x2 c + x1 s` (`sign` 1), or the inverse rotation
    /// (`sign` -1).
    fn rotate_row(x: &[f32], c: &[f32], s: &[f32], o: &mut [f32], sign: f32) {
        let half = c.len();
        let (x1, x2) = x.split_at(half);
        let (o1, o2) = o.split_at_mut(half);
        for i in 0..half {
            let s = sign * s[i];
            o1[i] = x1[i] * c[i] - x2[i] * s;
            o2[i] = x2[i] * c[i] + x1[i] * s;
        }
    }
}

/// `x [b, heads, t, hd]` rotated by the angles of `cos`, `sin` `[b or 1, t, hd / 2]`
/// (contiguous); `inverse` rotates by `-angle` (the backward pass).
struct RopeOp {
    inverse: bool,
}

impl CustomOp3 for RopeOp {
    fn name(&self) -> &'static str {
        "massivetext-rope"
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
        let (x, xh) = Heads::of(s1, l1, "rope")?;
        let (cos, sin) = (slice(s2, l2, "rope")?, slice(s3, l3, "rope")?);
        let [b, heads, t, hd] = xh.dims;
        let half = hd / 2;
        let cb = l2.dims().first().copied().unwrap_or(0);
        if hd % 2 != 0
            || l2.dims() != l3.dims()
            || l2.dims() != [cb, t, half]
            || (cb != b && cb != 1)
        {
            bail!(
                "rope: x {:?} with cos {:?} and sin {:?}: expected [b, heads, t, hd], hd even, \
                 and [b or 1, t, hd / 2]",
                xh.dims,
                l2.dims(),
                l3.dims()
            );
        }
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let rows = b * heads * t;
        let mut out = zeros(rows * hd);
        let ptr = OutPtr(out.as_mut_ptr());
        par_for(rows, rows * hd, |range| {
            for r in range {
                let (bi, hi, ti) = (r / (heads * t), (r / t) % heads, r % t);
                let a = ((if cb == 1 { 0 } else { bi }) * t + ti) * half;
                let xr = &x[xh.row(bi, hi, ti)..][..hd];
                // SAFETY: row r of the output is written only here.
                let o = unsafe { ptr.slice(r * hd, hd) };
                rotate_row(xr, &cos[a..a + half], &sin[a..a + half], o, sign);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(xh.dims.to_vec())))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = RopeOp {
            inverse: !self.inverse,
        };
        let dx = readable(g)?.apply_op3_no_bwd(cos, sin, &op)?;
        Ok((Some(dx), None, None))
    }
}

/// RoPE of `x [b, heads, t, hd]` with `cos`, `sin` `[b or 1, t, hd / 2]` (CPU f32; shapes
/// checked by the caller, kernels::rope, and again by the op).
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    readable(x)?.apply_op3(
        &cos.contiguous()?,
        &sin.contiguous()?,
        RopeOp { inverse: false },
    )
}
