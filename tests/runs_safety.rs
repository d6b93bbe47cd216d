//! Issue 30 (the defects of training runs, the command line and its jobs) and issue 35 items 8
//! and 9 (the Trainer past `max_steps`, non-finite arguments): one test per defect, each failing
//! before its fix, in the style of `tests/safety.rs`.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use massivetext::cli::run_from;
use massivetext::models::AutoModelForCausalLM;
use massivetext::train::{IntervalStrategy, Steps, Trainer, TrainerState, TrainingArguments};
use massivetext::{Error, Result, io};

// ---------------------------------------------------------------- helpers

#[path = "common/toy_multi30k.rs"]
mod toy_data;
use toy_data::toy_multi30k;
#[path = "common/tiny_train.rs"]
mod tiny;
use tiny::{tiny_gpt2, tiny_train, windows};

fn train(args: &[OsString], extra: &[&str]) -> Result<String> {
    let mut all: Vec<OsString> = vec!["massivetext".into(), "train".into()];
    all.extend(args.iter().cloned());
    all.extend(extra.iter().map(OsString::from));
    run_from(all)
}

fn run(args: &[&str]) -> Result<String> {
    run_from(std::iter::once("massivetext").chain(args.iter().copied()))
}

/// The `massivetext` binary (for what would abort a test process before its fix).
fn binary(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_massivetext"))
        .args(args)
        .output()
        .expect("the massivetext binary runs")
}

/// Every file under `dir` with its bytes (to show that nothing changed).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn weights(path: &Path) -> BTreeMap<String, Vec<f32>> {
    io::read_safetensors(path)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn quiet_args(dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: dir.to_path_buf(),
        per_device_train_batch_size: 4,
        max_steps: Some(10),
        learning_rate: 1e-2,
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    }
}

// ---------------------------------------------------------------- issue 30, item 1

#[test]
fn item_1_load_best_needs_save_steps_a_multiple_of_eval_steps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // The probe's command: refused before anything is written.
    let e = train(
        &tiny_train(&out, 40),
        &[
            "--set",
            "save_steps=6",
            "--set",
            "eval_steps=20",
            "--set",
            "load_best_model_at_end=true",
        ],
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("load_best_model_at_end")
            && msg.contains("save_steps (6)")
            && msg.contains("multiple of eval_steps (20)"),
        "{msg}"
    );
    assert!(!out.exists());

    // As TrainingArguments: absolute steps, a ratio mixed with steps, and ratios.
    let args = |save: Steps, eval: Steps| TrainingArguments {
        load_best_model_at_end: true,
        eval_strategy: IntervalStrategy::Steps,
        eval_steps: Some(eval),
        save_steps: save,
        ..Default::default()
    };
    assert!(args(Steps::Every(40), Steps::Every(20)).validate().is_ok());
    assert!(args(Steps::Every(6), Steps::Every(20)).validate().is_err());
    assert!(
        args(Steps::Ratio(0.5), Steps::Every(20))
            .validate()
            .is_err()
    );
    assert!(
        args(Steps::Ratio(0.4), Steps::Ratio(0.2))
            .validate()
            .is_ok()
    );
    assert!(
        args(Steps::Ratio(0.5), Steps::Ratio(0.2))
            .validate()
            .is_err()
    );
    // Ratios that are multiples of each other but whose step counts are not in this run
    // (11 steps: eval every ceil(2.2) = 3, save every ceil(6.6) = 7): refused when the trainer
    // knows the run's length.
    let a = TrainingArguments {
        max_steps: Some(11),
        output_dir: dir.path().join("ratios"),
        ..args(Steps::Ratio(0.6), Steps::Ratio(0.2))
    };
    let e = Trainer::new(
        AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap(),
        a,
        windows(),
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("every 7 steps"), "{e}");
}

#[test]
fn item_1_best_checkpoint_names_the_weights_that_were_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let m = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let mut t = Trainer::new(m, quiet_args(dir.path()), windows())
        .unwrap()
        .with_eval_dataset(windows())
        .unwrap();
    t.step().unwrap();
    t.step().unwrap();
    t.evaluate().unwrap(); // the first evaluation is the best so far, at step 2
    t.step().unwrap();
    let cp = t.save_checkpoint().unwrap(); // step 3: other weights than the evaluated ones
    assert!(cp.ends_with("checkpoint-3"));
    assert_eq!(t.state().best_global_step, Some(2));
    assert_eq!(
        t.state().best_model_checkpoint,
        None,
        "checkpoint-3 does not hold the weights evaluated at step 2"
    );
    // Evaluated and saved at the same step: that checkpoint is the best.
    t.evaluate().unwrap();
    let cp = t.save_checkpoint().unwrap();
    if t.state().best_global_step == Some(3) {
        assert_eq!(
            t.state().best_model_checkpoint.as_deref(),
            Some(cp.to_str().unwrap())
        );
    }
}

