//! The one transformer core behind GPT-2, BERT and RoBERTa: embeddings, multi-head attention that
//! can hand back its probabilities, an MLP, pre- or post-LayerNorm blocks, causal and padding
//! masks, a KV cache, and dropout that is real in training mode and absent in eval mode.
//!
//! Weight names are not decided here: the model files (`gpt2.rs`, `bert.rs`) build these pieces
//! from their Hugging Face names through [`Params`](super::params::Params).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{D, DType, Device, Tensor};

use super::activation::Activation;
use super::params::{Init, Params};
use crate::kernels;
use crate::{Error, Result};

/// The dropout random stream of a model: a seed and a count of dropout calls made with it. Each
/// call's mask is a function of `(seed, call)` alone ([`kernels::dropout_mask`]), so the same seed
/// gives the same masks on every device and kernel path. Clones share the count.
#[derive(Clone, Debug)]
pub(crate) struct DropoutStream {
    pub seed: u64,
    pub calls: Arc<AtomicU64>,
}

impl DropoutStream {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Per-call state: training mode (dropout on) and the dropout stream.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub training: bool,
    pub dropout: DropoutStream,
}

impl Ctx {
    /// Inverted dropout (`x * mask / (1 - p)`), as `torch.nn.Dropout`: identity in eval mode.
    pub fn dropout(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        if !self.training || p <= 0.0 {
            return Ok(x.clone());
        }
        let call = self.dropout.calls.fetch_add(1, Ordering::Relaxed);
        Ok(kernels::dropout(x, p, self.dropout.seed, call)?)
    }
}

/// A dense layer. Hugging Face stores `nn.Linear` weights as `[out, in]` and GPT-2's `Conv1D`
/// as `[in, out]`; we keep each as stored so saving writes them back unchanged.
#[derive(Clone)]
pub(crate) struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// `true` for GPT-2's `Conv1D` (`[in, out]`).
    pub conv1d: bool,
}

impl Linear {
    /// `x [.., in]` to `[.., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::linear(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.conv1d,
        )?)
    }
}

/// An `nn.Linear` (`[out, in]` weight drawn from normal(0, `std`), zero bias) named `name`,
/// loaded or drawn by `p`: the one builder every model file uses.
pub(crate) fn linear(
    p: &mut Params,
    name: &str,
    d_in: usize,
    d_out: usize,
    std: f64,
) -> Result<Linear> {
    Ok(Linear {
        weight: p.get(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std))?,
        bias: Some(p.get(&format!("{name}.bias"), &[d_out], Init::Zeros)?),
        conv1d: false,
    })
}

/// An `nn.LayerNorm` of width `d` (ones and zeros when drawn) named `name`.
pub(crate) fn layer_norm(p: &mut Params, name: &str, d: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: p.get(&format!("{name}.weight"), &[d], Init::Ones)?,
        bias: p.get(&format!("{name}.bias"), &[d], Init::Zeros)?,
        eps,
    })
}

#[derive(Clone)]
pub(crate) struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }
}

/// How position ids are made.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Positions {
    /// `0, 1, 2, ...` (offset by the KV cache length): GPT-2 and BERT.
    Absolute,
    /// RoBERTa: the running count of non-padding tokens, plus `padding_idx`; padding gets
    /// `padding_idx` itself.
    PaddingOffset { padding_idx: u32 },
}

#[derive(Clone)]
pub(crate) struct Embeddings {
    pub word: Tensor,
    pub position: Tensor,
    pub token_type: Option<Tensor>,
    /// BERT normalises the embedding sum; GPT-2 does not.
    pub ln: Option<LayerNorm>,
    pub positions: Positions,
    pub dropout: f64,
}

impl Embeddings {
    pub fn vocab_size(&self) -> usize {
        self.word.dims()[0]
    }

    /// The longest sequence the position table allows.
    pub fn max_len(&self) -> usize {
        let n = self.position.dims()[0];
        match self.positions {
            Positions::Absolute => n,
            Positions::PaddingOffset { padding_idx } => n.saturating_sub(padding_idx as usize + 1),
        }
    }

