//! The attention probabilities of a model on one text, held on the host as plain numbers with the
//! tokens they belong to: built from `[heads, q, k]` / `[batch, heads, q, k]` tensors or straight
//! from a model call, then drawn by `attention_view` (one head, a layer's grid, an overview).
//! Padding is left out here, once, so no chart has to know about it.
use candle_core::{DType, Device, Tensor};

use crate::models::{
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, ForwardArgs,
};
use crate::tokenizer::{EncodeOptions, Tokenizer};
use crate::{Error, Result};

/// Attention probabilities of every layer and head for one sequence, with its tokens.
///
/// ```
/// use massivetext::prelude::*;
/// // one layer, two heads, three tokens
/// let p = Tensor::new(&[[[1.0f32, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]],
///                       [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.8, 0.1, 0.1]]], &Device::Cpu)?;
/// let map = AttentionMap::from_tensor(&p, &["The", "Ġcat", "Ġsat"])?;
/// assert!(map.is_causal());
/// assert!((map.head_stats()[1].first_token - 0.85).abs() < 1e-6);
/// let svg = map.head(0, 0)?.to_svg()?;
/// assert!(svg.contains("␣cat"));
/// # Ok::<(), massivetext::Error>(())
/// ```
#[derive(Clone)]
pub struct AttentionMap {
    /// Per layer, `heads × q × k` row-major.
    layers: Vec<Vec<f32>>,
    heads: usize,
    q: usize,
    k: usize,
    /// One per key; the queries are the last `q` of them, unless `queries` names them.
    tokens: Vec<String>,
    /// Cross-attention (a decoder's tokens onto an encoder's): the query tokens, which are not
    /// among the keys.
    queries: Option<Vec<String>>,
    causal: bool,
}

/// The attention of an encoder–decoder on one translation ([`AttentionMap::translation`]): each
/// side's self-attention and the cross-attention from the target onto the source, each drawn
/// like any other map (`cross.head(layer, head)`: target tokens as rows, source tokens as
/// columns).
#[derive(Clone, Debug)]
pub struct TranslationAttention {
    pub encoder: AttentionMap,
    pub decoder: AttentionMap,
    pub cross: AttentionMap,
}

/// What one head does, summarised so interesting heads can be found among many.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadStats {
    pub layer: usize,
    pub head: usize,
    /// Mean over queries of the entropy of their attention row, in nats (0 = all on one token;
    /// ln(n) = spread evenly over n tokens).
    pub entropy: f64,
    /// Mean attention a query gives the token just before it (queries after the first).
    pub prev_token: f64,
    /// Mean attention a query gives the first token (queries after the first): the "attention
    /// sink" many trained heads park unused probability on.
    pub first_token: f64,
}

/// Models that can return their attention probabilities.
pub trait AttentionSource {
    /// Per layer, `[batch, heads, q, k]`.
    fn attentions(&self, args: &ForwardArgs) -> Result<Vec<Tensor>>;
    fn device(&self) -> &Device;
}

fn need(a: Option<Vec<Tensor>>) -> Result<Vec<Tensor>> {
    a.ok_or_else(|| {
        Error::InvalidArgument(
            "the model returned no attentions although they were asked for".into(),
        )
    })
}

impl AttentionSource for AutoModelForCausalLM {
    fn attentions(&self, args: &ForwardArgs) -> Result<Vec<Tensor>> {
        need(
            self.forward_with(&args.clone().output_attentions(true))?
                .attentions,
        )
    }
    fn device(&self) -> &Device {
        AutoModelForCausalLM::device(self)
    }
}

impl AttentionSource for AutoModelForMaskedLM {
    fn attentions(&self, args: &ForwardArgs) -> Result<Vec<Tensor>> {
        need(
            self.forward_with(&args.clone().output_attentions(true))?
                .attentions,
        )
    }
    fn device(&self) -> &Device {
        AutoModelForMaskedLM::device(self)
    }
}

impl AttentionSource for AutoModel {
    fn attentions(&self, args: &ForwardArgs) -> Result<Vec<Tensor>> {
        need(
            self.forward_with(&args.clone().output_attentions(true))?
                .attentions,
        )
    }
    fn device(&self) -> &Device {
        AutoModel::device(self)
    }
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

impl AttentionMap {
    /// One layer's probabilities, `[heads, q, k]` (or `[1, heads, q, k]`), with one token per key.
    pub fn from_tensor<S: AsRef<str>>(probs: &Tensor, tokens: &[S]) -> Result<Self> {
        match probs.dims() {
            [_, _, _] => Self::from_attentions(std::slice::from_ref(probs), 0, tokens, None),
            [1, _, _, _] => Self::from_attentions(std::slice::from_ref(probs), 0, tokens, None),
            [b, _, _, _] => Err(Error::InvalidArgument(format!(
                "the attention tensor holds a batch of {b} sequences; pick one with AttentionMap::from_tensor_batch(probs, batch_index, tokens)"
            ))),
            d => Err(Error::InvalidArgument(format!(
                "attention probabilities must be [heads, q, k] or [batch, heads, q, k], got shape {d:?}"
            ))),
        }
    }

