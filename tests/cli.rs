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
