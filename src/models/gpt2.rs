//! GPT-2: pre-LN blocks, `Conv1D` weights stored `[in, out]`, a fused `c_attn`, `gelu_new`,
//! learned positions, a final `ln_f`, and an `lm_head` tied to `wte`. Names follow
//! transformers' `GPT2LMHeadModel` (`transformer.h.0.attn.c_attn.weight`, ...); the heads are
//! the tied LM head and `GPT2ForSequenceClassification`'s `score` on the last real token.
use std::sync::Arc;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::args::ForwardArgs;
use super::family::{
    Body, Family, ModelSize, Network, divisible, known_activation, positive, probability,
    stack_parameters,
};
use super::heads::{Task, last_real_token};
use super::labels::LabelConfig;
use super::layers::{
    Attention, CacheSlot, Collect, Ctx, Embeddings, KvCache, LayerNorm, Linear, Mlp, Positions,
    Qkv, build_mask, conv1d, layer_norm, mask_in, read_ids, run_layers,
};
use super::params::{Init, Params};
use crate::{Error, Result, kernels};

/// GPT-2 hyper-parameters, with Hugging Face's key names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    /// Length of the position table (the longest sequence).
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; `None` means `4 * n_embd`.
    pub n_inner: Option<usize>,
    pub activation_function: String,
    pub resid_pdrop: f64,
    pub embd_pdrop: f64,
    pub attn_pdrop: f64,
    pub layer_norm_epsilon: f64,
    pub initializer_range: f64,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    /// The padding id; GPT-2 has none, and `GPT2ForSequenceClassification` needs one to find
    /// the last real token of each row of a padded batch (set it to the eos id, as is usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

impl Gpt2Config {
    /// A small GPT-2 for training from scratch: 6 layers, 6 heads, 384 wide, 256 positions.
    pub fn small(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            n_positions: 256,
            n_embd: 384,
            n_layer: 6,
            n_head: 6,
            ..Self::gpt2()
        }
    }

    /// The hyper-parameters of the original 124M `gpt2` checkpoint.
    pub fn gpt2() -> Self {
        Self {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            n_inner: None,
            activation_function: "gelu_new".into(),
            resid_pdrop: 0.1,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            layer_norm_epsilon: 1e-5,
            initializer_range: 0.02,
            bos_token_id: Some(50256),
            eos_token_id: Some(50256),
            pad_token_id: None,
        }
    }

    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
}

/// The GPT-2 family.
pub(crate) struct Gpt2;

