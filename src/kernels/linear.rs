//! A dense layer as one op: `y = x Wᵀ + b` (`nn.Linear`, `W [out, in]`) or `y = x W + b`
//! (GPT-2's `Conv1D`, `W [in, out]`), forward and backward straight on gemm.
//!
//! Composed from candle ops, a layer is a matmul, a broadcast add of the bias, and in backward a
//! transposed copy plus a strided `sum` over rows for the bias gradient: the bias add and that
//! sum alone cost more than the matmul for the small models trained on CPU. Here the bias is
//! written into the output first and gemm accumulates onto it; the bias gradient is one pass
//! over the rows; transposes are strides, never copies.
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{repeat_row, slice, zeros};
use super::gemm::matmul;
use super::reduce::sum_rows;
use super::view::View;

/// `x [.., d]` as a matrix: `(rows, d)`. Leading dimensions are taken as rows here rather than
/// reshaped away by the caller, because every reshape in the graph costs a gradient copy.
fn matrix(l: &Layout) -> (usize, usize) {
    let d = l.dims().last().copied().unwrap_or(1).max(1);
    (l.shape().elem_count() / d, d)
}

/// `dims` with the last dimension replaced by `last`.
pub(super) fn with_last(l: &Layout, last: usize) -> Shape {
    let mut dims = l.dims().to_vec();
    if let Some(d) = dims.last_mut() {
        *d = last;
    }
    Shape::from(dims)
}

/// `(rows, d_in, d_out)` of `x [.., d_in]` times the weight.
pub(super) fn dims(x: &Layout, w: &Layout, conv1d: bool) -> Result<(usize, usize, usize)> {
    let (rows, d_in) = matrix(x);
    let (a, b) = w.shape().dims2()?;
    let (w_in, d_out) = if conv1d { (a, b) } else { (b, a) };
    if w_in != d_in {
        candle_core::bail!("linear: input has {d_in} features, the weight expects {w_in}");
    }
    Ok((rows, d_in, d_out))
}

/// The weight as the `[d_in, d_out]` right-hand side of `x · W`.
fn weight_view(w: &[f32], d_in: usize, d_out: usize, conv1d: bool) -> View {
    if conv1d {
        View::rows(w, d_out)
    } else {
        View::rows_t(w, d_in)
    }
}

pub(super) fn forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (rows, d_in, d_out): (usize, usize, usize),
    conv1d: bool,
) -> Vec<f32> {
    let mut out = match bias {
        Some(b) => repeat_row(b, rows),
        None => zeros(rows * d_out),
    };
    // SAFETY: the views cover exactly `x [rows, d_in]` and the weight; `out` is fresh.
    unsafe {
        matmul(
            (rows, d_out, d_in),
            out.as_mut_ptr(),
            d_out,
            bias.is_some(),
            View::rows(x, d_in),
            weight_view(w, d_in, d_out, conv1d),
            1.0,
            true,
        )
    };
    out
}

#[derive(Clone, Copy)]
pub(super) struct LinearOp {
    pub(super) conv1d: bool,
}

impl LinearOp {
    /// The gradients of the input and the weight, each only when something upstream of it
    /// trains (`track_op`): a frozen weight (a LoRA model's base) gets none, which saves a
    /// matmul and a weight-sized buffer per layer.
    fn grads(self, x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let dx = match x.track_op() {
            true => Some(g.apply_op2_no_bwd(w, &InputGrad(self))?),
            false => None,
        };
        let dw = match w.track_op() {
            true => Some(g.apply_op2_no_bwd(x, &WeightGrad(self))?),
            false => None,
        };
        Ok((dx, dw))
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "massivetext-linear"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1, l2, self.conv1d)?;
        let (x, w) = (slice(s1, l1, "linear")?, slice(s2, l2, "linear")?);
        let out = forward(x, w, None, d, self.conv1d);
        Ok((CpuStorage::F32(out), with_last(l1, d.2)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.grads(x, w, g)
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "massivetext-linear-bias"
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
        let d = dims(l1, l2, self.conv1d)?;
        let (x, w) = (slice(s1, l1, "linear")?, slice(s2, l2, "linear")?);
        let b = slice(s3, l3, "linear")?;
        if b.len() != d.2 {
            candle_core::bail!("linear: bias has {} elements, expected {}", b.len(), d.2);
        }
        let out = forward(x, w, Some(b), d, self.conv1d);
        Ok((CpuStorage::F32(out), with_last(l1, d.2)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = self.grads(x, w, g)?;
        let db = match b.track_op() {
            true => Some(sum_rows(g)?),
            false => None,
        };
        Ok((dx, dw, db))
    }
}

/// `dx [rows, d_in] = g [rows, d_out] · Wᵀ`.
pub(super) struct InputGrad(pub(super) LinearOp);

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "massivetext-linear-dx"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, w) = (slice(s1, l1, "linear_dx")?, slice(s2, l2, "linear_dx")?);
        let (rows, d_out) = matrix(l1);
        let d_in = w.len() / d_out;
        // Wᵀ as `[d_out, d_in]`: the transpose of the forward's right-hand side.
        let wt = if self.0.conv1d {
            View::rows_t(w, d_out)
        } else {
            View::rows(w, d_in)
        };
        let mut out = zeros(rows * d_in);
        // SAFETY: the views cover `g [rows, d_out]` and the weight; `out` is fresh.
        unsafe {
            matmul(
                (rows, d_in, d_out),
                out.as_mut_ptr(),
                d_in,
                false,
                View::rows(g, d_out),
                wt,
                1.0,
                true,
            )
        };
        Ok((CpuStorage::F32(out), with_last(l1, d_in)))
    }
}

/// `dW = gᵀ · x` (`[d_out, d_in]`, Linear) or `xᵀ · g` (`[d_in, d_out]`, Conv1D).
pub(super) struct WeightGrad(pub(super) LinearOp);

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "massivetext-linear-dw"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, x) = (slice(s1, l1, "linear_dw")?, slice(s2, l2, "linear_dw")?);
        let (rows, d_out) = matrix(l1);
        let d_in = matrix(l2).1;
        let mut out = zeros(d_in * d_out);
        let (m, n, lhs, rhs, shape) = if self.0.conv1d {
            let (lhs, rhs) = (View::rows_t(x, d_in), View::rows(g, d_out));
            (d_in, d_out, lhs, rhs, (d_in, d_out))
        } else {
            let (lhs, rhs) = (View::rows_t(g, d_out), View::rows(x, d_in));
            (d_out, d_in, lhs, rhs, (d_out, d_in))
        };
        // SAFETY: the views cover `g` and `x`; `out` is fresh and `m * n` long.
        unsafe {
            matmul(
                (m, n, rows),
                out.as_mut_ptr(),
                n,
                false,
                lhs,
                rhs,
                1.0,
                true,
            )
        };
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

/// `x [.., d_in]` through the layer (CPU f32 tensors).
pub(crate) fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    conv1d: bool,
) -> Result<Tensor> {
    let op = LinearOp { conv1d };
    let (x, w) = (x.contiguous()?, weight.contiguous()?);
    let y = match bias {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op)?,
        None => x.apply_op2(&w, op)?,
    };
    Ok(y)
}
