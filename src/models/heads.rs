//! What sits on top of a family's stack: the task of a model ([`Task`]), and the head pieces
//! more than one family uses (a decoder's last-real-token pooling, the QA span head). Each
//! family's own heads (GPT-2's `score`, BERT's pooler and classifier, ...) live in its file.
use candle_core::{DType, Tensor};

use super::layers::Linear;
use crate::{Error, Result};

/// What sits on top of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Next-token prediction (`AutoModelForCausalLM`): labels are shifted inside.
    CausalLm,
    /// Masked-token prediction (`AutoModelForMaskedLM`): labels where not -100.
    MaskedLm,
    /// No head: hidden states (`AutoModel`).
    Base,
    /// One prediction per sequence (`AutoModelForSequenceClassification`): logits
    /// `[batch, num_labels]`; labels `[batch]` (or `[batch, num_labels]` for multi-label).
    SequenceClassification,
    /// Extractive question answering (`AutoModelForQuestionAnswering`): a start and an end
    /// logit per token; `start_positions` / `end_positions` `[batch]` give the loss.
    QuestionAnswering,
    /// An encoder–decoder with a language-model head on the decoder
    /// (`AutoModelForSeq2SeqLM`): labels `[batch, target_seq]` are shifted right inside to
    /// make the decoder's inputs.
    Seq2SeqLm,
}

impl Task {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Task::CausalLm => "a causal language model (AutoModelForCausalLM)",
            Task::MaskedLm => "a masked language model (AutoModelForMaskedLM)",
            Task::Base => "a bare encoder/decoder (AutoModel)",
            Task::SequenceClassification => {
                "a sequence classifier (AutoModelForSequenceClassification)"
            }
            Task::QuestionAnswering => {
                "an extractive question-answering model (AutoModelForQuestionAnswering)"
            }
            Task::Seq2SeqLm => "an encoder-decoder language model (AutoModelForSeq2SeqLM)",
        }
    }
    /// The `Auto*` type that loads a model for this task.
    pub(crate) fn entry_point(self) -> &'static str {
        match self {
            Task::CausalLm => "AutoModelForCausalLM",
            Task::MaskedLm => "AutoModelForMaskedLM",
            Task::Base => "AutoModel",
            Task::SequenceClassification => "AutoModelForSequenceClassification",
            Task::QuestionAnswering => "AutoModelForQuestionAnswering",
            Task::Seq2SeqLm => "AutoModelForSeq2SeqLM",
        }
    }
}

/// The hidden state `[b, h]` of each row's last token that is not `pad_token_id` (left or right
/// padding; the row's last token when there is no padding id, which needs a batch of one): what
/// a decoder's sequence classifier reads (`GPT2ForSequenceClassification`'s pooling).
pub(crate) fn last_real_token(
    hidden: &Tensor,
    input_ids: &Tensor,
    pad_token_id: Option<u32>,
    architecture: &str,
) -> Result<Tensor> {
    let (b, t, h) = hidden.dims3()?;
    let dev = hidden.device();
    let last = match pad_token_id {
        // The rightmost token that is not padding (works for left and right padding): max
        // over j of j * [id_j != pad], 0 for a row of padding only.
        Some(pad) => {
            let ids = input_ids.to_device(dev)?.to_dtype(DType::U32)?;
            let real = ids.ne(pad)?.to_dtype(DType::U32)?;
            let j = Tensor::arange(0u32, t as u32, dev)?.unsqueeze(0)?;
            real.broadcast_mul(&j)?.max(1)?
        }
        None if b != 1 => {
            return Err(Error::InvalidArgument(format!(
                "{architecture} cannot find the last token of each row of a batch of {b} without a padding token: set `pad_token_id` in config.json (e.g. to the eos id) or in the config, or classify one sequence at a time"
            )));
        }
        None => Tensor::full(t as u32 - 1, b, dev)?,
    };
    let rows = Tensor::arange_step(0u32, (b * t) as u32, t as u32, dev)?;
    let index = (rows + last)?;
    Ok(hidden.reshape((b * t, h))?.index_select(&index, 0)?)
}

/// `…ForQuestionAnswering`: `qa_outputs` maps each token to a start and an end logit; returns
/// them `[b, t]` each.
pub(crate) fn answer_span(qa_outputs: &Linear, hidden: &Tensor) -> Result<(Tensor, Tensor)> {
    let logits = qa_outputs.forward(hidden)?;
    let start = logits.narrow(2, 0, 1)?.squeeze(2)?.contiguous()?;
    let end = logits.narrow(2, 1, 1)?.squeeze(2)?.contiguous()?;
    Ok((start, end))
}
