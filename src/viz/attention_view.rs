//! Pictures of an [`AttentionMap`]: one head as a heatmap with the tokens on both axes, all heads
//! of a layer as a grid (bertviz's "model view" for one layer), and a layers × heads overview of
//! each head's entropy and its attention to the previous and the first token, to find the heads
//! worth a closer look.
use super::attention::{AttentionMap, HeadStats};
use super::chart::{ChartOptions, impl_chart};
use super::matrix::{Panel, colour_bar, label_room, label_stride};
use super::style::{short_num, token_label};
use super::svg::{Anchor, Drawing, Svg, Target};
use crate::Result;

/// Longest token label before it is cut with `…`.
const DEFAULT_LABEL_CHARS: usize = 12;

impl AttentionMap {
    /// Heatmap of one head: queries down, keys across, darker = more attention.
    pub fn head(&self, layer: usize, head: usize) -> Result<AttentionHeatmap> {
        self.probs(layer, head)?;
        Ok(AttentionHeatmap {
            map: self.clone(),
            layer,
            head,
            vmax: None,
            label_chars: DEFAULT_LABEL_CHARS,
            opts: ChartOptions::new(720, 680),
        })
    }

    /// Every head of `layer`, small multiples sharing one colour scale.
    pub fn layer_grid(&self, layer: usize) -> Result<AttentionGrid> {
        self.probs(layer, 0)?;
        Ok(AttentionGrid {
            map: self.clone(),
            layer,
            columns: None,
            opts: ChartOptions::new(960, 900),
        })
    }

    /// Layers × heads: entropy, attention to the previous token and to the first token.
    pub fn overview(&self) -> HeadOverview {
        HeadOverview {
            stats: self.head_stats(),
            layers: self.num_layers(),
            heads: self.num_heads(),
            max_entropy: (self.num_keys().max(2) as f64).ln(),
            opts: ChartOptions::new(1080, 120 + 34 * self.num_layers().max(4) as u32),
        }
    }
}

fn labels(tokens: &[String], max: usize) -> Vec<String> {
    tokens.iter().map(|t| token_label(t, max)).collect()
}

/// Font size for labels on cells `cell` px apart: as large as fits, between 8 and 13 px.
fn label_size(cell: f64) -> f64 {
    (cell * 0.8).clamp(8.0, 13.0).round()
}

/// One attention head as a heatmap.
#[derive(Clone, Debug)]
pub struct AttentionHeatmap {
    map: AttentionMap,
    layer: usize,
    head: usize,
    vmax: Option<f64>,
    label_chars: usize,
    opts: ChartOptions,
}

impl_chart!(AttentionHeatmap);

impl AttentionHeatmap {
    /// The probability drawn darkest (default 1.0, so heads compare; lower it to see faint
    /// patterns). Larger values are drawn at the darkest colour.
    pub fn vmax(mut self, vmax: f64) -> Self {
        self.vmax = Some(vmax);
        self
    }

    /// Longest token label before it is cut with `…` (default 12 characters).
    pub fn max_label_chars(mut self, n: usize) -> Self {
        self.label_chars = n.max(2);
        self
    }

