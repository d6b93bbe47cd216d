//! Encoding: text to ids, with the special tokens, masks, truncation and padding of `AutoTokenizer`.
use super::{Tokenizer, tk_err};
use crate::{Error, Result};
use rayon::prelude::*;
use tokenizers::PostProcessor;
use tokenizers::utils::padding::{PaddingDirection, PaddingParams, PaddingStrategy, pad_encodings};
use tokenizers::utils::truncation::{
    TruncationDirection, TruncationParams, TruncationStrategy, truncate_encodings,
};

/// What to do with a sequence longer than the maximum length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Truncation {
    /// Keep every token (Hugging Face's default when `truncation` is not passed).
    #[default]
    None,
    /// Cut to the maximum length (longest sequence first for pairs), special tokens included.
    Truncate,
    /// Return [`Error::EncodingTooLong`] instead of silently losing text.
    Error,
}

/// How to pad a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// No padding.
    #[default]
    None,
    /// Pad to the longest sequence of the batch (`padding=True`).
    Longest,
    /// Pad to the maximum length (`padding="max_length"`).
    MaxLength,
}

/// Options of [`Tokenizer::encode_with`]; the default matches `tokenizer(text)` in Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add `[CLS] ... [SEP]`, `<s> ... </s>` as the post-processor says (default true).
    pub add_special_tokens: bool,
    /// Maximum length for truncation / `Padding::MaxLength`; `None` uses `model_max_length`.
    pub max_length: Option<usize>,
    pub truncation: Truncation,
    pub padding: Padding,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            add_special_tokens: true,
            max_length: None,
            truncation: Truncation::None,
            padding: Padding::None,
        }
    }
}

impl EncodeOptions {
    /// Truncate to `max_length` tokens.
    pub fn truncate(max_length: usize) -> Self {
        EncodeOptions {
            max_length: Some(max_length),
            truncation: Truncation::Truncate,
            ..Default::default()
        }
    }
}

/// One encoded sequence (or pair), owning its data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    /// Segment ids: 0 for the first sequence, 1 for the second of a pair (BERT's `token_type_ids`).
    pub type_ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Byte offsets `(start, end)` of each token in its input text; `(0, 0)` for special tokens.
    pub offsets: Vec<(usize, usize)>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// 1 for tokens added by the post-processor or padding, 0 for tokens from the text.
    pub special_tokens_mask: Vec<u32>,
    /// Index of the pre-tokenised word each token came from.
    pub word_ids: Vec<Option<u32>>,
}

impl Encoding {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// True when there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl From<tokenizers::Encoding> for Encoding {
    fn from(e: tokenizers::Encoding) -> Self {
        Encoding {
            ids: e.get_ids().to_vec(),
            type_ids: e.get_type_ids().to_vec(),
            tokens: e.get_tokens().to_vec(),
            offsets: e.get_offsets().to_vec(),
            attention_mask: e.get_attention_mask().to_vec(),
            special_tokens_mask: e.get_special_tokens_mask().to_vec(),
            word_ids: e.get_word_ids().to_vec(),
        }
    }
}

