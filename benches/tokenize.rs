//! Tokenizing a corpus into shards: ours vs Hugging Face `datasets.map(tokenizer, batched=True,
//! num_proc=2)`, on the same file, the same tokenizer, writing the same ids; and 1M random
//! windows from the shard reader, counting allocations.
//!
//!     cargo bench --bench tokenize              # 100 MB (tinyshakespeare repeated)
//!     MT_BENCH_BIG_MB=1000 cargo bench --bench tokenize   # plus ours alone on 1 GB
//!     MT_BENCH_MB=5 cargo bench --bench tokenize --profile dev   # a quick dry run
//!
//! Each side runs in its own process so that its peak memory (VmHWM / ru_maxrss) is its own.
mod common;

use massivetext::prelude::*;
use massivetext::tokenizer::cli::peak_rss_bytes;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counts every allocation, to show that the window sampler allocates nothing per window.
struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
#[global_allocator]
static GLOBAL: Counting = Counting;

const HF_SCRIPT: &str = r#"
import os, resource, sys, time
import numpy as np
import datasets
from transformers import AutoTokenizer
tok_dir, path, out, cache = sys.argv[1:5]
datasets.disable_progress_bars()
tok = AutoTokenizer.from_pretrained(tok_dir)
eos = tok.eos_token_id
t0 = time.time()
ds = datasets.load_dataset("text", data_files=path, split="train", cache_dir=cache)
def f(batch):
    ids = tok(batch["text"])["input_ids"]
    return {"ids": [e + [eos] if t else [] for e, t in zip(ids, batch["text"])]}
ds = ds.map(f, batched=True, num_proc=2, remove_columns=["text"])
# Write the same flat u16 file as the shards (nanoGPT's prepare.py way).
with open(out, "wb") as w:
    for b in ds.iter(batch_size=10000):
        w.write(np.fromiter((i for ids in b["ids"] for i in ids), dtype=np.uint16).tobytes())
dt = time.time() - t0
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(f"{dt} {me} {kids}")
"#;

use common::data;

fn tokenizer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizers/gpt2")
}

/// Child mode: build shards of `corpus` into `out`, print "seconds bytes tokens docs peak".
fn child_build(corpus: &str, out: &str) {
    let tok = Tokenizer::from_pretrained(tokenizer_dir()).expect("fixture tokenizer");
    let opts = ShardBuildOptions {
        force: true,
        ..Default::default()
    };
    let r = TokenShards::build_from_files(&tok, &[corpus], out, &opts).expect("build");
    println!(
        "{} {} {} {} {}",
        r.seconds,
        r.bytes,
        r.manifest.num_tokens,
        r.manifest.num_documents,
        peak_rss_bytes().unwrap_or(0)
    );
}

