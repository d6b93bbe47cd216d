//! GPT-2 on the transformer core: pre-LN blocks, `Conv1D` weights stored `[in, out]`, a fused
//! `c_attn`, `gelu_new`, and an `lm_head` tied to `wte`. Names follow transformers'
//! `GPT2LMHeadModel` (`transformer.h.0.attn.c_attn.weight`, ...).
use super::activation::Activation;
use super::config::Gpt2Config;
use super::core::{
    Attention, Block, Embeddings, Linear, Mlp, Positions, Qkv, Transformer, layer_norm,
};
use super::heads::{Head, Task};
use super::labels::LabelConfig;
use super::params::{Init, Params};
use crate::Result;

pub(crate) const PREFIX: &str = "transformer.";

fn conv1d(p: &mut Params, name: &str, d_in: usize, d_out: usize, std: f64) -> Result<Linear> {
    Ok(Linear {
        weight: p.get(&format!("{name}.weight"), &[d_in, d_out], Init::Normal(std))?,
        bias: Some(p.get(&format!("{name}.bias"), &[d_out], Init::Zeros)?),
        conv1d: true,
    })
}

pub(crate) fn build(
    c: &Gpt2Config,
    p: &mut Params,
    task: Task,
    labels: &LabelConfig,
) -> Result<(Transformer, Head)> {
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
            ln1: layer_norm(p, &format!("{n}.ln_1"), h, c.layer_norm_epsilon)?,
            attn: Attention {
                qkv: Qkv::Fused(conv1d(p, &format!("{n}.attn.c_attn"), h, 3 * h, std)?),
                out: conv1d(p, &format!("{n}.attn.c_proj"), h, h, proj_std)?,
                n_head: c.n_head,
                attn_dropout: c.attn_pdrop,
            },
            ln2: layer_norm(p, &format!("{n}.ln_2"), h, c.layer_norm_epsilon)?,
            mlp: Mlp {
                fc: conv1d(p, &format!("{n}.mlp.c_fc"), h, c.inner_dim(), std)?,
                proj: conv1d(p, &format!("{n}.mlp.c_proj"), c.inner_dim(), h, proj_std)?,
                act,
            },
            pre_ln: true,
            resid_dropout: c.resid_pdrop,
        });
    }
    let ln_f = Some(layer_norm(
        p,
        &format!("{pre}ln_f"),
        h,
        c.layer_norm_epsilon,
    )?);
    let head = match task {
        Task::CausalLm => Head::TiedLm { bias: None },
        // `score` has no bias; loaded, or initialised when the checkpoint lacks it
        Task::SequenceClassification => Head::Gpt2Score {
            score: Linear {
                weight: p.get_or_init(
                    "score.weight",
                    &[labels.num_labels(), h],
                    Init::Normal(std),
                )?,
                bias: None,
                conv1d: false,
            },
            pad_token_id: c.pad_token_id,
        },
        Task::Base | Task::MaskedLm | Task::QuestionAnswering | Task::Seq2SeqLm => {
            Head::Base { pooler: None }
        }
    };
    let core = Transformer {
        embeddings,
        blocks,
        ln_f,
        causal: true,
    };
    Ok((core, head))
}
