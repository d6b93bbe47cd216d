//! A GGUF file's SentencePiece vocabulary (`tokenizer.ggml.model = "llama"`: Llama 1 and 2,
//! Mistral 7B, TinyLlama, ...) as transformers builds it from the file
//! (`gguf_tokenizer_mapping.sentencepiece_tokenizer` over transformers 5's `LlamaTokenizer`):
//! BPE with byte fallback over the file's tokens, a `▁` prepended to the first word and spaces
//! spelled `▁` (Metaspace), and the merges the file lists or, as llama.cpp's converter writes
//! none, the merges its scores imply (transformers' `generate_merges`).
use std::collections::{HashMap, HashSet};

use tokenizers::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};

use super::tk_err;
use crate::Result;
use crate::gguf::GgufFile;

/// SentencePiece's word-boundary mark.
const SPACE: char = '\u{2581}';

/// The tokenizer of the SentencePiece vocabulary `tokens` of `file`.
pub(super) fn sentencepiece(file: &GgufFile, tokens: &[&str]) -> Result<tokenizers::Tokenizer> {
    let merges = match file.strings("tokenizer.ggml.merges")? {
        Some(listed) => split_merges(file, &listed)?,
        None => {
            let scores = file.required(
                "tokenizer.ggml.scores",
                file.floats("tokenizer.ggml.scores"),
            )?;
            if scores.len() != tokens.len() {
                return Err(file.error(format!(
                    "metadata `tokenizer.ggml.scores` has {} entries for {} tokens",
                    scores.len(),
                    tokens.len()
                )));
            }
            generate_merges(tokens, &scores)
        }
    };
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.to_string(), id as u32))
        .collect();
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| file.error(format!("the vocabulary and merges do not make a BPE: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Metaspace::new(SPACE, PrependScheme::First, false)));
    let space = Replace::new(SPACE.to_string(), " ").map_err(tk_err)?;
    tok.with_decoder(Some(Sequence::new(vec![
        DecoderWrapper::Replace(space),
        DecoderWrapper::ByteFallback(ByteFallback::default()),
        DecoderWrapper::Fuse(Fuse::default()),
        DecoderWrapper::Strip(Strip::new(' ', 1, 0)),
    ])));
    Ok(tok)
}

/// The file's merges (`tokenizer.ggml.merges`), each two tokens separated by one space.
pub(super) fn split_merges(file: &GgufFile, merges: &[&str]) -> Result<Vec<(String, String)>> {
    merges
        .iter()
        .enumerate()
        .map(|(i, m)| match m.split(' ').collect::<Vec<_>>()[..] {
            [a, b] => Ok((a.to_string(), b.to_string())),
            _ => Err(file.error(format!(
                "metadata `tokenizer.ggml.merges[{i}]` is `{m}`, expected two tokens separated by one space"
            ))),
        })
        .collect()
}

/// The merges a vocabulary and its scores imply, exactly as transformers'
/// `tokenization_utils_base.generate_merges(vocab, vocab_scores)` lists them: every split of
/// every token into two tokens of the vocabulary, scored by the whole token's score, best first
/// (ties: the longer left part, then the longer right part, then the order found), each token's
/// splits in the order of their parts' ids. A token listed twice counts at its first place with
/// its last score and id, as Python's dicts keep them.
pub(crate) fn generate_merges(tokens: &[&str], scores: &[f64]) -> Vec<(String, String)> {
    let mut id: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    let mut score: HashMap<&str, f64> = HashMap::with_capacity(tokens.len());
    for (i, (&t, &s)) in tokens.iter().zip(scores).enumerate() {
        id.insert(t, i);
        score.insert(t, s);
    }
    let mut seen = HashSet::with_capacity(tokens.len());
    let mut merges: Vec<(&str, &str, f64)> = Vec::new();
    for &token in tokens {
        if !seen.insert(token) {
            continue;
        }
        let piece_score = score[token];
        let mut local: Vec<(&str, &str, f64)> = token
            .char_indices()
            .skip(1)
            .map(|(at, _)| token.split_at(at))
            .filter(|(l, r)| id.contains_key(l) && id.contains_key(r))
            .map(|(l, r)| (l, r, piece_score))
            .collect();
        local.sort_by_key(|(l, r, _)| (id[l], id[r]));
        merges.extend(local);
    }
    // Python's `sorted(..., reverse=True)`: descending, and stable among equal keys.
    let key = |(l, r, s): &(&str, &str, f64)| (*s, l.chars().count(), r.chars().count());
    merges.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.cmp(&ka.1))
            .then(kb.2.cmp(&ka.2))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_scores_then_the_lengths() {
        // "ab" (score -1) beats "abc" (-2); "abc" splits as a+bc and ab+c, ordered by the ids
        // of their parts, both at "abc"'s score; the longer left part first among equals
        let tokens = ["a", "b", "c", "ab", "bc", "abc"];
        let scores = [0.0, 0.0, 0.0, -1.0, -3.0, -2.0];
        let m = generate_merges(&tokens, &scores);
        let m: Vec<(&str, &str)> = m.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        assert_eq!(m, [("a", "b"), ("ab", "c"), ("a", "bc"), ("b", "c")]);
    }
}
