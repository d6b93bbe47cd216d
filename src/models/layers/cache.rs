//! The caches of decoding: [`KvCache`] (a decoder's keys and values, written in place) and
//! [`EncoderDecoderCache`] (an encoder–decoder's state while it translates).
use candle_core::Tensor;

use crate::Result;
use crate::kernels;

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
