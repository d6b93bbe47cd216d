//! BERT on the transformer core: post-LN blocks, separate query/key/value, erf GELU,
//! token-type embeddings, and the MLM head (transform + LayerNorm + decoder tied to the word
//! embeddings + bias). Names follow transformers' `BertForMaskedLM`
//! (`bert.encoder.layer.0.attention.self.query.weight`, `cls.predictions.transform.dense.weight`).
//! RoBERTa reuses all of it with other names for the head (see `roberta.rs`).
use super::activation::Activation;
use super::config::BertConfig;
use super::core::{Attention, Block, Embeddings, Linear, Mlp, Positions, Qkv, Transformer};
use super::heads::{Head, Task};
use super::labels::LabelConfig;
use super::params::{Init, Params};
use crate::Result;

pub(crate) use super::core::{layer_norm, linear};

/// Names of the MLM head pieces (dense, LayerNorm, bias), and which classification head the
/// architecture has.
pub(crate) struct HeadNames {
    pub dense: &'static str,
    pub ln: &'static str,
    pub bias: &'static str,
    /// RoBERTa's `classifier.dense` / `classifier.out_proj` on `<s>` rather than BERT's pooler
    /// and `classifier`.
    pub roberta_classifier: bool,
}

pub(crate) const BERT_HEAD: HeadNames = HeadNames {
    dense: "cls.predictions.transform.dense",
    ln: "cls.predictions.transform.LayerNorm",
    bias: "cls.predictions.bias",
    roberta_classifier: false,
};

/// A task head's dense layer: loaded, or initialised when the checkpoint lacks it.
fn head_linear(p: &mut Params, name: &str, d_in: usize, d_out: usize, std: f64) -> Result<Linear> {
    Ok(Linear {
        weight: p.get_or_init(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std))?,
        bias: Some(p.get_or_init(&format!("{name}.bias"), &[d_out], Init::Zeros)?),
        conv1d: false,
    })
}

/// Builds the encoder shared by BERT and RoBERTa; `prefix` is `bert.` or `roberta.`.
pub(crate) fn build_encoder(
    c: &BertConfig,
    p: &mut Params,
    task: Task,
    prefix: &str,
    positions: Positions,
    head_names: &HeadNames,
    labels: &LabelConfig,
) -> Result<(Transformer, Head)> {
    p.set_prefix(prefix);
    let pre = if task == Task::Base { "" } else { prefix };
    let (h, std, eps) = (c.hidden_size, c.initializer_range, c.layer_norm_eps);
    let act = Activation::from_hf(&c.hidden_act).unwrap_or(Activation::GeluErf);
    let pad = c.pad_token_id as usize;
    let e = format!("{pre}embeddings");
    let pos_init = match positions {
        Positions::PaddingOffset { padding_idx } => Init::NormalZeroRow(std, padding_idx as usize),
        Positions::Absolute => Init::Normal(std),
    };
    let embeddings = Embeddings {
        word: p.get(
            &format!("{e}.word_embeddings.weight"),
            &[c.vocab_size, h],
            Init::NormalZeroRow(std, pad),
        )?,
        position: p.get(
            &format!("{e}.position_embeddings.weight"),
            &[c.max_position_embeddings, h],
            pos_init,
        )?,
        token_type: if c.type_vocab_size > 0 {
            Some(p.get(
                &format!("{e}.token_type_embeddings.weight"),
                &[c.type_vocab_size, h],
                Init::Normal(std),
            )?)
        } else {
            None
        },
        ln: Some(layer_norm(p, &format!("{e}.LayerNorm"), h, eps)?),
        positions,
        dropout: c.hidden_dropout_prob,
    };
    let mut blocks = Vec::with_capacity(c.num_hidden_layers);
    for i in 0..c.num_hidden_layers {
        let n = format!("{pre}encoder.layer.{i}");
        let a = format!("{n}.attention");
        blocks.push(Block {
            attn: Attention {
                qkv: Qkv::Split {
                    q: linear(p, &format!("{a}.self.query"), h, h, std)?,
                    k: linear(p, &format!("{a}.self.key"), h, h, std)?,
                    v: linear(p, &format!("{a}.self.value"), h, h, std)?,
                },
                out: linear(p, &format!("{a}.output.dense"), h, h, std)?,
                n_head: c.num_attention_heads,
                attn_dropout: c.attention_probs_dropout_prob,
            },
            ln1: layer_norm(p, &format!("{a}.output.LayerNorm"), h, eps)?,
            mlp: Mlp {
                fc: linear(
                    p,
                    &format!("{n}.intermediate.dense"),
                    h,
                    c.intermediate_size,
                    std,
                )?,
                proj: linear(p, &format!("{n}.output.dense"), c.intermediate_size, h, std)?,
                act,
            },
            ln2: layer_norm(p, &format!("{n}.output.LayerNorm"), h, eps)?,
            pre_ln: false,
            resid_dropout: c.hidden_dropout_prob,
        });
    }
    let head = match task {
        Task::MaskedLm => Head::MaskedLm {
            dense: linear(p, head_names.dense, h, h, std)?,
            ln: layer_norm(p, head_names.ln, h, eps)?,
            act,
            bias: p.get(head_names.bias, &[c.vocab_size], Init::Zeros)?,
        },
        Task::SequenceClassification => {
            let n = labels.num_labels();
            let dropout = labels.classifier_dropout.unwrap_or(c.hidden_dropout_prob);
            if head_names.roberta_classifier {
                Head::RobertaClassifier {
                    dense: head_linear(p, "classifier.dense", h, h, std)?,
                    out_proj: head_linear(p, "classifier.out_proj", h, n, std)?,
                    dropout,
                }
            } else {
                Head::BertClassifier {
                    pooler: head_linear(p, &format!("{prefix}pooler.dense"), h, h, std)?,
                    classifier: head_linear(p, "classifier", h, n, std)?,
                    dropout,
                }
            }
        }
        // transformers' QA models have no pooler; qa_outputs gives 2 logits per token
        Task::QuestionAnswering => Head::QaOutputs {
            qa_outputs: head_linear(p, "qa_outputs", h, 2, std)?,
        },
        Task::Base | Task::CausalLm | Task::Seq2SeqLm => {
            // the pooler exists in BertModel checkpoints, not in BertForMaskedLM ones
            let pooler = if p.contains("pooler.dense.weight") {
                Some(linear(p, "pooler.dense", h, h, std)?)
            } else {
                None
            };
            Head::Base { pooler }
        }
    };
    let core = Transformer {
        embeddings,
        blocks,
        ln_f: None,
        causal: false,
    };
    Ok((core, head))
}

pub(crate) fn build(
    c: &BertConfig,
    p: &mut Params,
    task: Task,
    labels: &LabelConfig,
) -> Result<(Transformer, Head)> {
    build_encoder(c, p, task, "bert.", Positions::Absolute, &BERT_HEAD, labels)
}
