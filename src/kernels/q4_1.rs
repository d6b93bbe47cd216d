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

use super::cpu::{OutPtr, par_for};

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
    let mut out = vec![0f32; m * n];
    let ptr = OutPtr(out.as_mut_ptr());
    let row_bytes = nb * BLOCK_BYTES;
    par_for(n, m * n * k, |rows| {
        for j in rows {
            let wr = &w[j * row_bytes..(j + 1) * row_bytes];
            for i in 0..m {
                let (q, d, s) = (
                    &xq.q[i * k..(i + 1) * k],
                    &xq.d[i * nb..(i + 1) * nb],
                    &xq.s[i * nb..(i + 1) * nb],
                );
                let v = dot(wr, q, d, s);
                // SAFETY: element (i, j) is inside `out`, and only the chunk holding row j of
                // the weights writes column j.
                unsafe { *ptr.ptr().add(i * n + j) = v };
            }
        }
    });
    out
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

/// One weight row against one quantized activation row.
fn dot(w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::vmath::has_avx2() && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA; the slices' lengths match (checked by the caller).
        return unsafe { dot_avx2(w, q, d, s) };
    }
    dot_scalar(w, q, d, s)
}

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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let nb = d.len();
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    let low = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    for b in 0..nb {
        let blk = &w[b * BLOCK_BYTES..(b + 1) * BLOCK_BYTES];
        let (dw, mw) = (half(&blk[0..2]), half(&blk[2..4]));
        // SAFETY: 16 bytes of nibbles at blk[4..20], 32 bytes of i8 at q[b*32..]
        let (nib, y) = unsafe {
            (
                _mm_loadu_si128(blk.as_ptr().add(4) as *const __m128i),
                _mm256_loadu_si256(q.as_ptr().add(b * QK) as *const __m256i),
            )
        };
        let lo = _mm_and_si128(nib, low);
        let hi = _mm_and_si128(_mm_srli_epi16(nib, 4), low);
        let x = _mm256_set_m128i(hi, lo); // values 0..15, then 16..31
        // u8 × i8 pairs summed to i16 (at most 2 · 15 · 128, no overflow), then to i32
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * d[b]), _mm256_cvtepi32_ps(p), acc);
        mins += mw * s[b];
    }
    let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    _mm_cvtss_f32(h) + mins
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
}
