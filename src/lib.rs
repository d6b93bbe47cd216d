#![doc = include_str!("../README.md")]
//! massivetext: the language-model workflow (datasets, tokenizers, models, training, metrics)
//! for Rust notebooks, on candle, in the vocabulary of Hugging Face.
//!
//! ```
//! use massivetext::prelude::*;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("corpus.txt");
//! # std::fs::write(&path, "first line\n\nthird line\n").unwrap();
//! let ds = load_dataset("text", &path)?;
//! assert_eq!(ds["train"].num_rows(), 3);
//! let split = ds["train"].train_test_split(0.34, 42)?;
//! assert_eq!(split["test"].num_rows(), 2);
//! # Ok::<(), massivetext::Error>(())
//! ```
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
pub mod corpus;
pub mod data;
pub mod display;
pub mod error;
pub mod generate;
pub mod hub;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod models;
pub mod prelude;
pub mod threads;
pub mod tokenizer;
pub mod train;
pub mod translate;
pub mod viz;

pub use error::{Error, Result};