#[test]
fn item_1_the_final_checkpoint_holds_its_own_step_weights_with_load_best() {
    let dir = tempfile::tempdir().unwrap();
    let (best, straight) = (dir.path().join("best"), dir.path().join("straight"));
    let flags = [
        "--set",
        "save_steps=10",
        "--set",
        "eval_steps=10",
        "--set",
        "save_total_limit=10",
    ];
    let mut with_best = flags.to_vec();
    with_best.extend(["--set", "load_best_model_at_end=true"]);
    train(&tiny_train(&best, 25), &with_best).unwrap();
    train(&tiny_train(&straight, 25), &flags).unwrap();
    let state = TrainerState::load_from_json(&best.join("trainer_state.json")).unwrap();
    let best_cp = PathBuf::from(state.best_model_checkpoint.expect("a best checkpoint"));
    assert!(best_cp.is_dir(), "{}", best_cp.display());
    // the final model is the best checkpoint's
    assert_eq!(
        weights(&best.join("model.safetensors")),
        weights(&best_cp.join("model.safetensors"))
    );
    // and every checkpoint holds the weights of its own step, as the run without
    // load_best_model_at_end has them
    for cp in massivetext::train::sorted_checkpoints(&best) {
        let name = cp.file_name().unwrap();
        let other = straight.join(name);
        assert!(other.is_dir(), "{}", other.display());
        assert_eq!(
            weights(&cp.join("model.safetensors")),
            weights(&other.join("model.safetensors")),
            "{}",
            cp.display()
        );
    }
}

// ---------------------------------------------------------------- issue 30, item 2

#[test]
fn item_2_resuming_with_another_architecture_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train(&tiny_train(&out, 10), &["--set", "n_layer=2"]).unwrap();
    let before = snapshot(&out);
    let e = train(
        &tiny_train(&out, 20),
        &["--resume-from-checkpoint", "latest"],
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("checkpoint-10") && msg.contains("n_layer 2") && msg.contains("n_layer 1"),
        "{msg}"
    );
    assert!(
        msg.contains("--output-dir") || msg.contains("the checkpoint's settings"),
        "{msg}"
    );
    assert_eq!(snapshot(&out), before, "nothing changed");
    // Wider is refused too.
    let e = train(
        &tiny_train(&out, 20),
        &[
            "--set",
            "n_layer=2",
            "--set",
            "n_embd=32",
            "--resume-from-checkpoint",
            "latest",
        ],
    )
    .unwrap_err();
    assert!(e.to_string().contains("n_embd"), "{e}");
    assert_eq!(snapshot(&out), before, "nothing changed");
    // The same architecture resumes.
    train(
        &tiny_train(&out, 15),
        &["--set", "n_layer=2", "--resume-from-checkpoint", "latest"],
    )
    .unwrap();
}

// ---------------------------------------------------------------- issue 30, item 6

#[test]
fn item_6_a_kill_after_the_last_checkpoint_is_finished_by_resuming() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train(&tiny_train(&out, 20), &[]).unwrap();
    let finished = weights(&out.join("model.safetensors"));
    // What a kill after checkpoint-20 and before the final writes leaves.
    for f in [
        "model.safetensors",
        "config.json",
        "training_args.json",
        "loss_curve.svg",
        "samples.txt",
        "train_results.json",
    ] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let summary = train(
        &tiny_train(&out, 20),
        &["--resume-from-checkpoint", "latest"],
    )
    .unwrap();
    assert!(summary.contains("checkpoint-20"), "{summary}");
    assert_eq!(weights(&out.join("model.safetensors")), finished);
    assert!(out.join("samples.txt").is_file() && out.join("loss_curve.svg").is_file());
    // Now it is finished: a second resume changes nothing.
    let before = snapshot(&out);
    let e = train(
        &tiny_train(&out, 20),
        &["--resume-from-checkpoint", "latest"],
    )
    .unwrap_err();
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(snapshot(&out), before);
}

// ---------------------------------------------------------------- issue 30, item 5

