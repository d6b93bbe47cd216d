//! Datasets of tokens.
