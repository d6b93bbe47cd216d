//! Marian (`MarianMTModel`), the encoder–decoder Transformer of the opus-mt translation models,
//! in one file on the shared layers and numerically identical to transformers:
//!
//! - token embeddings (one `model.shared` table, or one per side) scaled by `sqrt(d_model)`
//!   when `scale_embedding`, plus sinusoidal positions that checkpoints do not store (sines in
//!   the first half of each vector, cosines in the second, as `MarianSinusoidalPositionalEmbedding`);
//! - post-LayerNorm encoder layers (self-attention, MLP) and decoder layers (causal
//!   self-attention, cross-attention over the encoder's output, MLP), no final LayerNorm;
//! - the activation named by `activation_function` (`swish` in opus-mt, `gelu` by default);
//! - an LM head tied to the decoder's embeddings (or its own `lm_head.weight`), plus
//!   `final_logits_bias`, a buffer stored in checkpoints but never trained;
//! - `decoder_start_token_id` (the padding id): labels are shifted right behind it to make the
//!   decoder's inputs, -100 becoming the padding id, as `shift_tokens_right`.
//!
//! Self-attention is the shared layer's ([`Attention`]: the fused kernel in training, the KV
//! cache while decoding); cross-attention ([`CrossAttention`]) is composed from the kernels' ops
//! in training and runs over keys and values computed once per source while decoding. Asked for
//! attentions, the model returns the encoder's, the decoder's and the cross-attentions, as
//! transformers' `output_attentions=True`. As `torch.nn.Embedding(padding_idx=pad)`, the padding
//! row of an embedding gets no gradient from the lookup.
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::activation::Activation;
use super::args::ForwardArgs;
use super::family::{
    Body, EncoderSide, Family, ModelSize, Network, divisible, known_activation, positive,
    probability, read_config, stack_parameters,
};
use super::heads::Task;
use super::labels::LabelConfig;
use super::layers::{
    Attention, CacheSlot, Collect, CrossAttention, Ctx, EncoderDecoderCache, KvCache, LayerNorm,
    Mlp, Qkv, build_mask, cross_mask, embed_tokens, layer_norm, linear, mask_in, read_ids,
    run_layers, sinusoidal_positions,
};
use super::params::{Init, Params};
use crate::kernels::{self, IGNORE_INDEX};
use crate::{Error, Result};

/// defaults are those of `Helsinki-NLP/opus-mt-en-de`).
///
/// `encoder_layerdrop` / `decoder_layerdrop` are read and written back but not applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarianConfig {
    pub vocab_size: usize,
    /// The decoder's vocabulary when the embeddings are not shared (else `vocab_size`).
    pub decoder_vocab_size: Option<usize>,
    /// The longest source or target the sinusoidal position table covers.
    pub max_position_embeddings: usize,
    pub encoder_layers: usize,
    pub encoder_ffn_dim: usize,
    pub encoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub decoder_ffn_dim: usize,
    pub decoder_attention_heads: usize,
    pub encoder_layerdrop: f64,
    pub decoder_layerdrop: f64,
    /// `swish` / `silu`, `gelu`, `gelu_new`, `relu`.
    pub activation_function: String,
    pub d_model: usize,
    /// Dropout on embeddings and on each sublayer's output.
    pub dropout: f64,
    /// Dropout on attention probabilities.
    pub attention_dropout: f64,
    /// Dropout after the MLP's activation.
    pub activation_dropout: f64,
    pub init_std: f64,
    /// The first decoder token (Marian: the padding id).
    pub decoder_start_token_id: u32,
    /// Multiply token embeddings by `sqrt(d_model)`.
    pub scale_embedding: bool,
    pub pad_token_id: u32,
    pub eos_token_id: u32,
    pub bos_token_id: Option<u32>,
    pub forced_eos_token_id: Option<u32>,
    /// One embedding table (`model.shared`) for the encoder, the decoder (and the tied head).
    pub share_encoder_decoder_embeddings: bool,
    /// The LM head is the decoder's embedding table (else `lm_head.weight` of its own).
    pub tie_word_embeddings: bool,
}

