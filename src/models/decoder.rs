//! The Llama-style decoder that `llama.rs`, `qwen2.rs` and `mistral.rs` build under their own
//! configs: token embeddings, pre-RMSNorm blocks of grouped-query attention with rotary
//! positions and a SwiGLU MLP, a final RMSNorm, and an LM head tied to the embeddings or not.
//! Each family turns its `config.json` into a [`DecoderSpec`] (which biases, which layers slide
//! a window, ...); the weight names are Hugging Face's, shared by the three
//! (`model.layers.N.self_attn.q_proj.weight`, `model.norm.weight`, `lm_head.weight`).
//!
//! The config keys the three share (`rope_scaling`, `eos_token_id` lists) are read in
//! `decoder_config.rs`.
use std::sync::Arc;

use candle_core::{DType, Tensor};

use super::args::ForwardArgs;
use super::family::{Body, ModelSize, Network, in_vocab, positive, probability, stack_parameters};
use super::heads::Task;
use super::layers::{
    Collect, Ctx, GatedMlp, GqaAttention, KvCache, Linear, RmsNorm, Rope, RopeScaling, Window,
    build_windowed_mask, embed_tokens, linear_maybe_bias, mask_in, read_ids, rms_norm, run_layers,
};
use super::params::{Init, Params};
use crate::{Error, Result, kernels};

/// Everything the decoder needs, resolved from a family's config.
#[derive(Clone, Debug)]
pub(crate) struct DecoderSpec {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub max_positions: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    /// Biases on q, k and v (Llama's `attention_bias`; Qwen2 always).
    pub qkv_bias: bool,
    /// A bias on `o_proj` (Llama's `attention_bias`; never in Qwen2 and Mistral).
    pub o_bias: bool,
    pub mlp_bias: bool,
    pub tie_word_embeddings: bool,
    /// Per layer: its sliding window, if it has one.
    pub windows: Vec<Option<usize>>,
    pub attention_dropout: f64,
    pub initializer_range: f64,
    pub pad_token_id: Option<u32>,
}

/// The size of a decoder of `spec`: embeddings (and an untied head), layers of a gated MLP
/// (three matrices) and two RMSNorms. A spec that does not resolve counts as a plain stack of
/// `hidden` (its own check reports the config).
pub(crate) fn size(spec: Option<DecoderSpec>, vocab: usize, hidden: usize) -> ModelSize {
    let Some(s) = spec else {
        return ModelSize {
            parameters: (vocab * hidden) as f64,
            layers: 0,
            hidden_size: hidden,
            heads: 1,
            intermediate_size: hidden,
        };
    };
    let e = s.hidden_size;
    let heads_out = if s.tie_word_embeddings { 1 } else { 2 };
    let embeddings = (heads_out * s.vocab_size * e + e) as f64;
    let kv = s.kv_heads * s.head_dim;
    ModelSize {
        parameters: embeddings + stack_parameters(s.layers, (e, kv, s.intermediate_size), 3, 2),
        layers: s.layers,
        hidden_size: e,
        heads: s.heads,
        intermediate_size: s.intermediate_size,
    }
}

/// The checks of a resolved spec, each naming the `config.json` key: sizes, heads that split
/// into kv groups, an even head size (RoPE turns pairs), the activation (SwiGLU is `silu`).
pub(crate) fn validate(s: &DecoderSpec, hidden_act: &str) -> std::result::Result<(), String> {
    positive(&[
        ("vocab_size", s.vocab_size),
        ("hidden_size", s.hidden_size),
        ("intermediate_size", s.intermediate_size),
        ("num_attention_heads", s.heads),
        ("num_key_value_heads", s.kv_heads),
        ("head_dim", s.head_dim),
        ("max_position_embeddings", s.max_positions),
    ])?;
    if !s.heads.is_multiple_of(s.kv_heads) {
        return Err(format!(
            "`num_attention_heads` {} is not a multiple of `num_key_value_heads` {}: each kv head is shared by num_attention_heads / num_key_value_heads query heads",
            s.heads, s.kv_heads
        ));
    }
    if !s.head_dim.is_multiple_of(2) {
        return Err(format!(
            "`head_dim` {} is odd; rotary embeddings turn pairs of dimensions, so it must be even",
            s.head_dim
        ));
    }
    if !matches!(hidden_act, "silu" | "swish") {
        return Err(format!(
            "`hidden_act` `{hidden_act}` is not supported; the gated MLP supports: silu"
        ));
    }
    if !(s.rms_norm_eps.is_finite() && s.rms_norm_eps > 0.0) {
        return Err(format!(
            "`rms_norm_eps` is {}; it must be a small positive number (1e-6 is usual)",
            s.rms_norm_eps
        ));
    }
    if s.windows.contains(&Some(0)) {
        return Err("`sliding_window` is 0; it must be at least 1 (or null for none)".into());
    }
    probability(&[("attention_dropout", s.attention_dropout)])?;
    in_vocab("pad_token_id", s.pad_token_id, s.vocab_size)
}

