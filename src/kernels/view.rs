//! A strided view of an `f32` matrix, shared by the products (`gemm`, `gemv`) and the fused ops
//! that call them: transposes and column slices are strides, never copies.

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

    /// The first element (a method, so closures capture the whole `Sync` view).
    pub fn ptr(self) -> *const f32 {
        self.ptr
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

// SAFETY: a `View` is a pointer and strides into an `f32` buffer, only ever read (never written
// through), and only inside the `unsafe fn`s whose contracts require the buffer to be alive and
// not written by another thread for the whole call; sharing such read-only pointers between
// the call's threads is then as sound as sharing a `&[f32]`.
unsafe impl Send for View {}
// SAFETY: as for `Send` just above: reads only, of a buffer that outlives the call.
unsafe impl Sync for View {}