impl Default for MarianConfig {
    fn default() -> Self {
        Self {
            vocab_size: 58101,
            decoder_vocab_size: None,
            max_position_embeddings: 1024,
            encoder_layers: 12,
            encoder_ffn_dim: 4096,
            encoder_attention_heads: 16,
            decoder_layers: 12,
            decoder_ffn_dim: 4096,
            decoder_attention_heads: 16,
            encoder_layerdrop: 0.0,
            decoder_layerdrop: 0.0,
            activation_function: "gelu".into(),
            d_model: 1024,
            dropout: 0.1,
            attention_dropout: 0.0,
            activation_dropout: 0.0,
            init_std: 0.02,
            decoder_start_token_id: 58100,
            scale_embedding: false,
            pad_token_id: 58100,
            eos_token_id: 0,
            bos_token_id: None,
            forced_eos_token_id: Some(0),
            share_encoder_decoder_embeddings: true,
            tie_word_embeddings: true,
        }
    }
}

/// Keys of `config.json` whose `null` means "none" (the other keys' `null` means "default").
const OPTIONAL_KEYS: &[&str] = &["decoder_vocab_size", "bos_token_id", "forced_eos_token_id"];

impl MarianConfig {
    /// A small Marian for training from scratch with a joint vocabulary whose padding id is
    /// `pad_token_id` and end-of-sentence id `eos_token_id`: 3 + 3 layers, 256 wide, 4 heads,
    /// 1024-wide MLPs, `swish`, shared and tied embeddings scaled by `sqrt(d_model)`, 256
    /// positions, dropout 0.1.
    pub fn small(vocab_size: usize, pad_token_id: u32, eos_token_id: u32) -> Self {
        Self {
            vocab_size,
            decoder_vocab_size: Some(vocab_size),
            max_position_embeddings: 256,
            encoder_layers: 3,
            encoder_ffn_dim: 1024,
            encoder_attention_heads: 4,
            decoder_layers: 3,
            decoder_ffn_dim: 1024,
            decoder_attention_heads: 4,
            activation_function: "swish".into(),
            d_model: 256,
            scale_embedding: true,
            decoder_start_token_id: pad_token_id,
            pad_token_id,
            eos_token_id,
            forced_eos_token_id: Some(eos_token_id),
            ..Self::default()
        }
    }

    /// The decoder's (and the LM head's) vocabulary size.
    pub fn target_vocab_size(&self) -> usize {
        if self.share_encoder_decoder_embeddings {
            self.vocab_size
        } else {
            self.decoder_vocab_size.unwrap_or(self.vocab_size)
        }
    }

    /// Reads the keys of a `config.json` object (`model_type` must be `marian`).
    pub fn from_map(map: &Map<String, Value>, path: &Path) -> Result<Self> {
        let err = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        match map.get("model_type").and_then(Value::as_str) {
            Some("marian") => {}
            Some(other) => {
                return Err(Error::WrongTask {
                    model_type: other.to_string(),
                    task: Task::Seq2SeqLm.describe().into(),
                    supported: Marian::MODEL_TYPE.into(),
                });
            }
            None => {
                return Err(err(
                    "missing key `model_type` (marian); add it to config.json".into(),
                ));
            }
        }
        let c = read_config::<Marian>(map).map_err(err)?;
        c.validate(path)?;
        Ok(c)
    }

    /// Checks the numbers fit together, with an error naming the key.
    pub fn validate(&self, path: &Path) -> Result<()> {
        Marian::validate(self).map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })
    }
}

impl From<&MarianConfig> for MarianConfig {
    fn from(c: &MarianConfig) -> Self {
        c.clone()
    }
}

/// The Marian family.
pub(crate) struct Marian;

pub(crate) const ARCHITECTURE: &str = "MarianMTModel";

/// Marian's LayerNorms all use PyTorch's default epsilon.
const LAYER_NORM_EPS: f64 = 1e-5;

