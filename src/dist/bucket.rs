//! Gradients all-reduced in buckets (PyTorch DDP's `bucket_cap_mb`): consecutive tensors
//! flattened into one f32 buffer of at most the cap, one collective per bucket, so a model of
//! hundreds of small tensors costs a few large messages rather than hundreds of small ones.
//! candle's backward returns every gradient at once, so the buckets are reduced after it, not
//! overlapped with it as DDP's hooks do.
use candle_core::{DType, Storage, Tensor};

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
    // one buffer for every bucket: the largest bucket's size, allocated once
    let most = buckets
        .iter()
        .map(|r| sizes[r.clone()].iter().sum::<usize>())
        .max()
        .unwrap_or(0);
    let mut buf = Vec::with_capacity(most);
    for range in &buckets {
        buf.clear();
        for t in &tensors[range.clone()] {
            append_f32(&mut buf, t)?;
        }
        match op {
            Reduce::Sum => comm.all_reduce_sum_f32(&mut buf)?,
            Reduce::Mean => comm.all_reduce_mean_f32(&mut buf)?,
        }
        let mut off = 0;
        for t in &mut tensors[range.clone()] {
            let n = t.elem_count();
            let r = Tensor::from_slice(&buf[off..off + n], t.shape(), t.device())?;
            *t = if t.dtype() == DType::F32 {
                r
            } else {
                r.to_dtype(t.dtype())?
            };
            off += n;
        }
    }
    Ok(buckets.len())
}

/// Appends `t`'s elements as f32: a contiguous f32 tensor on the CPU (every gradient of a CPU
/// run) is copied straight from its storage, once; others go through a flat f32 copy.
fn append_f32(buf: &mut Vec<f32>, t: &Tensor) -> Result<()> {
    if t.dtype() == DType::F32 {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            buf.extend_from_slice(&cpu.as_slice::<f32>()?[start..end]);
            return Ok(());
        }
    }
    buf.extend(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
    Ok(())
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

    /// Two ranks holding the same values: a sum doubles each element.
    #[derive(Debug)]
    struct Twins;
    impl Communicator for Twins {
        fn backend(&self) -> &'static str {
            "twins"
        }
        fn rank(&self) -> usize {
            0
        }
        fn world_size(&self) -> usize {
            2
        }
        fn local_rank(&self) -> usize {
            0
        }
        fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
            buf.iter_mut().for_each(|x| *x *= 2.0);
            Ok(())
        }
        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            buf.iter_mut().for_each(|x| *x *= 2.0);
            Ok(())
        }
        fn broadcast_bytes(&self, _buf: &mut Vec<u8>, _root: usize) -> Result<()> {
            Ok(())
        }
        fn barrier(&self) -> Result<()> {
            Ok(())
        }
        fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
            Ok(vec![value, value])
        }
        fn abort(&self, code: i32) -> ! {
            std::process::exit(code)
        }
    }

    #[test]
    fn every_layout_and_dtype_comes_back_summed_in_its_shape() {
        let dev = candle_core::Device::Cpu;
        let a = Tensor::arange(0f32, 6.0, &dev)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let transposed = a.t().unwrap(); // not contiguous
        let narrow = Tensor::arange(0f32, 10.0, &dev)
            .unwrap()
            .narrow(0, 3, 4)
            .unwrap(); // an offset
        let half = Tensor::new(&[1.5f32, -2.0], &dev)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let inputs = [a, transposed, narrow, half];
        let values = |t: &Tensor| -> Vec<f32> {
            let t = t.to_dtype(DType::F32).unwrap();
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        for cap in [4, 1 << 20] {
            let mut v = inputs.to_vec();
            let n = all_reduce_tensors(&Twins, &mut v, Reduce::Sum, cap).unwrap();
            assert!(n >= 1);
            for (got, want) in v.iter().zip(&inputs) {
                assert_eq!(got.shape(), want.shape());
                assert_eq!(got.dtype(), want.dtype());
                let doubled: Vec<f32> = values(want).iter().map(|x| x * 2.0).collect();
                assert_eq!(values(got), doubled);
            }
            let mut v = inputs.to_vec();
            all_reduce_tensors(&Twins, &mut v, Reduce::Mean, cap).unwrap();
            for (got, want) in v.iter().zip(&inputs) {
                assert_eq!(
                    values(got),
                    values(want),
                    "the mean of two equal ranks is the value"
                );
            }
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
