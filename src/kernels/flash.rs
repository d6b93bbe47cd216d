//! Attention on the GPU as fused kernels, flash-attention style (src/kernels/cuda/attention.cu):
//! the forward pass never writes the `[b, heads, t, t]` scores or probabilities to memory (it
//! keeps two numbers per query row), and the backward pass recomputes them tile by tile. The
//! composed path (two cuBLAS products around the softmax kernel) writes and reads them, in
//! both directions; at block 256 and batch 64 that is 100 MB per layer and pass.
//!
//! Two candle ops share the kernels:
//! - [`Packed`], over the packed projections `qkv [b, t, 3h]` of GPT-2, BERT, RoBERTa and
//!   Marian's self-attention: its gradient comes out packed, as the CPU kernel's;
//! - [`Grouped`], over `q [b, heads, t, hd]` and `k`, `v [b, kv_heads, t_k, hd]` of the Llama
//!   family, read in place through their strides.
//!
//! Both return the merged heads `[b, t, heads * hd]` and are the CUDA twins of
//! `attention::self_attention` and `gqa::gqa_attention`, held to the composed path by
//! examples/device_check.rs on the GPU. f32 only; a head wider than 128 runs composed.
use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView};
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor,
    bail,
};

use super::cuda::attention::{self as launch, Dims, Mask, Operand, Place};

/// Whether the fused GPU attention takes these inputs: f32 on a CUDA device with the own kernels
/// enabled, the mask on the same device, a head of 1 to 128 values, at least one key.
pub(crate) fn applies(x: &Tensor, mask: Option<&Tensor>, d: (usize, usize, usize, usize)) -> bool {
    let (b, heads, hd, tk) = d;
    x.device().is_cuda()
        && x.dtype() == DType::F32
        && super::fused_enabled()
        && mask.is_none_or(|m| m.device().same_device(x.device()))
        && (1..=launch::HD_MAX).contains(&hd)
        && b > 0
        && tk > 0
        && b * heads <= launch::GRID_Y_MAX
}

/// Self-attention over the packed projections `qkv [b, t, 3h]` with an optional additive mask
/// `[b or 1, 1, t, t]`.
pub(crate) fn self_attention(qkv: &Tensor, mask: Option<&Tensor>, n_head: usize) -> Result<Tensor> {
    let (b, t, _) = qkv.dims3()?;
    let op = Packed {
        n_head,
        mask: mask.map(|m| kernel_mask(m, (b, t, t))).transpose()?,
        stats: Stats::default(),
    };
    qkv.contiguous()?.apply_op1(op)
}

/// Grouped-query attention (shapes checked by the caller, `kernels::gqa_attention`).
pub(crate) fn gqa_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, _, t, _) = q.dims4()?;
    let op = Grouped {
        mask: mask
            .map(|m| kernel_mask(m, (b, t, k.dim(2)?)))
            .transpose()?,
        stats: Stats::default(),
    };
    rows_contiguous(q)?.apply_op3(&rows_contiguous(k)?, &rows_contiguous(v)?, op)
}

/// The mask as the kernels read it: f32, contiguous `[1 or b, 1, tq, tk]`.
fn kernel_mask(m: &Tensor, (b, tq, tk): (usize, usize, usize)) -> Result<Tensor> {
    let m = m.to_dtype(DType::F32)?;
    let m = match *m.dims() {
        [mb, 1, mt, mk] if (mb == 1 || mb == b) && mt == tq && mk == tk => m,
        _ => m.broadcast_as((b, 1, tq, tk))?,
    };
    m.contiguous()
}

/// `x [b, heads, t, hd]` with its last dimension contiguous, as the kernels read rows.
fn rows_contiguous(x: &Tensor) -> Result<Tensor> {
    if x.stride().last() == Some(&1) {
        Ok(x.clone())
    } else {
        x.contiguous()
    }
}

/// The CPU side of these ops: never reached, since only CUDA tensors are dispatched here.
fn gpu_only<T>() -> Result<T> {
    bail!("flash attention runs on CUDA devices only")
}

/// The row statistics of a forward pass, kept for its backward pass.
#[derive(Default)]
struct Stats(Mutex<Option<Arc<CudaSlice<f32>>>>);

impl Stats {
    fn put(&self, s: CudaSlice<f32>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(s));
    }
    fn get(&self) -> Result<Arc<CudaSlice<f32>>> {
        match &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(s) => Ok(s.clone()),
            None => bail!("flash attention: backward pass before the forward pass"),
        }
    }
}

