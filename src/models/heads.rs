//! What sits on top of the transformer core: the task of a model ([`Task`]) and the layers that
//! turn hidden states into its outputs ([`Head`]). Model files build them; `model.rs` runs them.
use candle_core::Tensor;

use super::activation::Activation;
use super::core::{LayerNorm, Linear};

/// What sits on top of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Next-token prediction (`AutoModelForCausalLM`): labels are shifted inside.
    CausalLm,
    /// Masked-token prediction (`AutoModelForMaskedLM`): labels where not -100.
    MaskedLm,
    /// No head: hidden states (`AutoModel`).
    Base,
}

impl Task {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Task::CausalLm => "a causal language model (AutoModelForCausalLM)",
            Task::MaskedLm => "a masked language model (AutoModelForMaskedLM)",
            Task::Base => "a bare encoder/decoder (AutoModel)",
        }
    }
    pub(crate) fn supported(self) -> &'static str {
        match self {
            Task::CausalLm => "gpt2",
            Task::MaskedLm => "bert, roberta",
            Task::Base => "gpt2, bert, roberta",
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
}
