//! Attention over a KV cache, for decoding one (or a few) tokens at a time.
//!
//! The cache of a layer is one tensor `[2, b, heads, capacity, hd]` (keys, then values),
//! allocated once for the whole generation. [`cache_write`] copies the new tokens' keys and
//! values straight from the packed projections `qkv [b, t, 3h]` into their slots, in place, and
//! [`cached_attention`] attends the new queries over the filled part: two calls per layer and
//! step, no concatenation, no head-split copies. Inference only (no backward).
use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Result, Tensor, bail};

use super::cpu::{OutPtr, par_for, slice, slice_mut};
use super::gemv::dot;
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
    from: &'a [usize],
    len: usize,
}

impl InplaceOp1 for Reorder<'_> {
    fn name(&self) -> &'static str {
        "massivetext-kv-cache-reorder"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let dims = l.dims();
        if dims.len() != 5
            || dims[0] != 2
            || dims[1] != self.rows.len()
            || self.from.len() != self.rows.len()
            || self.len > dims[3]
        {
            bail!(
                "kv cache reorder: cache {dims:?}, {} rows, {} starts, {} filled positions",
                self.rows.len(),
                self.from.len(),
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
        // Only the rows that take another row's place move (beams that continue stay), each
        // copied once, straight from its source, and only from its start position on (before
        // it, the two rows already hold the same keys and values): a row is overwritten only
        // once no pending move reads it any more. Where every pending destination is still
        // read (a cycle, as when two beams swap), one of them is saved aside first and its
        // readers read the copy.
        let len = self.len;
        let start = |i: usize| self.from[i].min(len);
        let mut pending: Vec<(usize, Src)> = (self.rows.iter().enumerate())
            .filter(|&(i, &r)| r as usize != i && start(i) < len)
            .map(|(i, &r)| (i, Src::Row(r as usize)))
            .collect();
        // the start of each (keys or values, head) block of a row, at position `from`
        let blocks = move |row: usize, from: usize| {
            (0..2).flat_map(move |which| (0..n_head).map(move |hh| d.slot(which, row, hh, from)))
        };
        // rows saved aside: the position they start at, and their blocks one after the other
        let mut saved: Vec<(usize, Vec<f32>)> = Vec::new();
        while !pending.is_empty() {
            let read = |row: usize, p: &[(usize, Src)]| p.iter().any(|m| m.1 == Src::Row(row));
            match pending.iter().position(|&(i, _)| !read(i, &pending)) {
                Some(at) => {
                    let (i, src) = pending.swap_remove(at);
                    let (from, span) = (start(i), (len - start(i)) * hd);
                    match src {
                        Src::Row(r) => {
                            for (to, at) in blocks(i, from).zip(blocks(r, from)) {
                                kv.copy_within(at..at + span, to);
                            }
                        }
                        Src::Saved(k) => {
                            let (lo, copy) = &saved[k];
                            let width = ((len - lo) * hd).max(1);
                            let skip = (from - lo) * hd;
                            for (to, block) in blocks(i, from).zip(copy.chunks_exact(width)) {
                                kv[to..to + span].copy_from_slice(&block[skip..]);
                            }
                        }
                    }
                }
                None => {
                    let row = pending[0].0;
                    let readers = || pending.iter().filter(|m| m.1 == Src::Row(row));
                    let lo = readers().map(|m| start(m.0)).min().unwrap_or(len);
                    let mut copy = Vec::with_capacity(2 * n_head * (len - lo) * hd);
                    for at in blocks(row, lo) {
                        copy.extend_from_slice(&kv[at..at + (len - lo) * hd]);
                    }
                    for m in pending.iter_mut().filter(|m| m.1 == Src::Row(row)) {
                        m.1 = Src::Saved(saved.len());
                    }
                    saved.push((lo, copy));
                }
            }
        }
        Ok(())
    }
}

