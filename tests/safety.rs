//! Issue 18: "nothing lost, nothing silently wrong". One test per defect found by using the
//! command line as a hostile but realistic user would (bad files, kill -9 during saves, a full
//! disk, reruns into the same folder), a crash test (SIGKILL at seeded random moments, resumed
//! each time) and a fault-injection test for writes.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use massivetext::Error;
use massivetext::cli::run_from;
use massivetext::models::{AutoModelForCausalLM, Task, check_weights};
use massivetext::tokenizer::{TokenizerKind, TrainOptions};
use massivetext::train::{
    IntervalStrategy, Steps, Trainer, TrainerState, TrainingArguments, sorted_checkpoints,
};
use massivetext::{Result, io};

// ---------------------------------------------------------------- helpers

#[path = "common/tiny_train.rs"]
mod tiny;
use tiny::{tiny_gpt2, windows};

/// `massivetext train` flags for a run of a few seconds at most (common/tiny_train.rs).
fn tiny_train(out: &Path, max_steps: usize) -> Vec<String> {
    tiny::tiny_train(out, max_steps)
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

fn train(args: &[String], extra: &[&str]) -> Result<String> {
    let mut all = vec!["massivetext".to_string(), "train".to_string()];
    all.extend(args.iter().cloned());
    all.extend(extra.iter().map(|s| s.to_string()));
    run_from(all)
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

/// Names under `dir` (recursively) that a failed or killed write would leave.
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    snapshot_names(dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".tmp") || n.starts_with("tmp-checkpoint-") || n.starts_with(".deleting-")
        })
        .collect()
}

fn snapshot_names(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

fn quiet_args(dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: dir.to_path_buf(),
        per_device_train_batch_size: 4,
        max_steps: Some(10),
        learning_rate: 1e-2,
        save_strategy: IntervalStrategy::Steps,
        save_steps: Steps::Every(5),
        disable_tqdm: true,
        ..Default::default()
    }
}