    /// `ids` u32 `[b, t]` on the model's device; positions start after `past` cached tokens.
    pub fn forward(
        &self,
        ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        past: usize,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = self.word.device();
        let vocab = self.vocab_size();
        // one scalar read: the largest id
        check_token_id(ids.max_all()?.to_scalar::<u32>()?, vocab)?;
        if past + t > self.max_len() {
            return Err(Error::SequenceTooLong {
                len: past + t,
                max: self.max_len(),
            });
        }
        let h = self.word.dim(1)?;
        // in the position table's dtype: the compute dtype, also when the word embeddings are
        // stored in bf16 as the LM head (`with_weight_dtype`)
        let mut x = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .to_dtype(self.position.dtype())?;
        let pos = match (position_ids, self.positions) {
            (Some(p), _) => {
                if p.dims() != [b, t] {
                    return Err(Error::InvalidArgument(format!(
                        "position_ids has shape {:?}, expected [{b}, {t}] like input_ids",
                        p.dims()
                    )));
                }
                let p = p.to_device(dev)?.to_dtype(DType::U32)?;
                let max = p.max_all()?.to_scalar::<u32>()? as usize;
                if max >= self.position.dim(0)? {
                    return Err(Error::SequenceTooLong {
                        len: max + 1,
                        max: self.position.dim(0)?,
                    });
                }
                p
            }
            (None, Positions::Absolute) => {
                let p = Tensor::arange(past as u32, (past + t) as u32, dev)?;
                p.unsqueeze(0)?.broadcast_as((b, t))?.contiguous()?
            }
            (None, Positions::PaddingOffset { padding_idx }) => {
                // the running count of real tokens (plus the cached ones), padding_idx added;
                // padding itself gets padding_idx
                let real = ids.ne(padding_idx)?.to_dtype(DType::F32)?;
                let count = (real.cumsum(1)? + past as f64)?;
                ((count * &real)? + padding_idx as f64)?.to_dtype(DType::U32)?
            }
        };
        x = (x + self.position.index_select(&pos.flatten_all()?, 0)?)?;
        if let Some(tt) = &self.token_type {
            let types = match token_type_ids {
                Some(types) => {
                    let types = types.to_dtype(DType::U32)?;
                    if types.elem_count() != b * t {
                        return Err(Error::InvalidArgument(format!(
                            "token_type_ids has {} elements, input_ids {}",
                            types.elem_count(),
                            b * t
                        )));
                    }
                    let types = types.flatten_all()?.to_device(dev)?;
                    let max = tt.dim(0)?;
                    let bad = types.max_all()?.to_scalar::<u32>()?;
                    if bad as usize >= max {
                        return Err(Error::InvalidArgument(format!(
                            "token_type_id {bad} is >= type_vocab_size {max}"
                        )));
                    }
                    types
                }
                None => Tensor::zeros(b * t, DType::U32, dev)?,
            };
            x = (x + tt.index_select(&types, 0)?)?;
        }
        let mut x = x.reshape((b, t, h))?;
        if let Some(ln) = &self.ln {
            x = ln.forward(&x)?;
        }
        ctx.dropout(&x, self.dropout)
    }
}

/// Query, key and value projections: GPT-2 fuses them into one `c_attn`, BERT keeps three.
#[derive(Clone)]
pub(crate) enum Qkv {
    Fused(Linear),
    Split { q: Linear, k: Linear, v: Linear },
}

#[derive(Clone)]
pub(crate) struct Attention {
    pub qkv: Qkv,
    pub out: Linear,
    pub n_head: usize,
    pub attn_dropout: f64,
}

/// One layer's place in a [`KvCache`]: its buffer `[2, b, heads, capacity, hd]` (keys, then
/// values), how many positions are filled, and how many to reserve when allocating.
pub(crate) struct CacheSlot<'a> {
    pub kv: &'a mut Option<Tensor>,
    pub past: usize,
    pub reserve: usize,
}

