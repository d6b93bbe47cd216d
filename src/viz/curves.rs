//! Training curves: loss by step (raw, and from ~30 points on EMA-smoothed on top, its weight
//! growing with the number of points so a short run is drawn as it was), evaluation loss at its
//! steps, and the learning rate and gradient norm in their own panels below on the same step
//! axis; several runs on one chart, one colour each. Read from a Trainer's `log_history`, from
//! `trainer_state.json` files (Hugging Face layout) or from plain `(step, value)` series. Long
//! runs are thinned per pixel column with [`downsample_min_max`] (see there for the count).
use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{ChartOptions, impl_chart};
use super::downsample::{downsample_min_max, ema};
use super::legend::{Marker, draw_legend, legend_height, legend_rows};
use super::style::{PALETTE, short_num, tick_decimals, tick_label};
use super::svg::{Drawing, Target};
use crate::train::{LogEntry, TrainerState};
use crate::{Error, Result};

/// The series of one training run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub name: String,
    pub loss: Vec<(f64, f64)>,
    pub eval_loss: Vec<(f64, f64)>,
    pub learning_rate: Vec<(f64, f64)>,
    pub grad_norm: Vec<(f64, f64)>,
}

impl Run {
    /// Picks `loss`, `eval_loss`, `learning_rate` and `grad_norm` out of log entries by `step`.
    pub fn from_log_history(name: impl Into<String>, history: impl AsRef<[LogEntry]>) -> Self {
        let history = history.as_ref();
        let series = |key: &str| -> Vec<(f64, f64)> {
            history
                .iter()
                .filter_map(|e| Some((e.get("step")?.as_f64()?, e.get(key)?.as_f64()?)))
                .collect()
        };
        Run {
            name: name.into(),
            loss: series("loss"),
            eval_loss: series("eval_loss"),
            learning_rate: series("learning_rate"),
            grad_norm: series("grad_norm"),
        }
    }
}

/// Loss, evaluation loss, learning rate and gradient norm of one or more runs.
///
/// ```
/// use massivetext::prelude::*;
/// let loss: Vec<(f64, f64)> = (1..=200).map(|s| (s as f64, 4.0 / (s as f64).sqrt())).collect();
/// let chart = TrainingCurves::from_series(&loss).smoothing(0.8).title("my run");
/// assert!(chart.to_svg()?.starts_with("<svg"));
/// # Ok::<(), massivetext::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TrainingCurves {
    runs: Vec<Run>,
    /// `None`: [`auto_smoothing`] of each run's number of points.
    smoothing: Option<f64>,
    log_scale: bool,
    max_points: Option<usize>,
    opts: ChartOptions,
}

impl_chart!(TrainingCurves);

impl Default for TrainingCurves {
    fn default() -> Self {
        TrainingCurves {
            runs: Vec::new(),
            smoothing: None,
            log_scale: false,
            max_points: None,
            opts: ChartOptions::new(800, 620),
        }
    }
}

impl TrainingCurves {
    /// An empty chart; add runs with [`add_run`](Self::add_run).
    pub fn new() -> Self {
        Self::default()
    }

    /// One run from a Trainer's `log_history()`.
    pub fn from_log_history(history: impl AsRef<[LogEntry]>) -> Self {
        Self::new().add_run("run", history)
    }

    /// One run from a trainer state.
    pub fn from_state(state: &TrainerState) -> Self {
        Self::from_log_history(&state.log_history)
    }

    /// One run from a `trainer_state.json` file, named after its folder.
    pub fn from_trainer_state(path: impl AsRef<Path>) -> Result<Self> {
        Self::new().add_trainer_state(path)
    }

    /// One run's training loss from `(step, loss)` points.
    pub fn from_series(loss: &[(f64, f64)]) -> Self {
        Self::new().with_run(Run {
            name: "run".into(),
            loss: loss.to_vec(),
            ..Default::default()
        })
    }

    /// Adds a run from log entries.
    pub fn add_run(self, name: impl Into<String>, history: impl AsRef<[LogEntry]>) -> Self {
        self.with_run(Run::from_log_history(name, history))
    }

    /// Adds a run from a `trainer_state.json` (its `log_history`), named after its folder
    /// (`checkpoint-500`, or the output directory).
    pub fn add_trainer_state(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let state = TrainerState::load_from_json(path)?;
        let name = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(self.add_run(name, &state.log_history))
    }

    /// Adds a run given as series.
    pub fn with_run(mut self, run: Run) -> Self {
        self.runs.push(run);
        self
    }

    /// Adds evaluation-loss points to the last run.
    pub fn with_eval_loss(mut self, points: &[(f64, f64)]) -> Self {
        if self.runs.is_empty() {
            self.runs.push(Run {
                name: "run".into(),
                ..Default::default()
            });
        }
        if let Some(r) = self.runs.last_mut() {
            r.eval_loss = points.to_vec();
        }
        self
    }

    /// EMA weight of the smoothed loss line, TensorBoard's slider: 0 = raw only. By default
    /// it follows the number of points ([`auto_smoothing`]): none below 30.
    pub fn smoothing(mut self, weight: f64) -> Self {
        self.smoothing = Some(weight.clamp(0.0, 0.999));
        self
    }

