//! The translation job: Multi30k (or any line-aligned parallel text) from the raw files, a
//! joint Unigram tokenizer trained by our tokenizers, a small Marian trained from scratch with
//! the [`Trainer`] (`DataCollatorForSeq2Seq`), beam search over the test set and sacreBLEU /
//! chrF++ scores with our metrics, plus example translations. `massivetext translate-train` runs
//! it; notebook 08 walks through the same steps.
//!
//! Files read: `DIR/{split}.{lang}` for the train, eval and test splits (`train`, `val`,
//! `test_2016_flickr` by default, as in `../shared/data/multi30k/`). Files written to
//! `output_dir`: the model (`config.json`, `generation_config.json`, `model.safetensors`), the
//! tokenizer, `translations.txt` (one hypothesis per test line), `report.json` and the
//! Trainer's `trainer_state.json`.
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::read_lines;
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::io;
use crate::jobs::memory::{MachineMemory, TrainingMemory};
use crate::metrics::{corpus_bleu, corpus_chrf};
use crate::models::{AutoModelForSeq2SeqLM, ForwardArgs, MarianConfig, ModelConfig};
use crate::tokenizer::{DecodeOptions, Tokenizer, TokenizerKind, TrainOptions};
use crate::train::{
    DataCollatorForSeq2Seq, Example, IntervalStrategy, SchedulerType, Steps, Trainer,
    TrainingArguments,
};
use crate::{Error, Result};

/// Where the parallel text is and how much of it to use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSpec {
    /// The folder holding `{split}.{lang}` files.
    pub dir: PathBuf,
    pub source_lang: String,
    pub target_lang: String,
    pub train_split: String,
    pub eval_split: String,
    pub test_split: String,
    /// Use only the first N training pairs (all when unset).
    pub max_train_examples: Option<usize>,
    /// Evaluate the loss on at most N pairs of the eval split.
    pub max_eval_examples: Option<usize>,
    /// Translate and score only the first N test pairs (all when unset).
    pub max_test_examples: Option<usize>,
    /// Sources and targets are cut to this many tokens (EOS included).
    pub max_tokens: usize,
}

impl Default for DataSpec {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("../shared/data/multi30k"),
            source_lang: "en".into(),
            target_lang: "de".into(),
            train_split: "train".into(),
            eval_split: "val".into(),
            test_split: "test_2016_flickr".into(),
            max_train_examples: None,
            max_eval_examples: Some(500),
            max_test_examples: None,
            max_tokens: 64,
        }
    }
}

/// The joint subword vocabulary of both languages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VocabSpec {
    /// `unigram` (SentencePiece-style, as opus-mt) or `bpe`.
    pub kind: String,
    pub vocab_size: usize,
}

impl Default for VocabSpec {
    fn default() -> Self {
        Self {
            kind: "unigram".into(),
            vocab_size: 4000,
        }
    }
}

/// The Marian model's shape (the vocabulary and special ids come from the tokenizer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub attention_heads: usize,
    pub ffn_dim: usize,
    pub dropout: f64,
    /// `swish` (opus-mt), `gelu` or `relu`.
    pub activation_function: String,
    pub max_position_embeddings: usize,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            d_model: 128,
            encoder_layers: 2,
            decoder_layers: 2,
            attention_heads: 4,
            ffn_dim: 512,
            dropout: 0.1,
            activation_function: "swish".into(),
            max_position_embeddings: 128,
        }
    }
}

/// How the test set is translated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeSpec {
    pub num_beams: usize,
    pub max_new_tokens: usize,
    pub length_penalty: f64,
    /// Sources translated per call.
    pub batch_size: usize,
    /// Example translations in the report.
    pub show_examples: usize,
}

impl Default for DecodeSpec {
    fn default() -> Self {
        Self {
            num_beams: 4,
            max_new_tokens: 64,
            length_penalty: 1.0,
            batch_size: 50,
            show_examples: 5,
        }
    }
}

/// A whole translation job, as a TOML file holds it (`[data]`, `[vocab]`, `[model]`,
/// `[decode]`, `[training]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranslationJob {
    pub data: DataSpec,
    pub vocab: VocabSpec,
    pub model: ModelSpec,
    pub decode: DecodeSpec,
    pub training: TrainingArguments,
}