impl Tokenizer {
    /// Ids of `text` with the special tokens `AutoTokenizer` adds by default, no truncation.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let e = self.inner.encode_fast(text, true).map_err(tk_err)?;
        Ok(e.get_ids().to_vec())
    }

    /// Ids of `text` without any special token (what goes into token shards).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let e = self.inner.encode_fast(text, false).map_err(tk_err)?;
        Ok(e.get_ids().to_vec())
    }

    /// Encode many texts in parallel (rayon); same ids as [`Tokenizer::encode`].
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        texts.par_iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Full encoding of one text: offsets, masks, truncation and padding as asked.
    pub fn encode_with(&self, text: &str, opts: &EncodeOptions) -> Result<Encoding> {
        let mut e = self.encode_raw(text, None, opts)?;
        self.pad(std::slice::from_mut(&mut e), opts)?;
        Ok(e.into())
    }

    /// Full encoding of a pair (`tokenizer(a, b)`): `[CLS] a [SEP] b [SEP]` for BERT.
    pub fn encode_pair(&self, a: &str, b: &str, opts: &EncodeOptions) -> Result<Encoding> {
        let mut e = self.encode_raw(a, Some(b), opts)?;
        self.pad(std::slice::from_mut(&mut e), opts)?;
        Ok(e.into())
    }

    /// Full encodings of many texts in parallel; `Padding::Longest` pads to the batch's longest.
    pub fn encode_batch_with<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        opts: &EncodeOptions,
    ) -> Result<Vec<Encoding>> {
        let mut encs: Vec<tokenizers::Encoding> = texts
            .par_iter()
            .map(|t| self.encode_raw(t.as_ref(), None, opts))
            .collect::<Result<_>>()?;
        self.pad(&mut encs, opts)?;
        Ok(encs.into_iter().map(Encoding::from).collect())
    }

    /// Full encodings of pairs in parallel.
    pub fn encode_pair_batch_with<S: AsRef<str> + Sync>(
        &self,
        pairs: &[(S, S)],
        opts: &EncodeOptions,
    ) -> Result<Vec<Encoding>> {
        let mut encs: Vec<tokenizers::Encoding> = pairs
            .par_iter()
            .map(|(a, b)| self.encode_raw(a.as_ref(), Some(b.as_ref()), opts))
            .collect::<Result<_>>()?;
        self.pad(&mut encs, opts)?;
        Ok(encs.into_iter().map(Encoding::from).collect())
    }

    fn max_length(&self, opts: &EncodeOptions) -> Result<usize> {
        opts.max_length.or(self.model_max_length).ok_or_else(|| {
            Error::InvalidArgument(
                "truncation or max-length padding needs a maximum length: set EncodeOptions::max_length (the tokenizer has no model_max_length)".into(),
            )
        })
    }

    /// Encode, then truncate (or refuse) as `opts.truncation` says; the pipeline itself never
    /// holds truncation or padding state, so one `Tokenizer` serves every option concurrently.
    fn encode_raw(
        &self,
        a: &str,
        b: Option<&str>,
        opts: &EncodeOptions,
    ) -> Result<tokenizers::Encoding> {
        let add = opts.add_special_tokens;
        let full = match b {
            None => self.inner.encode(a, add),
            Some(b) => self.inner.encode((a, b), add),
        }
        .map_err(tk_err)?;
        if opts.truncation == Truncation::None {
            return Ok(full);
        }
        let max_length = self.max_length(opts)?;
        if full.len() <= max_length {
            return Ok(full);
        }
        if opts.truncation == Truncation::Error {
            return Err(Error::EncodingTooLong {
                length: full.len(),
                max_length,
            });
        }
        // Same steps as `TokenizerImpl::post_process` with truncation set: encode each sequence
        // bare, cut them leaving room for the special tokens, then post-process.
        let first = self.inner.encode(a, false).map_err(tk_err)?;
        let second = match b {
            Some(b) => {
                let mut e = self.inner.encode(b, false).map_err(tk_err)?;
                e.set_type_ids(vec![1; e.len()]);
                Some(e)
            }
            None => None,
        };
        let processor = self.inner.get_post_processor();
        let n_added = match (add, processor) {
            (true, Some(p)) => p.added_tokens(second.is_some()),
            _ => 0,
        };
        if n_added >= max_length {
            return Err(Error::InvalidArgument(format!(
                "max_length {max_length} leaves no room for text after {n_added} special tokens"
            )));
        }
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_length - n_added,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        let (first, second) = truncate_encodings(first, second, &params).map_err(tk_err)?;
        match processor {
            Some(p) => p.process(first, second, add).map_err(tk_err),
            None => {
                let mut v = vec![first];
                v.extend(second);
                let mut merged = <dyn PostProcessor>::default_process(v, add).map_err(tk_err)?;
                merged
                    .pop()
                    .ok_or_else(|| Error::Tokenizer("post-processing returned nothing".into()))
            }
        }
    }

    fn pad(&self, encs: &mut [tokenizers::Encoding], opts: &EncodeOptions) -> Result<()> {
        let strategy = match opts.padding {
            Padding::None => return Ok(()),
            Padding::Longest => PaddingStrategy::BatchLongest,
            Padding::MaxLength => PaddingStrategy::Fixed(self.max_length(opts)?),
        };
        let (pad_id, pad_token) = match (&self.special.pad_token, self.pad_token_id()) {
            (Some(t), Some(id)) => (id, t.clone()),
            _ => {
                return Err(Error::InvalidArgument(
                    "padding needs a pad token and this tokenizer has none (GPT-2 has none); set one with `with_special_tokens(SpecialTokens { pad_token: tok.special_tokens().eos_token.clone(), ..tok.special_tokens().clone() })`".into(),
                ));
            }
        };
        let params = PaddingParams {
            strategy,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token,
        };
        pad_encodings(encs, &params).map_err(tk_err)
    }
}
