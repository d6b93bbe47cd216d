//! RoBERTa: BERT's encoder with position ids that count non-padding tokens from
//! `padding_idx + 1`, one token type, and its own `lm_head` names
//! (`lm_head.dense`, `lm_head.layer_norm`, `lm_head.bias`, decoder tied to the word embeddings).
use super::bert::{HeadNames, build_encoder};
use super::config::BertConfig;
use super::core::{Positions, Transformer};
use super::heads::{Head, Task};
use super::labels::LabelConfig;
use super::params::Params;
use crate::Result;

const ROBERTA_HEAD: HeadNames = HeadNames {
    dense: "lm_head.dense",
    ln: "lm_head.layer_norm",
    bias: "lm_head.bias",
    roberta_classifier: true,
};

pub(crate) fn build(
    c: &BertConfig,
    p: &mut Params,
    task: Task,
    labels: &LabelConfig,
) -> Result<(Transformer, Head)> {
    let positions = Positions::PaddingOffset {
        padding_idx: c.pad_token_id,
    };
    build_encoder(c, p, task, "roberta.", positions, &ROBERTA_HEAD, labels)
}
