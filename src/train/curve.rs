//! The loss curve of a run (training loss and evaluation loss against the step), drawn from
//! `log_history` with plotters as SVG: shown inline in a notebook, or written next to the
//! checkpoints.
use std::path::Path;

use plotters::prelude::*;

use super::state::TrainerState;
use crate::io::write_atomic;
use crate::{Error, Result};

/// An SVG chart; renders inline when it is the last expression of an evcxr cell.
#[derive(Clone, Debug, PartialEq)]
pub struct LossCurve {
    pub svg: String,
}

impl LossCurve {
    /// Draws `loss` and `eval_loss` from a trainer state.
    pub fn from_state(state: &TrainerState) -> Result<Self> {
        let train = state.series("loss");
        let eval = state.series("eval_loss");
        Self::from_series(&train, &eval)
    }

    /// Draws the two series of `(step, loss)` points.
    pub fn from_series(train: &[(f64, f64)], eval: &[(f64, f64)]) -> Result<Self> {
        let err = |e: String| Error::InvalidArgument(format!("cannot draw the loss curve: {e}"));
        let all: Vec<&(f64, f64)> = train
            .iter()
            .chain(eval)
            .filter(|(_, y)| y.is_finite())
            .collect();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
            let (x_max, y_min, y_max) = if all.is_empty() {
                (1.0, 0.0, 1.0)
            } else {
                let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max);
                let y_min = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                let y_max = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
                let pad = ((y_max - y_min) * 0.05).max(1e-3);
                (x_max, (y_min - pad).max(0.0), y_max + pad)
            };
            let mut chart = ChartBuilder::on(&root)
                .caption("loss", ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(0.0..x_max, y_min..y_max)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc("loss")
                .draw()
                .map_err(|e| err(e.to_string()))?;
            if !train.is_empty() {
                chart
                    .draw_series(LineSeries::new(train.iter().copied(), &BLUE))
                    .map_err(|e| err(e.to_string()))?
                    .label("train loss")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
            }
            if !eval.is_empty() {
                chart
                    .draw_series(LineSeries::new(eval.iter().copied(), &RED))
                    .map_err(|e| err(e.to_string()))?
                    .label("eval loss")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
                chart
                    .draw_series(eval.iter().map(|&p| Circle::new(p, 3, RED.filled())))
                    .map_err(|e| err(e.to_string()))?;
            }
            if !all.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(e.to_string()))?;
            }
            root.present().map_err(|e| err(e.to_string()))?;
        }
        Ok(LossCurve { svg })
    }

    /// Writes the SVG file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), self.svg.as_bytes())
    }

    /// Renders inline in evcxr.
    pub fn evcxr_display(&self) {
        crate::display::emit("image/svg+xml", &self.svg);
    }
}