    fn render(&self, target: Target) -> Result<Drawing> {
        let m = &self.map;
        let probs = m.probs(self.layer, self.head)?;
        let (q, k) = (m.num_queries(), m.num_keys());
        let (w, h) = (self.opts.width as f64, self.opts.height as f64);
        let rows = labels(m.query_tokens(), self.label_chars);
        let cols = labels(m.tokens(), self.label_chars);
        // First guess of the cell size, to choose the label size and so the margins.
        let guess = ((w - 200.0) / k as f64)
            .min((h - 160.0) / q as f64)
            .max(1.0);
        let size = label_size(guess);
        let show_rows: Vec<String> = rows
            .iter()
            .step_by(label_stride(guess, size))
            .cloned()
            .collect();
        let show_cols: Vec<String> = cols
            .iter()
            .step_by(label_stride(guess, size))
            .cloned()
            .collect();
        let left = 30.0 + label_room(&show_rows, size) + 6.0;
        let bottom = 30.0 + label_room(&show_cols, size) + 6.0;
        let top = 44.0;
        let right = 90.0;
        let cw = ((w - left - right) / k as f64).max(0.5);
        let ch = ((h - top - bottom) / q as f64).max(0.5);
        let cell = cw.min(ch);
        let (pw, ph) = (cell * k as f64, cell * q as f64);
        let mut svg = Svg::for_target(self.opts.width, self.opts.height, target);
        let title = self.opts.title.clone().unwrap_or_else(|| {
            format!(
                "Attention · layer {} · head {}{}",
                self.layer,
                self.head,
                if m.is_causal() { " (causal)" } else { "" }
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
        let vmax = self.vmax.unwrap_or(1.0).max(f64::MIN_POSITIVE);
        let value = |i: usize, j: usize| {
            if m.is_masked(i, j) {
                None
            } else {
                Some(probs[i * k + j] as f64)
            }
        };
        let tip = |i: usize, j: usize, v: f64| format!("{} → {}: {:.4}", rows[i], cols[j], v);
        Panel {
            x: left,
            y: top,
            w: pw,
            h: ph,
            rows: q,
            cols: k,
            value: &value,
            vmin: 0.0,
            vmax,
            row_labels: Some(&rows),
            col_labels: Some(&cols),
            label_size: size,
            cell_text: None,
            tooltip: Some(&tip),
            class: "cells",
        }
        .draw(&mut svg);
        svg.text(
            left + pw / 2.0,
            h - 12.0,
            "key (attended to)",
            12.0,
            Anchor::Middle,
            "#444444",
            0.0,
            "axis-title",
        );
        svg.text(
            12.0,
            top + ph / 2.0,
            "query (attending)",
            12.0,
            Anchor::Middle,
            "#444444",
            -90.0,
            "axis-title",
        );
        colour_bar(
            &mut svg,
            left + pw + 18.0,
            top,
            14.0,
            ph.min(320.0),
            0.0,
            vmax,
            "probability",
        );
        if m.is_causal() {
            let y = top + ph.min(320.0) + 24.0;
            svg.rect(left + pw + 18.0, y, 14.0, 14.0, "url(#mt-masked)", "");
            svg.frame(left + pw + 18.0, y, 14.0, 14.0, "#999999");
            svg.text(
                left + pw + 36.0,
                y + 7.0,
                "masked",
                11.0,
                Anchor::Start,
                "#444444",
                0.0,
                "",
            );
        }
        Ok(svg.finish_drawing())
    }

    fn alt_text(&self) -> String {
        let m = &self.map;
        let Ok(p) = m.probs(self.layer, self.head) else {
            return "attention heatmap (no such head)".into();
        };
        let k = m.num_keys();
        let (mut best, mut bi) = (f32::MIN, 0);
        for (i, &v) in p.iter().enumerate() {
            // The first query of a causal map can only attend to itself; skip it.
            if v > best && !(m.is_causal() && i / k == 0) {
                best = v;
                bi = i;
            }
        }
        let s = &m.head_stats()[self.layer * m.num_heads() + self.head];
        format!(
            "Attention heatmap of layer {} head {} over {} query × {} key tokens{}: darker cells get more attention; each row sums to 1. Strongest link: '{}' → '{}' ({:.2}). Mean entropy {:.2} nats, previous-token attention {:.2}, first-token attention {:.2}.",
            self.layer,
            self.head,
            m.num_queries(),
            k,
            if m.is_causal() {
                " (causal: later keys masked)"
            } else {
                ""
            },
            token_label(&m.query_tokens()[bi / k], 20),
            token_label(&m.tokens()[bi % k], 20),
            best,
            s.entropy,
            s.prev_token,
            s.first_token
        )
    }
}

/// All heads of one layer, side by side on one colour scale.
#[derive(Clone, Debug)]
pub struct AttentionGrid {
    map: AttentionMap,
    layer: usize,
    columns: Option<usize>,
    opts: ChartOptions,
}

impl_chart!(AttentionGrid);

impl AttentionGrid {
    /// Heads per row (default: the smallest square that holds them).
    pub fn columns(mut self, n: usize) -> Self {
        self.columns = Some(n.max(1));
        self
    }

    fn render(&self, target: Target) -> Result<Drawing> {
        let m = &self.map;
        let heads = m.num_heads();
        let ncols = self
            .columns
            .unwrap_or_else(|| (heads as f64).sqrt().ceil() as usize)
            .clamp(1, heads);
        let nrows = heads.div_ceil(ncols);
        let (q, k) = (m.num_queries(), m.num_keys());
        let (w, h) = (self.opts.width as f64, self.opts.height as f64);
        let rows = labels(m.query_tokens(), 10);
        let cols = labels(m.tokens(), 10);
        let gap = 26.0;
        let guess = ((w - 160.0) / (ncols * k) as f64).min((h - 160.0) / (nrows * q) as f64);
        // Tokens only when they can be read: cells at least 7 px.
        let show = guess >= 7.0;
        let size = label_size(guess).min(10.0);
        let left = 12.0
            + if show {
                label_room(&rows, size) + 6.0
            } else {
                0.0
            };
        let bottom = 16.0
            + if show {
                label_room(&cols, size) + 6.0
            } else {
                0.0
            };
        let top = 46.0;
        let right = 90.0;
        let pw_max = (w - left - right - gap * (ncols - 1) as f64) / ncols as f64;
        let ph_max = (h - top - bottom - gap * (nrows - 1) as f64) / nrows as f64;
        let cell = (pw_max / k as f64).min(ph_max / q as f64).max(0.25);
        let (pw, ph) = (cell * k as f64, cell * q as f64);
        let mut svg = Svg::for_target(self.opts.width, self.opts.height, target);
        let title = self
            .opts
            .title
            .clone()
            .unwrap_or_else(|| format!("Attention · layer {} · all {heads} heads", self.layer));
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
        let stats = m.head_stats();
        for hd in 0..heads {
            let (r, c) = (hd / ncols, hd % ncols);
            let x = left + c as f64 * (pw + gap);
            let y = top + r as f64 * (ph + gap);
            let probs = m.probs(self.layer, hd)?;
            let value = |i: usize, j: usize| {
                if m.is_masked(i, j) {
                    None
                } else {
                    Some(probs[i * k + j] as f64)
                }
            };
            let tip = |i: usize, j: usize, v: f64| {
                format!("head {hd}: {} → {}: {:.4}", rows[i], cols[j], v)
            };
            let s = &stats[self.layer * heads + hd];
            svg.text(
                x + pw / 2.0,
                y - 9.0,
                &format!("head {hd} · H={:.2}", s.entropy),
                11.0,
                Anchor::Middle,
                "#222222",
                0.0,
                "panel-title",
            );
            Panel {
                x,
                y,
                w: pw,
                h: ph,
                rows: q,
                cols: k,
                value: &value,
                vmin: 0.0,
                vmax: 1.0,
                row_labels: (show && c == 0).then_some(rows.as_slice()),
                col_labels: (show && (r == nrows - 1 || hd + ncols >= heads))
                    .then_some(cols.as_slice()),
                label_size: size,
                cell_text: None,
                tooltip: Some(&tip),
                class: "cells",
            }
            .draw(&mut svg);
        }
        colour_bar(
            &mut svg,
            w - right + 20.0,
            top,
            14.0,
            (h - top - bottom).min(300.0),
            0.0,
            1.0,
            "probability",
        );
        Ok(svg.finish_drawing())
    }

    fn alt_text(&self) -> String {
        let m = &self.map;
        let stats = m.head_stats();
        let l: Vec<&HeadStats> = stats.iter().filter(|s| s.layer == self.layer).collect();
        let by = |f: fn(&HeadStats) -> f64| {
            l.iter()
                .max_by(|a, b| f(a).total_cmp(&f(b)))
                .map(|s| format!("head {} ({:.2})", s.head, f(s)))
                .unwrap_or_default()
        };
        format!(
            "Attention of all {} heads of layer {} over {} tokens{}, one heatmap per head on a shared 0–1 scale. Most previous-token: {}; most first-token: {}; most spread (entropy): {}.",
            m.num_heads(),
            self.layer,
            m.num_keys(),
            if m.is_causal() { " (causal)" } else { "" },
            by(|s| s.prev_token),
            by(|s| s.first_token),
            by(|s| s.entropy)
        )
    }
}

/// Picks one number out of a head's statistics.
type Stat = fn(&HeadStats) -> f64;

/// Layers × heads at a glance: each head's entropy, previous-token and first-token attention.
#[derive(Clone, Debug)]
pub struct HeadOverview {
    stats: Vec<HeadStats>,
    layers: usize,
    heads: usize,
    max_entropy: f64,
    opts: ChartOptions,
}

impl_chart!(HeadOverview);

impl HeadOverview {
    /// The numbers drawn, layer by layer, head by head.
    pub fn stats(&self) -> &[HeadStats] {
        &self.stats
    }

    fn render(&self, target: Target) -> Result<Drawing> {
        let (w, h) = (self.opts.width as f64, self.opts.height as f64);
        let left0 = 40.0;
        let slot = (w - left0) / 3.0;
        let top = 60.0;
        let bottom = 40.0;
        let avail_w = slot - 100.0;
        let avail_h = h - top - bottom;
        let cell = (avail_w / self.heads as f64)
            .min(avail_h / self.layers as f64)
            .max(1.0);
        let (pw, ph) = (cell * self.heads as f64, cell * self.layers as f64);
        // Square cells: when the width limits them, the drawing ends below the panels instead
        // of leaving the rest of the asked height blank.
        let used = ((top + ph + bottom).ceil() as u32).min(self.opts.height);
        let mut svg = Svg::for_target(self.opts.width, used, target);
        let title = self.opts.title.clone().unwrap_or_else(|| {
            format!(
                "Heads at a glance · {} layers × {} heads",
                self.layers, self.heads
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
        let row_labels: Vec<String> = (0..self.layers).map(|l| format!("L{l}")).collect();
        let col_labels: Vec<String> = (0..self.heads).map(|h| format!("H{h}")).collect();
        let panels: [(&str, f64, Stat); 3] = [
            ("entropy (nats)", self.max_entropy, |s| s.entropy),
            ("→ previous token", 1.0, |s| s.prev_token),
            ("→ first token", 1.0, |s| s.first_token),
        ];
        for (p, (name, vmax, f)) in panels.iter().enumerate() {
            let x = left0 + p as f64 * slot;
            svg.text(
                x + pw / 2.0,
                top - 16.0,
                name,
                13.0,
                Anchor::Middle,
                "#222222",
                0.0,
                "panel-title",
            );
            let value = |i: usize, j: usize| Some(f(&self.stats[i * self.heads + j]));
            let tip = |i: usize, j: usize, v: f64| format!("layer {i} head {j}: {name} {v:.3}");
            let text = |v: f64| format!("{v:.2}");
            Panel {
                x,
                y: top,
                w: pw,
                h: ph,
                rows: self.layers,
                cols: self.heads,
                value: &value,
                vmin: 0.0,
                vmax: *vmax,
                row_labels: Some(&row_labels),
                col_labels: Some(&col_labels),
                label_size: 10.0,
                cell_text: Some(&text),
                tooltip: Some(&tip),
                class: "cells",
            }
            .draw(&mut svg);
            colour_bar(
                &mut svg,
                x + pw + 10.0,
                top,
                10.0,
                ph.min(200.0),
                0.0,
                *vmax,
                "",
            );
        }
        Ok(svg.finish_drawing())
    }

    fn alt_text(&self) -> String {
        let top = |f: fn(&HeadStats) -> f64| {
            self.stats
                .iter()
                .max_by(|a, b| f(a).total_cmp(&f(b)))
                .map(|s| format!("L{} H{} ({})", s.layer, s.head, short_num(f(s))))
                .unwrap_or_default()
        };
        format!(
            "Overview of {} layers × {} heads: entropy (max ln n = {:.2}), mean attention to the previous token and to the first token. Strongest previous-token head: {}; strongest first-token head: {}; most spread head: {}.",
            self.layers,
            self.heads,
            self.max_entropy,
            top(|s| s.prev_token),
            top(|s| s.first_token),
            top(|s| s.entropy)
        )
    }
}
