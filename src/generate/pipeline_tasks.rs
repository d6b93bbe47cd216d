//! The task pipelines: `pipeline("text-classification", ..)` (labels and scores, softmax or
//! sigmoid as transformers picks) and `pipeline("question-answering", ..)` (transformers'
//! answer extraction: long contexts split into overlapping spans with `doc_stride`, the best
//! start ≤ end pair within `max_answer_len` tokens in each span, offsets mapped back to the
//! context's characters, answers across spans ranked by score).
use candle_core::{DType, Tensor};
use tokenizers::{PostProcessor, TruncationDirection};

use crate::display::{escape_html, html_table};
use crate::models::{
    AutoModelForQuestionAnswering, AutoModelForSequenceClassification, ForwardArgs, ProblemType,
};
use crate::tokenizer::{Tokenizer, tk_err};
use crate::{Error, Result};

/// What turns a classifier's logits into scores (transformers' `function_to_apply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassificationFunction {
    Softmax,
    Sigmoid,
    /// The raw logits.
    None,
}

/// One label and its score (transformers' `{"label": .., "score": ..}`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassificationLabel {
    pub label: String,
    pub score: f32,
}

/// `pipeline("text-classification", ..)`: a text in, labels with scores out, best first.
#[derive(Clone)]
pub struct TextClassificationPipeline {
    pub model: AutoModelForSequenceClassification,
    pub tokenizer: Tokenizer,
    /// How many labels to return (transformers: 1); `None` returns all.
    pub top_k: Option<usize>,
    /// `None` picks as transformers does: sigmoid for multi-label models and models with one
    /// label, softmax otherwise.
    pub function_to_apply: Option<ClassificationFunction>,
}

impl TextClassificationPipeline {
    pub fn new(model: AutoModelForSequenceClassification, tokenizer: Tokenizer) -> Self {
        Self {
            model,
            tokenizer,
            top_k: Some(1),
            function_to_apply: None,
        }
    }

    /// The scoring function in use.
    pub fn function(&self) -> ClassificationFunction {
        if let Some(f) = self.function_to_apply {
            return f;
        }
        let labels = self.model.labels();
        if labels.problem_type == Some(ProblemType::MultiLabelClassification)
            || labels.num_labels() == 1
        {
            ClassificationFunction::Sigmoid
        } else {
            ClassificationFunction::Softmax
        }
    }

    /// Labels of `text` with their scores, best first (`top_k` of them).
    pub fn call(&self, text: &str) -> Result<Vec<ClassificationLabel>> {
        let ids = self.tokenizer.encode(text)?;
        let input = Tensor::from_vec(ids.clone(), (1, ids.len()), self.model.device())?;
        let logits: Vec<f32> = self
            .model
            .forward(&input, None)?
            .logits
            .get(0)?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let scores: Vec<f32> = match self.function() {
            ClassificationFunction::Softmax => {
                let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                exp.iter().map(|e| e / sum).collect()
            }
            ClassificationFunction::Sigmoid => {
                logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect()
            }
            ClassificationFunction::None => logits,
        };
        let mut out: Vec<ClassificationLabel> = scores
            .into_iter()
            .enumerate()
            .map(|(i, score)| ClassificationLabel {
                label: self.model.id2label(i),
                score,
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        if let Some(k) = self.top_k {
            out.truncate(k);
        }
        Ok(out)
    }
}

/// One answer (transformers' `{"score", "start", "end", "answer"}`); `start` and `end` are
/// character positions in the context.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Answer {
    pub score: f32,
    pub start: usize,
    pub end: usize,
    pub answer: String,
}

/// `pipeline("question-answering", ..)`: a question and a context in, the answer spans of the
/// context out, best first. As transformers (4.x; 5.0 removed this pipeline): each span of
/// at most `max_seq_len` tokens (question first, consecutive spans sharing `doc_stride`
/// context tokens) is scored on its own; its `2 top_k + 10` best token spans are widened to
/// whole words; answers with the same text (ignoring case) add their scores.
#[derive(Clone)]
pub struct QuestionAnsweringPipeline {
    pub model: AutoModelForQuestionAnswering,
    pub tokenizer: Tokenizer,
    /// Answers to return (transformers: 1).
    pub top_k: usize,
    /// The longest answer, in tokens (transformers: 15).
    pub max_answer_len: usize,
    /// Tokens per span, question and special tokens included (transformers:
    /// `min(model_max_length, 384)`).
    pub max_seq_len: usize,
    /// Tokens of context shared by consecutive spans (transformers: `min(max_seq_len / 2,
    /// 128)`).
    pub doc_stride: usize,
}

impl QuestionAnsweringPipeline {
    pub fn new(model: AutoModelForQuestionAnswering, tokenizer: Tokenizer) -> Self {
        let max_seq_len = tokenizer.model_max_length().unwrap_or(384).min(384);
        Self {
            model,
            tokenizer,
            top_k: 1,
            max_answer_len: 15,
            max_seq_len,
            doc_stride: (max_seq_len / 2).min(128),
        }
    }

