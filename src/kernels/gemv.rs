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
use super::view::View;
use super::vmath;

/// Largest `m` taken here; beyond it `gemm`'s blocking pays for itself.
pub(super) const GEMV_MAX_ROWS: usize = 8;

/// Columns of `dst` updated per pass in the axpy form, so the rows being summed stay in L1.
const AXPY_COLS: usize = 1024;

/// Whether [`gemv`] handles these operands (one of them has unit stride along the weight rows).
pub(super) fn applies(m: usize, rhs: View) -> bool {
    m <= GEMV_MAX_ROWS && (rhs.cs == 1 || rhs.rs == 1)
}

/// `dst[m, n] = scale · lhs · rhs`, or `dst += …` when `accumulate`; rows of `dst` are `dst_rs`
/// apart. Requires [`applies`].
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
) {
    // `lhs` rows as contiguous, pre-scaled vectors (m · k floats: a few KB).
    let mut x = vec![0f32; m * k];
    for i in 0..m {
        for kk in 0..k {
            // SAFETY: (i, kk) lies inside `lhs` (caller's contract).
            x[i * k + kk] = scale * unsafe { *lhs.ptr.add(i * lhs.rs + kk * lhs.cs) };
        }
    }
    let mut rows: Vec<&mut [f32]> = (0..m)
        // SAFETY: row i of `dst` has n elements, rows do not overlap (dst_rs ≥ n), no one else
        // writes them during the call.
        .map(|i| unsafe { std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n) })
        .collect();
    if !accumulate {
        for r in rows.iter_mut() {
            r.fill(0.0);
        }
    }
    // SAFETY: forwarded from the caller's contract on `rhs`.
    unsafe {
        if rhs.cs == 1 {
            axpy_rows(&x, k, rhs, &mut rows);
        } else {
            dot_rows(&x, k, n, rhs, &mut rows);
        }
    }
}

/// A weight element the products read: f32 as is, or bf16 (its 16 bits, [`Bf16Bits`]) widened
/// on the fly, so a bf16 weight streams half the bytes and every sum stays f32.
pub(super) trait Weight: Copy {
    fn get(self) -> f32;
}

impl Weight for f32 {
    #[inline(always)]
    fn get(self) -> f32 {
        self
    }
}

/// The bits of a bf16: the top half of an f32, so widening is a shift, which vectorises (the
/// `half` crate's conversion also canonicalises NaNs, a branch that does not).
pub(super) type Bf16Bits = u16;

impl Weight for Bf16Bits {
    #[inline(always)]
    fn get(self) -> f32 {
        f32::from_bits((self as u32) << 16)
    }
}

