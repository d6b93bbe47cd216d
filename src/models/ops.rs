//! Fused LayerNorm, softmax, GELU and cross-entropy with a real backward pass.
//!
//! candle-nn's fused `layer_norm` and `softmax_last_dim` have no backward: every parameter before
//! them silently gets no gradient. The ops here are candle `CustomOp`s whose `bwd` is itself a
//! fused kernel, so training is both correct and fast. On CPU with f32 the fused kernels run; on
//! any other device or dtype the same maths runs as composed candle ops (module [`composed`]),
//! which the tests use as the reference for values and gradients.
use super::vmath;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, DType, Layout, Result, Shape, Tensor, bail,
};

/// A buffer the forward pass of an op keeps for its backward pass (attention probabilities,
/// cross-entropy's log-sum-exp): candle hands `bwd` only the inputs and the output.
#[derive(Default)]
pub(super) struct Saved(std::sync::Mutex<Option<std::sync::Arc<Vec<f32>>>>);

impl Saved {
    pub(super) fn put(&self, data: Vec<f32>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(std::sync::Arc::new(data));
        }
    }

    /// The saved buffer, or an error naming `what` if the forward pass did not run here.
    pub(super) fn get(&self, what: &str) -> Result<std::sync::Arc<Vec<f32>>> {
        match self.0.lock().ok().and_then(|d| d.clone()) {
            Some(d) => Ok(d),
            None => bail!("{what} backward: the forward pass's saved values are missing"),
        }
    }
}

/// Rows are processed in parallel only above this many elements: below it, waking rayon's
/// threads costs more than the work.
const PAR_MIN: usize = 1 << 15;

pub(super) fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{op}: expected f32 input"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expected a contiguous input"),
    }
}

pub(super) fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// A pointer to an output buffer that disjoint ranges of rows are written through in parallel.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: every user writes only the rows of the range it was handed, and ranges are disjoint.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The raw pointer (a method, so closures capture the `Sync` wrapper, not the field).
    pub(super) fn ptr(self) -> *mut f32 {
        self.0
    }

    /// # Safety
    /// `start + len` must lie inside the buffer and no other thread may touch these elements.
    pub(super) unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Runs `f` over `0..n_items` in chunks on candle's own CPU pool (the one its matmul uses, so no
/// second pool competes for the cores), or inline when `work` (elements) is small.
pub(super) fn par_for(n_items: usize, work: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    if work >= PAR_MIN && n_items > 1 {
        candle_core::utils::barrier_pool().execute_chunked(n_items, f);
    } else {
        f(0..n_items);
    }
}

/// Applies `f(row, out_row)` to every row of length `d` of `out`.
pub(super) fn rows_mut(out: &mut [f32], d: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
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
fn elementwise(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    const CHUNK: usize = 4096;
    let n = out.len();
    let ptr = OutPtr(out.as_mut_ptr());
    par_for(n.div_ceil(CHUNK), n, |range| {
        for c in range {
            let start = c * CHUNK;
            let len = CHUNK.min(n - start);
            // SAFETY: chunk c is inside `out` and only this range writes it.
            let o = unsafe { ptr.slice(start, len) };
            f(start, o);
        }
    });
}

/// Column sums of a `[rows, d]` matrix: the gradient of a bias or LayerNorm weight. candle's
/// `sum(0)` walks the matrix with a stride of `d`; here each row is added into one accumulator
/// row, which vectorises.
struct SumRows;

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "massivetext-sum-rows"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "sum_rows")?;
        let d = l.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; d];
        // Large matrices: threads take blocks of columns, each summing its block over all
        // rows (a summing pass is too cheap to share below about a million elements).
        const COLS: usize = 64;
        let ptr = OutPtr(out.as_mut_ptr());
        par_for(d.div_ceil(COLS), x.len() / 32, |range| {
            let (c0, c1) = (range.start * COLS, d.min(range.end * COLS));
            // SAFETY: columns c0..c1 are written only by this chunk.
            let acc = unsafe { ptr.slice(c0, c1 - c0) };
            for row in x.chunks_exact(d.max(1)) {
                acc.iter_mut().zip(&row[c0..c1]).for_each(|(o, v)| *o += v);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(d)))
    }
}

/// `x [.., d]` summed over all leading dimensions to `[d]` (no backward: used inside backward
/// passes).
pub(super) fn sum_rows(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        let d = x.dim(D::Minus1)?;
        return x.reshape(((), d))?.sum(0);
    }
    x.contiguous()?.apply_op1_no_bwd(&SumRows)
}

