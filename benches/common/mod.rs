//! What the bench programs share (each includes this file with `mod common;`): settings read
//! from the environment, and the thread count both sides of a comparison run with.

/// The value of the environment variable `key` parsed as `T`, or `default` when it is unset
/// or does not parse.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `BENCH_THREADS` (default: every core), set as `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS`:
/// candle sizes its CPU thread pool from them at first use, and the reference side is given the
/// same number. Call it first in `main`, before any tensor or thread exists.
pub fn bench_threads() -> usize {
    let threads = env_or(
        "BENCH_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    // SAFETY: called at the start of `main`, while no other thread runs.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    }
    threads
}
