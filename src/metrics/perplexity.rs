//! Perplexity of causal language models, the way Hugging Face computes it.
//!
//! Three numbers go by the name, and they differ:
//!
//! - [`perplexity`] / [`perplexity_of_text`]: one long token stream scored with the sliding
//!   window of the transformers guide "Perplexity of fixed-length models". Windows of
//!   `max_length` tokens start every `stride` tokens; in each window only the tokens not scored
//!   by the previous window are labels (the others are context, labelled -100). The result is
//!   `exp(nll_sum / n_tokens)`, the window's mean loss weighted by the guide's token count
//!   `num_valid_tokens - batch_size`, exactly as the guide's loop does. With
//!   `stride == max_length` (no overlap) that count is exact; with overlap the window's mean loss
//!   covers `trg_len` tokens but is weighted by `trg_len - 1`, so a later window with
//!   `trg_len == 1` (stride 1) weighs nothing: this is the guide's behaviour, kept so the numbers
//!   are the ones people compare with.
//! - [`perplexity_of_blocks`]: `exp(total NLL / total predicted tokens)` over independent rows
//!   (the fixed-length blocks of `group_texts`), each row scored without context from the
//!   previous one. This is `exp(eval_loss)` of run_clm.py / [`Evaluator`](super::Evaluator).
//! - [`mean_perplexity`] / [`mean_perplexity_of_texts`]: the `perplexity` metric of Hugging Face
//!   `evaluate`: each text gets its own perplexity and the result is their plain mean, so a short
//!   text counts as much as a long one, where the two above weight every token equally. Because
//!   `exp` is convex the mean of per-text perplexities is at least `exp` of the mean per-text
//!   NLL, so it is usually larger than the corpus perplexity and not comparable with it. With
//!   `add_start_token` (evaluate's default) the BOS token is prepended so the first real token
//!   is scored too, and a one-token text is allowed; without it the first token of each text is
//!   only context and a text needs two tokens.
//!
//! ```
//! use massivetext::prelude::*;
//! use massivetext::metrics::{SlidingWindow, perplexity, perplexity_of_blocks};
//! let config = Gpt2Config { n_layer: 1, n_embd: 32, n_head: 2, n_positions: 16, ..Gpt2Config::small(50) };
//! let mut model = AutoModelForCausalLM::from_config(&config, &Device::Cpu)?;
//! model.eval();
//! let ids: Vec<u32> = (0..40).map(|i| (i * 7 % 50) as u32).collect();
//! // non-overlapping windows of 16 tokens = the blocks scored one by one
//! let windows = perplexity(&model, &ids, &SlidingWindow::new(16, 16))?;
//! let blocks: Vec<Vec<u32>> = ids.chunks(16).map(|c| c.to_vec()).collect();
//! let plain = perplexity_of_blocks(&model, &blocks, 4)?;
//! assert_eq!(windows.num_tokens, 37);
//! assert!((windows.perplexity - plain.perplexity).abs() < 1e-3 * plain.perplexity);
//! // overlapping windows give every scored token at least 8 tokens of context
//! let overlapped = perplexity(&model, &ids, &SlidingWindow::new(16, 8))?;
//! assert_eq!(overlapped.num_windows, 4);
//! # Ok::<(), massivetext::Error>(())
//! ```
use std::fmt;

use candle_core::{IndexOp, Tensor};

use super::evaluator::{
    IGNORE_INDEX, is_causal, lm_logits, max_positions, model_type, nll_and_argmax,
};
use crate::models::AutoModelForCausalLM;
use crate::models::PreTrainedModel;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The window of the guide's evaluation: `max_length` tokens per forward pass, a new window every
/// `stride` tokens. `None` means the model's context size (`n_positions`); the stride then
/// defaults to `max_length` (no overlap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindow {
    pub max_length: Option<usize>,
    pub stride: Option<usize>,
    /// Windows run together in one forward pass (same-length windows only); the numbers do not
    /// depend on it.
    pub batch_size: usize,
}

impl Default for SlidingWindow {
    fn default() -> Self {
        Self {
            max_length: None,
            stride: None,
            batch_size: 8,
        }
    }
}

