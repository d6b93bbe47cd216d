//! `Tokenizer::from_gguf`: the tokenizer a llama.cpp GGUF file describes in its metadata, built
//! the way transformers builds it (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`,
//! `integrations/gguf/gguf_tokenizer_mapping.py`), so that both give the same ids.
//!
//! A GGUF file has no `tokenizer.json`: it stores the vocabulary (`tokenizer.ggml.tokens`), the
//! merges, each token's type (normal, control, user-defined, ...) and the role token ids. A
//! byte-level BPE vocabulary (`tokenizer.ggml.model = "gpt2"`: SmolLM2, Llama 3, Qwen2) becomes
//! GPT-2's pipeline over that vocabulary, with the pre-tokenizer split that
//! `tokenizer.ggml.pre` names; control tokens become special added tokens, user-defined ones
//! plain added tokens, so neither is ever cut into pieces.
use super::gguf_sentencepiece::{sentencepiece, split_merges};
use super::{SpecialTokens, Tokenizer, tk_err};
use crate::gguf::GgufFile;
use crate::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;
use tokenizers::AddedToken;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The split of Llama 3 and the files that share its pre-tokenizer.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split (transformers' `tokenization_qwen2.PRETOKENIZE_REGEX`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` → the split its merges were learned with (transformers'
/// `GGUF_PRE_TOKENIZER_SPLITS`); any other name keeps GPT-2's own byte-level split.
fn pre_tokenizer_split(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "tekken" => TEKKEN_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2_SPLIT,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

/// GPT-2's byte → printable character table (`bytes_to_unicode`): the alphabet a byte-level
/// vocabulary is spelled in.
fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('\0')
        } else {
            let c = char::from_u32(next).unwrap_or('\0');
            next += 1;
            c
        };
    }
    table
}

impl Tokenizer {
    /// The tokenizer of a llama.cpp GGUF file, from its metadata, with the same ids as
    /// `AutoTokenizer.from_pretrained(dir, gguf_file=...)`.
    ///
    /// Reads `tokenizer.ggml.model` (byte-level BPE, `gpt2`: SmolLM2, Llama 3, Qwen2; and
    /// SentencePiece BPE, `llama`: Llama 2, Mistral 7B, TinyLlama), `tokens`, `merges` (or
    /// `scores`), `token_type`, `pre`, the bos / eos / unk / padding ids,
    /// `add_bos_token` / `add_eos_token`, and `tokenizer.chat_template`, which
    /// [`Tokenizer::apply_chat_template`] renders.
    pub fn from_gguf(path: impl AsRef<Path>) -> Result<Self> {
        crate::threads::init();
        let file = GgufFile::open(path)?;
        from_file(&file)
    }
}

