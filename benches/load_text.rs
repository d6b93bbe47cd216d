//! Load + iterate a ~100 MB text file: massivetext vs Hugging Face `datasets.load_dataset("text")`,
//! side by side, printing throughput, the ratio and both peak memories; then streaming a 1 GB file
//! to show that streaming memory does not grow with the corpus.
//!
//! Run: `cargo bench --bench load_text` (needs `pip install datasets psutil`; set
//! `MASSIVETEXT_BENCH_MB` to change the size, `MASSIVETEXT_STREAM_MB` for the streaming file).
use massivetext::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PY: &str = r#"
import sys, time, resource
from datasets import load_dataset, disable_progress_bars
disable_progress_bars()
path, cache = sys.argv[1], sys.argv[2]
t = time.perf_counter()
ds = load_dataset("text", data_files=path, split="train", cache_dir=cache)
chars = 0
for row in ds:
    chars += len(row["text"])
dt = time.perf_counter() - t
print(len(ds), chars, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"#;

fn corpus(mb: usize) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("shakespeare_{mb}mb.txt"));
    if path.exists() {
        return path;
    }
    let src = [
        "../shared/data/tinyshakespeare/input.txt",
        "/work/shared/data/tinyshakespeare/input.txt",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .expect("tinyshakespeare not found under ../shared/data");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut written = 0;
    while written < mb << 20 {
        f.write_all(&src).unwrap();
        written += src.len();
    }
    f.flush().unwrap();
    path
}

/// Peak resident memory of this process, in MB (Linux `VmHWM`).
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Child modes, so that each measurement has its own peak memory.
fn child(mode: &str, path: &str) {
    let t = Instant::now();
    let (rows, chars) = match mode {
        "load" => {
            let dd = load_dataset("text", path).unwrap();
            let mut chars = 0;
            let mut rows = 0;
            for row in dd["train"].iter() {
                chars += row["text"].as_str().map_or(0, |s| s.chars().count());
                rows += 1;
            }
            (rows, chars)
        }
        _ => {
            let mut chars = 0;
            let mut rows = 0;
            for row in load_streaming("text", path).unwrap().iter() {
                chars += row.unwrap()["text"]
                    .as_str()
                    .map_or(0, |s| s.chars().count());
                rows += 1;
            }
            (rows, chars)
        }
    };
    println!("{rows} {chars} {} {}", t.elapsed().as_secs_f64(), peak_mb());
}

fn run_child(cmd: &mut Command) -> (u64, u64, f64, f64) {
    let out = cmd.output().expect("could not start the child process");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1], &args[i + 2]);
    }
    let mb: usize = std::env::var("MASSIVETEXT_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let stream_mb: usize = std::env::var("MASSIVETEXT_STREAM_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let path = corpus(mb);
    let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    let exe = std::env::current_exe().unwrap();
    let p = path.to_str().unwrap();
    let ours = run_child(Command::new(&exe).args(["--child", "load", p]));
    let ours_stream = run_child(Command::new(&exe).args(["--child", "stream", p]));
    let cache = tempfile::tempdir().unwrap();
    let hf = run_child(Command::new("python3").args(["-c", PY, p, cache.path().to_str().unwrap()]));
    assert_eq!(
        (ours.0, ours.1),
        (hf.0, hf.1),
        "both read the same rows and characters"
    );
    println!(
        "load + iterate {size:.1} MB ({} rows), machine: {} cores",
        ours.0,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  massivetext load_dataset : {:8.1} MB/s  peak {:7.1} MB",
        size / ours.2,
        ours.3
    );
    println!(
        "  massivetext streaming    : {:8.1} MB/s  peak {:7.1} MB",
        size / ours_stream.2,
        ours_stream.3
    );
    println!(
        "  HF datasets              : {:8.2} MB/s  peak {:7.1} MB",
        size / hf.2,
        hf.3
    );
    println!("  ratio (load_dataset / HF): {:.1}x", hf.2 / ours.2);
    let big = corpus(stream_mb);
    let big_size = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
    let s = run_child(Command::new(&exe).args(["--child", "stream", big.to_str().unwrap()]));
    println!(
        "streaming {big_size:.0} MB: {:.1} MB/s, peak {:.1} MB",
        big_size / s.2,
        s.3
    );
}
