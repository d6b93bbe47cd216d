//! Gradients all-reduced in buckets (PyTorch DDP's `bucket_cap_mb`): consecutive tensors
//! flattened into one f32 buffer of at most the cap, one collective per bucket, so a model of
//! hundreds of small tensors costs a few large messages rather than hundreds of small ones.
//! candle's backward returns every gradient at once, so the buckets are reduced after it, not
//! overlapped with it as DDP's hooks do.
use candle_core::{DType, Tensor};

use super::Communicator;
use crate::Result;

/// What an all-reduce computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    /// The sum divided by the world size.
    Mean,
}

/// The index ranges of `sizes` (element counts) grouped into buckets of at most `cap_elems`
/// elements each, in order; a tensor larger than the cap is a bucket of its own.
pub fn bucket_ranges(sizes: &[usize], cap_elems: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut filled) = (0, 0);
    for (i, &n) in sizes.iter().enumerate() {
        if i > start && filled + n > cap_elems {
            out.push(start..i);
            (start, filled) = (i, 0);
        }
        filled += n;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Replaces each tensor of `tensors` by its sum (or mean) over the ranks, in buckets of at
/// most `bucket_cap_bytes` of f32. Every rank must pass tensors of the same shapes in the same
/// order. The results keep each tensor's shape, dtype and device. Returns the number of
/// collectives (buckets) it took.
pub fn all_reduce_tensors(
    comm: &dyn Communicator,
    tensors: &mut [Tensor],
    op: Reduce,
    bucket_cap_bytes: usize,
) -> Result<usize> {
    if comm.world_size() == 1 || tensors.is_empty() {
        return Ok(0);
    }
    let sizes: Vec<usize> = tensors.iter().map(|t| t.elem_count()).collect();
    let buckets = bucket_ranges(&sizes, (bucket_cap_bytes / 4).max(1));
    for range in &buckets {
        let mut buf = Vec::with_capacity(sizes[range.clone()].iter().sum());
        for t in &tensors[range.clone()] {
            buf.extend(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
        }
        match op {
            Reduce::Sum => comm.all_reduce_sum_f32(&mut buf)?,
            Reduce::Mean => comm.all_reduce_mean_f32(&mut buf)?,
        }
        let mut off = 0;
        for t in &mut tensors[range.clone()] {
            let n = t.elem_count();
            let r = Tensor::from_slice(&buf[off..off + n], t.shape(), t.device())?;
            *t = r.to_dtype(t.dtype())?;
            off += n;
        }
    }
    Ok(buckets.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_fill_to_the_cap_in_order() {
        assert_eq!(
            bucket_ranges(&[3, 3, 3, 10, 1], 6),
            vec![0..2, 2..3, 3..4, 4..5]
        );
        assert_eq!(bucket_ranges(&[1, 1, 1], 100), vec![0..3]);
        assert!(bucket_ranges(&[], 5).is_empty());
        let sizes = [7, 1, 8, 2, 2, 9, 4];
        let b = bucket_ranges(&sizes, 8);
        assert_eq!(b.iter().map(|r| r.len()).sum::<usize>(), sizes.len());
        for r in &b {
            let total: usize = sizes[r.clone()].iter().sum();
            assert!(total <= 8 || r.len() == 1, "{r:?}");
        }
    }

    #[test]
    fn one_process_leaves_tensors_alone() {
        let t = Tensor::new(&[1.0f32, 2.0], &candle_core::Device::Cpu).unwrap();
        let mut v = vec![t];
        let n = all_reduce_tensors(&super::super::SingleProcess, &mut v, Reduce::Mean, 4).unwrap();
        assert_eq!(n, 0);
        assert_eq!(v[0].to_vec1::<f32>().unwrap(), [1.0, 2.0]);
    }
}