impl Family for Gpt2 {
    type Config = Gpt2Config;
    const MODEL_TYPE: &'static str = "gpt2";
    const REQUIRED_KEYS: &'static [&'static str] =
        &["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"];
    const TASKS: &'static [Task] = &[Task::CausalLm, Task::Base, Task::SequenceClassification];

    fn defaults() -> Gpt2Config {
        // what transformers assumes for keys a config.json leaves out; ids default to none
        Gpt2Config {
            bos_token_id: None,
            eos_token_id: None,
            ..Gpt2Config::gpt2()
        }
    }

    fn validate(c: &Gpt2Config) -> std::result::Result<(), String> {
        positive(&[
            ("vocab_size", c.vocab_size),
            ("n_positions", c.n_positions),
            ("n_embd", c.n_embd),
            ("n_head", c.n_head),
        ])?;
        if c.n_inner == Some(0) {
            return Err("`n_inner` is 0; it must be at least 1 (or none, for 4 * n_embd)".into());
        }
        divisible(("n_embd", c.n_embd), ("n_head", c.n_head))?;
        probability(&[
            ("resid_pdrop", c.resid_pdrop),
            ("embd_pdrop", c.embd_pdrop),
            ("attn_pdrop", c.attn_pdrop),
        ])?;
        // bos / eos are not checked against the vocabulary: `Gpt2Config::small(v)` keeps the
        // original ids (50256), as transformers lets a config do
        known_activation("activation_function", &c.activation_function)
    }

    fn architecture(_: &Gpt2Config, task: Task) -> &'static str {
        match task {
            Task::Base => "GPT2Model",
            Task::SequenceClassification => "GPT2ForSequenceClassification",
            _ => "GPT2LMHeadModel",
        }
    }

    fn summary_rows(c: &Gpt2Config) -> Vec<(String, String)> {
        vec![
            ("layers".into(), c.n_layer.to_string()),
            ("hidden_size".into(), c.n_embd.to_string()),
            ("heads".into(), c.n_head.to_string()),
            ("vocab_size".into(), c.vocab_size.to_string()),
            ("max_positions".into(), c.n_positions.to_string()),
        ]
    }

    fn dims(c: &Gpt2Config) -> (usize, usize, usize) {
        (c.n_layer, c.n_embd, c.n_head)
    }
    fn vocab_size(c: &Gpt2Config) -> usize {
        c.vocab_size
    }
    fn set_vocab_size(c: &mut Gpt2Config, vocab_size: usize) {
        c.vocab_size = vocab_size;
    }
    fn max_positions(c: &Gpt2Config) -> usize {
        c.n_positions
    }
    fn initializer_range(c: &Gpt2Config) -> f64 {
        c.initializer_range
    }
    /// Tied head: the word embeddings are the output layer.
    fn size(c: &Gpt2Config) -> ModelSize {
        let (e, ffn) = (c.n_embd, c.n_inner.unwrap_or(4 * c.n_embd));
        let embeddings = ((c.vocab_size + c.n_positions) * e + 2 * e) as f64;
        ModelSize {
            parameters: embeddings + stack_parameters(c.n_layer, (e, e, ffn), 2, 4),
            layers: c.n_layer,
            hidden_size: e,
            heads: c.n_head,
            intermediate_size: ffn,
        }
    }

    fn build(
        c: &Gpt2Config,
        p: &mut Params,
        task: Task,
        labels: &LabelConfig,
    ) -> Result<Arc<dyn Network>> {
        Ok(Arc::new(build(c, p, task, labels)?))
    }
}

pub(crate) const PREFIX: &str = "transformer.";

/// `x + attn(ln_1 x)`, then `+ mlp(ln_2 x)`: GPT-2's pre-LN block.
#[derive(Clone)]
struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
    resid_dropout: f64,
}

impl Block {
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<CacheSlot<'_>>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (a, probs) = self
            .attn
            .forward(&self.ln_1.forward(x)?, mask, cache, want_probs, ctx)?;
        let x = kernels::residual(x, &ctx.dropout(&a, self.resid_dropout)?)?;
        let m = self.mlp.forward(&self.ln_2.forward(&x)?, ctx)?;
        Ok((
            kernels::residual(&x, &ctx.dropout(&m, self.resid_dropout)?)?,
            probs,
        ))
    }
}

/// What sits on top of GPT-2's stack.
enum Head {
    /// Logits = hidden · wteᵀ.
    TiedLm,
    /// `GPT2ForSequenceClassification`: `score` (no bias) on the last token that is not
    /// `pad_token_id`.
    Score {
        score: Linear,
        pad_token_id: Option<u32>,
    },
    Base,
}

struct Gpt2Network {
    embeddings: Embeddings,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Head,
}

