//! What the model's task decides for the [`Trainer`](super::Trainer), in one place: the
//! collator its batches come from (chosen once, when the trainer is built or given a tokenizer
//! or a collator), and which metrics its evaluation produces.
use serde_json::Value;

use super::args::TrainingArguments;
use super::collator::{
    Collator, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, DataCollatorWithPadding,
};
use crate::models::{PreTrainedModel, Task};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The collator a trainer for `model` starts with, seeded with `seed`: an encoder–decoder
/// batches with [`DataCollatorForSeq2Seq`], a task model with [`DataCollatorWithPadding`] (both
/// padding with the config's `pad_token_id`, else 0), a language model with
/// [`default_collator`].
pub(super) fn collator_for<M: PreTrainedModel>(model: &M, seed: u64) -> Collator {
    let collator: Collator = if model.task() == Task::Seq2SeqLm {
        DataCollatorForSeq2Seq::new(config_pad(model)).into()
    } else if is_task_model(model) {
        DataCollatorWithPadding::new(config_pad(model)).into()
    } else {
        default_collator(model).into()
    };
    collator.with_seed(seed)
}

/// The collator for the model's task from the tokenizer: for a masked LM, the MLM collator with
/// the tokenizer's mask and padding ids and its special tokens never masked; for a causal LM,
/// the causal collator padding with the tokenizer's pad (else eos) id. For a task model
/// (classification, QA), `DataCollatorWithPadding` with the tokenizer's pad (else eos) id; for
/// an encoder–decoder, `DataCollatorForSeq2Seq` with its pad id (else the config's).
pub(super) fn collator_for_tokenizer<M: PreTrainedModel>(
    model: &M,
    tok: &Tokenizer,
) -> Result<Collator> {
    if model.task() == Task::Seq2SeqLm {
        let pad = tok.pad_token_id().unwrap_or_else(|| config_pad(model));
        return Ok(DataCollatorForSeq2Seq::new(pad).into());
    }
    if is_task_model(model) {
        let pad = tok
            .pad_token_id()
            .or_else(|| tok.eos_token_id())
            .unwrap_or(0);
        return Ok(DataCollatorWithPadding::new(pad).into());
    }
    lm_collator_for_tokenizer(model, tok).map(Collator::from)
}

/// The collator a model's task calls for, from what the model knows: the causal collator for a
/// causal LM; for a masked LM an MLM collator with the config's vocabulary size and padding id
/// but no mask id (nothing in a model names its mask token), which refuses to collate with an
/// error saying to pass `with_tokenizer` or `with_collator` — never a causal collator, which
/// would teach a masked LM to copy its input.
fn default_collator<M: PreTrainedModel>(model: &M) -> DataCollatorForLanguageModeling {
    let config = model.config_json();
    let pad = config
        .get("pad_token_id")
        .and_then(Value::as_u64)
        .map(|p| p as u32);
    match model.task() {
        Task::MaskedLm => {
            let mut c = DataCollatorForLanguageModeling::causal(pad.unwrap_or(0));
            c.mlm = true;
            c.shift_labels = false;
            c.vocab_size = model.vocab_size().unwrap_or(0);
            c.special_token_ids = pad.into_iter().collect();
            c
        }
        _ => DataCollatorForLanguageModeling::causal(pad.unwrap_or(0)),
    }
}

/// Whether the model predicts one target per example (a class, an answer span), so that
/// batches come from [`DataCollatorWithPadding`].
pub(super) fn is_task_model<M: PreTrainedModel>(model: &M) -> bool {
    matches!(
        model.task(),
        Task::SequenceClassification | Task::QuestionAnswering
    )
}

/// The config's `pad_token_id` (0 when it has none).
fn config_pad<M: PreTrainedModel>(model: &M) -> u32 {
    model
        .config_json()
        .get("pad_token_id")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u32
}

/// Whether `compute_metrics` may produce any metric (a task model's, a seq2seq model's BLEU),
/// so `metric_for_best_model` is checked at the first evaluation instead of up front.
pub(super) fn metrics_are_free<M: PreTrainedModel>(model: &M) -> bool {
    is_task_model(model) || model.task() == Task::Seq2SeqLm
}

/// The language-modelling collator of [`collator_for_tokenizer`].
fn lm_collator_for_tokenizer<M: PreTrainedModel>(
    model: &M,
    tok: &Tokenizer,
) -> Result<DataCollatorForLanguageModeling> {
    let base = default_collator(model);
    let pad = tok
        .pad_token_id()
        .or_else(|| tok.eos_token_id())
        .unwrap_or(base.pad_token_id);
    if model.task() != Task::MaskedLm {
        return Ok(DataCollatorForLanguageModeling::causal(pad));
    }
    let mask = tok.mask_token_id().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "the model is a masked language model but the tokenizer ({}) has no mask token; give it one (`add_special_tokens`) or pass `.with_collator(DataCollatorForLanguageModeling::mlm(..))`",
            tok.tokenizer_class()
        ))
    })?;
    let mut special: Vec<u32> = tok
        .special_tokens()
        .all()
        .iter()
        .filter_map(|t| tok.token_to_id(t))
        .collect();
    special.sort_unstable();
    special.dedup();
    let vocab = model.vocab_size().unwrap_or_else(|| tok.vocab_size());
    Ok(DataCollatorForLanguageModeling::mlm(
        mask, pad, vocab, special,
    ))
}

/// The metrics `evaluate()` logs, under which `metric_for_best_model` may name one.
pub const EVAL_METRICS: [&str; 2] = ["eval_loss", "eval_perplexity"];

/// Rejects a `metric_for_best_model` that evaluation never produces: it would never pick a
/// best checkpoint. Accepted as Hugging Face does, with or without the `eval_` prefix. A task
/// model's metrics, or `compute_metrics`', may have any name (`any_metric`), so those are
/// checked at the first evaluation instead. `train()` asks, since `with_compute_metrics` may
/// come after `Trainer::new`.
pub(super) fn check_best_metric(args: &TrainingArguments, any_metric: bool) -> Result<()> {
    let Some(name) = &args.metric_for_best_model else {
        return Ok(());
    };
    if any_metric {
        return Ok(());
    }
    let key = args.best_metric_key();
    if EVAL_METRICS.contains(&key.as_str()) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "TrainingArguments.metric_for_best_model: evaluation never produces `{name}`; it produces {} (also accepted without the `eval_` prefix: loss, perplexity)",
        EVAL_METRICS.join(", ")
    )))
}