/// A tiny parallel corpus in Multi30k's layout (`{split}.{lang}`).
#[test]
fn item_5_a_line_missing_beyond_max_train_examples_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    toy_multi30k(&data, 60);
    // one German line deleted in the middle: every pair after it is shifted
    let de = std::fs::read_to_string(data.join("train.de")).unwrap();
    let mut lines: Vec<&str> = de.lines().collect();
    lines.remove(10);
    std::fs::write(data.join("train.de"), lines.join("\n") + "\n").unwrap();
    let out = tmp.path().join("run");
    let e = run(&[
        "translate-train",
        "--quick",
        "--device",
        "cpu",
        "--data-dir",
        data.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--max-train-examples",
        "20",
        "--max-steps",
        "1",
        "--disable-tqdm",
    ])
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("train.en has 60 lines") && msg.contains("train.de has 59"),
        "{msg}"
    );
    assert!(!out.join("model.safetensors").exists());
}

// ---------------------------------------------------------------- issue 30, item 7

#[test]
fn item_7_a_model_too_large_for_the_machine_is_refused_with_the_figures() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, value) in [("--block-size", "1000000000"), ("--n-embd", "2000000")] {
        let out = tmp.path().join(format!("run{flag}"));
        let o = binary(&[
            "train",
            "--device",
            "cpu",
            "--max-steps",
            "1",
            "--train-stories",
            "20",
            "--output-dir",
            out.to_str().unwrap(),
            flag,
            value,
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains("needs about")
                && stderr.contains("GiB")
                && stderr.contains("this machine has"),
            "{flag} {value}: {stderr}"
        );
        assert!(!stderr.contains("backtrace"), "{stderr}");
        assert!(!out.exists(), "nothing written");
    }
}

#[test]
fn item_7_a_llama_too_large_is_refused_by_its_own_size() {
    // the estimate reads the Llama config itself (rotary positions, a gated MLP of three
    // matrices, kv heads); `tests/model_copies_and_configs.rs` checks its count of parameters
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = binary(&[
        "train",
        "--device",
        "cpu",
        "--max-steps",
        "1",
        "--train-stories",
        "20",
        "--set",
        "model_type=llama",
        "--n-embd",
        "3000000",
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs about") && stderr.contains("this machine has"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn item_7_translate_train_too_large_is_refused_before_reading_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    toy_multi30k(&data, 60);
    let out = tmp.path().join("run");
    let o = binary(&[
        "translate-train",
        "--quick",
        "--device",
        "cpu",
        "--data-dir",
        data.to_str().unwrap(),
        "--vocab-size",
        "4000000000",
        "--output-dir",
        out.to_str().unwrap(),
        "--disable-tqdm",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs about")
            && stderr.contains("this machine has")
            && stderr.contains("--vocab-size"),
        "{stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert!(!out.exists(), "nothing written");
}

// ---------------------------------------------------------------- issue 30, item 8

#[test]
fn item_8_train_tokenizer_refuses_to_replace_a_tokenizer_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("text.txt");
    std::fs::write(
        &text,
        "the cat sat on the mat\nthe dog ran in the park\n".repeat(20),
    )
    .unwrap();
    let out = tmp.path().join("model");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("tokenizer.json"), "{\"the model's own\": 1}").unwrap();
    let args = |force: bool| {
        let mut a = vec![
            "train-tokenizer",
            "--kind",
            "wordpiece",
            "--vocab-size",
            "60",
            "--out",
            out.to_str().unwrap(),
            text.to_str().unwrap(),
        ];
        if force {
            a.push("--force");
        }
        run(&a)
    };
    let e = args(false).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("tokenizer.json") && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        "{\"the model's own\": 1}"
    );
    args(true).unwrap();
    assert!(
        std::fs::read_to_string(out.join("tokenizer.json"))
            .unwrap()
            .contains("WordPiece")
    );
}

// ---------------------------------------------------------------- issue 30, item 13

#[test]
fn item_13_a_second_train_into_the_same_folder_is_refused_by_a_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // Another (living) process holds the folder: this test's own process id.
    let lock = tmp.path().join(".run.lock");
    std::fs::write(&lock, std::process::id().to_string()).unwrap();
    let e = train(&tiny_train(&out, 5), &[]).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("being written by another process")
            && msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(!out.exists(), "the loser wrote nothing");
    // The lock released, the run goes ahead and removes its own lock at the end.
    std::fs::remove_file(&lock).unwrap();
    train(&tiny_train(&out, 5), &[]).unwrap();
    assert!(!lock.exists());
    assert!(out.join("model.safetensors").is_file());
}

