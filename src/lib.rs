//! massivetext: the language-model workflow (datasets, tokenizers, models, training, metrics)
//! for Rust notebooks, on candle.
//!
//! ```
//! use massivetext::prelude::*;
//! let dir = std::env::temp_dir().join("massivetext_doc_lib");
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("corpus.txt");
//! std::fs::write(&path, "first line\n\nthird line\n").unwrap();
//! let ds = load_dataset("text", &[path]).unwrap();
//! assert_eq!(ds["train"].num_rows(), 3);
//! ```
pub mod data;
pub mod error;
pub mod prelude;
pub mod tokenizer;

pub use error::{Error, Result};
