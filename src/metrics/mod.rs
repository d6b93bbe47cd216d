//! The metrics layer; its public face, with the docs, is `crate::metrics` in lib.rs.
mod accuracy;
mod bits_per_byte;
mod bleu;
mod chrf;
mod classification;
mod code_completion;
pub mod evaluator;
pub mod perplexity;
pub mod porter;
mod python_syntax;
mod rouge;
mod segments;
mod squad;
mod tokenizers;

pub use accuracy::accuracy;
pub use bits_per_byte::{
    BitsPerByte, bits_per_byte, bits_per_byte_of_ids, bits_per_byte_of_ids_within,
    bits_per_byte_of_texts, bits_per_byte_of_texts_within,
};
pub use bleu::{Bleu, BleuScore, Smoothing, corpus_bleu, sentence_bleu};
pub use chrf::{Chrf, ChrfScore, corpus_chrf, sentence_chrf};
pub use classification::{
    Average, PrecisionRecallF1, f1_score, precision_recall_f1, precision_score, recall_score,
};
pub use code_completion::{
    ExactMatch, NextLineTask, complete_function_bodies, next_line_exact_match, next_line_tasks,
};
pub use evaluator::{EvalAccumulator, EvalResult, Evaluator, IGNORE_INDEX};
pub use perplexity::{
    MeanPerplexity, MeanPerplexityOptions, Perplexity, SlidingWindow, load_causal_lm,
    mean_perplexity, mean_perplexity_of_texts, perplexity, perplexity_of_blocks,
    perplexity_of_text,
};
pub use python_syntax::{
    ParseRate, PythonFunction, function_parse_rate, parse_rate, parses_as_python,
    parses_as_python_function, python_functions,
};
pub use rouge::{
    AggregateScore, BootstrapAggregator, RougeAggregate, RougeCorpusScore, RougeOptions,
    RougeScore, RougeScorer, RougeScores, rouge_tokenize,
};
pub use squad::{SquadScore, squad, squad_exact_match, squad_f1, squad_normalize_answer};
pub use tokenizers::Tokenize;

use crate::{Error, Result};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The sacrebleu version whose numbers and signature format these metrics reproduce.
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// Python's `str.isspace()` for one character: Unicode White_Space plus the four ASCII
/// separators U+001C..U+001F, which Python's `str.split()` also splits on and Rust does not.
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()` (no argument): runs of whitespace separate, no empty pieces.
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_isspace).filter(|t| !t.is_empty())
}

/// A fast non-cryptographic hasher (the FxHash mix) for n-gram keys and token interning,
/// which dominate metric time; SipHash would cost about twice as much here.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Maps strings to dense ids so n-grams can be packed into integers.
#[derive(Default)]
pub(crate) struct Interner {
    ids: FxHashMap<String, u32>,
}

impl Interner {
    pub(crate) fn id(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.ids.get(token) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(token.to_string(), id);
        id
    }
}

/// Checks that every reference stream has as many segments as there are hypotheses.
pub(crate) fn check_streams<H: AsRef<str>, R: AsRef<str>, V: AsRef<[R]>>(
    hyps: &[H],
    refs: &[V],
) -> Result<()> {
    if hyps.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the hypothesis list".into(),
        });
    }
    if refs.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the reference list (no reference stream given)".into(),
        });
    }
    for (i, stream) in refs.iter().enumerate() {
        let n = stream.as_ref().len();
        if n != hyps.len() {
            return Err(Error::MetricLengthMismatch {
                what: format!("reference stream {}", i + 1),
                found: n,
                expected_what: "the hypotheses".into(),
                expected: hyps.len(),
            });
        }
    }
    Ok(())
}

pub(crate) use crate::display::html_table;
