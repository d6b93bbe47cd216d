//! What the results of `train()`, `evaluate()` and `predict()` show as the last value of a
//! notebook cell: their figures as a table, instead of a struct's debug print.
use super::evaluate::EvalOutput;
use super::predict::{Metrics, PredictionOutput};
use super::trainer::TrainOutput;
use crate::display;

fn row(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

fn metric_rows(m: &Metrics) -> impl Iterator<Item = (String, String)> + '_ {
    m.iter().map(|(k, v)| row(k, format!("{v:.6}")))
}

impl TrainOutput {
    /// `(name, value)` rows: steps, mean training loss, runtime, speed, the resumed checkpoint.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut r = vec![
            row("global_step", self.global_step),
            row("steps_run", self.steps_run),
            row("training_loss", format!("{:.6}", self.training_loss)),
            row("train_runtime", format!("{:.1} s", self.train_runtime)),
            row(
                "tokens_per_second",
                format!("{:.0}", self.tokens_per_second),
            ),
        ];
        if let Some(dir) = &self.resumed_from {
            r.push(row("resumed_from", dir.display()));
        }
        r
    }

    /// Renders the figures as a table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        display::show_fields("TrainOutput", &self.rows());
    }
}

impl EvalOutput {
    /// `(name, value)` rows: the loss, the perplexity, each metric, runtime and sizes.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut r = vec![
            row("eval_loss", format!("{:.6}", self.eval_loss)),
            row("eval_perplexity", format!("{:.4}", self.eval_perplexity)),
        ];
        r.extend(metric_rows(&self.metrics));
        r.push(row("eval_runtime", format!("{:.2} s", self.eval_runtime)));
        r.push(row("eval_samples", self.eval_samples));
        r.push(row("eval_tokens", self.eval_tokens));
        r
    }

    /// Renders the figures as a table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        display::show_fields("EvalOutput", &self.rows());
    }
}

impl PredictionOutput {
    /// `(name, value)` rows: the shapes of the predictions and labels, then the metrics.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut r = vec![row("predictions", format!("{:?}", self.predictions.dims()))];
        if let Some(l) = &self.label_ids {
            r.push(row("label_ids", format!("{:?}", l.dims())));
        }
        r.extend(metric_rows(&self.metrics));
        r
    }

    /// Renders the shapes and metrics as a table in an evcxr notebook.
    pub fn evcxr_display(&self) {
        display::show_fields("PredictionOutput", &self.rows());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_show_their_figures() {
        let t = TrainOutput {
            global_step: 40,
            steps_run: 20,
            resumed_from: Some("out/checkpoint-20".into()),
            training_loss: 1.25,
            train_runtime: 3.04,
            tokens_per_second: 1234.4,
        };
        let rows = t.rows();
        assert_eq!(rows[2], row("training_loss", "1.250000"));
        assert_eq!(rows[5], row("resumed_from", "out/checkpoint-20"));
        let e = EvalOutput {
            eval_loss: 2.0,
            eval_perplexity: 2f64.exp(),
            metrics: Metrics::from([("eval_accuracy".to_string(), 0.5)]),
            eval_runtime: 0.5,
            eval_samples: 8,
            eval_tokens: 64,
        };
        assert_eq!(e.rows()[1], row("eval_perplexity", "7.3891"));
        assert_eq!(e.rows()[2], row("eval_accuracy", "0.500000"));
    }
}
