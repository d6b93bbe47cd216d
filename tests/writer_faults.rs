//! Issue 30, "a crash-and-fault test per writer": every command that writes files (the
//! tokenizer, token shards, the dataset cache, a training run's checkpoints and final model,
//! translate-train's outputs) is run against a disk that fills up at many different points and
//! killed with SIGKILL at seeded random moments. After each fault the files it owns hold the old
//! state or the new one (each file whole: never a torn file, never a manifest naming shards that
//! are not there), the failure is a clear error (exit 1, no panic), and running the command
//! again finishes the job with exactly the uninterrupted run's result.
//!
//! The full disk is a file-size limit (RLIMIT_FSIZE through the shell's `ulimit -f`, with SIGXFSZ
//! ignored): a write past it fails with EFBIG exactly where a full disk's fails with ENOSPC, and
//! a sweep of limits makes the first failing write fall on each file in turn. No mount or root
//! is needed, so CI runs it as it is.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

#[path = "common/toy_multi30k.rs"]
mod toy_data;
use toy_data::toy_multi30k;

/// Relative path to bytes: a folder's files.
type Files = BTreeMap<PathBuf, Vec<u8>>;
/// A command line built for a scratch folder.
type ArgsOf<'a> = &'a dyn Fn(&Path) -> Vec<String>;
/// A check of what a fault left: the scratch folder, the old state, the new one, the files now.
type Check<'a> = &'a dyn Fn(&Path, &Files, &Files, &Files) -> Result<(), String>;

/// The files under `dir`, each with `root`'s path in its bytes written as `ROOT` (manifests
/// and states name their inputs), so that runs in different scratch folders compare.
fn files_of(dir: &Path, root: &Path) -> Files {
    let needle = root.to_string_lossy().into_owned().into_bytes();
    files(dir)
        .into_iter()
        .map(|(p, bytes)| (p, replace(&bytes, &needle, b"ROOT")))
        .collect()
}

