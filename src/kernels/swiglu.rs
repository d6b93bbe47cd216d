//! SwiGLU, the gate of Llama's MLP: `silu(gate) * up`, element-wise, as one op with both
//! gradients from one backward pass (composed: a SiLU, a product, and in backward the SiLU's
//! six ops plus two products).
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::cpu::{elementwise, slice, zeros};
use super::vmath;

/// `sigmoid(x)` through the C library's `expf` (see [`swiglu_chunk`] for why not `vmath`'s).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

vmath::multiversion! {
    /// `o = silu(g) u` over a chunk. The sigmoid calls the C library's `expf`: measured at the
    /// Llama MLP's size (benches/llama_ops.rs), this loop ran at twice the time with `vmath`'s.
    fn swiglu_chunk(g: &[f32], u: &[f32], o: &mut [f32]) {
        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
            *o = g * sigmoid(g) * u;
        }
    }
}

vmath::multiversion! {
    /// `dg = dy u silu'(g)` or, with `up_grad`, `du = dy silu(g)`, over a chunk.
    fn swiglu_grad_chunk(g: &[f32], u: &[f32], dy: &[f32], o: &mut [f32], up_grad: bool) {
        if up_grad {
            for ((o, &g), &dy) in o.iter_mut().zip(g).zip(dy) {
                *o = dy * g * sigmoid(g);
            }
        } else {
            for (((o, &g), &u), &dy) in o.iter_mut().zip(g).zip(u).zip(dy) {
                let s = sigmoid(g);
                *o = dy * u * s * (1.0 + g * (1.0 - s));
            }
        }
    }
}

fn same_len(a: &Layout, b: &Layout, op: &str) -> Result<()> {
    if a.dims() != b.dims() {
        bail!(
            "{op}: gate {:?} and up {:?} must have the same shape",
            a.dims(),
            b.dims()
        );
    }
    Ok(())
}

struct SwigluOp;

impl CustomOp2 for SwigluOp {
    fn name(&self) -> &'static str {
        "massivetext-swiglu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_len(l1, l2, "swiglu")?;
        let (g, u) = (slice(s1, l1, "swiglu")?, slice(s2, l2, "swiglu")?);
        let mut out = zeros(g.len());
        elementwise(&mut out, |start, o| {
            let end = start + o.len();
            swiglu_chunk(&g[start..end], &u[start..end], o)
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
        super::cuda::swiglu_fwd((s1, l1), (s2, l2))
    }
    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // packed[0] = d gate, packed[1] = d up
        let packed = gate.apply_op3_no_bwd(up, &dy.contiguous()?, &SwigluBwd)?;
        let d_gate = packed.get(0)?.reshape(gate.shape())?;
        let d_up = packed.get(1)?.reshape(up.shape())?;
        Ok((Some(d_gate), Some(d_up)))
    }
}

struct SwigluBwd;

impl CustomOp3 for SwigluBwd {
    fn name(&self) -> &'static str {
        "massivetext-swiglu-bwd"
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
        same_len(l1, l2, "swiglu backward")?;
        same_len(l1, l3, "swiglu backward")?;
        let (g, u, dy) = (
            slice(s1, l1, "swiglu_bwd")?,
            slice(s2, l2, "swiglu_bwd")?,
            slice(s3, l3, "swiglu_bwd")?,
        );
        let n = g.len();
        let mut out = zeros(2 * n);
        // out is [d gate | d up]: a chunk that straddles the two halves is split at n
        elementwise(&mut out, |start, o| {
            let mut at = start;
            let mut rest = o;
            while !rest.is_empty() {
                let (up_grad, i) = if at < n { (false, at) } else { (true, at - n) };
                let len = rest.len().min(if at < n { n - at } else { 2 * n - at });
                let (head, tail) = rest.split_at_mut(len);
                let r = i..i + len;
                swiglu_grad_chunk(&g[r.clone()], &u[r.clone()], &dy[r], head, up_grad);
                at += len;
                rest = tail;
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
        super::cuda::swiglu_bwd((s1, l1), (s2, l2), (s3, l3))
    }
}

/// `silu(gate) * up` for two tensors of one shape (f32, on the CPU or, built with `cuda`, the GPU).
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwigluOp)
}