fn weights(path: &Path) -> BTreeMap<String, Vec<f32>> {
    io::read_safetensors(path)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn max_diff(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> f32 {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same tensors"
    );
    a.iter()
        .flat_map(|(k, va)| va.iter().zip(&b[k]).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

// ---------------------------------------------------------------- defect 1

#[test]
fn defect_1_refuses_a_nonempty_output_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train(&tiny_train(&out, 20), &[]).unwrap();
    let before = snapshot(&out);
    assert!(out.join("checkpoint-20").is_dir());

    // A second run into the finished one: refused, and nothing changed.
    let e = train(&tiny_train(&out, 10), &[]).unwrap_err();
    assert!(matches!(e, Error::OutputDirNotEmpty { .. }), "{e}");
    let msg = e.to_string();
    for part in [
        "is not empty",
        "checkpoint-20/",
        "model.safetensors",
        "--resume-from-checkpoint latest",
        "--overwrite-output-dir",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert_eq!(snapshot(&out), before, "the refused run changed files");

    // With --overwrite-output-dir: the old run's checkpoints go, so `latest` is this run's.
    let summary = train(&tiny_train(&out, 10), &["--overwrite-output-dir"]).unwrap();
    assert!(summary.contains("trained 10 steps"), "{summary}");
    let names: Vec<String> = sorted_checkpoints(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["checkpoint-5", "checkpoint-10"]);

    // The Trainer itself refuses too (the notebook path).
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let m = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let mut t = Trainer::new(m, quiet_args(&busy), windows()).unwrap();
    let e = t.train().unwrap_err();
    assert!(
        matches!(&e, Error::OutputDirNotEmpty { found, .. } if found == "notes.txt"),
        "{e}"
    );
    assert_eq!(t.global_step(), 0);
    assert_eq!(
        std::fs::read_to_string(busy.join("notes.txt")).unwrap(),
        "mine"
    );
}

// ---------------------------------------------------------------- defect 2

#[test]
fn defect_2_a_named_tokenizer_file_is_loaded_not_swapped() {
    use massivetext::tokenizer::Tokenizer;
    let texts: Vec<String> = massivetext::corpus::corpus_text(60, 3)
        .lines()
        .map(String::from)
        .collect();
    let big = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(700)).unwrap();
    let small =
        Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(350)).unwrap();
    assert_ne!(big.vocab_size(), small.vocab_size());
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tok");
    big.save_pretrained(&folder).unwrap();
    let other = dir.path().join("other");
    small.save_pretrained(&other).unwrap();
    std::fs::copy(other.join("tokenizer.json"), folder.join("tok2k.json")).unwrap();

    let named = Tokenizer::from_pretrained(folder.join("tok2k.json")).unwrap();
    assert_eq!(
        named.vocab_size(),
        small.vocab_size(),
        "tok2k.json was swapped"
    );
    assert_eq!(
        named.encode("Tom has 3 apples.").unwrap(),
        small.encode("Tom has 3 apples.").unwrap()
    );
    // The folder, and its tokenizer.json by name, still load the folder's tokenizer.
    assert_eq!(
        Tokenizer::from_pretrained(&folder).unwrap().vocab_size(),
        big.vocab_size()
    );
    assert_eq!(
        Tokenizer::from_pretrained(folder.join("tokenizer.json"))
            .unwrap()
            .vocab_size(),
        big.vocab_size()
    );
    // A named file that is broken is rejected, naming it (never replaced by tokenizer.json).
    std::fs::write(folder.join("broken.json"), "{\"not\": \"a tokenizer\"}").unwrap();
    let e = Tokenizer::from_pretrained(folder.join("broken.json")).unwrap_err();
    assert!(e.to_string().contains("broken.json"), "{e}");
    std::fs::write(folder.join("notes.txt"), "hello").unwrap();
    let e = Tokenizer::from_pretrained(folder.join("notes.txt")).unwrap_err();
    assert!(e.to_string().contains("not a tokenizer file"), "{e}");

    // The command line: `tokenize --tokenizer dir/tok2k.json` uses tok2k.json.
    let text = dir.path().join("a.txt");
    std::fs::write(&text, texts[..20].join("\n")).unwrap();
    let shards = dir.path().join("shards");
    run_from([
        "massivetext",
        "tokenize",
        "--tokenizer",
        folder.join("tok2k.json").to_str().unwrap(),
        "--out",
        shards.to_str().unwrap(),
        text.to_str().unwrap(),
    ])
    .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shards.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["vocab_size"], small.vocab_size());
}

// ---------------------------------------------------------------- defect 3

#[test]
fn defect_3_unused_weights_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let m = AutoModelForCausalLM::from_config(tiny_gpt2(2), &Device::Cpu).unwrap();
    m.save_pretrained(dir.path()).unwrap();
    // A known buffer, as old GPT-2 checkpoints carry it: never reported.
    let mut tensors: Vec<(String, Tensor)> =
        io::read_safetensors(&dir.path().join("model.safetensors"))
            .unwrap()
            .tensors
            .into_iter()
            .collect();
    tensors.push((
        "h.0.attn.bias".into(),
        Tensor::ones((1, 1, 16, 16), DType::F32, &Device::Cpu).unwrap(),
    ));
    io::write_safetensors(
        &dir.path().join("model.safetensors"),
        &tensors,
        Default::default(),
    )
    .unwrap();
    // Complete weights: nothing unused.
    let report = check_weights(dir.path(), Task::CausalLm).unwrap();
    assert_eq!(report.unused, Vec::<String>::new());

    // config.json says 1 layer over 2-layer weights: every h.1 weight is reported.
    let cfg_path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["n_layer"] = 1.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let report = check_weights(dir.path(), Task::CausalLm).unwrap();
    let mut expected: Vec<String> = m
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains("h.1."))
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 12, "{expected:?}");
    assert_eq!(report.unused, expected);
    assert_eq!(report.path, dir.path().join("model.safetensors"));
    let warning = report.warning("GPT2LMHeadModel");
    assert!(
        warning.starts_with("Some weights of the model checkpoint at")
            && warning.contains("were not used when initializing GPT2LMHeadModel")
            && warning.contains("h.1.mlp.c_fc.weight"),
        "{warning}"
    );
    // Loading still works (transformers loads it too), with the warning on stderr.
    AutoModelForCausalLM::from_dir(dir.path(), &Device::Cpu).unwrap();
    // Missing weights are still an error: 2 layers over 1-layer weights.
    let small = tempfile::tempdir().unwrap();
    AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu)
        .unwrap()
        .save_pretrained(small.path())
        .unwrap();
    let p = small.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg["n_layer"] = 2.into();
    std::fs::write(&p, cfg.to_string()).unwrap();
    let e = check_weights(small.path(), Task::CausalLm).unwrap_err();
    assert!(matches!(e, Error::MissingWeight { .. }), "{e}");
}

