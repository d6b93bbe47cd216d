//! Launching the flash-attention kernels (attention.cu beside this file) for
//! [`crate::kernels::flash`]: sizes, strides and buffers in, the kernels' outputs back.
use candle_core::cuda_backend::WrapErr;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, LaunchArgs, LaunchConfig, PushKernelArg,
};
use candle_core::{CudaDevice, Result, bail};

use super::ptx;

/// Warps per block (one query or key row each) and rows per shared-memory tile, as attention.cu.
const ROWS: usize = 8;
const TILE: usize = 32;
/// The widest head the kernels take (4 values per lane); wider heads run composed.
pub(crate) const HD_MAX: usize = 128;
/// The most blocks a grid's second dimension may have (sequences × heads).
pub(crate) const GRID_Y_MAX: usize = 65_535;

/// Sizes of one attention call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub b: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub tq: usize,
    pub tk: usize,
    pub hd: usize,
}

/// Queries, keys or values: the data from the first element on, and the strides of sequence,
/// head and position (the head dimension contiguous).
pub(crate) struct Operand<'a> {
    pub data: CudaView<'a, f32>,
    pub strides: [i64; 3],
}

/// Where a gradient goes in the output buffer: its offset and strides (sequence, head, position).
#[derive(Clone, Copy)]
pub(crate) struct Place {
    pub offset: i64,
    pub strides: [i64; 3],
}

/// The additive mask `[mb, tq, tk]` (contiguous) and its batch stride (0 when shared).
pub(crate) struct Mask<'a> {
    pub data: CudaView<'a, f32>,
    pub batch_stride: i64,
}

/// The arguments every kernel starts with (attention.cu's `ATTN_PARAMS`), kept alive for the
/// launch that borrows them.
struct Params<'a> {
    sizes: [i32; 5],
    scale: f32,
    operands: [&'a Operand<'a>; 3],
    mask: &'a CudaView<'a, f32>,
    mask_b: i64,
    has_mask: i32,
}

impl<'a> Params<'a> {
    fn new(
        d: Dims,
        q: &'a Operand<'a>,
        k: &'a Operand<'a>,
        v: &'a Operand<'a>,
        mask: Option<&'a Mask<'a>>,
    ) -> Self {
        Self {
            sizes: [d.heads, d.kv_heads, d.tq, d.tk, d.hd].map(|x| x as i32),
            scale: 1.0 / (d.hd as f32).sqrt(),
            operands: [q, k, v],
            mask: mask.map_or(&q.data, |m| &m.data),
            mask_b: mask.map_or(0, |m| m.batch_stride),
            has_mask: i32::from(mask.is_some()),
        }
    }

    fn push(&'a self, b: &mut LaunchArgs<'a>) {
        for s in &self.sizes {
            b.arg(s);
        }
        b.arg(&self.scale);
        for o in self.operands {
            b.arg(&o.data);
            for s in &o.strides {
                b.arg(s);
            }
        }
        b.arg(self.mask);
        b.arg(&self.mask_b);
        b.arg(&self.has_mask);
    }
}

/// A grid of `rows / ROWS` blocks by `groups`, with `floats` of shared memory.
fn grid(rows: usize, groups: usize, floats: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(ROWS) as u32, groups as u32, 1),
        block_dim: ((32 * ROWS) as u32, 1, 1),
        shared_mem_bytes: (floats * 4) as u32,
    }
}

fn check(d: Dims) -> Result<()> {
    if d.hd == 0
        || d.hd > HD_MAX
        || d.kv_heads == 0
        || !d.heads.is_multiple_of(d.kv_heads)
        || d.tk == 0
    {
        bail!("flash attention: unsupported sizes {d:?} (head width 1..={HD_MAX}, keys ≥ 1)")
    }
    if d.b * d.heads > GRID_Y_MAX {
        bail!(
            "flash attention: {} sequences x heads exceed {GRID_Y_MAX}",
            d.b * d.heads
        )
    }
    Ok(())
}

macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr, $params:expr, $($arg:expr),* $(,)?) => {{
        let func = $dev.get_or_load_custom_func($name, "massivetext-attention", ptx::ATTENTION)?;
        let mut builder = func.builder();
        $params.push(&mut builder);
        $(builder.arg($arg);)*
        // SAFETY: the parameters are attention.cu's, in order: `ATTN_PARAMS` (sizes checked by
        // `check`; every operand view holds the strided rows the sizes reach, as its caller
        // derived the strides from the tensor's layout) and the buffers pushed above, whose
        // lengths are the sizes' products.
        unsafe { builder.launch($cfg) }.w()?;
    }};
}

/// The forward pass: `y [b, tq, heads * hd]` and the row statistics `[2, b * heads * tq]` (row
/// maximum, inverse row sum) that the backward pass reads.
pub(crate) fn forward(
    dev: &CudaDevice,
    d: Dims,
    (q, k, v): (&Operand, &Operand, &Operand),
    mask: Option<&Mask>,
) -> Result<(CudaSlice<f32>, CudaSlice<f32>)> {
    check(d)?;
    let p = Params::new(d, q, k, v, mask);
    let rows = d.b * d.heads * d.tq;
    // SAFETY: the kernel writes every element of both before anything reads them.
    let mut y = unsafe { dev.alloc::<f32>(rows * d.hd)? };
    let mut stats = unsafe { dev.alloc::<f32>(2 * rows)? };
    if rows > 0 {
        let floats = ROWS * d.hd + TILE * (d.hd + 1) + TILE * d.hd;
        let cfg = grid(d.tq, d.b * d.heads, floats);
        launch!(dev, "flash_fwd_f32", cfg, p, &mut y, &mut stats);
    }
    Ok((y, stats))
}

/// The backward pass from the forward's output `y`, its gradient `dy` (both `[b, tq, heads *
/// hd]`, contiguous) and statistics: one buffer of `len` values holding dq, dk and dv at their
/// places.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    dev: &CudaDevice,
    d: Dims,
    (q, k, v): (&Operand, &Operand, &Operand),
    mask: Option<&Mask>,
    (y, dy, stats): (&CudaView<f32>, &CudaView<f32>, &CudaSlice<f32>),
    len: usize,
    [dq, dk, dv]: [Place; 3],
) -> Result<CudaSlice<f32>> {
    check(d)?;
    let rows = d.b * d.heads * d.tq;
    if y.len() != rows * d.hd || dy.len() != rows * d.hd || stats.len() != 2 * rows {
        bail!("flash attention backward: buffers do not match the forward pass ({d:?})")
    }
    let p = Params::new(d, q, k, v, mask);
    let mut grads = dev.alloc_zeros::<f32>(len)?;
    if rows == 0 {
        return Ok(grads);
    }
    let mut dd = dev.alloc_zeros::<f32>(rows)?;
    let pad = d.hd + 1;
    let cfg = grid(d.tq, d.b * d.heads, 2 * ROWS * d.hd + 2 * TILE * pad);
    let [q_b, q_h, q_t] = &dq.strides;
    launch!(
        dev,
        "flash_bwd_dq_f32",
        cfg,
        p,
        y,
        dy,
        stats,
        &mut dd,
        &mut grads,
        &dq.offset,
        q_b,
        q_h,
        q_t
    );
    let cfg = grid(
        d.tk,
        d.b * d.kv_heads,
        2 * ROWS * d.hd + 2 * TILE * pad + 3 * TILE,
    );
    let ([k_b, k_h, k_t], [v_b, v_h, v_t]) = (&dk.strides, &dv.strides);
    launch!(
        dev,
        "flash_bwd_dkdv_f32",
        cfg,
        p,
        dy,
        stats,
        &dd,
        &mut grads,
        &dk.offset,
        k_b,
        k_h,
        k_t,
        &dv.offset,
        v_b,
        v_h,
        v_t
    );
    Ok(grads)
}
