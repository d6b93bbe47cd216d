//! Learning tests: training lowers the loss on real text, well past simple baselines.
//! Each runs in well under two minutes on two cores.

use candle_core::{D, Device, Tensor};
use massivetext::corpus::CharVocab;
use massivetext::data::{Column, Dataset};
use massivetext::models::{
    AutoModelForCausalLM, AutoModelForMaskedLM, BertConfig, Gpt2Config, ModelConfig,
};
use massivetext::tokenizer::Tokenizer;
use massivetext::train::*;
use serde_json::json;

#[path = "common/shared.rs"]
mod shared;
use shared::data;

/// nanoGPT's char-level Shakespeare, shortened (2 layers, 64 wide, 300 steps): the validation
/// loss falls from ln(65) = 4.17 to well under the unigram entropy (3.31 nats).
#[test]
fn char_gpt_learns_tinyshakespeare() {
    let text = std::fs::read_to_string(data("tinyshakespeare/input.txt")).unwrap();
    let vocab = CharVocab::from_text(&text);
    assert_eq!(vocab.len(), 65);
    let ids = vocab.encode(&text).unwrap();
    let n = ids.len() * 9 / 10;
    let block = 64;
    let train = TokenWindows::new(ids[..n].to_vec(), block).unwrap();
    let val = TokenWindows::new(ids[n..].to_vec(), block)
        .unwrap()
        .with_max_eval_windows(96);
    let config = Gpt2Config {
        vocab_size: 65,
        n_positions: block,
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        resid_pdrop: 0.0,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        ..Gpt2Config::gpt2()
    };
    let model = AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("min_lr".into(), json!(3e-4));
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        max_steps: Some(300),
        per_device_train_batch_size: 12,
        per_device_eval_batch_size: 32,
        learning_rate: 3e-3,
        warmup_steps: 20,
        lr_scheduler_type: SchedulerType::CosineWithMinLr,
        lr_scheduler_kwargs: kwargs,
        adam_beta2: 0.99,
        weight_decay: 0.1,
        logging_steps: Steps::Every(50),
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    let mut t = Trainer::new(model, args, train)
        .unwrap()
        .with_eval_dataset(val)
        .unwrap();
    let before = t.evaluate().unwrap().eval_loss;
    let out = t.train().unwrap();
    let after = t.evaluate().unwrap().eval_loss;
    println!(
        "tinyshakespeare char GPT: val loss {before:.3} -> {after:.3} in {} steps, {:.0}s, {:.0} tokens/s",
        out.global_step, out.train_runtime, out.tokens_per_second
    );
    assert!(before > 4.0, "{before}");
    assert!(
        after < 2.75,
        "val loss {after} should be well below the unigram entropy 3.31"
    );
}

/// Masked-token accuracy on held-out text: argmax at the labelled positions.
fn masked_accuracy(
    model: &AutoModelForMaskedLM,
    collator: &DataCollatorForLanguageModeling,
    rows: &[Example],
) -> (f64, Vec<u32>) {
    let mut m = model.clone();
    m.eval();
    let (mut right, mut total) = (0usize, 0usize);
    let mut targets = Vec::new();
    for (k, chunk) in rows.chunks(32).enumerate() {
        let b = collator
            .collate(chunk, 1_000 + k as u64, &Device::Cpu)
            .unwrap();
        let logits = m
            .forward(&b.input_ids, Some(&b.attention_mask))
            .unwrap()
            .logits;
        let pred: Vec<Vec<u32>> = logits.argmax(D::Minus1).unwrap().to_vec2().unwrap();
        let labels: Vec<Vec<i64>> = b.labels.to_vec2().unwrap();
        for (p, l) in pred.iter().zip(&labels) {
            for (&p, &l) in p.iter().zip(l) {
                if l >= 0 {
                    total += 1;
                    right += usize::from(p as i64 == l);
                    targets.push(l as u32);
                }
            }
        }
    }
    (right as f64 / total as f64, targets)
}

