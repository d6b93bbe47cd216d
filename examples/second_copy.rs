//! A second copy of massivetext, for `tests/library_safety.rs`. Built as a C dynamic library
//! (`crate-type = ["cdylib"]` in Cargo.toml; `cargo test` builds it with the other targets), it
//! links the crate in once more, as evcxr links it into each notebook cell with a plain
//! `:dep massivetext = { path = ".." }`. The test loads it into a process whose own copy has
//! already run a tensor operation, and checks that this copy's first one fails with the `:dep`
//! line to use instead. Not a program: it has no `main`.
use std::ffi::{CString, c_char};

/// Runs this copy's first tensor operation: null when it succeeds, else its error as text
/// (give it back to [`second_copy_free`]).
#[unsafe(no_mangle)]
pub extern "C" fn second_copy_first_op() -> *mut c_char {
    let run = || -> massivetext::Result<()> {
        let x =
            candle_core::Tensor::ones((2, 4), candle_core::DType::F32, &candle_core::Device::Cpu)?;
        massivetext::kernels::softmax_last_dim(&x)?;
        Ok(())
    };
    match run() {
        Ok(()) => std::ptr::null_mut(),
        Err(e) => CString::new(e.to_string().replace('\0', " "))
            .map_or(std::ptr::null_mut(), CString::into_raw),
    }
}

/// Frees a message returned by [`second_copy_first_op`].
///
/// # Safety
/// `s` is null or a pointer [`second_copy_first_op`] returned, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn second_copy_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the caller passes a pointer from `CString::into_raw`, once.
        drop(unsafe { CString::from_raw(s) });
    }
}
