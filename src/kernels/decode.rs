//! Attention over a KV cache, for decoding one (or a few) tokens at a time.
//!
//! The cache of a layer is one tensor `[2, b, heads, capacity, hd]` (keys, then values),
//! allocated once for the whole generation. [`cache_write`] copies the new tokens' keys and
//! values straight from the packed projections `qkv [b, t, 3h]` into their slots, in place, and
//! [`cached_attention`] attends the new queries over the filled part: two calls per layer and
//! step, no concatenation, no head-split copies. Inference only (no backward).
use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Result, Tensor, bail};

use super::cpu::{OutPtr, par_for, slice, slice_mut};
use super::vmath;

/// Sizes: batch, new tokens, heads, head width, cache capacity.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    n_head: usize,
    hd: usize,
    cap: usize,
}

impl Dims {
    /// The sizes of a call with `parts` projections side by side in `qkv` (3: queries, keys and
    /// values; 1: queries alone).
    fn of(qkv: &Layout, kv: &Layout, n_head: usize, parts: usize) -> Result<Self> {
        let (b, t, h3) = qkv.shape().dims3()?;
        let dims = kv.dims();
        if dims.len() != 5 || dims[0] != 2 || dims[1] != b || dims[2] != n_head {
            bail!("kv cache: shape {dims:?} does not fit qkv [{b}, {t}, {h3}] with {n_head} heads");
        }
        let hd = dims[4];
        if h3 != parts * n_head * hd {
            bail!("kv cache: qkv width {h3} is not {parts} x {n_head} heads x {hd}");
        }
        Ok(Dims {
            b,
            t,
            n_head,
            hd,
            cap: dims[3],
        })
    }
    fn h(self) -> usize {
        self.n_head * self.hd
    }
    /// Offset of position `pos` of head `hh` of sequence `bi` in the keys (`which` 0) or values (1).
    fn slot(self, which: usize, bi: usize, hh: usize, pos: usize) -> usize {
        (((which * self.b + bi) * self.n_head + hh) * self.cap + pos) * self.hd
    }
}

struct Write {
    n_head: usize,
    past: usize,
}

