//! `massivetext perplexity`: the sliding-window perplexity of a text file under a causal LM;
//! returns what to print.
//!
//! The whole file is one text (as the transformers guide joins WikiText), tokenized as
//! `tokenizer(text)`; the tokenizer defaults to the model folder. `--max-length` defaults to the
//! model's `n_positions` and `--stride` to `--max-length` (no overlap).
use std::path::PathBuf;

use crate::io::read_utf8;
use crate::metrics::perplexity::{SlidingWindow, load_causal_lm, perplexity_of_text};
use crate::models::PreTrainedModel;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// What `massivetext perplexity` measures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerplexityOptions {
    /// A model folder or Hub id (a causal LM).
    pub model: String,
    /// The text file, scored as one text.
    pub data: PathBuf,
    /// Tokenizer folder or Hub id; defaults to `model`.
    pub tokenizer: Option<String>,
    /// Window length; defaults to the model's `n_positions`.
    pub max_length: Option<usize>,
    /// Window step; defaults to `max_length` (no overlap).
    pub stride: Option<usize>,
    /// Windows per forward pass (the numbers do not depend on it).
    pub batch_size: Option<usize>,
    /// One JSON object instead of one line of text.
    pub json: bool,
}

/// A weight holding NaN or an infinity makes every score NaN: an error naming the weight.
fn check_finite_weights(model: &impl PreTrainedModel, id: &str) -> Result<()> {
    for (name, var) in model.named_parameters() {
        let t = var.as_tensor();
        let finite = t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|x| x.is_finite());
        if !finite {
            return Err(Error::InvalidArgument(format!(
                "model `{id}`: weight `{name}` holds NaN or infinite values, so the model's weights and outputs are not finite and its perplexity would be NaN; score an earlier checkpoint or retrain (lower the learning rate)"
            )));
        }
    }
    Ok(())
}

/// `massivetext perplexity`: returns what it prints, one line of text, or with `json` one JSON
/// object (`perplexity`, `mean_nll`, `nll_sum`, `num_tokens`, `num_windows`, `max_length`,
/// `stride`, `model`, `data`).
pub fn perplexity_of_file(o: &PerplexityOptions) -> Result<String> {
    let model_id = o.model.clone();
    let data = o.data.clone();
    let mut window = SlidingWindow {
        max_length: o.max_length,
        stride: o.stride,
        ..SlidingWindow::default()
    };
    if let Some(b) = o.batch_size {
        if b == 0 {
            return Err(Error::InvalidArgument(
                "--batch-size must be at least 1 (windows per forward pass), got 0".into(),
            ));
        }
        window = window.batch_size(b);
    }
    // check the window before loading anything (the model's size is checked later)
    window.resolve(usize::MAX)?;
    let text = read_utf8(&data)?;
    if text.trim().is_empty() {
        return Err(Error::EmptyMetricInput {
            what: format!("file {}", data.display()),
        });
    }
    let model = load_causal_lm(&model_id)?;
    check_finite_weights(&model, &model_id)?;
    let tok_id = o.tokenizer.clone().unwrap_or_else(|| model_id.clone());
    let tokenizer = Tokenizer::from_pretrained(&tok_id)?;
    let p = perplexity_of_text(&model, &tokenizer, &text, &window)?;
    if o.json {
        let mut v = serde_json::to_value(&p).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("model".into(), model_id.into());
            o.insert("data".into(), data.display().to_string().into());
        }
        Ok(v.to_string())
    } else {
        Ok(p.to_string())
    }
}
