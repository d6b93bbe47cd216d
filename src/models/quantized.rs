//! `AutoModelForCausalLM::with_quantized_weights`: a copy of a model loaded `from_gguf` whose
//! dense layers multiply by the GGUF file's quantized blocks (our `Q4_1` / `Q8_0` CPU kernels,
//! else candle's quantized matmul: `qweights`) instead of their f32 dequantization, for generation.
//!
//! The copy is the same network: the family builds it again over the same f32 tensors
//! (embeddings, norms) with the quantized matrices in place of the dense ones
//! ([`Params::with_quantized`]), so the KV cache, batches, beams and attention maps work as for
//! any model. What needs f32 weights is refused with the way out: training (the quantized
//! product has no backward pass), mixed precision, LoRA, saving, resizing, `with_weight_dtype`.
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::auto::AutoModelForCausalLM;
use super::gguf::quantized_from_gguf;
use super::layers::DropoutStream;
use super::model::{DEFAULT_SEED, Model};
use super::params::Params;
use super::qweights::QuantizedWeights;
use crate::gguf::GgufFile;
use crate::{Error, Result};

impl AutoModelForCausalLM {
    /// A copy for generation that keeps the GGUF file's quantized weights (`Q4_1`, `Q8_0`, ...)
    /// in every dense layer, the tied LM head included, and multiplies by them with quantized
    /// kernels (activations quantized to 8 bits per block, as llama.cpp does): about a
    /// fifth of the f32 bytes to read per token, and logits within the quantization of the
    /// activations of the f32 model's (tests/gguf_quantized.rs measures both). Embeddings and
    /// norms stay f32.
    ///
    /// Only for a model from [`from_gguf`](Self::from_gguf) whose weights are still the file's
    /// (a trained or merged model is refused rather than silently reverted). The copy cannot
    /// train, save, resize or run mixed precision: do those on the f32 model `from_gguf` gives.
    ///
    /// ```no_run
    /// use massivetext::prelude::*;
    /// use massivetext::generate::{GenerationConfig, GenerationMixin};
    /// let model = AutoModelForCausalLM::from_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", &Device::Cpu)?
    ///     .with_quantized_weights()?;
    /// let ids = Tensor::new(&[[1u32, 9690, 198]], &Device::Cpu)?;
    /// let out = model.generate(&ids, &GenerationConfig { max_new_tokens: 8, ..Default::default() })?;
    /// # Ok::<(), massivetext::Error>(())
    /// ```
    pub fn with_quantized_weights(&self) -> Result<Self> {
        Ok(Self(self.0.with_quantized_weights()?))
    }

    /// Whether this is a [`with_quantized_weights`](Self::with_quantized_weights) copy.
    pub fn has_quantized_weights(&self) -> bool {
        self.0.quantized.is_some()
    }
}

impl Model {
    /// See [`AutoModelForCausalLM::with_quantized_weights`].
    pub(crate) fn with_quantized_weights(&self) -> Result<Self> {
        if self.quantized.is_some() {
            return Ok(self.clone());
        }
        let Some(path) = self.gguf.clone() else {
            return Err(Error::Unsupported(
                "with_quantized_weights keeps the quantized blocks of a GGUF file, and this model was not loaded from one: load it with AutoModelForCausalLM::from_gguf(file, &device)".into(),
            ));
        };
        if self.dtypes != (DType::F32, None) || self.compute_dtype.is_some() {
            return Err(Error::Unsupported(
                "with_quantized_weights starts from the f32 model of from_gguf, not a with_weight_dtype or mixed-precision copy".into(),
            ));
        }
        let file = GgufFile::open(&path)?;
        let tensors = quantized_from_gguf(&file, &self.extra, &self.device)?;
        let mut dense = self.tensors();
        for (name, q) in &tensors {
            // the tied head's blocks are the embeddings'
            let own = match name.as_str() {
                "lm_head.weight" if !dense.contains_key(name) => "model.embed_tokens.weight",
                n => n,
            };
            let Some(current) = dense.get(own) else {
                return Err(file.error(format!(
                    "tensor `{name}` has no weight `{own}` in the model; load the model from this file with from_gguf"
                )));
            };
            same_as_file(&file, own, current, &q.0.dequantize(&Device::Cpu)?)?;
        }
        for name in tensors.keys() {
            dense.remove(name);
        }
        let q = Arc::new(QuantizedWeights {
            tensors,
            source: path.to_path_buf(),
        });
        let p =
            Params::loaded(dense, Vec::new(), &path, &self.device, DType::F32).with_quantized(q);
        let task = (self.task, self.labels.clone());
        let (mut m, report) = Model::build(
            self.config.clone(),
            self.extra.clone(),
            p,
            task,
            &self.device,
        )?;
        if !report.unused.is_empty() || !report.newly_initialized.is_empty() {
            return Err(file.error(format!(
                "the quantized model does not use {:?} and lacks {:?}; the config and the file disagree",
                report.unused, report.newly_initialized
            )));
        }
        m.gguf = Some(path);
        m.generation = self.generation.clone();
        m.training = false;
        m.dropout = DropoutStream::new(DEFAULT_SEED);
        Ok(m)
    }

    /// An error naming `what` for a `with_quantized_weights` copy, which computes but has no
    /// f32 weights to train, save or convert.
    pub(crate) fn refuse_quantized(&self, what: &str) -> Result<()> {
        match &self.quantized {
            None => Ok(()),
            Some(q) => Err(Error::Unsupported(format!(
                "{what} is not available on a model with quantized weights (with_quantized_weights of {}): the quantized products have no backward pass and no f32 weights; use the dequantized f32 model of AutoModelForCausalLM::from_gguf for that, and its with_quantized_weights copy for generation",
                q.source.display()
            ))),
        }
    }
}

/// `current` (the model's weight `name`) equals `file` (the file's blocks, dequantized), or an
/// error saying the model changed since `from_gguf`.
fn same_as_file(gguf: &GgufFile, name: &str, current: &Tensor, file: &Tensor) -> Result<()> {
    let differs = if current.dims() != file.dims() {
        true
    } else {
        let current = current.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        (current - file)?.abs()?.max_all()?.to_scalar::<f32>()? != 0.0
    };
    if differs {
        return Err(gguf.error(format!(
            "the model's `{name}` is no longer the file's (trained, merged or resized since from_gguf); quantized weights would silently drop the change: generate with the f32 model, or quantize the changed model with llama.cpp"
        )));
    }
    Ok(())
}
