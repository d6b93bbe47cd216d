//! What every chart shares: size and title options, inline display in evcxr (SVG plus a
//! text/plain description), and saving as SVG or PNG. PNG goes through resvg with DejaVu Sans
//! embedded in the crate, so a PNG looks the same on every machine and needs no system fonts.
use std::path::Path;
#[cfg(feature = "png")]
use std::sync::{Arc, OnceLock};

#[cfg(feature = "png")]
use resvg::{tiny_skia, usvg};

use super::svg::Drawing;
#[cfg(feature = "png")]
use super::svg::Raster;
use crate::{Error, Result};

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/DejaVuSans-LICENSE.txt`): covers the marks
/// used for byte-level tokens (`␣`, `↵`, `…`) as well as Latin, Greek and Cyrillic text.
#[cfg(feature = "png")]
static FONT_DATA: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Size and title of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartOptions {
    pub width: u32,
    pub height: u32,
    pub title: Option<String>,
}

impl ChartOptions {
    pub(crate) fn new(width: u32, height: u32) -> Self {
        ChartOptions {
            width,
            height,
            title: None,
        }
    }

    /// Refuses sizes a renderer cannot draw (zero, or large enough to exhaust memory as a PNG).
    pub(crate) fn check(&self) -> Result<()> {
        if self.width < 16 || self.height < 16 || self.width > 16_384 || self.height > 16_384 {
            return Err(Error::InvalidArgument(format!(
                "a chart of {}×{} px cannot be drawn; give width and height between 16 and 16384",
                self.width, self.height
            )));
        }
        Ok(())
    }
}

#[cfg(feature = "png")]
fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT_DATA.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    })
    .clone()
}

/// Rasterises an SVG to PNG bytes at its own size (1 SVG unit = 1 pixel).
#[cfg(feature = "png")]
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>> {
    render_png(svg, Vec::new())
}

/// A drawing as PNG bytes: the bitmaps first, then the SVG on top of them.
#[cfg(feature = "png")]
pub(crate) fn drawing_to_png(drawing: Drawing) -> Result<Vec<u8>> {
    render_png(&drawing.svg, drawing.rasters)
}

#[cfg(feature = "png")]
fn render_png(svg: &str, rasters: Vec<Raster>) -> Result<Vec<u8>> {
    let opt = usvg::Options {
        font_family: "DejaVu Sans".into(),
        fontdb: fontdb(),
        ..Default::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt)
        .map_err(|e| Error::InvalidArgument(format!("cannot parse the chart's SVG: {e}")))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "cannot allocate a {}×{} image",
            size.width(),
            size.height()
        ))
    })?;
    pixmap.fill(tiny_skia::Color::WHITE);
    for r in rasters {
        paint_raster(&mut pixmap, r)?;
    }
    resvg::render(
        &tree,
        tiny_skia::Transform::identity(),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| Error::InvalidArgument(format!("cannot encode the chart as PNG: {e}")))
}

/// Stretches a one-pixel-per-cell bitmap over its place. Cells at least a pixel wide keep hard
/// edges (nearest neighbour); smaller cells are averaged (bilinear), as an antialiased rectangle
/// per cell would be.
#[cfg(feature = "png")]
fn paint_raster(pixmap: &mut tiny_skia::Pixmap, r: Raster) -> Result<()> {
    let size = tiny_skia::IntSize::from_wh(r.cols, r.rows);
    let cells = size
        .and_then(|size| tiny_skia::Pixmap::from_vec(r.rgba, size))
        .ok_or_else(|| {
            Error::InvalidArgument(format!("cannot build a {}×{} cell bitmap", r.cols, r.rows))
        })?;
    let (sx, sy) = (r.w / r.cols as f64, r.h / r.rows as f64);
    let quality = if sx >= 1.0 && sy >= 1.0 {
        tiny_skia::FilterQuality::Nearest
    } else {
        tiny_skia::FilterQuality::Bilinear
    };
    let paint = tiny_skia::PixmapPaint {
        quality,
        ..Default::default()
    };
    let at = tiny_skia::Transform::from_row(sx as f32, 0.0, 0.0, sy as f32, r.x as f32, r.y as f32);
    pixmap.draw_pixmap(0, 0, cells.as_ref(), &paint, at, None);
    Ok(())
}

/// Without the `png` feature (a notebook's lean build), PNG output is refused with what to do.
#[cfg(not(feature = "png"))]
pub fn svg_to_png(_svg: &str) -> Result<Vec<u8>> {
    Err(Error::Unsupported(
        "saving a chart as PNG needs massivetext's `png` feature, which this build leaves out \
         (as in the notebooks' `massivetext-notebook`): add `features = [\"png\"]` to \
         the `:dep` line, or save as SVG"
            .into(),
    ))
}

