//! llama.cpp's `Q8_0` weights times f32 activations on the CPU, as candle's `QMatMul` (and
//! llama.cpp) computes it: each activation row quantized to `Q8_0` blocks (32 values, one f16
//! scale `d`), then per block `d_w · d_x · Σ q_w q_x` in integers, with AVX2 where the CPU has
//! it.
//!
//! SmolLM2's GGUF file keeps its tied LM head (49,152 × 576) in `Q8_0`: a third of the bytes a
//! token reads. candle 0.11's AVX2 dot product converts both f16 scales of every block through
//! the `half` crate's out-of-line conversion, which took longer than the integer arithmetic;
//! here one F16C instruction converts the weight's scale, and a prompt's activation rows share
//! each unpacked weight block. A `Q8_0` block is 34 bytes: `d` (f16), then 32 `i8`; value =
//! `d · q`.
use candle_core::{DType, Result, Tensor, bail};
use half::f16;

use super::quant_rows::{ROWS, by_row_groups};

/// Values per block.
pub(crate) const QK: usize = 32;
/// Bytes per `Q8_0` block.
pub(crate) const BLOCK_BYTES: usize = 34;

/// Activations quantized to `Q8_0`: per block of 32 the values `q` and the scale `d`, rounded
/// to f16 and kept in f32, as candle's `BlockQ8_0::from_float` stores it.
struct Q8Rows {
    q: Vec<i8>,
    d: Vec<f32>,
}

/// candle's `BlockQ8_0::from_float`: `d = amax / 127`, `q = round(x / d)` with the unrounded
/// `d`, then `d` kept as f16.
fn quantize_rows(x: &[f32], m: usize, k: usize) -> Q8Rows {
    let mut out = Q8Rows {
        q: vec![0; m * k],
        d: vec![0.0; m * k / QK],
    };
    for (b, (src, dst)) in x
        .chunks_exact(QK)
        .zip(out.q.chunks_exact_mut(QK))
        .enumerate()
    {
        let amax = src.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (q, v) in dst.iter_mut().zip(src) {
            *q = (v * id).round() as i8;
        }
        out.d[b] = f16::from_f32(d).to_f32();
    }
    out
}

/// One quantized activation row: its values and its blocks' scales.
type Row<'a> = (&'a [i8], &'a [f32]);

/// `out [m, n] = x [m, k] · Wᵀ` for `w` the `n` rows of `k / 32` `Q8_0` blocks each (a GGUF
/// tensor's bytes). `k` must be a multiple of 32 and `w` exactly `n · k / 32 · 34` bytes.
pub(crate) fn matmul_q8_0(x: &[f32], m: usize, k: usize, w: &[u8], n: usize) -> Vec<f32> {
    assert!(k.is_multiple_of(QK) && x.len() == m * k && w.len() == n * (k / QK) * BLOCK_BYTES);
    let nb = k / QK;
    let xq = quantize_rows(x, m, k);
    let simd = super::vmath::has_avx2_fma_f16c();
    let row = |i: usize| -> Row<'_> { (&xq.q[i * k..(i + 1) * k], &xq.d[i * nb..(i + 1) * nb]) };
    by_row_groups((m, n, k), w, nb * BLOCK_BYTES, row, |wr, xs, out| {
        dot_rows(simd, wr, xs, out)
    })
}

/// `x [.., k]` (f32, on the CPU) times the `Q8_0` matrix `[n, k]` whose GGUF bytes are `w`:
/// `[.., n]` in f32, no backward pass (inference only).
pub(crate) fn q8_0_linear(x: &Tensor, w: &[u8], n: usize) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some((&k, rows)) = dims.split_last() else {
        bail!(
            "q8_0_linear: the input is a scalar, expected [.., {}]",
            w.len() / n.max(1) / BLOCK_BYTES * QK
        )
    };
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!(
            "q8_0_linear runs on f32 CPU tensors, got {:?} on {:?}",
            x.dtype(),
            x.device()
        )
    }
    if !k.is_multiple_of(QK) || w.len() != n * (k / QK) * BLOCK_BYTES {
        bail!(
            "q8_0_linear: {} bytes are not a Q8_0 matrix [{n}, {k}] (blocks of {QK} values in {BLOCK_BYTES} bytes)",
            w.len()
        )
    }
    let m: usize = rows.iter().product();
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let out = matmul_q8_0(&xs, m, k, w, n);
    let mut shape = rows.to_vec();
    shape.push(n);
    Tensor::from_vec(out, shape, x.device())
}

