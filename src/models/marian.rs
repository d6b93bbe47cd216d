//! Marian (`MarianMTModel`), the encoder–decoder Transformer of the opus-mt translation models,
//! in one file in candle-transformers' style and numerically identical to transformers:
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
//! The self-attention layers are the core's ([`Attention`]: the fused kernel in training, the KV
//! cache while decoding); cross-attention is composed from the kernels' ops in training and
//! runs over keys and values computed once per source while decoding
//! ([`kernels::cached_cross_attention`]). As `torch.nn.Embedding(padding_idx=pad)`, the
//! padding row of an embedding gets no gradient from the lookup.
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::activation::Activation;
use super::config::read_config_object;
use super::core::{
    Attention, CacheSlot, Ctx, DropoutStream, EncoderDecoderCache, LayerNorm, Linear, Qkv,
    build_mask, check_token_id, layer_norm, linear, read_ids,
};
use super::losses::lm_loss;
use super::model::{DEFAULT_SEED, ForwardArgs, ModelOutput, read_weights};
use super::params::{Init, LoadReport, Params};
use crate::kernels::{self, IGNORE_INDEX, composed};
use crate::{Error, Result, io};

/// Marian's hyper-parameters, with transformers' key names and defaults (`MarianConfig`, whose
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
const OPTIONAL_KEYS: [&str; 3] = ["decoder_vocab_size", "bos_token_id", "forced_eos_token_id"];

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
                    task: "an encoder-decoder language model (AutoModelForSeq2SeqLM)".into(),
                    supported: "marian".into(),
                });
            }
            None => {
                return Err(err(
                    "missing key `model_type` (marian); add it to config.json".into(),
                ));
            }
        }
        let mut m = map.clone();
        m.retain(|k, v| !v.is_null() || OPTIONAL_KEYS.contains(&k.as_str()));
        let c: Self = serde_json::from_value(Value::Object(m))
            .map_err(|e| err(format!("invalid Marian setting: {e}")))?;
        c.validate(path)?;
        Ok(c)
    }

    /// Checks the numbers fit together, with an error naming the key.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |message: String| {
            Err(Error::Config {
                path: path.to_path_buf(),
                message,
            })
        };
        for (side, heads) in [
            ("encoder", self.encoder_attention_heads),
            ("decoder", self.decoder_attention_heads),
        ] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) {
                return err(format!(
                    "d_model {} is not divisible by {side}_attention_heads {heads}",
                    self.d_model
                ));
            }
        }
        if Activation::from_hf(&self.activation_function).is_none() {
            return err(format!(
                "unsupported activation `{}`; supported: {}",
                self.activation_function,
                Activation::SUPPORTED
            ));
        }
        let (v, tv) = (self.vocab_size, self.target_vocab_size());
        if v == 0 || tv == 0 {
            return err("vocab_size is 0".into());
        }
        if self.max_position_embeddings == 0 {
            return err("max_position_embeddings is 0".into());
        }
        for (key, id, n) in [
            ("pad_token_id", self.pad_token_id, v.min(tv)),
            ("decoder_start_token_id", self.decoder_start_token_id, tv),
            ("eos_token_id", self.eos_token_id, tv),
        ] {
            if id as usize >= n {
                return err(format!(
                    "{key} {id} is outside the vocabulary of {n} tokens"
                ));
            }
        }
        Ok(())
    }
}

impl From<&MarianConfig> for MarianConfig {
    fn from(c: &MarianConfig) -> Self {
        c.clone()
    }
}

/// The sinusoidal table `[n_pos, dim]` of `MarianSinusoidalPositionalEmbedding`: angles
/// `pos / 10000^(2 (j / 2) / dim)` in f64, the sines of the even `j` in the first half of each
/// row, the cosines of the odd `j` in the second, rounded to f32.
pub(crate) fn sinusoidal_positions(n_pos: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let sentinel = dim.div_ceil(2);
    let mut out = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        let row = &mut out[pos * dim..(pos + 1) * dim];
        let angle = |j: usize| pos as f64 / 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
        let (sines, cosines) = row.split_at_mut(sentinel);
        for (i, x) in sines.iter_mut().enumerate() {
            *x = angle(2 * i).sin() as f32;
        }
        for (i, x) in cosines.iter_mut().enumerate() {
            *x = angle(2 * i + 1).cos() as f32;
        }
    }
    Ok(Tensor::from_vec(out, (n_pos, dim), device)?)
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

