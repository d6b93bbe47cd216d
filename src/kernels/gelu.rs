//! The smooth activations of Hugging Face configs, element-wise, with their derivatives: the
//! two GELUs and SiLU (`swish`, Marian's). candle's own `silu` is four ops forward and six
//! backward, each a pass over memory and a wake of the thread pool; here each direction is one.
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::{elementwise, slice, zeros};
use super::vmath;

/// The two GELUs of Hugging Face.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gelu {
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: GPT-2's `gelu_new`.
    Tanh,
    /// `0.5 x (1 + erf(x / sqrt 2))`: BERT's and RoBERTa's `gelu`.
    Erf,
}

pub(crate) const SQRT_2_OVER_PI: f32 = 0.797_884_6;
pub(crate) const GELU_C: f32 = 0.044715;

/// `(1 + tanh(u)) / 2 = sigmoid(2u)` for GPT-2's GELU: one vectorisable `exp` instead of
/// glibc's `tanhf` (which was ~7% of a GPT-2 training step on its own).
#[inline(always)]
fn gelu_new_gate(x: f32) -> f32 {
    vmath::sigmoid(2.0 * SQRT_2_OVER_PI * (x + GELU_C * x * x * x))
}

#[inline(always)]
fn gelu_fwd(kind: Gelu, x: f32) -> f32 {
    match kind {
        Gelu::Tanh => x * gelu_new_gate(x),
        Gelu::Erf => 0.5 * x * (1.0 + vmath::erf(x * std::f32::consts::FRAC_1_SQRT_2)),
    }
}

#[inline(always)]
fn gelu_grad(kind: Gelu, x: f32) -> f32 {
    match kind {
        Gelu::Tanh => {
            // d/dx [x s(2u)] = s + 2 x s (1 - s) u'
            let s = gelu_new_gate(x);
            s + 2.0 * x * s * (1.0 - s) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x)
        }
        Gelu::Erf => {
            // 1 / sqrt(2 pi)
            const INV_SQRT_2PI: f32 = 0.398_942_3;
            let cdf = 0.5 * (1.0 + vmath::erf(x * std::f32::consts::FRAC_1_SQRT_2));
            cdf + x * vmath::exp(-0.5 * x * x) * INV_SQRT_2PI
        }
    }
}

/// `x sigmoid(x)`.
#[inline(always)]
pub(super) fn silu_fwd(x: f32) -> f32 {
    x * vmath::sigmoid(x)
}

/// `d/dx [x s(x)] = s (1 + x (1 - s))`.
#[inline(always)]
pub(super) fn silu_grad(x: f32) -> f32 {
    let s = vmath::sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

vmath::multiversion! {
    /// `o = silu(x)` over a chunk.
    fn silu_chunk(x: &[f32], o: &mut [f32]) {
        o.iter_mut().zip(x).for_each(|(o, &x)| *o = silu_fwd(x));
    }
}

vmath::multiversion! {
    /// `o = g * silu'(x)` over a chunk.
    fn silu_grad_chunk(x: &[f32], g: &[f32], o: &mut [f32]) {
        o.iter_mut()
            .zip(x.iter().zip(g))
            .for_each(|(o, (&x, &g))| *o = g * silu_grad(x));
    }
}

vmath::multiversion! {
    /// `o = gelu_new(x)` over a chunk.
    fn gelu_new_chunk(x: &[f32], o: &mut [f32]) {
        o.iter_mut()
            .zip(x)
            .for_each(|(o, &x)| *o = gelu_fwd(Gelu::Tanh, x));
    }
}

vmath::multiversion! {
    /// `o = g * gelu_new'(x)` over a chunk.
    fn gelu_new_grad_chunk(x: &[f32], g: &[f32], o: &mut [f32]) {
        o.iter_mut()
            .zip(x.iter().zip(g))
            .for_each(|(o, (&x, &g))| *o = g * gelu_grad(Gelu::Tanh, x));
    }
}

vmath::multiversion! {
    /// `o = gelu(x)` (erf) over a chunk.
    fn gelu_erf_chunk(x: &[f32], o: &mut [f32]) {
        o.iter_mut()
            .zip(x)
            .for_each(|(o, &x)| *o = gelu_fwd(Gelu::Erf, x));
    }
}

vmath::multiversion! {
    /// `o = g * gelu'(x)` (erf) over a chunk.
    fn gelu_erf_grad_chunk(x: &[f32], g: &[f32], o: &mut [f32]) {
        o.iter_mut()
            .zip(x.iter().zip(g))
            .for_each(|(o, (&x, &g))| *o = g * gelu_grad(Gelu::Erf, x));
    }
}

/// The activation an op computes.
#[derive(Clone, Copy)]
enum Act {
    Gelu(Gelu),
    Silu,
}

impl Act {
    /// The kernel's number for this activation (kernels/cuda/kernels.cu).
    #[cfg(feature = "cuda")]
    fn cuda_kind(self) -> i32 {
        match self {
            Act::Gelu(Gelu::Tanh) => super::cuda::GELU_TANH,
            Act::Gelu(Gelu::Erf) => super::cuda::GELU_ERF,
            Act::Silu => super::cuda::SILU,
        }
    }
}

struct ActOp(Act);

impl CustomOp1 for ActOp {
    fn name(&self) -> &'static str {
        "massivetext-activation"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "activation")?;
        let mut out = zeros(x.len());
        let kind = self.0;
        elementwise(&mut out, |start, o| {
            let x = &x[start..start + o.len()];
            match kind {
                Act::Gelu(Gelu::Tanh) => gelu_new_chunk(x, o),
                Act::Gelu(Gelu::Erf) => gelu_erf_chunk(x, o),
                Act::Silu => silu_chunk(x, o),
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::act_fwd(s, l, self.0.cuda_kind())
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&g.contiguous()?, &ActBwd(self.0))?))
    }
}

struct ActBwd(Act);

impl CustomOp2 for ActBwd {
    fn name(&self) -> &'static str {
        "massivetext-activation-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (
            slice(s1, l1, "activation_bwd")?,
            slice(s2, l2, "activation_bwd")?,
        );
        let mut out = zeros(x.len());
        let kind = self.0;
        elementwise(&mut out, |start, o| {
            let (x, g) = (&x[start..start + o.len()], &g[start..start + o.len()]);
            match kind {
                Act::Gelu(Gelu::Tanh) => gelu_new_grad_chunk(x, g, o),
                Act::Gelu(Gelu::Erf) => gelu_erf_grad_chunk(x, g, o),
                Act::Silu => silu_grad_chunk(x, g, o),
            }
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
        super::cuda::act_bwd(s1, l1, s2, l2, self.0.cuda_kind())
    }
}

/// GELU of either kind, element-wise.
pub(crate) fn gelu(x: &Tensor, kind: Gelu) -> Result<Tensor> {
    x.contiguous()?.apply_op1(ActOp(Act::Gelu(kind)))
}

/// SiLU, element-wise.
pub(crate) fn silu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(ActOp(Act::Silu))
}
