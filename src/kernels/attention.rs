//! Multi-head self-attention as one op, from the packed projections `qkv [b, t, 3h]` to the
//! merged heads `y [b, t, h]`: `softmax(q kᵀ / sqrt(d) + mask) v` per head, forward and backward.
//!
//! Composed from candle ops, attention is three head-split copies, a scale, two batched matmuls,
//! a mask add, a softmax and a merge copy, each with its own allocation and backward; for the
//! small models trained on CPU that bookkeeping costs more than the arithmetic. Here each
//! (sequence, head) pair is one task: gemm reads q, k and v in place through strides, and the
//! probabilities are kept for the backward pass. Attention dropout (BERT's fine-tuning) is applied
//! to each task's probabilities as they are used, with the mask of `kernels::dropout` for the same
//! `(seed, stream)`, regenerated in the backward pass rather than stored. The composed version
//! stays the path for KV-cached decoding and `output_attentions`, and is the reference in the
//! tests.
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};

use super::cpu::{OutPtr, Saved, par_for, slice, zeros};
use super::dropout::KeepMask;
use super::gemm::matmul;
use super::view::View;
use super::vmath;

/// Sizes of one call: batch, sequence, heads, head width.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    n_head: usize,
    hd: usize,
}

impl Dims {
    fn of(l: &Layout, n_head: usize) -> Result<Self> {
        let (b, t, h3) = l.shape().dims3()?;
        if h3 % (3 * n_head) != 0 {
            bail!("attention: qkv width {h3} is not 3 x heads ({n_head}) x head width");
        }
        Ok(Self {
            b,
            t,
            n_head,
            hd: h3 / 3 / n_head,
        })
    }
    fn h(self) -> usize {
        self.n_head * self.hd
    }
    /// Where head `hh` of sequence `bi` starts in `qkv` (its query columns) and in `y`.
    fn offsets(self, task: usize) -> (usize, usize) {
        let (bi, hh) = (task / self.n_head, task % self.n_head);
        (
            bi * self.t * 3 * self.h() + hh * self.hd,
            bi * self.t * self.h() + hh * self.hd,
        )
    }
}

/// Inverted dropout on the probabilities `[b, heads, t, t]`: element `i` kept (times `scale`)
/// where `keep.keeps(i)`.
#[derive(Clone, Copy)]
pub(crate) struct ProbsDropout {
    keep: KeepMask,
    /// `1 / (1 - p)` in f32, the factor `kernels::dropout` multiplies kept values by.
    scale: f32,
}

impl ProbsDropout {
    pub(crate) fn new(p: f64, seed: u64, stream: u64) -> Self {
        Self {
            keep: KeepMask::new(p, seed, stream),
            scale: (1.0 / (1.0 - p)) as f32,
        }
    }

    /// `out = x ∘ mask · scale` for the `t × t` block of `task` (`x` and `out` that block).
    fn apply(self, task: usize, x: &[f32], out: &mut [f32]) {
        let start = task * x.len();
        for (j, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            *o = self.at(start + j, v);
        }
    }

    /// The backward pass's two uses of the block's mask, drawn once per element: `dp ∘= D`
    /// in place and `out = p ∘ D`.
    fn apply_both(self, task: usize, p: &[f32], dp: &mut [f32], out: &mut [f32]) {
        let start = task * p.len();
        for (j, ((o, d), &v)) in out.iter_mut().zip(dp.iter_mut()).zip(p).enumerate() {
            let keep = self.keep.keeps(start + j);
            *o = if keep { v * self.scale } else { 0.0 };
            *d = if keep { *d * self.scale } else { 0.0 };
        }
    }

    #[inline(always)]
    fn at(self, i: usize, v: f32) -> f32 {
        if self.keep.keeps(i) {
            v * self.scale
        } else {
            0.0
        }
    }
}

struct AttentionOp {
    n_head: usize,
    /// Additive mask `[b, t, t]` (0 or `f32::MIN`), shared by the heads.
    mask: Option<Arc<Vec<f32>>>,
    dropout: Option<ProbsDropout>,
    /// The probabilities `[b, heads, t, t]` of the forward pass (before dropout), for the
    /// backward pass.
    probs: Saved,
}

impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "massivetext-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = slice(s, l, "attention")?;
        let d = Dims::of(l, self.n_head)?;
        let (t, h, hd) = (d.t, d.h(), d.hd);
        if let Some(m) = &self.mask
            && m.len() != d.b * t * t
        {
            bail!(
                "attention: mask has {} elements, expected {}",
                m.len(),
                d.b * t * t
            );
        }
        let scale = 1.0 / (hd as f32).sqrt();
        let tasks = d.b * d.n_head;
        let mut y = zeros(d.b * t * h);
        let mut probs = zeros(tasks * t * t);
        let (y_ptr, p_ptr) = (OutPtr(y.as_mut_ptr()), OutPtr(probs.as_mut_ptr()));
        par_for(tasks, tasks * t * t * hd, |range| {
            let mut dropped = vec![0f32; if self.dropout.is_some() { t * t } else { 0 }];
            for task in range {
                let (q_off, y_off) = d.offsets(task);
                // SAFETY: task `task` alone owns this probability block.
                let p = unsafe { p_ptr.slice(task * t * t, t * t) };
                let q = View::rows(qkv, 3 * h).at(q_off);
                let kt = View::rows_t(qkv, 3 * h).at(q_off + h);
                // SAFETY: q and k lie inside qkv; p is this task's own block.
                unsafe { matmul((t, t, hd), p.as_mut_ptr(), t, false, q, kt, scale, false) };
                let mask = self
                    .mask
                    .as_ref()
                    .map(|m| &m[(task / d.n_head) * t * t..][..t * t]);
                for (i, row) in p.chunks_exact_mut(t).enumerate() {
                    if let Some(m) = mask {
                        row.iter_mut()
                            .zip(&m[i * t..(i + 1) * t])
                            .for_each(|(s, m)| *s += m);
                    }
                    vmath::softmax_in_place(row);
                }
                let p: &[f32] = match self.dropout {
                    Some(drop) => {
                        drop.apply(task, p, &mut dropped);
                        &dropped
                    }
                    None => p,
                };
                let v = View::rows(qkv, 3 * h).at(q_off + 2 * h);
                // SAFETY: this task's output columns `hh * hd..` of sequence `bi` are written
                // only here; p and v are live.
                unsafe {
                    matmul(
                        (t, hd, t),
                        y_ptr.ptr().add(y_off),
                        h,
                        false,
                        View::rows(p, t),
                        v,
                        1.0,
                        false,
                    )
                };
            }
        });
        self.probs.put(probs);
        Ok((CpuStorage::F32(y), Shape::from((d.b, t, h))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let probs = self.probs.get("attention")?;
        let op = AttentionBwd {
            n_head: self.n_head,
            dropout: self.dropout,
            probs,
        };
        Ok(Some(qkv.apply_op2_no_bwd(&g.contiguous()?, &op)?))
    }
}