/// The axpy form: for each block of columns, `dst_i[c] += Σ_k x_ik · W_k[c]`, four weight rows
/// per pass over `dst_i`.
///
/// # Safety
/// `w` points at `k` rows of `rows[i].len()` contiguous elements, `w_rs` apart.
#[inline(always)]
unsafe fn axpy<T: Weight>(x: &[f32], k: usize, w: *const T, w_rs: usize, rows: &mut [&mut [f32]]) {
    let n = rows.first().map_or(0, |r| r.len());
    // SAFETY: the function's contract.
    let w = |kk: usize| unsafe { std::slice::from_raw_parts(w.add(kk * w_rs), n) };
    for c0 in (0..n).step_by(AXPY_COLS) {
        let c1 = n.min(c0 + AXPY_COLS);
        let mut kk = 0;
        while kk + 4 <= k {
            let (w0, w1, w2, w3) = (
                &w(kk)[c0..c1],
                &w(kk + 1)[c0..c1],
                &w(kk + 2)[c0..c1],
                &w(kk + 3)[c0..c1],
            );
            for (i, row) in rows.iter_mut().enumerate() {
                let a = &x[i * k + kk..i * k + kk + 4];
                let (a0, a1, a2, a3) = (a[0], a[1], a[2], a[3]);
                let d = &mut row[c0..c1];
                for ((((o, &v0), &v1), &v2), &v3) in d.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                    *o += a0 * v0.get() + a1 * v1.get() + a2 * v2.get() + a3 * v3.get();
                }
            }
            kk += 4;
        }
        for kk in kk..k {
            let wk = &w(kk)[c0..c1];
            for (i, row) in rows.iter_mut().enumerate() {
                let a = x[i * k + kk];
                for (o, &v) in row[c0..c1].iter_mut().zip(wk) {
                    *o += a * v.get();
                }
            }
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
    for j in 0..n {
        // SAFETY: the function's contract.
        let wj = unsafe { std::slice::from_raw_parts(w.add(j * w_rs), k) };
        for (i, row) in rows.iter_mut().enumerate() {
            row[j] += dot(&x[i * k..(i + 1) * k], wj);
        }
    }
}

vmath::multiversion! {
    /// [`axpy`] on an f32 view whose rows run along `n`.
    ///
    /// # Safety
    /// `w` has `k` rows of `rows[i].len()` contiguous floats, `w.rs` apart.
    unsafe fn axpy_rows(x: &[f32], k: usize, w: View, rows: &mut [&mut [f32]]) {
        // SAFETY: the function's contract.
        unsafe { axpy(x, k, w.ptr, w.rs, rows) }
    }
}

vmath::multiversion! {
    /// [`dots`] on an f32 view whose columns are contiguous.
    ///
    /// # Safety
    /// `w` has `n` columns of `k` contiguous floats, `w.cs` apart.
    unsafe fn dot_rows(x: &[f32], k: usize, n: usize, w: View, rows: &mut [&mut [f32]]) {
        // SAFETY: the function's contract.
        unsafe { dots(x, k, n, w.ptr, w.cs, rows) }
    }
}

vmath::multiversion! {
    /// `rows_i += x_i · W[:, cols]` for a contiguous bf16 weight: `W [k, n]` (`conv1d`, axpy
    /// form) or `[n, k]` (`nn.Linear`, dot form), only the columns `c0..c0 + rows[i].len()`.
    /// `x` holds the `m = rows.len()` input rows, `k` floats each.
    ///
    /// # Safety
    /// `w` holds `k · n` elements and `c0 + rows[i].len() ≤ n`.
    pub(super) unsafe fn gemv_bf16(
        x: &[f32],
        nk: (usize, usize),
        w: &[Bf16Bits],
        conv1d: bool,
        c0: usize,
        rows: &mut [&mut [f32]],
    ) {
        let (n, k) = nk;
        let cols = rows.first().map_or(0, |r| r.len());
        // SAFETY: the columns lie inside `w` (the function's contract).
        unsafe {
            if conv1d {
                axpy(x, k, w.as_ptr().add(c0), n, rows)
            } else {
                dots(x, k, cols, w.as_ptr().add(c0 * k), k, rows)
            }
        }
    }
}

/// `a · b` accumulated in 8 lanes (so the loop vectorises).
#[inline(always)]
fn dot<T: Weight>(a: &[f32], b: &[T]) -> f32 {
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
            for (c0, c1) in [(0, n), (5, 41)] {
                let mut dst = vec![1f32; m * (c1 - c0)];
                let mut rows: Vec<&mut [f32]> = dst.chunks_mut(c1 - c0).collect();
                // SAFETY: `bits` holds k · n elements and c1 ≤ n.
                unsafe { gemv_bf16(&x, (n, k), &bits, conv1d, c0, &mut rows) };
                for i in 0..m {
                    for j in c0..c1 {
                        let want: f64 = 1.0
                            + (0..k)
                                .map(|kk| x[i * k + kk] as f64 * w_at(kk, j) as f64)
                                .sum::<f64>();
                        let got = dst[i * (c1 - c0) + j - c0] as f64;
                        assert!((got - want).abs() < 1e-4, "conv1d {conv1d} [{i},{j}]");
                    }
                }
            }
        }
    }
}
