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

/// Which end of a sequence padding goes on (`tokenizer.padding_side` in transformers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaddingSide {
    /// After the tokens (the default; what encoders and training use).
    #[default]
    Right,
    /// Before the tokens (what batched generation with a decoder wants).
    Left,
}

impl PaddingSide {
    /// `"right"` or `"left"`, as `tokenizer_config.json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PaddingSide::Right => "right",
            PaddingSide::Left => "left",
        }
    }
}

/// Options of [`Tokenizer::decode`] and [`Tokenizer::batch_decode`], named as transformers
/// names them; the default keeps special tokens, as `decode(ids)` does in Python.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Leave out special tokens (`[CLS]`, `</s>`, padding, ...).
    pub skip_special_tokens: bool,
}

impl DecodeOptions {
    /// `skip_special_tokens=True`: the text alone, as generation and pipelines show it.
    pub const SKIP_SPECIAL_TOKENS: DecodeOptions = DecodeOptions {
        skip_special_tokens: true,
    };
}

/// Options of [`Tokenizer::encode_with`] and [`Tokenizer::batch_encode`]; the default matches
/// `tokenizer(text)` in Python, [`EncodeOptions::padded`] `tokenizer(texts, padding=True)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add `[CLS] ... [SEP]`, `<s> ... </s>` as the post-processor says (default true).
    pub add_special_tokens: bool,
    /// Maximum length for truncation / `Padding::MaxLength`; `None` uses `model_max_length`.
    pub max_length: Option<usize>,
    pub truncation: Truncation,
    pub padding: Padding,
    /// Where padding goes; `None` takes the tokenizer's (`padding_side` in
    /// `tokenizer_config.json`, else right).
    pub padding_side: Option<PaddingSide>,
    /// Pad the length up to a multiple of this (e.g. 8 for tensor cores), when padding.
    pub pad_to_multiple_of: Option<usize>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            add_special_tokens: true,
            max_length: None,
            truncation: Truncation::None,
            padding: Padding::None,
            padding_side: None,
            pad_to_multiple_of: None,
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

    /// `padding=True`: pad to the longest sequence of the batch.
    pub fn padded() -> Self {
        EncodeOptions {
            padding: Padding::Longest,
            ..Default::default()
        }
    }

    /// `padding=True, truncation=True, max_length=max_length`.
    pub fn padded_truncated(max_length: usize) -> Self {
        EncodeOptions {
            padding: Padding::Longest,
            ..Self::truncate(max_length)
        }
    }

    /// The same options with padding on the given side.
    pub fn with_padding_side(mut self, side: PaddingSide) -> Self {
        self.padding_side = Some(side);
        self
    }

    /// The same options, padding to a multiple of `n`.
    pub fn with_pad_to_multiple_of(mut self, n: usize) -> Self {
        self.pad_to_multiple_of = Some(n);
        self
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
        if opts.pad_to_multiple_of == Some(0) {
            return Err(Error::InvalidArgument(
                "EncodeOptions.pad_to_multiple_of must be at least 1".into(),
            ));
        }
        let direction = match opts.padding_side.unwrap_or_else(|| self.padding_side()) {
            PaddingSide::Right => PaddingDirection::Right,
            PaddingSide::Left => PaddingDirection::Left,
        };
        let params = PaddingParams {
            strategy,
            direction,
            pad_to_multiple_of: opts.pad_to_multiple_of,
            pad_id,
            pad_type_id: 0,
            pad_token,
        };
        pad_encodings(encs, &params).map_err(tk_err)
    }
}

/// Memoised word -> ids for bulk encoding (token shards). Natural text repeats its words, so
/// most words skip the model and the per-token `Encoding` bookkeeping entirely; the ids are
/// the model's own, so the result is exactly [`Tokenizer::encode_plain`]'s.
pub(crate) struct WordCache {
    /// Pre-tokenised (normalised, byte-mapped) word -> ids.
    map: FnvMap,
    /// Raw text piece -> ids, for the byte-level fast path.
    raw: FnvMap,
    max_entries: usize,
}