impl CacheSlot<'_> {
    /// The buffer, grown (to the reserve, or doubled) when `t` more positions do not fit.
    fn buffer(&mut self, like: &Tensor, n_head: usize, t: usize) -> Result<Tensor> {
        let (b, _, h3) = like.dims3()?;
        let hd = h3 / 3 / n_head;
        let need = self.past + t;
        if let Some(kv) = self.kv.as_ref() {
            if kv.dim(1)? != b {
                return Err(Error::InvalidArgument(format!(
                    "the KV cache holds a batch of {}, the input has {b} rows; clear it (KvCache::clear) for a new batch",
                    kv.dim(1)?
                )));
            }
            if kv.dim(3)? >= need {
                return Ok(kv.clone());
            }
        }
        let old = self.kv.take();
        let old_cap = old.as_ref().map(|o| o.dim(3)).transpose()?.unwrap_or(0);
        let cap = need.max(self.reserve).max(2 * old_cap);
        let kv = Tensor::zeros((2, b, n_head, cap, hd), like.dtype(), like.device())?;
        if let (Some(old), true) = (old, self.past > 0) {
            kv.slice_set(&old.narrow(3, 0, self.past)?.contiguous()?, 3, 0)?;
        }
        *self.kv = Some(kv.clone());
        Ok(kv)
    }
}

impl Attention {
    /// `x [b, t, h]`, `mask` additive `[b, 1, t, t_k]` (0 or a very negative number).
    /// Returns the projected output and, when `want_probs`, the attention probabilities
    /// `[b, heads, t, t_k]`.
    ///
    /// Without a KV cache, attention dropout or returned probabilities, the one fused op
    /// [`kernels::self_attention`] runs; with a cache, [`kernels::cached_attention`] over the
    /// cache's buffer; otherwise the composed ops below, which expose each step.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<CacheSlot<'_>>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (_, t, h) = x.dims3()?;
        let qkv = match &self.qkv {
            Qkv::Fused(lin) => lin.forward(x)?,
            Qkv::Split { q, k, v } => {
                Tensor::cat(&[q.forward(x)?, k.forward(x)?, v.forward(x)?], 2)?
            }
        };
        let no_dropout = !ctx.training || self.attn_dropout <= 0.0;
        let composed = kernels::composed::split_heads;
        let (k, v) = match cache {
            None if !want_probs && no_dropout => {
                let y = kernels::self_attention(&qkv, mask, self.n_head)?;
                return Ok((self.out.forward(&y)?, None));
            }
            None => (
                composed(&qkv.narrow(2, h, h)?, self.n_head)?,
                composed(&qkv.narrow(2, 2 * h, h)?, self.n_head)?,
            ),
            Some(mut slot) => {
                let kv = slot.buffer(&qkv, self.n_head, t)?;
                kernels::kv_cache_write(&kv, &qkv, self.n_head, slot.past)?;
                let len = slot.past + t;
                if !want_probs && no_dropout {
                    let y = kernels::cached_attention(&qkv, &kv, len, mask, self.n_head)?;
                    return Ok((self.out.forward(&y)?, None));
                }
                (
                    kernels::composed::cached(&kv, 0, len)?,
                    kernels::composed::cached(&kv, 1, len)?,
                )
            }
        };
        let q = composed(&qkv.narrow(2, 0, h)?, self.n_head)?;
        let probs = kernels::composed::attention_probs(&q, &k, mask)?;
        let dropped = ctx.dropout(&probs, self.attn_dropout)?;
        let y = kernels::composed::merge_heads(&dropped.matmul(&v)?)?;
        Ok((self.out.forward(&y)?, Some(probs)))
    }
}

#[derive(Clone)]
pub(crate) struct Mlp {
    pub fc: Linear,
    pub proj: Linear,
    pub act: Activation,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj.forward(&self.act.forward(&self.fc.forward(x)?)?)
    }
}

#[derive(Clone)]
pub(crate) struct Block {
    pub ln1: LayerNorm,
    pub attn: Attention,
    pub ln2: LayerNorm,
    pub mlp: Mlp,
    /// GPT-2 normalises before each sublayer (pre-LN), BERT after the residual sum (post-LN).
    pub pre_ln: bool,
    pub resid_dropout: f64,
}

