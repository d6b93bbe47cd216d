//! What [`pipeline`] is built from and how it is tuned, as transformers'
//! `pipeline(task, model=..., tokenizer=...)` and its call-time keywords: a folder or Hub id, or a
//! model already in memory with its tokenizer (one just trained, say); options given by name
//! (`top_k`, `max_new_tokens`, a whole `GenerationConfig`, QA's window); several texts in one
//! call.
use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::config::GenerationConfig;
use super::pipeline::{
    FeatureExtractionPipeline, FillMaskPipeline, Pipeline, PipelineOutput, TextGenerationPipeline,
};
use super::pipeline_tasks::{QuestionAnsweringPipeline, TextClassificationPipeline};
use crate::models::{
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Where a pipeline's model and tokenizer come from.
#[derive(Clone)]
pub enum PipelineSource {
    /// A folder with the model and its tokenizer, or a Hub id.
    Pretrained(String),
    CausalLm(AutoModelForCausalLM, Tokenizer),
    MaskedLm(AutoModelForMaskedLM, Tokenizer),
    Base(AutoModel, Tokenizer),
    SequenceClassification(AutoModelForSequenceClassification, Tokenizer),
    QuestionAnswering(AutoModelForQuestionAnswering, Tokenizer),
}

impl PipelineSource {
    fn describe(&self) -> &'static str {
        match self {
            PipelineSource::Pretrained(_) => "a folder",
            PipelineSource::CausalLm(..) => "an AutoModelForCausalLM",
            PipelineSource::MaskedLm(..) => "an AutoModelForMaskedLM",
            PipelineSource::Base(..) => "an AutoModel",
            PipelineSource::SequenceClassification(..) => "an AutoModelForSequenceClassification",
            PipelineSource::QuestionAnswering(..) => "an AutoModelForQuestionAnswering",
        }
    }
}

