//! One AdamW update, equal to `torch.optim.AdamW`'s single-tensor kernel: decoupled weight decay,
//! bias correction, `eps` added after the square root, in torch's order of f32 operations.
//!
//! The first and second moments of a parameter live side by side in one `[2, n]` tensor on the
//! parameter's device. On CPU (f32) the update is two in-place passes (moments, then weight) with
//! no allocation; elsewhere it is composed from candle ops and the weight is set from the result.
//! Both give the same bits: each product and quotient is the same f32 operation in the same order.
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor, bail};

use super::cpu::{OutPtr, par_for, slice, slice_mut};

/// Elements per parallel task of the two passes (a pass is too cheap to share below that).
const CHUNK: usize = 1 << 14;

/// Runs `f(start, len)` over consecutive chunks of `0..n`, in parallel when `n` is large.
fn chunks(n: usize, f: impl Fn(usize, usize) + Sync) {
    par_for(n.div_ceil(CHUNK), n, |range| {
        for c in range {
            let start = c * CHUNK;
            f(start, CHUNK.min(n - start));
        }
    });
}

/// The scalars of one AdamW step for one parameter (torch computes them in double precision,
/// then runs the kernel in f32).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bias_correction2_sqrt: f32,
    /// `1 - lr * weight_decay`, or 1 for parameters without decay.
    pub decay_mul: f32,
    /// `1 - beta1`.
    pub one_minus_beta1: f32,
    pub beta2: f32,
    /// `1 - beta2`.
    pub one_minus_beta2: f32,
    pub eps: f32,
}

impl AdamWStep {
    /// The scalars of step `t` (1-based) at learning rate `lr`; `decay` says whether this
    /// parameter gets weight decay.
    pub fn new(
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        t: usize,
        decay: bool,
    ) -> Self {
        let t = t as i32;
        let decay = decay && weight_decay != 0.0;
        AdamWStep {
            step_size: (lr / (1.0 - beta1.powi(t))) as f32,
            bias_correction2_sqrt: (1.0 - beta2.powi(t)).sqrt() as f32,
            decay_mul: if decay {
                (1.0 - lr * weight_decay) as f32
            } else {
                1.0
            },
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            eps: eps as f32,
        }
    }
}

#[cfg(feature = "cuda")]
impl AdamWStep {
    fn cuda(&self) -> super::cuda::AdamW {
        super::cuda::AdamW {
            one_minus_beta1: self.one_minus_beta1,
            beta2: self.beta2,
            one_minus_beta2: self.one_minus_beta2,
            step_size: self.step_size,
            bias_correction2_sqrt: self.bias_correction2_sqrt,
            decay_mul: self.decay_mul,
            eps: self.eps,
        }
    }
}

/// Moments `[2, n]` updated in place from the gradient times a scale (the clipping coefficient
/// of `clip_grad_norm`, applied here instead of in a pass of its own: `g * scale` is the same f32
/// product torch's `clip_grad_norm_` stores).
struct Moments(AdamWStep, f32);

impl InplaceOp2 for Moments {
    fn name(&self) -> &'static str {
        "massivetext-adamw-moments"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let g = slice(s2, l2, "adamw")?;
        let mv = slice_mut(s1, l1, "adamw")?;
        let n = g.len();
        if mv.len() != 2 * n {
            bail!("adamw: moments hold {} values, expected 2 x {n}", mv.len());
        }
        let (s, scale) = (self.0, self.1);
        let mv = OutPtr(mv.as_mut_ptr());
        chunks(n, |start, len| {
            // SAFETY: both ranges lie inside the `[2, n]` moments and only this chunk touches them.
            let (m, v) = unsafe { (mv.slice(start, len), mv.slice(n + start, len)) };
            let g = &g[start..start + len];
            for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(g) {
                let g = if scale != 1.0 { g * scale } else { g };
                *m += s.one_minus_beta1 * (g - *m);
                *v = *v * s.beta2 + s.one_minus_beta2 * g * g;
            }
        });
        Ok(())
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        if self.1 != 1.0 {
            bail!(
                "adamw: a gradient scale is applied before the CUDA kernel (kernels::adamw_step)"
            );
        }
        super::cuda::adamw_moments((s1, l1), (s2, l2), &self.0.cuda())
    }
}

