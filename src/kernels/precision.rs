//! Mixed precision with the semantics of `torch.autocast(dtype=torch.bfloat16)`: f32 master
//! weights, matrix products in bf16, and f32 wherever precision matters. Inside
//! [`with_autocast`]`(Some(BF16), ..)` (the model sets it around its forward pass, per thread,
//! as torch's autocast state is per thread) the ops of `kernels/mod.rs` follow torch's lists:
//!
//! - **Matrix products** (dense layers, attention's two products) cast their inputs to bf16 and
//!   return bf16: an f32 weight is cast where it is used, and the cast is a candle op with a
//!   backward pass, so the weight's gradient arrives in f32 on the f32 `Var` and the optimiser
//!   never sees a half-precision parameter. On a GPU cuBLAS multiplies bf16 (f32
//!   accumulation); on the CPU candle widens bf16 to f32 for its gemm and rounds the product.
//!   The fused CPU kernels of these ops are f32 only, so they take the composed path.
//! - **Norms, softmax and cross-entropy** widen their inputs to f32 and return f32 (the mean,
//!   variance, softmax sums and the loss are f32), as autocast's f32 list.
//! - **Element-wise maths** (GELU, SiLU, SwiGLU, RoPE) computes in f32 and rounds once to its
//!   input's dtype, as PyTorch computes half tensors in an f32 "opmath" type.
//! - **Residual additions** ([`super::residual`]) add in the wider dtype (type promotion), so
//!   the residual stream stays f32 while each block's output arrives in bf16.
//!
//! Outside autocast, half-precision tensors (a model loaded in bf16) compute in their dtype,
//! with norms, softmax and the activations widened inside and rounded back.
use std::cell::Cell;

use candle_core::{DType, Result, Tensor};

thread_local! {
    static AUTOCAST: Cell<Option<DType>> = const { Cell::new(None) };
}

/// The dtype of the matrix products under autocast on this thread, if it is on.
pub fn autocast() -> Option<DType> {
    AUTOCAST.with(|a| a.get())
}

/// Runs `f` with autocast to `dtype` (bf16) on this thread, or off (`None`), restoring the
/// previous setting afterwards (also when `f` panics).
pub fn with_autocast<T>(dtype: Option<DType>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<DType>);
    impl Drop for Restore {
        fn drop(&mut self) {
            AUTOCAST.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(AUTOCAST.with(|a| a.replace(dtype)));
    f()
}

/// Whether `dtype` is a half-precision float.
pub(super) fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F16)
}

/// `t` in f32 when it is half precision (a differentiable cast), else `t` itself.
pub(super) fn widen(t: &Tensor) -> Result<Tensor> {
    if is_half(t.dtype()) {
        t.to_dtype(DType::F32)
    } else {
        Ok(t.clone())
    }
}

/// `t` in `dtype` (a differentiable cast; none when it already is).
pub(super) fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t.clone())
    } else {
        t.to_dtype(dtype)
    }
}

/// Whether an op with statistics (norms, softmax) on `x` computes in f32: under autocast, or
/// on half-precision input.
pub(super) fn needs_f32(x: &Tensor) -> bool {
    autocast().is_some() || is_half(x.dtype())
}

/// The dtype an op with statistics returns for input `x`: f32 under autocast (its f32 list),
/// else `x`'s own.
pub(super) fn statistics_out(x: &Tensor) -> DType {
    if autocast().is_some() {
        DType::F32
    } else {
        x.dtype()
    }
}

/// The wider of two float dtypes (f32 over bf16 / f16), as PyTorch's type promotion.
pub(super) fn wider(a: DType, b: DType) -> DType {
    if a == b || is_half(b) { a } else { b }
}
