//! The calls of [`AutoModelForSeq2SeqLM`] beyond those every face has (`auto.rs`): the full
//! output with the encoder's state and the three kinds of attention, and the typed config.
//! It implements [`PreTrainedModel`](super::PreTrainedModel), so the Trainer trains it and
//! `GenerationMixin::generate_with` translates with it.
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
use candle_core::Tensor;

use super::args::{ForwardArgs, Seq2SeqLMOutput};
use super::auto::AutoModelForSeq2SeqLM;
use super::marian::MarianConfig;
use super::registry::ModelConfig;
use crate::Result;

impl AutoModelForSeq2SeqLM {
    /// Marian's settings.
    pub fn config(&self) -> &MarianConfig {
        match &self.0.config {
            ModelConfig::Marian(c) => c,
            // the face is built only for families with an encoder-decoder head (check_task),
            // and Marian is the one
            _ => unreachable!("AutoModelForSeq2SeqLM holds a Marian model"),
        }
    }

    /// Logits `[batch, target_seq, vocab]` for sources `input_ids` and the decoder's inputs.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        decoder_input_ids: &Tensor,
    ) -> Result<Seq2SeqLMOutput> {
        let mut args = ForwardArgs::new(input_ids).decoder_input_ids(decoder_input_ids);
        args.attention_mask = attention_mask.cloned();
        self.0.forward_seq2seq(&args)
    }

    /// The full call: `input_ids`, `attention_mask`, `decoder_input_ids` (or `labels`, shifted
    /// right inside), `decoder_attention_mask`, `labels` → logits and loss; with
    /// `output_attentions`, the encoder's, the decoder's and the cross-attentions, as
    /// transformers' `output_attentions=True`.
    pub fn forward_with(&self, args: &ForwardArgs) -> Result<Seq2SeqLMOutput> {
        self.0.forward_seq2seq(args)
    }

    /// The encoder's last hidden state `[batch, source_seq, d_model]`.
    pub fn encoder_last_hidden_state(&self, args: &ForwardArgs) -> Result<Tensor> {
        let cache = self.0.start_decoding(args, 1, 1)?;
        Ok(cache.encoder_hidden_state().clone())
    }
}
