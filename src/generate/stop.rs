//! Stop strings (`GenerationConfig::stop_strings`), matched as transformers'
//! `StopStringCriteria` matches them: on the bytes the tokens stand for, and only where a stop
//! string ends inside the last token.
//!
//! transformers' rule, which this keeps: for the stop string `"stop"`, the token sequences
//! `["st", "op"]`, `["stop"]`, `["st", "opera"]`, `["sto", "pper"]`, `["las", "topper"]` and
//! `["s", "to", "pped"]` all end generation (the string may hang off either end of the tokens
//! that make it), but `["stop", "at"]` does not: the check runs after every token, so a stop
//! string that ended before the last token was already seen. The whole row counts, the prompt
//! included, and the tokens that complete a stop string stay in the output.
//!
//! A token's bytes are what the tokenizer's decoder makes of it, found as transformers finds
//! them: a byte-level vocabulary (GPT-2, SmolLM2, StarCoder) maps each character of the token back
//! to its byte, a byte-fallback one reads `<0xNN>` as the byte `NN`, and any other token is decoded
//! after the static prefix `abcdef` (so that a decoder's rule for a word's first token, a leading
//! space dropped or added, does not apply), and the prefix cut off again.
use std::collections::HashMap;

use tokenizers::{Decoder, DecoderWrapper};

use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// How a token's bytes are read (transformers' `_stop_string_matching_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The GPT-2 byte-to-character map (`ByteLevel` decoder).
    ByteLevel,
    /// `<0xNN>` tokens are bytes (`ByteFallback` decoder, SentencePiece with byte fallback).
    ByteFallback,
    /// Every token through the decoder.
    Text,
}

/// The stop strings of one generation and the bytes of the tokens met so far.
pub(crate) struct StopStrings {
    stops: Vec<Vec<u8>>,
    longest: usize,
    tokenizer: Tokenizer,
    mode: Mode,
    /// Each token's decoded prefix (`abcdef`'s tokens), for [`Mode::Text`] and the tokens the
    /// byte maps do not cover.
    prefix: Vec<String>,
    byte_of: HashMap<char, u8>,
    pieces: HashMap<u32, Vec<u8>>,
}

const STATIC_PREFIX: &str = "abcdef";

impl StopStrings {
    /// The matcher of `stops` over `tokenizer`'s tokens (`GenerationConfig::validate` has
    /// refused empty stop strings).
    pub(crate) fn new(tokenizer: &Tokenizer, stops: &[String]) -> Result<Self> {
        let mode = mode_of(tokenizer.inner().get_decoder());
        let prefix = tokenizer
            .encode_plain(STATIC_PREFIX)?
            .into_iter()
            .filter_map(|id| tokenizer.id_to_token(id))
            .collect();
        Ok(StopStrings {
            stops: stops.iter().map(|s| s.as_bytes().to_vec()).collect(),
            longest: stops.iter().map(String::len).max().unwrap_or(0),
            tokenizer: tokenizer.clone(),
            mode,
            prefix,
            byte_of: byte_level_decoder(),
            pieces: HashMap::new(),
        })
    }

    /// Whether a stop string ends inside the last token of `tokens` (see the module's rule).
    pub(crate) fn hit(&mut self, tokens: &[u32]) -> Result<bool> {
        if self.stops.is_empty() {
            return Ok(false);
        }
        // the last token's bytes, and enough bytes before it to hold the longest stop string
        let mut back: Vec<u8> = Vec::new();
        let mut last_len = None;
        for &id in tokens.iter().rev() {
            let piece = self.piece(id)?;
            let before = back.len();
            back.extend(piece.iter().rev());
            let last = *last_len.get_or_insert(back.len());
            if before >= last && back.len() - last + 1 >= self.longest {
                break;
            }
        }
        back.reverse();
        let last_start = back.len() - last_len.unwrap_or(0);
        Ok(self
            .stops
            .iter()
            .any(|s| ends_in_last(&back, last_start, s)))
    }

    /// The bytes token `id` stands for.
    fn piece(&mut self, id: u32) -> Result<&[u8]> {
        if !self.pieces.contains_key(&id) {
            let bytes = self.token_bytes(id)?;
            self.pieces.insert(id, bytes);
        }
        Ok(&self.pieces[&id])
    }

