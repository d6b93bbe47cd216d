//! [`AutoModelForSeq2SeqLM`]: transformers' entry point for encoder–decoder language models
//! (Marian), with the same face as the other `AutoModel*`s and the [`PreTrainedModel`] trait,
//! so the Trainer trains it and `GenerationMixin::generate_with` translates with it.
//!
//! ```
//! use massivetext::prelude::*;
//! let config = MarianConfig {
//!     d_model: 32, encoder_layers: 1, decoder_layers: 1, encoder_attention_heads: 2,
//!     decoder_attention_heads: 2, encoder_ffn_dim: 64, decoder_ffn_dim: 64,
//!     max_position_embeddings: 64, ..MarianConfig::small(100, 99, 0)
//! };
//! let model = AutoModelForSeq2SeqLM::from_config(&config, &Device::Cpu)?;
//! let src = Tensor::new(&[[5u32, 6, 7, 0], [8, 9, 0, 99]], &Device::Cpu)?;
//! let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 1, 0]], &Device::Cpu)?;
//! let labels = Tensor::new(&[[10i64, 11, 0], [12, 0, -100]], &Device::Cpu)?;
//! // the labels, shifted right behind the decoder start token, are the decoder's inputs
//! let out = model.forward_with(&ForwardArgs::new(&src).attention_mask(&mask).labels(&labels))?;
//! assert_eq!(out.logits.dims(), &[2, 3, 100]);
//! assert!(out.loss.is_some());
//! // translation: beam search from the decoder start token
//! let gen_cfg = GenerationConfig { max_new_tokens: 5, num_beams: 2, ..model.generation_config()? };
//! let out = model.generate_with(&ForwardArgs::new(&src).attention_mask(&mask), &gen_cfg)?;
//! assert_eq!(out.dim(0)?, 2);
//! assert!(out.to_vec2::<u32>()?.iter().all(|row| row[0] == 99));
//! # Ok::<(), massivetext::Error>(())
//! ```
use std::ffi::OsStr;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde_json::Value;

use super::core::{DropoutStream, EncoderDecoderCache};
use super::heads::Task;
use super::marian::{ARCHITECTURE, Marian, MarianConfig};
use super::model::{DEFAULT_SEED, ForwardArgs, ModelOutput};
use super::params::LoadReport;
use super::pretrained::PreTrainedModel;
use super::summary::{device_name, human_count};
use crate::{Result, display, hub};

/// An encoder–decoder with a language-model head on the decoder (`MarianMTModel`):
/// translation and summarization models. `forward_with` takes the sources as `input_ids`
/// (with their `attention_mask`) and the targets as `labels` (shifted right inside to make the
/// decoder's inputs) or as `decoder_input_ids`; `generate_with` (from
/// [`GenerationMixin`](crate::generate::GenerationMixin)) returns the decoder's sequences,
/// each starting with the decoder start token.
#[derive(Clone)]
pub struct AutoModelForSeq2SeqLM(Marian);

impl AutoModelForSeq2SeqLM {
    /// Loads a model from a local folder or a Hub id (through the Hugging Face cache, or a
    /// download when online), on [`best_device`](super::device::best_device), f32.
    pub fn from_pretrained(id: impl AsRef<OsStr>) -> Result<Self> {
        Self::from_pretrained_with(id, &super::device::best_device(), DType::F32)
    }

    /// As `from_pretrained`, on a chosen device and dtype.
    pub fn from_pretrained_with(
        id: impl AsRef<OsStr>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let id = hub::id_string(id.as_ref());
        let dir = hub::resolve_model_with(&id, &hub::HubOptions::from_env())?;
        Ok(Self(Marian::load(&dir, device, dtype)?))
    }

