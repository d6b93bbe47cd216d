//! Products with a handful of rows: `dst[m, n] (+)= scale · lhs[m, k] · rhs[k, n]` for `m ≤
//! GEMV_MAX_ROWS`, which is every dense layer of a decoding step (one new token per sequence).
//!
//! Such a product reads each weight once and does two flops with it, so its speed is the speed
//! at which the weight streams from memory. The `gemm` crate packs its operands into blocks made
//! for large `m` first, and at `m = 1` reached about half the bandwidth a plain streaming loop
//! gets on the same machine (decoding a 6-layer, 384-wide GPT-2 spent 80% of its time there).
//! Here the weight is read once, in its own layout, with every row of `lhs` applied to it while
//! it is in L1:
//! - weight rows along `n` (GPT-2's `Conv1D [in, out]`): `dst_i += x_ik · W_k` for four `k` at a
//!   time (axpy form);
//! - weight rows along `k` (`nn.Linear [out, in]`, the tied LM head): `dst_ij = x_i · W_j` (dot
//!   form, 8 lanes).
use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use super::cpu::par_for;
use super::gemv_tiles;
use super::view::View;
use super::vmath;

/// Largest `m` taken here; beyond it `gemm`'s blocking pays for itself.
pub(super) const GEMV_MAX_ROWS: usize = 8;

/// Fewest rows of `lhs` for which the f32 products use [`gemv_tiles`] (when the CPU has them):
/// at one row the plain loops already stream the weights at the memory's speed.
const TILE_MIN_ROWS: usize = 2;

/// Whether an f32 product with `m` rows runs on [`gemv_tiles`].
fn tiled(m: usize) -> bool {
    m >= TILE_MIN_ROWS && gemv_tiles::available()
}

/// Columns of `dst` updated per pass in the axpy form, so the rows being summed stay in L1.
const AXPY_COLS: usize = 1024;

/// Whether [`gemv`] handles these operands (one of them has unit stride along the weight rows).
pub(super) fn applies(m: usize, rhs: View) -> bool {
    m <= GEMV_MAX_ROWS && (rhs.cs == 1 || rhs.rs == 1)
}

/// `dst[m, n] = scale · lhs · rhs`, or `dst += …` when `accumulate`; rows of `dst` are `dst_rs`
/// apart. Requires [`applies`]. With `parallel`, the axpy form splits its weight rows over
/// candle's pool ([`split_k`]); the dot form runs on the calling thread either way (callers
/// split its columns, whole weight rows each).
///
/// # Safety
/// As for `gemm::matmul`: the views and `dst` address live buffers, `dst` does not alias them,
/// and no other thread writes the `dst` elements during the call.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemv(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: View,
    rhs: View,
    scale: f32,
    parallel: bool,
) {
    let mut rows: Vec<&mut [f32]> = (0..m)
        // SAFETY: row i of `dst` has n elements, rows do not overlap (dst_rs ≥ n), no one else
        // writes them during the call.
        .map(|i| unsafe { std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n) })
        .collect();
    // SAFETY: forwarded from the caller's contract on `lhs` and `rhs`.
    unsafe {
        if rhs.cs == 1 {
            // the axpy form reads `x` with any row stride: a dense layer's input as it is
            let (x, x_rs) = lhs_rows(m, k, lhs, scale);
            if parallel {
                split_k((m, n, k), &mut rows, accumulate, |band, r| {
                    axpy_rows(&x, x_rs, band, rhs, r)
                });
            } else {
                if !accumulate {
                    rows.iter_mut().for_each(|r| r.fill(0.0));
                }
                axpy_rows(&x, x_rs, 0..k, rhs, &mut rows);
            }
            return;
        }
        if !accumulate {
            rows.iter_mut().for_each(|r| r.fill(0.0));
        }
        dot_rows(&scaled_rows(m, k, lhs, scale), k, n, rhs, &mut rows);
    }
}

/// `lhs [m, k]` as rows `x_rs` apart: borrowed when unscaled with contiguous rows (a dense
/// layer's input: a copy would be one more serial pass on the calling thread, over rows that
/// the other threads wrote), else [`scaled_rows`].
///
/// # Safety
/// Every `(i, kk)` of `lhs` lies in a live buffer, which outlives the result.
unsafe fn lhs_rows<'a>(m: usize, k: usize, lhs: View, scale: f32) -> (Cow<'a, [f32]>, usize) {
    if scale == 1.0 && lhs.cs == 1 && m > 0 {
        // SAFETY: rows 0..m of k elements, `lhs.rs` apart, lie inside `lhs` (the contract).
        let x = unsafe { std::slice::from_raw_parts(lhs.ptr, (m - 1) * lhs.rs + k) };
        (Cow::Borrowed(x), lhs.rs)
    } else {
        // SAFETY: the same contract.
        (Cow::Owned(unsafe { scaled_rows(m, k, lhs, scale) }), k)
    }
}

