//! The `AutoModel*` faces — Hugging Face's entry points — written once for every family and
//! task: loading (folder, Hub, revision, dtype), `from_config`, saving, `with_weight_dtype`, the
//! summary, parameters and mode come from one macro; each face then adds the calls of its task.
//! The registry picks the family from `config.json`'s `model_type`.
//!
//! ```
//! use massivetext::prelude::*;
//! let config = Gpt2Config { n_layer: 2, n_embd: 64, n_head: 4, n_positions: 32, ..Gpt2Config::small(100) };
//! let model = AutoModelForCausalLM::from_config(&config, &Device::Cpu)?;
//! let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
//! let out = model.forward(&ids, None)?;
//! assert_eq!(out.logits.dims(), &[1, 3, 100]);
//! # Ok::<(), massivetext::Error>(())
//! ```
use std::ffi::OsStr;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde_json::Value;

use super::args::{BaseModelOutput, ForwardArgs, ModelOutput, QuestionAnsweringModelOutput};
use super::heads::Task;
use super::labels::{LabelConfig, ProblemType};
use super::layers::{DropoutStream, EncoderDecoderCache, KvCache, mean_pooling};
use super::model::{DEFAULT_SEED, Model};
use super::params::LoadReport;
use super::pretrained::PreTrainedModel;
use super::registry::ModelConfig;
use crate::{Result, hub};

