//! Training BPE (GPT-2), WordPiece (BERT) and Unigram tokenizers with the `tokenizers` trainers.
use super::train_order::OrderedTrainer;
use super::{SpecialTokens, Tokenizer, tk_err};
use crate::data::Dataset;
use crate::{Error, Result};
use serde_json::{Map, Value};
use std::io::IsTerminal;
use tokenizers::AddedToken;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::bert::BertProcessing;

/// Which model to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-level BPE as GPT-2 does it, with `<|endoftext|>`.
    Bpe,
    /// WordPiece as BERT does it: `[PAD] [UNK] [CLS] [SEP] [MASK]`, `[CLS] ... [SEP]`.
    WordPiece,
    /// Unigram (SentencePiece-style, `▁` for spaces) with `<pad> </s> <unk>`.
    Unigram,
}

impl std::str::FromStr for TokenizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bpe" => Ok(TokenizerKind::Bpe),
            "wordpiece" => Ok(TokenizerKind::WordPiece),
            "unigram" => Ok(TokenizerKind::Unigram),
            _ => Err(Error::UnknownKind {
                kind: s.to_string(),
                supported: "bpe, wordpiece, unigram".into(),
            }),
        }
    }
}

impl TokenizerKind {
    /// The special tokens every tokenizer of this kind has, first ids first.
    pub fn default_special_tokens(self) -> Vec<String> {
        let v: &[&str] = match self {
            TokenizerKind::Bpe => &["<|endoftext|>"],
            TokenizerKind::WordPiece => &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            TokenizerKind::Unigram => &["<pad>", "</s>", "<unk>"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
}

/// Training options. `TrainOptions::new(vocab_size)` gives the usual defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// Pairs / pieces seen fewer times are not merged (BPE, WordPiece).
    pub min_frequency: u64,
    /// Extra special tokens, after the kind's own (`<|endoftext|>`, `[CLS]`, ...).
    pub special_tokens: Vec<String>,
    /// Lowercase the text first (WordPiece only, like `bert-base-uncased`).
    pub lowercase: bool,
    /// Draw a progress bar; by default only when stderr is a terminal.
    pub show_progress: bool,
}

impl TrainOptions {
    pub fn new(vocab_size: usize) -> Self {
        TrainOptions {
            vocab_size,
            min_frequency: 0,
            special_tokens: Vec::new(),
            lowercase: true,
            show_progress: std::io::stderr().is_terminal(),
        }
    }
}

impl Tokenizer {
    /// Train a GPT-2 style byte-level BPE on a text column.
    pub fn train_bpe(ds: &Dataset, column: &str, vocab_size: usize) -> Result<Self> {
        Self::train_column(
            TokenizerKind::Bpe,
            ds,
            column,
            &TrainOptions::new(vocab_size),
        )
    }

    /// Train a BERT style (lowercased) WordPiece on a text column.
    pub fn train_wordpiece(ds: &Dataset, column: &str, vocab_size: usize) -> Result<Self> {
        Self::train_column(
            TokenizerKind::WordPiece,
            ds,
            column,
            &TrainOptions::new(vocab_size),
        )
    }

    /// Train a Unigram model on a text column.
    pub fn train_unigram(ds: &Dataset, column: &str, vocab_size: usize) -> Result<Self> {
        Self::train_column(
            TokenizerKind::Unigram,
            ds,
            column,
            &TrainOptions::new(vocab_size),
        )
    }

    /// Train on a text column with full options.
    pub fn train_column(
        kind: TokenizerKind,
        ds: &Dataset,
        column: &str,
        opts: &TrainOptions,
    ) -> Result<Self> {
        crate::threads::init();
        let values = ds.column(column)?;
        let mut texts = Vec::with_capacity(values.len());
        for (row, v) in values.iter().enumerate() {
            match v {
                Value::String(s) => texts.push(s.as_str()),
                Value::Null => {}
                other => {
                    return Err(Error::ColumnType {
                        column: column.to_string(),
                        row,
                        expected: "a string".into(),
                        found: json_kind(other).into(),
                    });
                }
            }
        }
        Self::train(kind, texts.into_iter(), opts).map_err(|e| match e {
            Error::EmptyCorpus { .. } => Error::EmptyCorpus {
                what: format!("column `{column}`"),
            },
            e => e,
        })
    }

    /// Train on any iterator of texts (lines, documents): memory grows with the number of
    /// distinct words, not with the corpus.
    pub fn train<I, S>(kind: TokenizerKind, texts: I, opts: &TrainOptions) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let mut specials = kind.default_special_tokens();
        for t in &opts.special_tokens {
            if !specials.contains(t) {
                specials.push(t.clone());
            }
        }
        let added: Vec<AddedToken> = specials
            .iter()
            .map(|t| AddedToken::from(t.clone(), true))
            .collect();
        // every kind needs room for its special tokens and at least one learned token
        if opts.vocab_size <= specials.len() {
            return Err(Error::VocabTooSmall {
                vocab_size: opts.vocab_size,
                alphabet: specials.len() + 1,
            });
        }
        let byte_alphabet = ByteLevel::alphabet();
        if kind == TokenizerKind::Bpe && opts.vocab_size < byte_alphabet.len() + specials.len() {
            return Err(Error::VocabTooSmall {
                vocab_size: opts.vocab_size,
                alphabet: byte_alphabet.len() + specials.len(),
            });
        }
        let (mut tok, mut trainer): (tokenizers::Tokenizer, OrderedTrainer) = match kind {
            TokenizerKind::Bpe => {
                let mut tok = tokenizers::Tokenizer::new(BPE::default());
                tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
                tok.with_decoder(Some(ByteLevelDecoder::default()));
                tok.with_post_processor(Some(ByteLevel::new(false, false, true)));
                let trainer = BpeTrainer::builder()
                    .vocab_size(opts.vocab_size)
                    .min_frequency(opts.min_frequency)
                    .special_tokens(added)
                    .initial_alphabet(byte_alphabet.into_iter().collect())
                    .show_progress(opts.show_progress)
                    .build();
                (tok, OrderedTrainer::new(trainer.into()))
            }
            TokenizerKind::WordPiece => {
                let mut tok = tokenizers::Tokenizer::new(
                    WordPiece::builder()
                        .unk_token("[UNK]".into())
                        .build()
                        .map_err(tk_err)?,
                );
                tok.with_normalizer(Some(BertNormalizer::new(true, true, None, opts.lowercase)))
                    .map_err(tk_err)?;
                tok.with_pre_tokenizer(Some(BertPreTokenizer));
                tok.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
                // The BPE trainer the WordPiece trainer wraps, trained on ordered words.
                let bpe = BpeTrainer::builder()
                    .vocab_size(opts.vocab_size)
                    .min_frequency(opts.min_frequency)
                    .special_tokens(added.clone())
                    .show_progress(opts.show_progress)
                    .continuing_subword_prefix("##".into())
                    .build();
                let trainer = WordPieceTrainer::builder()
                    .vocab_size(opts.vocab_size)
                    .min_frequency(opts.min_frequency)
                    .special_tokens(added)
                    .show_progress(opts.show_progress)
                    .build();
                (tok, OrderedTrainer::wordpiece(trainer.into(), bpe))
            }
            TokenizerKind::Unigram => {
                let mut tok = tokenizers::Tokenizer::new(Unigram::default());
                tok.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
                tok.with_decoder(Some(MetaspaceDecoder::new(
                    '▁',
                    PrependScheme::Always,
                    true,
                )));
                let trainer = UnigramTrainer::builder()
                    .vocab_size(opts.vocab_size as u32)
                    .special_tokens(added)
                    .unk_token(Some("<unk>".into()))
                    .show_progress(opts.show_progress)
                    .build()
                    .map_err(tk_err)?;
                (tok, OrderedTrainer::new(trainer.into()))
            }
        };
        // Count what the trainer sees, to tell an empty corpus from a trainer failure.
        let mut non_empty = 0usize;
        let counted = texts.inspect(|t| {
            if !t.as_ref().trim().is_empty() {
                non_empty += 1;
            }
        });
        let trained = tok.train(&mut trainer, counted).map(|_| ());
        if non_empty == 0 {
            return Err(Error::EmptyCorpus {
                what: "the training texts".into(),
            });
        }
        trained.map_err(tk_err)?;
        let trained_size = tok.get_vocab_size(true);
        if trained_size > opts.vocab_size {
            // The trainers keep every character of the alphabet whatever the target size.
            return Err(Error::VocabTooSmall {
                vocab_size: opts.vocab_size,
                alphabet: trained_size,
            });
        }
        let id = |t: &str| {
            tok.token_to_id(t)
                .ok_or_else(|| tk_err(format!("`{t}` missing")))
        };
        let mut extra = Map::new();
        let special = match kind {
            TokenizerKind::Bpe => {
                let eot = Some("<|endoftext|>".to_string());
                extra.insert("add_prefix_space".into(), Value::Bool(false));
                SpecialTokens {
                    bos_token: eot.clone(),
                    eos_token: eot.clone(),
                    unk_token: eot,
                    ..Default::default()
                }
            }
            TokenizerKind::WordPiece => {
                let (sep, cls) = (id("[SEP]")?, id("[CLS]")?);
                tok.with_post_processor(Some(BertProcessing::new(
                    ("[SEP]".into(), sep),
                    ("[CLS]".into(), cls),
                )));
                extra.insert("do_lower_case".into(), Value::Bool(opts.lowercase));
                SpecialTokens {
                    unk_token: Some("[UNK]".into()),
                    sep_token: Some("[SEP]".into()),
                    pad_token: Some("[PAD]".into()),
                    cls_token: Some("[CLS]".into()),
                    mask_token: Some("[MASK]".into()),
                    ..Default::default()
                }
            }
            TokenizerKind::Unigram => SpecialTokens {
                eos_token: Some("</s>".into()),
                unk_token: Some("<unk>".into()),
                pad_token: Some("<pad>".into()),
                ..Default::default()
            },
        };
        // `PreTrainedTokenizerFast`: Python then uses our tokenizer.json exactly as it is.
        let class = "PreTrainedTokenizerFast";
        Ok(Tokenizer::from_parts(tok, special, None, class, extra))
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