impl Family for Marian {
    type Config = MarianConfig;
    const MODEL_TYPE: &'static str = "marian";
    const REQUIRED_KEYS: &'static [&'static str] = &[];
    const NULL_MEANS_NONE: &'static [&'static str] = OPTIONAL_KEYS;
    const TASKS: &'static [Task] = &[Task::Seq2SeqLm];

    fn defaults() -> MarianConfig {
        MarianConfig::default()
    }

    fn validate(c: &MarianConfig) -> std::result::Result<(), String> {
        positive(&[
            ("vocab_size", c.vocab_size),
            ("decoder_vocab_size", c.target_vocab_size()),
            ("d_model", c.d_model),
            ("encoder_ffn_dim", c.encoder_ffn_dim),
            ("decoder_ffn_dim", c.decoder_ffn_dim),
            ("max_position_embeddings", c.max_position_embeddings),
        ])?;
        for heads in ["encoder_attention_heads", "decoder_attention_heads"] {
            let n = if heads.starts_with("encoder") {
                c.encoder_attention_heads
            } else {
                c.decoder_attention_heads
            };
            divisible(("d_model", c.d_model), (heads, n))?;
        }
        probability(&[
            ("dropout", c.dropout),
            ("attention_dropout", c.attention_dropout),
            ("activation_dropout", c.activation_dropout),
        ])?;
        known_activation("activation_function", &c.activation_function)?;
        let (v, tv) = (c.vocab_size, c.target_vocab_size());
        for (key, id, n) in [
            ("pad_token_id", c.pad_token_id, v.min(tv)),
            ("decoder_start_token_id", c.decoder_start_token_id, tv),
            ("eos_token_id", c.eos_token_id, tv),
        ] {
            if id as usize >= n {
                return Err(format!(
                    "`{key}` {id} is outside the vocabulary of {n} tokens"
                ));
            }
        }
        Ok(())
    }

    fn architecture(_: &MarianConfig, _: Task) -> &'static str {
        ARCHITECTURE
    }

    fn summary_rows(c: &MarianConfig) -> Vec<(String, String)> {
        vec![
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
        ]
    }

    fn dims(c: &MarianConfig) -> (usize, usize, usize) {
        (c.encoder_layers, c.d_model, c.encoder_attention_heads)
    }
    fn vocab_size(c: &MarianConfig) -> usize {
        c.vocab_size
    }
    fn set_vocab_size(c: &mut MarianConfig, vocab_size: usize) {
        c.vocab_size = vocab_size;
    }
    fn max_positions(c: &MarianConfig) -> usize {
        c.max_position_embeddings
    }
    fn initializer_range(c: &MarianConfig) -> f64 {
        c.init_std
    }
    /// Sinusoidal positions (no parameters); the decoder's layers add cross-attention; the
    /// output bias (`final_logits_bias`) and an untied or unshared embedding count as stored.
    fn size(c: &MarianConfig) -> ModelSize {
        let e = c.d_model;
        let target_vocab = c.decoder_vocab_size.unwrap_or(c.vocab_size);
        let mut embeddings = c.vocab_size * e + target_vocab;
        if !c.share_encoder_decoder_embeddings {
            embeddings += target_vocab * e;
        }
        if !c.tie_word_embeddings {
            embeddings += target_vocab * e;
        }
        let encoder = stack_parameters(c.encoder_layers, (e, e, c.encoder_ffn_dim), 2, 4);
        let decoder = stack_parameters(c.decoder_layers, (e, e, c.decoder_ffn_dim), 2, 6)
            + stack_parameters(c.decoder_layers, (e, e, 0), 0, 0);
        ModelSize {
            parameters: embeddings as f64 + encoder + decoder,
            layers: c.encoder_layers + c.decoder_layers,
            hidden_size: e,
            heads: c.encoder_attention_heads.max(c.decoder_attention_heads),
            intermediate_size: c.encoder_ffn_dim.max(c.decoder_ffn_dim),
        }
    }

    /// As transformers writes it: the decoder's vocabulary spelled out, `is_encoder_decoder`.
    fn to_json_value(c: &MarianConfig) -> Value {
        let mut c = c.clone();
        c.decoder_vocab_size = Some(c.target_vocab_size());
        let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("is_encoder_decoder".into(), true.into());
        }
        v
    }

    /// Those transformers derives from the config, plus opus-mt's `bad_words_ids: [[pad]]` (the
    /// padding id, which starts every decoder input, is never generated) and beam search with
    /// 4 beams.
    fn generation_defaults(c: &MarianConfig) -> Option<Value> {
        let mut g = serde_json::json!({
            "bad_words_ids": [[c.pad_token_id]],
            "decoder_start_token_id": c.decoder_start_token_id,
            "eos_token_id": c.eos_token_id,
            "max_length": c.max_position_embeddings,
            "num_beams": 4,
            "pad_token_id": c.pad_token_id,
        });
        if let (Some(f), Some(o)) = (c.forced_eos_token_id, g.as_object_mut()) {
            o.insert("forced_eos_token_id".into(), f.into());
        }
        Some(g)
    }

    fn build(
        c: &MarianConfig,
        p: &mut Params,
        _task: Task,
        _labels: &LabelConfig,
    ) -> Result<Arc<dyn Network>> {
        Ok(Arc::new(build(c, p)?))
    }
}