macro_rules! common {
    ($ty:ident, $task:expr) => {
        impl $ty {
            /// Loads a model from a local folder or a Hub id (through the Hugging Face cache,
            /// or a download when online), on [`best_device`](super::device::best_device), f32.
            ///
            /// `id` is a `&str`, `String`, `&Path` or `PathBuf`. A download also fetches the
            /// repository's tokenizer files, so `Tokenizer::from_pretrained(id)` finds them.
            pub fn from_pretrained(id: impl AsRef<OsStr>) -> Result<Self> {
                Self::from_pretrained_with(id, &super::device::best_device(), DType::F32)
            }

            /// A copy for inference with its weight matrices stored in bf16 (`DType::BF16`)
            /// and every product, activation and the KV cache in f32: decoding on a CPU reads
            /// each weight once per token, and this halves those bytes (the measured gain is in
            /// docs/benchmarks.md, Generation). Outputs then follow the bf16-rounded weights (about 3 significant digits), not
            /// the f32 ones; `DType::F32` converts back. Train the f32 model, not this copy.
            pub fn with_weight_dtype(&self, dtype: DType) -> Result<Self> {
                Ok(Self(self.0.with_weight_dtype(dtype)?))
            }

            /// Mixed precision, as `torch.autocast(dtype=torch.bfloat16)`: this handle runs its
            /// matrix products (and the activations they produce) in `dtype` (`DType::BF16`)
            /// while the parameters stay f32, cast where they are used, so gradients and the
            /// optimiser stay f32; norms, softmax, the residual stream and losses stay f32, and
            /// outputs come back in f32.
            /// What `TrainingArguments { bf16: true, .. }` sets; `DType::F32` turns it off.
            /// Needs f32 parameters (not a `with_weight_dtype` copy).
            pub fn with_compute_dtype(mut self, dtype: DType) -> Result<Self> {
                self.0.set_compute_dtype(Some(dtype))?;
                Ok(self)
            }

            /// As `from_pretrained`, at a branch, tag or commit of the Hub repository.
            pub fn from_pretrained_revision(id: impl AsRef<OsStr>, revision: &str) -> Result<Self> {
                let opts = hub::HubOptions::from_env().with_revision(revision);
                Self::from_pretrained_hub(id, &opts, &super::device::best_device(), DType::F32)
            }

            /// As `from_pretrained`, on a chosen device and dtype (bf16 is meant for GPUs).
            pub fn from_pretrained_with(
                id: impl AsRef<OsStr>,
                device: &Device,
                dtype: DType,
            ) -> Result<Self> {
                Self::from_pretrained_hub(id, &hub::HubOptions::from_env(), device, dtype)
            }

            /// As `from_pretrained`, with explicit hub options (cache folder, offline,
            /// revision, endpoint), device and dtype.
            pub fn from_pretrained_hub(
                id: impl AsRef<OsStr>,
                opts: &hub::HubOptions,
                device: &Device,
                dtype: DType,
            ) -> Result<Self> {
                let id = hub::id_string(id.as_ref());
                let dir = hub::resolve_model_with(&id, opts)?;
                Ok(Self(Model::load(&dir, device, dtype, $task, None)?))
            }

            /// Loads from a folder holding `config.json` and `model.safetensors`.
            pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
                Ok(Self(Model::load(
                    dir.as_ref(),
                    device,
                    DType::F32,
                    $task,
                    None,
                )?))
            }

            /// Loads from a folder and also returns what its weights file holds that the model
            /// does not use (transformers' "Some weights of the model checkpoint were not
            /// used") and the head weights it lacked.
            pub fn from_dir_reported(
                dir: impl AsRef<Path>,
                device: &Device,
            ) -> Result<(Self, LoadReport)> {
                let (m, r) = Model::load_reported(dir.as_ref(), device, DType::F32, $task, None)?;
                Ok((Self(m), r))
            }

            /// A new model with Hugging Face's initialisation (normal(0, initializer_range)
            /// weights, zero biases, unit LayerNorm weights), seeded with 42, in training mode.
            pub fn from_config(config: impl Into<ModelConfig>, device: &Device) -> Result<Self> {
                Self::from_config_seeded(config, device, DEFAULT_SEED)
            }

            /// As `from_config`, with another initialisation seed.
            pub fn from_config_seeded(
                config: impl Into<ModelConfig>,
                device: &Device,
                seed: u64,
            ) -> Result<Self> {
                Ok(Self(Model::from_config(
                    config.into(),
                    device,
                    $task,
                    seed,
                )?))
            }

            /// Writes `config.json` and `model.safetensors` (each via a temporary file and a
            /// rename) that transformers' `from_pretrained` loads.
            pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
                self.0.save(dir.as_ref())
            }

            super::accessors::weights_and_mode!();

            /// A second handle on the same weights (nothing copied): training through one
            /// trains the other, as Python's `model` and `trainer.model` are one object. Pass
            /// `model.share()` to the `Trainer` to keep using `model` as it trains; `clone()`
            /// is an independent copy. Mode and dropout seed are each handle's own.
            pub fn share(&self) -> Self {
                Self(self.0.clone())
            }

            /// An independent copy, as `clone()`, with the error instead of a panic should the
            /// device fail to allocate the copy.
            pub fn try_clone(&self) -> Result<Self> {
                Ok(Self(self.0.deep_copy()?))
            }

            /// Resizes the token embeddings (and the tied LM head and its bias) to `new_size`
            /// rows, after `tokenizer.add_tokens` / `add_special_tokens`; returns the new size.
            /// New rows start at the mean of the old ones, as transformers'
            /// `resize_token_embeddings` does by default (`mean_resizing=True`, without its
            /// 1e-9-scaled covariance noise); a shrink keeps the first `new_size` rows. Build
            /// the Trainer after resizing; clones made before keep the old table.
            pub fn resize_token_embeddings(&mut self, new_size: usize) -> Result<usize> {
                self.0.resize_token_embeddings(new_size)?;
                Ok(new_size)
            }

            /// The architecture (`BertModel`, `GPT2LMHeadModel`, ...), layers, width, heads,
            /// parameters, device, dtype and mode, one per line.
            pub fn summary(&self) -> String {
                self.0.summary_text()
            }

            /// Renders the summary as a table in an evcxr notebook (text for other front ends).
            pub fn evcxr_display(&self) {
                self.0.evcxr_display();
            }
        }

        impl super::handle::Face for $ty {
            fn handle(&self) -> super::handle::ModelHandle {
                super::handle::ModelHandle(self.0.clone())
            }
            fn from_handle(handle: super::handle::ModelHandle) -> Self {
                Self(handle.0)
            }
        }

        impl Clone for $ty {
            /// An independent copy: new parameters with the same values, so training the copy
            /// (or the original) leaves the other as it was. [`share`](Self::share) is the
            /// handle on the same weights.
            fn clone(&self) -> Self {
                // copying tensors fails only when the device cannot allocate them
                Self(self.0.deep_copy().expect("copying the model's parameters"))
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt_debug(stringify!($ty), f)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0.summary_text())
            }
        }
    };
}

/// A decoder with a language-model head (GPT-2).
pub struct AutoModelForCausalLM(pub(super) Model);

