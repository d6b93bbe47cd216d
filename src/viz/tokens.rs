//! Text with each token tinted by how well a model predicted it: green for probable, red for
//! surprising (or by loss), with the value in a tooltip. Inline it is HTML (text wraps like text
//! and tooltips work everywhere); saved, the same picture is an SVG or PNG.
use candle_core::{D, Tensor};

use super::chart::{ChartOptions, impl_chart_io};
use super::style::{hex, short_num, text_width, xml};
use super::svg::{Anchor, Drawing, Svg, Target};
use crate::models::AutoModelForCausalLM;
use crate::tokenizer::{EncodeOptions, Tokenizer};
use crate::{Error, Result};

/// What the numbers are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScoreKind {
    /// Probability of the token, 0..1: high is green.
    Probability,
    /// Loss (negative log-probability, nats) up to `max`: high is red.
    Loss { max: f64 },
}

/// Tokens with a score each (`None`: not scored, e.g. the first token of a causal LM).
///
/// ```
/// use massivetext::prelude::*;
/// let t = TokenScores::probabilities(&["The", "Ġcat"], &[None, Some(0.25)])?;
/// assert!(t.to_html().contains("p = 0.25"));
/// # Ok::<(), massivetext::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TokenScores {
    tokens: Vec<String>,
    values: Vec<Option<f64>>,
    kind: ScoreKind,
    opts: ChartOptions,
}

impl_chart_io!(TokenScores);

/// Height of the colour key under the text (px).
const KEY_HEIGHT: f64 = 56.0;

/// One token's box in the drawing: token index, x, y, width, text shown.
type TokenBox = (usize, f64, f64, f64, String);

