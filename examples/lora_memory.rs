//! Peak memory of a LoRA fine-tune against a full fine-tune of the same model, each in a
//! process of its own (peak RSS only grows, so one process cannot measure both): the same
//! GPT-2-small-shaped model (12 layers, width 768; a vocabulary of 8,192: 92M parameters), the
//! same batches (4 x 128 tokens), AdamW, the same number of steps. LoRA: r 8 on `c_attn`,
//! `c_proj` and `c_fc` (peft's usual choice for GPT-2). Prints one line per run and the ratio.
//!
//!     cargo run --example lora_memory                 # both, 3 steps each
//!     LORA_MEMORY_STEPS=10 cargo run --example lora_memory
//!
//! What the numbers mean: a full fine-tune holds the weights, their gradients and AdamW's two
//! moments (4 copies of the model) plus activations; a LoRA run holds the weights once, the
//! activations, and gradients and moments of the adapter only.
use std::process::Command;
use std::time::Instant;

use massivetext::prelude::*;

fn config() -> Gpt2Config {
    Gpt2Config {
        n_layer: 12,
        n_embd: 768,
        n_head: 12,
        n_positions: 128,
        ..Gpt2Config::small(8192)
    }
}

fn run(mode: &str, steps: usize) -> massivetext::Result<()> {
    let base = AutoModelForCausalLM::from_config(config(), &Device::Cpu)?;
    let stream: Vec<u32> = (0..200_000u32)
        .map(|i| (i * 7919 + i / 31) % 8192)
        .collect();
    let data = TokenWindows::new(stream, 128)?;
    let dir = tempfile::tempdir().map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        per_device_train_batch_size: 4,
        learning_rate: 1e-4,
        max_steps: Some(steps),
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        logging_steps: Steps::Every(steps),
        ..Default::default()
    };
    let start = Instant::now();
    let (trainable, last_loss) = if mode == "lora" {
        let lora = LoraConfig {
            r: 8,
            lora_alpha: 16.0,
            target_modules: Some(["c_attn", "c_proj", "c_fc"].into()),
            fan_in_fan_out: true,
            ..Default::default()
        };
        let model = get_peft_model(base, &lora)?;
        let trainable = model.get_nb_trainable_parameters().0;
        let mut t = Trainer::new(model, args, data)?;
        let loss = (0..steps)
            .map(|_| t.step().map(|s| s.loss))
            .last()
            .transpose()?;
        (trainable, loss)
    } else {
        let trainable = base.num_parameters();
        let mut t = Trainer::new(base, args, data)?;
        let loss = (0..steps)
            .map(|_| t.step().map(|s| s.loss))
            .last()
            .transpose()?;
        (trainable, loss)
    };
    let secs = start.elapsed().as_secs_f64();
    let peak = massivetext::sys::peak_rss_bytes().unwrap_or(0);
    println!(
        "{mode:>4}: trainable {trainable:>10} params, peak RSS {:>7.1} MiB, {:.2} s/step, last loss {:.4}",
        peak as f64 / (1 << 20) as f64,
        secs / steps as f64,
        last_loss.unwrap_or(f64::NAN)
    );
    Ok(())
}

fn main() -> massivetext::Result<()> {
    let steps: usize = std::env::var("LORA_MEMORY_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    if let Ok(mode) = std::env::var("LORA_MEMORY_MODE") {
        return run(&mode, steps);
    }
    let exe = std::env::current_exe().map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let mut peaks = Vec::new();
    for mode in ["full", "lora"] {
        let out = Command::new(&exe)
            .env("LORA_MEMORY_MODE", mode)
            .output()
            .map_err(|e| Error::InvalidArgument(format!("running {}: {e}", exe.display())))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{text}");
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            return Err(Error::InvalidArgument(format!("the {mode} run failed")));
        }
        let mib: f64 = text
            .split("peak RSS")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        peaks.push(mib);
    }
    println!("LoRA / full peak RSS: {:.2}x", peaks[1] / peaks[0]);
    Ok(())
}
