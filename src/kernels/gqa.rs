//! Grouped-query attention as one op, forward and backward: queries `q [b, heads, t, hd]` over
//! keys and values `k`, `v [b, kv, t_k, hd]`, query head `i` reading kv head `i / (heads / kv)`,
//! with an optional additive mask `[b, 1, t, t_k]`; output the merged heads `[b, t, heads * hd]`.
//!
//! Composed, each kv head is first copied once per query head sharing it (`repeat_kv`), and the
//! backward pass sums the copies' gradients back; here every query head reads its kv head in
//! place, and the backward pass handles a kv head's query heads in one task, accumulating the
//! key and value gradients as it goes (no copies, no reduction, no two tasks writing one head).
//! q, k and v are read through their strides (a transposed view costs no copy). The attention
//! over packed `qkv` of the GPT-2 family (attention.rs) is the same computation for `kv = heads`.
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor, bail};

use super::cpu::{OutPtr, Saved, par_for, zeros};
use super::gemm::matmul;
use super::strided::{Heads, readable};
use super::view::View;
use super::vmath;

/// Sizes of one call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    heads: usize,
    kv: usize,
    t: usize,
    tk: usize,
    hd: usize,
}

impl Dims {
    fn of(q: &Heads, k: &Heads, v: &Heads) -> Result<Self> {
        let ([b, heads, t, hd], [kb, kv, tk, khd]) = (q.dims, k.dims);
        if kb != b || khd != hd || v.dims != k.dims || kv == 0 || heads % kv != 0 {
            bail!(
                "gqa_attention: q {:?}, k {:?}, v {:?} do not fit [b, heads, t, hd] and \
                 [b, kv, t_k, hd] with heads a multiple of kv",
                q.dims,
                k.dims,
                v.dims
            );
        }
        Ok(Self {
            b,
            heads,
            kv,
            t,
            tk,
            hd,
        })
    }
    fn n_rep(self) -> usize {
        self.heads / self.kv
    }
    /// Width of the merged output rows.
    fn h(self) -> usize {
        self.heads * self.hd
    }
    fn scale(self) -> f32 {
        1.0 / (self.hd as f32).sqrt()
    }
}

struct GqaOp {
    /// Additive mask `[b, t, t_k]`, shared by the heads.
    mask: Option<Arc<Vec<f32>>>,
    /// The probabilities `[b, heads, t, t_k]` of the forward pass, for the backward pass
    /// (none kept for inference, see [`gqa_attention_inference`]).
    probs: Option<Saved>,
}