macro_rules! from_path_like {
    ($($t:ty),*) => {$(
        impl From<$t> for PipelineSource {
            fn from(id: $t) -> Self {
                PipelineSource::Pretrained(id.to_string())
            }
        }
    )*};
}
from_path_like!(&str, String, &String, Cow<'_, str>);

impl From<&Path> for PipelineSource {
    fn from(dir: &Path) -> Self {
        PipelineSource::Pretrained(dir.to_string_lossy().into_owned())
    }
}

impl From<PathBuf> for PipelineSource {
    fn from(dir: PathBuf) -> Self {
        PipelineSource::from(dir.as_path())
    }
}

impl From<&PathBuf> for PipelineSource {
    fn from(dir: &PathBuf) -> Self {
        PipelineSource::from(dir.as_path())
    }
}

macro_rules! from_model {
    ($($model:ty => $variant:ident),*) => {$(
        impl From<($model, Tokenizer)> for PipelineSource {
            fn from((model, tokenizer): ($model, Tokenizer)) -> Self {
                PipelineSource::$variant(model, tokenizer)
            }
        }
        impl From<(&$model, &Tokenizer)> for PipelineSource {
            /// The pipeline shares the model's weights (`share()`): training it on is seen.
            fn from((model, tokenizer): (&$model, &Tokenizer)) -> Self {
                PipelineSource::$variant(model.share(), tokenizer.clone())
            }
        }
    )*};
}
from_model!(
    AutoModelForCausalLM => CausalLm,
    AutoModelForMaskedLM => MaskedLm,
    AutoModel => Base,
    AutoModelForSequenceClassification => SequenceClassification,
    AutoModelForQuestionAnswering => QuestionAnswering
);

/// A pipeline for `task` (one of [`PIPELINE_TASKS`](super::PIPELINE_TASKS)) from `model`: a folder or Hub id with the
/// model and its tokenizer, or a model in memory with its tokenizer, `(model, tokenizer)` (or
/// `(&model, &tok)`, which shares the model's weights). A model of the wrong kind for the task is
/// an error that names both. Tune it by name with [`Pipeline::with_options`]; run it on one text
/// ([`Pipeline::call`]) or several ([`Pipeline::call_batch`]).
///
/// ```
/// # use massivetext::prelude::*;
/// # fn main() -> Result<()> {
/// let tok = Tokenizer::train(TokenizerKind::Bpe, ["the cat sat on the mat"].iter(), &TrainOptions::new(270))?;
/// let config = Gpt2Config { n_layer: 1, n_embd: 16, n_head: 2, n_positions: 32, ..Gpt2Config::small(tok.vocab_size()) };
/// let model = AutoModelForCausalLM::from_config(config, &Device::Cpu)?;
/// let pipe = pipeline("text-generation", (&model, &tok))?
///     .with_options(&PipelineOptions { max_new_tokens: Some(4), ..Default::default() })?;
/// let out = pipe.call_batch(&["the cat", "the mat"])?;
/// assert_eq!(out.len(), 2);
/// # Ok(()) }
/// ```
pub fn pipeline(task: &str, model: impl Into<PipelineSource>) -> Result<Pipeline> {
    build(task, model.into())
}

/// The pipeline for `task` from `source` (see [`pipeline`]).
fn build(task: &str, source: PipelineSource) -> Result<Pipeline> {
    use PipelineSource as S;
    let wrong = |source: &PipelineSource, needs: &str| {
        Error::InvalidArgument(format!(
            "pipeline(\"{task}\") was given {}; it needs {needs} (with its tokenizer), or a folder",
            source.describe()
        ))
    };
    if let S::Pretrained(id) = &source {
        let tokenizer = Tokenizer::from_pretrained(id)?;
        let source = match task {
            "text-generation" => S::CausalLm(AutoModelForCausalLM::from_pretrained(id)?, tokenizer),
            "fill-mask" => S::MaskedLm(AutoModelForMaskedLM::from_pretrained(id)?, tokenizer),
            "feature-extraction" => S::Base(AutoModel::from_pretrained(id)?, tokenizer),
            "text-classification" | "sentiment-analysis" => S::SequenceClassification(
                AutoModelForSequenceClassification::from_pretrained(id)?,
                tokenizer,
            ),
            "question-answering" => S::QuestionAnswering(
                AutoModelForQuestionAnswering::from_pretrained(id)?,
                tokenizer,
            ),
            other => return Err(unknown_task(other)),
        };
        return build(task, source);
    }
    Ok(match (task, source) {
        ("text-generation", S::CausalLm(m, t)) => {
            Pipeline::TextGeneration(TextGenerationPipeline::new(m, t)?)
        }
        ("fill-mask", S::MaskedLm(m, t)) => Pipeline::FillMask(FillMaskPipeline::new(m, t)),
        ("feature-extraction", S::Base(m, t)) => {
            Pipeline::FeatureExtraction(FeatureExtractionPipeline::new(m, t))
        }
        ("text-classification" | "sentiment-analysis", S::SequenceClassification(m, t)) => {
            Pipeline::TextClassification(TextClassificationPipeline::new(m, t))
        }
        ("question-answering", S::QuestionAnswering(m, t)) => {
            Pipeline::QuestionAnswering(QuestionAnsweringPipeline::new(m, t))
        }
        ("text-generation", s) => return Err(wrong(&s, "an AutoModelForCausalLM")),
        ("fill-mask", s) => return Err(wrong(&s, "an AutoModelForMaskedLM")),
        ("feature-extraction", s) => return Err(wrong(&s, "an AutoModel")),
        ("text-classification" | "sentiment-analysis", s) => {
            return Err(wrong(&s, "an AutoModelForSequenceClassification"));
        }
        ("question-answering", s) => return Err(wrong(&s, "an AutoModelForQuestionAnswering")),
        (other, _) => return Err(unknown_task(other)),
    })
}

fn unknown_task(task: &str) -> Error {
    Error::InvalidArgument(format!(
        "unknown pipeline task `{task}`; tasks: {}",
        super::PIPELINE_TASKS.join(", ")
    ))
}

/// A pipeline's settings by name, as transformers takes them when the pipeline is called
/// (`pipe(text, top_k=3)`, `pipe(prompt, max_new_tokens=40)`). An option the task does not have
/// is an error naming it, never ignored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineOptions {
    /// fill-mask: predictions per mask (default 5); text-classification: labels returned
    /// (default 1).
    pub top_k: Option<usize>,
    /// text-classification: every label, best first (transformers' `top_k=None`).
    pub all_labels: bool,
    /// text-generation: new tokens per prompt, over the model's own generation settings.
    pub max_new_tokens: Option<usize>,
    /// text-generation: the whole generation configuration (sampling, beams, stop tokens...).
    pub generation_config: Option<GenerationConfig>,
    /// question-answering: tokens per window and the overlap of windows (384 and 128).
    pub max_seq_len: Option<(usize, usize)>,
}

