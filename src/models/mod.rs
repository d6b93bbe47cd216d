//! GPT-2, BERT and RoBERTa on one transformer core, numerically identical to Hugging Face
//! transformers and trainable (every op has a backward pass, in [`crate::kernels`]).
//!
//! - `core`: embeddings, attention, MLP, blocks, masks, KV cache, dropout.
//! - `gpt2`, `bert`, `roberta`: Hugging Face names and configs mapped onto the core;
//!   `marian`: the encoder–decoder (`MarianMTModel`) in a file of its own, on the core's
//!   attention, with [`AutoModelForSeq2SeqLM`] (`seq2seq`) in front;
//!   `heads`: what sits on top (LM heads, pooler); `params`: weights loaded or initialised.
//! - [`auto`]: `AutoModelForCausalLM`, `AutoModelForMaskedLM`, `AutoModel`,
//!   `AutoModelForSequenceClassification`, `AutoModelForQuestionAnswering`; `labels`: their
//!   `num_labels` / `id2label` / `problem_type`; `losses`: their losses.
//! - [`PreTrainedModel`]: the one trait the Trainer, the Evaluator, perplexity and generation
//!   use.
mod accessors;
mod activation;
pub mod auto;
pub mod config;
pub mod core;
pub mod device;
mod heads;
mod labels;
mod losses;
mod pretrained;

mod bert;
mod gpt2;
mod inputs;
mod marian;
mod model;
mod params;
mod roberta;
mod seq2seq;
mod summary;

pub use activation::Activation;
pub use auto::{
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
};
pub use config::{BertConfig, Gpt2Config, ModelConfig, RobertaConfig, SUPPORTED_MODEL_TYPES};
pub use core::{EncoderDecoderCache, KvCache, mean_pooling};
pub use device::{DeviceExt, best_device};
pub use heads::Task;
pub use labels::{LabelConfig, ProblemType};
pub use marian::MarianConfig;
pub use model::{
    BaseModelOutput, ForwardArgs, ModelOutput, QuestionAnsweringModelOutput,
    SequenceClassifierOutput, check_weights,
};
pub use params::LoadReport;
pub use pretrained::PreTrainedModel;
pub use seq2seq::AutoModelForSeq2SeqLM;

/// Whether AdamW gives the parameter `name` weight decay. Hugging Face's Trainer decays every
/// parameter except biases and LayerNorm weights; our models have no module types to inspect,
/// so LayerNorms are recognised by name: any path component that is `ln`, starts with `ln_`
/// (GPT-2's `ln_1`, `ln_2`, `ln_f`), or contains `layernorm`, `layer_norm` or `rmsnorm` (BERT's
/// `LayerNorm`, RoBERTa's `layer_norm`), case-insensitively; and any name ending in `.bias` or
/// equal to `bias` (BERT's `cls.predictions.bias`, RoBERTa's `lm_head.bias`).
pub fn uses_weight_decay(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('.').collect();
    if parts.last().is_some_and(|p| *p == "bias") {
        return false;
    }
    !parts.iter().any(|p| {
        *p == "ln"
            || p.starts_with("ln_")
            || p.contains("layernorm")
            || p.contains("layer_norm")
            || p.contains("rmsnorm")
    })
}
