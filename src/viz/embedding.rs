//! Sentence embeddings projected to two dimensions by PCA and drawn as labelled points, coloured
//! by group when groups are given: a first look at whether similar texts land together.
use candle_core::Tensor;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{ChartOptions, impl_chart};
use super::legend::{Marker, draw_legend, legend_height, legend_rows};
use super::pca::{Pca, tensor_rows};
use super::style::{PALETTE, tick_decimals, tick_label, token_label};
use super::svg::{Drawing, Target};
use crate::{Error, Result};

/// A 2-D PCA scatter of embeddings with a label per point.
#[derive(Clone, Debug)]
pub struct EmbeddingPlot {
    pca: Pca,
    points: Vec<(f64, f64)>,
    labels: Vec<String>,
    groups: Option<Vec<String>>,
    opts: ChartOptions,
}

impl_chart!(EmbeddingPlot);

/// A point's label as a reader should see it: a sentence (it has spaces between words) reads as
/// text, whitespace runs folded to one space and cut to `max_chars`; a single token shows its
/// spaces as `␣` ([`token_label`]), where a leading space is part of what the token is.
pub fn point_label(label: &str, max_chars: usize) -> String {
    let words: Vec<&str> = label.split_whitespace().collect();
    if words.len() < 2 || label.starts_with(['Ġ', '▁']) {
        return token_label(label, max_chars);
    }
    let text = words.join(" ");
    if text.chars().count() <= max_chars {
        return text;
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    if let Some(space) = cut.rfind(' ').filter(|&i| i > max_chars / 2) {
        cut.truncate(space);
    }
    cut + "…"
}

impl EmbeddingPlot {
    /// From a `[n, d]` tensor (e.g. `AutoModel::encode`'s output) and one label per row.
    pub fn from_tensor<S: AsRef<str>>(embeddings: &Tensor, labels: &[S]) -> Result<Self> {
        Self::new(&tensor_rows(embeddings)?, labels)
    }

    /// From `n` vectors of equal length and one label per vector.
    pub fn new<S: AsRef<str>>(embeddings: &[Vec<f32>], labels: &[S]) -> Result<Self> {
        if embeddings.len() != labels.len() {
            return Err(Error::InvalidArgument(format!(
                "{} embeddings but {} labels; give one label per embedding",
                embeddings.len(),
                labels.len()
            )));
        }
        let pca = Pca::fit(
            embeddings,
            2.min(embeddings.first().map_or(0, |r| r.len())).max(1),
        )?;
        let pts = pca.transform(embeddings)?;
        let points = pts
            .iter()
            .map(|p| (p[0], p.get(1).copied().unwrap_or(0.0)))
            .collect();
        Ok(EmbeddingPlot {
            pca,
            points,
            labels: labels.iter().map(|s| s.as_ref().to_string()).collect(),
            groups: None,
            opts: ChartOptions::new(720, 560),
        })
    }

    /// Colours points by group (one group name per point), with a legend.
    pub fn groups<S: AsRef<str>>(mut self, groups: &[S]) -> Result<Self> {
        if groups.len() != self.points.len() {
            return Err(Error::InvalidArgument(format!(
                "{} groups for {} points; give one group per point",
                groups.len(),
                self.points.len()
            )));
        }
        self.groups = Some(groups.iter().map(|s| s.as_ref().to_string()).collect());
        Ok(self)
    }

    /// The fitted projection.
    pub fn pca(&self) -> &Pca {
        &self.pca
    }
    /// The 2-D coordinates drawn, one per embedding.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    fn render(&self, _target: Target) -> Result<Drawing> {
        let mut svg = String::new();
        let err =
            |e: String| Error::InvalidArgument(format!("cannot draw the embedding plot: {e}"));
        {
            let root = SVGBackend::with_string(&mut svg, (self.opts.width, self.opts.height))
                .into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
            let span = |f: fn(&(f64, f64)) -> f64| {
                let (a, b) = self
                    .points
                    .iter()
                    .map(f)
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                        (a.min(v), b.max(v))
                    });
                let pad = ((b - a) * 0.12).max(1e-9);
                (a - pad)..(b + pad)
            };
            let r = &self.pca.explained_variance_ratio;
            let pct = |i: usize| r.get(i).map_or(0.0, |v| v * 100.0);
            let title = self
                .opts
                .title
                .clone()
                .unwrap_or_else(|| format!("Embeddings · PCA of {} points", self.points.len()));
            let root = root
                .titled(&title, ("sans-serif", 18))
                .map_err(|e| err(e.to_string()))?;
            let mut names: Vec<String> = self.groups.clone().unwrap_or_default();
            names.sort();
            names.dedup();
            // The groups' legend in a strip above the plot, off the points.
            let entries: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(gi, name)| {
                    let c = PALETTE[gi % PALETTE.len()];
                    (name.clone(), RGBColor(c.0, c.1, c.2), 1.0, Marker::Dot)
                })
                .collect();
            let rows = legend_rows(&root, &entries, self.opts.width);
            let root = if rows.is_empty() {
                root
            } else {
                let (strip, rest) = root.split_vertically(legend_height(rows.len()));
                draw_legend(&strip, &rows).map_err(err)?;
                rest
            };
            let (xs, ys) = (span(|p| p.0), span(|p| p.1));
            let (xd, yd) = (tick_decimals(xs.clone(), 10), tick_decimals(ys.clone(), 10));
            let mid = (xs.start + xs.end) / 2.0;
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(xs, ys)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(format!("PC1 ({:.1}% of variance)", pct(0)))
                .y_desc(format!("PC2 ({:.1}% of variance)", pct(1)))
                .x_label_formatter(&|v| tick_label(*v, xd))
                .y_label_formatter(&|v| tick_label(*v, yd))
                .label_style(("sans-serif", 13))
                .axis_desc_style(("sans-serif", 15))
                .light_line_style(WHITE.mix(0.0))
                .bold_line_style(BLACK.mix(0.08))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            let colour = |i: usize| {
                let g = self
                    .groups
                    .as_ref()
                    .and_then(|g| names.iter().position(|n| *n == g[i]))
                    .unwrap_or(0);
                let c = PALETTE[g % PALETTE.len()];
                RGBColor(c.0, c.1, c.2)
            };
            // Labels point inward: a point in the right half has its label on its left, so
            // no label runs off the chart.
            let font = ("sans-serif", 13).into_font();
            chart
                .draw_series(self.points.iter().enumerate().map(|(i, &p)| {
                    let (dx, h) = if p.0 > mid {
                        (-7, HPos::Right)
                    } else {
                        (7, HPos::Left)
                    };
                    let style = TextStyle::from(font.clone()).pos(Pos::new(h, VPos::Center));
                    EmptyElement::at(p)
                        + Circle::new((0, 0), 4, colour(i).filled())
                        + Text::new(point_label(&self.labels[i], 32), (dx, 0), style)
                }))
                .map_err(|e| err(e.to_string()))?;
            root.present().map_err(|e| err(e.to_string()))?;
        }
        Ok(svg.into())
    }

    fn alt_text(&self) -> String {
        let r = &self.pca.explained_variance_ratio;
        format!(
            "PCA projection of {} embeddings of dimension {}: the first two components explain {:.1}% and {:.1}% of the variance.",
            self.points.len(),
            self.pca.mean.len(),
            r.first().map_or(0.0, |v| v * 100.0),
            r.get(1).map_or(0.0, |v| v * 100.0)
        )
    }
}
