//! `exp` and friends that the compiler can vectorise.
//!
//! glibc's `expf` is a function call per element: in softmax, GELU and cross-entropy it took
//! more time than the matmuls of a small GPT. This is Cephes' `expf` (range reduction by
//! `ln 2`, degree-6 polynomial), written without calls or lookups so a loop over a slice becomes
//! SIMD code. Relative error stays below 3e-7 (checked against `f64::exp` in the tests below).

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 · 2²³ rounds an f32 to the nearest integer without a call.
const ROUND: f32 = 12_582_912.0;
/// Below this `exp` is subnormal; we return 0 (softmax then gives masked entries exactly 0).
const MIN_ARG: f32 = -87.336_55;
/// Above this `2^k` would overflow the exponent field; `exp` is infinite soon after anyway.
const MAX_ARG: f32 = 88.0;

/// `e^x` in f32 (see the module docs).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let xc = x.clamp(MIN_ARG, MAX_ARG);
    // `kr`'s low mantissa bits hold round(x log2 e) as an integer offset from ROUND's bits:
    // reading them is a SIMD integer subtract, where `as i32` would be a scalar conversion.
    let kr = xc * LOG2E + ROUND;
    let ki = kr.to_bits() as i32 - ROUND.to_bits() as i32;
    let k = kr - ROUND;
    let r = xc - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((ki + 127) << 23) as u32);
    let out = y * scale;
    if x < MIN_ARG {
        0.0
    } else if x > MAX_ARG {
        f32::INFINITY
    } else {
        out
    }
}

/// `erf(x)` in f32, vectorisable: Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7 in
/// exact arithmetic, below 1e-6 in f32: checked against `f64` in the tests), the same formula
/// PyTorch's vectorised CPU `erf` uses, so BERT's GELU computes as torch's does. The `f64`
/// `erf` it replaces is a call per element that no loop vectorises (~15% of a MiniLM
/// fine-tuning step went to it).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    (1.0 - p * exp(-a * a)).copysign(x)
}

/// Whether the CPU has AVX2 (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| std::is_x86_feature_detected!("avx2"))
}

/// Whether the quantized products' AVX2 paths run: AVX2, FMA and F16C (their block scales are
/// f16), asked once.
pub(crate) fn has_avx2_fma_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static SIMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SIMD.get_or_init(|| {
            has_avx2()
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Defines a function whose body is compiled twice, for the baseline and for AVX2 (8 lanes
/// instead of SSE2's 4), and picks one at run time. The body's loops over slices, built from
/// the `#[inline(always)]` functions here, are then vectorised for the wider registers.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis unsafe fn $($rest:tt)*) => {
        $crate::kernels::vmath::multiversion!(@def [unsafe] $(#[$m])* $vis fn $($rest)*);
    };
    ($(#[$m:meta])* $vis:vis fn $($rest:tt)*) => {
        $crate::kernels::vmath::multiversion!(@def [] $(#[$m])* $vis fn $($rest)*);
    };
    (@def [$($unsafety:tt)?] $(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis $($unsafety)? fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            $($unsafety)? fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                $($unsafety)? fn avx2($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: the same body as `generic` (compiled for AVX2); the caller
                    // upholds the function's own contract, if any.
                    #[allow(unused_unsafe)]
                    unsafe { generic($($arg),*) }
                }
                if $crate::kernels::vmath::has_avx2() {
                    // SAFETY: the CPU supports AVX2 (checked just above); the caller upholds
                    // the function's own contract, if any.
                    #[allow(unused_unsafe)]
                    return unsafe { avx2($($arg),*) };
                }
            }
            // SAFETY: the caller upholds the function's own contract, if any (a safe
            // function's body needs none).
            #[allow(unused_unsafe)]
            unsafe { generic($($arg),*) }
        }
    };
}
pub(crate) use multiversion;

/// The logistic function `1 / (1 + e^-x)`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// The sum of `x`, accumulated in 8 lanes so the loop vectorises (a plain `sum()` must add in
/// order, one element at a time).
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    sum_map(x, |v| v)
}

/// `sum_i f(x[i])`, accumulated in 8 lanes like [`sum`].
#[inline(always)]
pub(crate) fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// `o[i] = exp(x[i] - shift) * scale`.
    pub(crate) fn exp_shifted_scaled(x: &[f32], shift: f32, scale: f32, o: &mut [f32]) {
        o.iter_mut()
            .zip(x)
            .for_each(|(o, &x)| *o = exp(x - shift) * scale);
    }
}

multiversion! {
    /// The largest of `x` (`-inf` when empty), as `fold(f32::NEG_INFINITY, f32::max)` gives
    /// (the same value: `max` does not round), kept in 32 lanes so the loop vectorises; the
    /// fold compares one element after the other, and 8 lanes were one chain of dependent
    /// maxima (each waiting for the last: a few cycles per 8 elements).
    pub(crate) fn max(x: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 32];
        let chunks = x.chunks_exact(32);
        let tail = (chunks.remainder().iter().copied()).fold(f32::NEG_INFINITY, f32::max);
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a = a.max(v);
            }
        }
        acc.into_iter().fold(tail, f32::max)
    }
}