type FnvMap = std::collections::HashMap<String, Vec<u32>, std::hash::BuildHasherDefault<Fnv>>;

impl WordCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        WordCache {
            map: Default::default(),
            raw: Default::default(),
            max_entries,
        }
    }
}

/// GPT-2's pre-tokenisation regex (`tokenizers::pre_tokenizers::byte_level`) without its
/// look-ahead alternative `\s+(?!\S)`, which [`ByteLevelFast::split`] applies by hand so that
/// the (much faster) `regex` crate can run it.
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// The byte-level (GPT-2 / RoBERTa) pipeline without its per-byte alignment bookkeeping:
/// split with the same regex, look the raw piece up in the cache, and only on a miss map the
/// bytes to GPT-2's printable characters and run the model. Used only when the pipeline has
/// no normaliser, a plain `ByteLevel` pre-tokeniser, and the text holds no added token; the
/// ids are the library's own (checked in tests against `encode_plain` and Python).
pub(crate) struct ByteLevelFast {
    re: regex::Regex,
    table: [char; 256],
    add_prefix_space: bool,
    added: Vec<String>,
}

/// End of the GPT-2 pre-token starting at `i` in ASCII text: the regex's alternatives tried
/// in its order (contraction, ` ?letters`, ` ?digits`, ` ?others`, `\s+(?!\S)`, `\s+`),
/// for bytes whose classes are plain ASCII. Non-ASCII text goes through the regex instead.
fn ascii_gpt2_piece_end(b: &[u8], i: usize) -> usize {
    let n = b.len();
    // 0: whitespace, 1: letter, 2: digit, 3: anything else.
    let class = |c: u8| -> u8 {
        if c == b' ' || (0x09..=0x0d).contains(&c) {
            0
        } else if c.is_ascii_alphabetic() {
            1
        } else if c.is_ascii_digit() {
            2
        } else {
            3
        }
    };
    if b[i] == b'\'' && i + 1 < n {
        match b[i + 1] {
            b's' | b't' | b'm' | b'd' => return i + 2,
            b'r' | b'v' if i + 2 < n && b[i + 2] == b'e' => return i + 3,
            b'l' if i + 2 < n && b[i + 2] == b'l' => return i + 3,
            _ => {}
        }
    }
    let j = if b[i] == b' ' { i + 1 } else { i };
    if j < n {
        let c = class(b[j]);
        if c != 0 {
            let mut k = j + 1;
            while k < n && class(b[k]) == c {
                k += 1;
            }
            return k;
        }
    }
    // Whitespace run (b[i] is whitespace here).
    let mut k = i + 1;
    while k < n && class(b[k]) == 0 {
        k += 1;
    }
    if k < n && k - i > 1 { k - 1 } else { k }
}

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others to U+0100 onwards.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut n = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    table
}

/// FNV-1a as a `Hasher`: words are short, so it beats SipHash by a wide margin.
#[derive(Default)]
pub(crate) struct Fnv(u64);
impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

impl Tokenizer {
    /// The byte-level fast path, when this pipeline allows it.
    pub(crate) fn byte_level_fast(&self) -> Option<ByteLevelFast> {
        use tokenizers::PreTokenizerWrapper;
        if self.inner.get_normalizer().is_some() {
            return None;
        }
        let Some(PreTokenizerWrapper::ByteLevel(bl)) = self.inner.get_pre_tokenizer() else {
            return None;
        };
        if !bl.use_regex {
            return None;
        }
        let re = regex::Regex::new(GPT2_PATTERN).ok()?;
        let added = self
            .inner
            .get_added_tokens_decoder()
            .values()
            .map(|t| t.content.clone())
            .collect();
        Some(ByteLevelFast {
            re,
            table: bytes_to_unicode(),
            add_prefix_space: bl.add_prefix_space,
            added,
        })
    }

