//! Load + iterate text: massivetext vs Hugging Face `datasets.load_dataset("text")`, side by side,
//! at 100 MB and 1 GB, each measurement in its own child process so each has its own peak
//! memory:
//!
//! - `in-memory`: `load_dataset` with `keep_in_memory` (parse into Arrow arrays), then iterate;
//! - `first`: `load_dataset` with an empty cache (parse, write the Arrow cache, memory-map it);
//! - `cached`: the same call again (memory-maps the cache), then iterate;
//! - `stream`: `load_streaming` + iterate;
//! - `datasets` first (fresh cache dir: Arrow conversion included) and cached, iterating only
//!   files up to `MASSIVETEXT_BENCH_HF_ITER_MB` (default 200: Python iterates at ~2 MB/s).
//!
//! Run: `cargo bench --bench load_text` (needs `pip install datasets`; `MASSIVETEXT_BENCH_PYTHON`
//! picks the interpreter, default `python3`; `MASSIVETEXT_BENCH_SIZES=100,1024` the sizes in MB).
//! The corpora (tinyshakespeare repeated) and both caches are written under /tmp and deleted at
//! the end.
mod common;

use massivetext::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PY: &str = r#"
import sys, time
from datasets import load_dataset, disable_progress_bars
disable_progress_bars()
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
path, cache, iterate = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
t = time.perf_counter()
ds = load_dataset("text", data_files=path, split="train", cache_dir=cache)
load = time.perf_counter() - t
after_load = rss("VmRSS:")
chars = rows = 0
t = time.perf_counter()
if iterate:
    for row in ds:
        chars += len(row["text"])
        rows += 1
else:
    rows = len(ds)
it = time.perf_counter() - t
print(rows, chars, load, it, after_load, rss("VmHWM:"))
"#;

fn corpus(dir: &Path, mb: usize) -> PathBuf {
    let path = dir.join(format!("shakespeare_{mb}mb.txt"));
    let src = std::fs::read(common::data("tinyshakespeare/input.txt"))
        .expect("tinyshakespeare not found under ../shared/data (or MASSIVETEXT_DATA)");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut written = 0;
    while written < mb << 20 {
        f.write_all(&src).unwrap();
        written += src.len();
    }
    f.flush().unwrap();
    path
}

/// This process's memory in MB: `VmHWM` (peak) or `VmRSS` (now).
fn mem_mb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One measurement: rows, characters, load seconds, iterate seconds, RSS after load, peak.
type Measure = (u64, u64, f64, f64, f64, f64);

/// Child modes, so that each measurement has its own peak memory.
fn child(mode: &str, path: &str) {
    let t = Instant::now();
    let opts = LoadOptions {
        keep_in_memory: mode == "in-memory",
        ..Default::default()
    };
    let (mut rows, mut chars) = (0u64, 0u64);
    if mode == "stream" {
        let load = t.elapsed().as_secs_f64();
        let rss = mem_mb("VmRSS:");
        for row in load_streaming("text", path).unwrap().iter() {
            chars += row.unwrap()["text"]
                .as_str()
                .map_or(0, |s| s.chars().count() as u64);
            rows += 1;
        }
        let it = t.elapsed().as_secs_f64() - load;
        println!("{rows} {chars} {load} {it} {rss} {}", mem_mb("VmHWM:"));
        return;
    }
    let dd = load_dataset_with("text", path, &opts).unwrap();
    let load = t.elapsed().as_secs_f64();
    let rss = mem_mb("VmRSS:");
    let t = Instant::now();
    if mode == "first" {
        rows = dd["train"].num_rows() as u64;
    } else {
        for row in dd["train"].iter() {
            chars += row["text"].as_str().map_or(0, |s| s.chars().count() as u64);
            rows += 1;
        }
    }
    let it = t.elapsed().as_secs_f64();
    println!("{rows} {chars} {load} {it} {rss} {}", mem_mb("VmHWM:"));
}

fn run_child(cmd: &mut Command) -> Measure {
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
        f[4].parse().unwrap(),
        f[5].parse().unwrap(),
    )
}

fn report(name: &str, size: f64, m: &Measure, iterated: bool) {
    let total = m.2 + if iterated { m.3 } else { 0.0 };
    println!(
        "  {name:<34} load {:7.2} s  RSS after load {:7.1} MB  {}  peak {:7.1} MB",
        m.2,
        m.4,
        if iterated {
            format!("load+iterate {:8.1} MB/s", size / total)
        } else {
            format!("{:>26}", "(not iterated)")
        },
        m.5
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1], &args[i + 2]);
    }
    let sizes: Vec<usize> = std::env::var("MASSIVETEXT_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1024".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let hf_iter_mb: usize = std::env::var("MASSIVETEXT_BENCH_HF_ITER_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let python = std::env::var("MASSIVETEXT_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let work = tempfile::Builder::new()
        .prefix("massivetext-bench-")
        .tempdir_in("/tmp")
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for mb in sizes {
        let path = corpus(work.path(), mb);
        let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
        let p = path.to_str().unwrap();
        let ours_cache = work.path().join(format!("ours-cache-{mb}"));
        let ours = |mode: &str| {
            run_child(
                Command::new(&exe)
                    .args(["--child", mode, p])
                    .env("MASSIVETEXT_DATASETS_CACHE", &ours_cache),
            )
        };
        let in_memory = ours("in-memory");
        let first = ours("first");
        let cached = ours("cached");
        let stream = ours("stream");
        let hf_cache = work.path().join(format!("hf-cache-{mb}"));
        let iterate = if mb <= hf_iter_mb { "1" } else { "0" };
        let hf = |it: &str| {
            run_child(Command::new(&python).args(["-c", PY, p, hf_cache.to_str().unwrap(), it]))
        };
        let hf_first = hf("0");
        let hf_cached = hf(iterate);
        assert_eq!(in_memory.0, hf_first.0, "both read the same rows");
        assert_eq!((cached.0, cached.1), (in_memory.0, in_memory.1));
        if iterate == "1" {
            assert_eq!(in_memory.1, hf_cached.1, "both read the same characters");
        }
        println!("{size:.0} MB text, {} rows", in_memory.0);
        report("massivetext in memory", size, &in_memory, true);
        report("massivetext first load (cache)", size, &first, false);
        report("massivetext cached load", size, &cached, true);
        report("massivetext streaming", size, &stream, true);
        report("datasets first load", size, &hf_first, false);
        report("datasets cached load", size, &hf_cached, iterate == "1");
        println!(
            "  in-memory peak / file size: {:.2}x; first load ours / datasets: {:.1}x faster; cached load: {:.1}x faster",
            in_memory.5 / size,
            hf_first.2 / first.2,
            hf_cached.2 / cached.2
        );
        if iterate == "1" {
            println!(
                "  load+iterate, ours in memory / datasets cached: {:.1}x",
                (hf_first.2 + hf_cached.3) / (in_memory.2 + in_memory.3)
            );
        }
        let _ = std::fs::remove_dir_all(&ours_cache);
        let _ = std::fs::remove_dir_all(&hf_cache);
        let _ = std::fs::remove_file(&path);
    }
}
