//! Register tiles for the products of [`super::gemv`] with several rows (a decoding step at
//! batch 2–8, or beams): AVX2 + FMA, used when the CPU has both, and AVX-512 tiles where the
//! CPU has AVX-512F (8 rows × 32 columns for the axpy form, 8 rows × 4 weight rows for the dot
//! form), which give the AVX2 tiles' bits.
//!
//! The plain loops of `gemv` apply each weight element to every row of `x` while it is in L1,
//! but they keep the outputs in memory: at 8 rows the axpy form loads and stores `dst` once per
//! four weight rows, and the dot form loads both operands for every multiply-add, so a step at
//! batch 8 ran at a fifth of the core's arithmetic speed, bound by L1 traffic, not by memory.
//! Here a tile of outputs stays in registers while the weights stream past it:
//! - axpy form (`W [k, n]`, GPT-2's `Conv1D`): 4 rows × 16 columns of `dst` (8 registers) over
//!   [`KC`] weight rows at a time; per weight row, 2 vector loads and 4 broadcasts feed 8
//!   multiply-adds (24 columns, 12 registers, left the compiler short of registers: it spilled
//!   inside the loop);
//! - dot form (`W [n, k]`, `nn.Linear` and the tied LM head): 4 rows of `x` against 3 weight
//!   rows (12 accumulators of 8 lanes); per 8 elements of `k`, 7 loads feed 12 multiply-adds.
//!
//! Rows beyond the first four re-read the same weights from L1, so each weight is read from
//! memory once per call whatever `m` is. Both forms ask for the weights some way ahead
//! (`prefetch`): a profile of the tiles without it showed them waiting on those loads, at 8
//! rows as at one, so the step stayed bound by memory latency rather than arithmetic.
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Weight rows summed into a tile of `dst` between its load and its store (axpy form).
const KC: usize = 16;

/// How far ahead of the tile the axpy form asks for the weights (floats along a row): a tile
/// walks down [`KC`] weight rows, `w_rs` apart, a pattern of as many short streams as the
/// hardware prefetcher does not follow well. Eight tiles ahead is several hundred cycles of
/// work, more than a load from memory takes.
const AHEAD: usize = 128;

/// How far ahead the dot form asks for the weights, in weight rows: two tiles of 3 rows.
const AHEAD_ROWS: usize = 6;

