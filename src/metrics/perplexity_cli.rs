//! `massivetext perplexity`: the sliding-window perplexity of a text file under a causal LM.
//!
//! ```text
//! massivetext perplexity --model DIR --data FILE [--tokenizer DIR] [--max-length N]
//!                        [--stride N] [--batch-size N] [--json]
//! ```
//! The whole file is one text (as the transformers guide joins WikiText), tokenized as
//! `tokenizer(text)`; the tokenizer defaults to the model folder. `--max-length` defaults to the
//! model's `n_positions` and `--stride` to `--max-length` (no overlap).
use std::path::PathBuf;

use super::perplexity::{SlidingWindow, load_causal_lm, perplexity_of_text};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

const USAGE: &str = "usage: massivetext perplexity --model DIR --data FILE [--tokenizer DIR] \
[--max-length N] [--stride N] [--batch-size N] [--json]";

fn usage(msg: &str) -> Error {
    Error::MetricUsage(format!("{msg}\n{USAGE}"))
}

#[derive(Default)]
struct Args {
    model: Option<String>,
    data: Option<PathBuf>,
    tokenizer: Option<String>,
    max_length: Option<usize>,
    stride: Option<usize>,
    batch_size: Option<usize>,
    json: bool,
}

fn number(flag: &str, v: &str) -> Result<usize> {
    v.parse()
        .map_err(|_| usage(&format!("{flag} must be a whole number, got `{v}`")))
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<String> {
            it.next()
                .cloned()
                .ok_or_else(|| usage(&format!("{name} needs a value")))
        };
        match flag.as_str() {
            "--model" => a.model = Some(value("--model")?),
            "--data" => a.data = Some(value("--data")?.into()),
            "--tokenizer" => a.tokenizer = Some(value("--tokenizer")?),
            "--max-length" => a.max_length = Some(number(flag, &value(flag)?)?),
            "--stride" => a.stride = Some(number(flag, &value(flag)?)?),
            "--batch-size" => a.batch_size = Some(number(flag, &value(flag)?)?),
            "--json" => a.json = true,
            "-h" | "--help" => return Err(Error::MetricUsage(USAGE.into())),
            other => return Err(usage(&format!("unknown argument `{other}`"))),
        }
    }
    Ok(a)
}

/// Runs `massivetext perplexity ARGS` and returns what it prints: one line of text, or with
/// `--json` one JSON object (`perplexity`, `mean_nll`, `nll_sum`, `num_tokens`, `num_windows`,
/// `max_length`, `stride`, `model`, `data`).
pub fn run_perplexity_cli(args: &[String]) -> Result<String> {
    let a = parse(args)?;
    let model_id = a.model.ok_or_else(|| usage("--model is required"))?;
    let data = a.data.ok_or_else(|| usage("--data is required"))?;
    let mut window = SlidingWindow {
        max_length: a.max_length,
        stride: a.stride,
        ..SlidingWindow::default()
    };
    if let Some(b) = a.batch_size {
        window = window.batch_size(b);
    }
    // check the window before loading anything (the model's size is checked later)
    window.resolve(usize::MAX)?;
    let bytes = std::fs::read(&data).map_err(|source| Error::Io {
        path: data.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        path: data.clone(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Err(Error::EmptyMetricInput {
            what: format!("file {}", data.display()),
        });
    }
    let model = load_causal_lm(&model_id)?;
    let tok_id = a.tokenizer.unwrap_or_else(|| model_id.clone());
    let tokenizer = Tokenizer::from_pretrained(&tok_id)?;
    let p = perplexity_of_text(&model, &tokenizer, &text, &window)?;
    if a.json {
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
