//! Data-parallel training with real MPI processes (`mpirun`, Open MPI): N ranks with batch b
//! train exactly what one process with batch N b trains — the loss at every logged step
//! within 1e-5 relative, the final weights within 1e-4 — on the main `train` job (a causal
//! GPT-2 on token windows) and on a masked-LM job (`examples/ddp.rs`: a BERT, padded rows,
//! random masks); a killed rank ends the run with an error in seconds and the last checkpoint
//! resumes; a rank that fails, or that was started with other settings, stops them all.
//!
//! These tests need the `mpi` feature (the README's test command has it) and Open MPI's
//! `mpirun`; without either they fail with the command that fixes it, never skip.

#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_training_needs_the_mpi_feature() {
    panic!(
        "tests/distributed.rs launches data-parallel runs under mpirun and needs the `mpi` feature: run the README's test command, `MASSIVETEXT_REF_PYTHON=\"$(.ci/reference)\" cargo test --features mpi` (this file alone: `cargo test --features mpi --test distributed`); Open MPI comes from `apt-get install -y openmpi-bin libopenmpi-dev libclang-dev`"
    );
}

#[cfg(feature = "mpi")]
mod mpi_runs {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use candle_core::{Device, Tensor};

    const BIN: &str = env!("CARGO_BIN_EXE_massivetext");