impl PipelineOptions {
    /// The names of the options given.
    fn set(&self) -> Vec<&'static str> {
        [
            ("top_k", self.top_k.is_some()),
            ("all_labels", self.all_labels),
            ("max_new_tokens", self.max_new_tokens.is_some()),
            ("generation_config", self.generation_config.is_some()),
            ("max_seq_len", self.max_seq_len.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

impl Pipeline {
    /// This pipeline with `options` applied (see [`PipelineOptions`]).
    pub fn with_options(mut self, options: &PipelineOptions) -> Result<Self> {
        let o = options;
        let takes: &[&str] = match &self {
            Pipeline::TextGeneration(_) => &["max_new_tokens", "generation_config"],
            Pipeline::FillMask(_) => &["top_k"],
            Pipeline::TextClassification(_) => &["top_k", "all_labels"],
            Pipeline::QuestionAnswering(_) => &["top_k", "max_seq_len"],
            Pipeline::FeatureExtraction(_) => &[],
        };
        if let Some(name) = o.set().into_iter().find(|n| !takes.contains(n)) {
            return Err(Error::InvalidArgument(format!(
                "the {} pipeline has no option `{name}`; see PipelineOptions for what each task takes",
                self.task()
            )));
        }
        match &mut self {
            Pipeline::TextGeneration(p) => {
                if let Some(c) = &o.generation_config {
                    p.config = c.clone();
                }
                if let Some(n) = o.max_new_tokens {
                    p.config.max_new_tokens = n;
                }
            }
            Pipeline::FillMask(p) => {
                if let Some(k) = o.top_k {
                    p.top_k = k;
                }
            }
            Pipeline::TextClassification(p) => {
                if o.all_labels {
                    p.top_k = None;
                } else if let Some(k) = o.top_k {
                    p.top_k = Some(k);
                }
            }
            Pipeline::QuestionAnswering(p) => {
                if let Some(k) = o.top_k {
                    p.top_k = k;
                }
                if let Some((len, stride)) = o.max_seq_len {
                    *p = p.clone().with_max_seq_len(len, stride);
                }
            }
            Pipeline::FeatureExtraction(_) => {}
        }
        Ok(self)
    }

    /// The task's name, as [`pipeline`] takes it.
    pub fn task(&self) -> &'static str {
        match self {
            Pipeline::TextGeneration(_) => "text-generation",
            Pipeline::FillMask(_) => "fill-mask",
            Pipeline::FeatureExtraction(_) => "feature-extraction",
            Pipeline::TextClassification(_) => "text-classification",
            Pipeline::QuestionAnswering(_) => "question-answering",
        }
    }

    /// Each text's result, in order, as transformers' `pipe([text, ...])` (question answering:
    /// [`answer`](Self::answer) per question). The first failing text is an error naming its
    /// place in the list.
    pub fn call_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<PipelineOutput>> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.call(t.as_ref()).map_err(|e| match e {
                    Error::InvalidArgument(m) => {
                        Error::InvalidArgument(format!("text {i} of the batch: {m}"))
                    }
                    other => other,
                })
            })
            .collect()
    }
}
