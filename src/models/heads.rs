//! What sits on top of the transformer core: the task of a model ([`Task`]) and the layers that
//! turn hidden states into its outputs ([`Head`]). Model files build them; `model.rs` runs them.
use candle_core::{DType, Tensor};

use super::activation::Activation;
use super::core::{Ctx, LayerNorm, Linear};
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
    pub(crate) fn supported(self) -> &'static str {
        match self {
            Task::CausalLm => "gpt2",
            Task::MaskedLm => "bert, roberta",
            Task::Base | Task::SequenceClassification => "gpt2, bert, roberta",
            Task::QuestionAnswering => "bert, roberta",
            Task::Seq2SeqLm => "marian",
        }
    }
}

#[derive(Clone)]
pub(crate) enum Head {
    /// Logits = hidden · word_embeddingsᵀ (GPT-2's `lm_head`, tied to `wte`).
    TiedLm { bias: Option<Tensor> },
    /// BERT/RoBERTa MLM head: dense → GELU → LayerNorm → tied decoder + bias.
    MaskedLm {
        dense: Linear,
        ln: LayerNorm,
        act: Activation,
        bias: Tensor,
    },
    /// No head; BERT's pooler (dense + tanh on the first token) when the checkpoint has one.
    Base { pooler: Option<Linear> },
    /// `BertForSequenceClassification`: pooler (dense + tanh on `[CLS]`) → dropout →
    /// `classifier`.
    BertClassifier {
        pooler: Linear,
        classifier: Linear,
        dropout: f64,
    },
    /// `RobertaClassificationHead`: the `<s>` state → dropout → `dense` → tanh → dropout →
    /// `out_proj`.
    RobertaClassifier {
        dense: Linear,
        out_proj: Linear,
        dropout: f64,
    },
    /// `GPT2ForSequenceClassification`: `score` (no bias) on the last token that is not
    /// `pad_token_id` (the last token of the row when there is no pad id).
    Gpt2Score {
        score: Linear,
        pad_token_id: Option<u32>,
    },
    /// `…ForQuestionAnswering`: `qa_outputs` maps each token to a start and an end logit.
    QaOutputs { qa_outputs: Linear },
}

impl Head {
    /// Sequence-classification logits `[b, num_labels]` from the last hidden states
    /// `[b, t, h]` (and the input ids, which GPT-2 reads to find each row's last real token).
    pub(crate) fn classify(
        &self,
        hidden: &Tensor,
        input_ids: &Tensor,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let first = || -> Result<Tensor> { Ok(hidden.narrow(1, 0, 1)?.squeeze(1)?) };
        match self {
            Head::BertClassifier {
                pooler,
                classifier,
                dropout,
            } => {
                let pooled = pooler.forward(&first()?)?.tanh()?;
                classifier.forward(&ctx.dropout(&pooled, *dropout)?)
            }
            Head::RobertaClassifier {
                dense,
                out_proj,
                dropout,
            } => {
                let x = ctx.dropout(&first()?, *dropout)?;
                let x = dense.forward(&x)?.tanh()?;
                out_proj.forward(&ctx.dropout(&x, *dropout)?)
            }
            Head::Gpt2Score {
                score,
                pad_token_id,
            } => {
                let (b, t, h) = hidden.dims3()?;
                let dev = hidden.device();
                let last = match pad_token_id {
                    // The rightmost token that is not padding (works for left and right
                    // padding): max over j of j * [id_j != pad], 0 for a row of padding only.
                    Some(pad) => {
                        let ids = input_ids.to_device(dev)?.to_dtype(DType::U32)?;
                        let real = ids.ne(*pad)?.to_dtype(DType::U32)?;
                        let j = Tensor::arange(0u32, t as u32, dev)?.unsqueeze(0)?;
                        real.broadcast_mul(&j)?.max(1)?
                    }
                    None if b != 1 => {
                        return Err(Error::InvalidArgument(format!(
                            "GPT2ForSequenceClassification cannot find the last token of each row of a batch of {b} without a padding token: set `pad_token_id` in config.json (e.g. to the eos id) or in Gpt2Config, or classify one sequence at a time"
                        )));
                    }
                    None => Tensor::full(t as u32 - 1, b, dev)?,
                };
                let rows = Tensor::arange_step(0u32, (b * t) as u32, t as u32, dev)?;
                let index = (rows + last)?;
                let pooled = hidden.reshape((b * t, h))?.index_select(&index, 0)?;
                score.forward(&pooled)
            }
            _ => Err(Error::InvalidArgument(
                "this model has no sequence-classification head; load it with AutoModelForSequenceClassification".into(),
            )),
        }
    }

    /// Start and end logits `[b, t]` each, from the last hidden states.
    pub(crate) fn answer_span(&self, hidden: &Tensor) -> Result<(Tensor, Tensor)> {
        let Head::QaOutputs { qa_outputs } = self else {
            return Err(Error::InvalidArgument(
                "this model has no question-answering head; load it with AutoModelForQuestionAnswering".into(),
            ));
        };
        let logits = qa_outputs.forward(hidden)?;
        let start = logits.narrow(2, 0, 1)?.squeeze(2)?.contiguous()?;
        let end = logits.narrow(2, 1, 1)?.squeeze(2)?.contiguous()?;
        Ok((start, end))
    }
}
