//! What the process can measure of itself, for the jobs' summaries and the benchmarks.

/// Peak resident memory of this process (`VmHWM` in /proc/self/status), in bytes; `None` where
/// the kernel does not report it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
