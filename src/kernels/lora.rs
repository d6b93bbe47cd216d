//! A dense layer with a LoRA adapter as one op: `y = x Wᵀ + b + h Bᵀ` (`x W + b + h Bᵀ` for
//! GPT-2's `Conv1D`), where `W` and `b` are the frozen base weights, `h = scale · x Aᵀ` the
//! adapter's rank-`r` middle and `B [out, r]` its up-projection (peft's `lora.Linear`).
//!
//! Composed, the layer leaves three activations of its output's width in the graph for the
//! backward pass: the base product, the adapter's product and their sum. None of the three is
//! needed by the gradients (`dx = g W`, `dh = g B`, `dB = gᵀ h`), but candle keeps every node a
//! later node was made from. Here gemm accumulates the adapter's product onto the base product's
//! buffer and only the sum exists: on SmolLM2-135M with adapters on all seven projections that
//! is two thirds of the projections' activations, a fifth of a LoRA step's peak memory.
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor, bail};

use super::cpu::slice;
use super::gemm::matmul;
use super::linear::{InputGrad, LinearOp, WeightGrad, dims, forward, with_last};
use super::view::View;

/// The op over the inputs that train, `(x, h, B)`; the frozen base weights ride along.
struct LoraLinearOp {
    weight: Tensor,
    bias: Option<Tensor>,
    conv1d: bool,
}

/// The contiguous f32 data of a CPU tensor held by the op (not one of its inputs).
fn held<'a>(s: &'a Storage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => slice(c, l, "lora_linear"),
        _ => bail!("lora_linear: the base weights must be on the CPU"),
    }
}

impl CustomOp3 for LoraLinearOp {
    fn name(&self) -> &'static str {
        "massivetext-lora-linear"
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
        let (ws, wl) = self.weight.storage_and_layout();
        let w = held(&ws, wl)?;
        let d @ (rows, _, d_out) = dims(l1, wl, self.conv1d)?;
        let b_guard = self.bias.as_ref().map(|b| b.storage_and_layout());
        let bias = match &b_guard {
            Some((s, l)) => Some(held(s, l)?),
            None => None,
        };
        if bias.is_some_and(|b| b.len() != d_out) {
            bail!("lora_linear: the bias does not have {d_out} elements");
        }
        let x = slice(s1, l1, "lora_linear")?;
        let (h, up) = (slice(s2, l2, "lora_linear")?, slice(s3, l3, "lora_linear")?);
        let r = l2.dims().last().copied().unwrap_or(0);
        if l3.dims() != [d_out, r] || h.len() != rows * r {
            bail!(
                "lora_linear: the adapter's middle {:?} and up-projection {:?} do not fit a layer of {rows} rows to {d_out} features",
                l2.dims(),
                l3.dims()
            );
        }
        let mut out = forward(x, w, bias, d, self.conv1d);
        // SAFETY: `h [rows, r]` and `B [d_out, r]` (read transposed) are covered by their
        // views; `out [rows, d_out]` is this op's own buffer.
        unsafe {
            matmul(
                (rows, d_out, r),
                out.as_mut_ptr(),
                d_out,
                true,
                View::rows(h, r),
                View::rows_t(up, r),
                1.0,
                true,
            )
        };
        Ok((CpuStorage::F32(out), with_last(l1, d_out)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        h: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let base = LinearOp {
            conv1d: self.conv1d,
        };
        let adapter = LinearOp { conv1d: false };
        let dx = match x.track_op() {
            true => Some(g.apply_op2_no_bwd(&self.weight, &InputGrad(base))?),
            false => None,
        };
        let dh = match h.track_op() {
            true => Some(g.apply_op2_no_bwd(up, &InputGrad(adapter))?),
            false => None,
        };
        let dup = match up.track_op() {
            true => Some(g.apply_op2_no_bwd(h, &WeightGrad(adapter))?),
            false => None,
        };
        Ok((dx, dh, dup))
    }
}

/// `x [.., d_in]` through a frozen layer plus its adapter (CPU f32 tensors; the caller checks
/// that `weight` and `bias` do not train).
pub(crate) fn lora_linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    conv1d: bool,
    h: &Tensor,
    up: &Tensor,
) -> Result<Tensor> {
    let op = LoraLinearOp {
        weight: weight.contiguous()?,
        bias: bias.map(Tensor::contiguous).transpose()?,
        conv1d,
    };
    x.contiguous()?
        .apply_op3(&h.contiguous()?, &up.contiguous()?, op)
}
