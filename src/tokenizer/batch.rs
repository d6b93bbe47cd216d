//! `tokenizer(texts, padding=True, truncation=True, return_tensors="pt")`:
//! [`Tokenizer::batch_encode`] to a [`BatchEncoding`] of tensors, and [`Tokenizer::batch_decode`]
//! back from ids or a tensor.
use candle_core::{DType, Device, Tensor};

use super::encode::{DecodeOptions, EncodeOptions, Encoding};
use super::{Tokenizer, tk_err};
use crate::{Error, Result};

/// A tokenised batch, ready for a model: `u32 [batch, seq]` tensors (`ForwardArgs::from(&batch)`
/// feeds them to one), and the per-sequence [`Encoding`]s (tokens, offsets, word ids) for
/// inspection.
#[derive(Clone, Debug)]
pub struct BatchEncoding {
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// Segment ids: 0 for the first text, 1 for the second of a pair.
    pub token_type_ids: Tensor,
    /// One encoding per input, padded like the tensors.
    pub encodings: Vec<Encoding>,
}

impl BatchEncoding {
    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.encodings.len()
    }

    /// True when the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.encodings.is_empty()
    }

    /// The padded sequence length.
    pub fn seq_len(&self) -> usize {
        self.encodings.first().map_or(0, Encoding::len)
    }

    /// The encoding of sequence `i`, or an error naming how many there are.
    pub fn get(&self, i: usize) -> Result<&Encoding> {
        self.encodings.get(i).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "sequence {i} is out of range: the batch holds {} sequences",
                self.encodings.len()
            ))
        })
    }

    /// Moves the tensors to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(BatchEncoding {
            input_ids: self.input_ids.to_device(device)?,
            attention_mask: self.attention_mask.to_device(device)?,
            token_type_ids: self.token_type_ids.to_device(device)?,
            encodings: self.encodings.clone(),
        })
    }

    fn from_encodings(encodings: Vec<Encoding>, device: &Device) -> Result<Self> {
        let b = encodings.len();
        if b == 0 {
            return Err(Error::InvalidArgument(
                "batch_encode: no texts given; pass at least one".into(),
            ));
        }
        let s = encodings[0].len();
        if let Some((i, e)) = encodings.iter().enumerate().find(|(_, e)| e.len() != s) {
            return Err(Error::InvalidArgument(format!(
                "batch_encode: sequence 0 has {s} tokens but sequence {i} has {}; tensors need one length: pad with `EncodeOptions::padded()` (padding=True) or truncate",
                e.len()
            )));
        }
        let flat = |f: &dyn Fn(&Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|e| f(e).iter().copied())
                .collect()
        };
        let input_ids = Tensor::from_vec(flat(&|e| &e.ids), (b, s), device)?;
        let attention_mask = Tensor::from_vec(flat(&|e| &e.attention_mask), (b, s), device)?;
        let token_type_ids = Tensor::from_vec(flat(&|e| &e.type_ids), (b, s), device)?;
        Ok(BatchEncoding {
            input_ids,
            attention_mask,
            token_type_ids,
            encodings,
        })
    }
}

/// Token ids as rows: what [`Tokenizer::batch_decode`] accepts — a `[batch, seq]` (or `[seq]`)
/// tensor of any integer dtype (negative ids, such as -100 labels, are dropped), `Vec<Vec<u32>>`,
/// slices of rows, or a [`BatchEncoding`].
pub trait TokenIds {
    fn token_id_rows(&self) -> Result<Vec<Vec<u32>>>;
}

impl TokenIds for Tensor {
    fn token_id_rows(&self) -> Result<Vec<Vec<u32>>> {
        if self.dtype().is_float() {
            return Err(Error::InvalidArgument(format!(
                "batch_decode: token ids must be an integer tensor (u32 or i64), got {:?}; a float id would be truncated",
                self.dtype()
            )));
        }
        let t = self.to_dtype(DType::I64)?;
        let rows: Vec<Vec<i64>> = match t.rank() {
            1 => vec![t.to_vec1()?],
            2 => t.to_vec2()?,
            r => {
                return Err(Error::InvalidArgument(format!(
                    "batch_decode: expected a [batch, seq] or [seq] tensor of ids, got rank {r} (shape {:?})",
                    self.dims()
                )));
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .filter(|&x| x >= 0)
                    .map(|x| x as u32)
                    .collect()
            })
            .collect())
    }
}

impl TokenIds for [Vec<u32>] {
    fn token_id_rows(&self) -> Result<Vec<Vec<u32>>> {
        Ok(self.to_vec())
    }
}

impl TokenIds for Vec<Vec<u32>> {
    fn token_id_rows(&self) -> Result<Vec<Vec<u32>>> {
        Ok(self.clone())
    }
}

impl TokenIds for [&[u32]] {
    fn token_id_rows(&self) -> Result<Vec<Vec<u32>>> {
        Ok(self.iter().map(|r| r.to_vec()).collect())
    }
}

impl TokenIds for BatchEncoding {
    fn token_id_rows(&self) -> Result<Vec<Vec<u32>>> {
        self.input_ids.token_id_rows()
    }
}

impl Tokenizer {
    /// `tokenizer(texts, return_tensors="pt", ...)`: encodes `texts` with `opts` (use
    /// [`EncodeOptions::padded`] for `padding=True`) into `u32 [batch, seq]` tensors on
    /// `device`. Sequences of different lengths without padding are an error, as in Python.
    pub fn batch_encode<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        opts: &EncodeOptions,
        device: &Device,
    ) -> Result<BatchEncoding> {
        let encodings = self.encode_batch_with(texts, opts)?;
        BatchEncoding::from_encodings(encodings, device)
    }

    /// As [`batch_encode`](Self::batch_encode) for pairs (`tokenizer(a, b)`): `token_type_ids`
    /// are 1 on the second text.
    pub fn batch_encode_pairs<S: AsRef<str> + Sync>(
        &self,
        pairs: &[(S, S)],
        opts: &EncodeOptions,
        device: &Device,
    ) -> Result<BatchEncoding> {
        let encodings = self.encode_pair_batch_with(pairs, opts)?;
        BatchEncoding::from_encodings(encodings, device)
    }

    /// Decodes many sequences (`tokenizer.batch_decode`): from a tensor of ids (`[batch, seq]`),
    /// `Vec<Vec<u32>>`, or a [`BatchEncoding`]. Padding goes with the special tokens under
    /// [`DecodeOptions::SKIP_SPECIAL_TOKENS`].
    pub fn batch_decode<T: TokenIds + ?Sized>(
        &self,
        ids: &T,
        opts: DecodeOptions,
    ) -> Result<Vec<String>> {
        let rows = ids.token_id_rows()?;
        for row in &rows {
            self.check_ids(row)?;
        }
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        self.inner
            .decode_batch(&refs, opts.skip_special_tokens)
            .map_err(tk_err)
    }
}