    /// One layer's `[batch, heads, q, k]` probabilities, sequence `batch_index`.
    pub fn from_tensor_batch<S: AsRef<str>>(
        probs: &Tensor,
        batch_index: usize,
        tokens: &[S],
    ) -> Result<Self> {
        Self::from_attentions(std::slice::from_ref(probs), batch_index, tokens, None)
    }

    /// All layers as a model returns them (`ModelOutput::attentions`: per layer
    /// `[batch, heads, q, k]`, or `[heads, q, k]`), sequence `batch_index`, with one token per
    /// key position. Positions where `attention_mask` is 0 (padding) are left out of rows and
    /// columns.
    pub fn from_attentions<S: AsRef<str>>(
        attentions: &[Tensor],
        batch_index: usize,
        tokens: &[S],
        attention_mask: Option<&[u32]>,
    ) -> Result<Self> {
        Self::from_layers(attentions, batch_index, tokens, None, attention_mask)
    }

    /// Cross-attention as an encoder–decoder returns it (`Seq2SeqLMOutput::cross_attentions`:
    /// per decoder layer `[batch, heads, target, source]`), sequence `batch_index`: the rows are
    /// the target (decoder) tokens, the columns the source (encoder) tokens. Source positions
    /// where `source_mask` is 0 (padding) are left out.
    pub fn from_cross_attentions<S: AsRef<str>, T: AsRef<str>>(
        attentions: &[Tensor],
        batch_index: usize,
        source_tokens: &[S],
        target_tokens: &[T],
        source_mask: Option<&[u32]>,
    ) -> Result<Self> {
        let targets: Vec<String> = target_tokens
            .iter()
            .map(|t| t.as_ref().to_string())
            .collect();
        Self::from_layers(
            attentions,
            batch_index,
            source_tokens,
            Some(targets),
            source_mask,
        )
    }

