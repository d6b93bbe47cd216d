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
        let (w, h) = (self.opts.width as f64, self.opts.height as f64);
        let pad = 12.0;
        let top = if self.opts.title.is_some() { 36.0 } else { pad };
        // Largest font (15 px down to 8) at which the text fits the height.
        let mut size = 15.0;
        let layout = |size: f64| {
            let mut out = Vec::new();
            let (mut x, mut y) = (pad, top);
            let lh = size * 1.7;
            for (i, t) in self.tokens.iter().enumerate() {
                for (k, part) in surface(t).split('\n').enumerate() {
                    if k > 0 {
                        x = pad;
                        y += lh;
                    }
                    let shown = if k == 0 && surface(t).contains('\n') {
                        format!("{part}↵")
                    } else {
                        part.to_string()
                    };
                    if shown.is_empty() && k > 0 {
                        continue;
                    }
                    let tw = text_width(&shown, size).max(size * 0.4);
                    if x + tw > w - pad && x > pad {
                        x = pad;
                        y += lh;
                    }
                    out.push((i, x, y, tw, shown));
                    x += tw;
                }
            }
            (out, y + lh)
        };
        let (mut boxes, mut bottom) = layout(size);
        while bottom > h - pad && size > 8.0 {
            size -= 1.0;
            (boxes, bottom) = layout(size);
        }
        let mut svg = Svg::new(self.opts.width, self.opts.height);
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
            if y + size * 1.7 > h {
                break;
            }
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
        Ok(svg.finish_drawing())
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