/// The contiguous f32 data of a CUDA storage.
fn contiguous<'a>(s: &'a CudaStorage, l: &Layout, what: &str) -> Result<CudaView<'a, f32>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("flash attention: {what} is not contiguous")
    };
    Ok(s.as_cuda_slice::<f32>()?.slice(a..b))
}

/// Runs `f` with the CUDA storage of a tensor held by an op (the mask, the forward's output and
/// its gradient), read-locked meanwhile.
fn with_storage<R>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(&CudaStorage, &Layout) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(s) = &*storage else {
        bail!("flash attention: {what} is not on the GPU")
    };
    f(s, layout)
}

/// Runs `f` with the kernels' view of an optional mask (see [`kernel_mask`]).
fn with_mask<R>(mask: Option<&Tensor>, f: impl FnOnce(Option<&Mask>) -> Result<R>) -> Result<R> {
    let Some(m) = mask else { return f(None) };
    let (mb, tq, tk) = (m.dim(0)?, m.dim(2)?, m.dim(3)?);
    with_storage(m, "the mask", |s, l| {
        let mask = Mask {
            data: contiguous(s, l, "the mask")?,
            batch_stride: if mb == 1 { 0 } else { (tq * tk) as i64 },
        };
        f(Some(&mask))
    })
}

/// Runs `f` with the forward's output and its gradient (both `[b, tq, heads * hd]`).
fn with_output<R>(
    y: &Tensor,
    dy: &Tensor,
    f: impl FnOnce(&CudaView<f32>, &CudaView<f32>) -> Result<R>,
) -> Result<R> {
    with_storage(y, "the output", |sy, ly| {
        with_storage(dy, "the output's gradient", |sg, lg| {
            f(
                &contiguous(sy, ly, "the output")?,
                &contiguous(sg, lg, "the output's gradient")?,
            )
        })
    })
}

fn wrap(s: CudaSlice<f32>, like: &CudaStorage) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(s, like.device().clone())
}

/// Sizes, the three operands inside `qkv [b, t, 3h]` and the head width `h`.
fn packed<'a>(s: &'a CudaStorage, l: &Layout, n_head: usize) -> Result<(Dims, [Operand<'a>; 3])> {
    let (b, t, h3) = l.shape().dims3()?;
    if n_head == 0 || h3 % (3 * n_head) != 0 {
        bail!("attention: qkv width {h3} is not 3 x heads ({n_head}) x head width");
    }
    let (h, hd) = (h3 / 3, h3 / 3 / n_head);
    let all = contiguous(s, l, "qkv")?;
    let strides = [(t * h3) as i64, hd as i64, h3 as i64];
    let at = |i: usize| Operand {
        data: all.slice(i * h..),
        strides,
    };
    let d = Dims {
        b,
        heads: n_head,
        kv_heads: n_head,
        tq: t,
        tk: t,
        hd,
    };
    Ok((d, [at(0), at(1), at(2)]))
}

/// The fused attention over packed projections; its gradient is packed like its input.
struct Packed {
    n_head: usize,
    mask: Option<Tensor>,
    stats: Stats,
}

impl CustomOp1 for Packed {
    fn name(&self) -> &'static str {
        "massivetext-flash-attention"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        gpu_only()
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (d, [q, k, v]) = packed(s, l, self.n_head)?;
        let (y, stats) = with_mask(self.mask.as_ref(), |m| {
            launch::forward(s.device(), d, (&q, &k, &v), m)
        })?;
        self.stats.put(stats);
        let shape = Shape::from((d.b, d.tq, d.heads * d.hd));
        Ok((wrap(y, s), shape))
    }

    fn bwd(&self, qkv: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let op = PackedBwd {
            n_head: self.n_head,
            mask: self.mask.clone(),
            stats: self.stats.get()?,
            y: y.clone(),
            dy: dy.contiguous()?,
        };
        Ok(Some(qkv.apply_op1_no_bwd(&op)?))
    }
}

/// `dqkv` from `qkv`, with the forward's output, its gradient and statistics.
struct PackedBwd {
    n_head: usize,
    mask: Option<Tensor>,
    stats: Arc<CudaSlice<f32>>,
    y: Tensor,
    dy: Tensor,
}