// ---------------------------------------------------------------- LayerNorm

struct LayerNormOp {
    eps: f32,
}

/// Mean and `1 / sqrt(var + eps)` of a row (biased variance, as PyTorch).
#[inline(always)]
fn ln_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = vmath::sum(x) / d;
    let var = vmath::sum_map(x, |v| (v - mean) * (v - mean)) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

vmath::multiversion! {
    /// One row of LayerNorm forward.
    fn ln_row(x: &[f32], w: &[f32], b: &[f32], o: &mut [f32], eps: f32) {
        let (mean, rstd) = ln_stats(x, eps);
        for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
            *o = (x - mean) * rstd * w + b;
        }
    }
}

vmath::multiversion! {
    /// One row of LayerNorm backward: `dx`, and `gx = g * xhat` (summed over rows into dw).
    fn ln_row_bwd(x: &[f32], g: &[f32], w: &[f32], dx: &mut [f32], gx: &mut [f32], eps: f32) {
        let d = x.len() as f32;
        let (mean, rstd) = ln_stats(x, eps);
        let (mut m1, mut m2) = ([0f32; 8], [0f32; 8]);
        for (((xc, gc), wc), gxc) in x
            .chunks(8)
            .zip(g.chunks(8))
            .zip(w.chunks(8))
            .zip(gx.chunks_mut(8))
        {
            for i in 0..xc.len() {
                let xh = (xc[i] - mean) * rstd;
                let gw = gc[i] * wc[i];
                m1[i] += gw;
                m2[i] += gw * xh;
                gxc[i] = gc[i] * xh;
            }
        }
        let m1 = m1.iter().sum::<f32>() / d;
        let m2 = m2.iter().sum::<f32>() / d;
        for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
            let xh = (x - mean) * rstd;
            *dx = rstd * (g * w - m1 - xh * m2);
        }
    }
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "massivetext-layer-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (
            slice(s1, l1, "layer_norm")?,
            slice(s2, l2, "layer_norm")?,
            slice(s3, l3, "layer_norm")?,
        );
        let d = w.len();
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, d, |r, o| {
            ln_row(&x[r * d..(r + 1) * d], w, b, o, self.eps)
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let rows = x.elem_count() / d;
        let g = g.contiguous()?;
        // packed[0] = dx, packed[1] = g * xhat (summed over rows into dw)
        let packed = x.apply_op3_no_bwd(w, &g, &LayerNormBwd { eps: self.eps })?;
        let dx = packed.get(0)?.reshape(x.shape())?;
        let dw = sum_rows(&packed.get(1)?.reshape((rows, d))?)?;
        let db = sum_rows(&g.reshape((rows, d))?)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct LayerNormBwd {
    eps: f32,
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "massivetext-layer-norm-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (
            slice(s1, l1, "layer_norm_bwd")?,
            slice(s2, l2, "layer_norm_bwd")?,
            slice(s3, l3, "layer_norm_bwd")?,
        );
        let d = w.len();
        let n = x.len();
        let mut out = vec![0f32; 2 * n];
        let (dx, gx) = out.split_at_mut(n);
        let work = |r: usize, dxr: &mut [f32], gxr: &mut [f32]| {
            let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            ln_row_bwd(xr, gr, w, dxr, gxr, self.eps);
        };
        let (pdx, pgx) = (OutPtr(dx.as_mut_ptr()), OutPtr(gx.as_mut_ptr()));
        par_for(n / d.max(1), n, |range| {
            for r in range {
                // SAFETY: row r of each half is only written by this chunk.
                work(r, unsafe { pdx.slice(r * d, d) }, unsafe {
                    pgx.slice(r * d, d)
                });
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((2, n))))
    }
}

/// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * weight + bias`, biased
/// variance as in PyTorch.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if !fused(x) {
        return composed::layer_norm(x, weight, bias, eps);
    }
    x.contiguous()?
        .apply_op3(weight, bias, LayerNormOp { eps: eps as f32 })
}

// ---------------------------------------------------------------- softmax

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "massivetext-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "softmax")?;
        let d = l.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, d, |r, o| {
            let xr = &x[r * d..(r + 1) * d];
            o.copy_from_slice(xr);
            vmath::softmax_in_place(o);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, _x: &Tensor, res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&g.contiguous()?, &SoftmaxBwd)?))
    }
}

struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "massivetext-softmax-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (slice(s1, l1, "softmax_bwd")?, slice(s2, l2, "softmax_bwd")?);
        let d = l1.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; y.len()];
        rows_mut(&mut out, d, |r, o| {
            let (yr, gr) = (&y[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for i in 0..d {
                o[i] = yr[i] * (gr[i] - dot);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return composed::softmax_last_dim(x);
    }
    x.contiguous()?.apply_op1(SoftmaxOp)
}

// ---------------------------------------------------------------- linear and attention

/// A dense layer over `x [.., in]`: `x Wᵀ + b` for `nn.Linear` (`W [out, in]`), `x W + b`
/// for GPT-2's `Conv1D` (`conv1d`, `W [in, out]`). One fused op with its own backward on CPU f32
/// (module `linear`), composed candle ops elsewhere.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, conv1d: bool) -> Result<Tensor> {
    match super::linear::linear(x, weight, bias, conv1d)? {
        Some(y) => Ok(y),
        None => composed::linear(x, weight, bias, conv1d),
    }
}

/// Multi-head self-attention from the packed projections `qkv [b, t, 3h]` (queries, keys,
/// values side by side) to the merged heads `[b, t, h]`, with an optional additive mask
/// `[b, 1, t, t]`. One fused op with its own backward on CPU f32 (module `attention`), composed
/// candle ops elsewhere.
pub fn self_attention(qkv: &Tensor, mask: Option<&Tensor>, n_head: usize) -> Result<Tensor> {
    match super::attention::self_attention(qkv, mask, n_head)? {
        Some(y) => Ok(y),
        None => composed::self_attention(qkv, mask, n_head),
    }
}

// ---------------------------------------------------------------- GELU

/// The two GELUs of Hugging Face: `gelu_new` (GPT-2's tanh approximation) and `gelu` (exact, erf).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: GPT-2's `gelu_new`.
    GeluNew,
    /// `0.5 x (1 + erf(x / sqrt 2))`: BERT's and RoBERTa's `gelu`.
    GeluErf,
}

impl Activation {
    /// Parses a Hugging Face activation name (`gelu_new`, `gelu_pytorch_tanh`, `gelu`).
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluNew),
            "gelu" => Some(Self::GeluErf),
            _ => None,
        }
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044715;

/// `(1 + tanh(u)) / 2 = sigmoid(2u)` for GPT-2's GELU: one vectorisable `exp` instead of
/// glibc's `tanhf` (which was ~7% of a GPT-2 training step on its own).
#[inline(always)]
fn gelu_new_gate(x: f32) -> f32 {
    vmath::sigmoid(2.0 * SQRT_2_OVER_PI * (x + GELU_C * x * x * x))
}

#[inline(always)]
fn gelu_fwd(kind: Activation, x: f32) -> f32 {
    match kind {
        Activation::GeluNew => x * gelu_new_gate(x),
        Activation::GeluErf => {
            (0.5 * x as f64 * (1.0 + candle_core::cpu::erf::erf_f64(x as f64 / 2f64.sqrt()))) as f32
        }
    }
}

#[inline(always)]
fn gelu_grad(kind: Activation, x: f32) -> f32 {
    match kind {
        Activation::GeluNew => {
            // d/dx [x s(2u)] = s + 2 x s (1 - s) u'
            let s = gelu_new_gate(x);
            s + 2.0 * x * s * (1.0 - s) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x)
        }
        Activation::GeluErf => {
            let x = x as f64;
            let cdf = 0.5 * (1.0 + candle_core::cpu::erf::erf_f64(x / 2f64.sqrt()));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            (cdf + x * pdf) as f32
        }
    }
}

vmath::multiversion! {
    /// `o = gelu_new(x)` over a chunk.
    fn gelu_new_chunk(x: &[f32], o: &mut [f32]) {
        o.iter_mut()
            .zip(x)
            .for_each(|(o, &x)| *o = gelu_fwd(Activation::GeluNew, x));
    }
}

vmath::multiversion! {
    /// `o = g * gelu_new'(x)` over a chunk.
    fn gelu_new_grad_chunk(x: &[f32], g: &[f32], o: &mut [f32]) {
        o.iter_mut()
            .zip(x.iter().zip(g))
            .for_each(|(o, (&x, &g))| *o = g * gelu_grad(Activation::GeluNew, x));
    }
}

struct GeluOp(Activation);

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "massivetext-gelu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "gelu")?;
        let mut out = vec![0f32; x.len()];
        let kind = self.0;
        elementwise(&mut out, |start, o| {
            let x = &x[start..start + o.len()];
            match kind {
                Activation::GeluNew => gelu_new_chunk(x, o),
                Activation::GeluErf => o
                    .iter_mut()
                    .zip(x)
                    .for_each(|(o, &x)| *o = gelu_fwd(Activation::GeluErf, x)),
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            x.apply_op2_no_bwd(&g.contiguous()?, &GeluBwd(self.0))?,
        ))
    }
}