/// transformers' `shift_tokens_right`: `[start, labels[.., :-1]]`, -100 replaced by `pad`
/// (u32 `[b, t]`, on the labels' device).
pub(crate) fn shift_tokens_right(labels: &Tensor, pad: u32, start: u32) -> Result<Tensor> {
    let (b, t) = labels.dims2().map_err(|_| {
        Error::InvalidArgument(format!(
            "labels must be [batch, target_seq], got shape {:?}",
            labels.dims()
        ))
    })?;
    let labels = labels.to_dtype(DType::I64)?;
    let dev = labels.device();
    let first = Tensor::full(start as i64, (b, 1), dev)?;
    let shifted = if t > 1 {
        Tensor::cat(&[&first, &labels.narrow(1, 0, t - 1)?], 1)?
    } else {
        first
    };
    let pads = Tensor::full(pad as i64, (b, t), dev)?;
    let ids = shifted.eq(IGNORE_INDEX)?.where_cond(&pads, &shifted)?;
    Ok(ids.to_dtype(DType::U32)?)
}

#[derive(Clone)]
struct EncoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    ff: Mlp,
    final_layer_norm: LayerNorm,
    dropout: f64,
}

impl EncoderLayer {
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (a, probs) = self.self_attn.forward(x, mask, None, want_probs, ctx)?;
        let x = self
            .self_attn_layer_norm
            .forward(&kernels::residual(x, &ctx.dropout(&a, self.dropout)?)?)?;
        let h = self.ff.forward(&x, ctx)?;
        let x = self
            .final_layer_norm
            .forward(&kernels::residual(&x, &ctx.dropout(&h, self.dropout)?)?)?;
        Ok((x, probs))
    }
}

#[derive(Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: CrossAttention,
    encoder_attn_layer_norm: LayerNorm,
    ff: Mlp,
    final_layer_norm: LayerNorm,
    dropout: f64,
}

/// One decoder layer's view of the encoder: its cross-attention keys and values, the sources'
/// mask, and whether the call is a cached decoding step.
struct Source<'a> {
    kv: &'a Tensor,
    mask: Option<&'a Tensor>,
    cached: bool,
}

impl DecoderLayer {
    /// The layer's output, and (when `want_probs`) its self- and cross-attention probabilities.
    fn forward(
        &self,
        x: &Tensor,
        self_mask: Option<&Tensor>,
        cache: Option<CacheSlot<'_>>,
        src: Source<'_>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let (a, self_probs) = self
            .self_attn
            .forward(x, self_mask, cache, want_probs, ctx)?;
        let x = self
            .self_attn_layer_norm
            .forward(&kernels::residual(x, &ctx.dropout(&a, self.dropout)?)?)?;
        let (c, cross_probs) =
            self.encoder_attn
                .forward(&x, src.kv, src.mask, (src.cached, want_probs), ctx)?;
        let x = self
            .encoder_attn_layer_norm
            .forward(&kernels::residual(&x, &ctx.dropout(&c, self.dropout)?)?)?;
        let h = self.ff.forward(&x, ctx)?;
        let x = self
            .final_layer_norm
            .forward(&kernels::residual(&x, &ctx.dropout(&h, self.dropout)?)?)?;
        Ok((x, self_probs.zip(cross_probs)))
    }
}

/// `MarianMTModel`'s network.
struct MarianNetwork {
    config: MarianConfig,
    encoder_embed: Tensor,
    decoder_embed: Tensor,
    lm_head: Tensor,
    /// `[vocab]` (stored `[1, vocab]`); a buffer, not a parameter.
    final_logits_bias: Tensor,
    /// The sinusoidal table `[max_position_embeddings, d_model]` both sides read.
    positions: Tensor,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
}

fn self_attention(p: &mut Params, n: &str, c: &MarianConfig, n_head: usize) -> Result<Attention> {
    let (d, std) = (c.d_model, c.init_std);
    Ok(Attention {
        qkv: Qkv::Split {
            q: linear(p, &format!("{n}.q_proj"), d, d, std)?,
            k: linear(p, &format!("{n}.k_proj"), d, d, std)?,
            v: linear(p, &format!("{n}.v_proj"), d, d, std)?,
        },
        out: linear(p, &format!("{n}.out_proj"), d, d, std)?,
        n_head,
        attn_dropout: c.attention_dropout,
    })
}

