//! The caches of decoding: [`KvCache`] (a decoder's keys and values, written in place) and
//! [`EncoderDecoderCache`] (an encoder–decoder's state while it translates).
use candle_core::Tensor;

use crate::kernels;
use crate::{Error, Result};

/// Keys and values of every layer for the tokens processed so far, for fast decoding: feed the
/// prompt once, then one token at a time. Each layer's buffer is allocated once for
/// [`with_capacity`](Self::with_capacity) positions (or grown by doubling), and new tokens are
/// written into place: no concatenation per step.
#[derive(Default)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<Tensor>>,
    pub(crate) len: usize,
    pub(crate) reserve: usize,
    /// Beam search's record of what each row holds: per row, for each filled position, the
    /// write whose keys and values sit there (a number given once per row and position written,
    /// carried along when [`reorder`](Self::reorder) copies a row). Two rows with the same
    /// number at a position hold the same keys and values there, so a reorder copies a row
    /// only from the first position where it differs from its source: beams share most of
    /// their past, and copying all of it every step was the largest cost of beam search
    /// beyond the model. Filled in lazily, at each reorder.
    origins: Vec<Vec<u64>>,
    /// The next write's number.
    stamp: u64,
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
            origins: self.origins.clone(),
            stamp: self.stamp,
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
        self.origins.clear();
    }
    /// Beam search: row `i` of the cache becomes old row `rows[i]`. Nothing is copied when the
    /// rows stay where they are, and a row that moves is copied only from the first position
    /// where it differs from its new source (where their beams parted).
    pub fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        if rows.iter().enumerate().all(|(i, &r)| r as usize == i) {
            return Ok(());
        }
        if let Some(&r) = rows.iter().find(|&&r| r as usize >= rows.len()) {
            return Err(Error::InvalidArgument(format!(
                "KvCache::reorder: row {r} of {} rows",
                rows.len()
            )));
        }
        self.record(rows.len());
        let from: Vec<usize> = (rows.iter().enumerate())
            .map(|(i, &r)| {
                let (mine, theirs) = (&self.origins[i], &self.origins[r as usize]);
                mine.iter().zip(theirs).take_while(|(a, b)| a == b).count()
            })
            .collect();
        for t in self.layers.iter_mut().flatten() {
            *t = kernels::kv_cache_reorder(t, rows, &from, self.len)?;
        }
        self.origins = rows
            .iter()
            .map(|&r| self.origins[r as usize].clone())
            .collect();
        Ok(())
    }

    /// Numbers the positions written since the last reorder (each row's own writes), for
    /// `rows` rows; starts afresh when the number of rows changed.
    fn record(&mut self, rows: usize) {
        if self.origins.len() != rows {
            self.origins = vec![Vec::new(); rows];
        }
        for o in &mut self.origins {
            o.truncate(self.len);
            while o.len() < self.len {
                o.push(self.stamp);
                self.stamp += 1;
            }
        }
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, IndexOp, Tensor};

    use super::KvCache;
    use crate::kernels;

    /// A beam search's life of a cache: every step each row writes a new position, then the
    /// rows are reordered (beams copied, swapped, kept). The reorders that copy only where
    /// rows differ leave the cache as a full gather of the rows at every step would.
    #[test]
    fn reorders_that_skip_shared_positions_equal_full_gathers() {
        let (b, heads, hd, steps) = (4, 2, 3, 12);
        let h = heads * hd;
        let mut cache = KvCache::with_capacity(steps + 2);
        let kv = Tensor::zeros(
            (2, b, heads, steps + 2, hd),
            candle_core::DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        cache.layers = vec![Some(kv)];
        let mut want: Option<Tensor> = None;
        let orders: [[u32; 4]; 6] = [
            [0, 0, 0, 0],
            [0, 1, 1, 3],
            [1, 0, 2, 2],
            [0, 1, 2, 3],
            [3, 3, 0, 1],
            [2, 0, 1, 0],
        ];
        for step in 0..steps {
            // each row writes its position (keys and values differ per row, step and lane)
            let t = if step == 0 { 2 } else { 1 };
            let qkv: Vec<f32> = (0..b * t * 3 * h)
                .map(|i| (step * 1000 + i) as f32)
                .collect();
            let qkv = Tensor::from_vec(qkv, (b, t, 3 * h), &Device::Cpu).unwrap();
            let kv = cache.layers[0].clone().unwrap();
            kernels::kv_cache_write(&kv, &qkv, heads, cache.len).unwrap();
            let reference = match want.take() {
                None => kv.copy().unwrap(),
                Some(w) => {
                    kernels::kv_cache_write(&w, &qkv, heads, cache.len).unwrap();
                    w
                }
            };
            cache.len += t;
            let rows = orders[step % orders.len()];
            cache.reorder(&rows).unwrap();
            let idx = Tensor::new(&rows, &Device::Cpu).unwrap();
            let reference = reference.index_select(&idx, 1).unwrap();
            let filled = |t: &Tensor| {
                (t.i((.., .., .., 0..cache.len))
                    .unwrap()
                    .flatten_all()
                    .unwrap())
                .to_vec1::<f32>()
                .unwrap()
            };
            let got = cache.layers[0].as_ref().unwrap();
            assert_eq!(
                filled(got),
                filled(&reference),
                "step {step}, rows {rows:?}"
            );
            want = Some(reference);
        }
    }
}