/// Whether the tiles run on this CPU (AVX2 and FMA, checked once).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The axpy form: `rows[i][c] += Σ_kk x[i·x_rs + kk] · w[kk·w_rs + c]` for `kk < k`, every
/// column `c` of the rows (all as long as `rows[0]`).
///
/// # Safety
/// [`available`] is true; `w` points at `k` rows of `rows[0].len()` floats, `w_rs` apart; `x`
/// holds `rows.len()` rows of at least `k` floats, `x_rs` apart.
pub(super) unsafe fn axpy(
    x: &[f32],
    x_rs: usize,
    k: usize,
    w: *const f32,
    w_rs: usize,
    rows: &mut [&mut [f32]],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded from the caller's contract (`has_avx512` checks the CPU).
    unsafe {
        if has_avx512() {
            axpy_avx512(x, x_rs, k, w, w_rs, rows)
        } else {
            axpy_avx2(x, x_rs, k, w, w_rs, rows)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("gemv_tiles::available() is false here")
}

/// The dot form: `rows[i][j] += Σ_kk x[i·k + kk] · w[j·w_rs + kk]` for `j < n`.
///
/// # Safety
/// [`available`] is true; `w` points at `n` rows of `k` floats, `w_rs` apart; `x` holds
/// `rows.len()` rows of `k` floats, contiguous; each of `rows` has at least `n` elements.
pub(super) unsafe fn dots(
    x: &[f32],
    k: usize,
    n: usize,
    w: *const f32,
    w_rs: usize,
    rows: &mut [&mut [f32]],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded from the caller's contract (`has_avx512` checks the CPU).
    unsafe {
        if has_avx512() {
            dots_avx512(x, k, n, w, w_rs, rows)
        } else {
            dots_avx2(x, k, n, w, w_rs, rows)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("gemv_tiles::available() is false here")
}

/// Runs `$f::<MR, ..>` for the row count `$mr` (1 to 4), the other const arguments as given.
macro_rules! by_rows {
    ($mr:expr, $f:ident::<_ $(, $c:literal)*>($($a:expr),*)) => {
        match $mr {
            1 => $f::<1 $(, $c)*>($($a),*),
            2 => $f::<2 $(, $c)*>($($a),*),
            3 => $f::<3 $(, $c)*>($($a),*),
            _ => $f::<4 $(, $c)*>($($a),*),
        }
    };
}

/// Runs `$f::<MR>` for the row count `$mr` (1 to 8): the AVX-512 tiles.
macro_rules! by_rows8 {
    ($mr:expr, $f:ident($($a:expr),*)) => {
        match $mr {
            1 => $f::<1>($($a),*),
            2 => $f::<2>($($a),*),
            3 => $f::<3>($($a),*),
            4 => $f::<4>($($a),*),
            5 => $f::<5>($($a),*),
            6 => $f::<6>($($a),*),
            7 => $f::<7>($($a),*),
            _ => $f::<8>($($a),*),
        }
    };
}

/// The axpy form's operands checked (`x` holds every row's `k` floats, rows `x_rs` apart), and
/// the output rows as pointers for the tiles.
fn axpy_outputs(x: &[f32], x_rs: usize, k: usize, rows: &mut [&mut [f32]]) -> Vec<*mut f32> {
    let m = rows.len();
    assert!(
        m == 0 || x.len() >= (m - 1) * x_rs + k,
        "gemv tiles: x too short"
    );
    rows.iter_mut().map(|r| r.as_mut_ptr()).collect()
}

/// The dot form's operands checked (`x` holds the rows' `k` floats, each row at least `n`
/// outputs), and the output rows as pointers for the tiles.
fn dot_outputs(x: &[f32], k: usize, n: usize, rows: &mut [&mut [f32]]) -> Vec<*mut f32> {
    assert!(x.len() >= rows.len() * k, "gemv tiles: x too short");
    assert!(
        rows.iter().all(|r| r.len() >= n),
        "gemv tiles: rows too short"
    );
    rows.iter_mut().map(|r| r.as_mut_ptr()).collect()
}

/// Whether the CPU has AVX-512F (checked once): the axpy form then holds 8 rows × 32 columns,
/// the dot form 8 rows × 4 weight rows.
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
}

/// The axpy form with AVX-512: tiles of up to 8 rows × 32 columns (16 of the 32 registers),
/// so a weight vector loaded once feeds twice the rows and lanes of the AVX2 tile; the columns
/// past the last whole tile go to [`axpy_avx2`]. Each output sums its weight rows in the same
/// order as there, so both give the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn axpy_avx512(
    x: &[f32],
    x_rs: usize,
    k: usize,
    w: *const f32,
    w_rs: usize,
    rows: &mut [&mut [f32]],
) {
    let (m, n) = (rows.len(), rows.first().map_or(0, |r| r.len()));
    let dst = axpy_outputs(x, x_rs, k, rows);
    let wide = n - n % 32;
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        // SAFETY: every tile lies inside the rows (c + 32 ≤ wide ≤ n) and the weight block
        // (rows k0..k0+kc, columns c..c+32); x rows hold k0 + kc ≤ k floats.
        unsafe {
            let wb = w.add(k0 * w_rs);
            for c in (0..wide).step_by(32) {
                prefetch_ahead(wb, (kc, w_rs, n), k - k0, c + AHEAD);
                prefetch_ahead(wb, (kc, w_rs, n), k - k0, c + AHEAD + 16);
                for g in (0..m).step_by(8) {
                    let (xg, d) = (x.as_ptr().add(g * x_rs + k0), &dst[g..]);
                    by_rows8!(
                        (m - g).min(8),
                        axpy_tile512(xg, x_rs, kc, wb.add(c), w_rs, d, c)
                    );
                }
            }
        }
    }
    if wide < n {
        let mut tails: Vec<&mut [f32]> = rows.iter_mut().map(|r| &mut r[wide..]).collect();
        // SAFETY: the caller's contract, on columns wide..n of the same rows and weights.
        unsafe { axpy_avx2(x, x_rs, k, w.add(wide), w_rs, &mut tails) }
    }
}

/// `dst[r][c..c + 32] += Σ_kk x[r·x_rs + kk] · w[kk·w_rs ..][..32]` for `r < MR`, the outputs
/// in registers across the `kc` weight rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
// indices over the tile's register arrays, which the compiler unrolls
#[allow(clippy::needless_range_loop)]
unsafe fn axpy_tile512<const MR: usize>(
    x: *const f32,
    x_rs: usize,
    kc: usize,
    w: *const f32,
    w_rs: usize,
    dst: &[*mut f32],
    c: usize,
) {
    // SAFETY: the caller's: MR rows of dst from column c, 32 wide; kc weight rows.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for r in 0..MR {
            for v in 0..2 {
                acc[r][v] = _mm512_loadu_ps(dst[r].add(c + 16 * v));
            }
        }
        for kk in 0..kc {
            let wr = w.add(kk * w_rs);
            let wv = [_mm512_loadu_ps(wr), _mm512_loadu_ps(wr.add(16))];
            for r in 0..MR {
                let b = _mm512_set1_ps(*x.add(r * x_rs + kk));
                for v in 0..2 {
                    acc[r][v] = _mm512_fmadd_ps(b, wv[v], acc[r][v]);
                }
            }
        }
        for r in 0..MR {
            for v in 0..2 {
                _mm512_storeu_ps(dst[r].add(c + 16 * v), acc[r][v]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(
    x: &[f32],
    x_rs: usize,
    k: usize,
    w: *const f32,
    w_rs: usize,
    rows: &mut [&mut [f32]],
) {
    let (m, n) = (rows.len(), rows.first().map_or(0, |r| r.len()));
    let dst = axpy_outputs(x, x_rs, k, rows);
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let mut c = 0;
        // SAFETY: every tile lies inside the rows (c + width ≤ n) and the weight block
        // (rows k0..k0+kc, columns c..c+width); x rows hold k0 + kc ≤ k floats.
        unsafe {
            let wb = w.add(k0 * w_rs);
            while c + 16 <= n {
                prefetch_ahead(wb, (kc, w_rs, n), k - k0, c + AHEAD);
                for g in (0..m).step_by(4) {
                    let (xg, d) = (x.as_ptr().add(g * x_rs + k0), &dst[g..]);
                    by_rows!(
                        (m - g).min(4),
                        axpy_tile::<_, 2>(xg, x_rs, kc, wb.add(c), w_rs, d, c)
                    );
                }
                c += 16;
            }
            while c + 8 <= n {
                for g in (0..m).step_by(4) {
                    let (xg, d) = (x.as_ptr().add(g * x_rs + k0), &dst[g..]);
                    by_rows!(
                        (m - g).min(4),
                        axpy_tile::<_, 1>(xg, x_rs, kc, wb.add(c), w_rs, d, c)
                    );
                }
                c += 8;
            }
            for (i, &d) in dst.iter().enumerate() {
                for kk in 0..kc {
                    let a = x[i * x_rs + k0 + kk];
                    for cc in c..n {
                        *d.add(cc) += a * *wb.add(kk * w_rs + cc);
                    }
                }
            }
        }
    }
}

/// Asks for the cache lines of the `kc` weight rows at `wb` (rows `w_rs` apart, `n` long) from
/// column `col` on, one tile's width (16 floats: a cache line when aligned, and the tiles step
/// one line at a time, so every line is asked for); past the end of the rows, the same
/// columns of the next [`KC`] rows, so the next block starts warm. `left` is the rows from `wb`
/// to the end of the weight: nothing beyond them is asked for.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn prefetch_ahead(wb: *const f32, (kc, w_rs, n): (usize, usize, usize), left: usize, col: usize) {
    let (rows, col) = if col < n {
        (0..kc, col)
    } else {
        (kc..left.min(kc + KC), col - n)
    };
    for r in rows {
        let p = wb.wrapping_add(r * w_rs + col);
        // a prefetch reads nothing and never faults, whatever the address
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
    }
}

/// `dst[r][c..c + 8·NV] += Σ_kk x[r·x_rs + kk] · w[kk·w_rs ..][..8·NV]` for `r < MR`, the
/// outputs in registers across the `kc` weight rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
// indices over the tile's register arrays, which the compiler unrolls
#[allow(clippy::needless_range_loop)]
unsafe fn axpy_tile<const MR: usize, const NV: usize>(
    x: *const f32,
    x_rs: usize,
    kc: usize,
    w: *const f32,
    w_rs: usize,
    dst: &[*mut f32],
    c: usize,
) {
    // SAFETY: the caller's: MR rows of dst from column c, NV vectors wide; kc weight rows.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        for r in 0..MR {
            for v in 0..NV {
                acc[r][v] = _mm256_loadu_ps(dst[r].add(c + 8 * v));
            }
        }
        for kk in 0..kc {
            let wr = w.add(kk * w_rs);
            let mut wv = [_mm256_setzero_ps(); NV];
            for v in 0..NV {
                wv[v] = _mm256_loadu_ps(wr.add(8 * v));
            }
            for r in 0..MR {
                let b = _mm256_broadcast_ss(&*x.add(r * x_rs + kk));
                for v in 0..NV {
                    acc[r][v] = _mm256_fmadd_ps(b, wv[v], acc[r][v]);
                }
            }
        }
        for r in 0..MR {
            for v in 0..NV {
                _mm256_storeu_ps(dst[r].add(c + 8 * v), acc[r][v]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(
    x: &[f32],
    k: usize,
    n: usize,
    w: *const f32,
    w_rs: usize,
    rows: &mut [&mut [f32]],
) {
    let m = rows.len();
    let dst = dot_outputs(x, k, n, rows);
    let mut j = 0;
    // SAFETY: weight rows j..j+3 (or j) lie inside the n rows; x rows g.. hold k floats; dst
    // rows hold n ≥ j + 3 (or j + 1) elements.
    unsafe {
        while j + 3 <= n {
            for g in (0..m).step_by(4) {
                let (xg, d) = (x.as_ptr().add(g * k), &dst[g..]);
                by_rows!(
                    (m - g).min(4),
                    dot_tile::<_, 3>(xg, k, w.add(j * w_rs), w_rs, d, j, g == 0)
                );
            }
            j += 3;
        }
        while j < n {
            for g in (0..m).step_by(4) {
                let (xg, d) = (x.as_ptr().add(g * k), &dst[g..]);
                by_rows!(
                    (m - g).min(4),
                    dot_tile::<_, 1>(xg, k, w.add(j * w_rs), w_rs, d, j, false)
                );
            }
            j += 1;
        }
    }
}

/// The dot form with AVX-512: tiles of up to 8 rows of `x` × 4 weight rows, each 16-lane
/// register holding two of the AVX2 tile's 8-lane accumulators (weight rows `2p` and `2p + 1`
/// side by side, against the same 8 elements of `x` broadcast to both halves), so one
/// multiply-add does the work of two there and every lane sums the same products in the same
/// order: both give the same bits. The weight rows past the last whole tile go to
/// [`dots_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dots_avx512(
    x: &[f32],
    k: usize,
    n: usize,
    w: *const f32,
    w_rs: usize,
    rows: &mut [&mut [f32]],
) {
    let m = rows.len();
    let dst = dot_outputs(x, k, n, rows);
    let whole = n - n % 4;
    // SAFETY: weight rows j..j+4 lie inside the n rows (j + 4 ≤ whole ≤ n); x rows g.. hold k
    // floats; dst rows hold n ≥ j + 4 elements.
    unsafe {
        for j in (0..whole).step_by(4) {
            for g in (0..m).step_by(8) {
                let (xg, d, wj) = (x.as_ptr().add(g * k), &dst[g..], w.add(j * w_rs));
                by_rows8!((m - g).min(8), dot_tile512(xg, k, wj, w_rs, d, j, g == 0));
            }
        }
    }
    if whole < n {
        let mut tails: Vec<&mut [f32]> = rows.iter_mut().map(|r| &mut r[whole..]).collect();
        // SAFETY: the caller's contract, on weight rows whole..n and the same columns of dst.
        unsafe { dots_avx2(x, k, n - whole, w.add(whole * w_rs), w_rs, &mut tails) }
    }
}

/// `dst[r][j + q] += x_r · w_q` for `r < MR`, `q < 4`, as [`dot_tile`] computes each (its
/// 8-lane accumulators two to a register; the same sums). With `prefetch`, asks for the weight
/// rows two tiles on.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
// indices over the tile's register arrays, which the compiler unrolls
#[allow(clippy::needless_range_loop)]
unsafe fn dot_tile512<const MR: usize>(
    x: *const f32,
    k: usize,
    w: *const f32,
    w_rs: usize,
    dst: &[*mut f32],
    j: usize,
    prefetch: bool,
) {
    /// Two weight rows' 8 floats from `kk`, side by side.
    #[inline(always)]
    unsafe fn pair(lo: *const f32, hi: *const f32) -> __m512 {
        // SAFETY: the caller's: 8 floats at each pointer.
        unsafe {
            let lo = _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(lo)));
            let hi = _mm256_castps_pd(_mm256_loadu_ps(hi));
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(lo, hi))
        }
    }
    // SAFETY: the caller's: MR rows of k floats at x, 4 weight rows of k floats, dst rows with
    // element j + 3.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let k8 = k - k % 8;
        let mut kk = 0;
        while kk < k8 {
            if prefetch && kk % 16 == 0 {
                // the same line of the rows two tiles on (past the weight's last row, an
                // address nothing reads: a prefetch never faults)
                for q in 0..4 {
                    let p = w.wrapping_add((q + 8) * w_rs + kk);
                    _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
                }
            }
            let wv = [
                pair(w.add(kk), w.add(w_rs + kk)),
                pair(w.add(2 * w_rs + kk), w.add(3 * w_rs + kk)),
            ];
            for r in 0..MR {
                let x8 = _mm256_castps_pd(_mm256_loadu_ps(x.add(r * k + kk)));
                let xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(x8));
                for p in 0..2 {
                    acc[r][p] = _mm512_fmadd_ps(xv, wv[p], acc[r][p]);
                }
            }
            kk += 8;
        }
        for r in 0..MR {
            for p in 0..2 {
                let halves = [
                    _mm512_castps512_ps256(acc[r][p]),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc[r][p]))),
                ];
                for (h, half) in halves.into_iter().enumerate() {
                    let q = 2 * p + h;
                    let mut s = hsum(half);
                    for t in k8..k {
                        s += *x.add(r * k + t) * *w.add(q * w_rs + t);
                    }
                    *dst[r].add(j + q) += s;
                }
            }
        }
    }
}