    fn from_layers<S: AsRef<str>>(
        attentions: &[Tensor],
        batch_index: usize,
        tokens: &[S],
        queries: Option<Vec<String>>,
        attention_mask: Option<&[u32]>,
    ) -> Result<Self> {
        if attentions.is_empty() {
            return Err(Error::InvalidArgument(
                "no attention tensors given; call the model with ForwardArgs::new(&ids).output_attentions(true)".into(),
            ));
        }
        let mut layers = Vec::with_capacity(attentions.len());
        let mut shape: Option<(usize, usize, usize)> = None;
        for (l, t) in attentions.iter().enumerate() {
            let t = match t.dims() {
                [_, _, _] => {
                    if batch_index != 0 {
                        return Err(Error::InvalidArgument(format!(
                            "batch index {batch_index} asked of a [heads, q, k] tensor, which holds one sequence"
                        )));
                    }
                    t.clone()
                }
                [b, _, _, _] => {
                    if batch_index >= *b {
                        return Err(Error::InvalidArgument(format!(
                            "batch index {batch_index} is out of range: the attentions hold {b} sequences"
                        )));
                    }
                    t.get(batch_index)?
                }
                d => {
                    return Err(Error::InvalidArgument(format!(
                        "attention of layer {l} must be [heads, q, k] or [batch, heads, q, k], got shape {d:?}"
                    )));
                }
            };
            let (h, q, k) = t.dims3()?;
            match shape {
                None => shape = Some((h, q, k)),
                Some(s) if s != (h, q, k) => {
                    return Err(Error::InvalidArgument(format!(
                        "attention of layer {l} is [{h}, {q}, {k}] but layer 0 is [{}, {}, {}]",
                        s.0, s.1, s.2
                    )));
                }
                _ => {}
            }
            let v = host_f32(&t)?;
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "attention of layer {l} holds a non-finite value ({}) at flat index {i}",
                    v[i]
                )));
            }
            layers.push(v);
        }
        let (heads, q, k) = shape.unwrap_or((0, 0, 0));
        if heads == 0 || q == 0 || k == 0 || (q > k && queries.is_none()) {
            return Err(Error::InvalidArgument(format!(
                "attention of shape [{heads}, {q}, {k}] cannot be drawn: need at least one head, query and key, and no more queries than keys"
            )));
        }
        if let Some(qt) = &queries
            && qt.len() != q
        {
            return Err(Error::InvalidArgument(format!(
                "{} target tokens given for cross-attention over {q} query positions; give one token per decoder position",
                qt.len()
            )));
        }
        if tokens.len() != k {
            return Err(Error::InvalidArgument(format!(
                "{} tokens given for attention over {k} key positions; give one token per position (padding included)",
                tokens.len()
            )));
        }
        let mut map = AttentionMap {
            layers,
            heads,
            q,
            k,
            tokens: tokens.iter().map(|s| s.as_ref().to_string()).collect(),
            queries,
            causal: false,
        };
        if let Some(mask) = attention_mask {
            if mask.len() != k {
                return Err(Error::InvalidArgument(format!(
                    "the attention mask has {} positions but the attention has {k} keys",
                    mask.len()
                )));
            }
            map = map.keep_positions(mask)?;
        }
        map.causal = map.detect_causal();
        Ok(map)
    }

    /// Runs `model` on `text` (encoded by `tok` with its special tokens) and keeps every layer's
    /// attention.
    pub fn from_model<M: AttentionSource>(model: &M, tok: &Tokenizer, text: &str) -> Result<Self> {
        let enc = tok.encode_with(text, &EncodeOptions::default())?;
        Self::from_model_ids(model, &enc.ids, &enc.tokens)
    }

    /// Runs `model` on token `ids` and labels the positions with `tokens`.
    pub fn from_model_ids<M: AttentionSource, S: AsRef<str>>(
        model: &M,
        ids: &[u32],
        tokens: &[S],
    ) -> Result<Self> {
        if ids.is_empty() {
            return Err(Error::InvalidArgument(
                "no token ids to run the model on".into(),
            ));
        }
        if ids.len() != tokens.len() {
            return Err(Error::InvalidArgument(format!(
                "{} token ids but {} token labels; give one label per id",
                ids.len(),
                tokens.len()
            )));
        }
        let input = Tensor::from_slice(ids, (1, ids.len()), model.device())?;
        let att = model.attentions(&ForwardArgs::new(&input))?;
        Self::from_attentions(&att, 0, tokens, None)
    }

    /// Runs an encoder–decoder on one source (`source_ids`, labelled `source_tokens`) and the
    /// decoder inputs `target_ids` (starting with the decoder start token, as `generate_with`
    /// returns them; labelled `target_tokens`) and keeps its three kinds of attention: the
    /// encoder's self-attention, the decoder's (causal) self-attention, and the cross-attention
    /// of each target token onto the source: the translation's alignment.
    pub fn translation<S: AsRef<str>, T: AsRef<str>>(
        model: &AutoModelForSeq2SeqLM,
        (source_ids, source_tokens): (&[u32], &[S]),
        (target_ids, target_tokens): (&[u32], &[T]),
    ) -> Result<TranslationAttention> {
        for (what, ids, labels) in [
            ("source", source_ids.len(), source_tokens.len()),
            ("target", target_ids.len(), target_tokens.len()),
        ] {
            if ids == 0 {
                return Err(Error::InvalidArgument(format!("no {what} token ids")));
            }
            if ids != labels {
                return Err(Error::InvalidArgument(format!(
                    "{ids} {what} token ids but {labels} {what} token labels; give one label per id"
                )));
            }
        }
        let dev = model.device();
        let src = Tensor::from_slice(source_ids, (1, source_ids.len()), dev)?;
        let tgt = Tensor::from_slice(target_ids, (1, target_ids.len()), dev)?;
        let args = ForwardArgs::new(&src)
            .decoder_input_ids(&tgt)
            .output_attentions(true);
        let out = model.forward_with(&args)?;
        Ok(TranslationAttention {
            encoder: Self::from_attentions(&need(out.encoder_attentions)?, 0, source_tokens, None)?,
            decoder: Self::from_attentions(&need(out.decoder_attentions)?, 0, target_tokens, None)?,
            cross: Self::from_cross_attentions(
                &need(out.cross_attentions)?,
                0,
                source_tokens,
                target_tokens,
                None,
            )?,
        })
    }

    /// Keeps the key positions (and, unless the queries are another sequence's, the queries
    /// among them) where `mask` is non-zero.
    fn keep_positions(self, mask: &[u32]) -> Result<Self> {
        let keep_k: Vec<usize> = (0..self.k).filter(|&j| mask[j] != 0).collect();
        let keep_q: Vec<usize> = match &self.queries {
            Some(_) => (0..self.q).collect(),
            None => {
                let off = self.k - self.q;
                (0..self.q).filter(|&i| mask[off + i] != 0).collect()
            }
        };
        if keep_k.is_empty() || keep_q.is_empty() {
            return Err(Error::InvalidArgument(
                "the attention mask is all zeros: no real token is left to draw".into(),
            ));
        }
        let (h, q, k) = (self.heads, self.q, self.k);
        let layers = self
            .layers
            .iter()
            .map(|v| {
                let mut out = Vec::with_capacity(h * keep_q.len() * keep_k.len());
                for hh in 0..h {
                    for &i in &keep_q {
                        for &j in &keep_k {
                            out.push(v[(hh * q + i) * k + j]);
                        }
                    }
                }
                out
            })
            .collect();
        Ok(AttentionMap {
            layers,
            heads: h,
            q: keep_q.len(),
            k: keep_k.len(),
            tokens: keep_k.iter().map(|&j| self.tokens[j].clone()).collect(),
            queries: self.queries,
            causal: false,
        })
    }

    /// Causal when every query gives exactly zero to every later key, in every layer and head
    /// (what a decoder's mask produces after softmax).
    fn detect_causal(&self) -> bool {
        if self.k < 2 || self.queries.is_some() {
            return false;
        }
        let off = self.k - self.q;
        if self.k < 2 {
            return false;
        }
        self.layers.iter().all(|v| {
            (0..self.heads).all(|h| {
                (0..self.q).all(|i| {
                    ((off + i + 1)..self.k).all(|j| v[(h * self.q + i) * self.k + j] == 0.0)
                })
            })
        })
    }

    /// Forces the causal reading on or off (cells after the query drawn as masked).
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    pub fn is_causal(&self) -> bool {
        self.causal
    }
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
    pub fn num_heads(&self) -> usize {
        self.heads
    }
    /// Number of query positions (rows).
    pub fn num_queries(&self) -> usize {
        self.q
    }
    /// Number of key positions (columns).
    pub fn num_keys(&self) -> usize {
        self.k
    }
    /// One token per key position (padding removed).
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
    /// The tokens of the query rows (the last `num_queries` tokens; a cross-attention map's
    /// target tokens).
    pub fn query_tokens(&self) -> &[String] {
        match &self.queries {
            Some(q) => q,
            None => &self.tokens[self.k - self.q..],
        }
    }

    /// Whether the rows are another sequence's tokens (cross-attention).
    pub fn is_cross(&self) -> bool {
        self.queries.is_some()
    }

    fn check(&self, layer: usize, head: usize) -> Result<()> {
        if layer >= self.layers.len() {
            return Err(Error::InvalidArgument(format!(
                "layer {layer} does not exist: the model has {} layers (0..{})",
                self.layers.len(),
                self.layers.len()
            )));
        }
        if head >= self.heads {
            return Err(Error::InvalidArgument(format!(
                "head {head} does not exist: each layer has {} heads (0..{})",
                self.heads, self.heads
            )));
        }
        Ok(())
    }

    /// Row-major `q × k` probabilities of one head.
    pub fn probs(&self, layer: usize, head: usize) -> Result<&[f32]> {
        self.check(layer, head)?;
        let n = self.q * self.k;
        Ok(&self.layers[layer][head * n..(head + 1) * n])
    }

    /// True when cell (query `i`, key `j`) is masked: after the query in a causal map.
    pub fn is_masked(&self, i: usize, j: usize) -> bool {
        self.causal && self.queries.is_none() && j > self.k - self.q + i
    }

    /// Entropy, previous-token and first-token attention of every head, layer by layer. In a
    /// cross-attention map a query's "previous token" is the source token at its own position
    /// less one (a diagonal, monotonic alignment reads high).
    pub fn head_stats(&self) -> Vec<HeadStats> {
        let off = self.k.saturating_sub(self.q);
        let mut out = Vec::with_capacity(self.layers.len() * self.heads);
        for (l, v) in self.layers.iter().enumerate() {
            for h in 0..self.heads {
                let (mut ent, mut prev, mut first, mut n_later) = (0.0, 0.0, 0.0, 0usize);
                for i in 0..self.q {
                    let row = &v[(h * self.q + i) * self.k..(h * self.q + i + 1) * self.k];
                    ent -= row
                        .iter()
                        .filter(|&&p| p > 0.0)
                        .map(|&p| p as f64 * (p as f64).ln())
                        .sum::<f64>();
                    let pos = if self.queries.is_some() { i } else { off + i };
                    if pos >= 1 && pos <= self.k {
                        prev += row[pos - 1] as f64;
                        first += row[0] as f64;
                        n_later += 1;
                    }
                }
                let d = n_later.max(1) as f64;
                out.push(HeadStats {
                    layer: l,
                    head: h,
                    entropy: ent / self.q as f64,
                    prev_token: prev / d,
                    first_token: first / d,
                });
            }
        }
        out
    }
}

impl std::fmt::Debug for AttentionMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttentionMap")
            .field("layers", &self.layers.len())
            .field("heads", &self.heads)
            .field("queries", &self.q)
            .field("keys", &self.k)
            .field("causal", &self.causal)
            .field("tokens", &self.tokens)
            .field("query_tokens", &self.queries)
            .finish()
    }
}
