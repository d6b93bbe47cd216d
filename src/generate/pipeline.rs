//! Pipelines as in transformers: `pipeline("text-generation" | "fill-mask" |
//! "feature-extraction", model_dir)` loads the model and the tokenizer of a folder (or Hub id)
//! and turns text into results that render inline in a notebook.
use std::fmt;

use candle_core::{D, DType, Tensor};

use super::GenerationMixin;
use super::config::GenerationConfig;
use super::pipeline_tasks::{
    Answer, ClassificationLabel, QuestionAnsweringPipeline, TextClassificationPipeline,
    answers_html, labels_html,
};
use crate::display::{emit, escape_html, html_table};
use crate::models::{
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, ForwardArgs, PreTrainedModel,
};
use crate::tokenizer::{DecodeOptions, Tokenizer};
use crate::{Error, Result};

/// `pipeline("text-generation", ..)`: a prompt in, the prompt and its continuation out.
///
/// When the checkpoint's `max_new_tokens` (20 by default) cannot fit the model's context (a
/// 16-position model), each call generates as many tokens as fit after its prompt instead of
/// failing every time; set `config.max_new_tokens` to ask for an exact count (then a prompt
/// that leaves too little room is an error).
#[derive(Clone)]
pub struct TextGenerationPipeline {
    pub model: AutoModelForCausalLM,
    pub tokenizer: Tokenizer,
    /// Starts from the checkpoint's own settings.
    pub config: GenerationConfig,
    /// The checkpoint's `max_new_tokens` when it cannot fit the context: while `config` still
    /// holds it, calls generate what fits.
    unfitting_default: Option<usize>,
}

/// What the text-generation pipeline returns (transformers' `generated_text`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GeneratedText {
    /// The prompt followed by the new text (`return_full_text=True`).
    pub generated_text: String,
}

impl TextGenerationPipeline {
    /// A pipeline over the model's own generation settings; an error when they are unusable
    /// (a bad value in `generation_config.json`).
    pub fn new(model: AutoModelForCausalLM, tokenizer: Tokenizer) -> Result<Self> {
        let config = model.generation_config()?;
        let unfitting_default = model
            .max_positions()
            .filter(|&max| config.max_new_tokens >= max)
            .map(|_| config.max_new_tokens);
        Ok(Self {
            model,
            tokenizer,
            config,
            unfitting_default,
        })
    }

    pub fn call(&self, prompt: &str) -> Result<GeneratedText> {
        let mut config = self.config.clone();
        if let (Some(max), true) = (
            self.model.max_positions(),
            self.unfitting_default == Some(config.max_new_tokens),
        ) {
            let len = self.tokenizer.encode_plain(prompt)?.len().max(1);
            if len < max {
                config.max_new_tokens = max - len;
            }
        }
        let new = self.model.generate_text(&self.tokenizer, prompt, &config)?;
        Ok(GeneratedText {
            generated_text: format!("{prompt}{new}"),
        })
    }
}

/// `pipeline("fill-mask", ..)`: the most likely tokens for each mask token of a text.
#[derive(Clone)]
pub struct FillMaskPipeline {
    pub model: AutoModelForMaskedLM,
    pub tokenizer: Tokenizer,
    /// Predictions per mask (transformers: 5).
    pub top_k: usize,
}

/// One prediction for one mask (transformers' `score`, `token`, `token_str`, `sequence`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FillMaskPrediction {
    pub score: f32,
    pub token: u32,
    pub token_str: String,
    /// The text with this token in the mask's place.
    pub sequence: String,
}

impl FillMaskPipeline {
    pub fn new(model: AutoModelForMaskedLM, tokenizer: Tokenizer) -> Self {
        Self {
            model,
            tokenizer,
            top_k: 5,
        }
    }

    /// For each mask token of `text` (in order), the `top_k` predictions, best first: softmax
    /// of the logits at the mask.
    pub fn call(&self, text: &str) -> Result<Vec<Vec<FillMaskPrediction>>> {
        let mask_id = self.tokenizer.mask_token_id().ok_or_else(|| {
            Error::InvalidArgument("the tokenizer has no mask token ([MASK] / <mask>)".into())
        })?;
        let ids = self.tokenizer.encode(text)?;
        let positions: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == mask_id).collect();
        if positions.is_empty() {
            let tok = self.tokenizer.id_to_token(mask_id).unwrap_or_default();
            return Err(Error::InvalidArgument(format!(
                "no mask token in the text; write {tok} where a word should be predicted"
            )));
        }
        let input = Tensor::from_vec(ids.clone(), (1, ids.len()), self.model.device())?;
        let logits = self
            .model
            .forward(&input, None)?
            .logits
            .to_dtype(DType::F32)?;
        let mut out = Vec::with_capacity(positions.len());
        for &p in &positions {
            let probs: Vec<f32> =
                candle_nn::ops::softmax(&logits.get(0)?.get(p)?, D::Minus1)?.to_vec1()?;
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
            let mut preds = Vec::with_capacity(self.top_k);
            for &t in order.iter().take(self.top_k) {
                let mut filled = ids.clone();
                filled[p] = t as u32;
                // the other masks stay masks in the sequence, as in transformers
                preds.push(FillMaskPrediction {
                    score: probs[t],
                    token: t as u32,
                    token_str: self
                        .tokenizer
                        .decode(&[t as u32], DecodeOptions::default())?,
                    sequence: self
                        .tokenizer
                        .decode(&filled, DecodeOptions::SKIP_SPECIAL_TOKENS)?,
                });
            }
            out.push(preds);
        }
        Ok(out)
    }
}