/// `lhs [m, k]` as contiguous, pre-scaled rows (m · k floats: a few KB).
///
/// # Safety
/// Every `(i, kk)` of `lhs` lies in a live buffer.
unsafe fn scaled_rows(m: usize, k: usize, lhs: View, scale: f32) -> Vec<f32> {
    let mut x = Vec::with_capacity(m * k);
    for i in 0..m {
        if lhs.cs == 1 {
            // SAFETY: row i's k elements lie inside `lhs` (the function's contract).
            let row = unsafe { std::slice::from_raw_parts(lhs.ptr.add(i * lhs.rs), k) };
            // a contiguous row: a loop that vectorises (the strided one below does not)
            x.extend(row.iter().map(|v| scale * v));
        } else {
            // SAFETY: as above, element by element.
            x.extend((0..k).map(|kk| scale * unsafe { *lhs.ptr.add(i * lhs.rs + kk * lhs.cs) }));
        }
    }
    x
}

/// Weight rows per band of [`split_k`], at least: below this, one band's partial sums cost
/// more than the band.
const MIN_BAND: usize = 64;

/// `rows (+)= Σ_bands band(k0..k1)` (`+=` when `accumulate`): the axpy form over candle's
/// thread pool, each task streaming one contiguous band of weight rows into its own partial
/// `[m, n]`, the partials then summed in band order (so the bits do not depend on which thread
/// ran which band) and the sum added to `rows`. Splitting the columns instead (as the dot form
/// and `gemm` do) hands each task a short piece of every weight row, `n` elements apart, an
/// access pattern the hardware prefetcher follows far worse than one long stream: the products
/// of a decoding step ran at about half the machine's bandwidth that way, and at batch 8 with
/// the register tiles still about a fifth slower than here.
///
/// Each band allocates and zeroes its own partial, on the thread that then fills it. Zeroed by
/// the caller, every partial started in the caller's cache and the other threads fetched each
/// line of theirs from it; carved from one buffer the caller allocated, the bands still did
/// not run at the same speed (one was about a tenth slower, whichever thread ran it), and at
/// batch 8 the step waited for the slower one at every product.
pub(super) fn split_k(
    (m, n, k): (usize, usize, usize),
    rows: &mut [&mut [f32]],
    accumulate: bool,
    band: impl Fn(Range<usize>, &mut [&mut [f32]]) + Sync,
) {
    let threads = crate::threads::num_threads();
    let size = k.div_ceil(threads.min(k / MIN_BAND).max(1)).max(1);
    let bands = k.div_ceil(size).max(1);
    let parts: Vec<OnceLock<Vec<f32>>> = (0..bands).map(|_| OnceLock::new()).collect();
    let run = |b: usize| {
        let mut part = vec![0f32; m * n];
        let mut part_rows: Vec<&mut [f32]> = part.chunks_exact_mut(n.max(1)).collect();
        band(b * size..k.min((b + 1) * size), &mut part_rows);
        // each band runs once: the cell is empty
        let _ = parts[b].set(part);
    };
    par_for(bands, k * n, |r| r.for_each(run));
    // (every band ran: the zeros stand for none)
    let parts: Vec<Vec<f32>> = (parts.into_iter())
        .map(|p| p.into_inner().unwrap_or_else(|| vec![0f32; m * n]))
        .collect();
    add_bands(&parts, n, rows, accumulate);
}

vmath::multiversion! {
    /// `rows (+)= Σ_b parts[b]` over the bands' partials `[m, n]`, summed in
    /// band order then added (one pass over `rows`, in blocks that stay in L1).
    fn add_bands(parts: &[Vec<f32>], n: usize, rows: &mut [&mut [f32]], accumulate: bool) {
        const COLS: usize = 256;
        let mut sum = [0f32; COLS];
        for (i, row) in rows.iter_mut().enumerate() {
            for c0 in (0..n).step_by(COLS) {
                let len = COLS.min(n - c0);
                let s = &mut sum[..len];
                s.copy_from_slice(&parts[0][i * n + c0..][..len]);
                for pb in &parts[1..] {
                    let pb = &pb[i * n + c0..][..len];
                    s.iter_mut().zip(pb).for_each(|(s, v)| *s += v);
                }
                let out = &mut row[c0..c0 + len];
                if accumulate {
                    out.iter_mut().zip(&*s).for_each(|(o, v)| *o += v);
                } else {
                    out.copy_from_slice(s);
                }
            }
        }
    }
}

