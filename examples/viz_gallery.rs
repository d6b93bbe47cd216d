//! The pictures in README.md's "Seeing inside" section, made from a real run:
//!
//! ```text
//! cargo run --release --example viz_gallery -- [STEPS] [OUT_DIR]     # defaults: 400 docs
//! ```
//!
//! Trains a byte-level BPE tokenizer (1,000 tokens) and a 4-layer, 4-head GPT-2 (128 wide,
//! block 64) on tinyshakespeare for STEPS steps with the crate's Trainer (warmup then cosine,
//! loss logged every step, evaluation every 50), then draws the attention of one head and of a
//! whole layer on a real sentence, the heads overview, the training curves, and the sentence
//! tinted by each token's probability, as PNG (and SVG) files in OUT_DIR.
use std::path::PathBuf;
use std::time::Instant;

use massivetext::prelude::*;
use massivetext::train::{IntervalStrategy, SchedulerType, TokenWindows};

/// A corpus under the shared data folder: `MASSIVETEXT_DATA` when set, else `../shared/data`
/// beside the repository.
fn data(p: &str) -> PathBuf {
    std::env::var_os("MASSIVETEXT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join(p)
}

fn main() -> massivetext::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = argv.first().and_then(|a| a.parse().ok()).unwrap_or(400);
    let out = PathBuf::from(argv.get(1).cloned().unwrap_or_else(|| "docs".into()));
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    // The trained model, tokenizer and log are kept in a cache folder, so redrawing the pictures
    // does not retrain (delete the folder to train again).
    let cache = std::env::temp_dir().join(format!("massivetext-viz-gallery-{steps}"));
    let state_path = cache.join("trainer_state.json");
    if !state_path.exists() {
        train(steps, &cache)?;
    }
    let tok = Tokenizer::from_pretrained(&cache)?;
    let model = AutoModelForCausalLM::from_dir(&cache, &Device::Cpu)?;
    let state = massivetext::train::TrainerState::load_from_json(&state_path)?;
    let curves = TrainingCurves::from_log_history(&state.log_history)
        .title(format!("Tiny GPT-2 on tinyshakespeare · {steps} steps"))
        .width(900)
        .height(640);
    curves.save_png(out.join("loss_curves.png"))?;
    curves.save(out.join("loss_curves.svg"))?;

    let sentence = "ROMEO: But, soft! what light through yonder window breaks?\nJULIET: Ay me!";
    let map = AttentionMap::from_model(&model, &tok, sentence)?;
    // The sharpest head (lowest mean entropy): the clearest pattern to check by eye.
    let stats = map.head_stats();
    let best = stats
        .iter()
        .min_by(|a, b| a.entropy.total_cmp(&b.entropy))
        .cloned()
        .ok_or_else(|| Error::InvalidArgument("no heads".into()))?;
    println!(
        "{} tokens; most previous-token head: layer {} head {} ({:.2})",
        map.num_keys(),
        best.layer,
        best.head,
        best.prev_token
    );
    let head = map.head(best.layer, best.head)?.width(820).height(760);
    head.save_png(out.join("attention_head.png"))?;
    let grid = map.layer_grid(best.layer)?.width(1000).height(1000);
    grid.save_png(out.join("attention_grid.png"))?;
    map.overview()
        .save_png(out.join("attention_overview.png"))?;
    let scores = TokenScores::from_model(&model, &tok, sentence)?
        .title("p(token | tokens before it)")
        .width(720)
        .height(140);
    scores.save_png(out.join("token_scores.png"))?;
    println!("{}", head.describe());
    println!("{}", curves.describe());
    println!(
        "wrote {}/{{loss_curves,attention_head,attention_grid,attention_overview,token_scores}}.png",
        out.display()
    );
    Ok(())
}

/// Trains the tokenizer and the model and saves both, with the trainer state, into `cache`.
fn train(steps: usize, cache: &std::path::Path) -> massivetext::Result<()> {
    let path = data("tinyshakespeare/input.txt");
    let ds = load_dataset("text", &path)?;
    let tok = Tokenizer::train_bpe(&ds["train"], "text", 1000)?;
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let ids = tok.encode_plain(&text)?;
    let n = ids.len() * 9 / 10;
    let block = 64;
    let train = TokenWindows::new(ids[..n].to_vec(), block)?;
    let val = TokenWindows::new(ids[n..].to_vec(), block)?.with_max_eval_windows(256);
    let config = Gpt2Config {
        vocab_size: tok.vocab_size(),
        n_positions: block,
        n_embd: 128,
        n_layer: 4,
        n_head: 4,
        resid_pdrop: 0.0,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        ..Gpt2Config::gpt2()
    };
    let model = AutoModelForCausalLM::from_config(config, &Device::Cpu)?;
    let args = TrainingArguments {
        output_dir: std::env::temp_dir().join("massivetext-viz-gallery"),
        // the example's own folder: each run replaces the last one's, so it runs again and again
        overwrite_output_dir: true,
        max_steps: Some(steps),
        per_device_train_batch_size: 16,
        per_device_eval_batch_size: 64,
        learning_rate: 2e-3,
        warmup_steps: 40,
        lr_scheduler_type: SchedulerType::Cosine,
        weight_decay: 0.1,
        max_grad_norm: 1.0,
        logging_steps: Steps::Every(1),
        eval_strategy: IntervalStrategy::Steps,
        eval_steps: Some(Steps::Every(50)),
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, args, train)?.with_eval_dataset(val)?;
    let t0 = Instant::now();
    trainer.train()?;
    println!(
        "trained {steps} steps in {:.0}s",
        t0.elapsed().as_secs_f64()
    );

    trainer.save_model_to(cache)?;
    tok.save_pretrained(cache)?;
    trainer
        .state()
        .save_to_json(&cache.join("trainer_state.json"))?;
    Ok(())
}
