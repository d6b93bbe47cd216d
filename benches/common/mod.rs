//! What the bench programs share (each includes this file with `mod common;`): settings read
//! from the environment, and the thread count both sides of a comparison run with.
// Each bench uses only some of these helpers.
#![allow(dead_code)]

/// The value of the environment variable `key` parsed as `T`, or `default` when it is unset
/// or does not parse.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The threads of a bench run, for both sides of a comparison.
///
/// - `BENCH_THREADS` unset: the configuration a user runs, with no variable set. massivetext
///   picks its own count (`massivetext::threads`) and the reference side keeps torch's default.
/// - `BENCH_THREADS=N`: pinned, as `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` for us and
///   `torch.set_num_threads(N)` for the reference side.
///
/// Call it first in `main`, before any tensor or thread exists.
pub fn bench_threads() -> Threads {
    match std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) if n > 0 => {
            // SAFETY: called at the start of `main`, while no other thread runs.
            unsafe {
                std::env::set_var("RAYON_NUM_THREADS", n.to_string());
                std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
            }
            Threads {
                count: n,
                pinned: true,
            }
        }
        _ => Threads {
            count: massivetext::threads::num_threads(),
            pinned: false,
        },
    }
}

/// See [`bench_threads`].
#[derive(Clone, Copy, Debug)]
pub struct Threads {
    /// The threads massivetext runs with.
    pub count: usize,
    /// Whether `BENCH_THREADS` pinned both sides.
    pub pinned: bool,
}

impl Threads {
    /// The thread count for the reference script: 0 means "leave torch's default".
    pub fn torch_arg(&self) -> usize {
        if self.pinned { self.count } else { 0 }
    }
}

impl std::fmt::Display for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.pinned {
            "pinned by BENCH_THREADS"
        } else {
            "default, no variable set"
        };
        write!(f, "{} threads ({how})", self.count)
    }
}

/// `BENCH_BUSY=N` processes that spin on the CPU for as long as the value lives (killed on drop):
/// the machine a user shares with other work. Both sides of a comparison run beside them.
pub struct BusyLoops(Vec<std::process::Child>);

pub fn busy_loops() -> BusyLoops {
    let n: usize = env_or("BENCH_BUSY", 0);
    BusyLoops(
        (0..n)
            .filter_map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .ok()
            })
            .collect(),
    )
}

impl BusyLoops {
    /// How many are running, for the bench's header line.
    pub fn count(&self) -> usize {
        self.0.len()
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A corpus under the shared data folder: `MASSIVETEXT_DATA` when set, else `../shared/data`
/// beside the repository (where CI and the tests find it).
pub fn data(p: &str) -> std::path::PathBuf {
    std::env::var_os("MASSIVETEXT_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join(p)
}

/// The last line a reference script printed, read as JSON (`Null` when it is not JSON): the
/// Python sides print their figures as one JSON line at the end.
pub fn last_json_line(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.trim().lines().last().unwrap_or("")).unwrap_or_default()
}
