//! Draws one matrix of values as coloured cells (attention heads, confusion matrices, the head
//! overview) with row and column labels, and a colour bar. Cells of one row that share a colour
//! are merged into one `<rect>` (`data-n` says how many), which keeps a 512 × 512 map small
//! because most attention is near zero; masked cells (`None`) are drawn hatched, so the causal
//! triangle of a decoder is visibly "not allowed" rather than "zero".
use std::fmt::Write;

use super::style::{blues, hex, ink_on, nice_ticks, short_num, text_width, tick_label};
use super::svg::{Anchor, Raster, Svg, Target};

/// Cells beyond this count get no per-cell tooltip, which would multiply the SVG's size.
pub(crate) const MAX_TOOLTIP_CELLS: usize = 4096;

/// Where and what to draw.
pub(crate) struct Panel<'a> {
    /// Top-left corner and size of the cell area.
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub rows: usize,
    pub cols: usize,
    /// The value of a cell; `None` for a masked cell.
    pub value: &'a dyn Fn(usize, usize) -> Option<f64>,
    /// The values mapped to the lightest and the darkest colour.
    pub vmin: f64,
    pub vmax: f64,
    pub row_labels: Option<&'a [String]>,
    pub col_labels: Option<&'a [String]>,
    pub label_size: f64,
    /// Print each value in its cell (for small matrices).
    pub cell_text: Option<&'a dyn Fn(f64) -> String>,
    /// Tooltip of a cell (row, column, value).
    pub tooltip: Option<&'a dyn Fn(usize, usize, f64) -> String>,
    /// Class of the `<g>` that holds the cells (`cells` for an attention head).
    pub class: &'a str,
}

