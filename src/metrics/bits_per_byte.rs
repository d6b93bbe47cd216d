//! Bits per byte: a language model's compression of held-out text, comparable across
//! tokenizers (a per-token loss is not: a tokenizer with longer tokens has fewer, harder tokens).
//!
//! `bits_per_byte = (Σ NLL of every token, in nats) / ln 2 / (UTF-8 bytes of the text)`.
//!
//! Every token of a text is scored, the first one too: each text is tokenized on its own
//! (`encode_plain`, no special tokens) after the tokenizer's document separator (its EOS token,
//! else SEP), the token that precedes a document in the packed training stream. A text longer
//! than the model's context is cut into rows of `max_positions` tokens that overlap by one
//! token, so each token is predicted exactly once, from the tokens of its own row (as
//! `perplexity_of_blocks` scores rows; a sliding window with more context would score lower).
use serde::Serialize;

use super::perplexity::perplexity_of_blocks;
use crate::models::PreTrainedModel;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Bits per byte with the sums behind it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BitsPerByte {
    pub bits_per_byte: f64,
    /// Σ NLL over the scored tokens, in nats.
    pub nll_sum: f64,
    pub num_tokens: usize,
    /// UTF-8 bytes of the texts.
    pub num_bytes: usize,
}

impl BitsPerByte {
    /// Mean loss per token in nats (`eval_loss`).
    pub fn loss_per_token(&self) -> f64 {
        self.nll_sum / self.num_tokens as f64
    }
}

/// `nll_sum` nats over `num_bytes` bytes, in bits per byte.
///
/// ```
/// use massivetext::metrics::bits_per_byte;
/// // 4 tokens of a uniform 256-way guess (8 bits each) over 8 bytes: 4 bits per byte
/// let nll = 4.0 * 256f64.ln();
/// assert!((bits_per_byte(nll, 8)? - 4.0).abs() < 1e-12);
/// assert!(bits_per_byte(nll, 0).is_err());
/// # Ok::<(), massivetext::Error>(())
/// ```
pub fn bits_per_byte(nll_sum: f64, num_bytes: usize) -> Result<f64> {
    if num_bytes == 0 {
        return Err(Error::EmptyMetricInput {
            what: "the text (0 bytes to spread the loss over)".into(),
        });
    }
    if !nll_sum.is_finite() || nll_sum < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "bits per byte needs a finite, non-negative sum of token losses, got {nll_sum}: the model's outputs are not finite; check its weights"
        )));
    }
    Ok(nll_sum / std::f64::consts::LN_2 / num_bytes as f64)
}

/// Bits per byte of documents already tokenized: each of `docs` starts with the token its first
/// real token is predicted from (the document separator), and `num_bytes` is the UTF-8 length
/// of their texts. Rows of at most the model's context, overlapping by one token (see the
/// module docs), `batch_size` rows a forward pass.
pub fn bits_per_byte_of_ids<M: PreTrainedModel>(
    model: &M,
    docs: &[Vec<u32>],
    num_bytes: usize,
    batch_size: usize,
) -> Result<BitsPerByte> {
    bits_per_byte_of_ids_within(model, docs, num_bytes, batch_size, usize::MAX)
}

/// [`bits_per_byte_of_ids`] with rows of at most `context` tokens (and the model's context):
/// models with long contexts (SmolLM2's 8,192) are scored in the same windows as a small one,
/// and attention over a whole file does not have to fit in memory.
pub fn bits_per_byte_of_ids_within<M: PreTrainedModel>(
    model: &M,
    docs: &[Vec<u32>],
    num_bytes: usize,
    batch_size: usize,
    context: usize,
) -> Result<BitsPerByte> {
    let width = model
        .max_positions()
        .unwrap_or(usize::MAX)
        .min(context)
        .max(2);
    let rows: Vec<Vec<u32>> = docs
        .iter()
        .flat_map(|d| overlapping_rows(d, width))
        .collect();
    if rows.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the documents (none has a token to predict)".into(),
        });
    }
    let p = perplexity_of_blocks(model, &rows, batch_size)?;
    Ok(BitsPerByte {
        bits_per_byte: bits_per_byte(p.nll_sum, num_bytes)?,
        nll_sum: p.nll_sum,
        num_tokens: p.num_tokens,
        num_bytes,
    })
}

/// Bits per byte of `texts` (see the module docs for what is scored).
pub fn bits_per_byte_of_texts<M: PreTrainedModel, S: AsRef<str>>(
    model: &M,
    tokenizer: &Tokenizer,
    texts: &[S],
    batch_size: usize,
) -> Result<BitsPerByte> {
    bits_per_byte_of_texts_within(model, tokenizer, texts, batch_size, usize::MAX)
}

/// [`bits_per_byte_of_texts`] in rows of at most `context` tokens (see
/// [`bits_per_byte_of_ids_within`]).
pub fn bits_per_byte_of_texts_within<M: PreTrainedModel, S: AsRef<str>>(
    model: &M,
    tokenizer: &Tokenizer,
    texts: &[S],
    batch_size: usize,
    context: usize,
) -> Result<BitsPerByte> {
    let start = tokenizer.document_separator_id().ok_or_else(|| {
        Error::InvalidArgument(
            "bits per byte scores each text's first token after the document separator, and this tokenizer has neither an EOS nor a SEP token: set one (add_special_tokens)".into(),
        )
    })?;
    let mut docs = Vec::with_capacity(texts.len());
    let mut bytes = 0;
    for t in texts {
        let t = t.as_ref();
        if t.is_empty() {
            continue;
        }
        let mut ids = vec![start];
        ids.extend(tokenizer.encode_plain(t)?);
        docs.push(ids);
        bytes += t.len();
    }
    bits_per_byte_of_ids_within(model, &docs, bytes, batch_size, context)
}

/// `ids` as rows of at most `width` tokens, each starting with the last token of the one
/// before, so that every token after the first is predicted once.
fn overlapping_rows(ids: &[u32], width: usize) -> Vec<Vec<u32>> {
    let mut rows = Vec::new();
    let mut start = 0;
    while start + 1 < ids.len() {
        let end = (start + width).min(ids.len());
        rows.push(ids[start..end].to_vec());
        start = end - 1;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::overlapping_rows;

    #[test]
    fn rows_overlap_by_one_and_predict_each_token_once() {
        let ids: Vec<u32> = (0..10).collect();
        let rows = overlapping_rows(&ids, 4);
        assert_eq!(
            rows,
            vec![vec![0, 1, 2, 3], vec![3, 4, 5, 6], vec![6, 7, 8, 9]]
        );
        let predicted: usize = rows.iter().map(|r| r.len() - 1).sum();
        assert_eq!(predicted, 9);
        assert_eq!(overlapping_rows(&ids[..1], 4), Vec::<Vec<u32>>::new());
        assert_eq!(overlapping_rows(&ids[..5], 4).len(), 2);
    }
}
