//! Everything a notebook needs: `use massivetext::prelude::*;`.
pub use crate::data::{Dataset, DatasetDict, load_dataset};
pub use crate::metrics::{
    Bleu, BleuScore, BootstrapAggregator, Chrf, ChrfScore, RougeScorer, RougeScores, Smoothing,
    Tokenize, accuracy, corpus_bleu, corpus_chrf, sentence_bleu, sentence_chrf,
};
pub use crate::{Error, Result};