    /// The EMA weight a run of `n` loss points is smoothed with.
    pub fn smoothing_for(&self, n: usize) -> f64 {
        self.smoothing.unwrap_or_else(|| auto_smoothing(n))
    }

    /// Loss axis (and gradient-norm axis) on a log scale.
    pub fn log_scale(mut self, yes: bool) -> Self {
        self.log_scale = yes;
        self
    }

    /// Most points drawn per line (default: 2 per pixel of width). Longer series are thinned
    /// with [`downsample_min_max`] into `max_points / 2` buckets.
    pub fn max_points(mut self, n: usize) -> Self {
        self.max_points = Some(n.max(4));
        self
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The points a line of `points` is drawn with, after thinning.
    pub fn plotted(&self, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let max = self.max_points.unwrap_or(2 * self.opts.width as usize);
        downsample_min_max(points, max / 2)
    }

    fn render(&self, _target: Target) -> Result<Drawing> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (self.opts.width, self.opts.height))
                .into_drawing_area();
            self.draw(&root).map_err(|e| {
                Error::InvalidArgument(format!("cannot draw the training curves: {e}"))
            })?;
            root.present().map_err(|e| {
                Error::InvalidArgument(format!("cannot draw the training curves: {e}"))
            })?;
        }
        Ok(svg.into())
    }

    fn draw(&self, root: &DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String> {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let title = self
            .opts
            .title
            .clone()
            .unwrap_or_else(|| "Training curves".into());
        let root = root.titled(&title, ("sans-serif", 18)).map_err(e)?;
        let any = |f: fn(&Run) -> &Vec<(f64, f64)>| self.runs.iter().any(|r| !f(r).is_empty());
        let has_lr = any(|r| &r.learning_rate);
        let has_gn = any(|r| &r.grad_norm);
        let all_x = self
            .runs
            .iter()
            .flat_map(|r| {
                r.loss
                    .iter()
                    .chain(&r.eval_loss)
                    .chain(&r.learning_rate)
                    .chain(&r.grad_norm)
            })
            .map(|p| p.0)
            .filter(|x| x.is_finite());
        let (x0, x1) = all_x.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        let x = if x0.is_finite() && x1 > x0 {
            x0..x1
        } else if x0.is_finite() {
            x0 - 1.0..x0 + 1.0
        } else {
            0.0..1.0
        };
        let (_, h) = root.dim_in_pixel();
        let extra = has_lr as u32 + has_gn as u32;
        let small = if extra == 0 {
            0
        } else {
            (h as f64 * 0.22) as u32
        };
        let (loss_area, mut rest) = root.split_vertically(h - small * extra);
        let single = self.runs.len() == 1;
        let mut legend = Vec::new();
        // Loss panel.
        let mut lines = Vec::new();
        for (i, r) in self.runs.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let colour = RGBColor(c.0, c.1, c.2);
            let prefix = if single {
                String::new()
            } else {
                format!("{} ", r.name)
            };
            let weight = self.smoothing_for(r.loss.len());
            let smooth = weight > 0.0 && r.loss.len() > 2;
            lines.push(Line {
                points: self.plotted(&r.loss),
                colour,
                alpha: if smooth { 0.35 } else { 1.0 },
                width: if smooth { 1 } else { 2 },
                label: Some(if smooth {
                    format!("{prefix}train loss (raw)")
                } else {
                    format!("{prefix}train loss")
                }),
                markers: !smooth && r.loss.len() < 30,
            });
            if smooth {
                lines.push(Line {
                    points: self.plotted(&ema(&r.loss, weight)),
                    colour,
                    alpha: 1.0,
                    width: 2,
                    label: Some(format!(
                        "{prefix}train loss (EMA {})",
                        short_num((weight * 100.0).round() / 100.0)
                    )),
                    markers: false,
                });
            }
            if !r.eval_loss.is_empty() {
                let ec = if single { PALETTE[3] } else { c };
                lines.push(Line {
                    points: self.plotted(&r.eval_loss),
                    colour: RGBColor(ec.0, ec.1, ec.2),
                    alpha: 1.0,
                    width: 2,
                    label: Some(format!("{prefix}eval loss")),
                    markers: true,
                });
            }
        }
        for l in &lines {
            if let Some(label) = &l.label {
                legend.push((label.clone(), l.colour, l.alpha, Marker::Line));
            }
        }
        // The legend in a strip of its own above the loss panel, so it never covers a line.
        let (w, _) = loss_area.dim_in_pixel();
        let rows = legend_rows(&loss_area, &legend, w);
        let (legend_area, loss_area) = loss_area.split_vertically(legend_height(rows.len()));
        draw_legend(&legend_area, &rows)?;
        panel(
            &loss_area,
            x.clone(),
            &lines,
            "loss",
            self.log_scale,
            extra == 0,
        )?;
        let mut rest_panels: Vec<(&str, Pick, bool)> = Vec::new();
        if has_lr {
            rest_panels.push(("learning rate", |r| &r.learning_rate, false));
        }
        if has_gn {
            rest_panels.push(("grad norm", |r| &r.grad_norm, self.log_scale));
        }
        let n = rest_panels.len();
        for (k, (name, f, log)) in rest_panels.into_iter().enumerate() {
            let area = if k + 1 < n {
                let (a, b) = rest.split_vertically(small);
                rest = b;
                a
            } else {
                rest.clone()
            };
            let lines: Vec<Line> = self
                .runs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let c = PALETTE[i % PALETTE.len()];
                    Line {
                        points: self.plotted(f(r)),
                        colour: RGBColor(c.0, c.1, c.2),
                        alpha: 1.0,
                        width: 1,
                        label: None,
                        markers: false,
                    }
                })
                .collect();
            panel(&area, x.clone(), &lines, name, log, k + 1 == n)?;
        }
        Ok(())
    }

    fn alt_text(&self) -> String {
        if self.runs.is_empty() {
            return "Training curves: no runs.".into();
        }
        let mut parts = Vec::new();
        for r in &self.runs {
            let mut s = format!("run '{}':", r.name);
            if let (Some(a), Some(b)) = (r.loss.first(), r.loss.last()) {
                s += &format!(
                    " loss {} at step {} to {} at step {} ({} logged points)",
                    short_num(a.1),
                    a.0,
                    short_num(b.1),
                    b.0,
                    r.loss.len()
                );
            }
            if let Some(b) = r.eval_loss.last() {
                s += &format!("; last eval loss {} at step {}", short_num(b.1), b.0);
            }
            if let Some(m) = r.learning_rate.iter().map(|p| p.1).reduce(f64::max) {
                s += &format!("; peak learning rate {}", short_num(m));
            }
            parts.push(s);
        }
        format!(
            "Training curves of {} run(s): {}.",
            self.runs.len(),
            parts.join("; ")
        )
    }
}

