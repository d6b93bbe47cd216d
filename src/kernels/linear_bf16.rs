//! A dense layer whose weight is stored in bf16 and multiplied in f32, for decoding: each step
//! streams every weight from memory once per token, so half the bytes lifts the bound the
//! memory sets, while activations, biases, norms, the KV cache and every sum stay f32 (the
//! "weight-only" half precision of CPU inference engines). Inference only: no backward.
//!
//! Only products with a handful of rows come here (a decoding step); a prompt's longer
//! product widens the weight to f32 first ([`super::linear`]), where gemm's blocking pays.
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use half::slice::HalfFloatSliceExt;

use super::cpu::{OutPtr, par_for, slice};
use super::gemv::{Bf16Bits, GEMV_MAX_ROWS, gemv_bf16, split_k};
use super::linear::{dims, with_last};

/// Columns of the output per parallel task: at least this many.
const MIN_COLS: usize = 64;
/// Tasks per thread, so that the others make up for a thread held up by another process.
const BLOCKS_PER_THREAD: usize = 3;

/// The bf16 weight's bits, contiguous.
fn bits<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [Bf16Bits]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::BF16(v), Some((a, b))) => Ok(v[a..b].reinterpret_cast()),
        _ => bail!("linear_bf16: expected a contiguous bf16 weight"),
    }
}

fn forward(
    x: &[f32],
    w: &[Bf16Bits],
    bias: Option<&[f32]>,
    (rows, d_in, d_out): (usize, usize, usize),
    conv1d: bool,
) -> Result<Vec<f32>> {
    if rows > GEMV_MAX_ROWS {
        bail!("linear_bf16: {rows} rows; more than {GEMV_MAX_ROWS} go through the f32 product");
    }
    let mut out = match bias {
        Some(b) => b.repeat(rows),
        None => vec![0f32; rows * d_out],
    };
    if conv1d {
        // SAFETY: `w` holds `d_in · d_out` elements (checked by `dims`); bands lie inside d_in.
        let mut dst: Vec<&mut [f32]> = out.chunks_exact_mut(d_out.max(1)).collect();
        split_k((rows, d_out, d_in), &mut dst, true, |band, r| unsafe {
            gemv_bf16(x, (d_out, d_in), w, true, band, r)
        });
        return Ok(out);
    }
    // the dot form: each task streams whole weight rows (its columns of the output)
    let dst = OutPtr(out.as_mut_ptr());
    let cols = |c: std::ops::Range<usize>| {
        let mut r: Vec<&mut [f32]> = (0..rows)
            // SAFETY: each task writes columns `c` of every row, and tasks' ranges are disjoint.
            .map(|i| unsafe { dst.slice(i * d_out + c.start, c.len()) })
            .collect();
        // SAFETY: `w` holds `d_in · d_out` elements (checked by `dims`), `c.end ≤ d_out`.
        unsafe { gemv_bf16(x, (d_out, d_in), w, false, c, &mut r) };
    };
    let threads = crate::threads::num_threads();
    let blocks = (threads * BLOCKS_PER_THREAD).min(d_out / MIN_COLS).max(1);
    let size = d_out.div_ceil(blocks).max(1);
    par_for(d_out.div_ceil(size), d_in * d_out, |range| {
        for i in range {
            cols(i * size..d_out.min((i + 1) * size));
        }
    });
    Ok(out)
}

#[derive(Clone, Copy)]
struct LinearBf16 {
    conv1d: bool,
}

impl CustomOp2 for LinearBf16 {
    fn name(&self) -> &'static str {
        "massivetext-linear-bf16"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1, l2, self.conv1d)?;
        let out = forward(
            slice(s1, l1, "linear_bf16")?,
            bits(s2, l2)?,
            None,
            d,
            self.conv1d,
        )?;
        Ok((CpuStorage::F32(out), with_last(l1, d.2)))
    }
}

impl CustomOp3 for LinearBf16 {
    fn name(&self) -> &'static str {
        "massivetext-linear-bf16-bias"
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
        let b = slice(s3, l3, "linear_bf16")?;
        if b.len() != d.2 {
            bail!(
                "linear_bf16: bias has {} elements, expected {}",
                b.len(),
                d.2
            );
        }
        let (x, w) = (slice(s1, l1, "linear_bf16")?, bits(s2, l2)?);
        let out = forward(x, w, Some(b), d, self.conv1d)?;
        Ok((CpuStorage::F32(out), with_last(l1, d.2)))
    }
}

/// Whether `x [.., d]` is few enough rows for [`linear_bf16`].
pub(super) fn applies(x: &Tensor) -> bool {
    let d = x.dims().last().copied().unwrap_or(1).max(1);
    x.elem_count() / d <= GEMV_MAX_ROWS
}

/// `x [.., d_in]` (f32, CPU, at most [`GEMV_MAX_ROWS`] rows) through a bf16 weight.
pub(super) fn linear_bf16(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    conv1d: bool,
) -> Result<Tensor> {
    let op = LinearBf16 { conv1d };
    let (x, w) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3_no_bwd(&w, &b.contiguous()?, &op),
        None => x.apply_op2_no_bwd(&w, &op),
    }
}