/// A weight element the products read: f32 as is, or bf16 (its 16 bits, [`Bf16Bits`]) widened
/// on the fly, so a bf16 weight streams half the bytes and every sum stays f32.
pub(super) trait Weight: Copy {
    /// Whether reading it costs a conversion (worth doing once when several rows use it).
    const WIDENS: bool;
    fn get(self) -> f32;
}

impl Weight for f32 {
    const WIDENS: bool = false;
    #[inline(always)]
    fn get(self) -> f32 {
        self
    }
}

/// The bits of a bf16: the top half of an f32, so widening is a shift, which vectorises (the
/// `half` crate's conversion also canonicalises NaNs, a branch that does not).
pub(super) type Bf16Bits = u16;

impl Weight for Bf16Bits {
    const WIDENS: bool = true;
    #[inline(always)]
    fn get(self) -> f32 {
        f32::from_bits((self as u32) << 16)
    }
}

/// The axpy form: for each block of columns, `dst_i[c] += Σ_k x_ik · W_k[c]`, four weight rows
/// per pass over `dst_i`.
///
/// `x` holds row `i` at `x[i * x_rs..]` (its first `k` elements are used).
///
/// # Safety
/// `w` points at `k` rows of `rows[i].len()` contiguous elements, `w_rs` apart.
#[inline(always)]
unsafe fn axpy<T: Weight>(
    (x, x_rs): (&[f32], usize),
    k: usize,
    w: *const T,
    w_rs: usize,
    rows: &mut [&mut [f32]],
) {
    let n = rows.first().map_or(0, |r| r.len());
    // SAFETY: the function's contract.
    let w = |kk: usize| unsafe { std::slice::from_raw_parts(w.add(kk * w_rs), n) };
    let mut wide = if T::WIDENS && rows.len() > 1 {
        vec![vec![0f32; AXPY_COLS]; 4]
    } else {
        Vec::new()
    };
    for c0 in (0..n).step_by(AXPY_COLS) {
        let c1 = n.min(c0 + AXPY_COLS);
        let mut kk = 0;
        while kk + 4 <= k {
            let ws = [0, 1, 2, 3].map(|q| &w(kk + q)[c0..c1]);
            if !wide.is_empty() {
                // widen once for all rows of `x`, not once per row
                for (b, wq) in wide.iter_mut().zip(ws) {
                    for (o, v) in b.iter_mut().zip(wq) {
                        *o = v.get();
                    }
                }
                let len = c1 - c0;
                let ws = [0, 1, 2, 3].map(|q| &wide[q][..len]);
                axpy4((x, x_rs), kk, ws, rows, c0);
            } else {
                axpy4((x, x_rs), kk, ws, rows, c0);
            }
            kk += 4;
        }
        for kk in kk..k {
            let wk = &w(kk)[c0..c1];
            for (i, row) in rows.iter_mut().enumerate() {
                let a = x[i * x_rs + kk];
                for (o, &v) in row[c0..c1].iter_mut().zip(wk) {
                    *o += a * v.get();
                }
            }
        }
    }
}

/// `dst_i[c0 + c] += Σ_q x_i,kk+q · w_q[c]` for the four weight rows `w` (`dst_i` from column
/// `c0`, as long as they are).
#[inline(always)]
fn axpy4<T: Weight>(
    (x, x_rs): (&[f32], usize),
    kk: usize,
    w: [&[T]; 4],
    rows: &mut [&mut [f32]],
    c0: usize,
) {
    let [w0, w1, w2, w3] = w;
    for (i, row) in rows.iter_mut().enumerate() {
        let a = &x[i * x_rs + kk..i * x_rs + kk + 4];
        let (a0, a1, a2, a3) = (a[0], a[1], a[2], a[3]);
        let d = &mut row[c0..c0 + w0.len()];
        for ((((o, &v0), &v1), &v2), &v3) in d.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
            *o += a0 * v0.get() + a1 * v1.get() + a2 * v2.get() + a3 * v3.get();
        }
    }
}