fn mlm_learns(roberta: bool) {
    let read = |f: &str| -> Vec<String> {
        std::fs::read_to_string(data(f))
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| l.len() > 20 && !l.starts_with('='))
            .map(String::from)
            .collect()
    };
    let train_lines = read("wikitext-2/valid.txt");
    let test_lines: Vec<String> = read("wikitext-2/test.txt").into_iter().take(200).collect();
    let ds = Dataset::from_columns(vec![Column::new(
        "text",
        train_lines.iter().map(|l| json!(l)).collect(),
    )])
    .unwrap();
    let tok = Tokenizer::train_wordpiece(&ds, "text", 800).unwrap();
    let id = |t: &str| tok.token_to_id(t).unwrap();
    let (pad, mask, cls, sep, unk) = (
        id("[PAD]"),
        id("[MASK]"),
        id("[CLS]"),
        id("[SEP]"),
        id("[UNK]"),
    );
    let seq = 48;
    // Blocks of seq - 2 tokens wrapped in [CLS] ... [SEP] (group_texts, then specials).
    let blocks = |lines: &[String]| -> Vec<Example> {
        let mut stream = Vec::new();
        for l in lines {
            stream.extend(tok.encode_plain(l).unwrap());
        }
        stream
            .chunks_exact(seq - 2)
            .map(|c| {
                let mut ids = vec![cls];
                ids.extend_from_slice(c);
                ids.push(sep);
                Example {
                    input_ids: ids,
                    ..Default::default()
                }
            })
            .collect()
    };
    let train = blocks(&train_lines);
    let test = blocks(&test_lines);
    let mut config = BertConfig {
        hidden_size: 96,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 192,
        max_position_embeddings: 128,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..BertConfig::small(tok.vocab_size())
    };
    config.pad_token_id = pad;
    let config = if roberta {
        ModelConfig::Roberta(BertConfig {
            type_vocab_size: 1,
            layer_norm_eps: 1e-5,
            ..config
        })
    } else {
        ModelConfig::Bert(config)
    };
    let model = AutoModelForMaskedLM::from_config(config, &Device::Cpu).unwrap();
    let collator =
        DataCollatorForLanguageModeling::mlm(mask, pad, tok.vocab_size(), vec![pad, cls, sep, unk]);
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        max_steps: Some(600),
        per_device_train_batch_size: 16,
        learning_rate: 3e-3,
        warmup_steps: 30,
        weight_decay: 0.01,
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    let mut t = Trainer::new(model.share(), args, train)
        .unwrap()
        .with_collator(collator.clone())
        .unwrap();
    let out = t.train().unwrap();
    let (acc, targets) = masked_accuracy(&model, &collator, &test);
    // Unigram baseline: always predict the most frequent masked token.
    let mut counts = std::collections::HashMap::new();
    for &x in &targets {
        *counts.entry(x).or_insert(0usize) += 1;
    }
    let baseline = *counts.values().max().unwrap() as f64 / targets.len() as f64;
    println!(
        "{} MLM: masked-token accuracy {acc:.3} vs unigram baseline {baseline:.3} ({} masked tokens), {} steps in {:.0}s, train_loss {:.3}",
        if roberta { "RoBERTa" } else { "BERT" },
        targets.len(),
        out.global_step,
        out.train_runtime,
        out.training_loss
    );
    assert!(
        acc > 2.5 * baseline && acc > baseline + 0.05,
        "{acc} vs {baseline}"
    );
}

#[test]
fn bert_mlm_learns_wikitext() {
    mlm_learns(false);
}

#[test]
fn roberta_mlm_learns_wikitext() {
    mlm_learns(true);
}

#[test]
fn shards_feed_training() {
    use massivetext::tokenizer::{ShardBuildOptions, TokenShards};
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = std::fs::read_to_string(data("tinyshakespeare/input.txt"))
        .unwrap()
        .lines()
        .take(2000)
        .map(String::from)
        .collect();
    let ds = Dataset::from_columns(vec![Column::new(
        "text",
        lines.iter().map(|l| json!(l)).collect(),
    )])
    .unwrap();
    let tok = Tokenizer::train_bpe(&ds, "text", 300).unwrap();
    let shard_dir = dir.path().join("shards");
    TokenShards::build_from_texts(
        &tok,
        lines.clone(),
        &shard_dir,
        &ShardBuildOptions::default(),
    )
    .unwrap();
    let shards = TokenShards::open(&shard_dir, &tok).unwrap();
    let w = TokenWindows::from_shards(&shards, 32).unwrap();
    assert_eq!(w.tokens().len() as u64, shards.num_tokens());
    let config = Gpt2Config {
        vocab_size: tok.vocab_size(),
        n_positions: 32,
        n_embd: 32,
        n_layer: 1,
        n_head: 2,
        ..Gpt2Config::gpt2()
    };
    let model = AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().join("out"),
        max_steps: Some(30),
        learning_rate: 3e-3,
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    let mut t = Trainer::new(model, args, w.clone())
        .unwrap()
        .with_eval_dataset(w.with_max_eval_windows(16))
        .unwrap();
    let before = t.evaluate().unwrap().eval_loss;
    t.train().unwrap();
    let after = t.evaluate().unwrap().eval_loss;
    assert!(after < before - 0.5, "{before} -> {after}");
    let _ = Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap();
}