// ---------------------------------------------------------------- defect 4

#[test]
fn defect_4_csv_unterminated_quote_fails_like_pandas() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("reviews.csv");
    std::fs::write(
        &p,
        "text,label\ngood,1\n\"bad, \"\"really\"\" bad,0\nfine,1\nlast,0\n",
    )
    .unwrap();
    let e = massivetext::data::load_dataset("csv", &p).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("reviews.csv:3:1") && msg.contains("EOF inside string starting at row 2"),
        "{msg}"
    );
    // Quotes closed (a doubled quote inside, a quoted newline): loads, rows intact.
    std::fs::write(
        &p,
        "text,label\ngood,1\n\"bad, \"\"really\"\"\nbad\",0\nfine,1\n",
    )
    .unwrap();
    let dd = massivetext::data::load_dataset("csv", &p).unwrap();
    assert_eq!(dd["train"].num_rows(), 3);
    assert_eq!(
        dd["train"].column_str("text").unwrap()[1],
        "bad, \"really\"\nbad"
    );
}

// ---------------------------------------------------------------- defect 5

#[test]
fn defect_5_resume_at_max_steps_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train(&tiny_train(&out, 20), &[]).unwrap();
    let before = snapshot(&out);

    let e = train(
        &tiny_train(&out, 20),
        &["--resume-from-checkpoint", "latest"],
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("checkpoint-20")
            && msg.contains("at step 20 and max_steps is 20")
            && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert_eq!(snapshot(&out), before);
    // Past max_steps too.
    let e = train(
        &tiny_train(&out, 10),
        &["--resume-from-checkpoint", "latest"],
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_steps is 10"), "{e}");
    assert_eq!(snapshot(&out), before);

    // A corrupted global_step: refused before anything changes.
    let state_path = out.join("checkpoint-20/trainer_state.json");
    let good_state = std::fs::read_to_string(&state_path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good_state).unwrap();
    v["global_step"] = 900.into();
    std::fs::write(&state_path, v.to_string()).unwrap();
    let corrupted = snapshot(&out);
    let e = train(
        &tiny_train(&out, 30),
        &["--resume-from-checkpoint", "latest"],
    )
    .unwrap_err();
    assert!(e.to_string().contains("global_step 900 disagrees"), "{e}");
    assert_eq!(snapshot(&out), corrupted);
    std::fs::write(&state_path, good_state).unwrap();

    // A real resume says where it resumed and counts only the steps it ran.
    let summary = train(
        &tiny_train(&out, 30),
        &["--resume-from-checkpoint", "latest"],
    )
    .unwrap();
    assert!(
        summary.starts_with("resumed from checkpoint-20 at step 20; trained 10 steps"),
        "{summary}"
    );
    let state = TrainerState::load_from_json(&out.join("trainer_state.json")).unwrap();
    assert_eq!(state.global_step, 30);
}

// ---------------------------------------------------------------- defect 6 (fault injection)

#[test]
fn defect_6_a_failed_save_leaves_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let m = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let mut t = Trainer::new(m, quiet_args(&out), windows()).unwrap();
    for _ in 0..5 {
        t.step().unwrap();
    }
    let first = out.join("checkpoint-5");
    let kept = snapshot(&first);
    assert_eq!(kept.len(), 7, "{:?}", kept.keys());
    // The disk fills up during the next checkpoint: its 3rd file (optimizer.safetensors).
    io::inject_write_failure(Some(3));
    for _ in 0..4 {
        t.step().unwrap();
    }
    let e = t.step().unwrap_err();
    io::inject_write_failure(None);
    assert!(matches!(e, Error::Write { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot write ")
            && msg.contains("optimizer.safetensors")
            && msg.contains("No space left on device")
            && msg.contains("free some disk space"),
        "{msg}"
    );
    // Nothing partial, the previous checkpoint as it was, no checkpoint-10.
    assert_eq!(partial_files(&out), Vec::<PathBuf>::new());
    assert_eq!(snapshot(&first), kept);
    assert_eq!(sorted_checkpoints(&out), vec![first.clone()]);

    // The next run resumes from it and finishes (no leftovers to trip on).
    let m2 = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        resume_from_checkpoint: Some("latest".into()),
        ..quiet_args(&out)
    };
    let mut t2 = Trainer::new(m2, args, windows()).unwrap();
    let res = t2.train().unwrap();
    assert_eq!((res.global_step, res.steps_run), (10, 5));
    assert_eq!(res.resumed_from, Some(first));

    // Leftovers of a crash (a half-written checkpoint, temporary files, a half-deleted
    // checkpoint) are swept when the next run starts.
    std::fs::create_dir_all(out.join("tmp-checkpoint-15")).unwrap();
    std::fs::write(out.join("tmp-checkpoint-15/model.safetensors"), b"half").unwrap();
    std::fs::write(out.join("model.safetensors.tmp"), b"half").unwrap();
    std::fs::create_dir_all(out.join(".deleting-checkpoint-5")).unwrap();
    let m3 = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        resume_from_checkpoint: Some("latest".into()),
        max_steps: Some(15),
        ..quiet_args(&out)
    };
    let mut t3 = Trainer::new(m3, args, windows()).unwrap();
    t3.train().unwrap();
    assert_eq!(partial_files(&out), Vec::<PathBuf>::new());
    assert!(out.join("checkpoint-15/model.safetensors").is_file());
}

