//! Colours, token labels and text measurement shared by every chart. Kept apart from drawing so
//! the rules a reader sees (what `Ġ` turns into, how dark 0.8 is) live in one place.

/// matplotlib's sequential "Blues" stops: luminance falls monotonically, so a darker cell always
/// means a larger value, in colour and in grey print alike.
const BLUES: [(u8, u8, u8); 9] = [
    (0xf7, 0xfb, 0xff),
    (0xde, 0xeb, 0xf7),
    (0xc6, 0xdb, 0xef),
    (0x9e, 0xca, 0xe1),
    (0x6b, 0xae, 0xd6),
    (0x42, 0x92, 0xc6),
    (0x21, 0x71, 0xb5),
    (0x08, 0x51, 0x9c),
    (0x08, 0x30, 0x6b),
];

/// Colour of `t` in `[0, 1]` (clamped; NaN is treated as 0) on the Blues scale.
pub(crate) fn blues(t: f64) -> (u8, u8, u8) {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (BLUES.len() - 1) as f64;
    let i = (x.floor() as usize).min(BLUES.len() - 2);
    let f = x - i as f64;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `#rrggbb`.
pub(crate) fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Relative luminance (0 black … 1 white), used by tests and to pick white or black cell text.
pub fn luminance(hex_colour: &str) -> Option<f64> {
    let h = hex_colour.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let c = |i: usize| {
        u8::from_str_radix(&h[i..i + 2], 16)
            .ok()
            .map(|v| v as f64 / 255.0)
    };
    Some(0.2126 * c(0)? + 0.7152 * c(2)? + 0.0722 * c(4)?)
}

/// Text colour readable on `fill`.
pub(crate) fn ink_on(fill: (u8, u8, u8)) -> &'static str {
    let l = luminance(&hex(fill)).unwrap_or(1.0);
    if l < 0.5 { "#ffffff" } else { "#111111" }
}

/// Ten distinct line colours (Tableau 10), one per run.
pub(crate) const PALETTE: [(u8, u8, u8); 10] = [
    (0x1f, 0x77, 0xb4),
    (0xff, 0x7f, 0x0e),
    (0x2c, 0xa0, 0x2c),
    (0xd6, 0x27, 0x28),
    (0x94, 0x67, 0xbd),
    (0x8c, 0x56, 0x4b),
    (0xe3, 0x77, 0xc2),
    (0x7f, 0x7f, 0x7f),
    (0xbc, 0xbd, 0x22),
    (0x17, 0xbe, 0xcf),
];

/// A token as a reader should see it: byte-level BPE's `Ġ` (space) becomes `␣`, `Ċ` (newline)
/// `↵`, `ĉ` (tab) `⇥`, SentencePiece's `▁` `␣`; a real space, newline or tab likewise (a
/// character-level vocabulary); then cut to `max_chars` with `…` so one long token cannot push
/// the plot off the page.
pub fn token_label(token: &str, max_chars: usize) -> String {
    let shown: String = token
        .chars()
        .map(|c| match c {
            'Ġ' | '▁' | ' ' => '␣',
            'Ċ' | '\n' => '↵',
            'ĉ' | '\t' => '⇥',
            'č' | '\r' => '⏎',
            c if c.is_control() => '·',
            c => c,
        })
        .collect();
    if shown.is_empty() {
        return "∅".into();
    }
    crate::display::truncate(&shown, max_chars.max(2))
}

pub(crate) use crate::display::escape_xml as xml;

/// Width in pixels of `s` in DejaVu Sans at `size` px, from coarse per-character classes (within
/// about 10%): enough to size margins so labels are never clipped, without shaping text.
pub(crate) fn text_width(s: &str, size: f64) -> f64 {
    s.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'I' => 0.32,
            ' ' | 'f' | 't' | 'r' | '(' | ')' | '[' | ']' => 0.4,
            'm' | 'w' | 'M' | 'W' | '…' => 0.92,
            c if c.is_uppercase() => 0.72,
            c if c.is_ascii() => 0.6,
            _ => 0.8,
        })
        .sum::<f64>()
        * size
}

/// A number in at most ~4 significant digits, without trailing noise (`0.25`, `1.2e-4`, `3000`).
pub(crate) fn short_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// About `n` round ticks inside `range` (1, 2 or 5 times a power of ten apart, as plotters
/// cuts its axes) and the decimals that write every one of them exactly.
pub(crate) fn nice_ticks(range: std::ops::Range<f64>, n: usize) -> (Vec<f64>, usize) {
    use plotters::coord::ranged1d::Ranged;
    use plotters::coord::types::RangedCoordf64;
    if !(range.start.is_finite() && range.end.is_finite()) || range.end <= range.start {
        return (vec![range.start], 0);
    }
    let ticks = RangedCoordf64::from(range).key_points(n);
    let decimals = ticks
        .iter()
        .map(|&v| {
            (0..=6)
                .find(|&d| {
                    let f = 10f64.powi(d as i32);
                    ((v * f).round() / f - v).abs() <= 1e-9 * v.abs().max(1.0)
                })
                .unwrap_or(6)
        })
        .max()
        .unwrap_or(0);
    (ticks, decimals)
}

/// The decimals that write every tick of `range` (cut into about `n` ticks as plotters cuts
/// it) exactly, so one axis has one format: 0.5, 1.0, 1.5 rather than 0.5, 1, 1.5.
pub(crate) fn tick_decimals(range: std::ops::Range<f64>, n: usize) -> usize {
    nice_ticks(range, n).1
}

/// `v` with `decimals` decimals, `-0` written `0`; large or tiny values in `short_num`'s way.
pub(crate) fn tick_label(v: f64, decimals: usize) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || decimals > 4) {
        return short_num(v);
    }
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}