fn feed_forward(p: &mut Params, n: &str, c: &MarianConfig, ffn: usize) -> Result<Mlp> {
    let act = Activation::from_hf(&c.activation_function).ok_or_else(|| {
        Error::Unsupported(format!(
            "unsupported activation `{}`; supported: {}",
            c.activation_function,
            Activation::SUPPORTED
        ))
    })?;
    Ok(Mlp {
        fc: linear(p, &format!("{n}.fc1"), c.d_model, ffn, c.init_std)?,
        proj: linear(p, &format!("{n}.fc2"), ffn, c.d_model, c.init_std)?,
        act,
        act_dropout: c.activation_dropout,
    })
}

fn build(c: &MarianConfig, p: &mut Params) -> Result<MarianNetwork> {
    p.set_prefix("model.");
    let (d, std, pad) = (c.d_model, c.init_std, c.pad_token_id as usize);
    let tv = c.target_vocab_size();
    let table = Init::NormalZeroRow(std, pad);
    let (encoder_embed, decoder_embed) = if c.share_encoder_decoder_embeddings {
        let w = p.get("model.shared.weight", &[c.vocab_size, d], table)?;
        (w.clone(), w)
    } else {
        (
            p.get(
                "model.encoder.embed_tokens.weight",
                &[c.vocab_size, d],
                table,
            )?,
            p.get("model.decoder.embed_tokens.weight", &[tv, d], table)?,
        )
    };
    let lm_head = if c.tie_word_embeddings {
        decoder_embed.clone()
    } else {
        p.get("lm_head.weight", &[tv, d], Init::Normal(std))?
    };
    let final_logits_bias = match p.buffer("final_logits_bias", &[1, tv])? {
        Some(b) => b.reshape(tv)?,
        None => Tensor::zeros(tv, encoder_embed.dtype(), encoder_embed.device())?,
    };
    let ln = |p: &mut Params, name: String| layer_norm(p, &name, d, LAYER_NORM_EPS);
    let mut encoder = Vec::with_capacity(c.encoder_layers);
    for i in 0..c.encoder_layers {
        let n = format!("model.encoder.layers.{i}");
        encoder.push(EncoderLayer {
            self_attn: self_attention(p, &format!("{n}.self_attn"), c, c.encoder_attention_heads)?,
            self_attn_layer_norm: ln(p, format!("{n}.self_attn_layer_norm"))?,
            ff: feed_forward(p, &n, c, c.encoder_ffn_dim)?,
            final_layer_norm: ln(p, format!("{n}.final_layer_norm"))?,
            dropout: c.dropout,
        });
    }
    let mut decoder = Vec::with_capacity(c.decoder_layers);
    for i in 0..c.decoder_layers {
        let n = format!("model.decoder.layers.{i}");
        let a = format!("{n}.encoder_attn");
        decoder.push(DecoderLayer {
            self_attn: self_attention(p, &format!("{n}.self_attn"), c, c.decoder_attention_heads)?,
            self_attn_layer_norm: ln(p, format!("{n}.self_attn_layer_norm"))?,
            encoder_attn: CrossAttention {
                q: linear(p, &format!("{a}.q_proj"), d, d, std)?,
                k: linear(p, &format!("{a}.k_proj"), d, d, std)?,
                v: linear(p, &format!("{a}.v_proj"), d, d, std)?,
                out: linear(p, &format!("{a}.out_proj"), d, d, std)?,
                n_head: c.decoder_attention_heads,
                dropout: c.attention_dropout,
            },
            encoder_attn_layer_norm: ln(p, format!("{n}.encoder_attn_layer_norm"))?,
            ff: feed_forward(p, &n, c, c.decoder_ffn_dim)?,
            final_layer_norm: ln(p, format!("{n}.final_layer_norm"))?,
            dropout: c.dropout,
        });
    }
    let positions = sinusoidal_positions(c.max_position_embeddings, d, encoder_embed.device())?
        .to_dtype(final_logits_bias.dtype())?;
    Ok(MarianNetwork {
        config: c.clone(),
        encoder_embed,
        decoder_embed,
        lm_head,
        final_logits_bias,
        positions,
        encoder,
        decoder,
    })
}

impl MarianNetwork {
    fn embed_scale(&self) -> f64 {
        if self.config.scale_embedding {
            (self.config.d_model as f64).sqrt()
        } else {
            1.0
        }
    }

