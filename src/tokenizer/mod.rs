//! Tokenizers: a thin, owned face over the Hugging Face `tokenizers` crate.
//!
//! ```
//! use massivetext::prelude::*;
//! let texts = ["the cat sat on the mat", "the dog sat on the log"];
//! let tok = Tokenizer::train(TokenizerKind::WordPiece, texts.iter(), &TrainOptions::new(60)).unwrap();
//! let ids = tok.encode("the cat sat").unwrap();
//! assert_eq!(ids.first().copied(), tok.cls_token_id()); // [CLS] ... [SEP], as BERT adds them
//! assert_eq!(tok.decode(&ids, DecodeOptions::SKIP_SPECIAL_TOKENS).unwrap(), "the cat sat");
//! ```
//!
//! Loading (`from_pretrained`) understands `tokenizer.json` and the legacy `vocab.txt` (BERT) and
//! `vocab.json` + `merges.txt` (GPT-2, RoBERTa) layouts, building the same pipeline that
//! `transformers.AutoTokenizer` builds, so the ids match Python's exactly.
mod added;
mod batch;
mod chat;
pub mod dataset;
mod encode;
mod gguf;
mod gguf_sentencepiece;
mod pretrained;
pub mod shards;
mod show;
mod train;
mod train_order;

pub use batch::{BatchEncoding, TokenIds};
pub use chat::ChatMessage;
pub use encode::{DecodeOptions, EncodeOptions, Encoding, Padding, PaddingSide, Truncation};

pub use shards::{
    BuildReport, Dtype, ShardBuildOptions, ShardManifest, TokenShards, WindowSampler,
};
pub use train::{TokenizerKind, TrainOptions};

use crate::{Error, Result};
use std::sync::Arc;

/// The tokens that play a named role (`[CLS]`, `<s>`, `<|endoftext|>`, ...), as strings.
///
/// Hugging Face keeps these next to the model in `tokenizer_config.json` /
/// `special_tokens_map.json`; we keep them next to the pipeline for the same reason: the
/// pipeline alone cannot tell which token is the padding or the end of a document.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecialTokens {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unk_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sep_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cls_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_token: Option<String>,
}

impl SpecialTokens {
    /// The role tokens in Hugging Face's order (bos, eos, unk, sep, pad, cls, mask), deduplicated.
    pub fn all(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in [
            &self.bos_token,
            &self.eos_token,
            &self.unk_token,
            &self.sep_token,
            &self.pad_token,
            &self.cls_token,
            &self.mask_token,
        ]
        .into_iter()
        .flatten()
        {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

/// A tokenizer: normaliser, pre-tokeniser, model (BPE / WordPiece / Unigram), post-processor and
/// decoder, plus the named special tokens. Cloning is cheap (the pipeline sits behind an `Arc`).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<tokenizers::Tokenizer>,
    special: SpecialTokens,
    /// The longest input the model accepts (`model_max_length`), when known.
    model_max_length: Option<usize>,
    /// The Hugging Face class this tokenizer behaves like (`GPT2Tokenizer`, `BertTokenizer`, ...).
    tokenizer_class: String,
    /// Extra keys for `tokenizer_config.json` (`do_lower_case`, `add_prefix_space`, ...).
    config_extra: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("class", &self.tokenizer_class)
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .field("model_max_length", &self.model_max_length)
            .finish()
    }
}

pub(crate) fn tk_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Wrap a `tokenizers::Tokenizer` built elsewhere; the special tokens are guessed from the
    /// vocabulary (see [`Tokenizer::with_special_tokens`] to set them).
    pub fn from_tokenizers(inner: tokenizers::Tokenizer) -> Self {
        let special = pretrained::guess_special_tokens(&inner);
        Tokenizer {
            inner: Arc::new(inner),
            special,
            model_max_length: None,
            tokenizer_class: "PreTrainedTokenizerFast".into(),
            config_extra: Default::default(),
        }
    }

    pub(crate) fn from_parts(
        inner: tokenizers::Tokenizer,
        special: SpecialTokens,
        model_max_length: Option<usize>,
        tokenizer_class: &str,
        config_extra: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Tokenizer {
            inner: Arc::new(inner),
            special,
            model_max_length,
            tokenizer_class: tokenizer_class.to_string(),
            config_extra,
        }
    }

    /// The underlying `tokenizers::Tokenizer`, for anything this face does not cover.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The named special tokens.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Replace the named special tokens (e.g. give GPT-2 a pad token: `pad_token: eos`).
    /// Every token must be in the vocabulary.
    pub fn with_special_tokens(mut self, special: SpecialTokens) -> Result<Self> {
        for t in special.all() {
            if self.inner.token_to_id(&t).is_none() {
                return Err(Error::Tokenizer(format!(
                    "special token `{t}` is not in the vocabulary"
                )));
            }
        }
        self.special = special;
        Ok(self)
    }