impl SlidingWindow {
    pub fn new(max_length: usize, stride: usize) -> Self {
        Self {
            max_length: Some(max_length),
            stride: Some(stride),
            ..Self::default()
        }
    }

    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// `(max_length, stride)` for a model of `positions` positions, checked.
    pub fn resolve(&self, positions: usize) -> Result<(usize, usize)> {
        let max_length = self.max_length.unwrap_or(positions);
        let stride = self.stride.unwrap_or(max_length);
        if max_length == 0 {
            return Err(Error::InvalidArgument(
                "max_length must be at least 1 (it is the window size in tokens)".into(),
            ));
        }
        if stride == 0 {
            return Err(Error::InvalidArgument(
                "stride must be at least 1 (windows start every `stride` tokens)".into(),
            ));
        }
        if stride > max_length {
            return Err(Error::InvalidArgument(format!(
                "stride {stride} is larger than max_length {max_length}: the tokens between windows would never be scored; use a stride of at most {max_length}"
            )));
        }
        if max_length > positions {
            return Err(Error::InvalidArgument(format!(
                "max_length {max_length} is longer than the model's {positions} positions; use --max-length {positions} or less"
            )));
        }
        Ok((max_length, stride))
    }
}

/// A perplexity with the sums behind it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Perplexity {
    /// `exp(mean_nll)`.
    pub perplexity: f64,
    /// `nll_sum / num_tokens`, in nats.
    pub mean_nll: f64,
    pub nll_sum: f64,
    /// Tokens the NLL is averaged over (the guide's `n_tokens` for a sliding window).
    pub num_tokens: usize,
    /// Forward passes' rows: windows, or blocks for [`perplexity_of_blocks`].
    pub num_windows: usize,
    /// The window size, for a sliding-window evaluation.
    pub max_length: Option<usize>,
    pub stride: Option<usize>,
}

impl Perplexity {
    fn from_sums(nll_sum: f64, num_tokens: usize, num_windows: usize) -> Result<Self> {
        if num_tokens == 0 {
            return Err(Error::EmptyMetricInput {
                what: "the input (no token has a preceding token to be predicted from)".into(),
            });
        }
        if !nll_sum.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "the model's outputs are not finite (negative log-likelihood {nll_sum}), so its perplexity means nothing: the model's weights or outputs are not finite; check its weights (a run that diverged writes NaN weights) and score an earlier checkpoint"
            )));
        }
        let mean_nll = nll_sum / num_tokens as f64;
        Ok(Self {
            perplexity: mean_nll.exp(),
            mean_nll,
            nll_sum,
            num_tokens,
            num_windows,
            max_length: None,
            stride: None,
        })
    }

    pub fn to_html(&self) -> String {
        let window = match (self.max_length, self.stride) {
            (Some(m), Some(s)) => format!("max_length {m}, stride {s}"),
            _ => "whole rows".into(),
        };
        super::html_table(
            &["perplexity", "mean NLL", "tokens", "windows", "window"],
            &[vec![
                format!("{:.4}", self.perplexity),
                format!("{:.4}", self.mean_nll),
                self.num_tokens.to_string(),
                self.num_windows.to_string(),
                window,
            ]],
        )
    }

    /// Renders the result as an HTML table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        crate::display::emit("text/html", &self.to_html());
    }
}

impl fmt::Display for Perplexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "perplexity = {:.4} (mean NLL {:.4} over {} tokens, {} ",
            self.perplexity, self.mean_nll, self.num_tokens, self.num_windows
        )?;
        match (self.max_length, self.stride) {
            (Some(m), Some(s)) => write!(f, "windows, max_length {m}, stride {s})"),
            _ => write!(f, "rows)"),
        }
    }
}

/// Loads a causal LM for perplexity; a masked LM (BERT, RoBERTa) gets an error saying why it
/// has no perplexity rather than the generic wrong-task message.
pub fn load_causal_lm(dir_or_id: impl AsRef<str>) -> Result<AutoModelForCausalLM> {
    let id = dir_or_id.as_ref();
    AutoModelForCausalLM::from_pretrained(id).map_err(|e| match e {
        Error::WrongTask { model_type, .. } => Error::NotCausalLm {
            what: format!("model `{id}`"),
            model_type,
        },
        other => other,
    })
}