multiversion! {
    /// The position of the first element of `x` equal to `v`, looked for 8 elements at a time
    /// (`position` compares one after the other).
    pub(crate) fn position_of(x: &[f32], v: f32) -> Option<usize> {
        let chunks = x.chunks_exact(8);
        let done = x.len() - chunks.remainder().len();
        for (i, c) in chunks.enumerate() {
            if c.iter().fold(false, |hit, &e| hit | (e == v)) {
                return c.iter().position(|&e| e == v).map(|j| 8 * i + j);
            }
        }
        x[done..].iter().position(|&e| e == v).map(|j| done + j)
    }
}

multiversion! {
    /// `sum_i exp(x[i] - shift)`, added in the order of [`sum_map`] (8 lanes, then the tail):
    /// the same value as `sum_map(x, |v| exp(v - shift))`. That form compiled to scalar code
    /// (the 8 lanes' `exp`, with their range checks, were not turned into vector code; it was
    /// ~8% of a 4-beam search step over 4 × 8192 scores); here the exponentials of a block
    /// go to a small buffer first, in a loop that vectorises as [`exp_shifted_scaled`]'s.
    pub(crate) fn sum_exp_shifted(x: &[f32], shift: f32) -> f32 {
        const BLOCK: usize = 256;
        let mut acc = [0f32; 8];
        let mut buf = [0f32; BLOCK];
        let chunks = x.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - shift)).sum();
        let body = &x[..x.len() - x.len() % 8];
        for block in body.chunks(BLOCK) {
            let e = &mut buf[..block.len()];
            e.iter_mut().zip(block).for_each(|(o, &v)| *o = exp(v - shift));
            for c in e.chunks_exact(8) {
                for (a, &v) in acc.iter_mut().zip(c) {
                    *a += v;
                }
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// Softmax of one row in place, shifted by its maximum as PyTorch does.
    pub(crate) fn softmax_in_place(row: &mut [f32]) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.iter_mut().for_each(|v| *v = exp(*v - max));
        let inv = 1.0 / sum(row);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane-wise maximum equals the sequential fold wherever the largest value sits
    /// (in a full block of 8 or in the tail), for lengths with and without a tail.
    #[test]
    fn max_equals_the_sequential_fold() {
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        for n in [1, 7, 8, 9, 16, 23, 8192] {
            for at in [0, n / 2, n - 1] {
                let mut x: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32) - 200.0).collect();
                x[at] = 3.5;
                let want = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(max(&x), want, "n {n}, largest at {at}");
                assert_eq!(want, 3.5);
            }
        }
    }

    /// The blocked sum of exponentials adds in the same order as the plain lane form, so it
    /// gives the very same bits, over lengths with and without a tail and across blocks, with
    /// arguments under and over `exp`'s range.
    #[test]
    fn sum_exp_shifted_equals_the_lane_sum_bit_for_bit() {
        for n in [0, 1, 7, 8, 9, 255, 256, 257, 600, 8192, 8197] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 3.0)
                .collect();
            for shift in [0.0, 2.5, 160.0] {
                let want = sum_map(&x, |v| exp(v - shift));
                let got = sum_exp_shifted(&x, shift);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "n {n}, shift {shift}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn exp_matches_f64_to_3e7_relative() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            // under Miri (scripts/miri.sh), every 100th point of the same range
            x += if cfg!(miri) { 0.137 } else { 0.001_37 };
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(1e30), f32::INFINITY);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert_eq!(sigmoid(-1e30), 0.0);
        assert_eq!(sigmoid(1e30), 1.0);
    }

    #[test]
    fn erf_matches_f64_to_1e6_absolute() {
        let mut worst = 0f64;
        let mut x = -9.0f32;
        while x < 9.0 {
            let want = candle_core::cpu::erf::erf_f64(x as f64);
            worst = worst.max((erf(x) as f64 - want).abs());
            x += if cfg!(miri) { 0.071 } else { 0.000_71 };
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
        // the formula's own error at 0 (A&S: 1.8e-7), where GELU multiplies it by 0
        assert!(erf(0.0).abs() < 2e-7);
        assert_eq!(erf(f32::MAX), 1.0);
        assert_eq!(erf(f32::MIN), -1.0);
    }
}
