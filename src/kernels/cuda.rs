//! Launching the CUDA twins of the fused kernels (kernels.cu beside this file, compiled to PTX by
//! build.rs) from the ops' `cuda_fwd`: the same ops, inputs and outputs as their `cpu_fwd`, so an
//! op's backward pass and its caller in `kernels/` do not know which device ran it.
//!
//! f32 only, contiguous inputs, as the CPU kernels: other dtypes take the composed path.
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape, bail};

pub(crate) mod attention;

mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

/// What the kernels call the activations (`act_fwd`'s `kind`).
pub(crate) const GELU_TANH: i32 = 0;
pub(crate) const GELU_ERF: i32 = 1;
pub(crate) const SILU: i32 = 2;

/// The contiguous data of a CUDA storage (f32 values, i64 labels).
fn view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout, op: &str) -> Result<CudaView<'a, T>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{op}: expected a contiguous input")
    };
    Ok(s.as_cuda_slice::<T>()?.slice(a..b))
}

fn view_mut<'a>(s: &'a mut CudaStorage, l: &Layout, op: &str) -> Result<CudaViewMut<'a, f32>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{op}: expected a contiguous input")
    };
    Ok(s.as_cuda_slice_mut::<f32>()?.slice_mut(a..b))
}

fn wrap(slice: CudaSlice<f32>, dev: &CudaDevice) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(slice, dev.clone())
}

/// A grid-stride launch over `n` elements.
fn elementwise(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per row of `d` elements: a multiple of 32 threads, at most 1024.
fn row_blocks(rows: usize, d: usize) -> LaunchConfig {
    let threads = d.next_multiple_of(32).clamp(32, 1024) as u32;
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
        let func = $dev.get_or_load_custom_func($name, "massivetext", ptx::KERNELS)?;
        let mut builder = func.builder();
        $(builder.arg($arg);)*
        // SAFETY: the kernel's parameters are, in order, the arguments pushed above: sizes
        // and scalars by value, device buffers whose lengths the caller checked against the
        // sizes (every kernel stays within `n`, or `rows * d`, elements of each buffer).
        unsafe { builder.launch($cfg) }.w()?;
    }};
}

fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

/// An activation (GELU of either kind, SiLU), element-wise.
pub(crate) fn act_fwd(s: &CudaStorage, l: &Layout, kind: i32) -> Result<(CudaStorage, Shape)> {
    let dev = s.device();
    let x = view::<f32>(s, l, "activation")?;
    let n = x.len();
    // SAFETY: every element is written by the kernel before it is read.
    let mut y = unsafe { dev.alloc::<f32>(n)? };
    if n > 0 {
        launch!(dev, "act_fwd_f32", elementwise(n), &n, &kind, &x, &mut y);
    }
    Ok((wrap(y, dev), l.shape().clone()))
}

/// `g * act'(x)`.
pub(crate) fn act_bwd(
    sx: &CudaStorage,
    lx: &Layout,
    sg: &CudaStorage,
    lg: &Layout,
    kind: i32,
) -> Result<(CudaStorage, Shape)> {
    let dev = sx.device();
    let (x, g) = (
        view::<f32>(sx, lx, "activation_bwd")?,
        view::<f32>(sg, lg, "activation_bwd")?,
    );
    let n = x.len();
    if g.len() != n {
        bail!("activation_bwd: {} gradients for {n} inputs", g.len())
    }
    // SAFETY: every element is written by the kernel before it is read.
    let mut dx = unsafe { dev.alloc::<f32>(n)? };
    if n > 0 {
        launch!(
            dev,
            "act_bwd_f32",
            elementwise(n),
            &n,
            &kind,
            &x,
            &g,
            &mut dx
        );
    }
    Ok((wrap(dx, dev), lx.shape().clone()))
}