impl CustomOp3 for GqaOp {
    fn name(&self) -> &'static str {
        "massivetext-gqa-attention"
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
        let (q, qh) = Heads::of(s1, l1, "gqa_attention")?;
        let (k, kh) = Heads::of(s2, l2, "gqa_attention")?;
        let (v, vh) = Heads::of(s3, l3, "gqa_attention")?;
        let d = Dims::of(&qh, &kh, &vh)?;
        let (t, tk, hd, h) = (d.t, d.tk, d.hd, d.h());
        if let Some(m) = &self.mask
            && m.len() != d.b * t * tk
        {
            bail!(
                "gqa_attention: mask has {} elements, expected {} ([{}, 1, {t}, {tk}])",
                m.len(),
                d.b * t * tk,
                d.b
            );
        }
        let tasks = d.b * d.heads;
        let mut y = zeros(d.b * t * h);
        let mut probs = zeros(tasks * t * tk);
        let (y_ptr, p_ptr) = (OutPtr(y.as_mut_ptr()), OutPtr(probs.as_mut_ptr()));
        par_for(tasks, tasks * t * tk * hd, |range| {
            for task in range {
                let (bi, hh) = (task / d.heads, task % d.heads);
                let j = hh / d.n_rep();
                // SAFETY: task `task` alone owns this probability block.
                let p = unsafe { p_ptr.slice(task * t * tk, t * tk) };
                let qv = View::rows(q, qh.rs()).at(qh.head(bi, hh));
                let kt = View::rows_t(k, kh.rs()).at(kh.head(bi, j));
                // SAFETY: Heads::of checked that every row of q and k lies in its storage; p is
                // this task's own block.
                unsafe {
                    matmul(
                        (t, tk, hd),
                        p.as_mut_ptr(),
                        tk,
                        false,
                        qv,
                        kt,
                        d.scale(),
                        false,
                    )
                };
                let mask = self.mask.as_ref().map(|m| &m[bi * t * tk..][..t * tk]);
                for (i, row) in p.chunks_exact_mut(tk.max(1)).enumerate() {
                    if let Some(m) = mask {
                        row.iter_mut()
                            .zip(&m[i * tk..(i + 1) * tk])
                            .for_each(|(s, m)| *s += m);
                    }
                    vmath::softmax_in_place(row);
                }
                let vv = View::rows(v, vh.rs()).at(vh.head(bi, j));
                // SAFETY: columns `hh * hd..` of sequence `bi`'s output rows are written only by
                // this task; p and v are live.
                unsafe {
                    matmul(
                        (t, hd, tk),
                        y_ptr.ptr().add(bi * t * h + hh * hd),
                        h,
                        false,
                        View::rows(p, tk),
                        vv,
                        1.0,
                        false,
                    )
                };
            }
        });
        if let Some(saved) = &self.probs {
            saved.put(probs);
        }
        Ok((CpuStorage::F32(y), Shape::from((d.b, t, h))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let probs = match &self.probs {
            Some(saved) => saved.get("gqa_attention")?,
            None => bail!("gqa_attention: no backward pass for attention over a KV cache"),
        };
        let (dq, dk, dv) = backward(q, k, v, &g.contiguous()?, &probs)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// The storage of a CPU tensor (a guard: several may be read at once).
fn cpu(s: &Storage) -> Result<&CpuStorage> {
    match s {
        Storage::Cpu(s) => Ok(s),
        _ => bail!("gqa_attention backward: expected CPU tensors"),
    }
}

/// `dq`, `dk`, `dv` from the output gradient `g [b, t, heads * hd]`: per query head, with
/// `dP = dy vᵀ` and `dS = P ∘ (dP − rowsum(dP ∘ P))`, `dq = dS k / sqrt(hd)`,
/// `dk += dSᵀ q / sqrt(hd)`, `dv += Pᵀ dy`, the sums running over the query heads of a kv head.
fn backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    probs: &[f32],
) -> Result<(Tensor, Tensor, Tensor)> {
    let dev = q.device().clone();
    let ((qs, ql), (ks, kl), (vs, vl)) = (
        q.storage_and_layout(),
        k.storage_and_layout(),
        v.storage_and_layout(),
    );
    let (gs, gl) = g.storage_and_layout();
    let (q, qh) = Heads::of(cpu(&qs)?, ql, "gqa_attention backward")?;
    let (k, kh) = Heads::of(cpu(&ks)?, kl, "gqa_attention backward")?;
    let (v, vh) = Heads::of(cpu(&vs)?, vl, "gqa_attention backward")?;
    let g = super::cpu::slice(cpu(&gs)?, gl, "gqa_attention backward")?;
    let d = Dims::of(&qh, &kh, &vh)?;
    let (t, tk, hd, h, n_rep) = (d.t, d.tk, d.hd, d.h(), d.n_rep());
    if probs.len() != d.b * d.heads * t * tk || g.len() != d.b * t * h {
        bail!("gqa_attention backward: shapes do not match the forward pass");
    }
    let mut dq = zeros(d.b * d.heads * t * hd);
    let mut dk = zeros(d.b * d.kv * tk * hd);
    let mut dv = zeros(d.b * d.kv * tk * hd);
    let (dq_ptr, dk_ptr, dv_ptr) = (
        OutPtr(dq.as_mut_ptr()),
        OutPtr(dk.as_mut_ptr()),
        OutPtr(dv.as_mut_ptr()),
    );
    let tasks = d.b * d.kv;
    par_for(tasks, tasks * n_rep * t * tk * hd, |range| {
        let mut ds = vec![0f32; t * tk];
        for task in range {
            let (bi, j) = (task / d.kv, task % d.kv);
            let kv_off = task * tk * hd;
            for r in 0..n_rep {
                let hh = j * n_rep + r;
                let p = &probs[(bi * d.heads + hh) * t * tk..][..t * tk];
                let dy = View::rows(g, h).at(bi * t * h + hh * hd);
                let vt = View::rows_t(v, vh.rs()).at(vh.head(bi, j));
                // SAFETY: dy, v, p and ds are live; ds is this chunk's scratch.
                unsafe { matmul((t, tk, hd), ds.as_mut_ptr(), tk, false, dy, vt, 1.0, false) };
                for (dp, pr) in ds
                    .chunks_exact_mut(tk.max(1))
                    .zip(p.chunks_exact(tk.max(1)))
                {
                    let dot: f32 = dp.iter().zip(pr).map(|(a, b)| a * b).sum();
                    dp.iter_mut().zip(pr).for_each(|(a, b)| *a = b * (*a - dot));
                }
                let kv_ = View::rows(k, kh.rs()).at(kh.head(bi, j));
                let qv = View::rows(q, qh.rs()).at(qh.head(bi, hh));
                // SAFETY: this task alone writes query head hh's block of dq and kv head j's
                // blocks of dk and dv (all the query heads of kv head j are in this task);
                // every read view is live.
                unsafe {
                    let dst = dq_ptr.ptr().add((bi * d.heads + hh) * t * hd);
                    let ds_v = View::rows(&ds, tk);
                    matmul((t, hd, tk), dst, hd, false, ds_v, kv_, d.scale(), false);
                    let ds_t = View::rows_t(&ds, tk);
                    let dst = dk_ptr.ptr().add(kv_off);
                    matmul((tk, hd, t), dst, hd, r > 0, ds_t, qv, d.scale(), false);
                    let dst = dv_ptr.ptr().add(kv_off);
                    let p_t = View::rows_t(p, tk);
                    matmul((tk, hd, t), dst, hd, r > 0, p_t, dy, 1.0, false);
                }
            }
        }
    });
    Ok((
        Tensor::from_vec(dq, (d.b, d.heads, t, hd), &dev)?,
        Tensor::from_vec(dk, (d.b, d.kv, tk, hd), &dev)?,
        Tensor::from_vec(dv, (d.b, d.kv, tk, hd), &dev)?,
    ))
}

/// The mask as `[b, t, t_k]` f32 values on the host: `[b or 1, 1, t, t_k]` broadcast over the
/// batch.
fn mask_values(mask: &Tensor, (b, t, tk): (usize, usize, usize)) -> Result<Arc<Vec<f32>>> {
    let m = mask.broadcast_as((b, 1, t, tk))?.flatten_all()?;
    Ok(Arc::new(m.to_vec1::<f32>()?))
}

/// Grouped-query attention (CPU f32); shapes checked by the caller (kernels::gqa_attention).
pub(crate) fn gqa_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, _, t, _) = q.dims4()?;
    let tk = k.dim(2)?;
    let mask = match mask {
        Some(m) => Some(mask_values(m, (b, t, tk))?),
        None => None,
    };
    let op = GqaOp {
        mask,
        probs: Some(Saved::default()),
    };
    readable(q)?.apply_op3(&readable(k)?, &readable(v)?, op)
}

/// As [`gqa_attention`] for inference (a decoding step over a KV cache): no gradient, no
/// probabilities kept; `k` and `v` may be strided views of the cache (read in place).
pub(crate) fn gqa_attention_inference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, _, t, _) = q.dims4()?;
    let tk = k.dim(2)?;
    let mask = match mask {
        Some(m) => Some(mask_values(m, (b, t, tk))?),
        None => None,
    };
    let op = GqaOp { mask, probs: None };
    readable(q)?.apply_op3_no_bwd(&readable(k)?, &readable(v)?, &op)
}
