//! Progress while training: an indicatif bar (loss, learning rate, tokens/s, ETA) when stdout is
//! a terminal; otherwise (a notebook: evcxr streams stdout line by line but cannot redraw a bar)
//! a line at every `logging_steps` and, between them, a line at least every [`HEARTBEAT`], so a
//! long run is never silent whatever `logging_steps` is.
use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
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
    /// A bar in a terminal, lines elsewhere, nothing when `disable`. The bar is drawn on
    /// stderr and hides itself when stderr is not a terminal, so both must be: under `mpirun`
    /// a rank's stdout is a pseudo-terminal of Open MPI's while its stderr is a pipe, and rank
    /// 0 would otherwise show no progress at all (lines on stdout reach mpirun's output).
    pub fn detect(disable: bool) -> Self {
        if disable {
            ProgressMode::Silent
        } else if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines
        }
    }
}

/// The longest a notebook waits for a line of progress.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);

pub(crate) struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    start: Instant,
    start_step: usize,
    total: usize,
    /// Where lines go: stdout (the tests give a buffer).
    out: RefCell<Box<dyn Write>>,
    heartbeat: Duration,
    last_line: Cell<Instant>,
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
        Self::to(
            mode,
            start_step,
            total,
            Box::new(std::io::stdout()),
            HEARTBEAT,
        )
    }

    /// Progress writing its lines to `out`, with a line at least every `heartbeat`.
    pub(crate) fn to(
        mode: ProgressMode,
        start_step: usize,
        total: usize,
        out: Box<dyn Write>,
        heartbeat: Duration,
    ) -> Self {
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
            out: RefCell::new(out),
            heartbeat,
            last_line: Cell::new(Instant::now()),
        }
    }

    fn line(&self, text: &str) {
        let mut out = self.out.borrow_mut();
        // Progress is best effort: a closed stdout must not stop training.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        self.last_line.set(Instant::now());
    }

    /// `elapsed` and the ETA at `step`, from the pace since the start.
    fn times(&self, step: usize) -> (String, String) {
        let done = step.saturating_sub(self.start_step).max(1) as f64;
        let elapsed = self.start.elapsed();
        let left = self.total.saturating_sub(step) as f64;
        let eta = Duration::from_secs_f64(elapsed.as_secs_f64() / done * left);
        (fmt_duration(elapsed), fmt_duration(eta))
    }

    /// After every optimiser step: the bar moves; in notebook mode, a line when none was
    /// written for [`HEARTBEAT`] (the step's own loss, not a logged mean).
    pub fn update(&self, step: usize, loss: f64, lr: f64, tokens_per_s: f64) {
        if let Some(b) = &self.bar {
            b.set_position(step as u64);
            b.set_message(format!(
                "loss {loss:.4} lr {lr:.2e} {} tok/s",
                fmt_rate(tokens_per_s)
            ));
        }
        if self.mode == ProgressMode::Lines && self.last_line.get().elapsed() >= self.heartbeat {
            let (elapsed, eta) = self.times(step);
            self.line(&format!(
                "step {step}/{} | step loss {loss:.4} | lr {lr:.2e} | {} tok/s | elapsed {elapsed} | eta {eta}",
                self.total,
                fmt_rate(tokens_per_s),
            ));
        }
    }

    /// At a logging step: a line in notebook mode.
    pub fn log_line(&self, step: usize, loss: f64, lr: f64, grad_norm: f64, tokens_per_s: f64) {
        if self.mode != ProgressMode::Lines {
            return;
        }
        let (elapsed, eta) = self.times(step);
        self.line(&format!(
            "step {step}/{} | loss {loss:.4} | lr {lr:.2e} | grad_norm {grad_norm:.3} | {} tok/s | elapsed {elapsed} | eta {eta}",
            self.total,
            fmt_rate(tokens_per_s),
        ));
    }

    /// Any other message (evaluation results, checkpoints).
    pub fn message(&self, msg: &str) {
        match (&self.bar, self.mode) {
            (Some(b), _) => b.println(msg),
            (None, ProgressMode::Lines) => self.line(msg),
            _ => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    /// A buffer the test keeps a handle to.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(buf: &Shared) -> Vec<String> {
        String::from_utf8(buf.0.borrow().clone())
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn notebook_mode_writes_a_line_when_the_heartbeat_is_due() {
        let buf = Shared::default();
        let p = Progress::to(
            ProgressMode::Lines,
            0,
            10,
            Box::new(buf.clone()),
            Duration::ZERO,
        );
        p.update(1, 2.5, 1e-3, 1000.0);
        p.update(2, 2.25, 1e-3, 1000.0);
        let l = lines(&buf);
        assert_eq!(l.len(), 2, "{l:?}");
        assert!(
            l[1].starts_with("step 2/10 | step loss 2.2500 | lr 1.00e-3 | 1.0k tok/s"),
            "{l:?}"
        );
    }

    #[test]
    fn no_heartbeat_line_before_it_is_due_nor_in_other_modes() {
        let buf = Shared::default();
        let p = Progress::to(ProgressMode::Lines, 0, 10, Box::new(buf.clone()), HEARTBEAT);
        p.update(1, 2.5, 1e-3, 1000.0);
        p.log_line(1, 2.5, 1e-3, 0.5, 1000.0);
        assert_eq!(
            lines(&buf).len(),
            1,
            "only the logging line: {:?}",
            lines(&buf)
        );
        let silent = Shared::default();
        let p = Progress::to(
            ProgressMode::Silent,
            0,
            10,
            Box::new(silent.clone()),
            Duration::ZERO,
        );
        p.update(1, 2.5, 1e-3, 1000.0);
        p.message("saved");
        assert!(lines(&silent).is_empty());
    }
}
