//! Text in, text out: encode the prompt, generate, decode the new tokens, and stream them as
//! they become whole characters.
use super::config::GenerationConfig;
use crate::models::{ForwardArgs, PreTrainedModel};
use crate::tokenizer::{DecodeOptions, Tokenizer};
use crate::{Error, Result};
use candle_core::Tensor;

/// The new text after `prompt` (special tokens skipped), handing each piece to `on_text` as
/// soon as the new tokens decode to whole characters (no trailing U+FFFD of a cut UTF-8 byte
/// sequence).
pub(crate) fn generate_text<M: PreTrainedModel>(
    model: &M,
    tokenizer: &Tokenizer,
    prompt: &str,
    config: &GenerationConfig,
    on_text: impl FnMut(&str),
) -> Result<String> {
    let ids = tokenizer.encode_plain(prompt)?;
    generate_from_ids(model, tokenizer, ids, config, on_text)
}

/// As [`generate_text`], from the prompt's ids (a fill-in-the-middle prompt is built of ids).
pub(crate) fn generate_from_ids<M: PreTrainedModel>(
    model: &M,
    tokenizer: &Tokenizer,
    ids: Vec<u32>,
    config: &GenerationConfig,
    mut on_text: impl FnMut(&str),
) -> Result<String> {
    if config.num_beams > 1 || config.num_return_sequences > 1 {
        return Err(Error::InvalidArgument(
            "generate_text returns one text: use generate for beam search or several sequences"
                .into(),
        ));
    }
    let prompt_len = ids.len();
    let input = Tensor::from_vec(ids.clone(), (1, prompt_len), model.device())?;
    let mut emitted = 0usize;
    let mut stream = |seqs: &[Vec<u32>]| -> Result<()> {
        let new = seqs[0].get(prompt_len..).unwrap_or(&[]);
        let text = tokenizer.decode(new, DecodeOptions::SKIP_SPECIAL_TOKENS)?;
        if !text.ends_with('\u{FFFD}') && text.len() > emitted && text.is_char_boundary(emitted) {
            on_text(&text[emitted..]);
            emitted = text.len();
        }
        Ok(())
    };
    let out = super::run(
        model,
        &ForwardArgs::new(&input),
        config,
        true,
        Some(tokenizer),
        &mut stream,
    )?;
    let row: Vec<u32> = out.get(0)?.to_vec1()?;
    // an empty prompt started from BOS: everything after it is new
    let start = if prompt_len == 0 {
        1.min(row.len())
    } else {
        prompt_len
    };
    let pad = config.pad_id();
    let new: Vec<u32> = row[start..]
        .iter()
        .copied()
        .filter(|&t| Some(t) != pad || config.eos_token_id.contains(&t))
        .collect();
    let text = tokenizer.decode(&new, DecodeOptions::SKIP_SPECIAL_TOKENS)?;
    if text.len() > emitted && text.is_char_boundary(emitted) {
        on_text(&text[emitted..]);
    }
    Ok(text)
}
