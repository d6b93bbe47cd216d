//! Dropout masks from a counter-based random stream: element `i` of the mask for `(seed, stream)`
//! is a hash of the three numbers, so a mask does not depend on the device, on the kernel path, or
//! on how many numbers were drawn before it. The Trainer gives each batch its own seed, so a resumed
//! run draws exactly the masks of an uninterrupted one.
use candle_core::{Device, Result, Tensor};

use super::cpu::{OutPtr, par_for};

/// SplitMix64's finaliser: a bijective mix of 64 bits (Steele, Lea, Flood 2014).
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A `u8` tensor of shape `dims` on `device`: 1 where an element is kept (probability `1 - p`),
/// 0 where it is dropped. Generated on the host in parallel, then moved as bytes.
pub fn dropout_mask(
    dims: &[usize],
    p: f64,
    seed: u64,
    stream: u64,
    device: &Device,
) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let keep = KeepMask::new(p, seed, stream);
    let mut mask = vec![0u8; n];
    let ptr = OutPtr(mask.as_mut_ptr());
    const CHUNK: usize = 1 << 14;
    par_for(n.div_ceil(CHUNK), n, |range| {
        for c in range {
            let start = c * CHUNK;
            let len = CHUNK.min(n - start);
            // SAFETY: chunk c's bytes are inside `mask` and written only by this task.
            let out = unsafe { ptr.slice(start, len) };
            for (i, o) in out.iter_mut().enumerate() {
                *o = keep.keeps(start + i) as u8;
            }
        }
    });
    Tensor::from_vec(mask, dims, device)
}

/// The mask of [`dropout_mask`] for `(p, seed, stream)`, element by element, for kernels that
/// apply dropout where they compute (the fused attention): element `i` of the flattened tensor.
#[derive(Clone, Copy)]
pub(crate) struct KeepMask {
    base: u64,
    threshold: u64,
}

impl KeepMask {
    pub(crate) fn new(p: f64, seed: u64, stream: u64) -> Self {
        Self {
            base: mix(seed ^ mix(stream.wrapping_add(0x9E37_79B9_7F4A_7C15))),
            // keep when the top 53 bits, as a uniform number in [0, 1), are >= p (torch:
            // bernoulli(1 - p))
            threshold: (p * (1u64 << 53) as f64) as u64,
        }
    }

    #[inline(always)]
    pub(crate) fn keeps(self, i: usize) -> bool {
        mix(self.base.wrapping_add(i as u64)) >> 11 >= self.threshold
    }
}
