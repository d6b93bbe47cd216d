//! One entry point to the `gemm` crate (the kernel behind candle's CPU matmul) for the fused
//! linear and attention ops: strided views let them multiply transposed operands and write into
//! column slices of a larger buffer without any copy.
use std::ops::Range;

use super::gemv;
use super::view::View;

/// Below this many multiply-adds one thread does the product: waking the pool costs more.
const PAR_MIN_MACS: usize = 1 << 18;
/// Rows (or columns) of `dst` per parallel task: at least this many.
const MIN_BLOCK: usize = 32;
/// Tasks per thread in a parallel product.
const BLOCKS_PER_THREAD: usize = 3;

/// A `*mut f32` that row blocks are written through from several threads.
#[derive(Clone, Copy)]
struct Dst(*mut f32);
// SAFETY: each task writes only its own rows of `dst` (see `matmul`).
unsafe impl Send for Dst {}
// SAFETY: as for `Send`: the tasks sharing it write disjoint row blocks.
unsafe impl Sync for Dst {}

impl Dst {
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `dst[m, n] = scale * lhs[m, k] · rhs[k, n]`, or `dst += ...` when `accumulate`; `dst` rows are
/// `dst_rs` apart.
///
/// With `parallel`, large products are split into blocks of rows run on candle's CPU thread pool
/// (the one its element-wise ops and our fused ops use), each block a single-threaded gemm. Using
/// gemm's own rayon parallelism instead would wake a second pool whose threads compete with
/// candle's spinning workers for the same cores.
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
    let block = |rows: Range<usize>, cols: Range<usize>, dst: Dst| {
        let (r0, c0) = (rows.start, cols.start);
        if gemv::applies(rows.len(), rhs) {
            // SAFETY: as below.
            unsafe {
                gemv::gemv(
                    (rows.len(), cols.len(), k),
                    dst.ptr().add(r0 * dst_rs + c0),
                    dst_rs,
                    accumulate,
                    lhs.at(r0 * lhs.rs),
                    rhs.at(c0 * rhs.cs),
                    scale,
                    false,
                )
            };
            return;
        }
        // SAFETY: forwarded from the caller's contract; the block lies inside dst, lhs, rhs.
        unsafe {
            gemm::gemm(
                rows.len(),
                cols.len(),
                k,
                dst.ptr().add(r0 * dst_rs + c0),
                1,
                dst_rs as isize,
                accumulate,
                lhs.at(r0 * lhs.rs).ptr(),
                lhs.cs as isize,
                lhs.rs as isize,
                rhs.at(c0 * rhs.cs).ptr(),
                rhs.cs as isize,
                rhs.rs as isize,
                1.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    };
    let threads = crate::threads::num_threads();
    let parallel = parallel && threads > 1 && m * n * k >= PAR_MIN_MACS;
    if parallel && gemv::applies(m, rhs) && rhs.cs == 1 {
        // a decoding step's Conv1D: gemv gives each thread a band of whole weight rows
        // SAFETY: forwarded from the caller's contract.
        unsafe { gemv::gemv((m, n, k), dst, dst_rs, accumulate, lhs, rhs, scale, true) };
        return;
    }
    let dst = Dst(dst);
    if parallel && m.max(n) >= 2 * MIN_BLOCK {
        // Each block packs the operand it does not split again: split rows when `rhs`
        // (`k x n`) is the smaller one to repeat, columns otherwise. A few blocks per thread
        // let the others make up for a thread held up by another process.
        let by_rows = n <= m;
        let len = if by_rows { m } else { n };
        let blocks = (threads * BLOCKS_PER_THREAD).min(len / MIN_BLOCK);
        let size = len.div_ceil(blocks);
        candle_core::utils::barrier_pool().execute_chunked(len.div_ceil(size), |range| {
            for i in range {
                let part = i * size..len.min((i + 1) * size);
                if by_rows {
                    block(part, 0..n, dst);
                } else {
                    block(0..m, part, dst);
                }
            }
        });
    } else {
        block(0..m, 0..n, dst);
    }
}