/// The weight updated in place from the new moments.
struct Weight(AdamWStep);

impl InplaceOp2 for Weight {
    fn name(&self) -> &'static str {
        "massivetext-adamw-weight"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let w = slice_mut(s1, l1, "adamw")?;
        let mv = slice(s2, l2, "adamw")?;
        let n = w.len();
        if mv.len() != 2 * n {
            bail!("adamw: moments hold {} values, expected 2 x {n}", mv.len());
        }
        let (m, v) = mv.split_at(n);
        let s = self.0;
        let w = OutPtr(w.as_mut_ptr());
        chunks(n, |start, len| {
            // SAFETY: the range lies inside the weight and only this chunk touches it.
            let w = unsafe { w.slice(start, len) };
            let (m, v) = (&m[start..start + len], &v[start..start + len]);
            for ((w, &m), &v) in w.iter_mut().zip(m).zip(v) {
                if s.decay_mul != 1.0 {
                    *w *= s.decay_mul;
                }
                let denom = v.sqrt() / s.bias_correction2_sqrt + s.eps;
                *w += -s.step_size * m / denom;
            }
        });
        Ok(())
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        super::cuda::adamw_weight((s1, l1), (s2, l2), &self.0.cuda())
    }
}

fn check(weight: &Tensor, grad: &Tensor, moments: &Tensor) -> Result<()> {
    let n = weight.elem_count();
    if grad.elem_count() != n || moments.dims() != [2, n] {
        bail!(
            "adamw: weight {:?}, gradient {:?} and moments {:?} do not match (moments must be [2, {n}])",
            weight.dims(),
            grad.dims(),
            moments.dims()
        );
    }
    Ok(())
}

/// The CPU path: both passes in place.
pub(crate) fn fused(
    step: &AdamWStep,
    weight: &Tensor,
    grad: &Tensor,
    grad_scale: f32,
    moments: &Tensor,
) -> Result<()> {
    check(weight, grad, moments)?;
    let grad = grad.contiguous()?;
    moments.inplace_op2(&grad, &Moments(*step, grad_scale))?;
    weight.inplace_op2(moments, &Weight(*step))
}

/// Any device and dtype: the same operations as candle ops; returns the new weight (in the
/// weight's dtype) and the new moments `[2, n]` (f32).
pub(crate) fn composed(
    step: &AdamWStep,
    weight: &Tensor,
    grad: &Tensor,
    moments: &Tensor,
) -> Result<(Tensor, Tensor)> {
    check(weight, grad, moments)?;
    let s = step;
    let n = weight.elem_count();
    let g = grad.to_dtype(DType::F32)?.flatten_all()?;
    let (m, v) = (moments.get(0)?, moments.get(1)?);
    // m += (1 - beta1) * (g - m); v = v * beta2 + (1 - beta2) * g * g
    let m = (&m + (&g - &m)?.affine(s.one_minus_beta1 as f64, 0.0)?)?;
    let v = (v.affine(s.beta2 as f64, 0.0)? + g.affine(s.one_minus_beta2 as f64, 0.0)?.mul(&g)?)?;
    let bc2 = Tensor::new(s.bias_correction2_sqrt, v.device())?;
    let denom = v.sqrt()?.broadcast_div(&bc2)?.affine(1.0, s.eps as f64)?;
    let mut w = weight.to_dtype(DType::F32)?.flatten_all()?;
    if s.decay_mul != 1.0 {
        w = w.affine(s.decay_mul as f64, 0.0)?;
    }
    let w = (w + m.affine(-s.step_size as f64, 0.0)?.div(&denom)?)?;
    let w = w.reshape(weight.shape())?.to_dtype(weight.dtype())?;
    Ok((w, Tensor::stack(&[&m, &v], 0)?.reshape((2, n))?))
}