impl Default for TranslationJob {
    /// The full run: all 29,000 training pairs, a joint vocabulary of 4,000, a 2 + 2 layer,
    /// 128-wide Marian (1.4M parameters), batches of 64 random pairs, AdamW at 2e-3 with 100
    /// warmup steps and a linear decay over 1,500 steps (3.3 epochs), beam search with 4 beams
    /// on the 1,000 test sentences. Set `training.group_by_length` for batches of similar
    /// length: less padding, faster (docs/benchmarks.md has both runs and their times).
    fn default() -> Self {
        Self {
            data: DataSpec::default(),
            vocab: VocabSpec::default(),
            model: ModelSpec::default(),
            decode: DecodeSpec::default(),
            training: TrainingArguments {
                output_dir: PathBuf::from("translate-run"),
                max_steps: Some(1500),
                per_device_train_batch_size: 64,
                per_device_eval_batch_size: 64,
                learning_rate: 2e-3,
                weight_decay: 0.01,
                adam_beta2: 0.98,
                warmup_steps: 100,
                lr_scheduler_type: SchedulerType::Linear,
                logging_steps: Steps::Every(100),
                eval_strategy: IntervalStrategy::Steps,
                eval_steps: Some(Steps::Every(1000)),
                save_strategy: IntervalStrategy::No,
                seed: 1,
                ..Default::default()
            },
        }
    }
}

impl TranslationJob {
    /// A run of a minute or so: 1,000 training pairs, a 1 + 1 layer 64-wide model, 60 steps,
    /// 50 test sentences with 2 beams. It does not translate; it shows every step.
    pub fn quick() -> Self {
        let mut job = Self::default();
        job.data.max_train_examples = Some(1000);
        job.data.max_eval_examples = Some(50);
        job.data.max_test_examples = Some(50);
        job.vocab.vocab_size = 1000;
        job.model = ModelSpec {
            d_model: 64,
            encoder_layers: 1,
            decoder_layers: 1,
            attention_heads: 4,
            ffn_dim: 128,
            ..ModelSpec::default()
        };
        job.decode.num_beams = 2;
        job.decode.max_new_tokens = 32;
        job.training.max_steps = Some(60);
        job.training.warmup_steps = 10;
        job.training.per_device_train_batch_size = 32;
        job.training.logging_steps = Steps::Every(20);
        job.training.eval_steps = Some(Steps::Every(60));
        job
    }

    /// Reads a TOML job file (missing tables and keys keep their defaults).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = io::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!(
                "{}; the file has [data], [vocab], [model], [decode] and [training] tables",
                e.message()
            ),
        })
    }

    /// The job as TOML, as `--config` reads it.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| Error::InvalidArgument(format!("cannot write the job as TOML: {e}")))
    }

    /// The Marian config for a vocabulary of `vocab_size` with these padding and EOS ids.
    pub fn marian_config(&self, vocab_size: usize, pad: u32, eos: u32) -> MarianConfig {
        let m = &self.model;
        MarianConfig {
            d_model: m.d_model,
            encoder_layers: m.encoder_layers,
            decoder_layers: m.decoder_layers,
            encoder_attention_heads: m.attention_heads,
            decoder_attention_heads: m.attention_heads,
            encoder_ffn_dim: m.ffn_dim,
            decoder_ffn_dim: m.ffn_dim,
            dropout: m.dropout,
            activation_function: m.activation_function.clone(),
            max_position_embeddings: m.max_position_embeddings,
            ..MarianConfig::small(vocab_size, pad, eos)
        }
    }

    /// The source and target sentences of `split` (`max` pairs at most), checked to be
    /// line-aligned: an error names both files and their line counts otherwise, or the split
    /// when it is empty.
    pub fn read_pairs(
        &self,
        split: &str,
        max: Option<usize>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let d = &self.data;
        // Whole files first: the alignment is checked on every line, then cut to `max` (a line
        // missing past `max` still shifts every pair after it).
        let mut src = self.read_split(split, &d.source_lang, None)?;
        let mut tgt = self.read_split(split, &d.target_lang, None)?;
        let path = |lang: &str| self.split_path(split, lang).display().to_string();
        if src.len() != tgt.len() {
            return Err(Error::InvalidArgument(format!(
                "{} has {} lines but {} has {}: the two sides of a split must be line-aligned, one sentence pair per line",
                path(&d.source_lang),
                src.len(),
                path(&d.target_lang),
                tgt.len()
            )));
        }
        if src.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} and {} hold no sentence pairs",
                path(&d.source_lang),
                path(&d.target_lang)
            )));
        }
        let max = max.unwrap_or(usize::MAX);
        src.truncate(max);
        tgt.truncate(max);
        Ok((src, tgt))
    }

    /// `{dir}/{split}.{lang}`, Multi30k's layout.
    fn split_path(&self, split: &str, lang: &str) -> PathBuf {
        self.data.dir.join(format!("{split}.{lang}"))
    }

    /// The split's lines of one language, at most `max`.
    pub fn read_split(&self, split: &str, lang: &str, max: Option<usize>) -> Result<Vec<String>> {
        let mut lines = read_lines(self.split_path(split, lang))?;
        lines.truncate(max.unwrap_or(usize::MAX));
        Ok(lines)
    }
}

