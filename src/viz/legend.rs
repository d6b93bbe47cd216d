//! A chart's legend in a strip of its own above the plot, so that it never covers data (a
//! legend inside the plot area hides whatever lies under its corner).
use plotters::coord::Shift;
use plotters::prelude::*;

/// How an entry's sample is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Marker {
    Line,
    Dot,
}

/// One entry: label, colour, opacity, sample.
pub(crate) type Entry = (String, RGBColor, f64, Marker);

/// The strip's height for `rows` rows.
pub(crate) fn legend_height(rows: usize) -> u32 {
    rows as u32 * 20 + 6
}

/// Legend text size (plotters' size: its SVG writes `size / 1.24` px, 11.3 here).
pub(crate) const LEGEND_FONT: u32 = 14;
/// Where the legend starts: the left edge of the plot (margin + y label area).
pub(crate) const LEGEND_LEFT: i32 = 78;

/// The legend's entries laid out left to right, wrapping to a new row at the chart's width:
/// `(row) -> [(x, entry)]`.
pub(crate) type LegendRow = Vec<(i32, Entry)>;

pub(crate) fn legend_rows(
    area: &DrawingArea<SVGBackend, Shift>,
    entries: &[Entry],
    width: u32,
) -> Vec<LegendRow> {
    let font = TextStyle::from(("sans-serif", LEGEND_FONT).into_font());
    let mut rows: Vec<LegendRow> = Vec::new();
    let mut x = LEGEND_LEFT;
    for entry in entries {
        let label = &entry.0;
        let tw = area
            .estimate_text_size(label, &font)
            .map_or(label.chars().count() as u32 * 7, |s| s.0) as i32;
        let need = 24 + tw + 18;
        if rows.is_empty() || (x + need > width as i32 - 10 && x > LEGEND_LEFT) {
            rows.push(Vec::new());
            x = LEGEND_LEFT;
        }
        if let Some(row) = rows.last_mut() {
            row.push((x, entry.clone()));
        }
        x += need;
    }
    rows
}

pub(crate) fn draw_legend(
    area: &DrawingArea<SVGBackend, Shift>,
    rows: &[LegendRow],
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    for (k, row) in rows.iter().enumerate() {
        let y = 12 + 20 * k as i32;
        for (x, (label, colour, alpha, marker)) in row {
            match marker {
                Marker::Line => area.draw(&PathElement::new(
                    vec![(*x, y), (*x + 18, y)],
                    colour.mix(*alpha).stroke_width(3),
                )),
                Marker::Dot => area.draw(&Circle::new((*x + 9, y), 5, colour.filled())),
            }
            .map_err(e)?;
            area.draw(&Text::new(
                label.clone(),
                (*x + 24, y - LEGEND_FONT as i32 / 2 - 1),
                ("sans-serif", LEGEND_FONT),
            ))
            .map_err(e)?;
        }
    }
    Ok(())
}
