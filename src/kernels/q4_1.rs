//! llama.cpp's `Q4_1` weights times f32 activations on the CPU, as llama.cpp computes it: each
//! activation row quantized to `Q8_1` blocks (32 values, one scale `d` and `s = d · Σq`), then
//! per block `d_w · d_x · Σ q_w q_x + m_w · s_x` in integers, with AVX2 where the CPU has it.
//!
//! candle 0.11 has this product only as a scalar loop on x86 (its SIMD paths cover `Q4_0`,
//! `Q8_0` and the k-quants), and decoding spends nearly all its time here: one pass over the
//! weights' bytes per token. A `Q4_1` block is 20 bytes: `d` and `m` (f16), then 16 bytes of
//! nibbles, byte `j` holding value `j` (low) and value `j + 16` (high); value = `d · q + m`.
use candle_core::{DType, Result, Tensor, bail};
use half::f16;

use super::quant_rows::{ROWS, by_row_groups};

/// Values per block.
pub(crate) const QK: usize = 32;
/// Bytes per `Q4_1` block.
pub(crate) const BLOCK_BYTES: usize = 20;

/// Activations quantized to `Q8_1`: per block of 32, the values `q` (i8), `d` and `d · Σq`
/// (kept in f32; llama.cpp rounds both to f16).
struct Q8Rows {
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

fn quantize_rows(x: &[f32], m: usize, k: usize) -> Q8Rows {
    let nb = k / QK;
    let mut out = Q8Rows {
        q: vec![0; m * k],
        d: vec![0.0; m * nb],
        s: vec![0.0; m * nb],
    };
    for (b, (src, dst)) in x
        .chunks_exact(QK)
        .zip(out.q.chunks_exact_mut(QK))
        .enumerate()
    {
        let amax = src.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in dst.iter_mut().zip(src) {
            let r = (v * id).round() as i32;
            *q = r as i8;
            sum += r;
        }
        out.d[b] = d;
        out.s[b] = d * sum as f32;
    }
    out
}

/// `out [m, n] = x [m, k] · Wᵀ` for `w` the `n` rows of `k / 32` `Q4_1` blocks each (a GGUF
/// tensor's bytes). `k` must be a multiple of 32 and `w` exactly `n · k / 32 · 20` bytes.
pub(crate) fn matmul_q4_1(x: &[f32], m: usize, k: usize, w: &[u8], n: usize) -> Vec<f32> {
    assert!(k.is_multiple_of(QK) && x.len() == m * k && w.len() == n * (k / QK) * BLOCK_BYTES);
    let nb = k / QK;
    let xq = quantize_rows(x, m, k);
    let simd = super::vmath::has_avx2_fma_f16c();
    let row = |i: usize| -> Row<'_> {
        (
            &xq.q[i * k..(i + 1) * k],
            &xq.d[i * nb..(i + 1) * nb],
            &xq.s[i * nb..(i + 1) * nb],
        )
    };
    by_row_groups((m, n, k), w, nb * BLOCK_BYTES, row, |wr, xs, out| {
        dot_rows(simd, wr, xs, out)
    })
}

/// One quantized activation row: its values, and per block `d` and `d · Σq`.
type Row<'a> = (&'a [i8], &'a [f32], &'a [f32]);

/// `out[t]` = weight row `w` against activation row `xs[t]`, for the (at most [`ROWS`]) rows
/// of `xs`, each holding as many blocks as `w`.
fn dot_rows(simd: bool, w: &[u8], xs: &[Row<'_>], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` says the CPU has AVX2, FMA and F16C; every activation row holds as
        // many blocks as `w` (`matmul_q4_1` cuts them so).
        unsafe {
            match xs.len() {
                1 => out[0] = avx2::dot_one(w, xs[0]),
                2 => out.copy_from_slice(&avx2::dot_many::<2>(w, xs)),
                3 => out.copy_from_slice(&avx2::dot_many::<3>(w, xs)),
                _ => out.copy_from_slice(&avx2::dot_many::<ROWS>(w, xs)),
            }
        }
        return;
    }
    let _ = simd;
    for (o, &(q, d, s)) in out.iter_mut().zip(xs) {
        *o = dot_scalar(w, q, d, s);
    }
}

/// `x [.., k]` (f32, on the CPU) times the `Q4_1` matrix `[n, k]` whose GGUF bytes are `w`:
/// `[.., n]` in f32, no backward pass (inference only).
pub(crate) fn q4_1_linear(x: &Tensor, w: &[u8], n: usize) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some((&k, rows)) = dims.split_last() else {
        bail!(
            "q4_1_linear: the input is a scalar, expected [.., {}]",
            w.len() / n.max(1)
        )
    };
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!(
            "q4_1_linear runs on f32 CPU tensors, got {:?} on {:?}",
            x.dtype(),
            x.device()
        )
    }
    if !k.is_multiple_of(QK) || w.len() != n * (k / QK) * BLOCK_BYTES {
        bail!(
            "q4_1_linear: {} bytes are not a Q4_1 matrix [{n}, {k}] (blocks of {QK} values in {BLOCK_BYTES} bytes)",
            w.len()
        )
    }
    let m: usize = rows.iter().product();
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let out = matmul_q4_1(&xs, m, k, w, n);
    let mut shape = rows.to_vec();
    shape.push(n);
    Tensor::from_vec(out, shape, x.device())
}

