//! A confusion matrix of classification results: true labels down, predicted labels across,
//! counts (or shares) in the cells, like scikit-learn's `confusion_matrix` and its display.
use super::chart::{ChartOptions, impl_chart};
use super::matrix::{Panel, colour_bar, label_room};
use super::style::{short_num, token_label};
use super::svg::{Anchor, Drawing, Svg, Target};
use crate::{Error, Result};

/// How cells are normalised (scikit-learn's `normalize=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Normalize {
    /// Raw counts.
    #[default]
    None,
    /// Each true-label row sums to 1 (recall on the diagonal).
    True,
    /// Each predicted-label column sums to 1 (precision on the diagonal).
    Pred,
    /// All cells sum to 1.
    All,
}

/// Counts of (true label, predicted label) pairs.
///
/// ```
/// use massivetext::prelude::*;
/// let cm = ConfusionMatrix::from_labels(&["cat", "dog", "dog"], &["cat", "cat", "dog"])?;
/// assert_eq!(cm.counts(), &[vec![1, 0], vec![1, 1]]);
/// assert_eq!(cm.normalize(Normalize::True).values()[1], vec![0.5, 0.5]);
/// # Ok::<(), massivetext::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConfusionMatrix {
    labels: Vec<String>,
    counts: Vec<Vec<u64>>,
    normalize: Normalize,
    opts: ChartOptions,
}

impl_chart!(ConfusionMatrix);

impl ConfusionMatrix {
    /// From class indices into `labels`.
    pub fn new<S: AsRef<str>>(y_true: &[usize], y_pred: &[usize], labels: &[S]) -> Result<Self> {
        if y_true.len() != y_pred.len() {
            return Err(Error::InvalidArgument(format!(
                "{} true labels but {} predictions; give one prediction per example",
                y_true.len(),
                y_pred.len()
            )));
        }
        let n = labels.len();
        if n == 0 {
            return Err(Error::InvalidArgument("no class labels given".into()));
        }
        let mut counts = vec![vec![0u64; n]; n];
        for (i, (&t, &p)) in y_true.iter().zip(y_pred).enumerate() {
            if t >= n || p >= n {
                return Err(Error::InvalidArgument(format!(
                    "example {i} has class {} but there are only {n} labels (0..{n})",
                    t.max(p)
                )));
            }
            counts[t][p] += 1;
        }
        Ok(ConfusionMatrix {
            labels: labels.iter().map(|s| s.as_ref().to_string()).collect(),
            counts,
            normalize: Normalize::None,
            opts: ChartOptions::new(560, 520),
        })
    }

    /// From label strings; the classes are the sorted distinct labels of both lists.
    pub fn from_labels<S: AsRef<str>>(y_true: &[S], y_pred: &[S]) -> Result<Self> {
        let mut labels: Vec<String> = y_true
            .iter()
            .chain(y_pred)
            .map(|s| s.as_ref().to_string())
            .collect();
        labels.sort();
        labels.dedup();
        let idx = |s: &S| labels.binary_search(&s.as_ref().to_string()).unwrap_or(0);
        let t: Vec<usize> = y_true.iter().map(idx).collect();
        let p: Vec<usize> = y_pred.iter().map(idx).collect();
        Self::new(&t, &p, &labels)
    }

    /// Shows shares instead of counts.
    pub fn normalize(mut self, how: Normalize) -> Self {
        self.normalize = how;
        self
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }
    /// `counts[true][pred]`.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }
    /// Share of examples on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let total: u64 = self.counts.iter().flatten().sum();
        let right: u64 = (0..self.labels.len()).map(|i| self.counts[i][i]).sum();
        if total == 0 {
            0.0
        } else {
            right as f64 / total as f64
        }
    }

    /// The drawn values: counts, or shares as `normalize` says (an empty row or column gives 0).
    pub fn values(&self) -> Vec<Vec<f64>> {
        let n = self.labels.len();
        let c = |i: usize, j: usize| self.counts[i][j] as f64;
        let total: f64 = self.counts.iter().flatten().sum::<u64>() as f64;
        (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        let d = match self.normalize {
                            Normalize::None => 1.0,
                            Normalize::True => (0..n).map(|k| c(i, k)).sum(),
                            Normalize::Pred => (0..n).map(|k| c(k, j)).sum(),
                            Normalize::All => total,
                        };
                        if d > 0.0 { c(i, j) / d } else { 0.0 }
                    })
                    .collect()
            })
            .collect()
    }

    fn render(&self, target: Target) -> Result<Drawing> {
        let n = self.labels.len();
        let vals = self.values();
        let vmax = vals
            .iter()
            .flatten()
            .copied()
            .fold(0.0, f64::max)
            .max(1e-12);
        let (w, h) = (self.opts.width as f64, self.opts.height as f64);
        let labels: Vec<String> = self.labels.iter().map(|l| token_label(l, 16)).collect();
        let size = 12.0;
        let left = 34.0 + label_room(&labels, size) + 6.0;
        let bottom = 34.0 + label_room(&labels, size) + 6.0;
        let top = 44.0;
        let right = 90.0;
        let cell = ((w - left - right) / n as f64)
            .min((h - top - bottom) / n as f64)
            .max(1.0);
        let side = cell * n as f64;
        let mut svg = Svg::for_target(self.opts.width, self.opts.height, target);
        let title = self.opts.title.clone().unwrap_or_else(|| {
            format!(
                "Confusion matrix · accuracy {:.1}%",
                100.0 * self.accuracy()
            )
        });
        svg.text(
            w / 2.0,
            20.0,
            &title,
            16.0,
            Anchor::Middle,
            "#111111",
            0.0,
            "title",
        );
        let value = |i: usize, j: usize| Some(vals[i][j]);
        let counts = &self.counts;
        let tip = |i: usize, j: usize, v: f64| {
            format!(
                "true {} · predicted {}: {} ({})",
                self.labels[i],
                self.labels[j],
                counts[i][j],
                short_num(v)
            )
        };
        let norm = self.normalize != Normalize::None;
        let text = move |v: f64| {
            if norm {
                format!("{v:.2}")
            } else {
                format!("{}", v as u64)
            }
        };
        Panel {
            x: left,
            y: top,
            w: side,
            h: side,
            rows: n,
            cols: n,
            value: &value,
            vmin: 0.0,
            vmax,
            row_labels: Some(&labels),
            col_labels: Some(&labels),
            label_size: size,
            cell_text: Some(&text),
            tooltip: Some(&tip),
            class: "cells",
        }
        .draw(&mut svg);
        svg.text(
            left + side / 2.0,
            h - 12.0,
            "predicted label",
            12.0,
            Anchor::Middle,
            "#444444",
            0.0,
            "axis-title",
        );
        svg.text(
            12.0,
            top + side / 2.0,
            "true label",
            12.0,
            Anchor::Middle,
            "#444444",
            -90.0,
            "axis-title",
        );
        colour_bar(
            &mut svg,
            left + side + 16.0,
            top,
            14.0,
            side.min(300.0),
            0.0,
            vmax,
            if norm { "share" } else { "count" },
        );
        Ok(svg.finish_drawing())
    }

    fn alt_text(&self) -> String {
        let total: u64 = self.counts.iter().flatten().sum();
        format!(
            "Confusion matrix of {total} examples over {} classes ({}); rows are true labels, columns predictions; accuracy {:.1}%.",
            self.labels.len(),
            self.labels.join(", "),
            100.0 * self.accuracy()
        )
    }
}
