//! RoBERTa: BERT's encoder (`bert.rs`) with position ids that count non-padding tokens from
//! `padding_idx + 1`, one token type, its own names (`roberta.`, `lm_head.dense`,
//! `lm_head.layer_norm`, `lm_head.bias`, decoder tied to the word embeddings) and
//! `RobertaClassificationHead` on `<s>`.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::bert::{self, BertConfig, Names, bert_sizes, build_encoder};
use super::family::{Family, Network};
use super::heads::Task;
use super::labels::LabelConfig;
use super::params::Params;
use crate::Result;

/// RoBERTa hyper-parameters: BERT's keys, its own type, so that
/// `AutoModelForMaskedLM::from_config(&RobertaConfig::small(v), ..)` builds a RoBERTa (position
/// ids after `padding_idx`, `roberta.` / `lm_head.` names), not a BERT of the same sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobertaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    /// Position table length; RoBERTa reserves the first `pad_token_id + 1` rows.
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: u32,
}

impl RobertaConfig {
    /// A small RoBERTa for training from scratch: 4 layers, 4 heads, 256 wide, one token type,
    /// padding id 1 and 514 positions (512 usable: position ids start after `padding_idx`).
    pub fn small(vocab_size: usize) -> Self {
        BertConfig {
            type_vocab_size: 1,
            pad_token_id: 1,
            max_position_embeddings: 514,
            layer_norm_eps: 1e-5,
            ..BertConfig::small(vocab_size)
        }
        .into()
    }

    /// The hyper-parameters of `roberta-base` (125M).
    pub fn roberta_base() -> Self {
        Self {
            vocab_size: 50265,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            ..Self::small(50265)
        }
    }
}

impl From<BertConfig> for RobertaConfig {
    fn from(c: BertConfig) -> Self {
        Self {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            hidden_act: c.hidden_act,
            hidden_dropout_prob: c.hidden_dropout_prob,
            attention_probs_dropout_prob: c.attention_probs_dropout_prob,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            initializer_range: c.initializer_range,
            layer_norm_eps: c.layer_norm_eps,
            pad_token_id: c.pad_token_id,
        }
    }
}

impl From<RobertaConfig> for BertConfig {
    fn from(c: RobertaConfig) -> Self {
        Self {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            hidden_act: c.hidden_act,
            hidden_dropout_prob: c.hidden_dropout_prob,
            attention_probs_dropout_prob: c.attention_probs_dropout_prob,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            initializer_range: c.initializer_range,
            layer_norm_eps: c.layer_norm_eps,
            pad_token_id: c.pad_token_id,
        }
    }
}

/// The RoBERTa family (its config is BERT's keys; [`RobertaConfig`] is its typed front door).
pub(crate) struct Roberta;

const ROBERTA_NAMES: Names = Names {
    prefix: "roberta.",
    positions_after_padding: true,
    mlm_dense: "lm_head.dense",
    mlm_ln: "lm_head.layer_norm",
    mlm_bias: "lm_head.bias",
    roberta_classifier: true,
};

impl Family for Roberta {
    type Config = BertConfig;
    const MODEL_TYPE: &'static str = "roberta";
    const REQUIRED_KEYS: &'static [&'static str] = bert::REQUIRED_KEYS;
    const TASKS: &'static [Task] = &[
        Task::MaskedLm,
        Task::Base,
        Task::SequenceClassification,
        Task::QuestionAnswering,
    ];

    fn defaults() -> BertConfig {
        // RoBERTa's padding id is 1
        BertConfig {
            pad_token_id: 1,
            ..BertConfig::small(0)
        }
    }

    fn validate(c: &BertConfig) -> std::result::Result<(), String> {
        bert::validate(c)?;
        if c.max_position_embeddings <= c.pad_token_id as usize + 1 {
            return Err(format!(
                "`max_position_embeddings` {} leaves no positions after padding_idx {} (`pad_token_id`): RoBERTa's positions start at padding_idx + 1",
                c.max_position_embeddings, c.pad_token_id
            ));
        }
        Ok(())
    }

    fn architecture(_: &BertConfig, task: Task) -> &'static str {
        match task {
            Task::Base => "RobertaModel",
            Task::SequenceClassification => "RobertaForSequenceClassification",
            Task::QuestionAnswering => "RobertaForQuestionAnswering",
            _ => "RobertaForMaskedLM",
        }
    }

    bert_sizes!();

    /// Less the two reserved offsets.
    fn max_positions(c: &BertConfig) -> usize {
        c.max_position_embeddings.saturating_sub(2)
    }

    fn build(
        c: &BertConfig,
        p: &mut Params,
        task: Task,
        labels: &LabelConfig,
    ) -> Result<Arc<dyn Network>> {
        build_encoder(c, p, task, &ROBERTA_NAMES, labels)
    }
}