    /// Embeddings plus positions `past..past + t`, then dropout.
    fn embed(&self, table: &Tensor, ids: &Tensor, past: usize, ctx: &Ctx) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let max = self.config.max_position_embeddings;
        if past + t > max {
            return Err(Error::SequenceTooLong { len: past + t, max });
        }
        let pad_scale = (self.config.pad_token_id, self.embed_scale());
        let x = embed_tokens(table, ids, pad_scale, self.positions.dtype())?;
        let x = x.broadcast_add(&self.positions.narrow(0, past, t)?)?;
        ctx.dropout(&x, self.config.dropout)
    }

    /// The encoder over `args.input_ids`, and the sources' 0/1 mask when any is padded.
    fn encode(
        &self,
        args: &ForwardArgs,
        collect: Collect,
        ctx: &Ctx,
    ) -> Result<(EncoderSide, Option<Tensor>)> {
        let dev = self.encoder_embed.device();
        let (ids, (b, s)) = read_ids(&args.input_ids, dev)?;
        let x = self.embed(&self.encoder_embed, &ids, 0, ctx)?;
        let mask = build_mask(args.attention_mask.as_ref(), false, (b, s), 0, dev)?
            .map(|m| mask_in(&m, x.dtype()))
            .transpose()?;
        let src_mask = match (&mask, &args.attention_mask) {
            (Some(_), Some(m)) => Some(m.to_device(dev)?.to_dtype(DType::F32)?),
            _ => None,
        };
        let (x, states) = run_layers(x, self.encoder.len(), None, collect, |i, x, _, want| {
            self.encoder[i].forward(x, mask.as_ref(), want, ctx)
        })?;
        let states = states.finish(&x);
        let side = EncoderSide {
            last_hidden_state: x,
            hidden_states: states.hidden_states,
            attentions: states.attentions,
        };
        Ok((side, src_mask))
    }

    /// The decoder's inputs: `args.decoder_input_ids`, else the labels shifted right.
    fn decoder_inputs(&self, args: &ForwardArgs) -> Result<Tensor> {
        let dev = self.encoder_embed.device();
        Ok(match (&args.decoder_input_ids, &args.labels) {
            (Some(d), _) => read_ids(d, dev)?.0,
            (None, Some(l)) => shift_tokens_right(
                &l.to_device(dev)?,
                self.config.pad_token_id,
                self.config.decoder_start_token_id,
            )?,
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "an encoder-decoder model needs the decoder's inputs: give decoder_input_ids (starting with the decoder start token) or labels (shifted right inside)".into(),
                ));
            }
        })
    }

    /// `[..., vocab]` logits of `[..., d]` hidden states: the tied (or own) head plus
    /// `final_logits_bias`.
    fn logits(&self, h: &Tensor) -> Result<Tensor> {
        Ok(kernels::linear(
            h,
            &self.lm_head,
            Some(&self.final_logits_bias),
            false,
        )?)
    }
}

impl Network for MarianNetwork {
    /// The decoder's last hidden states over the encoder's output, without a cache; with the
    /// encoder's side, and each side's attentions when asked for.
    fn body(&self, args: &ForwardArgs, _cache: Option<&mut KvCache>, ctx: &Ctx) -> Result<Body> {
        let dev = self.encoder_embed.device();
        let dec = self.decoder_inputs(args)?;
        let (b, t) = dec.dims2()?;
        if let Some(labels) = &args.labels
            && labels.dims() != [b, t]
        {
            return Err(Error::InvalidArgument(format!(
                "labels have shape {:?}, expected [{b}, {t}] like the decoder's inputs",
                labels.dims()
            )));
        }
        let collect = Collect {
            hidden_states: args.output_hidden_states,
            attentions: args.output_attentions,
        };
        let (enc, src_mask) = self.encode(args, collect, ctx)?;
        if enc.last_hidden_state.dim(0)? != b {
            return Err(Error::InvalidArgument(format!(
                "input_ids has {} rows, the decoder's inputs {b}",
                enc.last_hidden_state.dim(0)?
            )));
        }
        let dmask = args
            .decoder_attention_mask
            .as_ref()
            .map(|m| m.to_device(dev))
            .transpose()?;
        let x = self.embed(&self.decoder_embed, &dec, 0, ctx)?;
        let self_mask = build_mask(dmask.as_ref(), true, (b, t), 0, dev)?
            .map(|m| mask_in(&m, x.dtype()))
            .transpose()?;
        let cross = cross_mask(src_mask.as_ref(), t, x.dtype())?;
        let mut cross_probs = collect.attentions.then(Vec::new);
        let (x, states) = run_layers(x, self.decoder.len(), None, collect, |i, x, _, want| {
            let layer = &self.decoder[i];
            let kv = layer.encoder_attn.keys_values(&enc.last_hidden_state)?;
            let src = Source {
                kv: &kv,
                mask: cross.as_ref(),
                cached: false,
            };
            let (y, probs) = layer.forward(x, self_mask.as_ref(), None, src, want, ctx)?;
            Ok(match probs {
                Some((self_p, cross_p)) => {
                    if let Some(c) = cross_probs.as_mut() {
                        c.push(cross_p);
                    }
                    (y, Some(self_p))
                }
                None => (y, None),
            })
        })?;
        let states = states.finish(&x);
        Ok(Body {
            last_hidden_state: x,
            hidden_states: states.hidden_states,
            attentions: states.attentions,
            encoder: Some(enc),
            cross_attentions: cross_probs,
        })
    }

