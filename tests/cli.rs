//! The `massivetext` binary: `--help` works (exit status 0) for the program and every
//! subcommand, and lists that subcommand's own flags; errors go to stderr with a non-zero exit.
use std::process::Command;

fn massivetext(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_massivetext"))
        .args(args)
        .output()
        .expect("the massivetext binary runs")
}

#[test]
fn help_for_every_subcommand_lists_its_flags() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "train",
                "dataset",
                "train-tokenizer",
                "tokenize",
                "perplexity",
                "generate",
                "metrics",
            ],
        ),
        (
            &["train"],
            &[
                "--config",
                "--max-steps",
                "--output-dir",
                "--device",
                "--n-layer",
                "--train-stories",
                "--set",
            ],
        ),
        (&["dataset", "info"], &["--kind", "--json"]),
        (&["dataset", "head"], &["--kind", "--rows"]),
        (
            &["train-tokenizer"],
            &["--kind", "--vocab-size", "--out", "--special-token"],
        ),
        (
            &["tokenize"],
            &["--tokenizer", "--out", "--shard-tokens", "--force"],
        ),
        (
            &["perplexity"],
            &["--model", "--data", "--stride", "--max-length", "--json"],
        ),
        (
            &["generate"],
            &[
                "--model",
                "--prompt",
                "--max-new-tokens",
                "--do-sample",
                "--num-beams",
                "--top-p",
            ],
        ),
        (&["metrics"], &["bleu", "chrf", "rouge"]),
        (
            &["metrics", "bleu"],
            &["--hyp", "--ref", "--tokenize", "--smooth-method", "--json"],
        ),
        (
            &["metrics", "chrf"],
            &["--hyp", "--ref", "--word-order", "--lowercase"],
        ),
        (
            &["metrics", "rouge"],
            &["--hyp", "--ref", "--rouge-types", "--stemmer"],
        ),
    ];
    for (sub, flags) in cases {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = massivetext(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "massivetext {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for flag in *flags {
            assert!(
                text.contains(flag),
                "massivetext {args:?} does not list {flag}:\n{text}"
            );
        }
    }
}

#[test]
fn bad_flags_fail_with_a_message_on_stderr() {
    let out = massivetext(&["train", "--max-steps", "-5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--max-steps") && err.contains("at least 1"),
        "{err}"
    );
    let out = massivetext(&[
        "metrics",
        "bleu",
        "--hyp",
        "/nonexistent/h.txt",
        "--ref",
        "r",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("h.txt"), "{err}");
}

/// A tiny parallel corpus in Multi30k's layout (`{split}.{lang}`): "German" is each English
/// sentence's words reversed and capitalised.
fn toy_multi30k(dir: &std::path::Path, train: usize) {
    let words = [
        "a", "man", "woman", "dog", "runs", "sits", "on", "the", "grass", "street", "red", "blue",
        "ball", "with", "two", "children", "play", "near", "water", "big",
    ];
    let sentence = |i: usize| -> String {
        (0..4 + i % 5)
            .map(|k| words[(i * 7 + k * 13 + k * k) % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let german = |s: &str| -> String {
        s.split(' ')
            .rev()
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect::<Vec<_>>()
            .join(" ")
    };
    std::fs::create_dir_all(dir).unwrap();
    for (split, range) in [
        ("train", 0..train),
        ("val", 1000..1010),
        ("test_2016_flickr", 2000..2012),
    ] {
        let en: Vec<String> = range.map(sentence).collect();
        let de: Vec<String> = en.iter().map(|s| german(s)).collect();
        std::fs::write(dir.join(format!("{split}.en")), en.join("\n") + "\n").unwrap();
        std::fs::write(dir.join(format!("{split}.de")), de.join("\n") + "\n").unwrap();
    }
}

#[test]
fn translate_train_runs_the_job_and_writes_model_translations_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("run"));
    toy_multi30k(&data, 200);
    let run = massivetext(&[
        "translate-train",
        "--quick",
        "--data-dir",
        data.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--max-steps",
        "4",
        "--vocab-size",
        "60",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stderr: {stderr}");
    for f in [
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "translations.txt",
        "report.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing; stderr: {stderr}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["steps"], 4);
    assert_eq!(report["test_sentences"], 12);
    assert_eq!(report["train_examples"], 200);
    let bleu = report["bleu"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&bleu), "{bleu}");
    let lines = std::fs::read_to_string(out.join("translations.txt")).unwrap();
    assert_eq!(
        lines.lines().count(),
        12,
        "one hypothesis per test sentence"
    );
    // the saved model loads back as transformers would load it
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "marian");
}

#[test]
fn translate_train_names_the_file_that_is_missing_or_misaligned() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    toy_multi30k(&data, 50);
    // one German line too few
    let de = std::fs::read_to_string(data.join("train.de")).unwrap();
    let fewer: Vec<&str> = de.lines().skip(1).collect();
    std::fs::write(data.join("train.de"), fewer.join("\n")).unwrap();
    let out = tmp.path().join("run");
    let args = |dir: &str| {
        massivetext(&[
            "translate-train",
            "--quick",
            "--data-dir",
            dir,
            "--output-dir",
            out.to_str().unwrap(),
        ])
    };
    let run = args(data.to_str().unwrap());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("train.en") && stderr.contains("train.de") && stderr.contains("50 lines"),
        "{stderr}"
    );
    assert!(stderr.contains("line-aligned"), "{stderr}");
    let missing = tmp.path().join("nowhere");
    let run = args(missing.to_str().unwrap());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(
        !out.join("model.safetensors").exists(),
        "no half-written output"
    );
}