    /// Loads from a folder holding `config.json` and `model.safetensors`.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Ok(Self(Marian::load(dir.as_ref(), device, DType::F32)?))
    }

    /// Loads from a folder and also returns what its weights file holds that the model does
    /// not use (transformers' "Some weights of the model checkpoint were not used").
    pub fn from_dir_reported(dir: impl AsRef<Path>, device: &Device) -> Result<(Self, LoadReport)> {
        let (m, r) = Marian::load_reported(dir.as_ref(), device, DType::F32)?;
        Ok((Self(m), r))
    }

    /// A new model with transformers' initialisation, seeded with 42, in training mode.
    pub fn from_config(config: impl Into<MarianConfig>, device: &Device) -> Result<Self> {
        Self::from_config_seeded(config, device, DEFAULT_SEED)
    }

    /// As `from_config`, with another initialisation seed.
    pub fn from_config_seeded(
        config: impl Into<MarianConfig>,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self(Marian::from_config(config.into(), device, seed)?))
    }

    /// Writes `config.json`, `generation_config.json` and `model.safetensors` that
    /// transformers' `AutoModelForSeq2SeqLM.from_pretrained` loads.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.0.save(dir.as_ref())
    }

    pub fn config(&self) -> &MarianConfig {
        &self.0.config
    }

    super::accessors::weights_and_mode!();

    /// Logits `[batch, target_seq, vocab]` for sources `input_ids` and the decoder's inputs.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        decoder_input_ids: &Tensor,
    ) -> Result<ModelOutput> {
        let mut args = ForwardArgs::new(input_ids).decoder_input_ids(decoder_input_ids);
        args.attention_mask = attention_mask.cloned();
        self.0.forward(&args)
    }

    /// The full call: `input_ids`, `attention_mask`, `decoder_input_ids` (or `labels`, shifted
    /// right inside), `decoder_attention_mask`, `labels` → logits and loss.
    pub fn forward_with(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        self.0.forward(args)
    }

    /// The encoder's last hidden state `[batch, source_seq, d_model]`.
    pub fn encoder_last_hidden_state(&self, args: &ForwardArgs) -> Result<Tensor> {
        Ok(self.0.encode(args)?.0)
    }

    fn summary_rows(&self) -> Vec<(String, String)> {
        let c = &self.0.config;
        let params = self.num_parameters();
        vec![
            ("model_type".into(), "marian".into()),
            (
                "layers".into(),
                format!(
                    "{} encoder + {} decoder",
                    c.encoder_layers, c.decoder_layers
                ),
            ),
            ("d_model".into(), c.d_model.to_string()),
            (
                "heads".into(),
                format!(
                    "{} / {}",
                    c.encoder_attention_heads, c.decoder_attention_heads
                ),
            ),
            ("vocab_size".into(), c.vocab_size.to_string()),
            (
                "max_positions".into(),
                c.max_position_embeddings.to_string(),
            ),
            ("activation".into(), c.activation_function.clone()),
            (
                "parameters".into(),
                format!("{} ({params})", human_count(params)),
            ),
            ("device".into(), device_name(self.0.device.location())),
            (
                "mode".into(),
                if self.0.training { "training" } else { "eval" }.into(),
            ),
        ]
    }

    /// The architecture, layers, width, heads, parameters, device and mode, one per line.
    pub fn summary(&self) -> String {
        display::text_fields(ARCHITECTURE, &self.summary_rows())
    }

    /// Renders the summary as a table in an evcxr notebook (text for other front ends).
    pub fn evcxr_display(&self) {
        let rows = self.summary_rows();
        display::show(
            &display::html_fields(ARCHITECTURE, &rows),
            &display::text_fields(ARCHITECTURE, &rows),
        );
    }
}

impl std::fmt::Debug for AutoModelForSeq2SeqLM {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("AutoModelForSeq2SeqLM");
        d.field("architecture", &ARCHITECTURE);
        for (k, v) in self.summary_rows() {
            d.field(&k, &v);
        }
        d.finish()
    }
}

impl std::fmt::Display for AutoModelForSeq2SeqLM {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl PreTrainedModel for AutoModelForSeq2SeqLM {
    fn forward_with(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        self.0.forward(args)
    }
    fn loss_with(&self, args: &ForwardArgs) -> Result<Tensor> {
        self.0.loss(args)
    }
    fn task(&self) -> Task {
        Task::Seq2SeqLm
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
        self.0.config_value()
    }
    fn vocab_size(&self) -> Option<usize> {
        Some(self.0.config.vocab_size)
    }
    fn max_positions(&self) -> Option<usize> {
        Some(self.0.config.max_position_embeddings)
    }
    fn set_training(&mut self, training: bool) {
        self.0.training = training;
    }
    fn set_seed(&mut self, seed: u64) {
        self.0.dropout = DropoutStream::new(seed);
    }
    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.0.named_parameters()
    }
    fn is_encoder_decoder(&self) -> bool {
        true
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
}