    pub fn with_max_seq_len(mut self, max_seq_len: usize, doc_stride: usize) -> Self {
        self.max_seq_len = max_seq_len;
        self.doc_stride = doc_stride;
        self
    }

    /// The best answers to `question` in `context` (`top_k` of them, best first; fewer when
    /// no span holds that many).
    pub fn call(&self, question: &str, context: &str) -> Result<Vec<Answer>> {
        if self.max_answer_len == 0 || self.top_k == 0 {
            return Err(Error::InvalidArgument(
                "question-answering: max_answer_len and top_k must be at least 1".into(),
            ));
        }
        if self.doc_stride >= self.max_seq_len {
            return Err(Error::InvalidArgument(format!(
                "question-answering: doc_stride ({}) must be smaller than max_seq_len ({})",
                self.doc_stride, self.max_seq_len
            )));
        }
        let spans = self.spans(question, context)?;
        let cls = self.tokenizer.cls_token_id();
        let chars: Vec<char> = context.chars().collect();
        let device = self.model.device();
        let mut answers = Vec::new();
        for enc in &spans {
            let ids = enc.get_ids();
            let n = ids.len();
            // p_mask: the context's tokens may be the answer; [CLS] stays in the softmax (its
            // probability is zeroed after), everything else is set to -10000
            let desired: Vec<bool> = enc
                .get_sequence_ids()
                .iter()
                .zip(ids)
                .map(|(s, &id)| *s == Some(1) || Some(id) == cls)
                .collect();
            let input = Tensor::from_vec(ids.to_vec(), (1, n), device)?;
            let types = Tensor::from_vec(enc.get_type_ids().to_vec(), (1, n), device)?;
            let mask = Tensor::from_vec(enc.get_attention_mask().to_vec(), (1, n), device)?;
            let out = self.model.forward_with(
                &ForwardArgs::new(&input)
                    .token_type_ids(&types)
                    .attention_mask(&mask),
            )?;
            let start = softmax_masked(&out.start_logits, &desired)?;
            let end = softmax_masked(&out.end_logits, &desired)?;
            // more candidates than asked: several token spans may give the same words
            let pre_top_k = self.top_k * 2 + 10;
            for (s, e, score) in decode_spans(&start, &end, pre_top_k, self.max_answer_len) {
                if !desired[s] || !desired[e] {
                    continue;
                }
                let (cs, ce) = char_span(enc, s, e);
                let (cs, ce) = (cs.min(chars.len()), ce.min(chars.len()));
                let text: String = chars[cs..ce.max(cs)].iter().collect();
                // the same answer (ignoring case) from another span or token pair: scores add
                let lower = text.to_lowercase();
                match answers
                    .iter_mut()
                    .find(|a: &&mut Answer| a.answer.to_lowercase() == lower)
                {
                    Some(a) => a.score += score,
                    None => answers.push(Answer {
                        score,
                        start: cs,
                        end: ce,
                        answer: text,
                    }),
                }
            }
        }
        // stable: equal scores keep span order, as Python's sorted
        answers.sort_by(|a, b| b.score.total_cmp(&a.score));
        answers.truncate(self.top_k);
        Ok(answers)
    }
}

impl QuestionAnsweringPipeline {
    /// The question followed by each overlapping window of the context, with special tokens
    /// and character offsets: what transformers' tokenizer call with
    /// `truncation="only_second"`, `max_length=max_seq_len`, `stride=doc_stride` and
    /// `return_overflowing_tokens=True` returns. Built window by window (the context split as
    /// `Encoding::truncate` splits it, each window post-processed with the question) because
    /// the tokenizers crate (0.23) keeps only the first two windows when it post-processes a
    /// truncated pair.
    fn spans(&self, question: &str, context: &str) -> Result<Vec<tokenizers::Encoding>> {
        let mut tk = self.tokenizer.inner().clone();
        tk.with_padding(None);
        tk.with_truncation(None).map_err(tk_err)?;
        let q = tk.encode_char_offsets(question, false).map_err(tk_err)?;
        let mut c = tk.encode_char_offsets(context, false).map_err(tk_err)?;
        let added = tk.get_post_processor().map_or(0, |p| p.added_tokens(true));
        let room = self.max_seq_len.saturating_sub(q.len() + added);
        if room <= self.doc_stride {
            return Err(Error::InvalidArgument(format!(
                "question-answering: the question takes {} of the {} tokens of a span, leaving {room} for the context, not more than doc_stride ({}); raise max_seq_len, lower doc_stride or shorten the question",
                q.len() + added,
                self.max_seq_len,
                self.doc_stride
            )));
        }
        c.truncate(room, self.doc_stride, TruncationDirection::Right);
        let rest = std::mem::take(c.get_overflowing_mut());
        std::iter::once(c)
            .chain(rest)
            .map(|part| tk.post_process(q.clone(), Some(part), true).map_err(tk_err))
            .collect()
    }
}

/// transformers' `select_starts_ends`: logits of tokens outside the context set to -10000,
/// softmax (f32), then the first token (`[CLS]`) zeroed.
fn softmax_masked(logits: &Tensor, desired: &[bool]) -> Result<Vec<f32>> {
    let x: Vec<f32> = logits.get(0)?.to_dtype(DType::F32)?.to_vec1()?;
    let x: Vec<f32> = x
        .iter()
        .zip(desired)
        .map(|(&v, &d)| if d { v } else { -10000.0 })
        .collect();
    let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut p: Vec<f32> = exp.iter().map(|e| e / sum).collect();
    if let Some(first) = p.first_mut() {
        *first = 0.0;
    }
    Ok(p)
}

/// transformers' `decode_spans`: score start × end for every start ≤ end < start +
/// `max_answer_len` (0 elsewhere), the `top_k` best (start, end, score), best first.
fn decode_spans(
    start: &[f32],
    end: &[f32],
    top_k: usize,
    max_answer_len: usize,
) -> Vec<(usize, usize, f32)> {
    let n = start.len();
    let score = |i: usize, j: usize| -> f32 {
        if j >= i && j < i + max_answer_len {
            start[i] * end[j]
        } else {
            0.0
        }
    };
    let mut all: Vec<(usize, usize, f32)> = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| (i, j, score(i, j)))
        .collect();
    all.sort_by(|a, b| b.2.total_cmp(&a.2));
    all.truncate(top_k);
    all
}