/// An encoder with a masked-language-model head (BERT, RoBERTa).
pub struct AutoModelForMaskedLM(Model);

/// The bare model: hidden states (and BERT's pooler output), for features and sentence
/// embeddings.
pub struct AutoModel(Model);

/// An encoder–decoder with a language-model head on the decoder (`MarianMTModel`):
/// translation and summarization models. `forward_with` takes the sources as `input_ids`
/// (with their `attention_mask`) and the targets as `labels` (shifted right inside to make the
/// decoder's inputs) or as `decoder_input_ids`; `generate_with` (from
/// [`GenerationMixin`](crate::generate::GenerationMixin)) returns the decoder's sequences,
/// each starting with the decoder start token. Its own calls are in `seq2seq.rs`.
pub struct AutoModelForSeq2SeqLM(pub(super) Model);

/// A model with a sequence-classification head (BERT: pooler + dropout + `classifier`;
/// RoBERTa: `classifier.dense` + tanh + `classifier.out_proj` on `<s>`; GPT-2: `score` on the
/// last real token). `num_labels`, `id2label` and `problem_type` come from `config.json` or a
/// [`LabelConfig`]; a checkpoint without the head (a bare BERT, a sentence-transformers model)
/// gets a new one, initialised as transformers does, and a warning naming its weights.
///
/// ```
/// use massivetext::prelude::*;
/// use massivetext::models::LabelConfig;
/// let config = BertConfig { num_hidden_layers: 1, hidden_size: 32, num_attention_heads: 2, intermediate_size: 64, ..BertConfig::small(50) };
/// let model = AutoModelForSequenceClassification::from_config_with_labels(
///     &config, LabelConfig::from_names(&["neg", "pos"]), &Device::Cpu)?;
/// let ids = Tensor::new(&[[2u32, 7, 9], [2, 5, 0]], &Device::Cpu)?;
/// let labels = Tensor::new(&[1u32, 0], &Device::Cpu)?;
/// let out = model.forward_with(&ForwardArgs::new(&ids).labels(&labels))?;
/// assert_eq!(out.logits.dims(), &[2, 2]);
/// assert!(out.loss.is_some());
/// # Ok::<(), massivetext::Error>(())
/// ```
pub struct AutoModelForSequenceClassification(Model);

/// An encoder with an extractive question-answering head (`qa_outputs`: a start and an end
/// logit per token), BERT or RoBERTa.
pub struct AutoModelForQuestionAnswering(Model);

common!(AutoModelForCausalLM, Task::CausalLm);
common!(
    AutoModelForSequenceClassification,
    Task::SequenceClassification
);
common!(AutoModelForQuestionAnswering, Task::QuestionAnswering);

macro_rules! labelled {
    ($ty:ident, $task:expr) => {
        impl $ty {
            /// As `from_pretrained`, with these labels instead of the checkpoint's
            /// (transformers' `from_pretrained(id, num_labels=4)`).
            pub fn from_pretrained_with_labels(
                id: impl AsRef<OsStr>,
                labels: LabelConfig,
            ) -> Result<Self> {
                let id = hub::id_string(id.as_ref());
                let dir = hub::resolve_model_with(&id, &hub::HubOptions::from_env())?;
                let device = super::device::best_device();
                Ok(Self(Model::load(
                    &dir,
                    &device,
                    DType::F32,
                    $task,
                    Some(labels),
                )?))
            }

            /// As `from_config`, with these labels (else transformers' default: 2).
            pub fn from_config_with_labels(
                config: impl Into<ModelConfig>,
                labels: LabelConfig,
                device: &Device,
            ) -> Result<Self> {
                Ok(Self(Model::from_config_labels(
                    config.into(),
                    device,
                    ($task, labels),
                    DEFAULT_SEED,
                )?))
            }

            /// `num_labels`, `id2label`, `problem_type`.
            pub fn labels(&self) -> &LabelConfig {
                &self.0.labels
            }

            pub fn num_labels(&self) -> usize {
                self.0.labels.num_labels()
            }
        }
    };
}

labelled!(
    AutoModelForSequenceClassification,
    Task::SequenceClassification
);
labelled!(AutoModelForQuestionAnswering, Task::QuestionAnswering);