/// Red (0) → amber (0.5) → green (1), light enough for black text on top.
fn tint(t: f64) -> (u8, u8, u8) {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let stops = [(0xf4, 0x9a, 0x9a), (0xfb, 0xe3, 0x8e), (0xa6, 0xdd, 0xa0)];
    let (a, b, f) = if t < 0.5 {
        (stops[0], stops[1], t * 2.0)
    } else {
        (stops[1], stops[2], t * 2.0 - 1.0)
    };
    let m = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    (m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

/// A token as running text: byte-level markers back to spaces and newlines.
fn surface(token: &str) -> String {
    let t = token.strip_prefix("##").unwrap_or(token);
    t.chars()
        .map(|c| match c {
            'Ġ' | '▁' => ' ',
            'Ċ' => '\n',
            'ĉ' => '\t',
            c => c,
        })
        .collect()
}

impl TokenScores {
    fn build<S: AsRef<str>>(tokens: &[S], values: &[Option<f64>], kind: ScoreKind) -> Result<Self> {
        if tokens.len() != values.len() {
            return Err(Error::InvalidArgument(format!(
                "{} tokens but {} scores; give one score (or None) per token",
                tokens.len(),
                values.len()
            )));
        }
        Ok(TokenScores {
            tokens: tokens.iter().map(|s| s.as_ref().to_string()).collect(),
            values: values.to_vec(),
            kind,
            opts: ChartOptions::new(720, 240),
        })
    }

    /// Tokens with their probabilities (0..1).
    pub fn probabilities<S: AsRef<str>>(tokens: &[S], probs: &[Option<f64>]) -> Result<Self> {
        Self::build(tokens, probs, ScoreKind::Probability)
    }

    /// Tokens with their losses in nats; the colour saturates at the largest loss given.
    pub fn losses<S: AsRef<str>>(tokens: &[S], losses: &[Option<f64>]) -> Result<Self> {
        let max = losses
            .iter()
            .flatten()
            .copied()
            .fold(0.0, f64::max)
            .max(1e-9);
        Self::build(tokens, losses, ScoreKind::Loss { max })
    }

    /// Scores `text` with a causal LM: each token's probability given the tokens before it.
    pub fn from_model(model: &AutoModelForCausalLM, tok: &Tokenizer, text: &str) -> Result<Self> {
        let enc = tok.encode_with(text, &EncodeOptions::default())?;
        if enc.ids.is_empty() {
            return Err(Error::InvalidArgument(
                "the text has no tokens to score".into(),
            ));
        }
        let ids = Tensor::from_slice(&enc.ids, (1, enc.ids.len()), model.device())?;
        let logits = model.forward(&ids, None)?.logits;
        let logp = candle_nn::ops::log_softmax(
            &logits.squeeze(0)?.to_dtype(candle_core::DType::F32)?,
            D::Minus1,
        )?
        .to_device(&candle_core::Device::Cpu)?
        .to_vec2::<f32>()?;
        let mut probs = vec![None];
        for t in 1..enc.ids.len() {
            probs.push(Some((logp[t - 1][enc.ids[t] as usize] as f64).exp()));
        }
        Self::probabilities(&enc.tokens, &probs)
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
    pub fn values(&self) -> &[Option<f64>] {
        &self.values
    }

    fn colour_of(&self, v: f64) -> (u8, u8, u8) {
        match self.kind {
            ScoreKind::Probability => tint(v),
            ScoreKind::Loss { max } => tint(1.0 - v / max),
        }
    }

    fn tip(&self, v: Option<f64>) -> String {
        match (v, self.kind) {
            (None, _) => "not scored".into(),
            (Some(v), ScoreKind::Probability) => format!("p = {}", short_num(v)),
            (Some(v), ScoreKind::Loss { .. }) => format!("loss = {} nats", short_num(v)),
        }
    }

    /// Inline HTML: one `<span>` per token with its tint and a tooltip.
    pub fn to_html(&self) -> String {
        let mut s = String::from(
            r#"<div style="font-family:DejaVu Sans Mono,monospace;line-height:1.9;white-space:pre-wrap">"#,
        );
        if let Some(t) = &self.opts.title {
            s += &format!("<div><b>{}</b></div>", xml(t));
        }
        for (t, v) in self.tokens.iter().zip(&self.values) {
            let bg = v.map_or("#f0f0f0".to_string(), |v| hex(self.colour_of(v)));
            s += &format!(
                r#"<span style="background:{bg};border-radius:3px" title="{} · {}">{}</span>"#,
                xml(&t.replace('Ġ', "␣")),
                self.tip(*v),
                xml(&surface(t)).replace('\n', "↵\n")
            );
        }
        s += "</div>";
        s
    }

    fn render(&self, _target: Target) -> Result<Drawing> {
        let w = self.opts.width as f64;
        let pad = 12.0;
        let top = if self.opts.title.is_some() { 36.0 } else { pad };
        // The largest font (15 px down to 10) at which the text fits the chart's height; below
        // 10 px the drawing grows instead, so no text is ever cut.
        let layout = |size: f64| self.layout(size, pad, top, w);
        let mut size = 15.0;
        let (mut boxes, mut bottom) = layout(size);
        while bottom + KEY_HEIGHT > self.opts.height as f64 - pad && size > 10.0 {
            size -= 1.0;
            (boxes, bottom) = layout(size);
        }
        let height = (bottom + KEY_HEIGHT + pad).ceil() as u32;
        let mut svg = Svg::new(self.opts.width, height);
        if let Some(t) = &self.opts.title {
            svg.text(
                w / 2.0,
                18.0,
                t,
                15.0,
                Anchor::Middle,
                "#111111",
                0.0,
                "title",
            );
        }
        svg.group(r#"class="tokens""#);
        for (i, x, y, tw, shown) in boxes {
            let v = self.values[i];
            let fill = v.map_or("#f0f0f0".to_string(), |v| hex(self.colour_of(v)));
            let extra = v.map_or(String::new(), |v| format!(r#"data-v="{}""#, short_num(v)));
            svg.rect_titled(x, y, tw, size * 1.45, &fill, &extra, &self.tip(v));
            svg.text(
                x,
                y + size * 0.72,
                &shown.replace(' ', "\u{a0}"),
                size,
                Anchor::Start,
                "#111111",
                0.0,
                "",
            );
        }
        svg.end_group();
        self.draw_key(&mut svg, pad, bottom + 10.0);
        Ok(svg.finish_drawing())
    }

    /// Boxes `(token, x, y, width, text)` for a font of `size` px, wrapped at word boundaries
    /// (a word: a token that starts with a space or a line, and the tokens that continue it),
    /// token by token only inside a word wider than a line; and the bottom of the text.
    fn layout(&self, size: f64, pad: f64, top: f64, w: f64) -> (Vec<TokenBox>, f64) {
        let lh = size * 1.7;
        // pieces: (token, text, starts a word, ends its line)
        let mut pieces: Vec<(usize, String, bool, bool)> = Vec::new();
        let mut after_break = true;
        for (i, t) in self.tokens.iter().enumerate() {
            let s = surface(t);
            let parts: Vec<&str> = s.split('\n').collect();
            for (k, part) in parts.iter().enumerate() {
                let last = k + 1 == parts.len();
                let shown = if !last {
                    format!("{part}↵")
                } else {
                    part.to_string()
                };
                if shown.is_empty() {
                    after_break = true;
                    continue;
                }
                let starts = after_break || k > 0 || shown.starts_with([' ', '\t']);
                pieces.push((i, shown, starts, !last));
                after_break = !last;
            }
        }
        let width = |t: &str| text_width(t, size).max(size * 0.4);
        let mut out = Vec::new();
        let (mut x, mut y) = (pad, top);
        let mut k = 0;
        while k < pieces.len() {
            // the word: this piece and those that continue it on the same line
            let mut end = k + 1;
            while end < pieces.len() && !pieces[end].2 && !pieces[end - 1].3 {
                end += 1;
            }
            let word_w: f64 = pieces[k..end].iter().map(|p| width(&p.1)).sum();
            if x + word_w > w - pad && x > pad && word_w <= w - 2.0 * pad {
                x = pad;
                y += lh;
            }
            for (i, shown, _, breaks) in &pieces[k..end] {
                let tw = width(shown);
                if x + tw > w - pad && x > pad {
                    x = pad;
                    y += lh;
                }
                out.push((*i, x, y, tw, shown.clone()));
                x += tw;
                if *breaks {
                    x = pad;
                    y += lh;
                }
            }
            k = end;
        }
        (out, y + lh)
    }

    /// The colour key under the text: the scale from red to green with its two ends named.
    fn draw_key(&self, svg: &mut Svg, x: f64, y: f64) {
        let (lo, hi, what) = match self.kind {
            ScoreKind::Probability => ("0".to_string(), "1".to_string(), "probability"),
            ScoreKind::Loss { max } => {
                (format!("{} nats", short_num(max)), "0".to_string(), "loss")
            }
        };
        let steps = 24;
        let bar = 192.0;
        for s in 0..steps {
            let t = s as f64 / (steps - 1) as f64;
            let fill = hex(tint(t));
            svg.rect(
                x + bar * s as f64 / steps as f64,
                y,
                bar / steps as f64 + 0.5,
                12.0,
                &fill,
                "",
            );
        }
        svg.frame(x, y, bar, 12.0, "#999999");
        svg.text(x, y + 24.0, &lo, 11.0, Anchor::Start, "#333333", 0.0, "");
        svg.text(
            x + bar,
            y + 24.0,
            &hi,
            11.0,
            Anchor::End,
            "#333333",
            0.0,
            "",
        );
        svg.text(
            x + bar / 2.0,
            y + 24.0,
            what,
            11.0,
            Anchor::Middle,
            "#333333",
            0.0,
            "",
        );
        svg.text(
            x,
            y + 40.0,
            "red: surprising · green: expected · grey: not scored",
            11.0,
            Anchor::Start,
            "#333333",
            0.0,
            "",
        );
    }

    fn alt_text(&self) -> String {
        let scored: Vec<f64> = self.values.iter().flatten().copied().collect();
        let mean = scored.iter().sum::<f64>() / scored.len().max(1) as f64;
        let text: String = self.tokens.iter().map(|t| surface(t)).collect();
        format!(
            "{} tokens coloured by {} (green = {}), mean {}: {}",
            self.tokens.len(),
            match self.kind {
                ScoreKind::Probability => "probability",
                ScoreKind::Loss { .. } => "loss",
            },
            match self.kind {
                ScoreKind::Probability => "probable",
                ScoreKind::Loss { .. } => "low loss",
            },
            short_num(mean),
            crate::display::truncate(&text, 200)
        )
    }

    /// What [`evcxr_display`](Self::evcxr_display) prints: a `text/html` block (tokens
    /// with tooltips) and a `text/plain` description.
    pub fn to_evcxr(&self) -> String {
        super::chart::block("text/html", &self.to_html())
            + &super::chart::block("text/plain", &self.alt_text())
    }

    /// Renders inline in evcxr (the last expression of a cell).
    pub fn evcxr_display(&self) {
        print!("{}", self.to_evcxr());
    }
}