/// `dst[r][j + q] += x_r · w_q` for `r < MR`, `q < NW`: the `MR × NW` dot products of length
/// `k` in 8-lane accumulators, the last `k % 8` elements added one by one. With `prefetch`,
/// asks for the weight rows [`AHEAD_ROWS`] on (the first tile of rows over these weights does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
// indices over the tile's register arrays, which the compiler unrolls
#[allow(clippy::needless_range_loop)]
unsafe fn dot_tile<const MR: usize, const NW: usize>(
    x: *const f32,
    k: usize,
    w: *const f32,
    w_rs: usize,
    dst: &[*mut f32],
    j: usize,
    prefetch: bool,
) {
    // SAFETY: the caller's: MR rows of k floats at x, NW weight rows of k floats, dst rows
    // with element j + NW - 1.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); NW]; MR];
        let k8 = k - k % 8;
        let mut kk = 0;
        while kk < k8 {
            if prefetch && kk % 16 == 0 {
                // the same line of the rows AHEAD_ROWS on (past the weight's last row, an
                // address nothing reads: a prefetch never faults)
                for q in 0..NW {
                    let p = w.wrapping_add((q + AHEAD_ROWS) * w_rs + kk);
                    _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
                }
            }
            let mut wv = [_mm256_setzero_ps(); NW];
            for q in 0..NW {
                wv[q] = _mm256_loadu_ps(w.add(q * w_rs + kk));
            }
            for r in 0..MR {
                let xv = _mm256_loadu_ps(x.add(r * k + kk));
                for q in 0..NW {
                    acc[r][q] = _mm256_fmadd_ps(xv, wv[q], acc[r][q]);
                }
            }
            kk += 8;
        }
        for r in 0..MR {
            for q in 0..NW {
                let mut s = hsum(acc[r][q]);
                for t in k8..k {
                    s += *x.add(r * k + t) * *w.add(q * w_rs + t);
                }
                *dst[r].add(j + q) += s;
            }
        }
    }
}

