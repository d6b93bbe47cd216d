//! One entry point to the `gemm` crate (the kernel behind candle's CPU matmul) for the fused
//! linear and attention ops: strided views let them multiply transposed operands and write into
//! column slices of a larger buffer without any copy.

/// A row-major view of an `f32` matrix: element `(i, j)` lives at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(super) struct View {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    /// A matrix stored row after row with `rs` elements between rows.
    pub fn rows(data: &[f32], rs: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            rs,
            cs: 1,
        }
    }

    /// The transpose of [`View::rows`].
    pub fn rows_t(data: &[f32], rs: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            rs: 1,
            cs: rs,
        }
    }

    /// The same view starting `offset` elements further.
    pub fn at(self, offset: usize) -> Self {
        // SAFETY (of later reads): callers keep `offset` inside the buffer the view came from.
        Self {
            ptr: self.ptr.wrapping_add(offset),
            ..self
        }
    }
}

/// Below this many multiply-adds one thread does the product: waking the pool costs more.
const PAR_MIN_MACS: usize = 1 << 18;

/// `dst[m, n] = scale * lhs[m, k] · rhs[k, n]`, or `dst += ...` when `accumulate`; `dst` rows are
/// `dst_rs` apart. `parallel` lets gemm use candle's thread count for large products.
///
/// # Safety
/// Every element the views and `dst` address must lie in live buffers; `dst` must not alias
/// `lhs` or `rhs`, and no other thread may write the `dst` elements during the call.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: View,
    rhs: View,
    scale: f32,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if parallel && m * n * k >= PAR_MIN_MACS {
        gemm::Parallelism::Rayon(candle_core::utils::get_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.ptr,
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.ptr,
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}
