//! The [`Trainer`]'s chart and inline display. They live with the charts so that training
//! knows nothing of drawing; a notebook still writes `trainer.loss_curve()`.
use super::curves::TrainingCurves;
use crate::Result;
use crate::display::{emit, escape_html};
use crate::train::{PreTrainedModel, Trainer};

impl<M: PreTrainedModel> Trainer<M> {
    /// The training curves of `log_history` (loss raw and smoothed, eval loss, learning rate,
    /// grad norm; renders inline in a notebook). The same chart as
    /// [`TrainingCurves::from_state`], so it takes the same options (`log_scale`, `title`, …).
    pub fn loss_curve(&self) -> Result<TrainingCurves> {
        Ok(TrainingCurves::from_state(self.state()))
    }

    /// Renders a summary and the loss curve inline in evcxr.
    pub fn evcxr_display(&self) {
        let mut html = format!("<div><b>{}</b>", escape_html(&self.summary()));
        if let Ok(svg) = self.loss_curve().and_then(|c| c.to_svg())
            && !self.state().log_history.is_empty()
        {
            html += &svg;
        }
        html += "</div>";
        emit("text/html", &html);
    }
}