fn replace(bytes: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn files(dir: &Path) -> Files {
    let mut out = Files::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// What a killed or failed write may leave beside the files: a temporary that no reader opens.
fn is_temporary(p: &Path) -> bool {
    p.components().any(|c| {
        let n = c.as_os_str().to_string_lossy();
        n.ends_with(".tmp") || n.starts_with("tmp-") || n.starts_with(".deleting-")
    })
}

/// `massivetext ARGS` with `env`, each file it writes limited to `limit_kib` KiB when given.
fn command(args: &[String], env: &[(String, PathBuf)], limit_kib: Option<u64>) -> Command {
    let limit = limit_kib.map_or("unlimited".to_string(), |k| k.to_string());
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {limit}; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_massivetext"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn run(args: &[String], env: &[(String, PathBuf)], limit_kib: Option<u64>) -> Output {
    command(args, env, limit_kib).output().unwrap()
}

/// One writer under test, its paths inside a scratch folder `root`.
struct Writer<'a> {
    name: &'a str,
    /// Lays down the old state (and the inputs) in `root`.
    setup: &'a dyn Fn(&Path),
    /// The command that writes the new state.
    args: ArgsOf<'a>,
    /// The command that finishes the job after a fault (by default the same command).
    rerun: Option<ArgsOf<'a>>,
    env: &'a dyn Fn(&Path) -> Vec<(String, PathBuf)>,
    /// The folder whose files the writer owns.
    owned: &'a dyn Fn(&Path) -> PathBuf,
    /// The files of the owned folder compared with the uninterrupted run's (bytes that change
    /// from run to run, such as timings, are left out).
    compared: &'a dyn Fn(&Path) -> bool,
    /// Checks the owned folder after a fault: `old` and `new` are the states before and after
    /// an uninterrupted run, `now` what the fault left.
    check: Check<'a>,
}

/// Each file the writer compares is old, new or (when the old state lacked it) absent.
fn each_file_old_or_new(old: &Files, new: &Files, now: &Files) -> Result<(), String> {
    for (path, bytes) in now {
        if is_temporary(path) {
            continue;
        }
        let was = old.get(path) == Some(bytes);
        let is = new.get(path) == Some(bytes);
        if !(was || is) {
            return Err(format!(
                "{} is neither the old file nor the new one ({} bytes)",
                path.display(),
                bytes.len()
            ));
        }
    }
    for (path, bytes) in old {
        if !now.contains_key(path) && new.get(path) == Some(bytes) {
            return Err(format!("{} was lost", path.display()));
        }
    }
    Ok(())
}

fn kept(files: Files, compared: &dyn Fn(&Path) -> bool) -> Files {
    files.into_iter().filter(|(p, _)| compared(p)).collect()
}

/// The sweep: an uninterrupted run; then, each from the old state, a run per file-size limit
/// and runs killed at seeded random moments, each checked and then finished by a rerun.
fn fault_sweep(w: &Writer) {
    let scratch = tempfile::tempdir().unwrap();
    let fresh = |tag: &str| {
        let root = scratch.path().join(tag);
        std::fs::create_dir_all(&root).unwrap();
        (w.setup)(&root);
        root
    };
    let state = |root: &Path| kept(files_of(&(w.owned)(root), root), w.compared);

    let root = fresh("straight");
    let old = state(&root);
    let t0 = Instant::now();
    let o = run(&(w.args)(&root), &(w.env)(&root), None);
    let took = t0.elapsed();
    assert!(
        o.status.success(),
        "{}: the uninterrupted run failed: {}",
        w.name,
        String::from_utf8_lossy(&o.stderr)
    );
    let new = state(&root);
    let written = files_of(&(w.owned)(&root), &root);
    assert!(
        written.len() > old.len() || old != new,
        "{}: the run wrote nothing",
        w.name
    );
    let largest = written.values().map(Vec::len).max().unwrap_or(0) as u64 / 1024 + 1;

    let finish = |root: &Path, what: &str| {
        let args = w.rerun.map_or_else(|| (w.args)(root), |r| r(root));
        let o = run(&args, &(w.env)(root), None);
        assert!(
            o.status.success(),
            "{}: after {what}, running again failed: {}",
            w.name,
            String::from_utf8_lossy(&o.stderr)
        );
        let now = files_of(&(w.owned)(root), root);
        let left: Vec<_> = now.keys().filter(|p| is_temporary(p)).collect();
        assert!(
            left.is_empty(),
            "{}: after {what} and a rerun: {left:?}",
            w.name
        );
        assert_eq!(
            kept(now, w.compared),
            new,
            "{}: after {what}, the rerun's files differ from an uninterrupted run's",
            w.name
        );
    };

    // The disk fills up: limits from 1 KiB to past the largest file, doubling.
    let mut failed = 0;
    let mut limit = 1;
    while limit <= 2 * largest {
        let root = fresh(&format!("full-{limit}"));
        let o = run(&(w.args)(&root), &(w.env)(&root), Some(limit));
        let stderr = String::from_utf8_lossy(&o.stderr);
        let now = state(&root);
        if o.status.success() {
            assert_eq!(
                now, new,
                "{}: succeeded at {limit} KiB with other files",
                w.name
            );
            if stderr.contains("could not be written") {
                // a cache: the write failed, the command went on without it and said so
                failed += 1;
                (w.check)(&root, &old, &new, &files_of(&(w.owned)(&root), &root))
                    .unwrap_or_else(|e| panic!("{}: full disk at {limit} KiB: {e}", w.name));
            }
        } else {
            failed += 1;
            assert_eq!(
                o.status.code(),
                Some(1),
                "{}: a full disk at {limit} KiB must be an error, not a crash: {stderr}",
                w.name
            );
            assert!(
                !stderr.contains("panicked")
                    && (stderr.contains("too large") || stderr.contains("No space")),
                "{}: at {limit} KiB the error must be the write's: {stderr}",
                w.name
            );
            (w.check)(&root, &old, &new, &files_of(&(w.owned)(&root), &root))
                .unwrap_or_else(|e| panic!("{}: full disk at {limit} KiB: {e}", w.name));
            finish(&root, &format!("a full disk at {limit} KiB"));
        }
        limit *= 2;
    }
    assert!(
        failed >= 2,
        "{}: only {failed} limits made a write fail",
        w.name
    );

    // SIGKILL at seeded random moments of the run.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(30);
    let span = took.as_micros() as u64;
    let mut kills = 0;
    let mut attempt = 0;
    while kills < 6 && attempt < 16 {
        attempt += 1;
        let root = fresh(&format!("kill-{attempt}"));
        let mut child = command(&(w.args)(&root), &(w.env)(&root), None)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(
            rng.random_range(span / 8..span * 9 / 10 + 1),
        ));
        if child.try_wait().unwrap().is_some() {
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        (w.check)(&root, &old, &new, &files_of(&(w.owned)(&root), &root))
            .unwrap_or_else(|e| panic!("{}: killed (attempt {attempt}): {e}", w.name));
        finish(&root, &format!("a kill (attempt {attempt})"));
    }
    assert!(
        kills >= 3,
        "{}: only {kills} of {attempt} kills landed",
        w.name
    );
    eprintln!(
        "{}: uninterrupted {:.2} s, {failed} full-disk failures, {kills} kills, each checked and finished",
        w.name,
        took.as_secs_f64()
    );
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Lines of words, deterministic from `seed`: `lines` of them.
fn text(lines: usize, seed: usize) -> String {
    let words = [
        "the", "cat", "sat", "on", "mat", "dog", "ran", "in", "park", "a", "man", "woman", "red",
        "blue", "grass", "street", "under", "over", "tree", "house", "river", "stone",
    ];
    let mut out = String::new();
    for i in 0..lines {
        for k in 0..6 + (i + seed) % 7 {
            out.push_str(words[(i * 31 + k * 17 + seed * 7 + k * k * i) % words.len()]);
            out.push(' ');
        }
        out.push_str(&format!("w{}\n", (i * seed) % 997));
    }
    out
}

fn no_env(_: &Path) -> Vec<(String, PathBuf)> {
    Vec::new()
}

fn everything(_: &Path) -> bool {
    true
}

#[test]
fn the_tokenizer_writer_survives_full_disks_and_kills() {
    let setup = |root: &Path| {
        std::fs::write(root.join("old.txt"), text(300, 1)).unwrap();
        std::fs::write(root.join("new.txt"), text(20_000, 2)).unwrap();
        let o = run(
            &strings(&["train-tokenizer", "--kind", "bpe", "--vocab-size", "300"])
                .into_iter()
                .chain([
                    "--out".into(),
                    path(&root.join("tok")),
                    path(&root.join("old.txt")),
                ])
                .collect::<Vec<_>>(),
            &[],
            None,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let args = |root: &Path| {
        let mut a = strings(&[
            "train-tokenizer",
            "--kind",
            "bpe",
            "--vocab-size",
            "3000",
            "--force",
        ]);
        a.extend([
            "--out".into(),
            path(&root.join("tok")),
            path(&root.join("new.txt")),
        ]);
        a
    };
    fault_sweep(&Writer {
        name: "train-tokenizer",
        setup: &setup,
        args: &args,
        rerun: None,
        env: &no_env,
        owned: &|root| root.join("tok"),
        compared: &everything,
        check: &|_, old, new, now| {
            each_file_old_or_new(old, new, now)?;
            // the folder still holds a tokenizer: every file of the old one is there
            for p in old.keys() {
                if !now.contains_key(p) {
                    return Err(format!("{} is missing", p.display()));
                }
            }
            Ok(())
        },
    });
}

#[test]
fn the_token_shard_writer_survives_full_disks_and_kills() {
    let setup = |root: &Path| {
        std::fs::write(root.join("a.txt"), text(400, 3)).unwrap();
        std::fs::write(root.join("b.txt"), text(30_000, 4)).unwrap();
        let tok = run(
            &[
                "train-tokenizer".into(),
                "--kind".into(),
                "bpe".into(),
                "--vocab-size".into(),
                "400".into(),
                "--out".into(),
                path(&root.join("tok")),
                path(&root.join("a.txt")),
            ],
            &[],
            None,
        );
        assert!(tok.status.success());
        let o = run(
            &[
                "tokenize".into(),
                "--tokenizer".into(),
                path(&root.join("tok")),
                "--out".into(),
                path(&root.join("shards")),
                "--shard-tokens".into(),
                "4096".into(),
                path(&root.join("a.txt")),
            ],
            &[],
            None,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let args = |root: &Path| {
        vec![
            "tokenize".into(),
            "--tokenizer".into(),
            path(&root.join("tok")),
            "--out".into(),
            path(&root.join("shards")),
            "--shard-tokens".into(),
            "4096".into(),
            "--force".into(),
            path(&root.join("b.txt")),
        ]
    };
    fault_sweep(&Writer {
        name: "tokenize",
        setup: &setup,
        args: &args,
        rerun: None,
        env: &no_env,
        owned: &|root| root.join("shards"),
        compared: &everything,
        check: &|_, old, new, now| {
            each_file_old_or_new(old, new, now)?;
            // a manifest, when there is one, is whole and every shard it names is its own
            let manifest = Path::new("manifest.json");
            for state in [old, new] {
                if now.get(manifest) == state.get(manifest) && now.contains_key(manifest) {
                    for (p, bytes) in state {
                        if p.extension().is_some_and(|e| e == "bin") && now.get(p) != Some(bytes) {
                            return Err(format!(
                                "the manifest names {} but the shard is not the one it describes",
                                p.display()
                            ));
                        }
                    }
                }
            }
            Ok(())
        },
    });
}

#[test]
fn the_dataset_cache_writer_survives_full_disks_and_kills() {
    let setup = |root: &Path| {
        let mut csv = String::from("id,text,score\n");
        for (i, line) in text(40_000, 5).lines().enumerate() {
            csv.push_str(&format!("{i},{line},{}\n", i % 17));
        }
        std::fs::write(root.join("data.csv"), csv).unwrap();
        std::fs::create_dir_all(root.join("cache")).unwrap();
    };
    let args = |root: &Path| {
        vec![
            "dataset".into(),
            "info".into(),
            "--kind".into(),
            "csv".into(),
            "--json".into(),
            path(&root.join("data.csv")),
        ]
    };
    let env = |root: &Path| vec![("MASSIVETEXT_DATASETS_CACHE".to_string(), root.join("cache"))];
    // The cache's contents are its own business (its entries name the scratch folder): what
    // matters is that after any fault the next load gives the uninterrupted run's answer,
    // from an entry that is whole. The check loads and compares.
    let answer = |root: &Path| -> String {
        let o = run(&args(root), &env(root), None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !stderr.contains("damaged"),
            "a fault left an entry the loader had to rebuild: {stderr}"
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let expected = {
        let scratch = tempfile::tempdir().unwrap();
        setup(scratch.path());
        answer(scratch.path());
        answer(scratch.path())
    };
    fault_sweep(&Writer {
        name: "dataset cache",
        setup: &setup,
        args: &args,
        rerun: None,
        env: &env,
        owned: &|root| root.join("cache"),
        compared: &|_| false,
        check: &|root, _, _, _| {
            let got = answer(root);
            if got != expected {
                return Err(format!(
                    "the next load answered {got} instead of {expected}"
                ));
            }
            Ok(())
        },
    });
}

/// Flags of a short training run with a checkpoint every 5 steps, its final model and state.
fn train_args(out: &Path) -> Vec<String> {
    strings(&[
        "train",
        "--device",
        "cpu",
        "--max-steps",
        "20",
        "--save-steps",
        "5",
        "--eval-steps",
        "1000",
        "--logging-steps",
        "5",
        "--n-layer",
        "1",
        "--n-embd",
        "32",
        "--n-head",
        "2",
        "--block-size",
        "32",
        "--train-stories",
        "300",
        "--eval-stories",
        "10",
        "--check-stories",
        "2",
        "--seed",
        "7",
        "--disable-tqdm",
        "--output-dir",
    ])
    .into_iter()
    .chain([path(out)])
    .collect()
}

#[test]
fn checkpoints_and_the_final_model_survive_full_disks_and_kills() {
    let resume = |root: &Path| {
        let out = root.join("run");
        let mut a = train_args(&out);
        if massivetext::train::get_last_checkpoint(&out).is_some() {
            a.extend(["--resume-from-checkpoint".into(), "latest".into()]);
        } else {
            a.push("--overwrite-output-dir".into());
        }
        a
    };
    // Weights, the tokenizer and the states are compared; logs, curves and reports hold
    // timings.
    let compared = |p: &Path| {
        let n = p.to_string_lossy();
        n.ends_with(".safetensors") && !n.contains("optimizer") || n.ends_with("config.json")
    };
    fault_sweep(&Writer {
        name: "train",
        setup: &|_| {},
        args: &|root| train_args(&root.join("run")),
        rerun: Some(&resume),
        env: &no_env,
        owned: &|root| root.join("run"),
        compared: &compared,
        check: &|root, _, new, now| {
            // a checkpoint the uninterrupted run rotated away is checked whole below
            let now: Files = kept(now.clone(), &compared)
                .into_iter()
                .filter(|(p, _)| {
                    new.contains_key(p) || !p.to_string_lossy().starts_with("checkpoint-")
                })
                .collect();
            each_file_old_or_new(&Files::new(), new, &now)?;
            for cp in massivetext::train::sorted_checkpoints(&root.join("run")) {
                for f in [
                    "model.safetensors",
                    "optimizer.safetensors",
                    "trainer_state.json",
                ] {
                    if !cp.join(f).is_file() {
                        return Err(format!("{} lacks {f}", cp.display()));
                    }
                }
                massivetext::io::read_safetensors(&cp.join("model.safetensors"))
                    .map_err(|e| format!("{}: {e}", cp.display()))?;
            }
            Ok(())
        },
    });
}

#[test]
fn translate_train_outputs_survive_full_disks_and_kills() {
    // The quick job with a BPE vocabulary: tokenizers' Unigram trainer is not deterministic
    // (hash-map order breaks its ties), so two uninterrupted runs would differ already.
    let setup = |root: &Path| {
        toy_multi30k(&root.join("data"), 200);
        let o = run(
            &strings(&["translate-train", "--quick", "--print-config"]),
            &[],
            None,
        );
        let job = String::from_utf8(o.stdout).unwrap();
        assert!(job.contains("kind = \"unigram\""), "{job}");
        std::fs::write(
            root.join("job.toml"),
            job.replace("kind = \"unigram\"", "kind = \"bpe\""),
        )
        .unwrap();
    };
    let args = |root: &Path| {
        let mut a = strings(&[
            "translate-train",
            "--device",
            "cpu",
            "--max-steps",
            "4",
            "--vocab-size",
            "300",
            "--num-beams",
            "2",
            "--disable-tqdm",
        ]);
        a.extend([
            "--config".into(),
            path(&root.join("job.toml")),
            "--data-dir".into(),
            path(&root.join("data")),
            "--output-dir".into(),
            path(&root.join("out")),
        ]);
        a
    };
    let rerun = |root: &Path| {
        let mut a = args(root);
        a.push("--overwrite-output-dir".into());
        a
    };
    let compared = |p: &Path| {
        let n = p.to_string_lossy();
        !n.contains("checkpoint")
            && (n.ends_with("translations.txt")
                || n.ends_with("model.safetensors")
                || n.ends_with("tokenizer.json")
                || n.ends_with("config.json"))
    };
    fault_sweep(&Writer {
        name: "translate-train",
        setup: &setup,
        args: &args,
        rerun: Some(&rerun),
        env: &no_env,
        owned: &|root| root.join("out"),
        compared: &compared,
        check: &|_, _, new, now| {
            each_file_old_or_new(&Files::new(), new, &kept(now.clone(), &compared))?;
            if let Some(report) = now.get(Path::new("report.json")) {
                serde_json::from_slice::<serde_json::Value>(report)
                    .map_err(|e| format!("report.json is torn: {e}"))?;
            }
            Ok(())
        },
    });
}