/// Source and target token ids (each ending with EOS, cut to `max_tokens`) as examples.
pub fn parallel_examples(
    tok: &Tokenizer,
    sources: &[String],
    targets: &[String],
    max_tokens: usize,
) -> Result<Vec<Example>> {
    if sources.len() != targets.len() {
        return Err(Error::InvalidArgument(format!(
            "{} sources but {} targets: the files must be line-aligned",
            sources.len(),
            targets.len()
        )));
    }
    let eos = eos_id(tok)?;
    let cut = |mut ids: Vec<u32>| {
        ids.truncate(max_tokens.saturating_sub(1).max(1));
        ids.push(eos);
        ids
    };
    let src = tok.encode_batch(sources)?;
    let tgt = tok.encode_batch(targets)?;
    Ok(src
        .into_iter()
        .zip(tgt)
        .map(|(s, t)| Example {
            input_ids: cut(s),
            labels: Some(cut(t).into_iter().map(i64::from).collect()),
            ..Example::default()
        })
        .collect())
}

fn eos_id(tok: &Tokenizer) -> Result<u32> {
    tok.eos_token_id().ok_or_else(|| {
        Error::InvalidArgument(
            "the tokenizer has no EOS token (`</s>`); train a unigram tokenizer or add one".into(),
        )
    })
}

/// Translates `sources` with `config`: sources sorted by length into batches of `batch_size`
/// (less padding), each hypothesis decoded without special tokens, in the input order.
pub fn translate(
    model: &AutoModelForSeq2SeqLM,
    tok: &Tokenizer,
    sources: &[String],
    config: &GenerationConfig,
    batch_size: usize,
) -> Result<Vec<String>> {
    let eos = eos_id(tok)?;
    let pad = tok.pad_token_id().unwrap_or(model.config().pad_token_id);
    let ids: Vec<Vec<u32>> = tok
        .encode_batch(sources)?
        .into_iter()
        .map(|mut v| {
            v.truncate(model.config().max_position_embeddings.saturating_sub(1));
            v.push(eos);
            v
        })
        .collect();
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    let mut out = vec![String::new(); ids.len()];
    let dev = model.device();
    for chunk in order.chunks(batch_size.max(1)) {
        let len = chunk.iter().map(|&i| ids[i].len()).max().unwrap_or(1);
        let mut flat = vec![pad; chunk.len() * len];
        let mut mask = vec![0u32; chunk.len() * len];
        for (r, &i) in chunk.iter().enumerate() {
            flat[r * len..r * len + ids[i].len()].copy_from_slice(&ids[i]);
            mask[r * len..r * len + ids[i].len()].fill(1);
        }
        let src = Tensor::from_vec(flat, (chunk.len(), len), dev)?;
        let mask = Tensor::from_vec(mask, (chunk.len(), len), dev)?;
        let generated =
            model.generate_with(&ForwardArgs::new(&src).attention_mask(&mask), config)?;
        for (r, row) in generated.to_vec2::<u32>()?.into_iter().enumerate() {
            out[chunk[r]] = tok.decode(&row, DecodeOptions::SKIP_SPECIAL_TOKENS)?;
        }
    }
    Ok(out)
}