impl Block {
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<CacheSlot<'_>>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        if self.pre_ln {
            let xn = self.ln1.forward(x)?;
            let (a, probs) = self.attn.forward(&xn, mask, cache, want_probs, ctx)?;
            let x = (x + ctx.dropout(&a, self.resid_dropout)?)?;
            let m = self.mlp.forward(&self.ln2.forward(&x)?)?;
            Ok(((x + ctx.dropout(&m, self.resid_dropout)?)?, probs))
        } else {
            let (a, probs) = self.attn.forward(x, mask, cache, want_probs, ctx)?;
            let x = self
                .ln1
                .forward(&(x + ctx.dropout(&a, self.resid_dropout)?)?)?;
            let m = self.mlp.forward(&x)?;
            let x = self
                .ln2
                .forward(&(&x + ctx.dropout(&m, self.resid_dropout)?)?)?;
            Ok((x, probs))
        }
    }
}

/// Keys and values of every layer for the tokens processed so far, for fast decoding: feed the
/// prompt once, then one token at a time. Each layer's buffer is allocated once for
/// [`with_capacity`](Self::with_capacity) positions (or grown by doubling), and new tokens are
/// written into place: no concatenation per step.
#[derive(Default)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<Tensor>>,
    pub(crate) len: usize,
    pub(crate) reserve: usize,
}

impl Clone for KvCache {
    /// A deep copy: the buffers are written in place, so clones must not share them.
    fn clone(&self) -> Self {
        KvCache {
            layers: self
                .layers
                .iter()
                .map(|l| l.as_ref().and_then(|t| t.copy().ok()))
                .collect(),
            len: self.len,
            reserve: self.reserve,
        }
    }
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KvCache {{ len: {}, capacity: {} }}",
            self.len,
            self.capacity()
        )
    }
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }
    /// A cache that allocates room for `positions` tokens at the first call (prompt plus
    /// every new token of a generation), so it never grows.
    pub fn with_capacity(positions: usize) -> Self {
        Self {
            reserve: positions,
            ..Self::default()
        }
    }
    /// Number of tokens already cached.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Positions the buffers hold before they must grow.
    pub fn capacity(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .next()
            .and_then(|t| t.dim(3).ok())
            .unwrap_or(self.reserve)
    }
    /// Forgets everything (start a new sequence); the buffers are kept for reuse.
    pub fn clear(&mut self) {
        self.len = 0;
        self.layers.iter_mut().for_each(|l| *l = None);
    }
    /// Beam search: row `i` of the cache becomes old row `rows[i]`. Nothing is copied when the
    /// rows stay where they are.
    pub fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        if rows.iter().enumerate().all(|(i, &r)| r as usize == i) {
            return Ok(());
        }
        for t in self.layers.iter_mut().flatten() {
            *t = kernels::kv_cache_reorder(t, rows, self.len)?;
        }
        Ok(())
    }
}

/// The state of an encoder–decoder while it decodes: the encoder's output for every row (a
/// source repeated once per beam or returned sequence), the additive padding mask of the
/// sources, the decoder's self-attention [`KvCache`] (which grows by a token a step), and each
/// decoder layer's cross-attention keys and values, computed from the encoder's output once per
/// source at the first step. Made by `PreTrainedModel::encode`, fed by
/// `PreTrainedModel::decode_cached`.
pub struct EncoderDecoderCache {
    /// `[rows, source_len, d_model]`.
    pub(crate) encoder_hidden: Tensor,
    /// The sources' attention mask `[rows, source_len]` (1 real, 0 padding), when padded.
    pub(crate) encoder_mask: Option<Tensor>,
    pub(crate) self_attn: KvCache,
    /// Per decoder layer: keys and values `[2, rows, heads, source_len, head_dim]`.
    pub(crate) cross: Vec<Option<Tensor>>,
}