/// The default EMA weight for `n` points: none below 30 (every point is visible, and an EMA
/// over a handful of points lags far behind the data), then the weight of an EMA whose span is a
/// tenth of the run (pandas' `span`: `1 - 2 / (span + 1)`), at most 0.95.
pub fn auto_smoothing(n: usize) -> f64 {
    if n < 30 {
        return 0.0;
    }
    let span = n as f64 / 10.0;
    (1.0 - 2.0 / (span + 1.0)).clamp(0.0, 0.95)
}

/// Picks one series out of a run.
type Pick = fn(&Run) -> &Vec<(f64, f64)>;

struct Line {
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    alpha: f64,
    width: u32,
    label: Option<String>,
    markers: bool,
}

/// One panel: lines over the shared step range; log panels draw log10 of the values and label
/// the ticks with the values themselves.
fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    x: Range<f64>,
    lines: &[Line],
    ylabel: &str,
    log: bool,
    show_x_desc: bool,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let tf = |v: f64| {
        if log {
            v.max(f64::MIN_POSITIVE).log10()
        } else {
            v
        }
    };
    let ys = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite() && (!log || *y > 0.0))
        .map(tf);
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let (y0, y1) = if !y0.is_finite() {
        (0.0, 1.0)
    } else {
        let pad = ((y1 - y0) * 0.05).max(if log { 0.01 } else { 1e-9 + y1.abs() * 1e-3 });
        (y0 - pad, y1 + pad)
    };
    let x_range = x.clone();
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_right(20)
        .x_label_area_size(if show_x_desc { 40 } else { 22 })
        .y_label_area_size(70)
        .build_cartesian_2d(x, y0..y1)
        .map_err(e)?;
    let y_ticks = if area.dim_in_pixel().1 > 250 { 8 } else { 4 };
    let (yd, xd) = (tick_decimals(y0..y1, y_ticks), tick_decimals(x_range, 10));
    let fmt_y = |v: &f64| {
        if log {
            short_num(10f64.powf(*v))
        } else {
            tick_label(*v, yd)
        }
    };
    let fmt_x = |v: &f64| tick_label(*v, xd);
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(if log {
        format!("{ylabel} (log)")
    } else {
        ylabel.to_string()
    })
    .y_label_formatter(&fmt_y)
    .x_label_formatter(&fmt_x)
    .y_labels(y_ticks)
    .x_labels(10)
    .label_style(("sans-serif", 13))
    .light_line_style(WHITE.mix(0.0))
    .bold_line_style(BLACK.mix(0.08))
    .axis_desc_style(("sans-serif", 15));
    if show_x_desc {
        mesh.x_desc("step");
    }
    mesh.draw().map_err(e)?;
    for l in lines {
        if l.points.is_empty() {
            continue;
        }
        let style = ShapeStyle::from(l.colour.mix(l.alpha)).stroke_width(l.width);
        let pts: Vec<(f64, f64)> = l
            .points
            .iter()
            .filter(|p| !log || p.1 > 0.0)
            .map(|&(a, b)| (a, tf(b)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), style))
            .map_err(e)?;
        if l.markers {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, l.colour.filled())))
                .map_err(e)?;
        }
    }
    Ok(())
}