/// The summary rows every decoder family shows.
pub(crate) fn summary_rows(s: &DecoderSpec) -> Vec<(String, String)> {
    let rope = match s.rope_scaling {
        RopeScaling::None => format!("theta {}", s.rope_theta),
        RopeScaling::Linear { factor } => format!("theta {}, linear x{factor}", s.rope_theta),
        RopeScaling::Llama3 { factor, .. } => format!("theta {}, llama3 x{factor}", s.rope_theta),
    };
    let mut rows = vec![
        ("layers".into(), s.layers.to_string()),
        ("hidden_size".into(), s.hidden_size.to_string()),
        ("heads".into(), s.heads.to_string()),
        (
            "kv_heads".into(),
            format!(
                "{} ({} query heads each)",
                s.kv_heads,
                s.heads / s.kv_heads.max(1)
            ),
        ),
        ("head_dim".into(), s.head_dim.to_string()),
        ("intermediate_size".into(), s.intermediate_size.to_string()),
        ("vocab_size".into(), s.vocab_size.to_string()),
        ("max_positions".into(), s.max_positions.to_string()),
        ("rope".into(), rope),
        ("tied_lm_head".into(), s.tie_word_embeddings.to_string()),
    ];
    let sliding = s.windows.iter().filter(|w| w.is_some()).count();
    if let Some(w) = s.windows.iter().flatten().next() {
        rows.push((
            "sliding_window".into(),
            format!("{w} ({sliding} of {} layers)", s.layers),
        ));
    }
    rows
}

const PREFIX: &str = "model.";

/// `x + attn(norm x)`, then `+ mlp(norm x)`.
#[derive(Clone)]
struct Block {
    input_layernorm: RmsNorm,
    self_attn: GqaAttention,
    post_attention_layernorm: RmsNorm,
    mlp: GatedMlp,
    window: Option<usize>,
}

enum Head {
    Tied,
    Untied(Linear),
    Base,
}

struct Decoder {
    embed_tokens: Tensor,
    blocks: Vec<Block>,
    norm: RmsNorm,
    head: Head,
    rope: Rope,
    pad_token_id: Option<u32>,
}

/// The decoder of `s` for `task` (`CausalLm` or `Base`), weights from `p` under Hugging Face's
/// names (without the `model.` prefix for the bare model, as `LlamaModel` saves them).
pub(crate) fn build(s: &DecoderSpec, p: &mut Params, task: Task) -> Result<Arc<dyn Network>> {
    p.set_prefix(PREFIX);
    let pre = if task == Task::Base { "" } else { PREFIX };
    let (h, std) = (s.hidden_size, s.initializer_range);
    let embed_init = match s.pad_token_id {
        Some(pad) => Init::NormalZeroRow(std, pad as usize),
        None => Init::Normal(std),
    };
    let embed_tokens = p.get(
        &format!("{pre}embed_tokens.weight"),
        &[s.vocab_size, h],
        embed_init,
    )?;
    let (q_out, kv_out) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    let mut blocks = Vec::with_capacity(s.layers);
    for i in 0..s.layers {
        let n = format!("{pre}layers.{i}");
        let dense = |p: &mut Params, name: &str, dims: (usize, usize), bias: bool| {
            linear_maybe_bias(p, &format!("{n}.{name}"), dims, std, bias)
        };
        let self_attn = GqaAttention {
            q: dense(p, "self_attn.q_proj", (h, q_out), s.qkv_bias)?,
            k: dense(p, "self_attn.k_proj", (h, kv_out), s.qkv_bias)?,
            v: dense(p, "self_attn.v_proj", (h, kv_out), s.qkv_bias)?,
            o: dense(p, "self_attn.o_proj", (q_out, h), s.o_bias)?,
            heads: s.heads,
            kv_heads: s.kv_heads,
            dropout: s.attention_dropout,
        };
        let inter = s.intermediate_size;
        let mlp = GatedMlp {
            gate: dense(p, "mlp.gate_proj", (h, inter), s.mlp_bias)?,
            up: dense(p, "mlp.up_proj", (h, inter), s.mlp_bias)?,
            down: dense(p, "mlp.down_proj", (inter, h), s.mlp_bias)?,
        };
        blocks.push(Block {
            input_layernorm: rms_norm(p, &format!("{n}.input_layernorm"), h, s.rms_norm_eps)?,
            self_attn,
            post_attention_layernorm: rms_norm(
                p,
                &format!("{n}.post_attention_layernorm"),
                h,
                s.rms_norm_eps,
            )?,
            mlp,
            window: s.windows.get(i).copied().flatten(),
        });
    }
    let norm = rms_norm(p, &format!("{pre}norm"), h, s.rms_norm_eps)?;
    let head = match task {
        Task::Base => Head::Base,
        // a `with_quantized_weights` copy of a tied model multiplies by the embeddings'
        // quantized blocks, filed as `lm_head.weight`; lookups still read the tensor
        _ if s.tie_word_embeddings && !p.has_quantized("lm_head.weight") => Head::Tied,
        _ => Head::Untied(linear_maybe_bias(
            p,
            "lm_head",
            (h, s.vocab_size),
            std,
            false,
        )?),
    };
    let rope = Rope::new(
        s.head_dim,
        s.rope_theta,
        s.rope_scaling,
        embed_tokens.device(),
    )?;
    Ok(Arc::new(Decoder {
        embed_tokens,
        blocks,
        norm,
        head,
        rope,
        pad_token_id: s.pad_token_id,
    }))
}

