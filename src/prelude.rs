//! Everything a notebook needs: `use massivetext::prelude::*;`.
pub use crate::data::{Dataset, DatasetDict, load_dataset};
pub use crate::tokenizer::{
    EncodeOptions, Encoding, Padding, ShardBuildOptions, SpecialTokens, TokenShards, Tokenizer,
    TokenizerKind, TrainOptions, Truncation,
};
pub use crate::{Error, Result};