/// Without the `png` feature, as [`svg_to_png`].
#[cfg(not(feature = "png"))]
pub(crate) fn drawing_to_png(drawing: Drawing) -> Result<Vec<u8>> {
    svg_to_png(&drawing.svg)
}

/// Writes a chart file through [`crate::io::write_atomic`], once `path` names a file.
pub(crate) fn save_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.file_name().is_none_or(|n| n.is_empty()) {
        return Err(Error::InvalidArgument(format!(
            "cannot save a chart to `{}`: give a file name such as chart.svg",
            path.display()
        )));
    }
    crate::io::write_atomic(path, bytes)
}

pub(crate) use crate::display::block;

/// The evcxr blocks of a chart: the picture as `image/svg+xml` and a description as
/// `text/plain` (what a screen reader, a terminal or a notebook diff shows). A drawing error is
/// shown as text rather than lost: `evcxr_display` cannot return it.
pub(crate) fn svg_blocks(svg: Result<String>, alt: &str) -> String {
    match svg {
        Ok(svg) => block("image/svg+xml", &svg) + &block("text/plain", alt),
        Err(e) => block("text/plain", &format!("cannot draw the chart: {e}")),
    }
}

/// Adds the common builder and output methods to a chart type that has `opts: ChartOptions`,
/// `fn render(&self, target: svg::Target) -> Result<svg::Drawing>` and
/// `fn alt_text(&self) -> String`.
macro_rules! impl_chart_io {
    ($t:ty) => {
        impl $t {
            /// Width of the picture in pixels.
            pub fn width(mut self, px: u32) -> Self {
                self.opts.width = px;
                self
            }
            /// Height of the picture in pixels.
            pub fn height(mut self, px: u32) -> Self {
                self.opts.height = px;
                self
            }
            /// Title drawn above the chart.
            pub fn title(mut self, title: impl Into<String>) -> Self {
                self.opts.title = Some(title.into());
                self
            }
            /// The chart as an SVG document.
            pub fn to_svg(&self) -> $crate::Result<String> {
                self.opts.check()?;
                Ok(self.render(super::svg::Target::Svg)?.svg)
            }
            /// The chart as PNG bytes, `width × height` pixels.
            pub fn to_png(&self) -> $crate::Result<Vec<u8>> {
                self.opts.check()?;
                super::chart::drawing_to_png(self.render(super::svg::Target::Png)?)
            }
            /// Writes the SVG (atomically, as every file of the crate).
            pub fn save(&self, path: impl AsRef<std::path::Path>) -> $crate::Result<()> {
                super::chart::save_file(path.as_ref(), self.to_svg()?.as_bytes())
            }
            /// Writes a PNG rendered with the embedded font (atomically).
            pub fn save_png(&self, path: impl AsRef<std::path::Path>) -> $crate::Result<()> {
                super::chart::save_file(path.as_ref(), &self.to_png()?)
            }
            /// A one-paragraph description of what the chart shows.
            pub fn describe(&self) -> String {
                self.alt_text()
            }
        }
    };
}
pub(crate) use impl_chart_io;

/// [`impl_chart_io`] plus `evcxr_display` showing the SVG.
macro_rules! impl_chart {
    ($t:ty) => {
        super::chart::impl_chart_io!($t);
        impl $t {
            /// What [`evcxr_display`](Self::evcxr_display) prints: an `image/svg+xml` block
            /// and a `text/plain` description.
            pub fn to_evcxr(&self) -> String {
                super::chart::svg_blocks(self.to_svg(), &self.alt_text())
            }
            /// Renders inline in evcxr (the last expression of a cell).
            pub fn evcxr_display(&self) {
                print!("{}", self.to_evcxr());
            }
        }
    };
}
pub(crate) use impl_chart;