/// Token embeddings of `ids [b, t]` (u32), times `scale`. As `nn.Embedding(padding_idx=pad)`,
/// the rows looked up for padding tokens pass no gradient back to the table.
fn embed(table: &Tensor, ids: &Tensor, pad: u32, scale: f64) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let d = table.dim(1)?;
    check_token_id(ids.max_all()?.to_scalar::<u32>()?, table.dim(0)?)?;
    let flat = ids.flatten_all()?;
    let rows = table.index_select(&flat, 0)?;
    let real = flat.ne(pad)?.unsqueeze(1)?.broadcast_as(rows.shape())?;
    let rows = real.where_cond(&rows, &rows.detach())?;
    let x = rows.reshape((b, t, d))?;
    Ok(if scale != 1.0 { (x * scale)? } else { x })
}

/// The additive cross-attention mask `[b, 1, t, s]` from the sources' 0/1 mask `[b, s]`:
/// 0 where a source token is real, `f32::MIN` where it is padding (as transformers'
/// bidirectional mask).
fn cross_mask(src_mask: Option<&Tensor>, t: usize, dtype: DType) -> Result<Option<Tensor>> {
    let Some(m) = src_mask else {
        return Ok(None);
    };
    let (b, s) = m.dims2()?;
    let keep = m.ne(0f32)?.to_dtype(DType::F32)?.reshape((b, 1, 1, s))?;
    let blocked = ((1.0 - keep)? * f32::MIN as f64)?;
    Ok(Some(
        blocked
            .broadcast_as((b, 1, t, s))?
            .contiguous()?
            .to_dtype(dtype)?,
    ))
}

/// `dropout(act(fc1 x), activation_dropout)` then `fc2`.
#[derive(Clone)]
struct FeedForward {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
    act_dropout: f64,
}

impl FeedForward {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let h = self.act.forward(&self.fc1.forward(x)?)?;
        self.fc2.forward(&ctx.dropout(&h, self.act_dropout)?)
    }
}

#[derive(Clone)]
struct EncoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    ff: FeedForward,
    final_layer_norm: LayerNorm,
    dropout: f64,
}

impl EncoderLayer {
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
        let (a, _) = self.self_attn.forward(x, mask, None, false, ctx)?;
        let x = self
            .self_attn_layer_norm
            .forward(&(x + ctx.dropout(&a, self.dropout)?)?)?;
        let h = self.ff.forward(&x, ctx)?;
        self.final_layer_norm
            .forward(&(&x + ctx.dropout(&h, self.dropout)?)?)
    }
}

/// Queries from the decoder, keys and values from the encoder's output.
#[derive(Clone)]
struct CrossAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    n_head: usize,
    dropout: f64,
}

impl CrossAttention {
    /// The keys and values of the encoder's output `[b, s, h]`, as `[2, b, heads, s, hd]`.
    fn keys_values(&self, enc: &Tensor) -> Result<Tensor> {
        let k = composed::split_heads(&self.k.forward(enc)?, self.n_head)?;
        let v = composed::split_heads(&self.v.forward(enc)?, self.n_head)?;
        Ok(Tensor::stack(&[k, v], 0)?)
    }

    /// `x [b, t, h]` attending over `kv` (from [`keys_values`](Self::keys_values)) with the
    /// additive mask `[b, 1, t, s]`. Composed ops with a backward pass, or, while decoding
    /// (`cached`), the decode kernel.
    fn forward(
        &self,
        x: &Tensor,
        kv: &Tensor,
        mask: Option<&Tensor>,
        cached: bool,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let q = self.q.forward(x)?;
        let s = kv.dim(3)?;
        let no_dropout = !ctx.training || self.dropout <= 0.0;
        if cached && no_dropout {
            let y = kernels::cached_cross_attention(&q, kv, s, mask, self.n_head)?;
            return self.out.forward(&y);
        }
        let q = composed::split_heads(&q, self.n_head)?;
        let (k, v) = (kv.get(0)?, kv.get(1)?);
        let probs = composed::attention_probs(&q, &k, mask)?;
        let probs = ctx.dropout(&probs, self.dropout)?;
        let y = composed::merge_heads(&probs.matmul(&v)?)?;
        self.out.forward(&y)
    }
}

#[derive(Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: CrossAttention,
    encoder_attn_layer_norm: LayerNorm,
    ff: FeedForward,
    final_layer_norm: LayerNorm,
    dropout: f64,
}

