//! BLEU, chrF and ROUGE: ours against sacrebleu and rouge-score on the same files.
//!
//! `cargo bench --bench metrics` — BLEU and chrF on Multi30k test_2016_flickr (a word-dropped
//! German system against the reference), ROUGE-1/2/L/Lsum with the Porter stemmer on the 100
//! CNN/DailyMail lead-3 summaries against their highlights. Each side is timed in-process
//! (Python without interpreter start-up or imports), best of several runs, and the ratio printed.
mod common;

use massivetext::metrics::{Bleu, Chrf, RougeOptions, RougeScorer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::data;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(p)
}

/// Best wall time in seconds of `runs` calls.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("runs > 0"))
}

const PY: &str = r#"
import json, sys, time
import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from rouge_score import rouge_scorer
hyp_path, ref_path, lead_path, high_path, runs = sys.argv[1:6]
runs = int(runs)
def lines(p):
    with open(p, encoding='utf-8') as f:
        return [l.rstrip('\n') for l in f]
hyps, refs = lines(hyp_path), lines(ref_path)
lead, high = json.load(open(lead_path, encoding='utf-8')), json.load(open(high_path, encoding='utf-8'))
def best(fn):
    b, v = float('inf'), None
    for _ in range(runs):
        t = time.perf_counter(); v = fn(); b = min(b, time.perf_counter() - t)
    return b, v
def rouge():
    sc = rouge_scorer.RougeScorer(['rouge1', 'rouge2', 'rougeL', 'rougeLsum'], use_stemmer=True)
    per = [sc.score(r, p) for p, r in zip(lead, high)]
    return float(np.mean([s['rougeLsum'].fmeasure for s in per]))
# A fresh metric object per run, so sacrebleu's per-instance tokenizer cache starts cold.
tb, vb = best(lambda: BLEU().corpus_score(hyps, [refs]).score)
tc, vc = best(lambda: CHRF().corpus_score(hyps, [refs]).score)
tr, vr = best(rouge)
print(json.dumps({'bleu': [tb, vb], 'chrf': [tc, vc], 'rouge': [tr, vr]}))
"#;

fn main() {
    let runs = 10;
    let hyp_path = fixture("m30k_drop.de");
    let ref_path = data("multi30k/test_2016_flickr.de");
    let lead_path = fixture("cnn_lead3.json");
    let high_path = fixture("cnn_highlights.json");
    let read = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
            .lines()
            .map(String::from)
            .collect()
    };
    let hyps = read(&hyp_path);
    let refs = vec![read(&ref_path)];
    let json = |p: &Path| -> Vec<String> {
        serde_json::from_str(&std::fs::read_to_string(p).expect("read json")).expect("json")
    };
    let lead = json(&lead_path);
    let high = json(&high_path);

    let (tb, vb) = best(runs, || {
        Bleu::default()
            .corpus_score(&hyps, &refs)
            .expect("bleu")
            .score
    });
    let (tc, vc) = best(runs, || {
        Chrf::default()
            .corpus_score(&hyps, &refs)
            .expect("chrf")
            .score
    });
    let (tr, vr) = best(runs, || {
        RougeScorer::standard(RougeOptions::STEMMED)
            .corpus_score(&lead, &high)
            .expect("rouge")
            .mean["rougeLsum"]
            .fmeasure
    });
    let ours = [("BLEU", tb, vb), ("chrF", tc, vc), ("ROUGE", tr, vr)];

    println!(
        "metrics benchmark: {} Multi30k segments, {} CNN/DM summaries, best of {runs}",
        hyps.len(),
        lead.len()
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg(PY)
        .args([&hyp_path, &ref_path, &lead_path, &high_path])
        .arg(runs.to_string())
        .output();
    let theirs: Option<serde_json::Value> = match py {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            eprintln!(
                "python reference failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("python3 not available ({e}); printing our timings only");
            None
        }
    };
    println!(
        "{:<7} {:>12} {:>14} {:>10} {:>12} {:>12}",
        "metric", "ours (ms)", "reference (ms)", "speed-up", "ours score", "ref score"
    );
    for (name, t, v) in ours {
        let key = name.to_lowercase();
        let (rt, rv) = theirs
            .as_ref()
            .and_then(|j| j.get(&key))
            .map(|a| {
                (
                    a[0].as_f64().unwrap_or(f64::NAN),
                    a[1].as_f64().unwrap_or(f64::NAN),
                )
            })
            .unwrap_or((f64::NAN, f64::NAN));
        println!(
            "{:<7} {:>12.2} {:>14.2} {:>9.1}x {:>12.6} {:>12.6}",
            name,
            t * 1e3,
            rt * 1e3,
            rt / t,
            v,
            rv
        );
    }
}