/// `pipeline("feature-extraction", ..)`: the last hidden states of a text, `[seq][hidden]`.
#[derive(Clone)]
pub struct FeatureExtractionPipeline {
    pub model: AutoModel,
    pub tokenizer: Tokenizer,
}

impl FeatureExtractionPipeline {
    pub fn new(model: AutoModel, tokenizer: Tokenizer) -> Self {
        Self { model, tokenizer }
    }
    pub fn call(&self, text: &str) -> Result<Vec<Vec<f32>>> {
        let ids = self.tokenizer.encode(text)?;
        let input = Tensor::from_vec(ids.clone(), (1, ids.len()), self.model.device())?;
        let out = self.model.forward_with(&ForwardArgs::new(&input))?;
        Ok(out
            .last_hidden_state
            .get(0)?
            .to_dtype(DType::F32)?
            .to_vec2()?)
    }
}

/// A pipeline of any task (what [`pipeline`] returns).
#[derive(Clone)]
pub enum Pipeline {
    TextGeneration(TextGenerationPipeline),
    FillMask(FillMaskPipeline),
    FeatureExtraction(FeatureExtractionPipeline),
    TextClassification(TextClassificationPipeline),
    QuestionAnswering(QuestionAnsweringPipeline),
}

/// What a [`Pipeline`] returns; renders inline in a notebook.
#[derive(Clone, Debug, PartialEq)]
pub enum PipelineOutput {
    TextGeneration(GeneratedText),
    FillMask(Vec<Vec<FillMaskPrediction>>),
    FeatureExtraction(Vec<Vec<f32>>),
    TextClassification(Vec<ClassificationLabel>),
    QuestionAnswering(Vec<Answer>),
}

/// The tasks [`pipeline`] knows.
pub const PIPELINE_TASKS: &[&str] = &[
    "text-generation",
    "fill-mask",
    "feature-extraction",
    "text-classification",
    "question-answering",
];

impl Pipeline {
    /// Runs the pipeline on one text (question answering: use [`answer`](Self::answer)).
    pub fn call(&self, text: &str) -> Result<PipelineOutput> {
        Ok(match self {
            Pipeline::TextGeneration(p) => PipelineOutput::TextGeneration(p.call(text)?),
            Pipeline::FillMask(p) => PipelineOutput::FillMask(p.call(text)?),
            Pipeline::FeatureExtraction(p) => PipelineOutput::FeatureExtraction(p.call(text)?),
            Pipeline::TextClassification(p) => PipelineOutput::TextClassification(p.call(text)?),
            Pipeline::QuestionAnswering(_) => {
                return Err(Error::InvalidArgument(
                    "question-answering takes a question and a context: call .answer(question, context)".into(),
                ));
            }
        })
    }

    /// Question answering: the best spans of `context` answering `question`.
    pub fn answer(&self, question: &str, context: &str) -> Result<PipelineOutput> {
        match self {
            Pipeline::QuestionAnswering(p) => {
                Ok(PipelineOutput::QuestionAnswering(p.call(question, context)?))
            }
            _ => Err(Error::InvalidArgument(
                "answer(question, context) is for pipeline(\"question-answering\", ..); call .call(text) on this one".into(),
            )),
        }
    }
}

impl PipelineOutput {
    /// An HTML table of the result.
    pub fn to_html(&self) -> String {
        match self {
            PipelineOutput::TextGeneration(g) => format!(
                "<div style=\"white-space: pre-wrap\">{}</div>",
                escape_html(&g.generated_text)
            ),
            PipelineOutput::FillMask(masks) => {
                let rows: Vec<Vec<String>> = masks
                    .iter()
                    .enumerate()
                    .flat_map(|(m, preds)| {
                        preds.iter().map(move |p| {
                            vec![
                                m.to_string(),
                                p.token_str.clone(),
                                format!("{:.4}", p.score),
                                p.sequence.clone(),
                            ]
                        })
                    })
                    .collect();
                html_table(&["mask", "token", "score", "sequence"], &rows)
            }
            PipelineOutput::FeatureExtraction(h) => format!(
                "<div>features: {} tokens × {} dimensions</div>",
                h.len(),
                h.first().map_or(0, Vec::len)
            ),
            PipelineOutput::TextClassification(l) => labels_html(l),
            PipelineOutput::QuestionAnswering(a) => answers_html(a),
        }
    }

    /// Renders inline in an evcxr notebook.
    pub fn evcxr_display(&self) {
        emit("text/html", &self.to_html());
    }
}

impl fmt::Display for PipelineOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineOutput::TextGeneration(g) => write!(f, "{}", g.generated_text),
            PipelineOutput::FillMask(masks) => {
                for (m, preds) in masks.iter().enumerate() {
                    for p in preds {
                        writeln!(
                            f,
                            "mask {m}: {:>12} {:.4}  {}",
                            p.token_str, p.score, p.sequence
                        )?;
                    }
                }
                Ok(())
            }
            PipelineOutput::FeatureExtraction(h) => {
                write!(
                    f,
                    "features: {} tokens x {} dimensions",
                    h.len(),
                    h.first().map_or(0, Vec::len)
                )
            }
            PipelineOutput::TextClassification(labels) => {
                for l in labels {
                    writeln!(f, "{:>12} {:.4}", l.label, l.score)?;
                }
                Ok(())
            }
            PipelineOutput::QuestionAnswering(answers) => {
                for a in answers {
                    writeln!(f, "{:.4}  {:?} ({}..{})", a.score, a.answer, a.start, a.end)?;
                }
                Ok(())
            }
        }
    }
}
