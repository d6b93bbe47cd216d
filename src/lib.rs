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
// The modules; docs/architecture.md lists them as layers, bottom up: each imports only from the
// layers below it (tests/architecture.rs checks that no files or folders import in a loop).
// `train` and `metrics` are private `*_layer` modules behind their public faces below.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
pub mod data;
pub mod display;
pub mod dist;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod hub;
pub mod io;
pub mod jobs;
pub mod kernels;
#[path = "metrics/mod.rs"]
mod metrics_layer;
pub mod models;
pub mod peft;
pub mod prelude;
mod single_copy;
pub mod sys;
pub mod threads;
pub mod tokenizer;
#[path = "train/mod.rs"]
mod train_layer;
pub mod viz;

pub use error::{Error, Result};

// Public faces. `train` and `metrics` are assembled here, at the crate root above every layer,
// so that the paths their jobs had before they moved to `jobs` (used by existing code and
// notebooks) keep working without a layer importing `jobs`.

pub mod train {
    //! Training: [`TrainingArguments`] and a [`Trainer`] with Hugging Face's vocabulary — AdamW with
    //! no-decay groups, learning-rate schedules, clipping, gradient accumulation normalised by token
    //! count, collators for causal and masked LM, evaluation, checkpoints that resume exactly, and
    //! progress for terminals and notebooks.
    //!
    //! The Trainer knows models only through [`PreTrainedModel`]: a forward pass with labels that
    //! returns the loss, a `VarMap` of named parameters, the device, and `save_pretrained`.
    //!
    //! ```
    //! use massivetext::train::{LrScheduler, SchedulerType, TrainingArguments};
    //! let args = TrainingArguments {
    //!     output_dir: "out".into(),
    //!     learning_rate: 1e-3,
    //!     warmup_steps: 10,
    //!     lr_scheduler_type: SchedulerType::Cosine,
    //!     ..Default::default()
    //! };
    //! let sched = LrScheduler::from_args(&args, 100)?;
    //! assert_eq!(sched.lr_at(0), 0.0);
    //! assert_eq!(sched.lr_at(10), 1e-3);
    //! # Ok::<(), massivetext::Error>(())
    //! ```
    pub use crate::train_layer::*;

    /// The `massivetext train` job under its former path; it lives in [`crate::jobs::train`].
    #[doc(hidden)]
    pub mod cli {
        pub use crate::jobs::train::*;
    }
}

pub mod metrics {
    //! Evaluation metrics that give the same numbers as the reference tools.
    //!
    //! - [`corpus_bleu`] / [`sentence_bleu`]: sacrebleu 2.x BLEU (tokenizers `13a`, `intl`, `zh`,
    //!   `char`, `none`; smoothing `exp`, `floor`, `add-k`, `none`), with sacrebleu's signature string.
    //! - [`corpus_chrf`] / [`Chrf`]: sacrebleu's chrF and chrF++.
    //! - [`RougeScorer`]: Google's rouge-score 0.1.2 (rouge1..9, rougeL, rougeLsum, optional NLTK Porter
    //!   stemmer), with corpus means and a seeded bootstrap aggregate.
    //! - [`accuracy`]; [`precision_recall_f1`] / [`f1_score`] (scikit-learn's binary, micro,
    //!   macro and weighted averages); [`squad`] exact match and F1 (the official v1.1 script).
    //!
    //! Scores are on the reference tools' own scales: BLEU and chrF 0–100 (sacrebleu), ROUGE 0–1
    //! (rouge-score). Every result renders itself as a small HTML table in an evcxr notebook.
    //!
    //! ```
    //! use massivetext::metrics::{corpus_bleu, corpus_chrf};
    //! let hyps = ["The cat sat on the mat."];
    //! let refs = [vec!["The cat sat on the mat."]];
    //! let bleu = corpus_bleu(&hyps, &refs).unwrap();
    //! assert!((bleu.score - 100.0).abs() < 1e-9);
    //! assert_eq!(bleu.signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
    //! let chrf = corpus_chrf(&hyps, &refs).unwrap();
    //! assert!((chrf.score - 100.0).abs() < 1e-9);
    //! ```
    pub use crate::metrics_layer::*;

    /// The `massivetext metrics` job under its former path; it lives in
    /// [`crate::jobs::metrics`].
    #[doc(hidden)]
    pub mod cli {
        pub use crate::jobs::metrics::read_segments as read_lines;
        pub use crate::jobs::metrics::*;
    }

    /// The `massivetext perplexity` job under its former path; it lives in
    /// [`crate::jobs::perplexity`].
    #[doc(hidden)]
    pub mod perplexity_cli {
        pub use crate::jobs::perplexity::*;
    }
}

/// The built-in story corpus ([`data::corpus`]).
pub use data::corpus;
/// The translation job ([`jobs::translate`]).
pub use jobs::translate;