    fn token_bytes(&self, id: u32) -> Result<Vec<u8>> {
        let token = self
            .tokenizer
            .id_to_token(id)
            .ok_or(Error::TokenOutOfVocab {
                id,
                vocab_size: self.tokenizer.vocab_size(),
            })?;
        match self.mode {
            Mode::ByteLevel => {
                let bytes: Option<Vec<u8>> = token
                    .chars()
                    .map(|c| self.byte_of.get(&c).copied())
                    .collect();
                if let Some(b) = bytes {
                    return Ok(b);
                }
            }
            Mode::ByteFallback => {
                if let Some(b) = fallback_byte(&token) {
                    return Ok(vec![b]);
                }
            }
            Mode::Text => {}
        }
        let mut tokens = self.prefix.clone();
        tokens.push(token.clone());
        let text = match self.tokenizer.inner().get_decoder() {
            Some(d) => d
                .decode(tokens)
                .map_err(|e| Error::Tokenizer(format!("decoding token {id} ({token:?}): {e}")))?,
            None => tokens.concat(),
        };
        let cut = text
            .find(STATIC_PREFIX)
            .map_or(0, |i| i + STATIC_PREFIX.len());
        Ok(text.as_bytes()[cut..].to_vec())
    }
}

/// Whether `stop` occurs in `bytes` ending after `last_start` (inside the last token).
fn ends_in_last(bytes: &[u8], last_start: usize, stop: &[u8]) -> bool {
    let from = (last_start + 1).saturating_sub(stop.len());
    bytes[from..]
        .windows(stop.len())
        .enumerate()
        .any(|(i, w)| w == stop && from + i + stop.len() > last_start)
}

/// transformers' matching mode: byte fallback wins where a decoder has both.
fn mode_of(decoder: Option<&DecoderWrapper>) -> Mode {
    fn has(d: &DecoderWrapper, want: fn(&DecoderWrapper) -> bool) -> bool {
        match d {
            DecoderWrapper::Sequence(s) => s.get_decoders().iter().any(|d| has(d, want)),
            other => want(other),
        }
    }
    match decoder {
        Some(DecoderWrapper::ByteLevel(_)) => Mode::ByteLevel,
        Some(d) if has(d, |d| matches!(d, DecoderWrapper::ByteFallback(_))) => Mode::ByteFallback,
        Some(d) if has(d, |d| matches!(d, DecoderWrapper::ByteLevel(_))) => Mode::ByteLevel,
        _ => Mode::Text,
    }
}

/// `<0xNN>` as the byte `NN`.
fn fallback_byte(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2)
        .then(|| u8::from_str_radix(hex, 16).ok())
        .flatten()
}

/// GPT-2's `bytes_to_unicode`, inverted: the character a byte-level vocabulary writes for each
/// byte, back to the byte. Printable Latin-1 bytes stand for themselves; the other 68 bytes are
/// the characters from U+0100 on, in byte order.
fn byte_level_decoder() -> HashMap<char, u8> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                let c = char::from_u32(next).unwrap_or('\u{FFFD}');
                next += 1;
                c
            };
            (c, b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of `pieces` joined, and where the last piece starts.
    fn joined(pieces: &[&str]) -> (Vec<u8>, usize) {
        let all = pieces.concat().into_bytes();
        let last = pieces.last().map_or(0, |p| p.len());
        let start = all.len() - last;
        (all, start)
    }

    #[test]
    fn transformers_docstring_examples() {
        let hits: &[&[&str]] = &[
            &["st", "op"],
            &["stop"],
            &["st", "opera"],
            &["sto", "pper"],
            &["las", "topper"],
            &["s", "to", "pped"],
        ];
        for p in hits {
            let (b, s) = joined(p);
            assert!(ends_in_last(&b, s, b"stop"), "{p:?} should stop");
        }
        let misses: &[&[&str]] = &[
            &["stop", "at"],
            &["st", "op", "at"],
            &["st", "opera", "tion"],
            &["sto"],
        ];
        for p in misses {
            let (b, s) = joined(p);
            assert!(!ends_in_last(&b, s, b"stop"), "{p:?} should not stop");
        }
    }

    #[test]
    fn byte_level_map_is_gpt2s() {
        let m = byte_level_decoder();
        assert_eq!(m.len(), 256);
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'A'], b'A');
        assert_eq!(fallback_byte("<0x0A>"), Some(b'\n'));
        assert_eq!(fallback_byte("<0xZZ>"), None);
    }
}