impl CustomOp1 for PackedBwd {
    fn name(&self) -> &'static str {
        "massivetext-flash-attention-bwd"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        gpu_only()
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (d, [q, k, v]) = packed(s, l, self.n_head)?;
        let (h, strides) = (d.heads * d.hd, q.strides);
        let place = |i: usize| Place {
            offset: (i * h) as i64,
            strides,
        };
        let len = l.shape().elem_count();
        let grads = with_mask(self.mask.as_ref(), |m| {
            with_output(&self.y, &self.dy, |y, dy| {
                let (qkv, out) = ((&q, &k, &v), (y, dy, &*self.stats));
                launch::backward(s.device(), d, qkv, m, out, len, [0, 1, 2].map(place))
            })
        })?;
        Ok((wrap(grads, s), l.shape().clone()))
    }
}

/// One of q, k, v of grouped-query attention, read in place.
fn operand<'a>(s: &'a CudaStorage, l: &Layout) -> Result<Operand<'a>> {
    let st = l.stride();
    if l.dims().len() != 4 || st[3] != 1 {
        bail!("flash attention: expected [b, heads, t, hd] rows, got {l:?}")
    }
    Ok(Operand {
        data: s.as_cuda_slice::<f32>()?.slice(l.start_offset()..),
        strides: [st[0], st[1], st[2]].map(|x| x as i64),
    })
}

/// Sizes and operands of grouped-query attention.
fn grouped<'a>(
    (s1, l1): (&'a CudaStorage, &Layout),
    (s2, l2): (&'a CudaStorage, &Layout),
    (s3, l3): (&'a CudaStorage, &Layout),
) -> Result<(Dims, [Operand<'a>; 3])> {
    let (b, heads, tq, hd) = l1.shape().dims4()?;
    let (_, kv_heads, tk, _) = l2.shape().dims4()?;
    let d = Dims {
        b,
        heads,
        kv_heads,
        tq,
        tk,
        hd,
    };
    Ok((d, [operand(s1, l1)?, operand(s2, l2)?, operand(s3, l3)?]))
}

/// The fused grouped-query attention.
struct Grouped {
    mask: Option<Tensor>,
    stats: Stats,
}

impl CustomOp3 for Grouped {
    fn name(&self) -> &'static str {
        "massivetext-flash-gqa"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        gpu_only()
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (d, [q, k, v]) = grouped((s1, l1), (s2, l2), (s3, l3))?;
        let (y, stats) = with_mask(self.mask.as_ref(), |m| {
            launch::forward(s1.device(), d, (&q, &k, &v), m)
        })?;
        self.stats.put(stats);
        let shape = Shape::from((d.b, d.tq, d.heads * d.hd));
        Ok((wrap(y, s1), shape))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = GroupedBwd {
            mask: self.mask.clone(),
            stats: self.stats.get()?,
            y: y.clone(),
            dy: dy.contiguous()?,
        };
        let all = q.apply_op3_no_bwd(k, v, &op)?;
        let (nq, nk) = (q.elem_count(), k.elem_count());
        Ok((
            Some(all.narrow(0, 0, nq)?.reshape(q.dims())?),
            Some(all.narrow(0, nq, nk)?.reshape(k.dims())?),
            Some(all.narrow(0, nq + nk, nk)?.reshape(v.dims())?),
        ))
    }
}

/// `[dq, dk, dv]` flattened into one vector (each contiguous in its input's shape).
struct GroupedBwd {
    mask: Option<Tensor>,
    stats: Arc<CudaSlice<f32>>,
    y: Tensor,
    dy: Tensor,
}

impl CustomOp3 for GroupedBwd {
    fn name(&self) -> &'static str {
        "massivetext-flash-gqa-bwd"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        gpu_only()
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (d, [q, k, v]) = grouped((s1, l1), (s2, l2), (s3, l3))?;
        let (nq, nk) = (d.b * d.heads * d.tq * d.hd, d.b * d.kv_heads * d.tk * d.hd);
        let dense = |heads: usize, t: usize, offset: usize| Place {
            offset: offset as i64,
            strides: [heads * t * d.hd, t * d.hd, d.hd].map(|x| x as i64),
        };
        let places = [
            dense(d.heads, d.tq, 0),
            dense(d.kv_heads, d.tk, nq),
            dense(d.kv_heads, d.tk, nq + nk),
        ];
        let len = nq + 2 * nk;
        let grads = with_mask(self.mask.as_ref(), |m| {
            with_output(&self.y, &self.dy, |y, dy| {
                let (qkv, out) = ((&q, &k, &v), (y, dy, &*self.stats));
                launch::backward(s1.device(), d, qkv, m, out, len, places)
            })
        })?;
        Ok((wrap(grads, s1), Shape::from(len)))
    }
}
