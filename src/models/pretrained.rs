//! [`PreTrainedModel`]: the one trait through which the rest of the crate uses a model — the
//! Trainer trains it, the Evaluator and perplexity score it, generation decodes from it. It is
//! Hugging Face's `PreTrainedModel` reduced to what those callers need, and a model of your own
//! (any candle code with named parameters) becomes trainable by implementing it.
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde_json::Value;

use super::args::{ForwardArgs, ModelOutput};
use super::heads::Task;
use super::layers::{EncoderDecoderCache, KvCache};
use crate::Result;

/// A model the Trainer, the Evaluator, perplexity and generation can use.
pub trait PreTrainedModel: Clone {
    /// The full forward pass: logits `[batch, seq, vocab]`, and the mean loss when
    /// `args.labels` is set (Hugging Face semantics: -100 ignored; a causal model shifts its
    /// labels inside).
    fn forward_with(&self, args: &ForwardArgs) -> Result<ModelOutput>;
    /// The mean loss of `args.labels` alone, as `forward_with(args).loss`: what a training
    /// step needs. Language models override it to skip the logits of positions the loss
    /// ignores (padding, unmasked tokens), which no one reads in training.
    fn loss_with(&self, args: &ForwardArgs) -> Result<Tensor> {
        self.forward_with(args)?.loss.ok_or_else(|| {
            crate::Error::InvalidArgument(
                "the model returned no loss: set labels (ForwardArgs::labels) for a loss".into(),
            )
        })
    }
    /// What the model predicts: causal LM, masked LM, ...
    fn task(&self) -> Task;
    /// The parameters, by Hugging Face name (handles made by [`share`](Self::share) hold the
    /// same ones).
    fn varmap(&self) -> &VarMap;
    /// Where the parameters live; inputs are moved there.
    fn device(&self) -> &Device;
    /// Writes `config.json` and `model.safetensors` to `dir` (created if needed).
    fn save_pretrained(&self, dir: &Path) -> Result<()>;
    /// The weights file [`save_pretrained`](Self::save_pretrained) writes, which a Trainer
    /// checkpoint's weights are resumed from (`adapter_model.safetensors` for a LoRA model).
    fn weights_file_name(&self) -> &'static str {
        "model.safetensors"
    }
    /// The model's `config.json` as a value (with `model_type`), for summaries.
    fn config_json(&self) -> Value;
    /// The vocabulary size, to reject out-of-range token ids before any work starts.
    fn vocab_size(&self) -> Option<usize> {
        None
    }
    /// The longest sequence the model's positions allow.
    fn max_positions(&self) -> Option<usize> {
        None
    }
    /// The forward pass of the new tokens `args.input_ids` after those already in `cache`
    /// (whose keys and values it then holds too); `args.attention_mask` covers cached and new
    /// tokens. Models without a cache say so, and generation recomputes the whole prefix instead.
    fn forward_with_cache(&self, _args: &ForwardArgs, _cache: &mut KvCache) -> Result<ModelOutput> {
        Err(crate::Error::InvalidArgument(
            "this model has no KV cache; generate without one".into(),
        ))
    }
    /// Whether [`forward_with_cache`](Self::forward_with_cache) is implemented (generation then
    /// feeds one token per step instead of the whole prefix).
    fn has_kv_cache(&self) -> bool {
        false
    }
    /// Whether the model is an encoder–decoder (generation then encodes the sources once with
    /// [`encode`](Self::encode) and decodes with [`decode_cached`](Self::decode_cached)).
    fn is_encoder_decoder(&self) -> bool {
        false
    }
    /// Encoder–decoders: runs the encoder once over `args.input_ids` (and `attention_mask`)
    /// and returns the decoding state, each source repeated `rows_per_source` times (beams, or
    /// returned sequences), with room for `capacity` decoder tokens.
    fn encode(
        &self,
        _args: &ForwardArgs,
        _rows_per_source: usize,
        _capacity: usize,
    ) -> Result<EncoderDecoderCache> {
        Err(crate::Error::InvalidArgument(
            "this model has no encoder; encode is for encoder-decoder models (AutoModelForSeq2SeqLM)".into(),
        ))
    }
    /// Encoder–decoders: the logits `[rows, t, vocab]` of the new decoder tokens
    /// `decoder_input_ids [rows, t]` after those already in `cache` (which then holds theirs).
    fn decode_cached(
        &self,
        _decoder_input_ids: &Tensor,
        _cache: &mut EncoderDecoderCache,
    ) -> Result<Tensor> {
        Err(crate::Error::InvalidArgument(
            "this model has no decoder over an encoder; decode_cached is for encoder-decoder models (AutoModelForSeq2SeqLM)".into(),
        ))
    }
    /// The generation settings the checkpoint came with: `generation_config.json` when the folder
    /// had one, else `config.json`, as a JSON value (`GenerationConfig` parses it).
    fn generation_config_json(&self) -> Value {
        self.config_json()
    }
    /// Training mode (dropout on) or evaluation mode (off).
    fn set_training(&mut self, _training: bool) {}
    /// Reseeds the dropout stream: the same seed gives the same dropout masks on every device.
    fn set_seed(&mut self, _seed: u64) {}
    /// Mixed precision: activations and matrix products in `dtype` (bf16) over f32
    /// parameters, which the forward casts where it uses them (what `TrainingArguments::bf16`
    /// asks); `None` computes in the parameters' dtype. A model without a mixed-precision
    /// forward refuses any dtype, so the setting is never silently ignored.
    fn set_compute_dtype(&mut self, dtype: Option<DType>) -> Result<()> {
        match dtype {
            None => Ok(()),
            Some(d) => Err(crate::Error::Unsupported(format!(
                "this model has no mixed-precision forward ({d:?} activations over f32 weights): implement PreTrainedModel::set_compute_dtype for it, or train in f32 (bf16: false)"
            ))),
        }
    }
    /// The compute dtype set by [`set_compute_dtype`](Self::set_compute_dtype), if any.
    fn compute_dtype(&self) -> Option<DType> {
        None
    }
    /// Every parameter with its name, sorted by name.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let data = match self.varmap().data().lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
    /// A second handle on the same weights, with its own mode and dropout seed: what the
    /// Trainer, the Evaluator and generation take per call (cheap, and training through it
    /// trains the model). The crate's models override it (their `Clone` is an independent deep
    /// copy); a model whose `Clone` already shares its weights keeps this default.
    fn share(&self) -> Self {
        self.clone()
    }
    /// A handle in evaluation mode on the same weights ([`share`](Self::share)), so scoring a
    /// model that is training changes neither its mode nor its dropout stream.
    fn eval_copy(&self) -> Self {
        let mut m = self.share();
        m.set_training(false);
        m
    }
}