/// The tokenizer of an open GGUF file.
pub(crate) fn from_file(file: &GgufFile) -> Result<Tokenizer> {
    let model = file.required("tokenizer.ggml.model", file.string("tokenizer.ggml.model"))?;
    let tokens = file.required(
        "tokenizer.ggml.tokens",
        file.strings("tokenizer.ggml.tokens"),
    )?;
    let types = file.ints("tokenizer.ggml.token_type")?.unwrap_or_default();
    if !types.is_empty() && types.len() != tokens.len() {
        return Err(file.error(format!(
            "metadata `tokenizer.ggml.token_type` has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }
    let byte_level_vocab = model == "gpt2";
    let mut inner = match model {
        "gpt2" => byte_level(file, &tokens)?,
        "llama" => sentencepiece(file, &tokens)?,
        other => {
            return Err(Error::Unsupported(format!(
                "{}: tokenizer.ggml.model `{other}` is not supported; supported: gpt2 (byte-level BPE: SmolLM2, Llama 3, Qwen2) and llama (SentencePiece BPE: Llama 2, Mistral 7B, TinyLlama)",
                file.path().display()
            )));
        }
    };

    let role = |key: &str| -> Result<Option<String>> {
        let full = format!("tokenizer.ggml.{key}");
        match file.usize(&full)? {
            None => Ok(None),
            Some(id) => tokens.get(id).map(|t| Some(t.to_string())).ok_or_else(|| {
                file.error(format!(
                    "metadata `{full}` is {id}, outside the vocabulary of {} tokens",
                    tokens.len()
                ))
            }),
        }
    };
    let special = SpecialTokens {
        bos_token: role("bos_token_id")?,
        eos_token: role("eos_token_id")?,
        unk_token: role("unknown_token_id")?,
        pad_token: role("padding_token_id")?,
        ..Default::default()
    };

    // Control tokens are special added tokens, user-defined ones plain added tokens (never split
    // either way). In a byte-level vocabulary a "control" token spelled outside the byte alphabet
    // is a llama.cpp mislabel that transformers skips.
    let alphabet: std::collections::HashSet<char> = bytes_to_unicode().into_iter().collect();
    let spelled = |t: &str| !byte_level_vocab || t.chars().all(|c| alphabet.contains(&c));
    let mut control: Vec<AddedToken> = Vec::new();
    let mut user: Vec<AddedToken> = Vec::new();
    for (token, &kind) in tokens.iter().zip(&types) {
        if kind == CONTROL && spelled(token) {
            control.push(AddedToken::from(token.to_string(), true));
        } else if kind == USER_DEFINED && inner.token_to_id(token).is_some() {
            user.push(AddedToken::from(token.to_string(), false).normalized(false));
        }
    }
    // The role tokens are special tokens too, as transformers registers them.
    for t in special.all() {
        if !control.iter().any(|a| a.content == t) {
            control.push(AddedToken::from(t, true));
        }
    }
    inner.add_special_tokens(control).map_err(tk_err)?;
    inner.add_tokens(user).map_err(tk_err)?;

    // `add_bos_token` / `add_eos_token`: transformers' `update_post_processor` template.
    // A SentencePiece file without the flag gets a BOS, as llama.cpp and transformers add one.
    let add_bos = file
        .bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(model == "llama");
    let add_eos = file.bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    let bos = special.bos_token.clone().filter(|_| add_bos);
    let eos = special.eos_token.clone().filter(|_| add_eos);
    let post = template(&inner, bos.as_deref(), eos.as_deref())?;
    inner.with_post_processor(Some(post));

    let mut extra = Map::new();
    extra.insert("add_bos_token".into(), Value::Bool(bos.is_some()));
    if let Some(t) = file.string("tokenizer.chat_template")? {
        extra.insert("chat_template".into(), Value::String(t.to_string()));
    }
    Ok(Tokenizer::from_parts(
        inner,
        special,
        None,
        // transformers 5 names it `TokenizersBackend`; saved under this older name, the folder
        // loads in both 4.x and 5.x from its tokenizer.json as it is.
        "PreTrainedTokenizerFast",
        extra,
    ))
}

/// `[bos] $A [eos]` (and `... [bos] $B [eos]` for pairs), with the role tokens that are added.
fn template(
    inner: &tokenizers::Tokenizer,
    bos: Option<&str>,
    eos: Option<&str>,
) -> Result<TemplateProcessing> {
    let side = |seq: &str, type_id: u8| {
        let mut parts = Vec::new();
        if let Some(b) = bos {
            parts.push(format!("{b}:{type_id}"));
        }
        parts.push(format!("{seq}:{type_id}"));
        if let Some(e) = eos {
            parts.push(format!("{e}:{type_id}"));
        }
        parts.join(" ")
    };
    let single = side("$A", 0);
    let pair = format!("{single} {}", side("$B", 1));
    let mut specials = Vec::new();
    for t in [bos, eos].into_iter().flatten() {
        let id = inner
            .token_to_id(t)
            .ok_or_else(|| Error::Tokenizer(format!("role token `{t}` has no id")))?;
        specials.push((t.to_string(), id));
    }
    TemplateProcessing::builder()
        .try_single(single)
        .and_then(|b| b.try_pair(pair))
        .map_err(tk_err)?
        .special_tokens(specials)
        .build()
        .map_err(tk_err)
}

/// GPT-2's pipeline (byte-level BPE) over the file's vocabulary and merges.
fn byte_level(file: &GgufFile, tokens: &[&str]) -> Result<tokenizers::Tokenizer> {
    // Tokens spelled outside the byte alphabet (`<|im_start|>` is inside it; a raw "é" is not)
    // are respelled byte by byte, as transformers' `byte_level_tokenizer` does.
    let spelling = bytes_to_unicode();
    let alphabet: std::collections::HashSet<char> = spelling.iter().copied().collect();
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| {
            let spelled = if t.chars().all(|c| alphabet.contains(&c)) {
                t.to_string()
            } else {
                t.bytes().map(|b| spelling[b as usize]).collect()
            };
            (spelled, id as u32)
        })
        .collect();
    let merges = file.required(
        "tokenizer.ggml.merges",
        file.strings("tokenizer.ggml.merges"),
    )?;
    let merges = split_merges(file, &merges)?;
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .fuse_unk(false)
        .build()
        .map_err(|e| file.error(format!("the vocabulary and merges do not make a BPE: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(model);
    let pre = file.string("tokenizer.ggml.pre")?.unwrap_or("");
    match pre_tokenizer_split(pre) {
        Some(split) => {
            let split = Split::new(
                SplitPattern::Regex(split.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(tk_err)?;
            tok.with_pre_tokenizer(Some(Sequence::new(vec![
                PreTokenizerWrapper::Split(split),
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
            ])));
        }
        None => {
            tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        }
    }
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_alphabet_is_gpt2s() {
        let t = bytes_to_unicode();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[b' ' as usize], '\u{120}'); // Ġ
        assert_eq!(t[b'\n' as usize], '\u{10A}'); // Ċ
        assert_eq!(t[0], '\u{100}');
        let distinct: std::collections::HashSet<char> = t.into_iter().collect();
        assert_eq!(distinct.len(), 256);
    }
}
