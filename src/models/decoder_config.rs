//! The `config.json` keys the Llama-style families (`llama.rs`, `qwen2.rs`, `mistral.rs`) share
//! beyond plain numbers: the rotary settings (`rope_theta` with `rope_scaling`, or transformers
//! 5's `rope_parameters`), resolved and checked with errors naming the key, and token-id lists.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::layers::RopeScaling;

/// A `rope_scaling` (or transformers 5's `rope_parameters`) object of `config.json`:
/// `{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
/// "original_max_position_embeddings": 8192}`, `{"type": "linear", "factor": 2.0}`, or
/// `{"rope_type": "default", "rope_theta": 500000.0}`. Supported types: `default`, `linear`,
/// `llama3`; other keys are kept and written back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_type: Option<String>,
    /// The older name of `rope_type`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    /// `llama3`: the pretraining context; `max_position_embeddings` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
    /// transformers 5 keeps the base here; it takes precedence over the top-level `rope_theta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl RopeParameters {
    /// `llama3` scaling with Llama 3.1's settings (factor 8, low 1, high 4) over a pretraining
    /// context of `original_max_position_embeddings`.
    pub fn llama3(factor: f64, original_max_position_embeddings: usize) -> Self {
        Self {
            rope_type: Some("llama3".into()),
            factor: Some(factor),
            low_freq_factor: Some(1.0),
            high_freq_factor: Some(4.0),
            original_max_position_embeddings: Some(original_max_position_embeddings),
            ..Self::default()
        }
    }

    /// `linear` scaling: positions divided by `factor`.
    pub fn linear(factor: f64) -> Self {
        Self {
            rope_type: Some("linear".into()),
            factor: Some(factor),
            ..Self::default()
        }
    }
}

/// One token id or several (`eos_token_id` is a list in Llama 3's config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

/// The rotary base and scaling of a config: `rope_scaling` when set, else `rope_parameters`
/// (transformers' order), the base from inside it or else `rope_theta`. Errors name the key.
pub(crate) fn rope_of(
    rope_theta: f64,
    rope_scaling: Option<&RopeParameters>,
    rope_parameters: Option<&RopeParameters>,
    max_position_embeddings: usize,
) -> std::result::Result<(f64, RopeScaling), String> {
    let (key, r) = match (rope_scaling, rope_parameters) {
        (Some(r), _) => ("rope_scaling", r),
        (None, Some(r)) => ("rope_parameters", r),
        (None, None) => {
            return check_theta("rope_theta", rope_theta).map(|t| (t, RopeScaling::None));
        }
    };
    let theta = match r.rope_theta {
        Some(t) => check_theta(&format!("{key}.rope_theta"), t)?,
        None => check_theta("rope_theta", rope_theta)?,
    };
    let kind = r
        .rope_type
        .as_deref()
        .or(r.type_.as_deref())
        .unwrap_or("default");
    let factor = |name: &str, v: Option<f64>| match v {
        Some(f) if f.is_finite() && f > 0.0 => Ok(f),
        Some(f) => Err(format!(
            "`{key}.{name}` is {f}; it must be a positive number"
        )),
        None => Err(format!(
            "`{key}` of rope_type `{kind}` needs `{name}`; add it to config.json"
        )),
    };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: factor("factor", r.factor)?,
        },
        "llama3" => {
            let low = factor("low_freq_factor", r.low_freq_factor)?;
            let high = factor("high_freq_factor", r.high_freq_factor)?;
            if high <= low {
                return Err(format!(
                    "`{key}.high_freq_factor` {high} must be larger than `{key}.low_freq_factor` {low}"
                ));
            }
            let old = r
                .original_max_position_embeddings
                .unwrap_or(max_position_embeddings);
            if old == 0 {
                return Err(format!(
                    "`{key}.original_max_position_embeddings` is 0; it must be at least 1"
                ));
            }
            RopeScaling::Llama3 {
                factor: factor("factor", r.factor)?,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: old as f64,
            }
        }
        other => {
            return Err(format!(
                "`{key}.rope_type` `{other}` is not supported; supported: default, linear, llama3"
            ));
        }
    };
    Ok((theta, scaling))
}

fn check_theta(key: &str, theta: f64) -> std::result::Result<f64, String> {
    if theta.is_finite() && theta > 1.0 {
        Ok(theta)
    } else {
        Err(format!(
            "`{key}` is {theta}; the rotary base must be a number above 1 (10000 is usual)"
        ))
    }
}
