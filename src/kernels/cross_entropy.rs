//! Mean cross-entropy over rows of logits with `-100` labels left out, as
//! `torch.nn.functional.cross_entropy`, keeping each row's log-sum-exp for the backward pass.
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::cpu::{OutPtr, Saved, par_for, rows_mut, slice, zeros};
use super::vmath;

/// Label value that is left out of the loss, as in PyTorch (`ignore_index`) and Hugging Face.
/// The one definition in the crate: `train` and `metrics` re-export it.
pub const IGNORE_INDEX: i64 = -100;

fn labels_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [i64]> {
    let data = match s {
        CpuStorage::I64(v) => v.as_slice(),
        _ => bail!("cross_entropy: labels must be i64"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("cross_entropy: labels must be contiguous"),
    }
}

pub(crate) fn check_label(t: i64, v: usize) -> Result<()> {
    if t != IGNORE_INDEX && (t < 0 || t as usize >= v) {
        bail!("label {t} is outside the vocabulary (vocab_size {v}); use -100 to ignore a position")
    }
    Ok(())
}

/// Keeps each row's log-sum-exp from the forward pass, so the backward pass is one
/// `exp(x - lse)` per logit instead of recomputing the row's maximum and sum.
#[derive(Default)]
struct CrossEntropyOp {
    lse: Saved,
}

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "massivetext-cross-entropy"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "cross_entropy")?;
        let t = labels_slice(s2, l2)?;
        let v = l1.dims().last().copied().unwrap_or(1);
        for &ti in t {
            check_label(ti, v)?;
        }
        let mut per_row = vec![0f32; t.len()];
        let mut lse = vec![0f32; t.len()];
        let (ptr, lse_ptr) = (OutPtr(per_row.as_mut_ptr()), OutPtr(lse.as_mut_ptr()));
        // one output per row, but `v` elements of work each: parallel by the logits' size
        par_for(t.len(), x.len(), |range| {
            for r in range {
                let ti = t[r];
                if ti != IGNORE_INDEX {
                    let xr = &x[r * v..(r + 1) * v];
                    let max = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let l = max + vmath::sum_exp_shifted(xr, max).ln();
                    // SAFETY: row r's loss and log-sum-exp are written only by this chunk.
                    unsafe {
                        ptr.slice(r, 1)[0] = l - xr[ti as usize];
                        lse_ptr.slice(r, 1)[0] = l;
                    }
                }
            }
        });
        self.lse.put(lse);
        let total: f64 = per_row.iter().map(|&l| l as f64).sum();
        let count = t.iter().filter(|&&ti| ti != IGNORE_INDEX).count();
        // all positions ignored: NaN, as torch's mean reduction gives
        let loss = (total / count as f64) as f32;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }
    /// The GPU's backward pass recomputes each row's log-sum-exp (one more pass over the row)
    /// instead of keeping a device buffer in this op.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::cross_entropy_fwd((s1, l1), (s2, l2))
    }
    fn bwd(
        &self,
        x: &Tensor,
        t: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let lse = if x.device().is_cpu() {
            self.lse.get("cross_entropy")?
        } else {
            Default::default()
        };
        let dx = x.apply_op3_no_bwd(t, &g.contiguous()?, &CrossEntropyBwd { lse })?;
        Ok((Some(dx), None))
    }
}

struct CrossEntropyBwd {
    lse: std::sync::Arc<Vec<f32>>,
}

impl CustomOp3 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "massivetext-cross-entropy-bwd"
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
        let x = slice(s1, l1, "cross_entropy_bwd")?;
        let t = labels_slice(s2, l2)?;
        let g = slice(s3, l3, "cross_entropy_bwd")?[0];
        let v = l1.dims().last().copied().unwrap_or(1);
        let count = t.iter().filter(|&&ti| ti != IGNORE_INDEX).count();
        let scale = g / count.max(1) as f32;
        let mut out = zeros(x.len());
        rows_mut(&mut out, v, |r, o| {
            let ti = t[r];
            if ti == IGNORE_INDEX {
                return;
            }
            // softmax(x) = exp(x - lse), times the mean's scale; minus it at the label
            vmath::exp_shifted_scaled(&x[r * v..(r + 1) * v], self.lse[r], scale, o);
            o[ti as usize] -= scale;
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
        super::cuda::cross_entropy_bwd((s1, l1), (s2, l2), (s3, l3))
    }
}

/// Mean cross-entropy of `logits [rows, vocab]` (CPU f32, contiguous) against `labels [rows]`
/// (i64, contiguous).
pub(crate) fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    logits.apply_op2(labels, CrossEntropyOp::default())
}