/// LayerNorm of the rows of `x` with `w`, `b` of the row's length.
pub(crate) fn layer_norm_fwd(
    (sx, lx): (&CudaStorage, &Layout),
    (sw, lw): (&CudaStorage, &Layout),
    (sb, lb): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<(CudaStorage, Shape)> {
    let dev = sx.device();
    let (x, w, b) = (
        view::<f32>(sx, lx, "layer_norm")?,
        view::<f32>(sw, lw, "layer_norm")?,
        view::<f32>(sb, lb, "layer_norm")?,
    );
    let d = w.len();
    if d == 0 || b.len() != d || x.len() % d != 0 {
        bail!(
            "layer_norm: input {:?}, weight {d}, bias {}",
            lx.dims(),
            b.len()
        )
    }
    let rows = x.len() / d;
    // SAFETY: every element is written by the kernel before it is read.
    let mut y = unsafe { dev.alloc::<f32>(x.len())? };
    if rows > 0 {
        let di = d as i32;
        launch!(
            dev,
            "layer_norm_fwd_f32",
            row_blocks(rows, d),
            &di,
            &eps,
            &x,
            &w,
            &b,
            &mut y
        );
    }
    Ok((wrap(y, dev), lx.shape().clone()))
}

/// LayerNorm's backward pass: `[2, n]`, `dx` then `g * xhat`, as the CPU op.
pub(crate) fn layer_norm_bwd(
    x: (&CudaStorage, &Layout),
    w: (&CudaStorage, &Layout),
    g: (&CudaStorage, &Layout),
    eps: f32,
) -> Result<(CudaStorage, Shape)> {
    norm_bwd("layer_norm_bwd", x, w, g, eps)
}

/// The backward pass of a row norm (`{op}_f32` in kernels.cu): `[2, n]`, `dx` then `g * xhat`.
fn norm_bwd(
    op: &str,
    (sx, lx): (&CudaStorage, &Layout),
    (sw, lw): (&CudaStorage, &Layout),
    (sg, lg): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<(CudaStorage, Shape)> {
    let dev = sx.device();
    let (x, w, g) = (
        view::<f32>(sx, lx, op)?,
        view::<f32>(sw, lw, op)?,
        view::<f32>(sg, lg, op)?,
    );
    let (n, d) = (x.len(), w.len());
    if d == 0 || g.len() != n || n % d != 0 {
        bail!("{op}: input {n}, weight {d}, gradient {}", g.len())
    }
    // SAFETY: every element is written by the kernel before it is read.
    let mut out = unsafe { dev.alloc::<f32>(2 * n)? };
    if n > 0 {
        let di = d as i32;
        launch!(
            dev,
            &format!("{op}_f32"),
            row_blocks(n / d, d),
            &n,
            &di,
            &eps,
            &x,
            &w,
            &g,
            &mut out
        );
    }
    Ok((wrap(out, dev), Shape::from((2, n))))
}

/// RMSNorm over the last dimension: `x rstd w`, one block per row.
pub(crate) fn rms_norm_fwd(
    (sx, lx): (&CudaStorage, &Layout),
    (sw, lw): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<(CudaStorage, Shape)> {
    let dev = sx.device();
    let (x, w) = (
        view::<f32>(sx, lx, "rms_norm")?,
        view::<f32>(sw, lw, "rms_norm")?,
    );
    let d = w.len();
    if d == 0 || x.len() % d != 0 {
        bail!("rms_norm: input {:?}, weight {d}", lx.dims())
    }
    let rows = x.len() / d;
    // SAFETY: every element is written by the kernel before it is read.
    let mut y = unsafe { dev.alloc::<f32>(x.len())? };
    if rows > 0 {
        let di = d as i32;
        launch!(
            dev,
            "rms_norm_fwd_f32",
            row_blocks(rows, d),
            &di,
            &eps,
            &x,
            &w,
            &mut y
        );
    }
    Ok((wrap(y, dev), lx.shape().clone()))
}

/// RMSNorm's backward pass: `[2, n]`, `dx` then `g * xhat`, as the CPU op.
pub(crate) fn rms_norm_bwd(
    x: (&CudaStorage, &Layout),
    w: (&CudaStorage, &Layout),
    g: (&CudaStorage, &Layout),
    eps: f32,
) -> Result<(CudaStorage, Shape)> {
    norm_bwd("rms_norm_bwd", x, w, g, eps)
}

/// SwiGLU, `silu(gate) * up`, element-wise over two tensors of one shape.
pub(crate) fn swiglu_fwd(
    (sg, lg): (&CudaStorage, &Layout),
    (su, lu): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dev = sg.device();
    let (g, u) = (
        view::<f32>(sg, lg, "swiglu")?,
        view::<f32>(su, lu, "swiglu")?,
    );
    if g.len() != u.len() {
        bail!("swiglu: gate {:?} and up {:?}", lg.dims(), lu.dims())
    }
    let n = g.len();
    // SAFETY: every element is written by the kernel before it is read.
    let mut y = unsafe { dev.alloc::<f32>(n)? };
    if n > 0 {
        launch!(dev, "swiglu_fwd_f32", elementwise(n), &n, &g, &u, &mut y);
    }
    Ok((wrap(y, dev), lg.shape().clone()))
}

/// SwiGLU's backward pass: `[2, n]`, `d gate` then `d up`, as the CPU op.
pub(crate) fn swiglu_bwd(
    (sg, lg): (&CudaStorage, &Layout),
    (su, lu): (&CudaStorage, &Layout),
    (sd, ld): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dev = sg.device();
    let (g, u, dy) = (
        view::<f32>(sg, lg, "swiglu_bwd")?,
        view::<f32>(su, lu, "swiglu_bwd")?,
        view::<f32>(sd, ld, "swiglu_bwd")?,
    );
    let n = g.len();
    if u.len() != n || dy.len() != n {
        bail!(
            "swiglu_bwd: gate {:?}, up {:?}, gradient {:?}",
            lg.dims(),
            lu.dims(),
            ld.dims()
        )
    }
    // SAFETY: every element is written by the kernel before it is read.
    let mut out = unsafe { dev.alloc::<f32>(2 * n)? };
    if n > 0 {
        launch!(
            dev,
            "swiglu_bwd_f32",
            elementwise(n),
            &n,
            &g,
            &u,
            &dy,
            &mut out
        );
    }
    Ok((wrap(out, dev), Shape::from((2, n))))
}

/// Softmax over the last dimension.
pub(crate) fn softmax_fwd(s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
    let dev = s.device();
    let x = view::<f32>(s, l, "softmax")?;
    let d = last_dim(l);
    // SAFETY: every element is written by the kernel before it is read.
    let mut y = unsafe { dev.alloc::<f32>(x.len())? };
    if !x.is_empty() {
        let di = d as i32;
        launch!(
            dev,
            "softmax_fwd_f32",
            row_blocks(x.len() / d, d),
            &di,
            &x,
            &mut y
        );
    }
    Ok((wrap(y, dev), l.shape().clone()))
}

/// Softmax's backward pass from its output `y` and the gradient `g`.
pub(crate) fn softmax_bwd(
    sy: &CudaStorage,
    ly: &Layout,
    sg: &CudaStorage,
    lg: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let dev = sy.device();
    let (y, g) = (
        view::<f32>(sy, ly, "softmax_bwd")?,
        view::<f32>(sg, lg, "softmax_bwd")?,
    );
    if g.len() != y.len() {
        bail!("softmax_bwd: {} gradients for {} outputs", g.len(), y.len())
    }
    let d = last_dim(ly);
    // SAFETY: every element is written by the kernel before it is read.
    let mut dx = unsafe { dev.alloc::<f32>(y.len())? };
    if !y.is_empty() {
        let di = d as i32;
        launch!(
            dev,
            "softmax_bwd_f32",
            row_blocks(y.len() / d, d),
            &di,
            &y,
            &g,
            &mut dx
        );
    }
    Ok((wrap(dx, dev), ly.shape().clone()))
}

/// Mean cross-entropy of `logits [rows, v]` against `labels [rows]` (i64): a scalar. A label
/// outside the vocabulary is reported as the CPU op reports it.
pub(crate) fn cross_entropy_fwd(
    (sx, lx): (&CudaStorage, &Layout),
    (st, lt): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dev = sx.device();
    let (x, t) = (
        view::<f32>(sx, lx, "cross_entropy")?,
        view::<i64>(st, lt, "cross_entropy")?,
    );
    let v = last_dim(lx);
    let rows = t.len();
    if x.len() != rows * v {
        bail!("cross_entropy: {rows} labels for logits {:?}", lx.dims())
    }
    // SAFETY: every element is written by the kernel before it is read.
    let mut losses = unsafe { dev.alloc::<f32>(rows.max(1))? };
    let mut bad = dev.alloc_zeros::<i64>(2)?;
    // SAFETY: written by the kernel before it is read.
    let mut out = unsafe { dev.alloc::<f32>(1)? };
    let (vi, ri) = (v as i32, rows as i32);
    if rows > 0 {
        launch!(
            dev,
            "cross_entropy_rows_f32",
            row_blocks(rows, v),
            &vi,
            &x,
            &t,
            &mut losses,
            &mut bad
        );
    }
    launch!(
        dev,
        "cross_entropy_mean_f32",
        row_blocks(1, 1024),
        &ri,
        &losses,
        &t,
        &mut out
    );
    let bad = dev.clone_dtoh(&bad)?;
    if bad[0] != 0 {
        super::check_label(bad[1], v)?;
    }
    Ok((wrap(out, dev), Shape::from(())))
}

/// Cross-entropy's backward pass: the gradient of the logits for the upstream gradient `g` (a
/// scalar on the device).
pub(crate) fn cross_entropy_bwd(
    (sx, lx): (&CudaStorage, &Layout),
    (st, lt): (&CudaStorage, &Layout),
    (sg, lg): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dev = sx.device();
    let (x, t, g) = (
        view::<f32>(sx, lx, "cross_entropy_bwd")?,
        view::<i64>(st, lt, "cross_entropy_bwd")?,
        view::<f32>(sg, lg, "cross_entropy_bwd")?,
    );
    let v = last_dim(lx);
    let rows = t.len();
    if x.len() != rows * v || g.is_empty() {
        bail!(
            "cross_entropy_bwd: {rows} labels for logits {:?}",
            lx.dims()
        )
    }
    let mut count = dev.alloc_zeros::<i32>(1)?;
    // SAFETY: every element is written by the kernel before it is read.
    let mut dx = unsafe { dev.alloc::<f32>(x.len())? };
    if rows > 0 {
        let (vi, ri) = (v as i32, rows as i32);
        launch!(
            dev,
            "count_labels_i64",
            row_blocks(1, 1024),
            &ri,
            &t,
            &mut count
        );
        launch!(
            dev,
            "cross_entropy_bwd_f32",
            row_blocks(rows, v),
            &vi,
            &x,
            &t,
            &count,
            &g,
            &mut dx
        );
    }
    Ok((wrap(dx, dev), lx.shape().clone()))
}

/// The scalars of one AdamW step, as the kernels take them.
pub(crate) struct AdamW {
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    pub step_size: f32,
    pub bias_correction2_sqrt: f32,
    pub decay_mul: f32,
    pub eps: f32,
}

/// AdamW's moments `[2, n]` updated in place from the gradient.
pub(crate) fn adamw_moments(
    (smv, lmv): (&mut CudaStorage, &Layout),
    (sg, lg): (&CudaStorage, &Layout),
    s: &AdamW,
) -> Result<()> {
    let dev = sg.device().clone();
    let g = view::<f32>(sg, lg, "adamw")?;
    let n = g.len();
    let mut mv = view_mut(smv, lmv, "adamw")?;
    if mv.len() != 2 * n {
        bail!("adamw: moments of {} for {n} gradients", mv.len())
    }
    if n > 0 {
        launch!(
            dev,
            "adamw_moments_f32",
            elementwise(n),
            &n,
            &s.one_minus_beta1,
            &s.beta2,
            &s.one_minus_beta2,
            &g,
            &mut mv
        );
    }
    Ok(())
}

/// The weight updated in place from the new moments.
pub(crate) fn adamw_weight(
    (sw, lw): (&mut CudaStorage, &Layout),
    (smv, lmv): (&CudaStorage, &Layout),
    s: &AdamW,
) -> Result<()> {
    let dev = smv.device().clone();
    let mv = view::<f32>(smv, lmv, "adamw")?;
    let mut w = view_mut(sw, lw, "adamw")?;
    let n = w.len();
    if mv.len() != 2 * n {
        bail!("adamw: moments of {} for {n} weights", mv.len())
    }
    if n > 0 {
        launch!(
            dev,
            "adamw_weight_f32",
            elementwise(n),
            &n,
            &s.step_size,
            &s.bias_correction2_sqrt,
            &s.decay_mul,
            &s.eps,
            &mv,
            &mut w
        );
    }
    Ok(())
}
