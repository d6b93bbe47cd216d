//! `massivetext code`: the quick job end to end on this machine's Python standard library (the
//! binary, as a user runs it), its split, and its errors when python3 or the folder is missing.
use std::collections::HashSet;
use std::process::Command;

use massivetext::jobs::code::CodeJob;
use massivetext::jobs::code_corpus::{is_held_out, load_corpus, stdlib_dir};

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