impl EncoderDecoderCache {
    pub(crate) fn new(
        encoder_hidden: Tensor,
        encoder_mask: Option<Tensor>,
        capacity: usize,
    ) -> Self {
        Self {
            encoder_hidden,
            encoder_mask,
            self_attn: KvCache::with_capacity(capacity),
            cross: Vec::new(),
        }
    }
    /// Decoder tokens already fed.
    pub fn len(&self) -> usize {
        self.self_attn.len()
    }
    pub fn is_empty(&self) -> bool {
        self.self_attn.is_empty()
    }
    /// Rows (sources times beams).
    pub fn rows(&self) -> usize {
        self.encoder_hidden.dims()[0]
    }
    /// The encoder's last hidden state, `[rows, source_len, d_model]`.
    pub fn encoder_hidden_state(&self) -> &Tensor {
        &self.encoder_hidden
    }
    /// Beam search: row `i` becomes old row `rows[i]`. The cross-attention keys and values
    /// stay: beams only move among the rows of their own source, which hold the same ones.
    pub fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        self.self_attn.reorder(rows)
    }
}

impl std::fmt::Debug for EncoderDecoderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EncoderDecoderCache {{ rows: {}, source_len: {}, decoded: {} }}",
            self.rows(),
            self.encoder_hidden.dims().get(1).copied().unwrap_or(0),
            self.len()
        )
    }
}

/// What the stack of blocks produced.
pub(crate) struct CoreOutput {
    pub last_hidden_state: Tensor,
    pub hidden_states: Option<Vec<Tensor>>,
    pub attentions: Option<Vec<Tensor>>,
}

#[derive(Clone)]
pub(crate) struct Transformer {
    pub embeddings: Embeddings,
    pub blocks: Vec<Block>,
    /// GPT-2's final LayerNorm (`ln_f`); none in post-LN models.
    pub ln_f: Option<LayerNorm>,
    pub causal: bool,
}

/// The one vocabulary check (the model's inputs, the Trainer's and the Evaluator's data): an id
/// at or above `vocab_size` is an error naming both.
pub fn check_token_id(max_id: u32, vocab_size: usize) -> Result<()> {
    if max_id as usize >= vocab_size {
        return Err(Error::TokenOutOfVocab {
            id: max_id,
            vocab_size,
        });
    }
    Ok(())
}

/// Checks `input_ids` is an integer `[batch, seq]` tensor and returns it as u32 on `device`.
pub(crate) fn read_ids(input_ids: &Tensor, device: &Device) -> Result<(Tensor, (usize, usize))> {
    let (b, t) = input_ids.dims2().map_err(|_| {
        Error::InvalidArgument(format!(
            "input_ids must be [batch, seq], got shape {:?}",
            input_ids.dims()
        ))
    })?;
    if b == 0 || t == 0 {
        return Err(Error::InvalidArgument(format!(
            "input_ids is empty (shape [{b}, {t}])"
        )));
    }
    let ids = match input_ids.dtype() {
        DType::U32 | DType::U8 => input_ids.to_dtype(DType::U32)?,
        DType::I64 => {
            let min = input_ids.min_all()?.to_scalar::<i64>()?;
            let max = input_ids.max_all()?.to_scalar::<i64>()?;
            if min < 0 || max > u32::MAX as i64 {
                let bad = if min < 0 { min } else { max };
                return Err(Error::InvalidArgument(format!(
                    "input_ids holds {bad}, which is not a token id"
                )));
            }
            input_ids.to_dtype(DType::U32)?
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "input_ids must be u32 or i64, got {other:?}"
            )));
        }
    };
    Ok((ids.to_device(device)?, (b, t)))
}

