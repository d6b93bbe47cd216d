//! What `TrainingArguments` shows as the last value of a notebook cell: the values that differ
//! from Hugging Face's defaults (everything else is what transformers would use).
use serde_json::Value;

use super::args::TrainingArguments;
use crate::display;

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl TrainingArguments {
    /// `(field, value)` for every field that differs from `TrainingArguments::default()`.
    pub fn non_default_values(&self) -> Vec<(String, String)> {
        let ours = serde_json::to_value(self).unwrap_or(Value::Null);
        let base = serde_json::to_value(TrainingArguments::default()).unwrap_or(Value::Null);
        let (Some(ours), Some(base)) = (ours.as_object(), base.as_object()) else {
            return Vec::new();
        };
        ours.iter()
            .filter(|(k, v)| base.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), cell(v)))
            .collect()
    }

    fn caption(&self) -> String {
        "TrainingArguments (values other than the defaults)".to_string()
    }

    /// Renders the non-default values as a table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        let rows = self.non_default_values();
        display::show_fields(&self.caption(), &rows);
    }
}

impl std::fmt::Display for TrainingArguments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&display::text_fields(
            &self.caption(),
            &self.non_default_values(),
        ))
    }
}