impl DecoderLayer {
    fn forward(
        &self,
        x: &Tensor,
        self_mask: Option<&Tensor>,
        cache: Option<CacheSlot<'_>>,
        (kv, cross_mask, cached): (&Tensor, Option<&Tensor>, bool),
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (a, _) = self.self_attn.forward(x, self_mask, cache, false, ctx)?;
        let x = self
            .self_attn_layer_norm
            .forward(&(x + ctx.dropout(&a, self.dropout)?)?)?;
        let c = self.encoder_attn.forward(&x, kv, cross_mask, cached, ctx)?;
        let x = self
            .encoder_attn_layer_norm
            .forward(&(&x + ctx.dropout(&c, self.dropout)?)?)?;
        let h = self.ff.forward(&x, ctx)?;
        self.final_layer_norm
            .forward(&(&x + ctx.dropout(&h, self.dropout)?)?)
    }
}

/// `MarianMTModel`: weights, mode and the settings it was loaded with.
#[derive(Clone)]
pub(crate) struct Marian {
    pub config: MarianConfig,
    /// Keys of the original config.json we do not model, written back on save.
    pub extra: Map<String, Value>,
    encoder_embed: Tensor,
    decoder_embed: Tensor,
    lm_head: Tensor,
    /// `[vocab]` (stored `[1, vocab]`); a buffer, not a parameter.
    final_logits_bias: Tensor,
    /// The sinusoidal table `[max_position_embeddings, d_model]` both sides read.
    positions: Tensor,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
    pub varmap: VarMap,
    pub device: Device,
    pub training: bool,
    pub dropout: DropoutStream,
    /// `generation_config.json` of the folder the model was loaded from, if it had one.
    pub generation: Option<Value>,
}

pub(crate) const ARCHITECTURE: &str = "MarianMTModel";

/// Marian's LayerNorms all use PyTorch's default epsilon.
const LAYER_NORM_EPS: f64 = 1e-5;

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

fn feed_forward(p: &mut Params, n: &str, c: &MarianConfig, ffn: usize) -> Result<FeedForward> {
    let act = Activation::from_hf(&c.activation_function).ok_or_else(|| {
        Error::Unsupported(format!(
            "unsupported activation `{}`; supported: {}",
            c.activation_function,
            Activation::SUPPORTED
        ))
    })?;
    Ok(FeedForward {
        fc1: linear(p, &format!("{n}.fc1"), c.d_model, ffn, c.init_std)?,
        fc2: linear(p, &format!("{n}.fc2"), ffn, c.d_model, c.init_std)?,
        act,
        act_dropout: c.activation_dropout,
    })
}

