//! What every fused CPU kernel shares: reading an f32 slice out of candle's storage, writing
//! disjoint rows of an output from several threads, running work on candle's own thread pool,
//! and keeping a forward pass's buffers for the backward pass.
use std::mem::MaybeUninit;

use super::malloc;
use candle_core::{CpuStorage, Layout, Result, bail};

/// A buffer the forward pass of an op keeps for its backward pass (attention probabilities,
/// cross-entropy's log-sum-exp): candle hands `bwd` only the inputs and the output.
#[derive(Default)]
pub(crate) struct Saved(std::sync::Mutex<Option<std::sync::Arc<Vec<f32>>>>);

impl Saved {
    pub(crate) fn put(&self, data: Vec<f32>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(std::sync::Arc::new(data));
        }
    }

    /// The saved buffer, or an error naming `what` if the forward pass did not run here.
    pub(crate) fn get(&self, what: &str) -> Result<std::sync::Arc<Vec<f32>>> {
        match self.0.lock().ok().and_then(|d| d.clone()) {
            Some(d) => Ok(d),
            None => bail!("{what} backward: the forward pass's saved values are missing"),
        }
    }
}

/// Rows are processed in parallel only above this many elements: below it, waking rayon's
/// threads costs more than the work.
const PAR_MIN: usize = 1 << 15;

/// The contiguous f32 data of a CPU storage, mutable (for in-place ops).
pub(crate) fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, op: &str) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => bail!("{op}: expected a contiguous f32 tensor"),
    }
}

pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{op}: expected f32 input"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expected a contiguous input"),
    }
}

/// A pointer to an output buffer that disjoint ranges of rows are written through in parallel.
pub(crate) struct OutPtr<T = f32>(pub(crate) *mut T);

impl<T> Clone for OutPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for OutPtr<T> {}
// SAFETY: every user writes only the rows of the range it was handed, and ranges are disjoint.
unsafe impl<T> Send for OutPtr<T> {}
// SAFETY: as for `Send`: the threads sharing it touch disjoint elements (see `slice`).
unsafe impl<T> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The raw pointer (a method, so closures capture the `Sync` wrapper, not the field).
    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }

    /// # Safety
    /// `start + len` must lie inside the buffer and no other thread may touch these elements.
    pub(crate) unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        // SAFETY: the caller's contract: `start..start + len` lies inside the live buffer
        // (so `add` stays in it) and no other reference to these elements exists meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Runs `f` over `0..n_items` in chunks on candle's own CPU pool (the one its matmul uses, so no
/// second pool competes for the cores), or inline when `work` (elements) is small.
pub(crate) fn par_for(n_items: usize, work: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    if work >= PAR_MIN && n_items > 1 {
        candle_core::utils::barrier_pool().execute_chunked(n_items, f);
    } else {
        f(0..n_items);
    }
}

/// `n` zeros, written on the pool when `n` is large: an output buffer zeroed by one thread
/// (`vec![0.0; n]` over reused heap memory is a serial `memset`) left the other core idle for
/// a few percent of a training step.
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    filled(n, 1, false, |chunk| chunk.fill(MaybeUninit::new(0.0)))
}

/// [`zeros`] for a buffer that every step of a run reads across (a KV cache), in memory the
/// kernel is asked to back with huge pages ([`malloc::on_huge_pages`]).
pub(crate) fn zeros_on_huge_pages(n: usize) -> Vec<f32> {
    filled(n, 1, true, |chunk| chunk.fill(MaybeUninit::new(0.0)))
}

/// A buffer of `rows * d` values whose every element `init` writes, chunk by chunk of whole rows
/// of `d`, on the pool (the memory starts uninitialised: `init` must write all of its chunk),
/// with `huge_pages` asked for before the first write.
fn filled(
    rows: usize,
    d: usize,
    huge_pages: bool,
    init: impl Fn(&mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    const CHUNK: usize = 1 << 14;
    let n = rows * d;
    let mut out: Vec<f32> = Vec::with_capacity(n);
    let ptr = OutPtr(out.as_mut_ptr().cast::<MaybeUninit<f32>>());
    let rows_per_chunk = (CHUNK / d.max(1)).max(1);
    let fill = || {
        par_for(rows.div_ceil(rows_per_chunk), n, |range| {
            for c in range {
                let (r0, r1) = (c * rows_per_chunk, rows.min((c + 1) * rows_per_chunk));
                // SAFETY: rows r0..r1 lie inside the allocation and only this chunk touches
                // them.
                init(unsafe { ptr.slice(r0 * d, (r1 - r0) * d) });
            }
        })
    };
    if huge_pages {
        malloc::on_huge_pages(ptr.0.cast(), n * size_of::<f32>(), fill);
    } else {
        fill();
    }
    // SAFETY: `init` wrote every element of every chunk, and the chunks cover 0..n.
    unsafe { out.set_len(n) };
    out
}

/// `rows` copies of `row`, one after the other (a bias broadcast over a product's output), made
/// on the pool.
pub(crate) fn repeat_row(row: &[f32], rows: usize) -> Vec<f32> {
    filled(rows, row.len(), false, |chunk| {
        for out in chunk.chunks_exact_mut(row.len().max(1)) {
            for (o, &v) in out.iter_mut().zip(row) {
                o.write(v);
            }
        }
    })
}

/// Applies `f(row, out_row)` to every row of length `d` of `out`.
pub(crate) fn rows_mut(out: &mut [f32], d: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let rows = out.len() / d.max(1);
    let ptr = OutPtr(out.as_mut_ptr());
    par_for(rows, out.len(), |range| {
        for r in range {
            // SAFETY: row r is inside `out` and only this chunk writes it.
            f(r, unsafe { ptr.slice(r * d, d) });
        }
    });
}

/// Applies `f(start, chunk)` to consecutive chunks of `out` (in parallel when large); `start` is
/// the chunk's offset, so `f` can zip it with the inputs' matching slice and vectorise.
///
/// Its callers are the activations, an `exp` and a division per element, several times the cost
/// of the copies [`PAR_MIN`] is set for: counted as such, a decoding step's MLP activation at
/// batch 8 (8 × 1,536 elements) runs on the pool instead of leaving the other core idle.
pub(crate) fn elementwise(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    const CHUNK: usize = 2048;
    const COST: usize = 4;
    let n = out.len();
    let ptr = OutPtr(out.as_mut_ptr());
    par_for(n.div_ceil(CHUNK), n * COST, |range| {
        for c in range {
            let start = c * CHUNK;
            let len = CHUNK.min(n - start);
            // SAFETY: chunk c is inside `out` and only this range writes it.
            let o = unsafe { ptr.slice(start, len) };
            f(start, o);
        }
    });
}