/// Where a moved row of the cache is copied from: another row, still as it was, or a copy of a
/// row saved before that row was overwritten.
#[derive(Clone, Copy, PartialEq)]
enum Src {
    Row(usize),
    Saved(usize),
}

/// Beam search: row `i` of the cache `kv [2, b, heads, capacity, hd]` becomes old row
/// `rows[i]`, in place (CPU f32). Only positions `from[i]..len` of row `i` are copied: the
/// caller knows that the two rows already hold the same keys and values before `from[i]`
/// (beams that share a prefix), and `len` is the filled length.
pub(crate) fn cache_reorder(kv: &Tensor, rows: &[u32], from: &[usize], len: usize) -> Result<()> {
    kv.inplace_op1(&Reorder { rows, from, len })
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
                let m = mask.as_ref().map(|m| &m[(bi * t + ti) * len..][..len]);
                // SAFETY: row (bi, ti), columns of head hh, are written only by this task.
                let out = unsafe { y_ptr.slice((bi * t + ti) * h + hh * hd, hd) };
                attend_one(q, (keys, values), m, scale, &mut scores, out);
            }
        }
    });
    Tensor::from_vec(y, (d.b, t, h), qkv.device())
}

vmath::multiversion! {
    /// One query of one head: `out += softmax(q · keys / √hd + mask) · values`, `scores` the
    /// scratch row (as long as the keys), the body compiled for AVX2. A plain `sum` of products
    /// adds one element after the other, a chain no loop vectorises (it made the attention
    /// over the cache ~15% of a decoding step at batch 8); here each key is scored in 8 lanes,
    /// and the weighted values are added four keys per pass over `out`. (Scoring four keys in
    /// one loop compiled to 2-lane loads; with the dot-form tiles of `gemv_tiles`, ~10% slower
    /// at batch 8.)
    fn attend_one(
        q: &[f32],
        kv: (&[f32], &[f32]),
        mask: Option<&[f32]>,
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let hd = q.len();
        let (keys, values) = kv;
        for (s, k) in scores.iter_mut().zip(keys.chunks_exact(hd)) {
            *s = dot(q, k) * scale;
        }
        if let Some(m) = mask {
            scores.iter_mut().zip(m).for_each(|(s, m)| *s += m);
        }
        vmath::softmax_in_place(scores);
        for (p, v) in scores.chunks_exact(4).zip(values.chunks_exact(4 * hd)) {
            let (v0, v1, v2, v3) = (&v[..hd], &v[hd..2 * hd], &v[2 * hd..3 * hd], &v[3 * hd..]);
            for ((((o, a), b), c), d) in out.iter_mut().zip(v0).zip(v1).zip(v2).zip(v3) {
                *o += p[0] * a + p[1] * b + p[2] * c + p[3] * d;
            }
        }
        let done = scores.len() - scores.len() % 4;
        for (p, v) in scores[done..].iter().zip(values[done * hd..].chunks_exact(hd)) {
            out.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, IndexOp, Tensor};

    /// One query's attention against a plain f64 softmax-weighted sum, over key counts that
    /// leave every remainder of the four-key blocks (and a single key), head widths with and
    /// without an 8-lane tail, with and without a mask; `out` is added to, not overwritten.
    #[test]
    fn attend_one_matches_a_plain_softmax_average() {
        for hd in [64, 13, 8] {
            for len in [1, 4, 5, 6, 7, 33] {
                let q: Vec<f32> = (0..hd).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
                let keys: Vec<f32> = (0..len * hd)
                    .map(|i| ((i * 13 % 17) as f32 - 8.0) / 6.0)
                    .collect();
                let values: Vec<f32> = (0..len * hd)
                    .map(|i| ((i * 5 % 19) as f32 - 9.0) / 3.0)
                    .collect();
                let mask: Vec<f32> = (0..len)
                    .map(|j| if j % 3 == 1 { -1e9 } else { 0.0 })
                    .collect();
                for m in [None, Some(&mask[..])] {
                    let scale = 1.0 / (hd as f32).sqrt();
                    let logits: Vec<f64> = (0..len)
                        .map(|j| {
                            let dot: f64 =
                                (0..hd).map(|t| q[t] as f64 * keys[j * hd + t] as f64).sum();
                            dot * scale as f64 + m.map_or(0.0, |m| m[j] as f64)
                        })
                        .collect();
                    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                    let total: f64 = e.iter().sum();
                    let mut out = vec![1f32; hd];
                    let mut scores = vec![0f32; len];
                    super::attend_one(&q, (&keys, &values), m, scale, &mut scores, &mut out);
                    for (t, got) in out.iter().enumerate() {
                        let want = 1.0
                            + (0..len)
                                .map(|j| e[j] / total * values[j * hd + t] as f64)
                                .sum::<f64>();
                        assert!(
                            (*got as f64 - want).abs() < 1e-4,
                            "hd {hd} len {len} mask {} [{t}]: {got} vs {want}",
                            m.is_some()
                        );
                    }
                }
            }
        }
    }

    /// The in-place reorder equals a gather of the rows over the filled positions, whether
    /// rows stay, are copied to several places, or move in a cycle (a row read after it was
    /// overwritten would show here).
    #[test]
    fn reorder_in_place_equals_index_select_over_the_filled_positions() {
        let (b, heads, cap, hd, len) = (4, 2, 7, 3, 5);
        let n = 2 * b * heads * cap * hd;
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        for rows in [
            [0u32, 0, 3, 1],
            [1, 2, 0, 3],
            [0, 1, 2, 3],
            [3, 3, 3, 3],
            [0, 0, 1, 2],
            [1, 0, 3, 2],
            [1, 0, 0, 1],
        ] {
            let kv =
                Tensor::from_vec(values.clone(), (2, b, heads, cap, hd), &Device::Cpu).unwrap();
            let idx = Tensor::new(&rows, &Device::Cpu).unwrap();
            let want = kv.index_select(&idx, 1).unwrap();
            super::cache_reorder(&kv, &rows, &[0; 4], len).unwrap();
            let filled = |t: &Tensor| t.i((.., .., .., 0..len)).unwrap().flatten_all().unwrap();
            let (got, want) = (filled(&kv), filled(&want));
            assert_eq!(
                got.to_vec1::<f32>().unwrap(),
                want.to_vec1::<f32>().unwrap(),
                "{rows:?}"
            );
        }
    }

    /// With start positions, row `i` takes old row `rows[i]`'s positions `from[i]..len` and
    /// keeps its own before them (the caller's promise is that they are equal already), also
    /// when a row is saved aside for a cycle; nothing past `len` is touched.
    #[test]
    fn reorder_copies_only_from_each_rows_start() {
        let (b, heads, cap, hd, len) = (4, 2, 7, 3, 5);
        let n = 2 * b * heads * cap * hd;
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        for (rows, from) in [
            ([0u32, 0, 3, 1], [0usize, 2, 5, 4]),
            ([1, 0, 3, 2], [3, 1, 0, 5]),
            ([1, 0, 0, 1], [2, 4, 1, 0]),
            ([3, 3, 3, 3], [1, 2, 3, 0]),
        ] {
            let kv =
                Tensor::from_vec(values.clone(), (2, b, heads, cap, hd), &Device::Cpu).unwrap();
            super::cache_reorder(&kv, &rows, &from, len).unwrap();
            let got = kv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (at, &g) in got.iter().enumerate() {
                let (row, pos) = (at / (heads * cap * hd) % b, at / hd % cap);
                let src = if pos >= from[row] && pos < len {
                    rows[row] as usize
                } else {
                    row
                };
                let want = values[at - row * heads * cap * hd + src * heads * cap * hd];
                assert_eq!(g, want, "{rows:?} from {from:?}: row {row} position {pos}");
            }
        }
    }
}