impl Marian {
    /// The model from `p` (loaded or initialised), and what the checkpoint held that it did
    /// not use.
    fn build(
        config: MarianConfig,
        extra: Map<String, Value>,
        mut p: Params,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        p.set_prefix("model.");
        let c = &config;
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
            None => Tensor::zeros(tv, encoder_embed.dtype(), device)?,
        };
        let mut encoder = Vec::with_capacity(c.encoder_layers);
        for i in 0..c.encoder_layers {
            let n = format!("model.encoder.layers.{i}");
            encoder.push(EncoderLayer {
                self_attn: self_attention(
                    &mut p,
                    &format!("{n}.self_attn"),
                    c,
                    c.encoder_attention_heads,
                )?,
                self_attn_layer_norm: layer_norm(
                    &mut p,
                    &format!("{n}.self_attn_layer_norm"),
                    d,
                    LAYER_NORM_EPS,
                )?,
                ff: feed_forward(&mut p, &n, c, c.encoder_ffn_dim)?,
                final_layer_norm: layer_norm(
                    &mut p,
                    &format!("{n}.final_layer_norm"),
                    d,
                    LAYER_NORM_EPS,
                )?,
                dropout: c.dropout,
            });
        }
        let mut decoder = Vec::with_capacity(c.decoder_layers);
        for i in 0..c.decoder_layers {
            let n = format!("model.decoder.layers.{i}");
            let a = format!("{n}.encoder_attn");
            decoder.push(DecoderLayer {
                self_attn: self_attention(
                    &mut p,
                    &format!("{n}.self_attn"),
                    c,
                    c.decoder_attention_heads,
                )?,
                self_attn_layer_norm: layer_norm(
                    &mut p,
                    &format!("{n}.self_attn_layer_norm"),
                    d,
                    LAYER_NORM_EPS,
                )?,
                encoder_attn: CrossAttention {
                    q: linear(&mut p, &format!("{a}.q_proj"), d, d, std)?,
                    k: linear(&mut p, &format!("{a}.k_proj"), d, d, std)?,
                    v: linear(&mut p, &format!("{a}.v_proj"), d, d, std)?,
                    out: linear(&mut p, &format!("{a}.out_proj"), d, d, std)?,
                    n_head: c.decoder_attention_heads,
                    dropout: c.attention_dropout,
                },
                encoder_attn_layer_norm: layer_norm(
                    &mut p,
                    &format!("{n}.encoder_attn_layer_norm"),
                    d,
                    LAYER_NORM_EPS,
                )?,
                ff: feed_forward(&mut p, &n, c, c.decoder_ffn_dim)?,
                final_layer_norm: layer_norm(
                    &mut p,
                    &format!("{n}.final_layer_norm"),
                    d,
                    LAYER_NORM_EPS,
                )?,
                dropout: c.dropout,
            });
        }
        let positions = sinusoidal_positions(c.max_position_embeddings, d, device)?
            .to_dtype(encoder_embed.dtype())?;
        let report = p.report();
        let model = Self {
            config,
            extra,
            encoder_embed,
            decoder_embed,
            lm_head,
            final_logits_bias,
            positions,
            encoder,
            decoder,
            varmap: p.varmap,
            device: device.clone(),
            training: false,
            dropout: DropoutStream::new(DEFAULT_SEED),
            generation: None,
        };
        Ok((model, report))
    }

    /// A new model with transformers' initialisation (normal(0, `init_std`) weights and
    /// embeddings with a zero padding row, zero biases and `final_logits_bias`, unit LayerNorm
    /// weights), in training mode.
    pub fn from_config(config: MarianConfig, device: &Device, seed: u64) -> Result<Self> {
        config.validate(Path::new("<config>"))?;
        let p = Params::init(seed, device, DType::F32);
        let (mut m, _) = Self::build(config, Map::new(), p, device)?;
        m.training = true;
        Ok(m)
    }

    /// Loads `dir/config.json`, the weights, and `generation_config.json` when there is one.
    pub fn load_reported(dir: &Path, device: &Device, dtype: DType) -> Result<(Self, LoadReport)> {
        let cfg_path = dir.join("config.json");
        let extra = read_config_object(&cfg_path)?;
        let config = MarianConfig::from_map(&extra, &cfg_path)?;
        let (tensors, skipped, path) = read_weights(dir)?;
        let p = Params::loaded(tensors, skipped, &path, device, dtype);
        let (mut model, report) = Self::build(config, extra, p, device)?;
        let gen_path = dir.join("generation_config.json");
        if gen_path.is_file() {
            model.generation = Some(io::read_json(&gen_path)?);
        }
        Ok((model, report))
    }

    /// `load_reported`, naming unused weights in a warning on stderr as transformers does.
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let (model, report) = Self::load_reported(dir, device, dtype)?;
        if !report.unused.is_empty() {
            eprintln!("warning: {}", report.warning(ARCHITECTURE));
        }
        Ok(model)
    }

    /// Every trainable parameter with its Hugging Face name, sorted by name.
    pub fn named_parameters(&self) -> Vec<(String, Var)> {
        let data = match self.varmap.data().lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The config as transformers writes it: ours over the original keys, with
    /// `model_type`, `architectures` and `is_encoder_decoder`.
    pub fn config_value(&self) -> Value {
        let mut map = self.extra.clone();
        let mut c = self.config.clone();
        c.decoder_vocab_size = Some(c.target_vocab_size());
        if let Ok(Value::Object(o)) = serde_json::to_value(&c) {
            map.extend(o);
        }
        map.insert("model_type".into(), "marian".into());
        map.insert("architectures".into(), Value::from(vec![ARCHITECTURE]));
        map.insert("is_encoder_decoder".into(), true.into());
        Value::Object(map)
    }

    /// The generation settings: `generation_config.json` when loaded with one, else those
    /// transformers derives from the config, plus opus-mt's `bad_words_ids: [[pad]]` (the
    /// padding id, which starts every decoder input, is never generated) and beam search with
    /// 4 beams.
    pub fn generation_config_json(&self) -> Value {
        if let Some(g) = &self.generation {
            return g.clone();
        }
        let c = &self.config;
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
        g
    }

    /// Writes `config.json`, `generation_config.json` and `model.safetensors` (the parameters
    /// and `final_logits_bias`; no position tables, as transformers saves them), each through a
    /// temporary file and a rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        io::create_dir_all(dir)?;
        let tv = self.config.target_vocab_size();
        let mut tensors: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        tensors.push((
            "final_logits_bias".into(),
            self.final_logits_bias.reshape((1, tv))?,
        ));
        let metadata = [("format".to_string(), "pt".to_string())].into();
        io::write_safetensors(&dir.join("model.safetensors"), &tensors, metadata)?;
        io::write_json(
            &dir.join("generation_config.json"),
            &self.generation_config_json(),
        )?;
        let json = serde_json::to_string_pretty(&self.config_value())
            .map_err(|e| Error::InvalidArgument(format!("cannot serialise the config: {e}")))?;
        io::write_atomic(&dir.join("config.json"), json.as_bytes())
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            training: self.training,
            dropout: self.dropout.clone(),
        }
    }

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
        let x = embed(table, ids, self.config.pad_token_id, self.embed_scale())?;
        let x = x.broadcast_add(&self.positions.narrow(0, past, t)?)?;
        ctx.dropout(&x, self.config.dropout)
    }

    /// The encoder's last hidden state `[b, s, d]` for `args.input_ids`, and the sources'
    /// 0/1 mask when any is padded.
    pub fn encode(&self, args: &ForwardArgs) -> Result<(Tensor, Option<Tensor>)> {
        let ctx = self.ctx();
        let (ids, (b, s)) = read_ids(&args.input_ids, &self.device)?;
        let mut x = self.embed(&self.encoder_embed, &ids, 0, &ctx)?;
        let mask = build_mask(args.attention_mask.as_ref(), false, (b, s), 0, &self.device)?
            .map(|m| m.to_dtype(x.dtype()))
            .transpose()?;
        let src_mask = match (&mask, &args.attention_mask) {
            (Some(_), Some(m)) => Some(m.to_device(&self.device)?.to_dtype(DType::F32)?),
            _ => None,
        };
        for layer in &self.encoder {
            x = layer.forward(&x, mask.as_ref(), &ctx)?;
        }
        Ok((x, src_mask))
    }

    /// The decoder's last hidden states for `ids [b, t]` (u32 on the device) over the
    /// encoder's output, without a cache.
    fn decode(
        &self,
        ids: &Tensor,
        decoder_mask: Option<&Tensor>,
        (enc, src_mask): (&Tensor, Option<&Tensor>),
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let mut x = self.embed(&self.decoder_embed, ids, 0, ctx)?;
        let self_mask = build_mask(decoder_mask, true, (b, t), 0, &self.device)?
            .map(|m| m.to_dtype(x.dtype()))
            .transpose()?;
        let cross = cross_mask(src_mask, t, x.dtype())?;
        for layer in &self.decoder {
            let kv = layer.encoder_attn.keys_values(enc)?;
            x = layer.forward(
                &x,
                self_mask.as_ref(),
                None,
                (&kv, cross.as_ref(), false),
                ctx,
            )?;
        }
        Ok(x)
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

    /// The full forward pass: logits, and the loss when `args.labels` is set (mean
    /// cross-entropy over labels that are not -100; the decoder's inputs are
    /// `args.decoder_input_ids`, else the labels shifted right).
    pub fn forward(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        let (h, labels) = self.decoder_states(args)?;
        let logits = self.logits(&h)?;
        let loss = labels
            .map(|l| kernels::cross_entropy(&logits.to_dtype(DType::F32)?, &l))
            .transpose()?;
        Ok(ModelOutput {
            logits,
            loss,
            attentions: None,
            hidden_states: None,
        })
    }

    /// The loss of [`forward`](Self::forward) alone, the head run only over the labelled
    /// decoder positions (a training step's work; padding is skipped).
    pub fn loss(&self, args: &ForwardArgs) -> Result<Tensor> {
        match self.decoder_states(args)? {
            (h, Some(labels)) => lm_loss(&h, &labels, |x| self.logits(x)),
            (_, None) => Err(Error::InvalidArgument(
                "the loss needs labels: set ForwardArgs::labels".into(),
            )),
        }
    }

    /// The decoder's last hidden states `[b, t, d]` for `args`, and its labels (i64, checked
    /// to match the decoder's inputs) when set.
    fn decoder_states(&self, args: &ForwardArgs) -> Result<(Tensor, Option<Tensor>)> {
        let dec = match (&args.decoder_input_ids, &args.labels) {
            (Some(d), _) => read_ids(d, &self.device)?.0,
            (None, Some(l)) => shift_tokens_right(
                &l.to_device(&self.device)?,
                self.config.pad_token_id,
                self.config.decoder_start_token_id,
            )?,
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "an encoder-decoder model needs the decoder's inputs: give decoder_input_ids (starting with the decoder start token) or labels (shifted right inside)".into(),
                ));
            }
        };
        let (b, t) = dec.dims2()?;
        let labels = match &args.labels {
            None => None,
            Some(labels) if labels.dims() != [b, t] => {
                return Err(Error::InvalidArgument(format!(
                    "labels have shape {:?}, expected [{b}, {t}] like the decoder's inputs",
                    labels.dims()
                )));
            }
            Some(labels) => Some(labels.to_device(&self.device)?.to_dtype(DType::I64)?),
        };
        let (enc, src_mask) = self.encode(args)?;
        if enc.dim(0)? != b {
            return Err(Error::InvalidArgument(format!(
                "input_ids has {} rows, the decoder's inputs {b}",
                enc.dim(0)?
            )));
        }
        let ctx = self.ctx();
        let dmask = args
            .decoder_attention_mask
            .as_ref()
            .map(|m| m.to_device(&self.device))
            .transpose()?;
        let h = self.decode(&dec, dmask.as_ref(), (&enc, src_mask.as_ref()), &ctx)?;
        Ok((h, labels))
    }

    /// The decoding state for generation: the encoder run once, each source repeated
    /// `rows_per_source` times.
    pub fn start_decoding(
        &self,
        args: &ForwardArgs,
        rows_per_source: usize,
        capacity: usize,
    ) -> Result<EncoderDecoderCache> {
        let (enc, mask) = self.encode(args)?;
        let (enc, mask) = if rows_per_source > 1 {
            let b = enc.dim(0)?;
            let idx: Vec<u32> = (0..b as u32)
                .flat_map(|i| std::iter::repeat_n(i, rows_per_source))
                .collect();
            let idx = Tensor::from_vec(idx, b * rows_per_source, &self.device)?;
            (
                enc.index_select(&idx, 0)?,
                mask.map(|m| m.index_select(&idx, 0)).transpose()?,
            )
        } else {
            (enc, mask)
        };
        Ok(EncoderDecoderCache::new(enc, mask, capacity))
    }

    /// Logits `[rows, t, vocab]` of the new decoder tokens `ids [rows, t]` after those in
    /// `cache`; the cross-attention keys and values are computed at the first call.
    pub fn decode_cached(&self, ids: &Tensor, cache: &mut EncoderDecoderCache) -> Result<Tensor> {
        let ctx = self.ctx();
        let (ids, (b, t)) = read_ids(ids, &self.device)?;
        if b != cache.rows() {
            return Err(Error::InvalidArgument(format!(
                "the decoder cache holds {} rows, the input has {b}",
                cache.rows()
            )));
        }
        let past = cache.self_attn.len;
        let mut x = self.embed(&self.decoder_embed, &ids, past, &ctx)?;
        let self_mask = build_mask(None, true, (b, t), past, &self.device)?
            .map(|m| m.to_dtype(x.dtype()))
            .transpose()?;
        let cross = cross_mask(cache.encoder_mask.as_ref(), t, x.dtype())?;
        let n = self.decoder.len();
        if cache.self_attn.layers.len() != n {
            cache.self_attn.layers = vec![None; n];
        }
        if cache.cross.len() != n {
            cache.cross = vec![None; n];
        }
        for (i, layer) in self.decoder.iter().enumerate() {
            let kv = match &cache.cross[i] {
                Some(kv) => kv.clone(),
                None => {
                    let kv = layer
                        .encoder_attn
                        .keys_values(&cache.encoder_hidden)?
                        .contiguous()?;
                    cache.cross[i] = Some(kv.clone());
                    kv
                }
            };
            let slot = CacheSlot {
                past,
                reserve: cache.self_attn.reserve,
                kv: &mut cache.self_attn.layers[i],
            };
            x = layer.forward(
                &x,
                self_mask.as_ref(),
                Some(slot),
                (&kv, cross.as_ref(), true),
                &ctx,
            )?;
        }
        cache.self_attn.len = past + t;
        self.logits(&x)
    }
}
