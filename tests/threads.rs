//! Guard: a training step in the default configuration (no `RAYON_NUM_THREADS`, no
//! `CANDLE_NUM_THREADS`) makes no read system call. candle 0.11 asked `/proc/cpuinfo` for its
//! thread count on every matrix product (about 1,700 opens per step of a small GPT); see
//! `src/threads.rs` and `patches/README.md` for the two remedies this checks:
//!
//! - in a process with other threads (a notebook kernel, a test harness), the patched
//!   `num_cpus` must keep candle's query off the file system;
//! - in a process whose first massivetext call comes while it has one thread (the command line,
//!   a plain `main`), that call sets `RAYON_NUM_THREADS` to the one count.
//!
//! It counts read calls with `/proc/self/io` (`syscr`, all threads of the process). A test
//! without libtest's harness (`harness = false`): `main` starts with one thread, so it can
//! clear the variables soundly, and it starts itself again for the single-thread case.
use massivetext::prelude::*;
use std::process::Command;

const CHILD: &str = "--single-thread-child";

fn main() {
    if std::env::args().any(|a| a == CHILD) {
        single_thread_child();
        return;
    }
    // SAFETY: the process has one thread here (no massivetext call, no thread started yet).
    unsafe {
        std::env::remove_var("RAYON_NUM_THREADS");
        std::env::remove_var("CANDLE_NUM_THREADS");
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let status = Command::new(exe)
        .arg(CHILD)
        .status()
        .expect("starting the test again");
    assert!(status.success(), "the single-thread case failed: {status}");
    println!("test the_first_call_on_a_single_thread_sets_the_count ... ok");

    // A second thread, as a notebook kernel or a test harness has: the environment stays as it is.
    let (stop, parked) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let _ = parked.recv();
    });
    let mut trainer = tiny_trainer();
    assert!(
        std::env::var_os("RAYON_NUM_THREADS").is_none(),
        "the environment was changed while another thread ran"
    );
    assert_no_reads_per_step(&mut trainer);
    drop(stop);
    other.join().expect("the parked thread");
    println!("test a_step_beside_other_threads_reads_no_file ... ok");
    println!("\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n");
}

fn single_thread_child() {
    let mut trainer = tiny_trainer();
    let set = std::env::var("RAYON_NUM_THREADS").ok();
    assert_eq!(
        set,
        Some(massivetext::threads::num_threads().to_string()),
        "the first massivetext call on the only thread must set RAYON_NUM_THREADS to the count"
    );
    assert_no_reads_per_step(&mut trainer);
}

/// A one-layer GPT-2 over random ids, ready to step.
fn tiny_trainer() -> Trainer<AutoModelForCausalLM> {
    let config = Gpt2Config {
        n_layer: 2,
        n_embd: 64,
        n_head: 2,
        n_positions: 64,
        ..Gpt2Config::small(97)
    };
    let model = AutoModelForCausalLM::from_config(config, &best_device()).expect("the model");
    let examples: Vec<Example> = (0..32u32)
        .map(|i| Example {
            input_ids: (0..32).map(|j| (i * 7 + j * 13) % 97).collect(),
            ..Default::default()
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("massivetext-threads-{}", std::process::id()));
    let args = TrainingArguments {
        output_dir: dir,
        max_steps: Some(10),
        per_device_train_batch_size: 8,
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    Trainer::new(model, args, examples).expect("the trainer")
}

/// Reads `syscr` of `/proc/self/io`: the read system calls made so far by every thread.
fn read_calls() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io (Linux)");
    io.lines()
        .find_map(|l| l.strip_prefix("syscr:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a syscr line in /proc/self/io")
}

fn assert_no_reads_per_step<M: PreTrainedModel>(trainer: &mut Trainer<M>) {
    trainer.step().expect("a warm-up step"); // first-use work: pools, allocator, lazy tables
    // Reading /proc/self/io itself takes a few read calls: measure them with nothing between.
    let first = read_calls();
    let own = read_calls() - first;
    let before = read_calls();
    for _ in 0..3 {
        trainer.step().expect("a step");
    }
    let reads = (read_calls() - before).saturating_sub(own);
    assert!(
        reads == 0,
        "3 training steps made {reads} read system calls: a per-op query of the file system \
         (candle's thread count through /proc/cpuinfo?) is on the hot path again; see \
         src/threads.rs and patches/README.md"
    );
}
