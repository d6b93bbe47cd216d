//! Progress while training: an indicatif bar (loss, learning rate, tokens/s, ETA) when stdout is
//! a terminal; a compact line every `logging_steps` otherwise, because a notebook (evcxr) streams
//! stdout line by line but cannot redraw a bar.
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Where progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    Bar,
    Lines,
    Silent,
}

impl ProgressMode {
    /// A bar in a terminal, lines elsewhere, nothing when `disable`.
    pub fn detect(disable: bool) -> Self {
        if disable {
            ProgressMode::Silent
        } else if std::io::stdout().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines
        }
    }
}

pub(crate) struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    start: Instant,
    start_step: usize,
    total: usize,
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

pub(crate) fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

impl Progress {
    pub fn new(mode: ProgressMode, start_step: usize, total: usize) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let b = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            ) {
                b.set_style(style);
            }
            b.set_position(start_step as u64);
            b
        });
        Progress {
            mode,
            bar,
            start: Instant::now(),
            start_step,
            total,
        }
    }

    /// After every optimiser step.
    pub fn update(&self, step: usize, loss: f64, lr: f64, tokens_per_s: f64) {
        if let Some(b) = &self.bar {
            b.set_position(step as u64);
            b.set_message(format!(
                "loss {loss:.4} lr {lr:.2e} {} tok/s",
                fmt_rate(tokens_per_s)
            ));
        }
    }

    /// At a logging step: a line in notebook mode.
    pub fn log_line(&self, step: usize, loss: f64, lr: f64, grad_norm: f64, tokens_per_s: f64) {
        if self.mode != ProgressMode::Lines {
            return;
        }
        let done = step.saturating_sub(self.start_step).max(1) as f64;
        let elapsed = self.start.elapsed();
        let left = self.total.saturating_sub(step) as f64;
        let eta = Duration::from_secs_f64(elapsed.as_secs_f64() / done * left);
        println!(
            "step {step}/{} | loss {loss:.4} | lr {lr:.2e} | grad_norm {grad_norm:.3} | {} tok/s | elapsed {} | eta {}",
            self.total,
            fmt_rate(tokens_per_s),
            fmt_duration(elapsed),
            fmt_duration(eta)
        );
    }

    /// Any other message (evaluation results, checkpoints).
    pub fn message(&self, msg: &str) {
        match (&self.bar, self.mode) {
            (Some(b), _) => b.println(msg),
            (None, ProgressMode::Lines) => println!("{msg}"),
            _ => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
