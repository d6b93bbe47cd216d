//! Everything a notebook needs: `use massivetext::prelude::*;`.
// data
pub use crate::data::{
    Column, DataFiles, Dataset, DatasetDict, IterableDataset, LoadOptions, Row, SampleBy,
    concatenate, load_dataset, load_dataset_with, load_streaming, load_streaming_with,
};
pub use crate::{Error, Result};
// metrics
pub use crate::metrics::{
    Bleu, BleuScore, BootstrapAggregator, Chrf, ChrfScore, RougeScorer, RougeScores, Smoothing,
    Tokenize, accuracy, corpus_bleu, corpus_chrf, sentence_bleu, sentence_chrf,
};