fn make_corpus(dir: &Path, mb: usize) -> (PathBuf, u64) {
    let src = std::fs::read(data("tinyshakespeare/input.txt")).expect("tinyshakespeare");
    let path = dir.join(format!("corpus_{mb}mb.txt"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut written = 0u64;
    while written < (mb as u64) * 1_000_000 {
        f.write_all(&src).unwrap();
        written += src.len() as u64;
    }
    f.flush().unwrap();
    (path, written)
}

struct Run {
    seconds: f64,
    bytes: u64,
    tokens: u64,
    docs: u64,
    peak: u64,
}

fn ours(corpus: &Path, out: &Path) -> Run {
    let exe = std::env::current_exe().unwrap();
    let o = Command::new(exe)
        .args([
            "--child-build",
            &corpus.display().to_string(),
            &out.display().to_string(),
        ])
        .output()
        .expect("spawn child");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    let v: Vec<f64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    Run {
        seconds: v[0],
        bytes: v[1] as u64,
        tokens: v[2] as u64,
        docs: v[3] as u64,
        peak: v[4] as u64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child-build" {
        child_build(&args[2], &args[3]);
        return;
    }
    let mb: usize = std::env::var("MT_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, bytes) = make_corpus(tmp.path(), mb);
    let (small, small_bytes) = make_corpus(tmp.path(), (mb / 4).max(1));
    println!(
        "corpus: tinyshakespeare repeated to {:.1} MB ({} lines per copy); tokenizer: tests/fixtures/tokenizers/gpt2 (byte-level BPE, 1500 ids, u16)",
        bytes as f64 / 1e6,
        40_000
    );

    // Ours, at a quarter and at the full size: peak memory should not grow with the corpus.
    let r_small = ours(&small, &tmp.path().join("shards_small"));
    let r = ours(&corpus, &tmp.path().join("shards"));
    let mbps = r.bytes as f64 / 1e6 / r.seconds;
    println!(
        "ours:   {:.1} MB in {:.2}s = {:.2} MB/s; {} documents, {} tokens; peak RSS {:.1} MB (at {:.1} MB of text: {:.1} MB)",
        r.bytes as f64 / 1e6,
        r.seconds,
        mbps,
        r.docs,
        r.tokens,
        r.peak as f64 / 1e6,
        small_bytes as f64 / 1e6,
        r_small.peak as f64 / 1e6,
    );

    // Optionally a much larger corpus, ours only (e.g. MT_BENCH_BIG_MB=1000 for 1 GB).
    let big: usize = std::env::var("MT_BENCH_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if big > 0 {
        let (big_corpus, _) = make_corpus(tmp.path(), big);
        let rb = ours(&big_corpus, &tmp.path().join("shards_big"));
        println!(
            "ours:   {:.1} MB in {:.2}s = {:.2} MB/s; {} tokens; peak RSS {:.1} MB",
            rb.bytes as f64 / 1e6,
            rb.seconds,
            rb.bytes as f64 / 1e6 / rb.seconds,
            rb.tokens,
            rb.peak as f64 / 1e6
        );
        let _ = std::fs::remove_file(&big_corpus);
        let _ = std::fs::remove_dir_all(tmp.path().join("shards_big"));
    }

    // Hugging Face datasets.map(tokenizer, batched=True, num_proc=2).
    let script = tmp.path().join("hf_tokenize.py");
    std::fs::write(&script, HF_SCRIPT).unwrap();
    let hf_out = tmp.path().join("hf.bin");
    let started = Instant::now();
    let o = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(&script)
        .arg(tokenizer_dir())
        .arg(&corpus)
        .arg(&hf_out)
        .arg(tmp.path().join("hf_cache"))
        .env("TOKENIZERS_PARALLELISM", "false")
        .output();
    match o {
        Ok(o) if o.status.success() => {
            let wall = started.elapsed().as_secs_f64();
            let s = String::from_utf8_lossy(&o.stdout);
            let v: Vec<f64> = s
                .lines()
                .last()
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let (secs, me, kids) = (v[0], v[1], v[2]);
            let hf_mbps = bytes as f64 / 1e6 / secs;
            println!(
                "hf:     {:.1} MB in {:.2}s = {:.2} MB/s (process wall {:.1}s); peak RSS main {:.1} MB, largest worker {:.1} MB",
                bytes as f64 / 1e6,
                secs,
                hf_mbps,
                wall,
                me / 1e6,
                kids / 1e6
            );
            println!("ratio:  ours is {:.1}x faster", mbps / hf_mbps);
            // Same ids?
            let hf_ids = std::fs::read(&hf_out).unwrap();
            let tok = Tokenizer::from_pretrained(tokenizer_dir()).unwrap();
            let shards = TokenShards::open(tmp.path().join("shards"), &tok).unwrap();
            let n = shards.num_tokens() as usize;
            let mut same = hf_ids.len() == 2 * n;
            let mut buf = vec![0u32; 1 << 20];
            let mut pos = 0;
            while same && pos < n {
                let k = buf.len().min(n - pos);
                shards.read_tokens(pos as u64, &mut buf[..k]).unwrap();
                same = buf[..k].iter().enumerate().all(|(i, &id)| {
                    let j = 2 * (pos + i);
                    u16::from_le_bytes([hf_ids[j], hf_ids[j + 1]]) as u32 == id
                });
                pos += k;
            }
            println!("same ids as HF: {same} ({} tokens)", hf_ids.len() / 2);
        }
        Ok(o) => println!(
            "hf: python failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("hf: cannot run python: {e}"),
    }

    // 1M random windows, counting allocations.
    let tok = Tokenizer::from_pretrained(tokenizer_dir()).unwrap();
    let shards = TokenShards::open(tmp.path().join("shards"), &tok).unwrap();
    let block = 256;
    let mut sampler = shards.sampler(block, 1337).unwrap();
    let mut window = vec![0u32; block + 1];
    let mut checksum = 0u64;
    let before = ALLOCS.load(Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..1_000_000 {
        sampler.next_window(&mut window).unwrap();
        checksum = checksum.wrapping_add(window[block] as u64);
    }
    let secs = t.elapsed().as_secs_f64();
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!(
        "windows: 1,000,000 random windows of {} tokens in {:.3}s ({:.0} ns/window, {:.2} GB/s of ids); allocations during the loop: {allocs} (checksum {checksum})",
        block + 1,
        secs,
        secs * 1e9 / 1e6,
        1e6 * (block + 1) as f64 * 4.0 / secs / 1e9
    );
}