    /// Append the ids of `text` without special tokens to `out`: the library's own steps
    /// (added tokens, normaliser, pre-tokeniser, model), with the model's output memoised per
    /// pre-tokenised word in `cache`.
    pub(crate) fn encode_plain_into(
        &self,
        text: &str,
        fast: Option<&ByteLevelFast>,
        cache: &mut WordCache,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        use tokenizers::{Model, OffsetReferential, OffsetType, PreTokenizer};
        let inner = &self.inner;
        if let Some(fast) = fast
            && !fast.added.iter().any(|t| text.contains(t.as_str()))
        {
            let prefixed;
            let text = if fast.add_prefix_space && !text.starts_with(' ') {
                prefixed = format!(" {text}");
                prefixed.as_str()
            } else {
                text
            };
            let mut piece = |p: &str, out: &mut Vec<u32>| -> Result<()> {
                if p.is_empty() {
                    return Ok(());
                }
                if let Some(ids) = cache.raw.get(p) {
                    out.extend_from_slice(ids);
                    return Ok(());
                }
                let mapped: String = p.bytes().map(|b| fast.table[b as usize]).collect();
                let ids: Vec<u32> = inner
                    .get_model()
                    .tokenize(&mapped)
                    .map_err(tk_err)?
                    .iter()
                    .map(|t| t.id)
                    .collect();
                out.extend_from_slice(&ids);
                if cache.raw.len() >= cache.max_entries {
                    cache.raw.clear();
                }
                cache.raw.insert(p.to_string(), ids);
                Ok(())
            };
            if text.is_ascii() {
                let mut pos = 0;
                while pos < text.len() {
                    let end = ascii_gpt2_piece_end(text.as_bytes(), pos);
                    piece(&text[pos..end], out)?;
                    pos = end;
                }
                return Ok(());
            }
            let mut pos = 0;
            while let Some(m) = fast.re.find_at(text, pos) {
                piece(&text[pos..m.start()], out)?;
                let (start, mut end) = (m.start(), m.end());
                // `\s+(?!\S)` comes before `\s+`: a whitespace run followed by a non-space
                // gives up its last character, which is then matched again (e.g. as " word").
                if end < text.len()
                    && text[start..end].chars().all(char::is_whitespace)
                    && let Some((last, _)) = text[start..end].char_indices().last()
                    && last > 0
                {
                    end = start + last;
                }
                piece(&text[start..end], out)?;
                pos = end;
            }
            return piece(&text[pos..], out);
        }
        let mut pts = inner
            .get_added_vocabulary()
            .extract_and_normalize(inner.get_normalizer(), text);
        if let Some(pt) = inner.get_pre_tokenizer() {
            pt.pre_tokenize(&mut pts).map_err(tk_err)?;
        }
        for (word, _, tokens) in pts.get_splits(OffsetReferential::Normalized, OffsetType::None) {
            if let Some(tokens) = tokens {
                out.extend(tokens.iter().map(|t| t.id));
            } else if let Some(ids) = cache.map.get(word) {
                out.extend_from_slice(ids);
            } else {
                let ids: Vec<u32> = inner
                    .get_model()
                    .tokenize(word)
                    .map_err(tk_err)?
                    .iter()
                    .map(|t| t.id)
                    .collect();
                out.extend_from_slice(&ids);
                if cache.map.len() >= cache.max_entries {
                    cache.map.clear();
                }
                cache.map.insert(word.to_string(), ids);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_fast_path_applies_to_gpt2_and_roberta_only() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizers");
        for (name, fast) in [("gpt2", true), ("roberta", true), ("bert", false)] {
            let tok = Tokenizer::from_pretrained(dir.join(name)).unwrap();
            assert_eq!(tok.byte_level_fast().is_some(), fast, "{name}");
        }
        let table = bytes_to_unicode();
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[b'a' as usize], 'a');
    }
}
