//! One CPU thread count per process, decided at the first call and kept.
//!
//! candle 0.11 asks for its thread count on every matrix product, and when `RAYON_NUM_THREADS`
//! is unset it falls back to `num_cpus::get_physical()`, which parses `/proc/cpuinfo` each time:
//! a small GPT's training step opened that file about 1,700 times, and a default run spent half
//! its time in the kernel doing so. Two remedies, because no single one reaches every build:
//!
//! - Builds in this repository (the command line, tests, benches, examples) take a patched
//!   `num_cpus` that counts once per process (`[patch.crates-io]` in `Cargo.toml`; the patch and
//!   the fix offered to candle are in `patches/README.md`). Cargo applies a `[patch]` only in the
//!   top-level workspace, so the evcxr notebook kernel and crates that depend on massivetext do
//!   not get it from us.
//! - For those, the first call here, while the process still has a single thread, sets
//!   `RAYON_NUM_THREADS` to the count, which candle then reads from the environment without
//!   touching a file. Changing the environment is only sound while no other thread can read it,
//!   so with more than one thread it is left alone (see [`init`]).
//!
//! Our own kernels ask [`num_threads`], which reads one atomic after the first call.
use std::sync::OnceLock;

/// The number of threads the CPU kernels split work over: `CANDLE_NUM_THREADS` or
/// `RAYON_NUM_THREADS` when set to a positive number (candle's own precedence for its pool),
/// else the cores this process may use (candle's count of physical cores, capped by the CPUs
/// of the process's affinity mask and cgroup quota). Decided once per process.
pub fn num_threads() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(decide)
}

/// Decides the thread count now (see [`num_threads`]) and, when `RAYON_NUM_THREADS` is unset and
/// this is the only thread of the process, sets it to that count so that candle's per-product
/// query reads the environment instead of `/proc/cpuinfo`. The crate calls this from its entry
/// points (loading data, tokenizers, devices, models, the command line); calling it first thing
/// in `main` makes it certain.
pub fn init() {
    num_threads();
}

fn decide() -> usize {
    let from_env = positive_env("CANDLE_NUM_THREADS").or_else(|| positive_env("RAYON_NUM_THREADS"));
    let count = from_env.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        candle_core::utils::get_num_threads().min(cores).max(1)
    });
    if positive_env("RAYON_NUM_THREADS").is_none() && only_thread() {
        // SAFETY: this process has a single thread (checked just above, and only this thread
        // could start another), so nothing can read or write the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", count.to_string()) };
    }
    count
}

/// The value of `key` when it is a positive integer (what candle and rayon accept).
fn positive_env(key: &str) -> Option<usize> {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

/// Whether the calling thread is the only thread of the process (Linux: one entry in
/// `/proc/self/task`). Anywhere the answer is unknown, `false`: the environment is then left alone.
fn only_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_positive_and_fixed() {
        let n = num_threads();
        assert!(n >= 1);
        assert_eq!(num_threads(), n);
    }

    #[test]
    fn a_unit_test_runs_beside_other_threads() {
        // libtest runs tests on threads of their own: the environment must be left alone here.
        std::thread::scope(|s| {
            s.spawn(|| assert!(!only_thread()));
        });
    }
}