/// The sum of the 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    _mm_cvtss_f32(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, mul: usize, modulo: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * mul % modulo) as f32 - (modulo / 2) as f32) / 7.0)
            .collect()
    }

    /// Both forms against a plain f64 loop, for every row count 1..=9 (tiles of 4 and the
    /// partial last tile), column counts around the tile widths (16, 8, the scalar tail) and
    /// `k` around the 8-lane and [`KC`] blocks, with padded strides on every operand.
    #[test]
    fn tiles_match_a_plain_product() {
        if !available() {
            eprintln!("no AVX2 + FMA on this CPU: the tiles are never used here");
            return;
        }
        for m in 1..=9 {
            for &(n, k) in &[
                (1, 1),
                (7, 5),
                (8, 8),
                (23, 9),
                (24, 64),
                (33, 65),
                (50, 131),
                (97, 17),
            ] {
                let (x_rs, w_rs, d_rs) = (k + 3, n + 5, n + 2);
                let x = values(m * x_rs, 37, 11);
                let init = values(m * d_rs, 7, 5);
                // axpy: W [k, n], rows w_rs apart
                let w = values(k * w_rs, 53, 13);
                let mut dst = init.clone();
                let mut rows: Vec<&mut [f32]> = dst.chunks_mut(d_rs).map(|r| &mut r[..n]).collect();
                // SAFETY: the buffers hold every row and stride used.
                unsafe { axpy(&x, x_rs, k, w.as_ptr(), w_rs, &mut rows) };
                #[cfg(target_arch = "x86_64")]
                if has_avx512() {
                    // the AVX-512 tiles give the AVX2 tiles' bits
                    let mut other = init.clone();
                    let mut rows: Vec<&mut [f32]> =
                        other.chunks_mut(d_rs).map(|r| &mut r[..n]).collect();
                    // SAFETY: as above.
                    unsafe { axpy_avx2(&x, x_rs, k, w.as_ptr(), w_rs, &mut rows) };
                    assert!(
                        dst.iter()
                            .zip(&other)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "axpy m {m} n {n} k {k}: AVX-512 and AVX2 differ"
                    );
                }
                for i in 0..m {
                    for c in 0..d_rs {
                        let want = if c < n {
                            init[i * d_rs + c] as f64
                                + (0..k)
                                    .map(|t| x[i * x_rs + t] as f64 * w[t * w_rs + c] as f64)
                                    .sum::<f64>()
                        } else {
                            init[i * d_rs + c] as f64 // padding untouched
                        };
                        let got = dst[i * d_rs + c] as f64;
                        assert!(
                            (got - want).abs() < 1e-3,
                            "axpy m {m} n {n} k {k} [{i},{c}]: {got} vs {want}"
                        );
                    }
                }
                // dots: W [n, k], rows w_rs apart; x contiguous [m, k]
                let wt = values(n * (k + 5), 53, 13);
                let xc = values(m * k, 29, 17);
                let mut dst = init.clone();
                let mut rows: Vec<&mut [f32]> = dst.chunks_mut(d_rs).collect();
                // SAFETY: as above.
                unsafe { dots(&xc, k, n, wt.as_ptr(), k + 5, &mut rows) };
                #[cfg(target_arch = "x86_64")]
                if has_avx512() {
                    // the AVX-512 tiles give the AVX2 tiles' bits
                    let mut other = init.clone();
                    let mut rows: Vec<&mut [f32]> = other.chunks_mut(d_rs).collect();
                    // SAFETY: as above.
                    unsafe { dots_avx2(&xc, k, n, wt.as_ptr(), k + 5, &mut rows) };
                    assert!(
                        dst.iter()
                            .zip(&other)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "dots m {m} n {n} k {k}: AVX-512 and AVX2 differ"
                    );
                }
                for i in 0..m {
                    for j in 0..d_rs {
                        let want = if j < n {
                            init[i * d_rs + j] as f64
                                + (0..k)
                                    .map(|t| xc[i * k + t] as f64 * wt[j * (k + 5) + t] as f64)
                                    .sum::<f64>()
                        } else {
                            init[i * d_rs + j] as f64
                        };
                        let got = dst[i * d_rs + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-3,
                            "dots m {m} n {n} k {k} [{i},{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
