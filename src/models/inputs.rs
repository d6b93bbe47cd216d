//! Tokenizer output straight into a model: `ForwardArgs::from(&batch)` for a
//! [`BatchEncoding`] from `Tokenizer::batch_encode`.
use super::args::ForwardArgs;
use crate::tokenizer::BatchEncoding;

impl From<&BatchEncoding> for ForwardArgs {
    /// `input_ids`, `attention_mask` and `token_type_ids` of the batch (on the device it was
    /// encoded for); no labels.
    fn from(b: &BatchEncoding) -> Self {
        ForwardArgs::new(&b.input_ids)
            .attention_mask(&b.attention_mask)
            .token_type_ids(&b.token_type_ids)
    }
}

impl From<BatchEncoding> for ForwardArgs {
    fn from(b: BatchEncoding) -> Self {
        ForwardArgs::from(&b)
    }
}
