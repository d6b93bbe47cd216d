//! Dataset transforms: massivetext vs Hugging Face `datasets` 5.2, side by side in one run
//! (issue 34). The same work on a text file of tinyshakespeare repeated: add a column `n`, the
//! length of each line (`map`), and keep the lines longer than 40 characters (`filter`), in
//! each form: row closures, batched closures, one-column helpers (ours only; `datasets` has
//! none), and `map` with 2 workers. Each measurement is a child process, so each has its own
//! peak memory (`ru_maxrss`); the forms alternate between the two libraries and each is run
//! `MASSIVETEXT_BENCH_RUNS` times (default 3), medians reported.
//!
//! Both sides load the file from their load cache first (memory-mapped Arrow; written once
//! before the runs), and neither reads a transform from its cache (`datasets`:
//! `load_from_cache_file=False`; ours: no `new_fingerprint`), except the `cached` row, which
//! times our re-run of a named transform. `datasets` writes each result to an Arrow cache file,
//! which is part of its time; ours stays in memory.
//!
//! Run: `MASSIVETEXT_BENCH_PYTHON=$(.ci/reference) cargo bench --bench transforms`
//! (`MASSIVETEXT_BENCH_SIZES=100,1024` the sizes in MB, default 100). The corpora and caches
//! are written to a temporary folder under the system's temp dir and deleted at the end.
mod common;

use massivetext::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PY: &str = include_str!("transforms_datasets.py");

/// Our forms, and the `datasets` mode doing the same work (`None`: no such form there).
const FORMS: [(&str, Option<&str>); 10] = [
    ("map-row", Some("map-row")),
    ("map-batched", Some("map-batched")),
    ("map-column", None),
    ("map-row-2", Some("map-row-2")),
    ("map-batched-2", Some("map-batched-2")),
    ("map-cached", None),
    ("filter-row", Some("filter-row")),
    ("filter-batched", Some("filter-batched")),
    ("filter-column", None),
    ("filter-row-2", None),
];

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

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// This process's peak resident memory (`getrusage`), in MB.
fn peak_mb() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as f64 / 1024.0
}

fn lens(b: &Dataset) -> Result<Vec<usize>> {
    Ok(b.column_str("text")?.iter().map(|s| s.len()).collect())
}

/// One measurement: prints `rows_out seconds peak_mb rss_before_mb output_mb`.
fn child(mode: &str, path: &str) {
    let ds = load_dataset("text", path).unwrap()["train"].clone();
    if mode == "load" {
        println!("{} 0 0 0 0", ds.num_rows());
        return;
    }
    let before = rss_mb();
    let two = MapOptions {
        num_proc: 2,
        ..Default::default()
    };
    let add_n = |mut r: Row| {
        let n = r["text"].as_str().map_or(0, str::len);
        r.insert("n".into(), json!(n));
        Ok(r)
    };
    let long = |r: &Row| r["text"].as_str().is_some_and(|s| s.len() > 40);
    let named = MapOptions {
        new_fingerprint: Some("bench-add-n".into()),
        ..Default::default()
    };
    if mode == "map-cached" {
        // the first run computes and writes the entry; only the re-run is timed
        ds.map_with(add_n, &named).unwrap();
    }
    let t = Instant::now();
    let out = match mode {
        "map-row" => ds.map(add_n).unwrap(),
        "map-batched" => ds
            .map_batched(1000, |b| b.with_column("n", lens(&b)?))
            .unwrap(),
        "map-column" => ds.map_column("text", "n", |s: &str| s.len()).unwrap(),
        "map-row-2" => ds.map_with(add_n, &two).unwrap(),
        "map-batched-2" => ds
            .map_batched_with(|b| b.with_column("n", lens(&b)?), &two)
            .unwrap(),
        "map-cached" => ds.map_with(add_n, &named).unwrap(),
        "filter-row" => ds.filter(long),
        "filter-batched" => ds
            .filter_batched(1000, |b| Ok(lens(b)?.iter().map(|&n| n > 40).collect()))
            .unwrap(),
        "filter-column" => ds.filter_column("text", |s: &str| s.len() > 40).unwrap(),
        "filter-row-2" => ds.filter_with(|r| Ok(long(r)), &two).unwrap(),
        other => panic!("unknown mode {other}"),
    };
    let seconds = t.elapsed().as_secs_f64();
    let output = output_bytes(&out);
    println!(
        "{} {seconds} {} {before} {}",
        out.num_rows(),
        peak_mb(),
        output as f64 / 1e6 * 1.048_576f64.recip()
    );
}

