//! The one transformer core behind GPT-2, BERT and RoBERTa: embeddings, multi-head attention that
//! can hand back its probabilities, an MLP, pre- or post-LayerNorm blocks, causal and padding
//! masks, a KV cache, and dropout that is real in training mode and absent in eval mode.
//!
//! Weight names are not decided here: the model files (`gpt2.rs`, `bert.rs`) build these pieces
//! from their Hugging Face names through [`Params`](super::params::Params).
use std::sync::{Arc, Mutex};

use candle_core::{D, DType, Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ops::{self, Activation};
use crate::{Error, Result};

/// Per-call state: training mode (dropout on) and the dropout random stream.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub training: bool,
    pub rng: Arc<Mutex<ChaCha8Rng>>,
}

impl Ctx {
    /// Inverted dropout (`x * mask / (1 - p)`), as `torch.nn.Dropout`: identity in eval mode.
    /// The mask comes from the model's own seeded stream, so a run can be repeated exactly.
    pub fn dropout(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        if !self.training || p <= 0.0 {
            return Ok(x.clone());
        }
        if p >= 1.0 {
            return Ok(x.zeros_like()?);
        }
        let n = x.elem_count();
        let scale = (1.0 / (1.0 - p)) as f32;
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| Error::InvalidInput("the dropout RNG lock is poisoned".into()))?;
            (0..n)
                .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok((x * mask)?)
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
        Ok(ops::linear(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.conv1d,
        )?)
    }
}