impl Panel<'_> {
    fn norm(&self, v: f64) -> f64 {
        let span = self.vmax - self.vmin;
        if span > 0.0 {
            (v - self.vmin) / span
        } else {
            0.0
        }
    }

    pub(crate) fn draw(&self, svg: &mut Svg) {
        let cw = self.w / self.cols.max(1) as f64;
        let ch = self.h / self.rows.max(1) as f64;
        let tooltips = self.rows * self.cols <= MAX_TOOLTIP_CELLS;
        svg.group(&format!(
            r#"class="{}" data-rows="{}" data-cols="{}""#,
            self.class, self.rows, self.cols
        ));
        let mut masked: Vec<(usize, usize, usize)> = Vec::new();
        let raster = svg.target() == Target::Png
            && self.cell_text.is_none()
            && self.rows * self.cols > MAX_TOOLTIP_CELLS;
        if raster {
            self.paint_cells(svg, &mut masked);
        }
        let painted_rows = if raster { 0 } else { self.rows };
        for r in 0..painted_rows {
            let y = self.y + r as f64 * ch;
            let mut c = 0;
            while c < self.cols {
                match (self.value)(r, c) {
                    None => {
                        let start = c;
                        while c < self.cols && (self.value)(r, c).is_none() {
                            c += 1;
                        }
                        masked.push((r, start, c - start));
                    }
                    Some(v) => {
                        let fill = blues(self.norm(v));
                        let start = c;
                        c += 1;
                        // Merge the run of equal colours, unless each cell needs its own
                        // tooltip or text.
                        if !(tooltips && self.tooltip.is_some()) && self.cell_text.is_none() {
                            while c < self.cols {
                                match (self.value)(r, c) {
                                    Some(u) if blues(self.norm(u)) == fill => c += 1,
                                    _ => break,
                                }
                            }
                        }
                        let n = c - start;
                        let mut extra = format!(r#"data-r="{r}" data-c="{start}""#);
                        if n > 1 {
                            let _ = write!(extra, r#" data-n="{n}""#);
                        } else {
                            let _ = write!(extra, r#" data-v="{}""#, short_num(v));
                        }
                        let x = self.x + start as f64 * cw;
                        let fill_s = hex(fill);
                        match (self.tooltip, tooltips) {
                            (Some(t), true) => svg.rect_titled(
                                x,
                                y,
                                cw * n as f64,
                                ch,
                                &fill_s,
                                &extra,
                                &t(r, start, v),
                            ),
                            _ => svg.rect(x, y, cw * n as f64, ch, &fill_s, &extra),
                        }
                        if let Some(fmt) = self.cell_text {
                            let s = fmt(v);
                            let size = (ch * 0.4).min(cw * 1.6 / s.chars().count().max(1) as f64);
                            if size >= 7.0 {
                                svg.text(
                                    x + cw / 2.0,
                                    y + ch / 2.0,
                                    &s,
                                    size.min(12.0).round(),
                                    Anchor::Middle,
                                    ink_on(fill),
                                    0.0,
                                    "value",
                                );
                            }
                        }
                    }
                }
            }
        }
        svg.end_group();
        if raster && !masked.is_empty() {
            // One path for all masked runs: one pattern fill instead of one per row.
            let mut d = String::new();
            for &(r, c, n) in &masked {
                let _ = write!(
                    d,
                    "M{:.2} {:.2}h{:.2}v{:.2}h{:.2}z",
                    self.x + c as f64 * cw,
                    self.y + r as f64 * ch,
                    cw * n as f64,
                    ch,
                    -cw * n as f64
                );
            }
            svg.path(&d, "url(#mt-masked)", r#"class="masked""#);
        } else if !masked.is_empty() {
            svg.group(r#"class="masked""#);
            for (r, c, n) in masked {
                svg.rect(
                    self.x + c as f64 * cw,
                    self.y + r as f64 * ch,
                    cw * n as f64,
                    ch,
                    "url(#mt-masked)",
                    &format!(r#"data-r="{r}" data-c="{c}" data-n="{n}""#),
                );
            }
            svg.end_group();
        }
        svg.frame(self.x, self.y, self.w, self.h, "#999999");
        let size = self.label_size;
        if let Some(labels) = self.row_labels {
            let stride = label_stride(ch, size);
            svg.group(r#"class="row-labels""#);
            for (r, l) in labels.iter().enumerate().take(self.rows).step_by(stride) {
                svg.text(
                    self.x - 4.0,
                    self.y + (r as f64 + 0.5) * ch,
                    l,
                    size,
                    Anchor::End,
                    "#222222",
                    0.0,
                    "",
                );
            }
            svg.end_group();
        }
        if let Some(labels) = self.col_labels {
            let stride = label_stride(cw, size);
            svg.group(r#"class="col-labels""#);
            for (c, l) in labels.iter().enumerate().take(self.cols).step_by(stride) {
                let x = self.x + (c as f64 + 0.5) * cw;
                svg.text(
                    x,
                    self.y + self.h + 4.0,
                    l,
                    size,
                    Anchor::End,
                    "#222222",
                    -90.0,
                    "",
                );
            }
            svg.end_group();
        }
    }
}

impl Panel<'_> {
    /// The cells as a bitmap of one pixel per cell (PNG target), masked cells left transparent
    /// and collected as runs in `masked` so the SVG hatches them on top.
    fn paint_cells(&self, svg: &mut Svg, masked: &mut Vec<(usize, usize, usize)>) {
        let mut rgba = vec![0u8; self.rows * self.cols * 4];
        for r in 0..self.rows {
            let mut run: Option<usize> = None;
            for c in 0..self.cols {
                match (self.value)(r, c) {
                    Some(v) => {
                        if let Some(start) = run.take() {
                            masked.push((r, start, c - start));
                        }
                        let (red, green, blue) = blues(self.norm(v));
                        let i = (r * self.cols + c) * 4;
                        rgba[i..i + 4].copy_from_slice(&[red, green, blue, 255]);
                    }
                    None => {
                        run.get_or_insert(c);
                    }
                }
            }
            if let Some(start) = run {
                masked.push((r, start, self.cols - start));
            }
        }
        svg.raster(Raster {
            x: self.x,
            y: self.y,
            w: self.w,
            h: self.h,
            cols: self.cols as u32,
            rows: self.rows as u32,
            rgba,
        });
    }
}

/// Every `k`-th label so that labels `size` px tall never overlap on cells `cell` px apart.
pub(crate) fn label_stride(cell: f64, size: f64) -> usize {
    if cell <= 0.0 {
        return 1;
    }
    ((size * 1.05) / cell).ceil().max(1.0) as usize
}

/// Room the longest label needs, in pixels.
pub(crate) fn label_room(labels: &[String], size: f64) -> f64 {
    labels
        .iter()
        .map(|l| text_width(l, size))
        .fold(0.0, f64::max)
}

#[allow(clippy::too_many_arguments)]
/// A vertical colour bar from `vmin` (bottom, light) to `vmax` (top, dark) with round ticks.
pub(crate) fn colour_bar(
    svg: &mut Svg,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    vmin: f64,
    vmax: f64,
    label: &str,
) {
    const STEPS: usize = 48;
    svg.group(r#"class="colour-bar""#);
    let sh = h / STEPS as f64;
    for i in 0..STEPS {
        let t = (i as f64 + 0.5) / STEPS as f64;
        let yy = y + h - (i + 1) as f64 * sh;
        svg.rect(x, yy, w, sh + 0.5, &hex(blues(t)), "");
    }
    svg.frame(x, y, w, h, "#999999");
    // Round values (0, 0.5, 1.0, 1.5, 2.0), not the ends' own (an entropy bar ends at ln n).
    let (ticks, decimals) = nice_ticks(vmin..vmax, 5);
    for v in ticks {
        let t = if vmax > vmin {
            (v - vmin) / (vmax - vmin)
        } else {
            0.0
        };
        let yy = y + h - t * h;
        svg.line(x + w, yy, x + w + 4.0, yy, "#555555");
        svg.text(
            x + w + 6.0,
            yy,
            &tick_label(v, decimals),
            11.0,
            Anchor::Start,
            "#222222",
            0.0,
            "",
        );
    }
    if !label.is_empty() {
        svg.text(
            x + w + 40.0,
            y + h / 2.0,
            label,
            11.0,
            Anchor::Middle,
            "#444444",
            -90.0,
            "",
        );
    }
    svg.end_group();
}
