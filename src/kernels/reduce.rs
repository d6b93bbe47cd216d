//! Column sums over rows, the gradient of a bias or a LayerNorm weight.
use candle_core::{CpuStorage, CustomOp1, D, Layout, Result, Shape, Tensor};

use super::cpu::{OutPtr, par_for, slice};

/// Column sums of a `[rows, d]` matrix: the gradient of a bias or LayerNorm weight. candle's
/// `sum(0)` walks the matrix with a stride of `d`; here each row is added into one accumulator
/// row, which vectorises.
struct SumRows;

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "massivetext-sum-rows"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "sum_rows")?;
        let d = l.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; d];
        // Large matrices: threads take blocks of columns, each summing its block over all
        // rows (a summing pass is too cheap to share below about a million elements).
        const COLS: usize = 64;
        let ptr = OutPtr(out.as_mut_ptr());
        par_for(d.div_ceil(COLS), x.len() / 32, |range| {
            let (c0, c1) = (range.start * COLS, d.min(range.end * COLS));
            // SAFETY: columns c0..c1 are written only by this chunk.
            let acc = unsafe { ptr.slice(c0, c1 - c0) };
            for row in x.chunks_exact(d.max(1)) {
                acc.iter_mut().zip(&row[c0..c1]).for_each(|(o, v)| *o += v);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(d)))
    }
}

/// `x [.., d]` summed over all leading dimensions to `[d]` (no backward: used inside backward
/// passes).
pub(crate) fn sum_rows(x: &Tensor) -> Result<Tensor> {
    if !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32) {
        let d = x.dim(D::Minus1)?;
        return x.reshape(((), d))?.sum(0);
    }
    x.contiguous()?.apply_op1_no_bwd(&SumRows)
}

/// `sum(x²)` over a CPU f32 tensor, accumulated in f64, as an f32 scalar tensor. Large tensors
/// are summed in fixed chunks on the pool, and the chunks' sums added in order, so the result
/// does not depend on the threads.
pub(crate) fn sum_squares(x: &Tensor) -> Result<Tensor> {
    const CHUNK: usize = 1 << 14;
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let total = match &*storage {
        candle_core::Storage::Cpu(s) => {
            let v = slice(s, layout, "sum_squares")?;
            let square_sum = |c: &[f32]| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            let mut sums = vec![0f64; v.len().div_ceil(CHUNK)];
            let out = OutPtr(sums.as_mut_ptr());
            par_for(sums.len(), v.len(), |range| {
                for c in range {
                    let chunk = &v[c * CHUNK..v.len().min((c + 1) * CHUNK)];
                    // SAFETY: slot c is inside `sums` and written only by this task.
                    unsafe { out.slice(c, 1)[0] = square_sum(chunk) };
                }
            });
            sums.iter().sum::<f64>()
        }
        _ => candle_core::bail!("sum_squares: expected a CPU tensor"),
    };
    Tensor::new(total as f32, x.device())
}
