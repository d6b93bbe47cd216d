//! What a task head predicts: the labels (`num_labels`, `id2label`, `label2id`), the
//! `problem_type` that picks the loss, and the classifier's dropout — the keys of transformers'
//! `PretrainedConfig` that sequence-classification and question-answering models read from
//! `config.json` and write back.
use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::{Error, Result};

/// Which loss a sequence-classification model takes (transformers' `config.problem_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemType {
    /// One class per example: cross-entropy against integer labels `[batch]`.
    SingleLabelClassification,
    /// Any number of classes per example: BCE-with-logits against float labels
    /// `[batch, num_labels]` (0 or 1, or probabilities).
    MultiLabelClassification,
    /// Real-valued targets: mean squared error against float labels `[batch]`
    /// (`num_labels == 1`) or `[batch, num_labels]`.
    Regression,
}

impl ProblemType {
    /// The string transformers writes to `config.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleLabelClassification => "single_label_classification",
            Self::MultiLabelClassification => "multi_label_classification",
            Self::Regression => "regression",
        }
    }

    /// Parses the `config.json` string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "single_label_classification" => Some(Self::SingleLabelClassification),
            "multi_label_classification" => Some(Self::MultiLabelClassification),
            "regression" => Some(Self::Regression),
            _ => None,
        }
    }

    /// transformers' rule when `problem_type` is unset: one label is regression; more labels
    /// with integer labels are single-label classification; more labels with float labels are
    /// multi-label classification.
    pub fn infer(num_labels: usize, integer_labels: bool) -> Self {
        if num_labels == 1 {
            Self::Regression
        } else if integer_labels {
            Self::SingleLabelClassification
        } else {
            Self::MultiLabelClassification
        }
    }
}

/// The labels of a task head. transformers' default is two labels named `LABEL_0`, `LABEL_1`.
///
/// ```
/// use massivetext::models::{LabelConfig, ProblemType};
/// let labels = LabelConfig::from_names(&["World", "Sports", "Business", "Sci/Tech"]);
/// assert_eq!(labels.num_labels(), 4);
/// assert_eq!(labels.label2id()["Sports"], 1);
/// let reg = LabelConfig::new(1);
/// assert_eq!(reg.id2label[0], "LABEL_0");
/// let multi = LabelConfig::new(5).with_problem_type(ProblemType::MultiLabelClassification);
/// assert_eq!(multi.problem_type, Some(ProblemType::MultiLabelClassification));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LabelConfig {
    /// The name of each label id, in id order (`num_labels` is its length).
    pub id2label: Vec<String>,
    /// The loss to take; `None` infers it per call from `num_labels` and the labels' dtype,
    /// as transformers does.
    pub problem_type: Option<ProblemType>,
    /// Dropout before the classifier; `None` uses the model's `hidden_dropout_prob` (BERT,
    /// RoBERTa), as transformers does.
    pub classifier_dropout: Option<f64>,
}

impl Default for LabelConfig {
    fn default() -> Self {
        Self::new(2)
    }
}

impl LabelConfig {
    /// `num_labels` labels named `LABEL_0`, `LABEL_1`, ...
    pub fn new(num_labels: usize) -> Self {
        Self {
            id2label: (0..num_labels).map(|i| format!("LABEL_{i}")).collect(),
            problem_type: None,
            classifier_dropout: None,
        }
    }

    /// Labels with names, in id order.
    pub fn from_names(names: &[impl AsRef<str>]) -> Self {
        Self {
            id2label: names.iter().map(|n| n.as_ref().to_string()).collect(),
            ..Self::new(0)
        }
    }

    pub fn with_problem_type(mut self, problem_type: ProblemType) -> Self {
        self.problem_type = Some(problem_type);
        self
    }

    pub fn num_labels(&self) -> usize {
        self.id2label.len()
    }

    /// Each label name's id.
    pub fn label2id(&self) -> HashMap<String, usize> {
        self.id2label
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect()
    }