/// `dqkv` from `qkv` and `dy`: with `dS = P ∘ (dP − rowsum(dP ∘ P))` and `dP = dy vᵀ`,
/// `dq = dS k / sqrt(d)`, `dk = dSᵀ q / sqrt(d)`, `dv = Pᵀ dy`. With dropout `D` (mask times
/// scale), `y = (P ∘ D) v`, so `dP = (dy vᵀ) ∘ D` and `dv = (P ∘ D)ᵀ dy`.
struct AttentionBwd {
    n_head: usize,
    dropout: Option<ProbsDropout>,
    probs: Arc<Vec<f32>>,
}

impl CustomOp2 for AttentionBwd {
    fn name(&self) -> &'static str {
        "massivetext-attention-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (qkv, g) = (
            slice(s1, l1, "attention_bwd")?,
            slice(s2, l2, "attention_bwd")?,
        );
        let d = Dims::of(l1, self.n_head)?;
        let (t, h, hd) = (d.t, d.h(), d.hd);
        let tasks = d.b * d.n_head;
        if self.probs.len() != tasks * t * t || g.len() != d.b * t * h {
            bail!("attention backward: shapes do not match the forward pass");
        }
        let scale = 1.0 / (hd as f32).sqrt();
        let mut dqkv = zeros(qkv.len());
        let out = OutPtr(dqkv.as_mut_ptr());
        par_for(tasks, tasks * t * t * hd, |range| {
            let mut ds = vec![0f32; t * t];
            let mut dropped = vec![0f32; if self.dropout.is_some() { t * t } else { 0 }];
            for task in range {
                let (q_off, y_off) = d.offsets(task);
                let p = &self.probs[task * t * t..(task + 1) * t * t];
                let dy = View::rows(g, h).at(y_off);
                let vt = View::rows_t(qkv, 3 * h).at(q_off + 2 * h);
                // SAFETY: dy, v, p and ds are live; ds is this chunk's scratch.
                unsafe { matmul((t, t, hd), ds.as_mut_ptr(), t, false, dy, vt, 1.0, false) };
                // the probabilities the values were weighted by (after dropout), for dv
                let used: &[f32] = match self.dropout {
                    Some(drop) => {
                        drop.apply_both(task, p, &mut ds, &mut dropped);
                        &dropped
                    }
                    None => p,
                };
                for (dp, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                    let dot: f32 = dp.iter().zip(pr).map(|(a, b)| a * b).sum();
                    dp.iter_mut().zip(pr).for_each(|(a, b)| *a = b * (*a - dot));
                }
                let k = View::rows(qkv, 3 * h).at(q_off + h);
                let q = View::rows(qkv, 3 * h).at(q_off);
                let ds_view = View::rows(&ds, t);
                // SAFETY: this task alone writes its head's q, k and v columns of sequence bi
                // in dqkv; every read view is live.
                unsafe {
                    let dst = out.ptr().add(q_off);
                    matmul((t, hd, t), dst, 3 * h, false, ds_view, k, scale, false);
                    let dst = out.ptr().add(q_off + h);
                    let ds_t = View::rows_t(&ds, t);
                    matmul((t, hd, t), dst, 3 * h, false, ds_t, q, scale, false);
                    let dst = out.ptr().add(q_off + 2 * h);
                    let p_t = View {
                        rs: 1,
                        cs: t,
                        ..View::rows(used, t)
                    };
                    matmul((t, hd, t), dst, 3 * h, false, p_t, dy, 1.0, false);
                }
            }
        });
        Ok((CpuStorage::F32(dqkv), l1.shape().clone()))
    }
}

/// Attention over `qkv [b, t, 3h]` (CPU f32) with an optional additive mask `[b, 1, t, t]` and
/// dropout on the probabilities. A mask shared by the batch (`[1, 1, t, t]`) is broadcast, as
/// the composed path broadcasts it.
pub(crate) fn self_attention(
    qkv: &Tensor,
    mask: Option<&Tensor>,
    n_head: usize,
    dropout: Option<ProbsDropout>,
) -> Result<Tensor> {
    let (b, t, _) = qkv.dims3()?;
    let mask = match mask {
        Some(m) => Some(Arc::new(
            m.broadcast_as((b, 1, t, t))?
                .flatten_all()?
                .to_vec1::<f32>()?,
        )),
        None => None,
    };
    let op = AttentionOp {
        n_head,
        mask,
        dropout,
        probs: Saved::default(),
    };
    qkv.contiguous()?.apply_op1(op)
}