    /// `mpirun`, or a failure saying how to install it.
    fn mpirun() -> PathBuf {
        let found = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("mpirun"))
                .find(|f| f.is_file())
        });
        found.unwrap_or_else(|| {
            panic!(
                "mpirun is not on PATH: install Open MPI with `apt-get install -y openmpi-bin libopenmpi-dev libclang-dev` (.ci/run does)"
            )
        })
    }

    /// `mpirun -n N` with what every launch here needs: root allowed (CI runs as root), more
    /// ranks than cores, one kernel thread per process (the same sums as the single process).
    fn mpi_command(n: usize) -> Command {
        let mut c = Command::new(mpirun());
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("CANDLE_NUM_THREADS", "1")
            .env("MASSIVETEXT_DATASETS_CACHE", "off")
            .args(["-n", &n.to_string(), "--oversubscribe", "--bind-to", "none"])
            .args([
                "-x",
                "CANDLE_NUM_THREADS",
                "-x",
                "MASSIVETEXT_DATASETS_CACHE",
            ]);
        c
    }

    fn single_command(bin: &Path) -> Command {
        let mut c = Command::new(bin);
        c.env("CANDLE_NUM_THREADS", "1")
            .env("MASSIVETEXT_DATASETS_CACHE", "off");
        for v in [
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
            "PMI_RANK",
            "PMI_SIZE",
            "RANK",
            "WORLD_SIZE",
        ] {
            c.env_remove(v);
        }
        c
    }

    fn ok(out: Output, what: &str) -> Output {
        assert!(
            out.status.success(),
            "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The small main job: a 1-layer GPT-2 on windows of the story corpus, logged every step,
    /// evaluated every 3 steps (sharded over the ranks), saved every 3 steps.
    fn train_args(out: &Path, batch: usize, accum: usize) -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            "--max-steps",
            "6",
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
            "40",
            "--check-stories",
            "2",
            "--logging-steps",
            "1",
            "--eval-steps",
            "3",
            "--save-steps",
            "3",
            "--disable-tqdm",
            "true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend([
            "--per-device-train-batch-size".into(),
            batch.to_string(),
            "--gradient-accumulation-steps".into(),
            accum.to_string(),
            "--output-dir".into(),
            out.display().to_string(),
        ]);
        a
    }

    /// Sets `flag`'s value in `args` (replacing it when there, else adding it).
    fn set(args: &mut Vec<String>, flag: &str, value: &str) {
        match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_string(),
            None => args.extend([flag.to_string(), value.to_string()]),
        }
    }

    /// `examples/ddp.rs` (built by `cargo test` beside the tests), the masked-LM job.
    fn example_bin() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(|d| d.parent()).unwrap();
        let bin = dir.join("examples").join("ddp");
        assert!(
            bin.is_file(),
            "{} is missing: `cargo test --features mpi` builds it with the tests; for this file alone run `cargo build --features mpi --example ddp` first",
            bin.display()
        );
        bin
    }

    fn mlm_args(out: &Path, batch: usize, accum: usize) -> Vec<String> {
        [
            "--task",
            "mlm",
            "--steps",
            "5",
            "--quiet",
            "--batch",
            &batch.to_string(),
            "--accum",
            &accum.to_string(),
            "--out",
            &out.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Each logged key's values by step, from `trainer_state.json`.
    fn logged(dir: &Path, key: &str) -> Vec<(u64, f64)> {
        let text = std::fs::read_to_string(dir.join("trainer_state.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["log_history"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| Some((e["step"].as_u64()?, e.get(key)?.as_f64()?)))
            .collect()
    }

    fn weights(dir: &Path) -> HashMap<String, Tensor> {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
    }

    /// Losses, gradient norms (a gradient summed or averaged wrongly over the ranks shows
    /// there at once; AdamW hides most of it from the loss) and eval losses at every logged
    /// step within 1e-5 relative; every weight within 1e-4.
    fn assert_same_run(a: &Path, b: &Path, steps: usize, what: &str) {
        for key in ["loss", "grad_norm", "eval_loss"] {
            let (x, y) = (logged(a, key), logged(b, key));
            if key == "loss" {
                assert_eq!(x.len(), steps, "{what}: one loss per step: {x:?}");
            }
            assert_eq!(x.len(), y.len(), "{what}: {key}: {x:?} vs {y:?}");
            for ((s, u), (t, v)) in x.iter().zip(&y) {
                assert_eq!(s, t);
                let rel = (u - v).abs() / u.abs().max(1e-12);
                assert!(
                    rel < 1e-5,
                    "{what}: {key} at step {s}: {u} vs {v} ({rel:.2e})"
                );
            }
        }
        let (wa, wb) = (weights(a), weights(b));
        assert_eq!(wa.len(), wb.len());
        let mut worst = 0f32;
        for (name, t) in &wa {
            let d = (t - &wb[name])
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            worst = worst.max(d);
        }
        println!("{what}: max |w_a - w_b| = {worst:.2e}");
        assert!(worst <= 1e-4, "{what}: final weights differ by {worst}");
    }

    #[test]
    fn main_job_two_and_four_ranks_and_accumulation_equal_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one");
        ok(
            single_command(Path::new(BIN))
                .args(train_args(&one, 16, 1))
                .output()
                .unwrap(),
            "1 process x 16",
        );
        for (n, batch, accum) in [(2, 8, 1), (4, 4, 1), (2, 4, 2)] {
            let out = dir.path().join(format!("r{n}-b{batch}-a{accum}"));
            let run = ok(
                mpi_command(n)
                    .arg(BIN)
                    .args(train_args(&out, batch, accum))
                    .output()
                    .unwrap(),
                &format!("{n} ranks x {batch} x accumulation {accum}"),
            );
            assert_same_run(
                &one,
                &out,
                6,
                &format!("train: {n} ranks x batch {batch} x accumulation {accum}"),
            );
            // rank 0 alone prints the summary and writes the run's files
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert_eq!(stdout.matches("trained 6 steps").count(), 1, "{stdout}");
            assert!(out.join("samples.txt").is_file());
            assert!(out.join("checkpoint-6").is_dir());
        }
    }

    #[test]
    fn masked_lm_two_and_four_ranks_and_accumulation_equal_one_process() {
        let bin = example_bin();
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one");
        ok(
            single_command(&bin)
                .args(mlm_args(&one, 16, 1))
                .output()
                .unwrap(),
            "mlm: 1 process x 16",
        );
        for (n, batch, accum) in [(2, 8, 1), (4, 4, 1), (2, 4, 2)] {
            let out = dir.path().join(format!("r{n}-b{batch}-a{accum}"));
            ok(
                mpi_command(n)
                    .arg(&bin)
                    .args(mlm_args(&out, batch, accum))
                    .output()
                    .unwrap(),
                &format!("mlm: {n} ranks x {batch} x accumulation {accum}"),
            );
            assert_same_run(
                &one,
                &out,
                5,
                &format!("mlm: {n} ranks x batch {batch} x accumulation {accum}"),
            );
        }
    }

    #[test]
    fn resuming_with_the_same_world_size_is_bitwise_exact() {
        let dir = tempfile::tempdir().unwrap();
        let constant = |out: &Path, steps: &str| {
            let mut a = train_args(out, 8, 1);
            set(&mut a, "--max-steps", steps);
            // a schedule that does not depend on max_steps, so 3 + 3 steps plan as 6 do
            a.extend(["--set", "lr_scheduler_type=constant"].map(String::from));
            a
        };
        let straight = dir.path().join("straight");
        ok(
            mpi_command(2)
                .arg(BIN)
                .args(constant(&straight, "6"))
                .output()
                .unwrap(),
            "6 steps",
        );
        let halves = dir.path().join("halves");
        ok(
            mpi_command(2)
                .arg(BIN)
                .args(constant(&halves, "3"))
                .output()
                .unwrap(),
            "3 steps",
        );
        let mut resume = constant(&halves, "6");
        set(&mut resume, "--resume-from-checkpoint", "latest");
        ok(
            mpi_command(2).arg(BIN).args(&resume).output().unwrap(),
            "3 more steps, resumed",
        );
        let (a, b) = (logged(&straight, "loss"), logged(&halves, "loss"));
        assert_eq!(a.len(), 6);
        assert_eq!(a, b, "the losses, bit for bit");
        assert_eq!(
            std::fs::read(straight.join("model.safetensors")).unwrap(),
            std::fs::read(halves.join("model.safetensors")).unwrap(),
            "the final weights, bit for bit"
        );
    }

    /// A checkpoint written by 2 ranks × 8 resumes on 1 process × 16 (and one written by
    /// 1 × 16 on 2 × 8) and continues exactly the straight run: the same global batch, the
    /// same examples. A resume with another global batch runs, with a warning naming both.
    #[test]
    fn resuming_on_another_world_size_continues_the_run_with_the_same_global_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        ok(
            single_command(Path::new(BIN))
                .args(train_args(&one, 16, 1))
                .output()
                .unwrap(),
            "1 process x 16",
        );
        ok(
            mpi_command(2)
                .arg(BIN)
                .args(train_args(&two, 8, 1))
                .output()
                .unwrap(),
            "2 ranks x 8",
        );
        let resume = |out: &Path, batch: usize, from: &Path| {
            let mut a = train_args(out, batch, 1);
            set(
                &mut a,
                "--resume-from-checkpoint",
                &from.join("checkpoint-3").display().to_string(),
            );
            a
        };
        // 2 ranks' checkpoint, one process
        let on_one = dir.path().join("two-then-one");
        let run = ok(
            single_command(Path::new(BIN))
                .args(resume(&on_one, 16, &two))
                .output()
                .unwrap(),
            "2 x 8 resumed on 1 x 16",
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("note: resuming checkpoint-3 (written by 2 ranks × batch 8 × accumulation 1) on 1 process × batch 16 × accumulation 1: the same global batch of 16"),
            "{stderr}"
        );
        assert!(!stderr.contains("warning"), "{stderr}");
        assert_same_run(&one, &on_one, 6, "2 x 8 resumed on 1 x 16");
        // one process's checkpoint, 2 ranks; with progress, which rank 0 alone prints, as lines
        // (under mpirun a rank's stdout is a pseudo-terminal, its stderr a pipe)
        let on_two = dir.path().join("one-then-two");
        let mut args = resume(&on_two, 8, &one);
        set(&mut args, "--disable-tqdm", "false");
        let run = ok(
            mpi_command(2).arg(BIN).args(&args).output().unwrap(),
            "1 x 16 resumed on 2 x 8",
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(
            stderr.matches("note: resuming checkpoint-3").count(),
            1,
            "rank 0 alone: {stderr}"
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        for step in 4..=6 {
            let line = format!("step {step}/6 | loss ");
            assert_eq!(stdout.matches(&line).count(), 1, "{line}: {stdout}");
        }
        assert_same_run(&one, &on_two, 6, "1 x 16 resumed on 2 x 8");
        // another global batch: allowed, with a warning that says what changed
        let halved = dir.path().join("two-then-one-x8");
        let run = ok(
            single_command(Path::new(BIN))
                .args(resume(&halved, 8, &two))
                .output()
                .unwrap(),
            "2 x 8 resumed on 1 x 8",
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("warning: resuming checkpoint-3 with another global batch: it was written by 2 ranks × batch 8 × accumulation 1 = 16 examples a step, this run is 1 process × batch 8 × accumulation 1 = 8 a step"),
            "{stderr}"
        );
        let losses = logged(&halved, "loss");
        assert_eq!(losses.len(), 6, "{losses:?}");
        // the first three are the checkpoint's, the rest another run's
        assert_eq!(losses[..3], logged(&two, "loss")[..3]);
        assert_ne!(losses[3..], logged(&two, "loss")[3..]);
    }

    /// The processes mpirun started (its children).
    fn children(parent: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            if ppid == Some(parent) {
                out.push(pid);
            }
        }
        out
    }

    fn wait_with_deadline(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    #[test]
    fn a_killed_rank_ends_the_run_within_seconds_and_the_last_checkpoint_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut args = train_args(&out, 4, 1);
        set(&mut args, "--max-steps", "100000");
        set(&mut args, "--save-steps", "5");
        set(&mut args, "--eval-steps", "1000");
        set(&mut args, "--save-total-limit", "1000");
        let mut run = mpi_command(2)
            .arg(BIN)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !out.join("checkpoint-10").is_dir() {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "no checkpoint after 2 minutes"
            );
            assert!(run.try_wait().unwrap().is_none(), "the run ended early");
            std::thread::sleep(Duration::from_millis(50));
        }
        let ranks = children(run.id());
        assert_eq!(ranks.len(), 2, "mpirun's children: {ranks:?}");
        let killed = Instant::now();
        Command::new("kill")
            .args(["-9", &ranks[1].to_string()])
            .status()
            .unwrap();
        let code = wait_with_deadline(&mut run, Duration::from_secs(30));
        let took = killed.elapsed();
        let Some(code) = code else {
            let _ = run.kill();
            panic!("the run still runs 30 s after one rank was killed");
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        println!("killed rank 1: mpirun exited {code} after {took:?}:\n{stderr}");
        assert_ne!(code, 0);
        assert!(
            stderr.contains("signal 9") || stderr.contains("Killed"),
            "{stderr}"
        );
        // the other rank is gone too (mpirun may exit a moment before it)
        while ranks
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
        {
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "rank 0 (pid {}) still runs 30 s after rank 1 was killed",
                ranks[0]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("every rank gone {:?} after the kill", killed.elapsed());
        // the run resumes from its last checkpoint with the same world size
        let last = massivetext::train::get_last_checkpoint(&out).unwrap();
        let step = massivetext::train::checkpoint_step(&last).unwrap();
        let mut resume = train_args(&out, 4, 1);
        set(&mut resume, "--max-steps", &(step + 2).to_string());
        set(&mut resume, "--resume-from-checkpoint", "latest");
        let done = ok(
            mpi_command(2).arg(BIN).args(&resume).output().unwrap(),
            "the resumed run",
        );
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(
            stdout.contains(&format!("resumed from checkpoint-{step}")),
            "{stdout}"
        );
        assert_eq!(logged(&out, "loss").last().unwrap().0, step as u64 + 2);
    }

    /// Three input files (one with `\r\n` lines and empty lines, one without a final
    /// newline, one empty) and a BPE tokenizer saved in `dir`; returns (tokenizer, files).
    fn tokenize_inputs(dir: &Path, stories: usize) -> (PathBuf, Vec<PathBuf>) {
        use massivetext::tokenizer::{Tokenizer, TokenizerKind, TrainOptions};
        let text = massivetext::corpus::corpus_text(stories, 7);
        let lines: Vec<&str> = text.lines().collect();
        let third = lines.len() / 3;
        let files: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("part{i}.txt"))).collect();
        std::fs::write(&files[0], lines[..third].join("\n") + "\n").unwrap();
        std::fs::write(&files[1], lines[third..2 * third].join("\r\n\r\n")).unwrap();
        std::fs::write(&files[2], "").unwrap();
        std::fs::write(&files[3], lines[2 * third..].join("\n") + "\n\n").unwrap();
        let tok = Tokenizer::train(
            TokenizerKind::Bpe,
            lines.iter().take(300),
            &TrainOptions::new(400),
        )
        .unwrap();
        let tok_dir = dir.join("tok");
        tok.save_pretrained(&tok_dir).unwrap();
        (tok_dir, files)
    }

    fn tokenize_args(tok: &Path, out: &Path, files: &[PathBuf]) -> Vec<String> {
        let mut a: Vec<String> = ["tokenize", "--shard-tokens", "7001", "--batch-mb", "0.01"]
            .map(String::from)
            .to_vec();
        a.extend(["--tokenizer".into(), tok.display().to_string()]);
        a.extend(["--out".into(), out.display().to_string()]);
        a.extend(files.iter().map(|f| f.display().to_string()));
        a
    }

    /// Every file of a folder, by name.
    fn folder(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn tokenize_on_two_and_three_ranks_writes_the_folder_one_process_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, files) = tokenize_inputs(dir.path(), 1500);
        let one = dir.path().join("one");
        ok(
            single_command(Path::new(BIN))
                .args(tokenize_args(&tok, &one, &files))
                .output()
                .unwrap(),
            "tokenize, 1 process",
        );
        let expected = folder(&one);
        let shards = expected.keys().filter(|k| k.starts_with("shard_")).count();
        assert!(shards >= 4, "{:?}", expected.keys());
        for n in [2, 3] {
            let out = dir.path().join(format!("ranks{n}"));
            let run = ok(
                mpi_command(n)
                    .arg(BIN)
                    .args(tokenize_args(&tok, &out, &files))
                    .output()
                    .unwrap(),
                &format!("tokenize, {n} ranks"),
            );
            let got = folder(&out);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "{n} ranks: the files"
            );
            for (name, bytes) in &expected {
                assert!(&got[name] == bytes, "{n} ranks: {name} differs");
            }
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert_eq!(
                stdout.matches(&format!("by {n} ranks")).count(),
                1,
                "{stdout}"
            );
            // nothing left beside the folder (the lock, the temporary folder)
            let left: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }

    #[test]
    fn tokenize_stops_every_rank_and_writes_no_manifest_when_a_rank_fails_or_dies() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, mut files) = tokenize_inputs(dir.path(), 600);
        // a byte that is not UTF-8 near the end of the input: rank 1's lines
        let good = std::fs::read(&files[3]).unwrap();
        let mut last = good.clone();
        let at = last.len() - 40;
        last[at] = 0xff;
        std::fs::write(&files[3], last).unwrap();
        let out = dir.path().join("bad");
        let run = mpi_command(2)
            .arg(BIN)
            .args(tokenize_args(&tok, &out, &files))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{stderr}");
        assert!(
            stderr.contains("part3.txt"),
            "the failing rank's message: {stderr}"
        );
        // rank 0 repeats rank 1's message: mpirun may drop rank 1's own when rank 0 exits first
        let rank0 = stderr
            .split_once("rank(s) 1 of 2 failed")
            .map(|(_, after)| after)
            .unwrap_or_else(|| panic!("rank 0's: {stderr}"));
        assert!(
            rank0.contains("rank 1: ") && rank0.contains("part3.txt"),
            "rank 0 names rank 1's cause: {stderr}"
        );
        assert!(!out.exists(), "no folder claims complete shards");
        // a killed rank: mpirun ends the other, and no manifest is written anywhere
        std::fs::write(&files[3], good).unwrap();
        let big = dir.path().join("big.txt");
        std::fs::write(&big, massivetext::corpus::corpus_text(60_000, 3)).unwrap();
        files.push(big);
        let out = dir.path().join("killed");
        let mut run = mpi_command(2)
            .arg(BIN)
            .args(tokenize_args(&tok, &out, &files))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let part = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .find_map(|e| {
                    let p = e.path().join(".rank-00001.ids");
                    let n = e.file_name().to_string_lossy().into_owned();
                    (n.starts_with(".killed.partial-") && p.metadata().is_ok_and(|m| m.len() > 0))
                        .then_some(p)
                })
        };
        while part().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "rank 1 never wrote"
            );
            assert!(
                run.try_wait().unwrap().is_none(),
                "the run ended before the kill"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let ranks = children(run.id());
        assert_eq!(ranks.len(), 2, "{ranks:?}");
        Command::new("kill")
            .args(["-9", &ranks[1].to_string()])
            .status()
            .unwrap();
        let code = wait_with_deadline(&mut run, Duration::from_secs(30));
        let Some(code) = code else {
            let _ = run.kill();
            panic!("tokenize still runs 30 s after a rank was killed");
        };
        assert_ne!(code, 0);
        // rank 0 is gone too (mpirun may exit a moment before it)
        while ranks
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
        {
            assert!(
                t0.elapsed() < Duration::from_secs(150),
                "rank 0 (pid {}) still runs after rank 1 was killed",
                ranks[0]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!out.exists(), "no folder claims complete shards");
        let manifests: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path().join("manifest.json"))
            .filter(|p| p.exists())
            .collect();
        assert!(manifests.is_empty(), "{manifests:?}");
        // the next build removes what the dead one left and writes the folder
        ok(
            mpi_command(2)
                .arg(BIN)
                .args(tokenize_args(&tok, &out, &files))
                .output()
                .unwrap(),
            "tokenize again",
        );
        assert!(out.join("manifest.json").is_file());
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".killed"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// MPMD launch: rank 0 and rank 1 get different command lines.
    fn mpmd(first: &[String], second: &[String]) -> (Option<i32>, String, Duration) {
        let mut c = mpi_command(1);
        c.arg(BIN)
            .args(first)
            .args([":", "-n", "1", "-x", "CANDLE_NUM_THREADS"])
            .arg(BIN)
            .args(second)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t0 = Instant::now();
        let mut child = c.spawn().unwrap();
        let code = wait_with_deadline(&mut child, Duration::from_secs(60));
        if code.is_none() {
            let _ = child.kill();
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (code, stderr, t0.elapsed())
    }

    #[test]
    fn a_rank_that_fails_or_differs_stops_every_rank_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let good = train_args(&out, 4, 1);
        // rank 1 cannot read its job file
        let mut bad = good.clone();
        let missing = dir.path().join("missing-job.toml");
        set(&mut bad, "--config", &missing.display().to_string());
        let (code, stderr, took) = mpmd(&good, &bad);
        println!("a failing rank: {code:?} after {took:?}:\n{stderr}");
        assert!(code.is_some_and(|c| c != 0), "{code:?}\n{stderr}");
        assert!(stderr.contains("missing-job.toml"), "{stderr}");
        assert!(took < Duration::from_secs(30), "{took:?}");
        // rank 1 was started with other settings
        let mut other = good.clone();
        set(&mut other, "--learning-rate", "0.01");
        let (code, stderr, took) = mpmd(&good, &other);
        println!("mismatched ranks: {code:?} after {took:?}:\n{stderr}");
        assert!(code.is_some_and(|c| c != 0), "{code:?}\n{stderr}");
        assert!(stderr.contains("ranks disagree on the run"), "{stderr}");
        assert!(took < Duration::from_secs(30), "{took:?}");
    }
}