    /// The name of label `id` (`LABEL_{id}` past the end).
    pub fn label(&self, id: usize) -> String {
        self.id2label
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("LABEL_{id}"))
    }

    pub(crate) fn validate(&self, path: &Path) -> Result<()> {
        if self.id2label.is_empty() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: "the model has 0 labels; give num_labels >= 1 (or a non-empty id2label)"
                    .into(),
            });
        }
        if let Some(p) = self.classifier_dropout
            && !(0.0..1.0).contains(&p)
        {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!("classifier_dropout must be in [0, 1), got {p}"),
            });
        }
        Ok(())
    }

    /// Reads `id2label` (its length wins over `num_labels`, as in transformers), else
    /// `num_labels`, else 2 labels; `problem_type`; `classifier_dropout`.
    pub(crate) fn from_config_map(map: &Map<String, Value>, path: &Path) -> Result<Self> {
        let err = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let mut labels = match map.get("id2label") {
            Some(Value::Object(o)) if !o.is_empty() => {
                let mut named: Vec<(usize, String)> = Vec::with_capacity(o.len());
                for (k, v) in o {
                    let id: usize = k.parse().map_err(|_| {
                        err(format!(
                            "id2label key `{k}` is not a label id (0, 1, 2, ...)"
                        ))
                    })?;
                    let name = v
                        .as_str()
                        .ok_or_else(|| err(format!("id2label[`{k}`] must be a string, got {v}")))?;
                    named.push((id, name.to_string()));
                }
                named.sort();
                if let Some((i, (id, _))) = named.iter().enumerate().find(|(i, (id, _))| i != id) {
                    return Err(err(format!(
                        "id2label must number its labels 0..{} without gaps; id {i} is missing (found {id})",
                        named.len()
                    )));
                }
                LabelConfig::from_names(&named.into_iter().map(|(_, n)| n).collect::<Vec<_>>())
            }
            Some(Value::Object(_)) | None | Some(Value::Null) => {
                match map.get("num_labels") {
                    None | Some(Value::Null) => LabelConfig::new(2),
                    Some(v) => LabelConfig::new(v.as_u64().ok_or_else(|| {
                        err(format!("num_labels must be a positive integer, got {v}"))
                    })? as usize),
                }
            }
            Some(v) => {
                return Err(err(format!(
                    "id2label must be an object like {{\"0\": \"neg\", \"1\": \"pos\"}}, got {v}"
                )));
            }
        };
        labels.problem_type = match map.get("problem_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(ProblemType::parse(s).ok_or_else(|| {
                err(format!(
                    "problem_type `{s}` is not one of regression, single_label_classification, multi_label_classification"
                ))
            })?),
            Some(v) => return Err(err(format!("problem_type must be a string, got {v}"))),
        };
        labels.classifier_dropout = match map.get("classifier_dropout") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| err(format!("classifier_dropout must be a number, got {v}")))?,
            ),
        };
        labels.validate(path)?;
        Ok(labels)
    }

    /// Writes `id2label`, `label2id`, `problem_type` and `classifier_dropout` into a
    /// `config.json` object, as transformers saves them.
    pub(crate) fn write_to(&self, map: &mut Map<String, Value>) {
        let id2label: Map<String, Value> = self
            .id2label
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), Value::from(n.as_str())))
            .collect();
        let label2id: Map<String, Value> = self
            .id2label
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), Value::from(i)))
            .collect();
        map.insert("id2label".into(), Value::Object(id2label));
        map.insert("label2id".into(), Value::Object(label2id));
        map.remove("num_labels");
        map.insert(
            "problem_type".into(),
            self.problem_type
                .map_or(Value::Null, |p| Value::from(p.as_str())),
        );
        map.insert(
            "classifier_dropout".into(),
            self.classifier_dropout.map_or(Value::Null, Value::from),
        );
    }
}