// ---------------------------------------------------------------- defect 7

#[test]
fn defect_7_rotation_never_leaves_a_partial_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let m = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        max_steps: Some(20),
        save_total_limit: Some(2),
        ..quiet_args(&out)
    };
    let mut t = Trainer::new(m, args.clone(), windows()).unwrap();
    t.train().unwrap();
    let names: Vec<String> = sorted_checkpoints(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["checkpoint-15", "checkpoint-20"]);
    assert_eq!(partial_files(&out), Vec::<PathBuf>::new());

    // What a kill in the middle of deleting checkpoint-15 now leaves: the folder already
    // renamed aside, half emptied. `latest` and every checkpoint-N still load...
    let aside = out.join(".deleting-checkpoint-15");
    std::fs::rename(out.join("checkpoint-15"), &aside).unwrap();
    std::fs::remove_file(aside.join("model.safetensors")).unwrap();
    for cp in sorted_checkpoints(&out) {
        AutoModelForCausalLM::from_dir(&cp, &Device::Cpu).unwrap();
    }
    // ...and the next run sweeps it.
    let m2 = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let mut t2 = Trainer::new(
        m2,
        TrainingArguments {
            max_steps: Some(25),
            resume_from_checkpoint: Some("latest".into()),
            ..args
        },
        windows(),
    )
    .unwrap();
    t2.train().unwrap();
    assert!(!aside.exists());
    assert_eq!(partial_files(&out), Vec::<PathBuf>::new());

    // Replacing an existing checkpoint-N (saving twice at one step) goes through a rename too.
    t2.save_checkpoint().unwrap();
    assert_eq!(partial_files(&out), Vec::<PathBuf>::new());
    AutoModelForCausalLM::from_dir(out.join("checkpoint-25"), &Device::Cpu).unwrap();
}