/// The additive mask `[b, 1, t, past + t]` on `device`: 0 where a query may attend, `f32::MIN`
/// where not (a future key, or padding), applied once as transformers' eager attention does (so
/// fully masked rows match too). Built with tensor ops; the one value read back says whether the
/// attention mask has any padding at all (none and not causal: no mask).
pub(crate) fn build_mask(
    attention_mask: Option<&Tensor>,
    causal: bool,
    (b, t): (usize, usize),
    past: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    let tk = past + t;
    let padding = match attention_mask {
        None => None,
        Some(m) => {
            let (mb, mt) = m.dims2().map_err(|_| {
                Error::InvalidArgument(format!(
                    "attention_mask must be [batch, seq], got shape {:?}",
                    m.dims()
                ))
            })?;
            if mb != b || mt != tk {
                return Err(Error::InvalidArgument(format!(
                    "attention_mask has shape [{mb}, {mt}], expected [{b}, {tk}] (batch, cached + new tokens)"
                )));
            }
            let keep = m.to_device(device)?.to_dtype(DType::F32)?.ne(0f32)?;
            let padded =
                (keep.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as usize) < b * tk;
            padded.then(|| keep.reshape((b, 1, 1, tk))).transpose()?
        }
    };
    let causal = if causal && t > 1 {
        let q = Tensor::arange(past as u32, tk as u32, device)?.reshape((t, 1))?;
        let k = Tensor::arange(0u32, tk as u32, device)?.reshape((1, tk))?;
        Some(k.broadcast_le(&q)?.reshape((1, 1, t, tk))?)
    } else {
        None
    };
    let keep = match (padding, causal) {
        (None, None) => return Ok(None),
        (Some(p), None) => p.broadcast_as((b, 1, t, tk))?.contiguous()?,
        (None, Some(c)) => c.broadcast_as((b, 1, t, tk))?.contiguous()?,
        (Some(p), Some(c)) => p.broadcast_mul(&c)?,
    };
    // (1 - keep) * MIN: 0 (as -0.0, which adds nothing) where kept, f32::MIN where masked
    let blocked = (1.0 - keep.to_dtype(DType::F32)?)?;
    Ok(Some((blocked * f32::MIN as f64)?))
}

pub(crate) struct CoreInput<'a> {
    pub input_ids: &'a Tensor,
    pub position_ids: Option<&'a Tensor>,
    pub attention_mask: Option<&'a Tensor>,
    pub token_type_ids: Option<&'a Tensor>,
    pub output_attentions: bool,
    pub output_hidden_states: bool,
}

impl Transformer {
    pub fn forward(
        &self,
        input: &CoreInput<'_>,
        mut cache: Option<&mut KvCache>,
        ctx: &Ctx,
    ) -> Result<CoreOutput> {
        let dev = self.embeddings.word.device();
        let (ids, (b, t)) = read_ids(input.input_ids, dev)?;
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let mut x =
            self.embeddings
                .forward(&ids, input.token_type_ids, input.position_ids, past, ctx)?;
        let mask = build_mask(input.attention_mask, self.causal, (b, t), past, dev)?
            .map(|m| m.to_dtype(x.dtype()))
            .transpose()?;
        if let Some(c) = cache.as_deref_mut()
            && c.layers.len() != self.blocks.len()
        {
            c.layers = vec![None; self.blocks.len()];
        }
        let mut hidden = input.output_hidden_states.then(Vec::new);
        let mut attns = input.output_attentions.then(Vec::new);
        for (i, block) in self.blocks.iter().enumerate() {
            if let Some(h) = hidden.as_mut() {
                h.push(x.clone());
            }
            let layer_cache = cache.as_deref_mut().map(|c| CacheSlot {
                past: c.len,
                reserve: c.reserve,
                kv: &mut c.layers[i],
            });
            let want = attns.is_some();
            let (y, probs) = block.forward(&x, mask.as_ref(), layer_cache, want, ctx)?;
            x = y;
            if let (Some(a), Some(p)) = (attns.as_mut(), probs) {
                a.push(p);
            }
        }
        if let Some(ln) = &self.ln_f {
            x = ln.forward(&x)?;
        }
        if let Some(h) = hidden.as_mut() {
            h.push(x.clone());
        }
        if let Some(c) = cache {
            c.len = past + t;
        }
        Ok(CoreOutput {
            last_hidden_state: x,
            hidden_states: hidden,
            attentions: attns,
        })
    }
}

/// Mean of `hidden [b, t, h]` over the positions where `attention_mask [b, t]` is 1: the
/// sentence embedding of sentence-transformers' mean pooling.
pub fn mean_pooling(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let m = attention_mask
        .to_dtype(hidden.dtype())?
        .unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    Ok(summed.broadcast_div(&counts)?)
}