impl InplaceOp2 for Write {
    fn name(&self) -> &'static str {
        "massivetext-kv-cache-write"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let d = Dims::of(l2, l1, self.n_head, 3)?;
        if self.past + d.t > d.cap {
            bail!(
                "kv cache: {} + {} tokens exceed its capacity {}",
                self.past,
                d.t,
                d.cap
            );
        }
        let qkv = slice(s2, l2, "kv cache write")?;
        let kv = slice_mut(s1, l1, "kv cache write")?;
        let h = d.h();
        for bi in 0..d.b {
            for ti in 0..d.t {
                let row = &qkv[(bi * d.t + ti) * 3 * h..][..3 * h];
                for which in 0..2 {
                    for hh in 0..d.n_head {
                        let src = &row[(which + 1) * h + hh * d.hd..][..d.hd];
                        let at = d.slot(which, bi, hh, self.past + ti);
                        kv[at..at + d.hd].copy_from_slice(src);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Copies the keys and values of `qkv [b, t, 3h]` into positions `past..past + t` of the cache
/// `kv [2, b, heads, capacity, hd]`, in place (CPU f32).
pub(crate) fn cache_write(kv: &Tensor, qkv: &Tensor, n_head: usize, past: usize) -> Result<()> {
    kv.inplace_op2(&qkv.contiguous()?, &Write { n_head, past })
}

struct Reorder<'a> {
    rows: &'a [u32],
    len: usize,
}

impl InplaceOp1 for Reorder<'_> {
    fn name(&self) -> &'static str {
        "massivetext-kv-cache-reorder"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let dims = l.dims();
        if dims.len() != 5 || dims[0] != 2 || dims[1] != self.rows.len() || self.len > dims[3] {
            bail!(
                "kv cache reorder: cache {dims:?}, {} rows, {} filled positions",
                self.rows.len(),
                self.len
            );
        }
        let (b, n_head, cap, hd) = (dims[1], dims[2], dims[3], dims[4]);
        if let Some(&r) = self.rows.iter().find(|&&r| r as usize >= b) {
            bail!("kv cache reorder: row {r} of a cache of {b} rows");
        }
        let d = Dims {
            b,
            t: 0,
            n_head,
            hd,
            cap,
        };
        let kv = slice_mut(s, l, "kv cache reorder")?;
        // Only the rows that take another row's place move (beams that continue stay). Their
        // sources are gathered first (a row may be copied to several others, or be overwritten
        // after being read, so the writes cannot go straight in place), then written back.
        let span = self.len * hd;
        let moved: Vec<(usize, usize)> = (self.rows.iter().enumerate())
            .filter(|&(i, &r)| r as usize != i)
            .map(|(i, &r)| (i, r as usize))
            .collect();
        let mut gathered = Vec::with_capacity(2 * moved.len() * n_head * span);
        for which in 0..2 {
            for &(_, r) in &moved {
                for hh in 0..n_head {
                    let at = d.slot(which, r, hh, 0);
                    gathered.extend_from_slice(&kv[at..at + span]);
                }
            }
        }
        // `gathered` holds (which, moved row, head) blocks in the order they were read
        let blocks = (0..2).flat_map(|which| {
            (moved.iter()).flat_map(move |&(bi, _)| (0..n_head).map(move |hh| (which, bi, hh)))
        });
        for ((which, bi, hh), from) in blocks.zip(gathered.chunks_exact(span.max(1))) {
            let at = d.slot(which, bi, hh, 0);
            kv[at..at + span].copy_from_slice(from);
        }
        Ok(())
    }
}

/// Beam search: row `i` of the cache `kv [2, b, heads, capacity, hd]` becomes old row
/// `rows[i]`, in place, copying only the first `len` (filled) positions (CPU f32).
pub(crate) fn cache_reorder(kv: &Tensor, rows: &[u32], len: usize) -> Result<()> {
    kv.inplace_op1(&Reorder { rows, len })
}

/// `softmax(q kᵀ / sqrt(hd) + mask) v` for the queries of `qkv [b, t, 3h]` over the first `len`
/// positions of the cache, with an optional additive mask `[b, 1, t, len]`; returns `[b, t, h]`
/// (CPU f32).
pub(crate) fn cached_attention(
    qkv: &Tensor,
    kv: &Tensor,
    len: usize,
    mask: Option<&Tensor>,
    n_head: usize,
) -> Result<Tensor> {
    attend(qkv, 3, kv, len, mask, n_head)
}

/// As [`cached_attention`], for queries alone `q [b, t, h]` over keys and values computed
/// elsewhere: an encoder–decoder's cross-attention over the encoder's keys and values.
pub(crate) fn cached_cross_attention(
    q: &Tensor,
    kv: &Tensor,
    len: usize,
    mask: Option<&Tensor>,
    n_head: usize,
) -> Result<Tensor> {
    attend(q, 1, kv, len, mask, n_head)
}

/// The queries are the first `h` columns of each row of `q [b, t, parts * h]`.
fn attend(
    q: &Tensor,
    parts: usize,
    kv: &Tensor,
    len: usize,
    mask: Option<&Tensor>,
    n_head: usize,
) -> Result<Tensor> {
    let qkv = q.contiguous()?;
    let (qs, ql) = qkv.storage_and_layout();
    let (ks, kl) = kv.storage_and_layout();
    let d = Dims::of(ql, kl, n_head, parts)?;
    if len > d.cap || len < d.t {
        bail!(
            "kv cache: attending over {len} positions with {} new tokens and capacity {}",
            d.t,
            d.cap
        );
    }
    let mask = match mask {
        Some(m) => {
            if m.dims() != [d.b, 1, d.t, len] {
                bail!(
                    "kv cache: mask {:?}, expected [{}, 1, {}, {len}]",
                    m.dims(),
                    d.b,
                    d.t
                );
            }
            Some(m.flatten_all()?.to_vec1::<f32>()?)
        }
        None => None,
    };
    let (q_all, kv_all) = match (&*qs, &*ks) {
        (candle_core::Storage::Cpu(q), candle_core::Storage::Cpu(k)) => (
            slice(q, ql, "cached attention")?,
            slice(k, kl, "cached attention")?,
        ),
        _ => bail!("kv cache: the fused decode path runs on the CPU"),
    };
    let (t, h, hd) = (d.t, d.h(), d.hd);
    let scale = 1.0 / (hd as f32).sqrt();
    let mut y = vec![0f32; d.b * t * h];
    let y_ptr = OutPtr(y.as_mut_ptr());
    let tasks = d.b * d.n_head;
    par_for(tasks, tasks * t * len * hd * 2, |range| {
        let mut scores = vec![0f32; len];
        for task in range {
            let (bi, hh) = (task / d.n_head, task % d.n_head);
            let keys = &kv_all[d.slot(0, bi, hh, 0)..][..len * hd];
            let values = &kv_all[d.slot(1, bi, hh, 0)..][..len * hd];
            for ti in 0..t {
                let q = &q_all[(bi * t + ti) * parts * h + hh * hd..][..hd];
                for (s, k) in scores.iter_mut().zip(keys.chunks_exact(hd)) {
                    *s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                }
                if let Some(m) = &mask {
                    let m = &m[(bi * t + ti) * len..][..len];
                    scores.iter_mut().zip(m).for_each(|(s, m)| *s += m);
                }
                vmath::softmax_in_place(&mut scores);
                // SAFETY: row (bi, ti), columns of head hh, are written only by this task.
                let out = unsafe { y_ptr.slice((bi * t + ti) * h + hh * hd, hd) };
                for (p, v) in scores.iter().zip(values.chunks_exact(hd)) {
                    out.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
                }
            }
        }
    });
    Tensor::from_vec(y, (d.b, t, h), qkv.device())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, IndexOp, Tensor};

    /// The in-place reorder equals a gather of the rows over the filled positions, whether
    /// rows stay, are copied to several places, or move in a cycle (a row read after it was
    /// overwritten would show here).
    #[test]
    fn reorder_in_place_equals_index_select_over_the_filled_positions() {
        let (b, heads, cap, hd, len) = (4, 2, 7, 3, 5);
        let n = 2 * b * heads * cap * hd;
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        for rows in [[0u32, 0, 3, 1], [1, 2, 0, 3], [0, 1, 2, 3], [3, 3, 3, 3]] {
            let kv =
                Tensor::from_vec(values.clone(), (2, b, heads, cap, hd), &Device::Cpu).unwrap();
            let idx = Tensor::new(&rows, &Device::Cpu).unwrap();
            let want = kv.index_select(&idx, 1).unwrap();
            super::cache_reorder(&kv, &rows, len).unwrap();
            let filled = |t: &Tensor| t.i((.., .., .., 0..len)).unwrap().flatten_all().unwrap();
            let (got, want) = (filled(&kv), filled(&want));
            assert_eq!(
                got.to_vec1::<f32>().unwrap(),
                want.to_vec1::<f32>().unwrap(),
                "{rows:?}"
            );
        }
    }
}