/// The guide's windows: `(begin, end, trg_len)` for `for begin in range(0, seq_len, stride)`,
/// stopping at the window that reaches the end.
fn windows(seq_len: usize, max_length: usize, stride: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut prev_end = 0;
    let mut begin = 0;
    while begin < seq_len {
        let end = (begin + max_length).min(seq_len);
        out.push((begin, end, end - prev_end));
        prev_end = end;
        if end == seq_len {
            break;
        }
        begin += stride;
    }
    out
}

/// Sliding-window perplexity of one token stream (the transformers guide's method; see the
/// module docs for how its token count works).
pub fn perplexity<M: PreTrainedModel>(
    model: &M,
    ids: &[u32],
    window: &SlidingWindow,
) -> Result<Perplexity> {
    if !is_causal(model) {
        return Err(not_causal(model));
    }
    if ids.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the token sequence".into(),
        });
    }
    if ids.len() < 2 {
        return Err(Error::InvalidArgument(
            "perplexity needs at least 2 tokens: the first token is only context".into(),
        ));
    }
    // scoring only: no graph across layers (models::layers::grad_mode)
    let _graph = crate::models::layers::NoGrad::enter();
    let model = model.eval_copy();
    let (max_length, stride) = window.resolve(max_positions(&model))?;
    let wins = windows(ids.len(), max_length, stride);
    let (mut nll_sum, mut n_tokens) = (0f64, 0usize);
    let mut i = 0;
    while i < wins.len() {
        // a batch of consecutive windows of the same length
        let len = wins[i].1 - wins[i].0;
        let mut j = i;
        while j < wins.len() && j - i < window.batch_size.max(1) && wins[j].1 - wins[j].0 == len {
            j += 1;
        }
        let batch = &wins[i..j];
        let mut flat = Vec::with_capacity(batch.len() * len);
        for &(b, e, _) in batch {
            flat.extend_from_slice(&ids[b..e]);
        }
        let input = Tensor::from_vec(flat, (batch.len(), len), model.device())?;
        let logits = lm_logits(&model, &input, None)?;
        for (r, &(b, e, trg_len)) in batch.iter().enumerate() {
            let w = &ids[b..e];
            // labels at positions [len - trg_len, len); position p is predicted by logits p - 1
            let first = (len - trg_len).max(1);
            let count = len - first;
            let num_loss_tokens = trg_len - 1; // the guide's num_valid_tokens - batch_size
            if count == 0 || num_loss_tokens == 0 {
                continue;
            }
            let rows = logits.i(r)?.narrow(0, first - 1, count)?;
            let targets: Vec<i64> = w[first..].iter().map(|&x| x as i64).collect();
            let (nll, _) = nll_and_argmax(&rows, &targets)?;
            let mean = nll.iter().map(|&x| x as f64).sum::<f64>() / count as f64;
            nll_sum += mean * num_loss_tokens as f64;
            n_tokens += num_loss_tokens;
        }
        i = j;
    }
    let mut p = Perplexity::from_sums(nll_sum, n_tokens, wins.len())?;
    p.max_length = Some(max_length);
    p.stride = Some(stride);
    Ok(p)
}

/// Sliding-window perplexity of a text: tokenized as `tokenizer(text)` (special tokens the
/// tokenizer adds by default included), then [`perplexity`].
pub fn perplexity_of_text<M: PreTrainedModel>(
    model: &M,
    tokenizer: &Tokenizer,
    text: &str,
    window: &SlidingWindow,
) -> Result<Perplexity> {
    if text.trim().is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the text".into(),
        });
    }
    let ids = tokenizer.encode(text)?;
    perplexity(model, &ids, window)
}