/// The dot form: `dst_i[j] += x_i · W_j` for `j < n`, each weight row applied to every `x_i`
/// while it is in L1.
///
/// # Safety
/// `w` points at `n` rows of `k` contiguous elements, `w_rs` apart.
#[inline(always)]
unsafe fn dots<T: Weight>(
    x: &[f32],
    k: usize,
    n: usize,
    w: *const T,
    w_rs: usize,
    rows: &mut [&mut [f32]],
) {
    let mut wide = vec![0f32; if T::WIDENS && rows.len() > 1 { k } else { 0 }];
    for j in 0..n {
        // SAFETY: the function's contract.
        let wj = unsafe { std::slice::from_raw_parts(w.add(j * w_rs), k) };
        if wide.is_empty() {
            for (i, row) in rows.iter_mut().enumerate() {
                row[j] += dot(&x[i * k..(i + 1) * k], wj);
            }
        } else {
            // widen once for all rows of `x`, not once per row
            for (o, v) in wide.iter_mut().zip(wj) {
                *o = v.get();
            }
            for (i, row) in rows.iter_mut().enumerate() {
                row[j] += dot(&x[i * k..(i + 1) * k], &wide);
            }
        }
    }
}

vmath::multiversion! {
    /// [`axpy`] on an f32 view whose rows run along `n`, over the weight rows (and `x`
    /// columns) `band`; `x` rows are `x_rs` apart.
    ///
    /// # Safety
    /// `w` has the rows `band` of `rows[i].len()` contiguous floats, `w.rs` apart.
    unsafe fn axpy_rows(x: &[f32], x_rs: usize, band: Range<usize>, w: View, rows: &mut [&mut [f32]]) {
        let (x, p) = (&x[band.start..], w.at(band.start * w.rs).ptr);
        // SAFETY: the function's contract (and the tiles' own: `tiled` checks `available`).
        unsafe {
            if tiled(rows.len()) {
                gemv_tiles::axpy(x, x_rs, band.len(), p, w.rs, rows)
            } else {
                axpy((x, x_rs), band.len(), p, w.rs, rows)
            }
        }
    }
}

vmath::multiversion! {
    /// [`dots`] on an f32 view whose columns are contiguous.
    ///
    /// # Safety
    /// `w` has `n` columns of `k` contiguous floats, `w.cs` apart.
    unsafe fn dot_rows(x: &[f32], k: usize, n: usize, w: View, rows: &mut [&mut [f32]]) {
        // SAFETY: the function's contract (and the tiles' own: `tiled` checks `available`).
        unsafe {
            if tiled(rows.len()) {
                gemv_tiles::dots(x, k, n, w.ptr, w.cs, rows)
            } else {
                dots(x, k, n, w.ptr, w.cs, rows)
            }
        }
    }
}

vmath::multiversion! {
    /// `rows_i += x_i · W` for a contiguous bf16 weight: `W [k, n]` (`conv1d`, axpy form: the
    /// weight rows `band` only, every column) or `[n, k]` (`nn.Linear`, dot form: the columns
    /// `band` only, every weight row). `x` holds the `m = rows.len()` input rows, `k` floats
    /// each; `rows[i]` is as long as the columns computed.
    ///
    /// # Safety
    /// `w` holds `k · n` elements and `band` lies inside `0..k` (axpy) or `0..n` (dot).
    pub(super) unsafe fn gemv_bf16(
        x: &[f32],
        nk: (usize, usize),
        w: &[Bf16Bits],
        conv1d: bool,
        band: Range<usize>,
        rows: &mut [&mut [f32]],
    ) {
        let (n, k) = nk;
        // SAFETY: the band lies inside `w` (the function's contract).
        unsafe {
            if conv1d {
                let w = w.as_ptr().add(band.start * n);
                axpy((&x[band.start..], k), band.len(), w, n, rows)
            } else {
                dots(x, k, band.len(), w.as_ptr().add(band.start * k), k, rows)
            }
        }
    }
}