    /// The Hugging Face class this tokenizer reproduces.
    pub fn tokenizer_class(&self) -> &str {
        &self.tokenizer_class
    }

    /// `model_max_length` from `tokenizer_config.json`, when it was given.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// Set the maximum length used by [`Truncation::Truncate`] / [`Truncation::Error`] when an
    /// [`EncodeOptions`] gives none.
    pub fn with_model_max_length(mut self, max_length: usize) -> Self {
        self.model_max_length = Some(max_length);
        self
    }

    /// Number of tokens, added special tokens included (Python's `len(tokenizer)`).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of `token`, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of `id`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    fn role_id(&self, t: &Option<String>) -> Option<u32> {
        t.as_deref().and_then(|t| self.inner.token_to_id(t))
    }
    /// Padding id (`[PAD]`, `<pad>`); GPT-2 has none.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.role_id(&self.special.pad_token)
    }
    /// Mask id for masked-LM (`[MASK]`, `<mask>`).
    pub fn mask_token_id(&self) -> Option<u32> {
        self.role_id(&self.special.mask_token)
    }
    /// Classifier id (`[CLS]`, `<s>`).
    pub fn cls_token_id(&self) -> Option<u32> {
        self.role_id(&self.special.cls_token)
    }
    /// Separator id (`[SEP]`, `</s>`).
    pub fn sep_token_id(&self) -> Option<u32> {
        self.role_id(&self.special.sep_token)
    }
    /// Beginning-of-sequence id (`<s>`, `<|endoftext|>`).
    pub fn bos_token_id(&self) -> Option<u32> {
        self.role_id(&self.special.bos_token)
    }
    /// End-of-sequence id (`</s>`, `<|endoftext|>`).
    pub fn eos_token_id(&self) -> Option<u32> {
        self.role_id(&self.special.eos_token)
    }
    /// Unknown-token id.
    pub fn unk_token_id(&self) -> Option<u32> {
        self.role_id(&self.special.unk_token)
    }

    /// The id written between documents in token shards: eos, else sep, else none.
    pub fn document_separator_id(&self) -> Option<u32> {
        self.eos_token_id().or_else(|| self.sep_token_id())
    }

    /// A stable fingerprint of the whole pipeline: FNV-1a 64 of its `tokenizer.json`, in hex.
    /// Token shards record it so that shards are never read with another tokenizer.
    pub fn fingerprint(&self) -> Result<String> {
        let json = self.inner.to_string(false).map_err(tk_err)?;
        Ok(format!("{:016x}", fnv1a64(json.as_bytes())))
    }

    /// Decode ids to text (`tokenizer.decode(ids, skip_special_tokens=...)`), e.g.
    /// `tok.decode(&ids, DecodeOptions::SKIP_SPECIAL_TOKENS)` for the text without `[CLS]`,
    /// `</s>` or padding.
    ///
    /// An id outside the vocabulary is an error ([`Error::TokenOutOfVocab`]) where transformers
    /// (and the `tokenizers` crate) drop it silently: such an id means the ids came from another
    /// tokenizer or a model with a larger vocabulary, and text with pieces quietly missing
    /// would hide that.
    pub fn decode(&self, ids: &[u32], opts: DecodeOptions) -> Result<String> {
        self.check_ids(ids)?;
        self.inner
            .decode(ids, opts.skip_special_tokens)
            .map_err(tk_err)
    }

    /// Every id names a token of the vocabulary (added tokens included).
    pub(crate) fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            Some(&id) => Err(Error::TokenOutOfVocab {
                id,
                vocab_size: self.vocab_size(),
            }),
            None => Ok(()),
        }
    }

    /// Which side padding goes on unless [`EncodeOptions::padding_side`] says otherwise:
    /// `padding_side` from `tokenizer_config.json`, else right.
    pub fn padding_side(&self) -> PaddingSide {
        match self
            .config_extra
            .get("padding_side")
            .and_then(|v| v.as_str())
        {
            Some("left") => PaddingSide::Left,
            _ => PaddingSide::Right,
        }
    }

    /// Sets the default padding side (saved in `tokenizer_config.json`).
    pub fn with_padding_side(mut self, side: PaddingSide) -> Self {
        self.config_extra
            .insert("padding_side".into(), side.as_str().into());
        self
    }
}

/// FNV-1a, 64 bits: tiny, stable across Rust versions and platforms (unlike `DefaultHasher`).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `peak_rss_bytes` under its former path; it lives in [`crate::sys`].
#[doc(hidden)]
pub mod cli {
    pub use crate::sys::peak_rss_bytes;
}