/// `out[t]` = weight row `w` against activation row `xs[t]`, for the (at most [`ROWS`]) rows
/// of `xs`, each holding as many blocks as `w`.
fn dot_rows(simd: bool, w: &[u8], xs: &[Row<'_>], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` says the CPU has AVX2, FMA and F16C; every activation row holds as
        // many blocks as `w` (`matmul_q8_0` cuts them so).
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
    for (o, &(q, d)) in out.iter_mut().zip(xs) {
        *o = dot_scalar(w, q, d);
    }
}

/// One weight row against one quantized activation row, in order (candle's
/// `vec_dot_unopt`): the reference the AVX2 path is tested against.
fn dot_scalar(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let dw = f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f32();
        let isum: i32 = blk[2..]
            .iter()
            .zip(&q[b * QK..(b + 1) * QK])
            .map(|(&x, &y)| x as i8 as i32 * y as i32)
            .sum();
        sum += isum as f32 * (dw * d[b]);
    }
    sum
}

/// llama.cpp's `ggml_vec_dot_q8_0_q8_0` on AVX2: per block `|q_w|` times `q_x` with `q_w`'s
/// sign (`sign` then `maddubs`: `u8 × i8` pairs into `i16`, at most 2 · 128 · 127), `madd`
/// into 8 `i32`, one `fma` in float scaled by `d_w · d_x`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, QK, Row};

    /// `d_w · d_x` broadcast, and the block's 8 lane sums as f32, for weight block `p` against
    /// the activation block `b` of `(q, d)`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block(p: *const u8, x: __m256i, (q, d): Row<'_>, b: usize) -> (__m256, __m256) {
        // SAFETY: the caller's block has 34 bytes at `p`; block b of the row exists.
        let (dw, y, dx) = unsafe {
            (
                _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const u16).read_unaligned() as i32)),
                _mm256_loadu_si256(q.as_ptr().add(b * QK) as *const __m256i),
                *d.get_unchecked(b),
            )
        };
        let ax = _mm256_sign_epi8(x, x);
        let sy = _mm256_sign_epi8(y, x);
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
        (
            _mm256_broadcastss_ps(_mm_mul_ss(dw, _mm_set_ss(dx))),
            _mm256_cvtepi32_ps(p),
        )
    }

    /// The weight block's 32 values.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn values(p: *const u8) -> __m256i {
        // SAFETY: the caller's block has 32 values at `p + 2`.
        unsafe { _mm256_loadu_si256(p.add(2) as *const __m256i) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn hsum(acc: __m256) -> f32 {
        let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        _mm_cvtss_f32(h)
    }

    /// One weight row `w` against one activation row, two blocks at a time on two
    /// accumulators.
    ///
    /// # Safety
    /// AVX2, FMA and F16C; the row has 32 values and one `d` for each of `w`'s blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_one(w: &[u8], row: Row<'_>) -> f32 {
        let nb = w.len() / BLOCK_BYTES;
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = 0;
        // SAFETY (the blocks): b and b + 1 are below nb, so 34 bytes each lie in `w`, and the
        // caller guarantees the activation blocks.
        unsafe {
            while b + 1 < nb {
                let p0 = w.as_ptr().add(b * BLOCK_BYTES);
                let p1 = w.as_ptr().add((b + 1) * BLOCK_BYTES);
                let (s0, v0) = block(p0, values(p0), row, b);
                let (s1, v1) = block(p1, values(p1), row, b + 1);
                acc0 = _mm256_fmadd_ps(s0, v0, acc0);
                acc1 = _mm256_fmadd_ps(s1, v1, acc1);
                b += 2;
            }
            if b < nb {
                let p = w.as_ptr().add(b * BLOCK_BYTES);
                let (s, v) = block(p, values(p), row, b);
                acc0 = _mm256_fmadd_ps(s, v, acc0);
            }
            hsum(_mm256_add_ps(acc0, acc1))
        }
    }

    /// One weight row `w` against the first `R` activation rows of `xs`, each weight block
    /// loaded once for the `R` rows.
    ///
    /// # Safety
    /// As [`dot_one`], for each of the `R` rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_many<const R: usize>(w: &[u8], xs: &[Row<'_>]) -> [f32; R] {
        let nb = w.len() / BLOCK_BYTES;
        let xs: &[Row<'_>; R] = xs[..R].try_into().expect("R rows");
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            // SAFETY: b < nb, so the block's 34 bytes lie in `w`; the caller guarantees the
            // activation blocks.
            unsafe {
                let p = w.as_ptr().add(b * BLOCK_BYTES);
                let x = values(p);
                for r in 0..R {
                    let (s, v) = block(p, x, xs[r], b);
                    acc[r] = _mm256_fmadd_ps(s, v, acc[r]);
                }
            }
        }
        // SAFETY: the CPU features of this function.
        std::array::from_fn(|r| unsafe { hsum(acc[r]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    fn case(m: usize, k: usize, n: usize) -> (Vec<f32>, QTensor) {
        let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
        let mut x: Vec<f32> = (0..m * k)
            .map(|i| (((i * 7919) % 1009) as f32 - 504.0) / (1.0 + (i % 13) as f32))
            .collect();
        // a block of zeros: scale 0
        x[..QK].fill(0.0);
        (x, QTensor::quantize(&w, GgmlDType::Q8_0).unwrap())
    }

    /// The AVX2 paths (one row with its odd last block, and 2, 3 and 4 rows at a time) equal
    /// the scalar reference row by row, for every count of activation rows up to 9, block
    /// counts odd and even, and an odd number of weight rows.
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
            let (x, q) = case(m, k, n);
            let bytes = q.data().unwrap().to_vec();
            let got = matmul_q8_0(&x, m, k, &bytes, n);
            let xq = quantize_rows(&x, m, k);
            let (nb, row_bytes) = (k / QK, k / QK * BLOCK_BYTES);
            for i in 0..m {
                let scale: f32 = x[i * k..(i + 1) * k].iter().map(|v| v.abs()).sum::<f32>() * 5.0;
                for j in 0..n {
                    let want = dot_scalar(
                        &bytes[j * row_bytes..(j + 1) * row_bytes],
                        &xq.q[i * k..(i + 1) * k],
                        &xq.d[i * nb..(i + 1) * nb],
                    );
                    let g = got[i * n + j];
                    assert!(
                        (g - want).abs() <= 1e-6 * scale + 1e-6,
                        "m {m} k {k} n {n}, ({i},{j}): {g} vs the scalar {want}"
                    );
                }
            }
        }
    }

    /// The product candle's `QMatMul` computes (what the LM head used before this kernel):
    /// the same activation rounding and block arithmetic, so equal up to f32 summation order.
    #[test]
    fn equals_candles_quantized_matmul() {
        for (m, k, n) in [(1, 576, 37), (6, 96, 10)] {
            let (x, q) = case(m, k, n);
            let bytes = q.data().unwrap().to_vec();
            let got = matmul_q8_0(&x, m, k, &bytes, n);
            let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
            let want: Vec<f32> = QMatMul::from_qtensor(q)
                .unwrap()
                .forward(&xt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for i in 0..m {
                let scale: f32 = x[i * k..(i + 1) * k].iter().map(|v| v.abs()).sum::<f32>() * 5.0;
                for j in 0..n {
                    let (g, w) = (got[i * n + j], want[i * n + j]);
                    assert!(
                        (g - w).abs() <= 1e-6 * scale + 1e-6,
                        "m {m} k {k} n {n}, ({i},{j}): {g} vs candle's {w}"
                    );
                }
            }
        }
    }

    /// Wrong sizes are an error naming the expected matrix, not a panic.
    #[test]
    fn a_wrong_size_is_an_error() {
        let x = Tensor::zeros((2, 64), DType::F32, &Device::Cpu).unwrap();
        let err = q8_0_linear(&x, &[0u8; 34 * 3], 2).unwrap_err().to_string();
        assert!(err.contains("not a Q8_0 matrix [2, 64]"), "{err}");
    }
}