impl Network for Decoder {
    fn body(&self, args: &ForwardArgs, cache: Option<&mut KvCache>, ctx: &Ctx) -> Result<Body> {
        let dev = self.embed_tokens.device();
        let (ids, (b, t)) = read_ids(&args.input_ids, dev)?;
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        // activations in the norms' dtype: the model's, also when the matrices are bf16
        let dtype = self.norm.weight.dtype();
        // no padding id: no row is held out of the embeddings' gradient
        let pad = self.pad_token_id.unwrap_or(u32::MAX);
        let x = embed_tokens(&self.embed_tokens, &ids, (pad, 1.0), dtype)?;
        let (cos, sin) = self
            .rope
            .cos_sin(args.position_ids.as_ref(), (b, t), past, dtype)?;
        // one mask per distinct window (full causal, and the sliding one if any layer slides)
        let mut masks: Vec<(Option<usize>, Option<Tensor>)> = Vec::new();
        for w in self.blocks.iter().map(|b| b.window) {
            if masks.iter().any(|(mw, _)| *mw == w) {
                continue;
            }
            let window = w.map_or(Window::Causal, Window::Sliding);
            let m = build_windowed_mask(args.attention_mask.as_ref(), window, (b, t), past, dev)?
                .map(|m| mask_in(&m, dtype))
                .transpose()?;
            masks.push((w, m));
        }
        let mask_of = |w: Option<usize>| {
            masks
                .iter()
                .find(|(mw, _)| *mw == w)
                .and_then(|(_, m)| m.as_ref())
        };
        let collect = Collect {
            hidden_states: args.output_hidden_states,
            attentions: args.output_attentions,
        };
        let (x, states) = run_layers(x, self.blocks.len(), cache, collect, |i, x, slot, want| {
            let blk = &self.blocks[i];
            let (a, probs) = blk.self_attn.forward(
                &blk.input_layernorm.forward(x)?,
                (&cos, &sin),
                mask_of(blk.window),
                slot,
                want,
                ctx,
            )?;
            let x = kernels::residual(x, &a)?;
            let m = blk
                .mlp
                .forward(&blk.post_attention_layernorm.forward(&x)?, ctx)?;
            Ok((kernels::residual(&x, &m)?, probs))
        })?;
        let x = self.norm.forward(&x)?;
        let states = states.finish(&x);
        Ok(Body::new(x, states.hidden_states, states.attentions))
    }

    fn lm_logits(&self, h: &Tensor) -> Result<Tensor> {
        match &self.head {
            Head::Tied => Ok(kernels::linear(h, &self.embed_tokens, None, false)?),
            Head::Untied(lm_head) => lm_head.forward(h),
            Head::Base => Err(Error::InvalidArgument(
                "this model has no language-model head; use AutoModelForCausalLM".into(),
            )),
        }
    }

    fn vocab_tensors(&self) -> Vec<Tensor> {
        match &self.head {
            Head::Untied(lm_head) => match lm_head.dense_weight() {
                Some(w) => vec![self.embed_tokens.clone(), w.clone()],
                // quantized blocks cannot be resized: the model refuses before asking
                None => Vec::new(),
            },
            _ => vec![self.embed_tokens.clone()],
        }
    }

    fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    fn has_kv_cache(&self) -> bool {
        true
    }
}

/// The [`Family`](super::family::Family) of a decoder whose config builds a [`DecoderSpec`]
/// (`spec()`) and has Hugging Face's common keys (`hidden_size`, `num_attention_heads`,
/// `head_dim`, `hidden_act`, ...): Llama, Qwen2 and Mistral differ only in their names and in
/// which keys may be `null`, so the impl is written once. Invoked from the family's file, whose
/// `super` is `models`.
macro_rules! decoder_family {
    ($family:ident, $config:ty, $model_type:literal, $base:literal, $causal:literal, [$($null:literal),*]) => {
        impl super::family::Family for $family {
            type Config = $config;
            const MODEL_TYPE: &'static str = $model_type;
            const REQUIRED_KEYS: &'static [&'static str] = &[
                "vocab_size",
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
            ];
            const NULL_MEANS_NONE: &'static [&'static str] = &[$($null),*];
            const TASKS: &'static [super::heads::Task] = &[super::heads::Task::CausalLm, super::heads::Task::Base];

            fn defaults() -> $config {
                <$config>::default()
            }

            fn validate(c: &$config) -> std::result::Result<(), String> {
                if c.head_dim.is_none() {
                    super::family::divisible(
                        ("hidden_size", c.hidden_size),
                        ("num_attention_heads", c.num_attention_heads),
                    )?;
                }
                super::decoder::validate(&c.spec()?, &c.hidden_act)
            }

            fn architecture(_: &$config, task: super::heads::Task) -> &'static str {
                match task {
                    super::heads::Task::Base => $base,
                    _ => $causal,
                }
            }

            fn summary_rows(c: &$config) -> Vec<(String, String)> {
                c.spec()
                    .map(|s| super::decoder::summary_rows(&s))
                    .unwrap_or_else(|e| vec![("config".into(), e)])
            }

            fn dims(c: &$config) -> (usize, usize, usize) {
                (c.num_hidden_layers, c.hidden_size, c.num_attention_heads)
            }
            fn vocab_size(c: &$config) -> usize {
                c.vocab_size
            }
            fn set_vocab_size(c: &mut $config, vocab_size: usize) {
                c.vocab_size = vocab_size;
            }
            fn max_positions(c: &$config) -> usize {
                c.max_position_embeddings
            }
            fn initializer_range(c: &$config) -> f64 {
                c.initializer_range
            }
            fn size(c: &$config) -> super::family::ModelSize {
                super::decoder::size(c.spec().ok(), c.vocab_size, c.hidden_size)
            }

            fn build(
                c: &$config,
                p: &mut super::params::Params,
                task: super::heads::Task,
                _labels: &super::labels::LabelConfig,
            ) -> crate::Result<std::sync::Arc<dyn super::family::Network>> {
                let spec = c.spec().map_err(crate::Error::InvalidConfig)?;
                super::decoder::build(&spec, p, task)
            }
        }
    };
}
pub(crate) use decoder_family;

/// The [`DecoderSpec`] of a family config with Hugging Face's common decoder keys (`hidden_size`,
/// `num_key_value_heads`, `head_dim`, the rotary keys, ...): the families differ only in their
/// biases and attention windows, given here.
macro_rules! decoder_spec {
    ($c:expr, qkv_bias: $qkv:expr, o_bias: $o:expr, mlp_bias: $mlp:expr, windows: $windows:expr $(,)?) => {{
        let c = $c;
        let (rope_theta, rope_scaling) = super::decoder_config::rope_of(
            c.rope_theta,
            c.rope_scaling.as_ref(),
            c.rope_parameters.as_ref(),
            c.max_position_embeddings,
        )?;
        Ok(super::decoder::DecoderSpec {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            head_dim: c
                .head_dim
                .unwrap_or(c.hidden_size / c.num_attention_heads.max(1)),
            max_positions: c.max_position_embeddings,
            rms_norm_eps: c.rms_norm_eps,
            rope_theta,
            rope_scaling,
            qkv_bias: $qkv,
            o_bias: $o,
            mlp_bias: $mlp,
            tie_word_embeddings: c.tie_word_embeddings,
            windows: $windows,
            attention_dropout: c.attention_dropout,
            initializer_range: c.initializer_range,
            pad_token_id: c.pad_token_id,
        })
    }};
}
pub(crate) use decoder_spec;
