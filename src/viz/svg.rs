//! A small SVG writer for the charts drawn cell by cell (heatmaps, matrices, token text).
//! plotters draws the line charts; here every cell is one `<rect>` inside a `<g class=…>` group
//! with a `<title>` tooltip, which plotters' backend cannot express, and which is what lets a
//! test (or a reader's browser) find the cells and their values.
use std::fmt::Write;

use super::style::xml;

/// The font the charts ask for; the PNG renderer embeds it, so output never depends on the
/// machine's fonts (`sans-serif` is the fallback for browsers without it).
pub(crate) const FONT: &str = "DejaVu Sans, sans-serif";

/// Horizontal anchor of a text.
#[derive(Clone, Copy)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// What a drawing is for. An SVG keeps one `<rect>` per run of cells, which a reader (or a test)
/// can inspect; a PNG of a large matrix instead paints its cells as one bitmap, because resvg
/// would otherwise parse and fill hundreds of thousands of rectangles (seconds for 512 × 512).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Svg,
    Png,
}

/// A block of cells painted as pixels, one per cell, stretched over `w × h` at `(x, y)`;
/// `rgba` is premultiplied RGBA, row by row (transparent where the SVG draws something itself).
// Read only by the PNG renderer, which the lean (no `png`) build leaves out.
#[cfg_attr(not(feature = "png"), allow(dead_code))]
pub(crate) struct Raster {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub cols: u32,
    pub rows: u32,
    pub rgba: Vec<u8>,
}

/// A finished picture: the SVG, and for a PNG the bitmaps painted beneath it.
pub(crate) struct Drawing {
    pub svg: String,
    #[cfg_attr(not(feature = "png"), allow(dead_code))]
    pub rasters: Vec<Raster>,
}

impl From<String> for Drawing {
    fn from(svg: String) -> Self {
        Drawing {
            svg,
            rasters: Vec::new(),
        }
    }
}

pub(crate) struct Svg {
    buf: String,
    target: Target,
    rasters: Vec<Raster>,
}

impl Svg {
    /// A `width × height` picture on a white background.
    pub(crate) fn new(width: u32, height: u32) -> Self {
        Self::for_target(width, height, Target::Svg)
    }

    /// A picture drawn for `target`. A PNG's background is the white canvas the rasteriser
    /// starts from, so its SVG has no background rectangle (which would hide the bitmaps).
    pub(crate) fn for_target(width: u32, height: u32, target: Target) -> Self {
        let mut buf = String::with_capacity(4096);
        let _ = write!(
            buf,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}"><defs><pattern id="mt-masked" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f4f4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c4c4c4" stroke-width="2"/></pattern></defs>"##
        );
        if target == Target::Svg {
            let _ = write!(
                buf,
                r##"<rect width="{width}" height="{height}" fill="#ffffff"/>"##
            );
        }
        Svg {
            buf,
            target,
            rasters: Vec::new(),
        }
    }

    pub(crate) fn target(&self) -> Target {
        self.target
    }

    /// Paints `raster` beneath everything this SVG draws (PNG target only).
    pub(crate) fn raster(&mut self, raster: Raster) {
        debug_assert_eq!(self.target, Target::Png);
        self.rasters.push(raster);
    }

    /// A path (`d` in SVG path syntax) filled with `fill`; `extra` as for [`Svg::rect`].
    pub(crate) fn path(&mut self, d: &str, fill: &str, extra: &str) {
        let _ = write!(
            self.buf,
            r#"<path d="{d}" fill="{fill}"{sp}{extra}/>"#,
            sp = if extra.is_empty() { "" } else { " " }
        );
    }

    /// A rectangle; `extra` is raw attribute text (already escaped) such as `data-v="0.2"`.
    pub(crate) fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str) {
        let _ = write!(
            self.buf,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{fill}"{sp}{extra}/>"#,
            sp = if extra.is_empty() { "" } else { " " }
        );
    }

    /// A rectangle with a hover tooltip.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rect_titled(
        &mut self,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: &str,
        extra: &str,
        title: &str,
    ) {
        let _ = write!(
            self.buf,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{fill}"{sp}{extra}><title>{t}</title></rect>"#,
            sp = if extra.is_empty() { "" } else { " " },
            t = xml(title)
        );
    }

    /// An outline rectangle.
    pub(crate) fn frame(&mut self, x: f64, y: f64, w: f64, h: f64, stroke: &str) {
        let _ = write!(
            self.buf,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="none" stroke="{stroke}" stroke-width="1"/>"#
        );
    }

    pub(crate) fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) {
        let _ = write!(
            self.buf,
            r#"<line x1="{x1:.2}" y1="{y1:.2}" x2="{x2:.2}" y2="{y2:.2}" stroke="{stroke}" stroke-width="1"/>"#
        );
    }

    /// Text whose vertical centre is at `y`, optionally rotated by `rotate` degrees about `(x, y)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn text(
        &mut self,
        x: f64,
        y: f64,
        s: &str,
        size: f64,
        anchor: Anchor,
        fill: &str,
        rotate: f64,
        class: &str,
    ) {
        let tr = if rotate != 0.0 {
            format!(r#" transform="rotate({rotate} {x:.2} {y:.2})""#)
        } else {
            String::new()
        };
        let cl = if class.is_empty() {
            String::new()
        } else {
            format!(r#" class="{class}""#)
        };
        let _ = write!(
            self.buf,
            r#"<text x="{x:.2}" y="{y:.2}" dy="0.35em" font-size="{size}" text-anchor="{a}" fill="{fill}"{tr}{cl}>{t}</text>"#,
            a = anchor.as_str(),
            t = xml(s)
        );
    }

    /// Opens `<g …>` with raw attributes.
    pub(crate) fn group(&mut self, attrs: &str) {
        let _ = write!(self.buf, "<g {attrs}>");
    }

    pub(crate) fn end_group(&mut self) {
        self.buf.push_str("</g>");
    }

    /// The SVG and the bitmaps to paint beneath it.
    pub(crate) fn finish_drawing(mut self) -> Drawing {
        self.buf.push_str("</svg>");
        Drawing {
            svg: self.buf,
            rasters: self.rasters,
        }
    }
}