// ---------------------------------------------------------------- defect 8

#[test]
fn defect_8_write_failures_are_reported_as_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    // An output folder under a file: "Not a directory" / "File exists" while writing.
    let e = train(&tiny_train(&file.join("run"), 5), &[]).unwrap_err();
    assert!(matches!(e, Error::Write { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot write ") && !msg.contains("check that the file exists"),
        "{msg}"
    );
    // The same for token shards.
    let text = dir.path().join("a.txt");
    std::fs::write(&text, "one line\nanother line\n").unwrap();
    let tok = massivetext::tokenizer::Tokenizer::train(
        TokenizerKind::Bpe,
        ["one line", "another line"].iter(),
        &TrainOptions::new(300),
    )
    .unwrap();
    let tok_dir = dir.path().join("tok");
    tok.save_pretrained(&tok_dir).unwrap();
    let e = run_from([
        "massivetext",
        "tokenize",
        "--tokenizer",
        tok_dir.to_str().unwrap(),
        "--out",
        file.join("shards").to_str().unwrap(),
        text.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(e.to_string().starts_with("cannot write "), "{e}");
    // A checkpoint whose folder name is taken by a file.
    let out = dir.path().join("run");
    let m = AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu).unwrap();
    let mut t = Trainer::new(m, quiet_args(&out), windows()).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("tmp-checkpoint-0"), "a file in the way").unwrap();
    let e = t.save_checkpoint().unwrap_err();
    assert!(matches!(e, Error::Write { .. }), "{e:?}");
    assert!(e.to_string().contains("tmp-checkpoint-0"), "{e}");
}

// ---------------------------------------------------------------- defect 9

#[test]
fn defect_9_tokenize_refuses_to_replace_shards_and_locks_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let tok = massivetext::tokenizer::Tokenizer::train(
        TokenizerKind::Bpe,
        ["the cat sat", "the dog ran"].iter(),
        &TrainOptions::new(300),
    )
    .unwrap();
    let tok_dir = dir.path().join("tok");
    tok.save_pretrained(&tok_dir).unwrap();
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.txt");
    std::fs::write(&a, "the cat sat\nthe dog ran\n").unwrap();
    std::fs::write(&b, "the dog sat\n").unwrap();
    let out = dir.path().join("shards");
    let tokenize = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "massivetext",
            "tokenize",
            "--tokenizer",
            tok_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        run_from(args)
    };
    tokenize(&a, &[]).unwrap();
    let built = snapshot(&out);
    // Other inputs into the same folder: refused, nothing replaced.
    let e = tokenize(&b, &[]).unwrap_err().to_string();
    assert!(
        e.contains("already holds token shards") && e.contains("a.txt") && e.contains("--force"),
        "{e}"
    );
    assert_eq!(snapshot(&out), built);
    // The same inputs: kept, as before.
    assert!(tokenize(&a, &[]).unwrap().contains("already holds"));
    // With --force: replaced.
    tokenize(&b, &["--force"]).unwrap();
    assert_ne!(snapshot(&out), built);

    // A live process holds the lock (this test process): a second build is refused.
    let lock = dir.path().join(".shards.lock");
    std::fs::write(&lock, std::process::id().to_string()).unwrap();
    let e = tokenize(&a, &["--force"]).unwrap_err().to_string();
    assert!(
        e.contains("being written by another process")
            && e.contains(&format!("pid {}", std::process::id()))
            && e.contains(".shards.lock"),
        "{e}"
    );
    // A lock left by a dead process is taken over; the lock is gone after the build.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(&lock, dead.to_string()).unwrap();
    tokenize(&a, &["--force"]).unwrap();
    assert!(!lock.exists());
}

// ---------------------------------------------------------------- defect 10

