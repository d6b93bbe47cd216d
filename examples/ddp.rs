//! Data-parallel training from the Rust API: the same program runs as one process or as N
//! ranks under `mpirun`, and trains the same model.
//!
//! ```sh
//! cargo build --release --features mpi --example ddp
//! mpirun -n 2 target/release/examples/ddp --task mlm --batch 8 --out ddp-run   # 2 ranks x 8
//! target/release/examples/ddp --task mlm --batch 16 --out one-run              # 1 x 16: the same
//! ```
//!
//! `--bench-allreduce` instead times the gradient all-reduce: the buckets of the main job's
//! GPT-2 (3 layers, 96 wide) through `dist::all_reduce_tensors` against one plain
//! `MPI_Allreduce` of a buffer of the same size (docs/distributed.md).
//!
//! Flags: `--task clm|mlm` (a small GPT-2 on the story corpus as token windows, or a small
//! BERT with the masked-LM collator on the corpus's lines, padded), `--batch N`
//! (per_device_train_batch_size), `--accum N`, `--steps N`, `--out DIR`, `--quiet`. Nothing
//! here mentions ranks: `Trainer::new` finds the launch in the environment, each rank trains its
//! share of every batch, and rank 0 writes `DIR` (`trainer_state.json`, `model.safetensors`).
//! The program ends with `dist::finalize()`, which mpirun expects of every rank.
use massivetext::corpus::{CharVocab, corpus_text};
use massivetext::dist;
use massivetext::prelude::*;
use massivetext::train::{DataCollatorForLanguageModeling, Example, TokenWindows};

struct Flags {
    bench: bool,
    task: String,
    batch: usize,
    accum: usize,
    steps: usize,
    out: String,
    quiet: bool,
}

fn flags() -> std::result::Result<Flags, String> {
    let mut f = Flags {
        bench: false,
        task: "clm".into(),
        batch: 8,
        accum: 1,
        steps: 8,
        out: "ddp-run".into(),
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--quiet" || flag == "--bench-allreduce" {
            f.quiet |= flag == "--quiet";
            f.bench |= flag == "--bench-allreduce";
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} {v}: not a number"))
        };
        match flag.as_str() {
            "--task" => f.task = value,
            "--batch" => f.batch = num(&value)?,
            "--accum" => f.accum = num(&value)?,
            "--steps" => f.steps = num(&value)?,
            "--out" => f.out = value,
            _ => return Err(format!("unknown flag {flag}; see the example's header")),
        }
    }
    Ok(f)
}

fn run(f: &Flags) -> Result<()> {
    let text = corpus_text(400, 3);
    let vocab = CharVocab::from_text(&text);
    let args = TrainingArguments {
        output_dir: f.out.clone().into(),
        overwrite_output_dir: true,
        max_steps: Some(f.steps),
        per_device_train_batch_size: f.batch,
        gradient_accumulation_steps: f.accum,
        learning_rate: 2e-3,
        warmup_steps: 2,
        logging_steps: Steps::Every(1),
        save_steps: Steps::Every(f.steps),
        disable_tqdm: f.quiet,
        ..Default::default()
    };
    if f.task == "mlm" {
        // ids: 0 [PAD], 1 [MASK], 2 [CLS], then the characters
        let rows: Vec<Example> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut ids = vec![2u32];
                ids.extend(vocab.encode(l)?.into_iter().take(40).map(|t| t + 3));
                Ok(Example {
                    input_ids: ids,
                    ..Default::default()
                })
            })
            .collect::<Result<_>>()?;
        let config = BertConfig {
            num_hidden_layers: 1,
            hidden_size: 32,
            num_attention_heads: 2,
            intermediate_size: 64,
            max_position_embeddings: 64,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            ..BertConfig::small(vocab.len() + 3)
        };
        let model = AutoModelForMaskedLM::from_config_seeded(&config, &Device::Cpu, 5)?;
        let collator = DataCollatorForLanguageModeling::mlm(1, 0, vocab.len() + 3, vec![0, 1, 2]);
        let mut trainer = Trainer::new(model, args, rows)?.with_collator(collator)?;
        trainer.train()?;
        trainer.save_model()?;
    } else {
        let config = Gpt2Config {
            n_layer: 1,
            n_embd: 32,
            n_head: 2,
            n_positions: 32,
            resid_pdrop: 0.0,
            embd_pdrop: 0.0,
            attn_pdrop: 0.0,
            ..Gpt2Config::small(vocab.len())
        };
        let model = AutoModelForCausalLM::from_config_seeded(config, &Device::Cpu, 5)?;
        let windows = TokenWindows::new(vocab.encode(&text)?, 32)?;
        let mut trainer = Trainer::new(model, args, windows)?;
        trainer.train()?;
        trainer.save_model()?;
    }
    Ok(())
}

/// The all-reduce of the main job's gradients (its parameters' shapes, 25 MiB buckets)
/// against one `MPI_Allreduce` of as many floats; rank 0 prints both, in MB/s of gradient.
fn bench_allreduce() -> Result<()> {
    let world = dist::world(None)?;
    let vocab = CharVocab::from_text(&corpus_text(2000, 1));
    let config = Gpt2Config {
        n_layer: 3,
        n_embd: 96,
        n_head: 4,
        n_positions: 96,
        ..Gpt2Config::small(vocab.len())
    };
    let model = AutoModelForCausalLM::from_config(config, &Device::Cpu)?;
    let mut grads: Vec<Tensor> = model
        .varmap()
        .all_vars()
        .iter()
        .map(|v| v.as_tensor().clone())
        .collect();
    let floats: usize = grads.iter().map(|t| t.elem_count()).sum();
    let mut plain = vec![1.0f32; floats];
    let reps = 50;
    world.barrier()?;
    let t0 = std::time::Instant::now();
    let mut buckets = 0;
    for _ in 0..reps {
        buckets =
            dist::all_reduce_tensors(world.as_ref(), &mut grads, dist::Reduce::Mean, 25 << 20)?;
    }
    let ours = t0.elapsed().as_secs_f64() / reps as f64;
    world.barrier()?;
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        world.all_reduce_sum_f32(&mut plain)?;
    }
    let raw = t0.elapsed().as_secs_f64() / reps as f64;
    if world.is_main_process() {
        let mb = floats as f64 * 4.0 / 1e6;
        println!(
            "{} ranks, {} tensors = {floats} floats ({mb:.2} MB) in {buckets} bucket(s): all_reduce_tensors {:.3} ms ({:.0} MB/s), plain MPI_Allreduce {:.3} ms ({:.0} MB/s), ratio {:.2}",
            world.world_size(),
            grads.len(),
            ours * 1e3,
            mb / ours,
            raw * 1e3,
            mb / raw,
            raw / ours
        );
    }
    Ok(())
}

fn main() {
    let f = match flags() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let done = if f.bench { bench_allreduce() } else { run(&f) };
    if let Err(e) = done {
        // one rank's failure ends every rank, with its message
        match dist::world(None) {
            Ok(w) => dist::abort_with(w.as_ref(), &e.to_string()),
            Err(_) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
    dist::finalize();
}
