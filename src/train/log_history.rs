//! `trainer.log_history()`: the rows the Trainer logged, read as a slice of [`LogEntry`] (every
//! slice method works), printed as JSON rows rather than serde's `Number(..)` debug noise, and
//! shown in a notebook as transformers' notebook progress table.
use std::fmt;
use std::ops::Deref;

use super::state::LogEntry;
use crate::display::{emit, html_table};

/// The logged rows of a run, in order. Derefs to `[LogEntry]`.
#[derive(Clone, Copy, PartialEq)]
pub struct LogHistory<'a>(pub &'a [LogEntry]);

impl Deref for LogHistory<'_> {
    type Target = [LogEntry];
    fn deref(&self) -> &[LogEntry] {
        self.0
    }
}

impl AsRef<[LogEntry]> for LogHistory<'_> {
    fn as_ref(&self) -> &[LogEntry] {
        self.0
    }
}

impl<'a> IntoIterator for LogHistory<'a> {
    type Item = &'a LogEntry;
    type IntoIter = std::slice::Iter<'a, LogEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One JSON object per row, as `trainer_state.json` holds them.
impl fmt::Debug for LogHistory<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[")?;
        for e in self.0 {
            writeln!(f, "  {},", serde_json::Value::Object(e.clone()))?;
        }
        write!(f, "]")
    }
}

fn num(e: &LogEntry, key: &str) -> Option<f64> {
    e.get(key).and_then(|v| v.as_f64())
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "No log".into(),
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) => format!("{x:.3e}"),
        Some(x) => format!("{x:.6}"),
    }
}

/// `eval_accuracy` → `Accuracy`, `eval_rouge1` → `Rouge1`, as transformers' table heads them.
fn metric_title(key: &str) -> String {
    key.trim_start_matches("eval_")
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl LogHistory<'_> {
    /// The table of transformers' notebook progress display: with evaluations, one row per
    /// evaluation (step, the training loss logged last before it, validation loss, each
    /// metric); without, one row per logged training step (step, loss, learning rate, gradient
    /// norm). Returns the header and the rows.
    pub fn table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let evals: Vec<&LogEntry> = self
            .0
            .iter()
            .filter(|e| e.contains_key("eval_loss"))
            .collect();
        if evals.is_empty() {
            let header = ["Step", "Training Loss", "Learning Rate", "Grad Norm"];
            let rows = self
                .0
                .iter()
                .filter(|e| e.contains_key("loss"))
                .map(|e| {
                    vec![
                        num(e, "step").map_or("?".into(), |s| format!("{s:.0}")),
                        fmt_value(num(e, "loss")),
                        fmt_value(num(e, "learning_rate")),
                        fmt_value(num(e, "grad_norm")),
                    ]
                })
                .collect();
            return (header.iter().map(|h| h.to_string()).collect(), rows);
        }
        let skip = [
            "eval_loss",
            "eval_runtime",
            "eval_samples_per_second",
            "eval_steps_per_second",
        ];
        let mut metrics: Vec<&str> = Vec::new();
        for e in &evals {
            for k in e.keys() {
                if k.starts_with("eval_")
                    && !skip.contains(&k.as_str())
                    && !metrics.contains(&k.as_str())
                {
                    metrics.push(k);
                }
            }
        }
        let mut header: Vec<String> = ["Step", "Training Loss", "Validation Loss"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        header.extend(metrics.iter().map(|k| metric_title(k)));
        let mut rows = Vec::new();
        let mut last_loss = None;
        for e in self.0 {
            if let Some(l) = num(e, "loss") {
                last_loss = Some(l);
            }
            if !e.contains_key("eval_loss") {
                continue;
            }
            let mut row = vec![
                num(e, "step").map_or("?".into(), |s| format!("{s:.0}")),
                fmt_value(last_loss),
                fmt_value(num(e, "eval_loss")),
            ];
            row.extend(metrics.iter().map(|k| fmt_value(num(e, k))));
            rows.push(row);
        }
        (header, rows)
    }

    /// [`table`](Self::table) as HTML.
    pub fn to_html(&self) -> String {
        let (header, rows) = self.table();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        html_table(&header, &rows)
    }

    /// Renders the table inline in evcxr.
    pub fn evcxr_display(&self) {
        emit("text/html", &self.to_html());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(v: serde_json::Value) -> LogEntry {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn one_row_per_evaluation_with_the_last_training_loss() {
        let h = vec![
            row(json!({"loss": 2.5, "step": 10})),
            row(json!({"loss": 2.0, "step": 20})),
            row(json!({"eval_loss": 2.1, "eval_accuracy": 0.5, "eval_runtime": 1.0, "step": 20})),
            row(json!({"loss": 1.5, "step": 30})),
            row(json!({"eval_loss": 1.7, "eval_accuracy": 0.75, "eval_runtime": 1.0, "step": 30})),
        ];
        let (header, rows) = LogHistory(&h).table();
        assert_eq!(
            header,
            ["Step", "Training Loss", "Validation Loss", "Accuracy"]
        );
        assert_eq!(
            rows,
            [
                ["20", "2.000000", "2.100000", "0.500000"],
                ["30", "1.500000", "1.700000", "0.750000"]
            ]
        );
    }

    #[test]
    fn without_evaluations_one_row_per_logged_step() {
        let h = vec![
            row(json!({"loss": 2.5, "learning_rate": 5e-4, "grad_norm": 1.25, "step": 10})),
            row(json!({"train_loss": 2.4, "train_runtime": 3.0, "step": 10})),
        ];
        let (header, rows) = LogHistory(&h).table();
        assert_eq!(
            header,
            ["Step", "Training Loss", "Learning Rate", "Grad Norm"]
        );
        assert_eq!(rows, [["10", "2.500000", "5.000e-4", "1.250000"]]);
        let debug = format!("{:?}", LogHistory(&h));
        assert!(
            debug.contains(
                "  {\"loss\":2.5,\"learning_rate\":0.0005,\"grad_norm\":1.25,\"step\":10},"
            ),
            "{debug}"
        );
        assert!(!debug.contains("Number"), "{debug}");
    }
}