impl AutoModelForSequenceClassification {
    /// Logits `[batch, num_labels]` for `input_ids` (u32 `[batch, seq]`).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<ModelOutput> {
        let mut args = ForwardArgs::new(input_ids);
        args.attention_mask = attention_mask.cloned();
        self.0.forward_classification(&args)
    }

    /// The full call: `labels` → loss by `problem_type` (cross-entropy for class ids `[batch]`,
    /// MSE for regression, BCE-with-logits for multi-label `[batch, num_labels]` floats).
    pub fn forward_with(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        self.0.forward_classification(args)
    }

    /// Fixes the loss (`None`: inferred per call from `num_labels` and the labels' dtype, as
    /// transformers does the first time).
    pub fn set_problem_type(&mut self, problem_type: Option<ProblemType>) {
        self.0.labels.problem_type = problem_type;
    }

    /// The name of label `id` (`id2label`).
    pub fn id2label(&self, id: usize) -> String {
        self.0.labels.label(id)
    }
}

impl AutoModelForQuestionAnswering {
    /// Start and end logits `[batch, seq]` for `input_ids` (u32 `[batch, seq]`).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<QuestionAnsweringModelOutput> {
        let mut args = ForwardArgs::new(input_ids);
        args.attention_mask = attention_mask.cloned();
        self.0.forward_qa(&args)
    }

    /// The full call: `start_positions` / `end_positions` → loss.
    pub fn forward_with(&self, args: &ForwardArgs) -> Result<QuestionAnsweringModelOutput> {
        self.0.forward_qa(args)
    }
}
common!(AutoModelForMaskedLM, Task::MaskedLm);
common!(AutoModel, Task::Base);
common!(AutoModelForSeq2SeqLM, Task::Seq2SeqLm);

/// `config()` of the faces whose models may be of any family with the head: the tagged config.
macro_rules! any_config {
    ($($ty:ident),*) => {$(
        impl $ty {
            pub fn config(&self) -> &ModelConfig {
                &self.0.config
            }
        }
    )*};
}
any_config!(
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForQuestionAnswering
);

impl AutoModelForCausalLM {
    /// Logits `[batch, seq, vocab]` for `input_ids` (u32 `[batch, seq]`).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<ModelOutput> {
        let mut args = ForwardArgs::new(input_ids);
        args.attention_mask = attention_mask.cloned();
        self.0.forward_lm(&args, None)
    }

    /// The full call: labels → loss (shifted inside), attentions, hidden states.
    pub fn forward_with(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        self.0.forward_lm(args, None)
    }

    /// Runs the new tokens `input_ids` after those already in `cache`, and adds theirs to it:
    /// feed a prompt once, then one token at a time.
    pub fn forward_cached(&self, input_ids: &Tensor, cache: &mut KvCache) -> Result<ModelOutput> {
        self.0.forward_lm(&ForwardArgs::new(input_ids), Some(cache))
    }

    /// As `forward_cached`, with all arguments (an attention mask covers cached + new tokens).
    pub fn forward_with_cache(
        &self,
        args: &ForwardArgs,
        cache: &mut KvCache,
    ) -> Result<ModelOutput> {
        self.0.forward_lm(args, Some(cache))
    }
}

impl AutoModelForMaskedLM {
    /// Logits `[batch, seq, vocab]` for `input_ids` (u32 `[batch, seq]`).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<ModelOutput> {
        let mut args = ForwardArgs::new(input_ids);
        args.attention_mask = attention_mask.cloned();
        self.0.forward_lm(&args, None)
    }

    /// The full call: labels → loss (no shift; -100 ignored), attentions, hidden states.
    pub fn forward_with(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        self.0.forward_lm(args, None)
    }
}

impl AutoModel {
    /// Hidden states `[batch, seq, hidden]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<BaseModelOutput> {
        let mut args = ForwardArgs::new(input_ids);
        args.attention_mask = attention_mask.cloned();
        self.0.forward_base(&args)
    }

    pub fn forward_with(&self, args: &ForwardArgs) -> Result<BaseModelOutput> {
        self.0.forward_base(args)
    }

    /// Sentence embeddings `[batch, hidden]`: the mean of the last hidden states over the real
    /// (unmasked) tokens.
    pub fn encode(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let out = self.forward(input_ids, attention_mask)?;
        let mask = match attention_mask {
            Some(m) => m.clone(),
            None => Tensor::ones(input_ids.dims(), DType::F32, input_ids.device())?,
        };
        mean_pooling(&out.last_hidden_state, &mask)
    }
}