/// The bytes of the output's values (a slice counts its part of a shared buffer, not all of
/// it; an indices mapping counts 8 bytes a row, the rows themselves being the input's).
fn output_bytes(ds: &Dataset) -> usize {
    use massivetext::data::arrow_array::{Array, cast::AsArray};
    use massivetext::data::arrow_schema::DataType;
    if ds.column_names().iter().all(|c| c == "text") {
        return 8 * ds.num_rows();
    }
    let (_, batches) = ds.to_record_batches().unwrap();
    let mut bytes = 0;
    for b in &batches {
        for a in b.columns() {
            bytes += match a.data_type() {
                DataType::Utf8 => {
                    let o = a.as_string::<i32>().value_offsets();
                    (o[o.len() - 1] - o[0]) as usize + 4 * o.len()
                }
                t => match t.primitive_width() {
                    Some(w) => w * a.len(),
                    None => a.get_array_memory_size(),
                },
            };
        }
    }
    bytes
}

/// `(rows, seconds, peak MB, RSS before MB, 5th field)` of a child's line.
type Measure = (u64, f64, f64, f64, f64);

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
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1], &args[i + 2]);
    }
    let sizes: Vec<usize> = std::env::var("MASSIVETEXT_BENCH_SIZES")
        .unwrap_or_else(|_| "100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = common::env_or("MASSIVETEXT_BENCH_RUNS", 3).max(1);
    let only: Option<String> = std::env::var("MASSIVETEXT_BENCH_FORMS").ok();
    let python = std::env::var("MASSIVETEXT_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let work = tempfile::Builder::new()
        .prefix("massivetext-bench-")
        .tempdir()
        .unwrap();
    let script = work.path().join("transforms_datasets.py");
    std::fs::write(&script, PY).unwrap();
    let exe = std::env::current_exe().unwrap();
    println!(
        "machine: {} cores, load average {} at the start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    for mb in sizes {
        let path = corpus(work.path(), mb);
        let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
        let p = path.to_str().unwrap();
        let ours_cache = work.path().join(format!("ours-cache-{mb}"));
        let hf_cache = work.path().join(format!("hf-cache-{mb}"));
        let ours = |mode: &str| {
            run_child(
                Command::new(&exe)
                    .args(["--child", mode, p])
                    .env("MASSIVETEXT_DATASETS_CACHE", &ours_cache),
            )
        };
        let hf = |mode: &str| {
            run_child(Command::new(&python).args([
                script.to_str().unwrap(),
                p,
                hf_cache.to_str().unwrap(),
                mode,
            ]))
        };
        // both load caches written once, outside the timed runs
        let rows = ours("load").0;
        assert_eq!(hf("load").0, rows, "both read the same rows");
        println!("\n{size:.0} MB text, {rows} rows; medians of {runs} alternating runs");
        println!(
            "  {:<16} {:>9} {:>10} {:>11} {:>10} | {:>10} {:>10} {:>10} | {:>7} {:>7}",
            "form",
            "ours s",
            "peak MB",
            "added MB",
            "output MB",
            "datasets s",
            "peak MB",
            "worker MB",
            "speed",
            "memory"
        );
        for (form, theirs) in FORMS {
            if only
                .as_ref()
                .is_some_and(|o| !o.split(',').any(|f| f == form))
            {
                continue;
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                a.push(ours(form));
                if let Some(t) = theirs {
                    b.push(hf(t));
                }
            }
            if let Some(first) = b.first() {
                assert_eq!(a[0].0, first.0, "{form}: both keep the same rows");
            }
            let pick = |v: &[Measure], f: fn(&Measure) -> f64| median(v.iter().map(f).collect());
            let (s, peak) = (pick(&a, |m| m.1), pick(&a, |m| m.2));
            let added = pick(&a, |m| m.2 - m.3);
            let output = pick(&a, |m| m.4);
            if b.is_empty() {
                println!(
                    "  {form:<16} {s:>9.3} {peak:>10.0} {added:>11.0} {output:>10.0} | {:>10} {:>10} {:>10} |",
                    "-", "-", "-"
                );
            } else {
                let (hs, hpeak, hkids) = (pick(&b, |m| m.1), pick(&b, |m| m.2), pick(&b, |m| m.4));
                println!(
                    "  {form:<16} {s:>9.3} {peak:>10.0} {added:>11.0} {output:>10.0} | {hs:>10.3} {hpeak:>10.0} {hkids:>10.0} | {:>6.1}x {:>6.2}x",
                    hs / s,
                    peak / hpeak
                );
            }
        }
        println!("  load average at the end: {}", load_average());
        let _ = std::fs::remove_dir_all(&ours_cache);
        let _ = std::fs::remove_dir_all(&hf_cache);
        let _ = std::fs::remove_file(&path);
    }
}