/// `exp(total NLL / total predicted tokens)` over independent rows (each scored from its own
/// first token, no context from the previous row), `batch_size` rows per forward pass.
pub fn perplexity_of_blocks<M: PreTrainedModel>(
    model: &M,
    blocks: &[Vec<u32>],
    batch_size: usize,
) -> Result<Perplexity> {
    if !is_causal(model) {
        return Err(not_causal(model));
    }
    if blocks.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the list of token blocks".into(),
        });
    }
    let scores = score_rows(model, blocks, batch_size)?;
    let nll_sum = scores.iter().map(|s| s.0).sum();
    let n = scores.iter().map(|s| s.1).sum();
    Perplexity::from_sums(nll_sum, n, blocks.len())
}

/// Per row: (sum of NLLs of tokens 1.., number of them), rows padded on the right per batch.
fn score_rows<M: PreTrainedModel>(
    model: &M,
    rows: &[Vec<u32>],
    batch_size: usize,
) -> Result<Vec<(f64, usize)>> {
    // scoring only: no graph across layers (models::layers::grad_mode)
    let _graph = crate::models::layers::NoGrad::enter();
    let model = model.eval_copy();
    let max = max_positions(&model);
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() > max) {
        return Err(Error::InvalidArgument(format!(
            "row {i} has {} tokens but the model holds {max} positions; use the sliding-window `perplexity` or cut rows to at most {max} tokens",
            r.len()
        )));
    }
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch_size.max(1)) {
        let t = chunk.iter().map(Vec::len).max().unwrap_or(0);
        if t < 2 {
            out.extend(chunk.iter().map(|_| (0.0, 0)));
            continue;
        }
        let b = chunk.len();
        let (mut ids, mut mask, mut targets) = (
            Vec::with_capacity(b * t),
            Vec::with_capacity(b * t),
            Vec::with_capacity(b * t),
        );
        for r in chunk {
            let pad = t - r.len();
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(0u32, pad));
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            mask.extend(std::iter::repeat_n(0u32, pad));
            // position p predicts token p + 1
            targets.extend(r.iter().skip(1).map(|&x| x as i64));
            targets.extend(std::iter::repeat_n(IGNORE_INDEX, pad + r.len().min(1)));
        }
        let dev = model.device();
        let input = Tensor::from_vec(ids, (b, t), dev)?;
        let mask = Tensor::from_vec(mask, (b, t), dev)?;
        let logits = lm_logits(&model, &input, Some(&mask))?;
        let v = logits.dim(2)?;
        let (nll, _) = nll_and_argmax(&logits.reshape((b * t, v))?, &targets)?;
        for (r, row) in chunk.iter().enumerate() {
            let s: f64 = nll[r * t..(r + 1) * t].iter().map(|&x| x as f64).sum();
            out.push((s, row.len().saturating_sub(1)));
        }
    }
    Ok(out)
}

fn not_causal<M: PreTrainedModel>(model: &M) -> Error {
    Error::NotCausalLm {
        what: "this model".into(),
        model_type: model_type(model),
    }
}

/// Options of [`mean_perplexity`], with `evaluate`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeanPerplexityOptions {
    /// Prepend the BOS token so the first token of each text is scored (default true).
    pub add_start_token: bool,
    /// The BOS id; [`mean_perplexity_of_texts`] takes the tokenizer's when `None`.
    pub bos_token_id: Option<u32>,
    /// Truncate each text to `max_length` tokens, the start token included (default none).
    pub max_length: Option<usize>,
    /// Texts per forward pass (default 16, as `evaluate`); the numbers do not depend on it.
    pub batch_size: usize,
}

impl Default for MeanPerplexityOptions {
    fn default() -> Self {
        Self {
            add_start_token: true,
            bos_token_id: None,
            max_length: None,
            batch_size: 16,
        }
    }
}

/// `evaluate`'s perplexity result: one perplexity per text and their mean.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MeanPerplexity {
    pub perplexities: Vec<f64>,
    pub mean_perplexity: f64,
}

impl MeanPerplexity {
    pub fn to_html(&self) -> String {
        let min = self
            .perplexities
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let max = self.perplexities.iter().copied().fold(0.0, f64::max);
        super::html_table(
            &["mean perplexity", "texts", "min", "max"],
            &[vec![
                format!("{:.4}", self.mean_perplexity),
                self.perplexities.len().to_string(),
                format!("{min:.4}"),
                format!("{max:.4}"),
            ]],
        )
    }