#[test]
fn item_13_two_train_processes_at_once_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let args: Vec<OsString> = std::iter::once(OsString::from("train"))
        .chain(tiny_train(&out, 30))
        .collect();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_massivetext"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let errs: Vec<String> = [&a, &b]
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    // Either one ran after the other finished (then the folder is not empty), or they met
    // at the lock; never two runs in one folder.
    assert_eq!(errs.len(), 1, "exactly one loser: {errs:?}");
    assert!(
        errs[0].contains("being written by another process") || errs[0].contains("is not empty"),
        "{}",
        errs[0]
    );
    assert!(out.join("model.safetensors").is_file());
}

// ---------------------------------------------------------------- issue 30, item 12

#[test]
fn item_12_a_non_utf8_output_dir_is_kept_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp
        .path()
        .join(std::ffi::OsStr::from_bytes(b"run-\xff\xfe-latin1"));
    train(&tiny_train(&out, 5), &[]).unwrap();
    assert!(out.join("model.safetensors").is_file());
    let names: Vec<OsString> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.to_string_lossy().contains('\u{FFFD}')
                || n.as_bytes() == b"run-\xff\xfe-latin1"),
        "{names:?}"
    );
    // and a resume finds its checkpoints there
    train(
        &tiny_train(&out, 10),
        &["--resume-from-checkpoint", "latest"],
    )
    .unwrap();
}

// ---------------------------------------------------------------- issue 30, item 15

#[test]
fn item_15_wording() {
    // `train --seed` help says both defaults
    let help = run(&["train", "--help"]).unwrap();
    let seed_line = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--seed"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        seed_line.contains("corpus 1") && seed_line.contains("training 42"),
        "{seed_line}"
    );
    // a parse error without a position names no `:0:0`
    let e = Error::Parse {
        path: "job.toml".into(),
        line: 0,
        column: 0,
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "job.toml: bad");
    // translate-train has the flag its advice names
    let help = run(&["translate-train", "--help"]).unwrap();
    assert!(help.contains("--resume-from-checkpoint"), "{help}");
    // `--temperature -1` is a value, not a flag (whether it is refused depends on --do-sample,
    // as in transformers: tests/library_safety.rs)
    let tmp = tempfile::tempdir().unwrap();
    let e = run(&[
        "generate",
        "--model",
        tmp.path().to_str().unwrap(),
        "--prompt",
        "x",
        "--temperature",
        "-1",
    ])
    .unwrap_err();
    assert!(!e.to_string().contains("unexpected argument"), "{e}");
    // `generate --model FILE` names the file, no Hub download
    let file = tmp.path().join("some.txt");
    std::fs::write(&file, "hello").unwrap();
    let e = run(&[
        "generate",
        "--model",
        file.to_str().unwrap(),
        "--prompt",
        "x",
    ])
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("some.txt") && msg.contains("is a file") && !msg.contains("huggingface.co"),
        "{msg}"
    );
    // `train-tokenizer --vocab-size` says its minimum
    let help = run(&["train-tokenizer", "--help"]).unwrap();
    let line = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--vocab-size"))
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(line.contains("at least") && line.contains("256"), "{line}");
    // `dataset info --kind arrow FOLDER` says it is a folder
    let e = run(&[
        "dataset",
        "info",
        "--kind",
        "arrow",
        tmp.path().to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(
        e.to_string().contains("is a folder") && !e.to_string().contains("os error 19"),
        "{e}"
    );
}

#[test]
fn item_15_generate_names_an_encoder_decoder_folder() {
    let tmp = tempfile::tempdir().unwrap();
    // a Marian folder given to `generate` is named as what it is
    let marian = tmp.path().join("marian");
    std::fs::create_dir_all(&marian).unwrap();
    std::fs::write(
        marian.join("config.json"),
        r#"{"model_type": "marian", "is_encoder_decoder": true}"#,
    )
    .unwrap();
    let e = run(&[
        "generate",
        "--model",
        marian.to_str().unwrap(),
        "--prompt",
        "x",
    ])
    .unwrap_err();
    assert!(
        e.to_string().contains("encoder-decoder") && e.to_string().contains("causal"),
        "{e}"
    );
}

#[test]
fn item_15_generate_names_a_character_the_vocabulary_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("chars");
    train(&tiny_train(&model, 2), &[]).unwrap();
    // a prompt character the character vocabulary lacks is named
    let e = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "\u{2603}",
    ])
    .unwrap_err();
    assert!(
        e.to_string().contains("no token for '\u{2603}'") && !e.to_string().contains("WordLevel"),
        "{e}"
    );
}