/// `a · b` accumulated in 8 lanes (so the loop vectorises).
#[inline(always)]
pub(super) fn dot<T: Weight>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(p, q)| p * q.get())
        .sum();
    for (p, q) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += p[l] * q[l].get();
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both layouts, with and without accumulation, against a plain triple loop in f64.
    #[test]
    fn matches_a_reference_product() {
        for &(m, n, k) in &[(1, 7, 5), (3, 1030, 9), (8, 33, 64), (2, 5, 1)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let want = |i: usize, j: usize, init: f32| -> f64 {
                init as f64
                    + 0.5
                        * (0..k)
                            .map(|t| a[i * k + t] as f64 * w[t * n + j] as f64)
                            .sum::<f64>()
            };
            let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect(); // [n, k]
            for (rhs, accumulate) in [
                (View::rows(&w, n), false),
                (View::rows_t(&wt, k), false),
                (View::rows(&w, n), true),
                (View::rows_t(&wt, k), true),
            ] {
                assert!(applies(m, rhs));
                let dst_rs = n + 3;
                let init: Vec<f32> = (0..m * dst_rs).map(|i| (i % 5) as f32).collect();
                let mut dst = init.clone();
                // SAFETY: all views cover their buffers; dst is separate.
                unsafe {
                    gemv(
                        (m, n, k),
                        dst.as_mut_ptr(),
                        dst_rs,
                        accumulate,
                        View::rows(&a, k),
                        rhs,
                        0.5,
                        false,
                    )
                };
                for i in 0..m {
                    for j in 0..n {
                        let base = if accumulate {
                            init[i * dst_rs + j]
                        } else {
                            0.0
                        };
                        let got = dst[i * dst_rs + j] as f64;
                        assert!(
                            (got - want(i, j, base)).abs() < 1e-4,
                            "({m},{n},{k}) [{i},{j}]"
                        );
                    }
                    // The padding between rows is untouched.
                    assert_eq!(
                        dst[i * dst_rs + n..(i + 1) * dst_rs],
                        init[i * dst_rs + n..(i + 1) * dst_rs]
                    );
                }
            }
        }
    }

    /// The bf16 form gives the f32 product of the widened weight, both layouts, on column
    /// ranges (a parallel task's share).
    #[test]
    fn bf16_weights_match_the_widened_f32_product() {
        let (m, n, k) = (3, 70, 37);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 29 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let bits: Vec<Bf16Bits> = (0..k * n)
            .map(|i| (half::bf16::from_f32(((i * 53 % 13) as f32 - 6.0) / 5.0)).to_bits())
            .collect();
        let wide: Vec<f32> = bits.iter().map(|b| b.get()).collect();
        for conv1d in [true, false] {
            // conv1d: W [k, n]; else W [n, k] (the same numbers read transposed)
            let w_at = |kk: usize, j: usize| {
                if conv1d {
                    wide[kk * n + j]
                } else {
                    wide[j * k + kk]
                }
            };
            let want = |i: usize, j: usize| -> f64 {
                1.0 + (0..k)
                    .map(|kk| x[i * k + kk] as f64 * w_at(kk, j) as f64)
                    .sum::<f64>()
            };
            // axpy: two bands of weight rows summed into every column; dot: columns 5..41
            let (cols, bands) = if conv1d {
                (0..n, vec![0..20, 20..k])
            } else {
                (5..41, std::iter::once(5..41).collect())
            };
            let mut dst = vec![1f32; m * cols.len()];
            for band in bands {
                let mut rows: Vec<&mut [f32]> = dst.chunks_mut(cols.len()).collect();
                // SAFETY: `bits` holds k · n elements; the bands lie inside k (axpy), n (dot).
                unsafe { gemv_bf16(&x, (n, k), &bits, conv1d, band, &mut rows) };
            }
            for i in 0..m {
                for j in cols.clone() {
                    let got = dst[i * cols.len() + j - cols.start] as f64;
                    assert!((got - want(i, j)).abs() < 1e-4, "conv1d {conv1d} [{i},{j}]");
                }
            }
        }
    }

    /// The weight rows split in bands over the pool give the single-band product.
    #[test]
    fn split_k_matches_one_band() {
        let (m, n, k) = (2, 50, 300);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let init: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
        for accumulate in [false, true] {
            let (mut one, mut split) = (init.clone(), init.clone());
            let (lhs, rhs) = (View::rows(&a, k), View::rows(&w, n));
            // SAFETY: the views cover their buffers; the outputs are separate.
            unsafe {
                gemv(
                    (m, n, k),
                    one.as_mut_ptr(),
                    n,
                    accumulate,
                    lhs,
                    rhs,
                    0.5,
                    false,
                );
                gemv(
                    (m, n, k),
                    split.as_mut_ptr(),
                    n,
                    accumulate,
                    lhs,
                    rhs,
                    0.5,
                    true,
                );
            }
            for (p, q) in one.iter().zip(&split) {
                assert!((p - q).abs() < 1e-4, "{p} vs {q}");
            }
        }
    }
}