/// One example translation of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExampleTranslation {
    pub source: String,
    pub reference: String,
    pub hypothesis: String,
}

/// What the job reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranslationReport {
    /// sacreBLEU (13a, exp smoothing, cased) of the test translations.
    pub bleu: f64,
    /// sacreBLEU's full signature-style line (`BLEU = 31.2 62.1/...`).
    pub bleu_line: String,
    /// chrF2 of the test translations.
    pub chrf: f64,
    pub test_sentences: usize,
    pub train_examples: usize,
    pub vocab_size: usize,
    pub parameters: usize,
    pub steps: usize,
    pub train_loss: f64,
    pub eval_loss: Option<f64>,
    pub train_seconds: f64,
    /// Source and target tokens (padding excluded) trained on per second.
    pub train_tokens_per_second: f64,
    pub translate_seconds: f64,
    pub examples: Vec<ExampleTranslation>,
}

impl TranslationReport {
    /// The lines `translate-train` prints at the end.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "test: {} sentences, {}\nchrF2 = {:.2}\ntrained {} steps on {} pairs in {:.0} s ({:.0} tokens/s), train_loss {:.3}{}; translated in {:.0} s\nmodel: {} parameters, vocabulary {}\n",
            self.test_sentences,
            self.bleu_line,
            self.chrf,
            self.steps,
            self.train_examples,
            self.train_seconds,
            self.train_tokens_per_second,
            self.train_loss,
            self.eval_loss
                .map(|l| format!(", eval_loss {l:.3}"))
                .unwrap_or_default(),
            self.translate_seconds,
            self.parameters,
            self.vocab_size,
        );
        for e in &self.examples {
            s += &format!(
                "\n  source:     {}\n  reference:  {}\n  hypothesis: {}\n",
                e.source, e.reference, e.hypothesis
            );
        }
        s
    }
}

/// Trains the joint tokenizer of `job` on the training pairs (both languages).
pub fn train_tokenizer(
    job: &TranslationJob,
    sources: &[String],
    targets: &[String],
) -> Result<Tokenizer> {
    let kind: TokenizerKind = job.vocab.kind.parse()?;
    let mut opts = TrainOptions::new(job.vocab.vocab_size);
    opts.show_progress = false;
    if kind == TokenizerKind::Bpe {
        opts.special_tokens = vec!["<pad>".into(), "</s>".into()];
    }
    let tok = Tokenizer::train(kind, sources.iter().chain(targets), &opts)?;
    if kind == TokenizerKind::Bpe {
        let mut special = tok.special_tokens().clone();
        special.pad_token = Some("<pad>".into());
        special.eos_token = Some("</s>".into());
        return tok.with_special_tokens(special);
    }
    Ok(tok)
}

/// Runs the whole job on `device`, reporting progress lines to `log`.
/// Refuses a model and batch that cannot fit in this machine's memory before anything is read
/// or allocated (see [`crate::jobs::memory`]): the vocabulary at its planned size, source and
/// target sequences of `max_tokens`.
fn check_memory(job: &TranslationJob) -> Result<()> {
    let t = &job.training;
    let vocab = job.vocab.vocab_size;
    let config = ModelConfig::from(job.marian_config(vocab, 0, 0));
    TrainingMemory::for_model(
        config.size(),
        vocab,
        t.per_device_train_batch_size
            .max(t.per_device_eval_batch_size),
        job.data.max_tokens,
    )
    .check(
        MachineMemory::read(),
        "lower --vocab-size, or in a --config job file [data] max_tokens, [model] d_model, ffn_dim or the layers, [training] per_device_train_batch_size",
    )
}