struct GeluBwd(Activation);

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "massivetext-gelu-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1, "gelu_bwd")?, slice(s2, l2, "gelu_bwd")?);
        let mut out = vec![0f32; x.len()];
        let kind = self.0;
        elementwise(&mut out, |start, o| {
            let (x, g) = (&x[start..start + o.len()], &g[start..start + o.len()]);
            match kind {
                Activation::GeluNew => gelu_new_grad_chunk(x, g, o),
                Activation::GeluErf => o
                    .iter_mut()
                    .zip(x.iter().zip(g))
                    .for_each(|(o, (&x, &g))| *o = g * gelu_grad(Activation::GeluErf, x)),
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// GELU of either kind, element-wise.
pub fn gelu(x: &Tensor, kind: Activation) -> Result<Tensor> {
    if !fused(x) {
        return composed::gelu(x, kind);
    }
    x.contiguous()?.apply_op1(GeluOp(kind))
}

// ---------------------------------------------------------------- cross-entropy

/// Label value that is left out of the loss, as in PyTorch and Hugging Face.
pub const IGNORE_INDEX: i64 = -100;

fn labels_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [i64]> {
    let data = match s {
        CpuStorage::I64(v) => v.as_slice(),
        _ => bail!("cross_entropy: labels must be i64"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("cross_entropy: labels must be contiguous"),
    }
}

fn check_label(t: i64, v: usize) -> Result<()> {
    if t != IGNORE_INDEX && (t < 0 || t as usize >= v) {
        bail!("label {t} is outside the vocabulary (vocab_size {v}); use -100 to ignore a position")
    }
    Ok(())
}

/// Keeps each row's log-sum-exp from the forward pass, so the backward pass is one
/// `exp(x - lse)` per logit instead of recomputing the row's maximum and sum.
#[derive(Default)]
struct CrossEntropyOp {
    lse: Saved,
}

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "massivetext-cross-entropy"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "cross_entropy")?;
        let t = labels_slice(s2, l2)?;
        let v = l1.dims().last().copied().unwrap_or(1);
        for &ti in t {
            check_label(ti, v)?;
        }
        let mut per_row = vec![0f32; t.len()];
        let mut lse = vec![0f32; t.len()];
        let (ptr, lse_ptr) = (OutPtr(per_row.as_mut_ptr()), OutPtr(lse.as_mut_ptr()));
        // one output per row, but `v` elements of work each: parallel by the logits' size
        par_for(t.len(), x.len(), |range| {
            for r in range {
                let ti = t[r];
                if ti != IGNORE_INDEX {
                    let xr = &x[r * v..(r + 1) * v];
                    let max = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let l = max + vmath::sum_exp_shifted(xr, max).ln();
                    // SAFETY: row r's loss and log-sum-exp are written only by this chunk.
                    unsafe {
                        ptr.slice(r, 1)[0] = l - xr[ti as usize];
                        lse_ptr.slice(r, 1)[0] = l;
                    }
                }
            }
        });
        self.lse.put(lse);
        let total: f64 = per_row.iter().map(|&l| l as f64).sum();
        let count = t.iter().filter(|&&ti| ti != IGNORE_INDEX).count();
        // all positions ignored: NaN, as torch's mean reduction gives
        let loss = (total / count as f64) as f32;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }
    fn bwd(
        &self,
        x: &Tensor,
        t: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let lse = self.lse.get("cross_entropy")?;
        let dx = x.apply_op3_no_bwd(t, &g.contiguous()?, &CrossEntropyBwd { lse })?;
        Ok((Some(dx), None))
    }
}

struct CrossEntropyBwd {
    lse: std::sync::Arc<Vec<f32>>,
}

impl CustomOp3 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "massivetext-cross-entropy-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "cross_entropy_bwd")?;
        let t = labels_slice(s2, l2)?;
        let g = slice(s3, l3, "cross_entropy_bwd")?[0];
        let v = l1.dims().last().copied().unwrap_or(1);
        let count = t.iter().filter(|&&ti| ti != IGNORE_INDEX).count();
        let scale = g / count.max(1) as f32;
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, v, |r, o| {
            let ti = t[r];
            if ti == IGNORE_INDEX {
                return;
            }
            // softmax(x) = exp(x - lse), times the mean's scale; minus it at the label
            vmath::exp_shifted_scaled(&x[r * v..(r + 1) * v], self.lse[r], scale, o);
            o[ti as usize] -= scale;
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Mean cross-entropy of `logits [.., vocab]` (every leading position a row) against one label
/// per row (i64, any shape), leaving out positions labelled [`IGNORE_INDEX`] (-100), as
/// `torch.nn.functional.cross_entropy` does.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let labels = labels.to_dtype(DType::I64)?.flatten_all()?.contiguous()?;
    let v = logits.dim(D::Minus1)?;
    let rows = logits.elem_count() / v.max(1);
    if labels.elem_count() != rows {
        bail!(
            "cross_entropy: {} labels for {rows} rows of logits {:?}",
            labels.elem_count(),
            logits.dims()
        );
    }
    if !fused(logits) {
        return composed::cross_entropy(&logits.reshape((rows, v))?, &labels);
    }
    logits
        .contiguous()?
        .apply_op2(&labels, CrossEntropyOp::default())
}

/// The same maths from candle's differentiable primitive ops: slower, but it runs on every
/// device and dtype and is the reference the fused kernels are tested against.
pub mod composed {
    use super::*;

    pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let d = x.rank() - 1;
        let mean = x.mean_keepdim(d)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(d)?;
        let xh = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
        xh.to_dtype(dtype)?
            .broadcast_mul(weight)?
            .broadcast_add(bias)
    }

    pub fn linear(
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        conv1d: bool,
    ) -> Result<Tensor> {
        let y = if conv1d {
            x.broadcast_matmul(weight)?
        } else {
            x.broadcast_matmul(&weight.t()?)?
        };
        match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// `[b, t, h]` to `[b, heads, t, h / heads]`.
    pub fn split_heads(y: &Tensor, n_head: usize) -> Result<Tensor> {
        let (b, t, h) = y.dims3()?;
        y.reshape((b, t, n_head, h / n_head))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `[b, heads, t, hd]` back to `[b, t, heads * hd]`.
    pub fn merge_heads(y: &Tensor) -> Result<Tensor> {
        let (b, n_head, t, hd) = y.dims4()?;
        y.transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, n_head * hd))
    }

    /// `softmax(q kᵀ / sqrt(hd) + mask)` for `q [b, heads, t, hd]`, `k [b, heads, t_k, hd]`.
    pub fn attention_probs(q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let hd = q.dim(D::Minus1)?;
        let q = (q * (1.0 / (hd as f64).sqrt()))?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        super::softmax_last_dim(&scores)
    }

    pub fn self_attention(qkv: &Tensor, mask: Option<&Tensor>, n_head: usize) -> Result<Tensor> {
        let h = qkv.dim(2)? / 3;
        let split = |i: usize| split_heads(&qkv.narrow(2, i * h, h)?, n_head);
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        merge_heads(&attention_probs(&q, &k, mask)?.matmul(&v)?)
    }

    pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
        let d = x.rank() - 1;
        let max = x.max_keepdim(d)?;
        let e = x.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(d)?)
    }

    pub fn gelu(x: &Tensor, kind: Activation) -> Result<Tensor> {
        match kind {
            Activation::GeluNew => {
                let inner = ((x + (x.powf(3.0)? * GELU_C as f64)?)? * SQRT_2_OVER_PI as f64)?;
                (x * 0.5)? * (inner.tanh()? + 1.0)?
            }
            Activation::GeluErf => x.gelu_erf(),
        }
    }

    pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let v = logits.dim(1)?;
        let t: Vec<i64> = labels.to_vec1()?;
        for &ti in &t {
            check_label(ti, v)?;
        }
        let keep: Vec<f32> = t
            .iter()
            .map(|&ti| (ti != IGNORE_INDEX) as u8 as f32)
            .collect();
        let count = keep.iter().sum::<f32>();
        let idx: Vec<u32> = t.iter().map(|&ti| ti.max(0) as u32).collect();
        let dev = logits.device();
        let logits = logits.to_dtype(DType::F32)?;
        let max = logits.max_keepdim(1)?.detach();
        let shifted = logits.broadcast_sub(&max)?;
        let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
        let logp = shifted.broadcast_sub(&lse)?;
        let idx = Tensor::from_vec(idx, (t.len(), 1), dev)?;
        let picked = logp.gather(&idx, 1)?.squeeze(1)?;
        let keep = Tensor::from_vec(keep, t.len(), dev)?;
        (picked * keep)?.sum_all()?.neg()? / count as f64
    }
}
