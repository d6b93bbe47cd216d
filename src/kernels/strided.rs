//! A `[b, heads, t, hd]` tensor read in place through its strides. A model's queries, keys and
//! values are views (the heads are split off by a transpose), and making them contiguous first
//! would cost a pass over memory per op; the rows of width `hd` are contiguous in any case.
use candle_core::{CpuStorage, Layout, Result, bail};

/// Where each row `(bi, hi, ti)` of a 4-D f32 tensor starts in its storage.
#[derive(Clone, Copy, Debug)]
pub(super) struct Heads {
    /// `[b, heads, t, hd]`.
    pub dims: [usize; 4],
    start: usize,
    strides: [usize; 3],
}

impl Heads {
    /// The whole f32 storage of a 4-D tensor and where its rows lie in it. Fails when the last
    /// dimension is not contiguous (callers pass it through [`readable`] first).
    pub fn of<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<(&'a [f32], Self)> {
        let data = match s {
            CpuStorage::F32(v) => v.as_slice(),
            _ => bail!("{op}: expected f32 input"),
        };
        let (dims, st) = (l.dims(), l.stride());
        if dims.len() != 4 {
            bail!("{op}: expected a 4-D tensor [b, heads, t, hd], got {dims:?}");
        }
        if dims[3] > 1 && st[3] != 1 {
            bail!("{op}: the last dimension of {dims:?} must be contiguous");
        }
        let heads = Self {
            dims: [dims[0], dims[1], dims[2], dims[3]],
            start: l.start_offset(),
            strides: [st[0], st[1], st[2]],
        };
        // every row must lie inside the storage: the kernels read through raw pointers
        if dims.iter().all(|&d| d > 0) {
            let last = heads.row(dims[0] - 1, dims[1] - 1, dims[2] - 1) + dims[3];
            if last > data.len() {
                bail!("{op}: layout of {dims:?} reaches past its storage");
            }
        }
        Ok((data, heads))
    }

    /// Offset of row `(bi, hi, ti)`.
    #[inline(always)]
    pub fn row(&self, bi: usize, hi: usize, ti: usize) -> usize {
        self.start + bi * self.strides[0] + hi * self.strides[1] + ti * self.strides[2]
    }

    /// Offset of the first row of head `hi` of sequence `bi` (a `[t, hd]` matrix whose rows are
    /// [`Heads::rs`] apart).
    #[inline(always)]
    pub fn head(&self, bi: usize, hi: usize) -> usize {
        self.row(bi, hi, 0)
    }

    /// Elements between consecutive positions of one head.
    pub fn rs(&self) -> usize {
        self.strides[2]
    }
}

/// `x` itself when the kernels can read it in place (its last dimension is contiguous or of
/// width 1), else a contiguous copy.
pub(super) fn readable(x: &candle_core::Tensor) -> Result<candle_core::Tensor> {
    if x.dims().last().is_none_or(|&d| d <= 1) || x.stride().last() == Some(&1) {
        Ok(x.clone())
    } else {
        x.contiguous()
    }
}
