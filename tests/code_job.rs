//! `massivetext code`: the quick job end to end on this machine's Python standard library (the
//! binary, as a user runs it), its split, and its errors when python3 or the folder is missing;
//! with `--base-model`, SmolLM2-135M-Instruct (GGUF) measured as read and LoRA-tuned beside the
//! model from scratch.
use std::collections::HashSet;
use std::process::Command;

use massivetext::jobs::code::CodeJob;
use massivetext::jobs::code_corpus::{is_held_out, load_corpus, stdlib_dir};

#[path = "common/smollm2.rs"]
#[allow(dead_code)]
mod smollm2;

fn massivetext(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_massivetext"))
        .args(args)
        .output()
        .expect("the massivetext binary runs")
}

#[test]
fn quick_code_job_trains_and_reports_the_three_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let run = massivetext(&[
        "code",
        "--quick",
        "--output-dir",
        out.to_str().unwrap(),
        "--max-steps",
        "6",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stderr: {stderr}");
    for line in ["bits per byte", "next-line exact match", "parse rate"] {
        assert!(stdout.contains(line), "{line} missing from {stdout}");
    }
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "train_files.txt",
        "held_out_files.txt",
        "code_report.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing; stderr: {stderr}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("code_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["steps"], 6);
    let m = &report["metrics"];
    let bpb = m["bits_per_byte"].as_f64().unwrap();
    // 6 steps from scratch: below a uniform guess over 512 tokens, above a trained model
    assert!(bpb > 0.5 && bpb < 12.0, "{bpb}");
    for k in ["next_line_exact_match", "parse_rate"] {
        let x = m[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    assert_eq!(m["next_line_tasks"], 8);
    assert_eq!(m["bodies"], 4);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "llama");

    // the split: disjoint, by the hash of the path
    let read = |f: &str| -> Vec<String> {
        std::fs::read_to_string(out.join(f))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    let (train, held) = (read("train_files.txt"), read("held_out_files.txt"));
    assert_eq!((train.len(), held.len()), (30, 4));
    let train_set: HashSet<&String> = train.iter().collect();
    assert!(held.iter().all(|h| !train_set.contains(h)));
    assert!(held.iter().all(|h| is_held_out(h, 10)));
    assert!(train.iter().all(|t| !is_held_out(t, 10)));
}

#[test]
fn the_split_is_deterministic_and_skips_tests_and_packages() {
    let dir = stdlib_dir("python3").unwrap();
    let a = load_corpus(&dir, 10, 50, 10, 20_000).unwrap();
    let b = load_corpus(&dir, 10, 50, 10, 20_000).unwrap();
    assert_eq!(
        a.held_out.iter().map(|f| &f.path).collect::<Vec<_>>(),
        b.held_out.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    for f in a.train.iter().chain(&a.held_out) {
        assert!(
            f.path.ends_with(".py") && f.text.len() <= 20_000,
            "{}",
            f.path
        );
        for part in f.path.split('/') {
            assert!(
                !["test", "tests", "site-packages", "dist-packages"].contains(&part),
                "{}",
                f.path
            );
        }
    }
}

#[test]
fn a_missing_python_or_folder_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let run = massivetext(&[
        "code",
        "--quick",
        "--python",
        "/nonexistent/python3",
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("/nonexistent/python3") && stderr.contains("--stdlib"),
        "{stderr}"
    );
    let missing = tmp.path().join("no-such-lib");
    let run = massivetext(&[
        "code",
        "--quick",
        "--stdlib",
        missing.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("no-such-lib") && stderr.contains("does not exist"),
        "{stderr}"
    );
    // a folder without Python files
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "not code").unwrap();
    let e = load_corpus(&empty, 10, 0, 0, 0).unwrap_err().to_string();
    assert!(e.contains("0 training and 0 held-out"), "{e}");
}

#[test]
fn print_config_round_trips() {
    let run = massivetext(&["code", "--quick", "--print-config"]);
    assert!(run.status.success());
    let text = String::from_utf8_lossy(&run.stdout);
    let job: CodeJob = toml::from_str(&text).unwrap();
    assert_eq!(job, CodeJob::quick());
}

#[test]
fn base_model_is_measured_as_read_and_after_a_lora_fine_tune() {
    let gguf = smollm2::gguf_path();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // the quick job, smaller still: SmolLM2 scores a few dozen tokens a second on a busy CPU
    let mut job = CodeJob::quick();
    job.corpus.max_held_out_files = 2;
    job.corpus.max_file_bytes = 3000;
    job.eval.max_next_line_tasks = 3;
    job.eval.next_line_max_new_tokens = 8;
    job.eval.max_body_functions = 2;
    job.eval.body_max_new_tokens = 12;
    job.training.max_steps = Some(4);
    job.pretrained.max_steps = 1;
    job.pretrained.block_size = 32;
    let config = tmp.path().join("job.toml");
    std::fs::write(&config, job.to_toml().unwrap()).unwrap();
    let run = massivetext(&[
        "code",
        "--config",
        config.to_str().unwrap(),
        "--base-model",
        gguf.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stderr: {stderr}");
    for row in [
        "Llama from scratch",
        "pretrained (GGUF)",
        "pretrained + LoRA",
    ] {
        assert!(stdout.contains(row), "{row} missing from {stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("code_report.json")).unwrap())
            .unwrap();
    let scratch = report["metrics"]["bits_per_byte"].as_f64().unwrap();
    let p = &report["pretrained"];
    assert_eq!(p["steps"], 1);
    let (base, tuned) = (
        p["base"]["bits_per_byte"].as_f64().unwrap(),
        p["lora"]["bits_per_byte"].as_f64().unwrap(),
    );
    // a pretrained 135M model knows Python far better than 4 steps from scratch
    assert!(
        base > 0.2 && base < 2.5 && base < scratch,
        "{base} vs {scratch}"
    );
    // one step of LoRA moved the model, a little
    assert!(
        tuned != base && (tuned - base).abs() < 0.5,
        "{base} -> {tuned}"
    );
    for m in [&p["base"], &p["lora"]] {
        assert_eq!(m["next_line_tasks"], 3);
        assert_eq!(m["bodies"], 2);
        for k in ["next_line_exact_match", "parse_rate"] {
            assert!((0.0..=1.0).contains(&m[k].as_f64().unwrap()), "{k}: {m}");
        }
    }
    // the trainable part: LoRA on the 7 projections of 30 layers, r 8
    assert_eq!(p["trainable_parameters"], 2_442_240);
    let adapter = out.join("smollm2-lora");
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        assert!(adapter.join(f).is_file(), "{f} missing");
    }

    // a base model that is not there: the path and what to give
    let run = massivetext(&[
        "code",
        "--config",
        config.to_str().unwrap(),
        "--base-model",
        "/nonexistent/model.gguf",
        "--output-dir",
        tmp.path().join("run2").to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("/nonexistent/model.gguf") && stderr.contains("GGUF"),
        "{stderr}"
    );
}