#[test]
fn defect_10_bad_numbers_are_rejected() {
    let e = train(&[], &["--max-steps", "-5"]).unwrap_err().to_string();
    assert!(e.contains("must be at least 1, got -5"), "{e}");
    let e = train(&[], &["--max-steps", "--output-dir", "o6"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a value is required for '--max-steps <N>'"),
        "{e}"
    );
    let e = run_from([
        "massivetext",
        "perplexity",
        "--model",
        "m",
        "--data",
        "d",
        "--batch-size",
        "0",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--batch-size") && e.contains("at least 1"),
        "{e}"
    );
    // The library path of the command too.
    let o = massivetext::metrics::perplexity_cli::PerplexityOptions {
        model: "m".into(),
        data: "d".into(),
        batch_size: Some(0),
        ..Default::default()
    };
    let e = massivetext::metrics::perplexity_cli::perplexity_of_file(&o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--batch-size must be at least 1"), "{e}");
}

#[test]
fn defect_10_an_int32_weight_is_reported_by_its_dtype() {
    let dir = tempfile::tempdir().unwrap();
    AutoModelForCausalLM::from_config(tiny_gpt2(1), &Device::Cpu)
        .unwrap()
        .save_pretrained(dir.path())
        .unwrap();
    let path = dir.path().join("model.safetensors");
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = Vec::new();
    for (name, t) in io::read_safetensors(&path).unwrap().tensors {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let (bytes, dtype) = if name.ends_with("wpe.weight") {
            (
                v.iter().flat_map(|x| (*x as i32).to_le_bytes()).collect(),
                safetensors::Dtype::I32,
            )
        } else {
            (
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                safetensors::Dtype::F32,
            )
        };
        tensors.push((name, t.dims().to_vec(), bytes, dtype));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, b, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let e = AutoModelForCausalLM::from_dir(dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("wpe.weight` has dtype I32")
            && msg.contains("not supported")
            && !msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn defect_10_train_output_scores_with_perplexity_and_nan_weights_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train(&tiny_train(&out, 10), &[]).unwrap();
    for f in ["tokenizer.json", "config.json", "model.safetensors"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // The saved tokenizer gives the job's character ids.
    let vocab: massivetext::corpus::CharVocab =
        serde_json::from_str(&std::fs::read_to_string(out.join("vocab.json")).unwrap()).unwrap();
    let tok = massivetext::tokenizer::Tokenizer::from_pretrained(&out).unwrap();
    let text = massivetext::corpus::corpus_text(3, 1);
    assert_eq!(tok.encode(&text).unwrap(), vocab.encode(&text).unwrap());
    let data = dir.path().join("eval.txt");
    std::fs::write(&data, &text).unwrap();
    let printed = run_from([
        "massivetext",
        "perplexity",
        "--model",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ])
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let ppl = v["perplexity"].as_f64().unwrap();
    assert!(
        ppl.is_finite() && ppl > 1.0 && ppl < vocab.len() as f64 * 2.0,
        "{printed}"
    );

    // NaN weights: an error saying so, not "perplexity = NaN".
    let path = out.join("model.safetensors");
    let tensors: Vec<(String, Tensor)> = io::read_safetensors(&path)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(n, t)| {
            if n.ends_with("h.0.mlp.c_fc.weight") {
                let nan = (t.ones_like().unwrap() * f64::NAN).unwrap();
                (n, nan)
            } else {
                (n, t)
            }
        })
        .collect();
    io::write_safetensors(&path, &tensors, Default::default()).unwrap();
    let e = run_from([
        "massivetext",
        "perplexity",
        "--model",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("h.0.mlp.c_fc.weight") && e.contains("not finite"),
        "{e}"
    );
}

// ---------------------------------------------------------------- crash test

/// Flags of the crash test's run: every 2 steps a checkpoint and a rotation.
fn crash_args(out: &Path) -> Vec<String> {
    let mut a = tiny_train(out, 100);
    for (flag, value) in [
        ("--save-steps", "2"),
        ("--n-embd", "32"),
        ("--n-layer", "2"),
        ("--block-size", "32"),
    ] {
        let i = a.iter().position(|s| s == flag).unwrap();
        a[i + 1] = value.into();
    }
    a.extend(["--seed".to_string(), "3".to_string()]);
    a
}

fn run_binary(args: &[String]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_massivetext"))
        .arg("train")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the massivetext binary runs")
}

#[test]
fn crash_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run() {
    use rand::{Rng, SeedableRng};
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // The uninterrupted run, timed.
    let straight = dir.path().join("straight");
    let t0 = Instant::now();
    let status = run_binary(&crash_args(&straight)).wait().unwrap();
    assert!(status.success());
    let full = t0.elapsed();
    // The start-up alone (corpus, model, first steps).
    let t1 = Instant::now();
    let mut short = crash_args(&dir.path().join("short"));
    let i = short.iter().position(|s| s == "--max-steps").unwrap();
    short[i + 1] = "2".into();
    assert!(run_binary(&short).wait().unwrap().success());
    let startup = t1.elapsed().as_millis() as u64;
    let work = (full.as_millis() as u64).saturating_sub(startup).max(50);
    eprintln!("crash test: a whole run {full:?}, start-up {startup} ms");

    let out = dir.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(18);
    let (mut kills, mut in_save, mut in_rotation, mut runs) = (0, 0, 0, 0);
    let mut checked = 0;
    loop {
        runs += 1;
        assert!(runs < 60, "the runs never finish");
        let resume = out.is_dir() && massivetext::train::get_last_checkpoint(&out).is_some();
        let mut args = crash_args(&out);
        if resume {
            args.extend(["--resume-from-checkpoint".into(), "latest".into()]);
        } else {
            args.push("--overwrite-output-dir".into());
        }
        let mut child = run_binary(&args);
        if kills < 12 {
            // from the middle of the start-up to a twentieth of the training after it (each
            // run resumes from the last checkpoint, so the kills land all along the run)
            let ms = rng.random_range(startup / 2..startup + work / 20);
            let deadline = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                let left = snapshot_names(&out);
                let named = |p: &str| {
                    left.iter()
                        .any(|x| x.file_name().unwrap().to_string_lossy().starts_with(p))
                };
                in_save += usize::from(named("tmp-checkpoint-"));
                in_rotation += usize::from(named(".deleting-"));
                // Every checkpoint-N present is whole and loads.
                for cp in sorted_checkpoints(&out) {
                    AutoModelForCausalLM::from_dir(&cp, &Device::Cpu)
                        .unwrap_or_else(|e| panic!("{}: {e}", cp.display()));
                    TrainerState::load_from_json(&cp.join("trainer_state.json")).unwrap();
                    io::read_safetensors(&cp.join("optimizer.safetensors")).unwrap();
                    checked += 1;
                }
                continue;
            }
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            if resume {
                assert!(stderr.contains("resumed from"), "{stderr}");
            }
            break;
        }
        // Killed after the job's last write (train_results.json), before the process ended:
        // the run is finished, nothing to resume. (Killed after the last checkpoint but before
        // the final writes, the resume above finishes the run: issue 30, item 6.)
        assert!(
            stderr.contains("nothing is left to train") && out.join("train_results.json").is_file(),
            "{stderr}"
        );
        break;
    }
    assert!(
        kills >= 8,
        "only {kills} kills landed before the run finished"
    );
    let a = weights(&straight.join("checkpoint-100/model.safetensors"));
    let b = weights(&out.join("checkpoint-100/model.safetensors"));
    let d = max_diff(&a, &b);
    assert!(d <= 1e-6, "final weights differ by {d}");
    if out.join("model.safetensors").is_file() {
        let d = max_diff(&a, &weights(&out.join("model.safetensors")));
        assert!(d <= 1e-6, "final model differs by {d}");
    }
    assert_eq!(partial_files(&out), Vec::<PathBuf>::new());
    eprintln!(
        "crash test: {kills} kills in {runs} runs ({in_save} during a checkpoint save, {in_rotation} during a rotation), {checked} checkpoint folders checked, uninterrupted run {:.2}s, whole test {:.1}s, max weight difference {d}",
        full.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