pub fn run_translation(
    job: &TranslationJob,
    device: &Device,
    mut log: impl FnMut(&str),
) -> Result<TranslationReport> {
    let d = &job.data;
    let (src, tgt) = (&d.source_lang, &d.target_lang);
    let out_dir = &job.training.output_dir;
    if device.is_cpu() {
        check_memory(job)?;
    }
    // One run at a time in a folder (the lock sits beside it; see io::DirLock::beside).
    let _lock = io::DirLock::beside(
        out_dir,
        &format!("the training folder {}", out_dir.display()),
    )?;
    let (train_src, train_tgt) = job.read_pairs(&d.train_split, d.max_train_examples)?;
    let (eval_src, eval_tgt) = job.read_pairs(&d.eval_split, d.max_eval_examples)?;
    let (test_src, test_tgt) = job.read_pairs(&d.test_split, d.max_test_examples)?;
    log(&format!(
        "data: {} training, {} eval, {} test pairs ({src} -> {tgt}) from {}",
        train_src.len(),
        eval_src.len(),
        test_src.len(),
        d.dir.display()
    ));
    let t0 = Instant::now();
    let tok = train_tokenizer(job, &train_src, &train_tgt)?;
    let (pad, eos) = (tok.pad_token_id().unwrap_or(0), eos_id(&tok)?);
    log(&format!(
        "tokenizer: {} {} tokens (pad {pad}, eos {eos}) in {:.1} s",
        job.vocab.kind,
        tok.vocab_size(),
        t0.elapsed().as_secs_f64()
    ));
    let train = parallel_examples(&tok, &train_src, &train_tgt, d.max_tokens)?;
    let eval = parallel_examples(&tok, &eval_src, &eval_tgt, d.max_tokens)?;
    let config = job.marian_config(tok.vocab_size(), pad, eos);
    let model = AutoModelForSeq2SeqLM::from_config_seeded(config, device, job.training.seed)?;
    let parameters = model.num_parameters();
    log(&format!(
        "model: Marian {} + {} layers, d_model {}, {} parameters",
        job.model.encoder_layers, job.model.decoder_layers, job.model.d_model, parameters
    ));
    let train_examples = train.len();
    let mut trainer = Trainer::new(model, job.training.clone(), train)?
        .with_eval_dataset(eval)?
        .with_collator(DataCollatorForSeq2Seq::new(pad))?;
    let out = trainer.train()?;
    let eval_loss = trainer
        .log_history()
        .iter()
        .rev()
        .find_map(|e| e.get("eval_loss").and_then(|v| v.as_f64()));
    let model = trainer.model().share();
    let dir = &job.training.output_dir;
    model.save_pretrained(dir)?;
    tok.save_pretrained(dir)?;
    let gen_cfg = GenerationConfig {
        num_beams: job.decode.num_beams,
        max_new_tokens: job.decode.max_new_tokens,
        length_penalty: job.decode.length_penalty,
        ..model.generation_config()?
    };
    log(&format!(
        "translating {} test sentences with {} beams",
        test_src.len(),
        gen_cfg.num_beams
    ));
    let t1 = Instant::now();
    let hyps = translate(&model, &tok, &test_src, &gen_cfg, job.decode.batch_size)?;
    let translate_seconds = t1.elapsed().as_secs_f64();
    io::write_atomic(
        &dir.join("translations.txt"),
        (hyps.join("\n") + "\n").as_bytes(),
    )?;
    let bleu = corpus_bleu(&hyps, std::slice::from_ref(&test_tgt))?;
    let chrf = corpus_chrf(&hyps, std::slice::from_ref(&test_tgt))?;
    let examples = (0..job.decode.show_examples.min(hyps.len()))
        .map(|i| ExampleTranslation {
            source: test_src[i].clone(),
            reference: test_tgt[i].clone(),
            hypothesis: hyps[i].clone(),
        })
        .collect();
    let report = TranslationReport {
        bleu: bleu.score,
        bleu_line: bleu.to_string(),
        chrf: chrf.score,
        test_sentences: hyps.len(),
        train_examples,
        vocab_size: tok.vocab_size(),
        parameters,
        steps: out.global_step,
        train_loss: out.training_loss,
        eval_loss,
        train_seconds: out.train_runtime,
        train_tokens_per_second: out.tokens_per_second,
        translate_seconds,
        examples,
    };
    io::write_json(&dir.join("report.json"), &report)?;
    Ok(report)
}