    /// Renders the result as an HTML table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        crate::display::emit("text/html", &self.to_html());
    }
}

impl fmt::Display for MeanPerplexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mean_perplexity = {:.4} over {} texts",
            self.mean_perplexity,
            self.perplexities.len()
        )
    }
}

/// `evaluate`'s `perplexity` metric on texts already tokenized without special tokens: per text
/// `exp(mean NLL of its tokens)` (after an optional BOS), then the mean over texts.
pub fn mean_perplexity<M: PreTrainedModel>(
    model: &M,
    texts: &[Vec<u32>],
    opts: &MeanPerplexityOptions,
) -> Result<MeanPerplexity> {
    if !is_causal(model) {
        return Err(not_causal(model));
    }
    if texts.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the list of texts".into(),
        });
    }
    let bos = match (opts.add_start_token, opts.bos_token_id) {
        (true, None) => {
            return Err(Error::InvalidArgument(
                "add_start_token needs a BOS token id: set bos_token_id, or add_start_token = false".into(),
            ));
        }
        (true, Some(b)) => Some(b),
        (false, _) => None,
    };
    let keep = match opts.max_length {
        Some(0) => {
            return Err(Error::InvalidArgument(
                "max_length must be at least 1".into(),
            ));
        }
        Some(m) if bos.is_some() => m - 1,
        Some(m) => m,
        None => usize::MAX,
    };
    let min = if bos.is_some() { 1 } else { 2 };
    let mut rows = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        let t = &t[..t.len().min(keep)];
        if t.len() < min {
            return Err(Error::InvalidArgument(if bos.is_some() {
                format!(
                    "text {i} has no token; each text must be at least one token long (remove empty texts)"
                )
            } else {
                format!(
                    "text {i} has {} token(s); without add_start_token each text needs at least two (use add_start_token or remove short texts)",
                    t.len()
                )
            }));
        }
        let mut row = Vec::with_capacity(t.len() + 1);
        row.extend(bos);
        row.extend_from_slice(t);
        rows.push(row);
    }
    let scores = score_rows(model, &rows, opts.batch_size)?;
    let perplexities: Vec<f64> = scores.iter().map(|&(s, n)| (s / n as f64).exp()).collect();
    let mean_perplexity = perplexities.iter().sum::<f64>() / perplexities.len() as f64;
    Ok(MeanPerplexity {
        perplexities,
        mean_perplexity,
    })
}

/// `evaluate.load("perplexity").compute(predictions=texts, ...)`: tokenized without special
/// tokens; the BOS id comes from the tokenizer unless `opts.bos_token_id` is set.
pub fn mean_perplexity_of_texts<M: PreTrainedModel, S: AsRef<str> + Sync>(
    model: &M,
    tokenizer: &Tokenizer,
    texts: &[S],
    opts: &MeanPerplexityOptions,
) -> Result<MeanPerplexity> {
    if texts.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the list of texts".into(),
        });
    }
    let mut opts = *opts;
    if opts.add_start_token && opts.bos_token_id.is_none() {
        opts.bos_token_id = tokenizer.bos_token_id();
        if opts.bos_token_id.is_none() {
            return Err(Error::InvalidArgument(
                "add_start_token needs a BOS token but the tokenizer has none; set bos_token_id or add_start_token = false".into(),
            ));
        }
    }
    let ids = texts
        .iter()
        .map(|t| tokenizer.encode_plain(t.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    mean_perplexity(model, &ids, &opts)
}

#[cfg(test)]
mod tests {
    use super::windows;

    #[test]
    fn windows_follow_the_guide_loop() {
        assert_eq!(windows(10, 4, 4), vec![(0, 4, 4), (4, 8, 4), (8, 10, 2)]);
        assert_eq!(
            windows(10, 4, 2),
            vec![(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
        );
        assert_eq!(windows(3, 8, 2), vec![(0, 3, 3)]);
    }
}