/// Character span of tokens `s..=e` in the context: whole words (`token_to_word`,
/// `word_to_chars`), else the tokens' own offsets, as transformers' `align_to_words`.
fn char_span(enc: &tokenizers::Encoding, s: usize, e: usize) -> (usize, usize) {
    let words = (enc.token_to_word(s), enc.token_to_word(e));
    if let (Some((_, ws)), Some((_, we))) = words
        && let (Some(a), Some(b)) = (enc.word_to_chars(ws, 1), enc.word_to_chars(we, 1))
    {
        return (a.0, b.1);
    }
    let offsets = enc.get_offsets();
    (offsets[s].0, offsets[e].1)
}

/// An HTML table of labels and scores.
pub(crate) fn labels_html(labels: &[ClassificationLabel]) -> String {
    let rows: Vec<Vec<String>> = labels
        .iter()
        .map(|l| vec![l.label.clone(), format!("{:.4}", l.score)])
        .collect();
    html_table(&["label", "score"], &rows)
}

/// An HTML table of answers.
pub(crate) fn answers_html(answers: &[Answer]) -> String {
    let rows: Vec<Vec<String>> = answers
        .iter()
        .map(|a| {
            vec![
                escape_html(&a.answer),
                format!("{:.4}", a.score),
                format!("{}..{}", a.start, a.end),
            ]
        })
        .collect();
    html_table(&["answer", "score", "characters"], &rows)
}