    fn lm_logits(&self, h: &Tensor) -> Result<Tensor> {
        self.logits(h)
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        let tv = self.final_logits_bias.dim(0).unwrap_or(0);
        match self.final_logits_bias.reshape((1, tv)) {
            Ok(b) => vec![("final_logits_bias".into(), b)],
            Err(_) => Vec::new(),
        }
    }

    fn dtype(&self) -> DType {
        self.encoder_embed.dtype()
    }

    fn start_decoding(
        &self,
        args: &ForwardArgs,
        rows_per_source: usize,
        capacity: usize,
        ctx: &Ctx,
    ) -> Result<EncoderDecoderCache> {
        let none = Collect {
            hidden_states: false,
            attentions: false,
        };
        let (enc, mask) = self.encode(args, none, ctx)?;
        let enc = enc.last_hidden_state;
        let (enc, mask) = if rows_per_source > 1 {
            let b = enc.dim(0)?;
            let idx: Vec<u32> = (0..b as u32)
                .flat_map(|i| std::iter::repeat_n(i, rows_per_source))
                .collect();
            let idx = Tensor::from_vec(idx, b * rows_per_source, enc.device())?;
            (
                enc.index_select(&idx, 0)?,
                mask.map(|m| m.index_select(&idx, 0)).transpose()?,
            )
        } else {
            (enc, mask)
        };
        Ok(EncoderDecoderCache::new(enc, mask, capacity))
    }

    fn decode_cached(
        &self,
        ids: &Tensor,
        cache: &mut EncoderDecoderCache,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let dev = self.encoder_embed.device();
        let (ids, (b, t)) = read_ids(ids, dev)?;
        if b != cache.rows() {
            return Err(Error::InvalidArgument(format!(
                "the decoder cache holds {} rows, the input has {b}",
                cache.rows()
            )));
        }
        let past = cache.self_attn.len;
        let x = self.embed(&self.decoder_embed, &ids, past, ctx)?;
        let self_mask = build_mask(None, true, (b, t), past, dev)?
            .map(|m| mask_in(&m, x.dtype()))
            .transpose()?;
        let cross = cross_mask(cache.encoder_mask.as_ref(), t, x.dtype())?;
        let n = self.decoder.len();
        if cache.cross.len() != n {
            cache.cross = vec![None; n];
        }
        let EncoderDecoderCache {
            encoder_hidden,
            self_attn,
            cross: cross_kv,
            ..
        } = cache;
        let none = Collect {
            hidden_states: false,
            attentions: false,
        };
        let (x, _) = run_layers(x, n, Some(self_attn), none, |i, x, slot, _| {
            let layer = &self.decoder[i];
            let kv = match &cross_kv[i] {
                Some(kv) => kv.clone(),
                None => {
                    let kv = layer
                        .encoder_attn
                        .keys_values(encoder_hidden)?
                        .contiguous()?;
                    cross_kv[i] = Some(kv.clone());
                    kv
                }
            };
            let src = Source {
                kv: &kv,
                mask: cross.as_ref(),
                cached: true,
            };
            let (y, _) = layer.forward(x, self_mask.as_ref(), slot, src, false, ctx)?;
            Ok((y, None))
        })?;
        self.logits(&x)
    }
}