#[test]
fn item_15_generate_has_the_truncate_prompt_flag_its_advice_names() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("chars");
    train(&tiny_train(&model, 2), &[]).unwrap();
    // the advice for a prompt longer than the context names a flag `generate` has
    let long = "Tom had 3 eggs. ".repeat(3);
    let e = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        &long,
        "--max-new-tokens",
        "2",
    ])
    .unwrap_err();
    assert!(e.to_string().contains("truncate_prompt"), "{e}");
    run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        &long,
        "--truncate-prompt",
        "--max-new-tokens",
        "2",
    ])
    .unwrap();
}

#[test]
fn item_15_no_resume_advice_before_the_first_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let m = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        learning_rate: 1e30,
        ..quiet_args(dir.path())
    };
    let mut t = Trainer::new(m, args, windows()).unwrap();
    let e = (0..10).find_map(|_| t.step().err()).expect("diverges");
    let msg = e.to_string();
    assert!(
        msg.contains("no checkpoint was saved yet") && !msg.contains("resume from"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- issue 35, items 8 and 9

#[test]
fn issue_35_item_8_step_after_train_past_max_steps_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        max_steps: Some(3),
        ..quiet_args(dir.path())
    };
    let mut t = Trainer::new(m, args, windows()).unwrap();
    t.train().unwrap();
    let before = weights_of(&t);
    let e = t.step().unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("max_steps") && msg.contains("3") && msg.contains("resume"),
        "{msg}"
    );
    assert_eq!(t.global_step(), 3);
    assert_eq!(weights_of(&t), before, "no parameter changed");
}

fn weights_of(t: &Trainer<AutoModelForCausalLM>) -> BTreeMap<String, Vec<f32>> {
    let vm = massivetext::train::PreTrainedModel::varmap(t.model());
    let data = vm.data().lock().unwrap();
    data.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect()
}

#[test]
fn issue_35_item_9_non_finite_arguments_are_refused() {
    let base = TrainingArguments::default();
    let cases: Vec<(&str, TrainingArguments)> = vec![
        (
            "num_train_epochs",
            TrainingArguments {
                num_train_epochs: f64::INFINITY,
                max_steps: None,
                ..base.clone()
            },
        ),
        (
            "num_train_epochs",
            TrainingArguments {
                num_train_epochs: f64::NAN,
                max_steps: Some(10),
                ..base.clone()
            },
        ),
        (
            "adam_epsilon",
            TrainingArguments {
                adam_epsilon: f64::INFINITY,
                ..base.clone()
            },
        ),
        (
            "weight_decay",
            TrainingArguments {
                weight_decay: f64::INFINITY,
                ..base.clone()
            },
        ),
        (
            "max_grad_norm",
            TrainingArguments {
                max_grad_norm: f64::INFINITY,
                ..base.clone()
            },
        ),
        (
            "logging_steps",
            TrainingArguments {
                logging_steps: Steps::Ratio(f64::NAN),
                ..base.clone()
            },
        ),
        (
            "save_steps",
            TrainingArguments {
                save_steps: Steps::Ratio(f64::INFINITY),
                ..base.clone()
            },
        ),
        (
            "eval_steps",
            TrainingArguments {
                eval_steps: Some(Steps::Ratio(f64::NAN)),
                ..base.clone()
            },
        ),
    ];
    for (key, args) in cases {
        let e = args.validate().unwrap_err();
        assert!(
            e.to_string().contains(&format!("TrainingArguments.{key}")),
            "{key}: {e}"
        );
    }
}

// ---------------------------------------------------------------- issue 30, item 17

/// Examples and benches run again and again: each one that trains into an `output_dir` either
/// makes a fresh folder of its own (`tempdir()`) or replaces its own output
/// (`overwrite_output_dir: true`); a fixed folder without either fails the second time with
/// `OutputDirNotEmpty`.
#[test]
fn item_17_examples_and_benches_can_run_twice() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for folder in ["examples", "benches"] {
        for e in std::fs::read_dir(root.join(folder)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            if !text.contains("output_dir:") && !text.contains(".output_dir =") {
                continue;
            }
            checked += 1;
            assert!(
                text.contains("tempdir()") || text.contains("overwrite_output_dir: true"),
                "{}: trains into a fixed folder that a second run finds not empty",
                p.display()
            );
        }
    }
    assert!(checked >= 3, "{checked} files checked");
}