#[derive(Clone)]
pub(crate) struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::layer_norm(x, &self.weight, &self.bias, self.eps)?)
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

    pub fn forward(
        &self,
        ids: &[u32],
        shape: (usize, usize),
        token_type_ids: Option<&Tensor>,
        past: usize,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (b, t) = shape;
        let dev = self.word.device();
        let vocab = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            return Err(Error::TokenOutOfVocab {
                id: bad,
                vocab_size: vocab,
            });
        }
        if past + t > self.max_len() {
            return Err(Error::SequenceTooLong {
                len: past + t,
                max: self.max_len(),
            });
        }
        let h = self.word.dim(1)?;
        let idx = Tensor::from_slice(ids, b * t, dev)?;
        let mut x = self.word.index_select(&idx, 0)?;
        let pos: Vec<u32> = match self.positions {
            Positions::Absolute => (0..b)
                .flat_map(|_| (past..past + t).map(|p| p as u32))
                .collect(),
            Positions::PaddingOffset { padding_idx } => {
                let mut out = Vec::with_capacity(b * t);
                for row in ids.chunks(t) {
                    let mut count = past as u32;
                    for &id in row {
                        if id == padding_idx {
                            out.push(padding_idx);
                        } else {
                            count += 1;
                            out.push(count + padding_idx);
                        }
                    }
                }
                out
            }
        };
        let pos = Tensor::from_vec(pos, b * t, dev)?;
        x = (x + self.position.index_select(&pos, 0)?)?;
        if let Some(tt) = &self.token_type {
            let types = match token_type_ids {
                Some(ids) => {
                    let ids = ids.to_dtype(DType::U32)?.flatten_all()?;
                    let max = tt.dim(0)?;
                    let v: Vec<u32> = ids.to_vec1()?;
                    if let Some(&bad) = v.iter().find(|&&i| i as usize >= max) {
                        return Err(Error::InvalidInput(format!(
                            "token_type_id {bad} is >= type_vocab_size {max}"
                        )));
                    }
                    if v.len() != b * t {
                        return Err(Error::InvalidInput(format!(
                            "token_type_ids has {} elements, input_ids {}",
                            v.len(),
                            b * t
                        )));
                    }
                    ids
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

/// The keys and values of one layer for the tokens seen so far.
pub(crate) type LayerCache = Option<(Tensor, Tensor)>;

impl Attention {
    /// `x [b, t, h]`, `mask` additive `[b, 1, t, t_k]` (0 or a very negative number).
    /// Returns the projected output and, when `want_probs`, the attention probabilities
    /// `[b, heads, t, t_k]`.
    ///
    /// Without a KV cache, attention dropout or returned probabilities, the one fused op
    /// [`ops::self_attention`] runs; otherwise the composed ops below, which expose each step.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut LayerCache>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let h = x.dim(2)?;
        let qkv = match &self.qkv {
            Qkv::Fused(lin) => lin.forward(x)?,
            Qkv::Split { q, k, v } => {
                Tensor::cat(&[q.forward(x)?, k.forward(x)?, v.forward(x)?], 2)?
            }
        };
        let no_dropout = !ctx.training || self.attn_dropout <= 0.0;
        if cache.is_none() && !want_probs && no_dropout {
            let y = ops::self_attention(&qkv, mask, self.n_head)?;
            return Ok((self.out.forward(&y)?, None));
        }
        let split = |i: usize| ops::composed::split_heads(&qkv.narrow(2, i * h, h)?, self.n_head);
        let (q, mut k, mut v) = (split(0)?, split(1)?, split(2)?);
        if let Some(cache) = cache {
            if let Some((pk, pv)) = cache.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *cache = Some((k.clone(), v.clone()));
        }
        let probs = ops::composed::attention_probs(&q, &k, mask)?;
        let dropped = ctx.dropout(&probs, self.attn_dropout)?;
        let y = ops::composed::merge_heads(&dropped.matmul(&v)?)?;
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
        self.proj
            .forward(&ops::gelu(&self.fc.forward(x)?, self.act)?)
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
        cache: Option<&mut LayerCache>,
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

/// Keys and values of every layer for the tokens processed so far, for fast decoding:
/// feed the prompt once, then one token at a time.
#[derive(Clone, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of tokens already cached.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forgets everything (start a new sequence).
    pub fn clear(&mut self) {
        self.layers.clear();
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

/// Checks `input_ids` is an integer `[batch, seq]` tensor and returns its ids.
pub(crate) fn read_ids(input_ids: &Tensor) -> Result<(Vec<u32>, (usize, usize))> {
    let (b, t) = input_ids.dims2().map_err(|_| {
        Error::InvalidInput(format!(
            "input_ids must be [batch, seq], got shape {:?}",
            input_ids.dims()
        ))
    })?;
    if b == 0 || t == 0 {
        return Err(Error::InvalidInput(format!(
            "input_ids is empty (shape [{b}, {t}])"
        )));
    }
    let ids: Vec<u32> = match input_ids.dtype() {
        DType::U32 => input_ids.flatten_all()?.to_vec1()?,
        DType::I64 => {
            let v: Vec<i64> = input_ids.flatten_all()?.to_vec1()?;
            let mut out = Vec::with_capacity(v.len());
            for x in v {
                out.push(u32::try_from(x).map_err(|_| {
                    Error::InvalidInput(format!("input_ids holds {x}, which is not a token id"))
                })?);
            }
            out
        }
        DType::U8 => input_ids
            .flatten_all()?
            .to_vec1::<u8>()?
            .into_iter()
            .map(u32::from)
            .collect(),
        other => {
            return Err(Error::InvalidInput(format!(
                "input_ids must be u32 or i64, got {other:?}"
            )));
        }
    };
    Ok((ids, (b, t)))
}

/// The additive mask `[b, 1, t, past + t]`: 0 where a query may attend, `f32::MIN` where not,
/// applied once, as transformers' eager attention does (so fully masked rows match too).
fn build_mask(
    attention_mask: Option<&Tensor>,
    causal: bool,
    b: usize,
    t: usize,
    past: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    let tk = past + t;
    let keep: Option<Vec<f32>> = match attention_mask {
        None => None,
        Some(m) => {
            let m = m.to_dtype(DType::F32)?;
            let (mb, mt) = m.dims2().map_err(|_| {
                Error::InvalidInput(format!(
                    "attention_mask must be [batch, seq], got shape {:?}",
                    m.dims()
                ))
            })?;
            if mb != b || mt != tk {
                return Err(Error::InvalidInput(format!(
                    "attention_mask has shape [{mb}, {mt}], expected [{b}, {tk}] (batch, cached + new tokens)"
                )));
            }
            let v: Vec<f32> = m.flatten_all()?.to_vec1()?;
            if v.iter().all(|&x| x != 0.0) {
                None
            } else {
                Some(v)
            }
        }
    };
    if keep.is_none() && (!causal || t == 1) {
        return Ok(None);
    }
    let mut out = vec![0f32; b * t * tk];
    for bi in 0..b {
        for qi in 0..t {
            let row = &mut out[(bi * t + qi) * tk..(bi * t + qi + 1) * tk];
            for (ki, o) in row.iter_mut().enumerate() {
                let future = causal && ki > past + qi;
                let padded = keep.as_ref().is_some_and(|k| k[bi * tk + ki] == 0.0);
                if future || padded {
                    *o = f32::MIN;
                }
            }
        }
    }
    Ok(Some(Tensor::from_vec(out, (b, 1, t, tk), device)?))
}

pub(crate) struct CoreInput<'a> {
    pub input_ids: &'a Tensor,
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
        let (ids, (b, t)) = read_ids(input.input_ids)?;
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let dev = self.embeddings.word.device();
        let mut x = self
            .embeddings
            .forward(&ids, (b, t), input.token_type_ids, past, ctx)?;
        let mask = build_mask(input.attention_mask, self.causal, b, t, past, dev)?
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
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
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