/// `PreTrainedModel` for a face: one impl, each face saying how its forward pass reads.
macro_rules! pretrained {
    ($ty:ident, |$m:ident, $args:ident| $forward:expr) => {
        impl PreTrainedModel for $ty {
            fn forward_with(&self, $args: &ForwardArgs) -> Result<ModelOutput> {
                let $m = &self.0;
                $forward
            }
            fn loss_with(&self, args: &ForwardArgs) -> Result<Tensor> {
                match self.0.task {
                    Task::CausalLm | Task::MaskedLm | Task::Seq2SeqLm => self.0.loss_lm(args),
                    _ => self.forward_with(args)?.loss.ok_or_else(|| {
                        crate::Error::InvalidArgument(
                            "the model returned no loss: set labels (ForwardArgs::labels) for a loss".into(),
                        )
                    }),
                }
            }
            fn task(&self) -> Task {
                self.0.task
            }
            fn varmap(&self) -> &VarMap {
                &self.0.varmap
            }
            fn device(&self) -> &Device {
                &self.0.device
            }
            fn save_pretrained(&self, dir: &Path) -> Result<()> {
                self.0.save(dir)
            }
            fn config_json(&self) -> Value {
                self.0.config_json()
            }
            fn vocab_size(&self) -> Option<usize> {
                Some(self.0.config.vocab_size())
            }
            fn max_positions(&self) -> Option<usize> {
                Some(self.0.config.max_positions())
            }
            fn set_training(&mut self, training: bool) {
                self.0.training = training;
            }
            fn set_seed(&mut self, seed: u64) {
                self.0.dropout = DropoutStream::new(seed);
            }
            fn set_compute_dtype(&mut self, dtype: Option<DType>) -> Result<()> {
                self.0.set_compute_dtype(dtype)
            }
            fn compute_dtype(&self) -> Option<DType> {
                self.0.compute_dtype
            }
            fn named_parameters(&self) -> Vec<(String, Var)> {
                self.0.named_parameters()
            }
            fn forward_with_cache(
                &self,
                args: &ForwardArgs,
                cache: &mut KvCache,
            ) -> Result<ModelOutput> {
                if !self.has_kv_cache() {
                    return Err(crate::Error::InvalidArgument(
                        "this model has no KV cache; generate without one".into(),
                    ));
                }
                self.0.forward_lm(args, Some(cache))
            }
            fn has_kv_cache(&self) -> bool {
                self.0.task == Task::CausalLm && self.0.net.has_kv_cache()
            }
            fn is_encoder_decoder(&self) -> bool {
                self.0.task == Task::Seq2SeqLm
            }
            fn encode(
                &self,
                args: &ForwardArgs,
                rows_per_source: usize,
                capacity: usize,
            ) -> Result<EncoderDecoderCache> {
                self.0.start_decoding(args, rows_per_source, capacity)
            }
            fn decode_cached(
                &self,
                decoder_input_ids: &Tensor,
                cache: &mut EncoderDecoderCache,
            ) -> Result<Tensor> {
                self.0.decode_cached(decoder_input_ids, cache)
            }
            fn generation_config_json(&self) -> Value {
                self.0.generation_config_json()
            }
            fn share(&self) -> Self {
                Self(self.0.clone())
            }
        }
    };
}

pretrained!(AutoModelForCausalLM, |m, args| m.forward_lm(args, None));
pretrained!(AutoModelForMaskedLM, |m, args| m.forward_lm(args, None));
pretrained!(AutoModelForSeq2SeqLM, |m, args| m.forward_lm(args, None));
pretrained!(AutoModelForSequenceClassification, |m, args| m
    .forward_classification(args));
// The trainer sees one logits tensor: start and end stacked as `[batch, seq, 2]`.
pretrained!(AutoModelForQuestionAnswering, |m, args| {
    let out = m.forward_qa(args)?;
    Ok(ModelOutput {
        logits: Tensor::stack(&[&out.start_logits, &out.end_logits], 2)?,
        loss: out.loss,
        attentions: out.attentions,
        hidden_states: out.hidden_states,
    })
});