fn build(c: &Gpt2Config, p: &mut Params, task: Task, labels: &LabelConfig) -> Result<Gpt2Network> {
    p.set_prefix(PREFIX);
    let pre = if task == Task::Base { "" } else { PREFIX };
    let (h, std) = (c.n_embd, c.initializer_range);
    // GPT-2 scales the init of the projections into the residual stream by 1/sqrt(2 n_layer)
    let proj_std = std / (2.0 * c.n_layer as f64).sqrt();
    let act = Activation::from_hf(&c.activation_function).unwrap_or(Activation::GeluNew);
    let embeddings = Embeddings {
        word: p.get(
            &format!("{pre}wte.weight"),
            &[c.vocab_size, h],
            Init::Normal(std),
        )?,
        position: p.get(
            &format!("{pre}wpe.weight"),
            &[c.n_positions, h],
            Init::Normal(std),
        )?,
        token_type: None,
        ln: None,
        positions: Positions::Absolute,
        dropout: c.embd_pdrop,
    };
    let mut blocks = Vec::with_capacity(c.n_layer);
    for i in 0..c.n_layer {
        let n = format!("{pre}h.{i}");
        blocks.push(Block {
            ln_1: layer_norm(p, &format!("{n}.ln_1"), h, c.layer_norm_epsilon)?,
            attn: Attention {
                qkv: Qkv::Fused(conv1d(p, &format!("{n}.attn.c_attn"), h, 3 * h, std)?),
                out: conv1d(p, &format!("{n}.attn.c_proj"), h, h, proj_std)?,
                n_head: c.n_head,
                attn_dropout: c.attn_pdrop,
            },
            ln_2: layer_norm(p, &format!("{n}.ln_2"), h, c.layer_norm_epsilon)?,
            mlp: Mlp {
                fc: conv1d(p, &format!("{n}.mlp.c_fc"), h, c.inner_dim(), std)?,
                proj: conv1d(p, &format!("{n}.mlp.c_proj"), c.inner_dim(), h, proj_std)?,
                act,
                act_dropout: 0.0,
            },
            resid_dropout: c.resid_pdrop,
        });
    }
    let ln_f = layer_norm(p, &format!("{pre}ln_f"), h, c.layer_norm_epsilon)?;
    let head = match task {
        Task::CausalLm => Head::TiedLm,
        // `score` has no bias; loaded, or initialised when the checkpoint lacks it
        Task::SequenceClassification => Head::Score {
            score: {
                let w =
                    p.get_or_init("score.weight", &[labels.num_labels(), h], Init::Normal(std))?;
                Linear::named(p, "score", w, None, false)?
            },
            pad_token_id: c.pad_token_id,
        },
        _ => Head::Base,
    };
    Ok(Gpt2Network {
        embeddings,
        blocks,
        ln_f,
        head,
    })
}

impl Network for Gpt2Network {
    fn body(&self, args: &ForwardArgs, cache: Option<&mut KvCache>, ctx: &Ctx) -> Result<Body> {
        let dev = self.embeddings.word.device();
        let (ids, (b, t)) = read_ids(&args.input_ids, dev)?;
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let x = self
            .embeddings
            .forward(&ids, None, args.position_ids.as_ref(), past, ctx)?;
        let mask = build_mask(args.attention_mask.as_ref(), true, (b, t), past, dev)?
            .map(|m| mask_in(&m, x.dtype()))
            .transpose()?;
        let collect = Collect {
            hidden_states: args.output_hidden_states,
            attentions: args.output_attentions,
        };
        let (x, states) = run_layers(x, self.blocks.len(), cache, collect, |i, x, slot, want| {
            self.blocks[i].forward(x, mask.as_ref(), slot, want, ctx)
        })?;
        let x = self.ln_f.forward(&x)?;
        let states = states.finish(&x);
        Ok(Body::new(x, states.hidden_states, states.attentions))
    }

    fn lm_logits(&self, h: &Tensor) -> Result<Tensor> {
        match self.head {
            // straight from the fused linear kernel: no reshape, whose backward would copy
            Head::TiedLm => Ok(kernels::linear(h, &self.embeddings.word, None, false)?),
            _ => Err(Error::InvalidArgument(
                "this model has no language-model head; use AutoModelForCausalLM".into(),
            )),
        }
    }

    fn classify(&self, h: &Tensor, input_ids: &Tensor, _ctx: &Ctx) -> Result<Tensor> {
        match &self.head {
            Head::Score {
                score,
                pad_token_id,
            } => score.forward(&last_real_token(
                h,
                input_ids,
                *pad_token_id,
                "GPT2ForSequenceClassification",
            )?),
            _ => Err(Error::InvalidArgument(
                "this model has no sequence-classification head; load it with AutoModelForSequenceClassification".into(),
            )),
        }
    }

    fn vocab_tensors(&self) -> Vec<Tensor> {
        vec![self.embeddings.word.clone()]
    }

    fn dtype(&self) -> DType {
        self.embeddings.word.dtype()
    }

    fn has_kv_cache(&self) -> bool {
        true
    }
}