fn half(b: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// One weight row against one quantized activation row, in order: the reference the AVX2
/// path is tested against.
fn dot_scalar(w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let (dw, mw, qs) = (half(&blk[0..2]), half(&blk[2..4]), &blk[4..20]);
        let y = &q[b * QK..(b + 1) * QK];
        let mut isum = 0i32;
        for j in 0..16 {
            isum += (qs[j] & 0x0F) as i32 * y[j] as i32 + (qs[j] >> 4) as i32 * y[j + 16] as i32;
        }
        sum += dw * d[b] * isum as f32 + mw * s[b];
    }
    sum
}

/// llama.cpp's `ggml_vec_dot_q4_1_q8_1` on AVX2: per block the nibbles become 32 bytes,
/// `maddubs` multiplies them by the activation's 32 `i8` into `i16` pairs (at most
/// 2 · 15 · 128, no overflow), `madd` sums those into 8 `i32`, and one `fma` adds them, in
/// float, scaled by `d_w · d_x`; `m_w · s_x` is summed beside. Both f16 scales of a block are
/// converted by one F16C instruction.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, QK, Row};

    /// `[d, m, 0, 0]` of the block at `p`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn scales(p: *const u8) -> __m128 {
        // SAFETY: the caller's block has 20 bytes at `p`; the first 4 are `d` and `m`.
        let dm = unsafe { (p as *const i32).read_unaligned() };
        _mm_cvtph_ps(_mm_cvtsi32_si128(dm))
    }

    /// The block's 32 values (0..15) as bytes, in the activations' order: byte `j` of the
    /// nibbles holds value `j` in its low half and value `j + 16` in its high half.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn values(p: *const u8) -> __m256i {
        // SAFETY: the caller's block has 16 bytes of nibbles at `p + 4`.
        let nib = unsafe { _mm_loadu_si128(p.add(4) as *const __m128i) };
        let both = _mm256_set_m128i(_mm_srli_epi16(nib, 4), nib);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    /// `(Σ x·y per 8 lanes as f32, [d_w·d_x, m_w·s_x, 0, 0])` of one block against the
    /// activation block `b` of row `(q, d, s)`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block(x: __m256i, dm: __m128, (q, d, s): Row<'_>, b: usize) -> (__m256, __m128) {
        // SAFETY: block b of the row exists (the caller loops over the weight row's blocks,
        // as many as the row's).
        let (y, dx, sx) = unsafe {
            (
                _mm256_loadu_si256(q.as_ptr().add(b * QK) as *const __m256i),
                *d.get_unchecked(b),
                *s.get_unchecked(b),
            )
        };
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
        (
            _mm256_cvtepi32_ps(p),
            _mm_mul_ps(dm, _mm_unpacklo_ps(_mm_set_ss(dx), _mm_set_ss(sx))),
        )
    }

    /// The sum of `acc`'s lanes plus lane 1 of `mins`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn finish(acc: __m256, mins: __m128) -> f32 {
        let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        _mm_cvtss_f32(h) + _mm_cvtss_f32(_mm_shuffle_ps(mins, mins, 1))
    }

    /// One weight row `w` against one activation row, two blocks at a time on two
    /// accumulators (decoding: one row, so the blocks are the only parallelism).
    ///
    /// # Safety
    /// AVX2, FMA and F16C; the row has 32 values and one `d` and `s` for each of `w`'s
    /// blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_one(w: &[u8], row: Row<'_>) -> f32 {
        let nb = w.len() / BLOCK_BYTES;
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut min0, mut min1) = (_mm_setzero_ps(), _mm_setzero_ps());
        let mut b = 0;
        // SAFETY (the blocks): b and b + 1 are below nb, so 20 bytes each lie in `w`, and the
        // caller guarantees the activation blocks.
        unsafe {
            while b + 1 < nb {
                let (p0, p1) = (
                    w.as_ptr().add(b * BLOCK_BYTES),
                    w.as_ptr().add((b + 1) * BLOCK_BYTES),
                );
                let (v0, s0) = block(values(p0), scales(p0), row, b);
                let (v1, s1) = block(values(p1), scales(p1), row, b + 1);
                acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s0), v0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s1), v1, acc1);
                min0 = _mm_add_ps(min0, s0);
                min1 = _mm_add_ps(min1, s1);
                b += 2;
            }
            if b < nb {
                let p = w.as_ptr().add(b * BLOCK_BYTES);
                let (v, sc) = block(values(p), scales(p), row, b);
                acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), v, acc0);
                min0 = _mm_add_ps(min0, sc);
            }
            finish(_mm256_add_ps(acc0, acc1), _mm_add_ps(min0, min1))
        }
    }

    /// One weight row `w` against the first `R` activation rows of `xs`: each block's nibbles
    /// and scales are unpacked once for the `R` rows (a prompt's tokens).
    ///
    /// # Safety
    /// As [`dot_one`], for each of the `R` rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_many<const R: usize>(w: &[u8], xs: &[Row<'_>]) -> [f32; R] {
        let nb = w.len() / BLOCK_BYTES;
        let xs: &[Row<'_>; R] = xs[..R].try_into().expect("R rows");
        let mut acc = [_mm256_setzero_ps(); R];
        let mut mins = [_mm_setzero_ps(); R];
        for b in 0..nb {
            // SAFETY: b < nb, so the block's 20 bytes lie in `w`; the caller guarantees the
            // activation blocks.
            unsafe {
                let p = w.as_ptr().add(b * BLOCK_BYTES);
                let (x, dm) = (values(p), scales(p));
                for r in 0..R {
                    let (v, sc) = block(x, dm, xs[r], b);
                    acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), v, acc[r]);
                    mins[r] = _mm_add_ps(mins[r], sc);
                }
            }
        }
        // SAFETY: the CPU features of this function.
        std::array::from_fn(|r| unsafe { finish(acc[r], mins[r]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// Against the dequantized weights times the `Q8_1`-rounded activations in f64: the same
    /// numbers, so only the summation order differs; and the SIMD path equals the scalar one.
    #[test]
    fn matches_the_dequantized_product_of_the_rounded_activations() {
        let (m, k, n) = (3, 96, 40);
        let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let wd: Vec<Vec<f32>> = q.dequantize(&Device::Cpu).unwrap().to_vec2().unwrap();
        let bytes = q.data().unwrap();
        let got = matmul_q4_1(&x, m, k, &bytes, n);
        let xq = quantize_rows(&x, m, k);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|c| {
                        wd[j][c] as f64 * xq.q[i * k + c] as f64 * xq.d[i * k / QK + c / QK] as f64
                    })
                    .sum();
                let g = got[i * n + j] as f64;
                assert!(
                    (g - want).abs() <= 1e-3 * (1.0 + want.abs()),
                    "({i},{j}): {g} vs {want}"
                );
                let row = &bytes[j * (k / QK) * BLOCK_BYTES..(j + 1) * (k / QK) * BLOCK_BYTES];
                let scalar = dot_scalar(
                    row,
                    &xq.q[i * k..(i + 1) * k],
                    &xq.d[i * k / QK..(i + 1) * k / QK],
                    &xq.s[i * k / QK..(i + 1) * k / QK],
                );
                assert!((scalar as f64 - g).abs() <= 1e-4 * (1.0 + g.abs()));
            }
        }
        // and close to the f32 product: each activation is off by at most half its block's
        // step `d` after rounding, so the product by at most sum |w| d / 2
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..k).map(|c| wd[j][c] as f64 * x[i * k + c] as f64).sum();
                let bound: f64 = (0..k)
                    .map(|c| wd[j][c].abs() as f64 * xq.d[i * k / QK + c / QK] as f64 / 2.0)
                    .sum();
                let g = got[i * n + j] as f64;
                assert!(
                    (g - exact).abs() <= bound * 1.01 + 1e-4,
                    "({i},{j}): {g} vs the f32 product {exact}, bound {bound}"
                );
            }
        }
    }

    /// The AVX2 paths (one row with its odd last block, and 2, 3 and 4 rows at a time) equal
    /// the scalar reference row by row, for every count of activation rows up to 9 (full
    /// groups of 4 and each remainder), block counts odd and even, an odd number of weight
    /// rows, and a block of zero activations (scale 0).
    #[test]
    fn every_row_grouping_equals_the_scalar_reference() {
        for (m, k, n) in [
            (1, 32, 3),
            (1, 96, 7),
            (1, 576, 5),
            (2, 64, 5),
            (5, 160, 9),
            (9, 96, 11),
            (4, 1536, 3),
            (7, 576, 13),
        ] {
            let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
            let bytes = QTensor::quantize(&w, GgmlDType::Q4_1)
                .unwrap()
                .data()
                .unwrap()
                .to_vec();
            let mut x: Vec<f32> = (0..m * k)
                .map(|i| (((i * 7919) % 1009) as f32 - 504.0) / (1.0 + (i % 13) as f32))
                .collect();
            x[..QK].fill(0.0);
            let got = matmul_q4_1(&x, m, k, &bytes, n);
            let xq = quantize_rows(&x, m, k);
            let (nb, row_bytes) = (k / QK, k / QK * BLOCK_BYTES);
            for i in 0..m {
                for j in 0..n {
                    let want = dot_scalar(
                        &bytes[j * row_bytes..(j + 1) * row_bytes],
                        &xq.q[i * k..(i + 1) * k],
                        &xq.d[i * nb..(i + 1) * nb],
                        &xq.s[i * nb..(i + 1) * nb],
                    );
                    // f32 rounding of sums in another order: far below one term's size
                    let scale: f32 =
                        x[i * k..(i + 1) * k].iter().map(|v| v.abs()).sum::<f32>() * 5.0;
                    let g = got[i * n + j];
                    assert!(
                        (g - want).abs() <= 1e-6 * scale + 1e-6,
                        "m {m} k {k} n {n}, ({i},{j}): {g} vs the scalar {want}"
                    );
                }
            }
        }
    }
}
