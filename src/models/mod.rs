//! Model families on one contract, numerically identical to Hugging Face transformers and
//! trainable (every op has a backward pass, in [`crate::kernels`]).
//!
//! - `family`: the contract ([`family::Family`]: config, `model_type`, tasks, architecture
//!   names, builder; `Network`: what a built model computes); `registry`: `model_type` to the
//!   family, and [`ModelConfig`], the config of any of them.
//! - One file per family, owning its config, weight names and heads: `gpt2`, `bert`, `roberta`
//!   (BERT's encoder under RoBERTa's names), `marian` (the encoder–decoder), `llama`, `qwen2`,
//!   `mistral`;
//!   `decoder`: the Llama-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU) the
//!   modern decoder families build under their own configs; `decoder_config`: the config keys
//!   they share (rotary settings, token-id lists).
//! - `layers`: the shared layers the families compose (attention, MLP, norms, embeddings and
//!   positions, masks, KV caches), in candle-transformers' spirit.
//! - Written once for every family: `model` (loading, saving, `with_weight_dtype`, the forward
//!   pass of each task), [`auto`] (the `AutoModel*` faces; `seq2seq`: the encoder–decoder's own
//!   calls), `summary`, `params` (weights loaded or initialised), `labels` and `losses` (task
//!   heads' labels and losses), `args` (inputs and outputs).
//! - [`PreTrainedModel`]: the one trait the Trainer, the Evaluator, perplexity and generation
//!   use.
mod accessors;
mod activation;
mod adapted;
mod args;
pub mod auto;
pub mod device;
pub(crate) mod family;
pub mod gguf;
mod handle;
mod heads;
mod inputs;
mod labels;
pub mod layers;
mod losses;
mod model;
mod params;
mod pretrained;
mod quantized;
mod qweights;
pub mod registry;
mod seq2seq;
mod summary;

mod bert;
mod decoder;
mod decoder_config;
mod gpt2;
mod llama;
mod marian;
mod mistral;
mod qwen2;
mod roberta;

pub use activation::Activation;
pub use args::{
    BaseModelOutput, ForwardArgs, ModelOutput, QuestionAnsweringModelOutput, Seq2SeqLMOutput,
    SequenceClassifierOutput,
};
pub use auto::{
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM, AutoModelForSequenceClassification,
};
pub use bert::BertConfig;
pub use decoder_config::{RopeParameters, TokenIds};
pub use device::{DeviceExt, best_device};
pub use family::ModelSize;
pub use gpt2::Gpt2Config;
pub(crate) use handle::{Face, ModelHandle};
pub use heads::Task;
pub use labels::{LabelConfig, ProblemType};
pub use layers::{EncoderDecoderCache, KvCache, mean_pooling};
pub use llama::LlamaConfig;
pub use marian::MarianConfig;
pub use mistral::MistralConfig;
pub use model::check_weights;
pub use params::LoadReport;
pub(crate) use params::{LoraInit, LoraReport, LoraSpec, PEFT_PREFIX, TrainedBias};
pub use pretrained::PreTrainedModel;
pub use qwen2::Qwen2Config;
pub use registry::{ModelConfig, SUPPORTED_MODEL_TYPES};
pub use roberta::RobertaConfig;

/// Whether AdamW gives the parameter `name` weight decay. Hugging Face's Trainer decays every
/// parameter except biases and LayerNorm weights; our models have no module types to inspect,
/// so LayerNorms are recognised by name: any path component that is `ln`, starts with `ln_`
/// (GPT-2's `ln_1`, `ln_2`, `ln_f`), or contains `layernorm`, `layer_norm` or `rmsnorm` (BERT's
/// `LayerNorm`, RoBERTa's `layer_norm`, Llama's `input_layernorm`), is `norm` or ends in `_norm`
/// (Llama's final `model.norm`: transformers' `(?:^|\.)norm(?:$|\.)` and `_norm(?:$|\.)`),
/// case-insensitively; and any name ending in `.bias` or
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
            || *p == "norm"
            || p.ends_with("_norm")
    })
}
