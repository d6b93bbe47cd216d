//! Extractive-QA training examples: a question, a context and the answer's character span
//! become token ids and the answer's start and end token, as transformers' `run_qa` example
//! (`prepare_train_features`) builds them.
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use super::collator::{Example, TaskLabel};
use crate::tokenizer::{Tokenizer, tk_err};
use crate::{Error, Result};

/// The question and the context as one pair (`[CLS] question [SEP] context [SEP]`, the context
/// truncated to `max_length` tokens in all), with `token_type_ids`, labelled with the tokens
/// where the answer (`answer_text` at character `answer_start` of `context`) starts and ends;
/// an answer cut off by the truncation is labelled with the `[CLS]` position, 0, as
/// transformers does.
pub fn question_answering_example(
    tokenizer: &Tokenizer,
    question: &str,
    context: &str,
    answer_start: usize,
    answer_text: &str,
    max_length: usize,
) -> Result<Example> {
    let start_char = answer_start;
    let end_char = answer_start + answer_text.chars().count();
    if end_char > context.chars().count() {
        return Err(Error::InvalidArgument(format!(
            "the answer {answer_text:?} at character {answer_start} runs past the end of the context ({} characters)",
            context.chars().count()
        )));
    }
    let mut tk = tokenizer.inner().clone();
    tk.with_padding(None);
    tk.with_truncation(Some(TruncationParams {
        max_length,
        strategy: TruncationStrategy::OnlySecond,
        stride: 0,
        direction: TruncationDirection::Right,
    }))
    .map_err(tk_err)?;
    let enc = tk
        .encode_char_offsets((question, context), true)
        .map_err(tk_err)?;
    let seq = enc.get_sequence_ids();
    let offsets = enc.get_offsets();
    let first = seq.iter().position(|s| *s == Some(1));
    let last = seq.iter().rposition(|s| *s == Some(1));
    let (start, end) = match (first, last) {
        (Some(mut s), Some(mut e)) if offsets[s].0 <= start_char && offsets[e].1 >= end_char => {
            while s < offsets.len() && seq[s] == Some(1) && offsets[s].0 <= start_char {
                s += 1;
            }
            while e > 0 && seq[e] == Some(1) && offsets[e].1 >= end_char {
                e -= 1;
            }
            (s as i64 - 1, e as i64 + 1)
        }
        _ => (0, 0),
    };
    Ok(Example {
        input_ids: enc.get_ids().to_vec(),
        token_type_ids: Some(enc.get_type_ids().to_vec()),
        label: Some(TaskLabel::Span { start, end }),
        ..Example::default()
    })
}
