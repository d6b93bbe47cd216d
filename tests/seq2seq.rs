//! Encoder–decoder (Marian) models against Hugging Face transformers: reference values come
//! from tests/fixtures/make_seq2seq.py (two tiny random `MarianMTModel`s; eager attention; CPU
//! torch): logits, loss, gradients, the encoder's output, and `generate` token for token.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use massivetext::kernels;
use massivetext::prelude::*;
use massivetext::train::{DataCollatorForSeq2Seq, EvalPrediction};
use serde_json::Value;

#[path = "common/reference.rs"]
mod reference;

const MODELS: [&str; 2] = ["swish_tied", "gelu_untied"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seq2seq")
        .join(name)
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("expected.safetensors"), &Device::Cpu)
        .unwrap()
}

fn expected_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("expected.json")).unwrap())
        .unwrap()
}

fn load(name: &str) -> AutoModelForSeq2SeqLM {
    AutoModelForSeq2SeqLM::from_dir(fixture(name), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn ids(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

/// Sources (padded on the right) and labels (padded with -100).
fn with_labels(e: &HashMap<String, Tensor>) -> ForwardArgs {
    ForwardArgs::new(&ids(&e["input_ids"]))
        .attention_mask(&e["attention_mask"])
        .labels(&e["labels"])
}

/// Sources and padded decoder inputs with their mask.
fn with_decoder_inputs(e: &HashMap<String, Tensor>) -> ForwardArgs {
    ForwardArgs::new(&ids(&e["input_ids"]))
        .attention_mask(&e["attention_mask"])
        .decoder_input_ids(&e["decoder_input_ids"])
        .decoder_attention_mask(&e["decoder_attention_mask"])
}

fn check_forward(name: &str, path: &str) {
    let e = expected(name);
    let m = load(name);
    assert!(!m.is_training());
    let out = m.forward_with(&with_labels(&e)).unwrap();
    let d = max_abs_diff(&out.logits, &e["logits"]);
    println!("{name} ({path}): max |logits - transformers| = {d:.2e}");
    assert!(d <= 1e-4, "{name} ({path}): logits differ by {d}");
    let loss = out.loss.unwrap().to_scalar::<f32>().unwrap();
    let want = e["loss"].to_vec1::<f32>().unwrap()[0];
    println!("{name} ({path}): loss {loss} vs transformers {want}");
    assert!((loss - want).abs() <= 1e-5, "{name}: loss {loss} vs {want}");
    let enc = m.encoder_last_hidden_state(&with_labels(&e)).unwrap();
    let d = max_abs_diff(&enc, &e["encoder_hidden"]);
    assert!(d <= 1e-4, "{name} ({path}): encoder output differs by {d}");
    let out = m.forward_with(&with_decoder_inputs(&e)).unwrap();
    assert!(out.loss.is_none());
    let d = max_abs_diff(&out.logits, &e["logits_dec"]);
    println!("{name} ({path}): padded decoder inputs, max |logits - transformers| = {d:.2e}");
    assert!(
        d <= 1e-4,
        "{name} ({path}): logits with decoder inputs differ by {d}"
    );
}

/// The three kinds of attention against transformers' `output_attentions=True` on the padded
/// batch with labels (tests/fixtures/make_seq2seq.py, attentions.safetensors), and the logits
/// unchanged by asking for them (the composed path then runs instead of the fused one).
#[test]
fn marian_attentions_match_transformers() {
    for name in MODELS {
        let e = expected(name);
        let want = candle_core::safetensors::load(
            fixture(name).join("attentions.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let m = load(name);
        let out = m
            .forward_with(&with_labels(&e).output_attentions(true))
            .unwrap();
        let d = max_abs_diff(&out.logits, &e["logits"]);
        assert!(d <= 1e-4, "{name}: logits with attentions differ by {d}");
        let c = m.config();
        for (kind, got, layers) in [
            (
                "encoder_attentions",
                &out.encoder_attentions,
                c.encoder_layers,
            ),
            (
                "decoder_attentions",
                &out.decoder_attentions,
                c.decoder_layers,
            ),
            ("cross_attentions", &out.cross_attentions, c.decoder_layers),
        ] {
            let got = got.as_ref().unwrap_or_else(|| panic!("{name}: no {kind}"));
            assert_eq!(got.len(), layers, "{name}: {kind} layers");
            for (i, a) in got.iter().enumerate() {
                let d = max_abs_diff(a, &want[&format!("{kind}.{i}")]);
                println!(
                    "{name}: {kind}.{i} {:?}, max |ours - transformers| = {d:.2e}",
                    a.dims()
                );
                assert!(d <= 1e-5, "{name}: {kind}.{i} differs by {d}");
            }
        }
        // without asking, none
        let out = m.forward_with(&with_labels(&e)).unwrap();
        assert!(out.encoder_attentions.is_none() && out.cross_attentions.is_none());
    }
}

/// A translation's attention drawn: the cross-attention map has the target tokens as rows and
/// the source tokens as columns, and its rows are the model's cross-attention probabilities.
#[test]
fn marian_translation_attention_map_draws_source_against_target() {
    let e = expected("swish_tied");
    let m = load("swish_tied");
    let src: Vec<u32> = ids(&e["input_ids"]).to_vec2::<u32>().unwrap()[0].clone();
    let tgt: Vec<u32> = ids(&e["decoder_input_ids"]).to_vec2::<u32>().unwrap()[0][..5].to_vec();
    let src_tokens: Vec<String> = src.iter().map(|i| format!("s{i}")).collect();
    let tgt_tokens: Vec<String> = tgt.iter().map(|i| format!("t{i}")).collect();
    let maps = AttentionMap::translation(&m, (&src, &src_tokens), (&tgt, &tgt_tokens)).unwrap();
    assert_eq!(maps.cross.num_queries(), 5);
    assert_eq!(maps.cross.num_keys(), src.len());
    assert!(maps.cross.is_cross() && !maps.cross.is_causal());
    assert_eq!(maps.cross.query_tokens(), &tgt_tokens[..]);
    assert_eq!(maps.cross.tokens(), &src_tokens[..]);
    assert!(maps.decoder.is_causal() && !maps.encoder.is_causal());
    assert_eq!(maps.encoder.num_layers(), 2);
    // the map's numbers are the model's cross-attention of the last layer
    let srct = Tensor::from_slice(&src, (1, src.len()), &Device::Cpu).unwrap();
    let tgtt = Tensor::from_slice(&tgt, (1, tgt.len()), &Device::Cpu).unwrap();
    let out = m
        .forward_with(
            &ForwardArgs::new(&srct)
                .decoder_input_ids(&tgtt)
                .output_attentions(true),
        )
        .unwrap();
    let last = out.cross_attentions.unwrap()[1]
        .get(0)
        .unwrap()
        .get(2)
        .unwrap();
    let want: Vec<f32> = last.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(maps.cross.probs(1, 2).unwrap(), &want[..]);
    for row in want.chunks(src.len()) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let svg = maps.cross.head(1, 2).unwrap().to_svg().unwrap();
    assert!(svg.contains("t82") && svg.contains(&src_tokens[0]), "{svg}");
    let grid = maps.cross.layer_grid(0).unwrap().to_svg().unwrap();
    assert!(grid.contains("<svg"));
}

/// The encoder–decoder has the face every `Auto*` has (issue 26: its own copy had drifted):
/// `with_weight_dtype` (bf16 weights, f32 compute, close to the f32 logits, translating) and
/// `from_pretrained_revision` (a local folder resolves at any revision).
#[test]
fn marian_face_has_weight_dtype_and_revision() {
    let e = expected("swish_tied");
    let m = load("swish_tied");
    let bf16 = m.with_weight_dtype(DType::BF16).unwrap();
    assert!(!bf16.is_training());
    let dtypes: Vec<DType> = bf16
        .named_parameters()
        .iter()
        .map(|(_, v)| v.dtype())
        .collect();
    assert!(dtypes.contains(&DType::BF16) && dtypes.contains(&DType::F32));
    let a = m.forward_with(&with_labels(&e)).unwrap().logits;
    let b = bf16.forward_with(&with_labels(&e)).unwrap().logits;
    let d = max_abs_diff(&a, &b);
    println!(
        "bf16 weights: max |logits - f32| = {d:.2e} (max |logits| {:.2})",
        max_abs(&a)
    );
    assert!(
        d > 0.0 && d <= 0.05 * max_abs(&a),
        "bf16 logits differ by {d}"
    );
    let gen_cfg = GenerationConfig {
        max_new_tokens: 4,
        ..bf16.generation_config().unwrap()
    };
    let out = bf16
        .generate_with(
            &ForwardArgs::new(&ids(&e["input_ids"])).attention_mask(&e["attention_mask"]),
            &gen_cfg,
        )
        .unwrap();
    assert_eq!(out.dim(0).unwrap(), 3);
    let dir = fixture("swish_tied");
    let r = AutoModelForSeq2SeqLM::from_pretrained_revision(dir.to_str().unwrap(), "main").unwrap();
    assert_eq!(r.config(), m.config());
}

#[test]
fn marian_logits_and_loss_match_transformers() {
    for name in MODELS {
        check_forward(name, "fused kernels");
    }
}

/// `MASSIVETEXT_FUSED=0`'s path: every op composed from candle ops, as CUDA runs it.
#[test]
fn marian_composed_kernels_match_transformers() {
    kernels::with_fused(false, || {
        for name in MODELS {
            check_forward(name, "composed kernels");
        }
    });
}

#[test]
fn marian_gradients_match_torch() {
    for name in MODELS {
        let e = expected(name);
        let m = load(name);
        // the full forward pass, and the training step's loss_with (head over labelled rows)
        for (fused, loss_with) in [(true, false), (false, false), (true, true), (false, true)] {
            let grads = kernels::with_fused(fused, || {
                let args = with_labels(&e);
                let loss = if loss_with {
                    let l = m.loss_with(&args).unwrap();
                    let want = e["loss"].to_vec1::<f32>().unwrap()[0];
                    let got = l.to_scalar::<f32>().unwrap();
                    assert!(
                        (got - want).abs() <= 1e-5,
                        "{name}: loss_with {got} vs {want}"
                    );
                    l
                } else {
                    m.forward_with(&args).unwrap().loss.unwrap()
                };
                loss.backward().unwrap()
            });
            let params = m.named_parameters();
            assert_eq!(
                params.len() as u64,
                expected_json(name)["grads"].as_u64().unwrap(),
                "{name}: the parameters torch trains"
            );
            let mut worst = 0f32;
            for (pname, var) in &params {
                let g = grads
                    .get(var)
                    .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
                let want = e
                    .get(&format!("grad.{pname}"))
                    .unwrap_or_else(|| panic!("{name}: torch has no parameter {pname}"));
                if pname.ends_with("k_proj.bias") {
                    // softmax ignores what the key bias adds to every score of a row: its true
                    // gradient is 0, and both sides hold rounding noise
                    assert!(max_abs(g) < 1e-6 && max_abs(want) < 1e-6, "{name}: {pname}");
                    continue;
                }
                let rel = max_abs_diff(g, want) / max_abs(want).max(1e-6);
                worst = worst.max(rel);
                assert!(
                    rel <= 1e-5,
                    "{name} (fused {fused}, loss_with {loss_with}): gradient of {pname}: relative difference {rel}"
                );
            }
            println!(
                "{name} (fused {fused}, loss_with {loss_with}): worst relative gradient difference vs torch = {worst:.2e}"
            );
        }
    }
}

fn rows(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::U32).unwrap().to_vec2().unwrap()
}

fn generate(
    m: &AutoModelForSeq2SeqLM,
    e: &HashMap<String, Tensor>,
    c: &GenerationConfig,
) -> Tensor {
    let args = ForwardArgs::new(&ids(&e["input_ids"])).attention_mask(&e["attention_mask"]);
    m.generate_with(&args, c).unwrap()
}

/// The checkpoint's own settings (beam search with `bad_words_ids`, `forced_eos_token_id`,
/// `max_length`, `renormalize_logits`), greedy, and the overrides the script names.
#[test]
fn marian_generate_matches_transformers() {
    for name in MODELS {
        let e = expected(name);
        let m = load(name);
        let base = m.generation_config().unwrap();
        assert_eq!(base.decoder_start_token_id, Some(m.config().pad_token_id));
        assert_eq!(base.bad_words_ids, vec![vec![m.config().pad_token_id]]);
        let mut runs: Vec<(String, GenerationConfig)> = vec![
            ("generate_default".into(), base.clone()),
            (
                "generate_greedy".into(),
                GenerationConfig {
                    num_beams: 1,
                    ..base.clone()
                },
            ),
        ];
        let extra = expected_json(name)["generate"].clone();
        for (k, v) in extra.as_object().unwrap() {
            let mut c = base.clone();
            let o = v.as_object().unwrap();
            if let Some(n) = o.get("num_beams") {
                c.num_beams = n.as_u64().unwrap() as usize;
            }
            if let Some(n) = o.get("max_new_tokens") {
                c.max_new_tokens = n.as_u64().unwrap() as usize;
            }
            if let Some(n) = o.get("num_return_sequences") {
                c.num_return_sequences = n.as_u64().unwrap() as usize;
            }
            if let Some(n) = o.get("length_penalty") {
                c.length_penalty = n.as_f64().unwrap();
            }
            if let Some(s) = o.get("early_stopping") {
                c.early_stopping = serde_json::from_value(s.clone()).unwrap();
            }
            runs.push((format!("generate_{k}"), c));
        }
        for (key, c) in runs {
            for fused in [true, false] {
                let got = kernels::with_fused(fused, || rows(&generate(&m, &e, &c)));
                let want = rows(&e[&key]);
                assert_eq!(got, want, "{name} {key} (fused {fused})");
            }
            println!(
                "{name} {key}: equal to transformers ({} rows)",
                e[&key].dim(0).unwrap()
            );
        }
    }
}

/// The decoder fed one token at a time through its cache gives the logits of the full pass.
#[test]
fn marian_cached_decoding_matches_full_forward() {
    for name in MODELS {
        let e = expected(name);
        let m = load(name);
        let full = m.forward_with(&with_labels(&e)).unwrap().logits;
        let dec = massivetext::models::PreTrainedModel::encode;
        let args = ForwardArgs::new(&ids(&e["input_ids"])).attention_mask(&e["attention_mask"]);
        let mut cache = dec(&m, &args, 1, 16).unwrap();
        let d_ids = ids(&e["decoder_input_ids"]);
        let t = d_ids.dim(1).unwrap();
        // row 1 has no decoder padding: its decoder inputs are the shifted labels
        for k in 0..t {
            let step = m
                .decode_cached(&d_ids.narrow(1, k, 1).unwrap(), &mut cache)
                .unwrap();
            let d = max_abs_diff(
                &step.get(1).unwrap(),
                &full.get(1).unwrap().narrow(0, k, 1).unwrap(),
            );
            assert!(d <= 1e-4, "{name} step {k}: {d}");
        }
        assert_eq!(cache.len(), t);
    }
}

fn saved_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("seq2seq_saved")
}

/// What `save_pretrained` writes: transformers' names (no position tables, one shared
/// table when shared, `final_logits_bias`), and the same model back.
#[test]
fn marian_save_pretrained_round_trips() {
    for name in MODELS {
        let m = load(name);
        let dir = saved_root().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        m.save_pretrained(&dir).unwrap();
        let names = |p: &Path| {
            let mut v: Vec<String> =
                candle_core::safetensors::load(p.join("model.safetensors"), &Device::Cpu)
                    .unwrap()
                    .into_keys()
                    .collect();
            v.sort();
            v
        };
        assert_eq!(names(&dir), names(&fixture(name)), "{name}");
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["model_type"], "marian");
        assert_eq!(config["architectures"][0], "MarianMTModel");
        assert!(dir.join("generation_config.json").is_file());
        let e = expected(name);
        let (back, report) = AutoModelForSeq2SeqLM::from_dir_reported(&dir, &Device::Cpu).unwrap();
        assert!(report.unused.is_empty(), "{:?}", report.unused);
        let d = max_abs_diff(
            &back.forward_with(&with_labels(&e)).unwrap().logits,
            &e["logits"],
        );
        assert!(d <= 1e-4, "{name}: {d}");
        assert_eq!(
            back.generation_config().unwrap(),
            m.generation_config().unwrap()
        );
    }
    // transformers loads what we wrote: the committed logits (≤ 1e-4) and `generate` tokens
    let report = reference::run_script(
        "make_seq2seq.py",
        &["--check".as_ref(), saved_root().as_os_str()],
    );
    println!("{report}");
    assert_eq!(
        report.matches("generate equal: True").count(),
        MODELS.len(),
        "{report}"
    );
}

fn tiny_config() -> MarianConfig {
    MarianConfig {
        d_model: 32,
        encoder_layers: 2,
        decoder_layers: 2,
        encoder_attention_heads: 4,
        decoder_attention_heads: 4,
        encoder_ffn_dim: 64,
        decoder_ffn_dim: 64,
        max_position_embeddings: 32,
        dropout: 0.0,
        ..MarianConfig::small(20, 1, 2)
    }
}

#[test]
fn marian_from_config_trains_every_parameter() {
    let m = AutoModelForSeq2SeqLM::from_config(tiny_config(), &Device::Cpu).unwrap();
    assert!(m.is_training());
    let src = Tensor::new(&[[5u32, 6, 7, 2], [8, 9, 2, 1]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 1, 0]], &Device::Cpu).unwrap();
    let labels = Tensor::new(&[[10i64, 11, 2], [12, 2, -100]], &Device::Cpu).unwrap();
    let out = m
        .forward_with(&ForwardArgs::new(&src).attention_mask(&mask).labels(&labels))
        .unwrap();
    assert_eq!(out.logits.dims(), &[2, 3, 20]);
    let grads = out.loss.unwrap().backward().unwrap();
    for (n, v) in m.named_parameters() {
        let g = grads
            .get(&v)
            .unwrap_or_else(|| panic!("{n} got no gradient"));
        assert!(max_abs(g) > 0.0, "{n}: zero gradient");
    }
    // one shared table: the padding row is trained only through the tied head
    assert!(
        m.named_parameters()
            .iter()
            .any(|(n, _)| n == "model.shared.weight")
    );
    let g = m.generation_config().unwrap();
    assert_eq!(g.bad_words_ids, vec![vec![1]]);
    assert_eq!(g.decoder_start_token_id, Some(1));
    assert_eq!(g.forced_eos_token_id, Some(2));
    assert_eq!(g.num_beams, 4);
    // sampling: seeded, so repeatable; several sequences per source
    let c = GenerationConfig {
        do_sample: true,
        num_return_sequences: 3,
        num_beams: 1,
        max_new_tokens: 6,
        seed: 7,
        ..g
    };
    let args = ForwardArgs::new(&src).attention_mask(&mask);
    let a = m.generate_with(&args, &c).unwrap();
    let b = m.generate_with(&args, &c).unwrap();
    assert_eq!(a.dim(0).unwrap(), 6);
    assert_eq!(rows(&a), rows(&b));
    assert!(
        rows(&a)
            .iter()
            .all(|r| r[0] == 1 && !r[1..].contains(&1) || r.contains(&2))
    );
}

#[test]
fn wrong_model_types_are_refused_with_the_entry_point_to_use() {
    let e = AutoModelForSeq2SeqLM::from_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/gpt2"),
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("AutoModelForSeq2SeqLM") && e.contains("marian"),
        "{e}"
    );
    let e = AutoModelForCausalLM::from_dir(fixture("swish_tied"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("AutoModelForSeq2SeqLM"), "{e}");
}

/// Copy task: each source is a few digits followed by EOS; the target is the same. A tiny
/// Marian learns it in a few hundred steps, and `predict_with_generate` scores it.
fn copy_examples(n: usize, seed: u64) -> Vec<Example> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(2..6);
            let mut src: Vec<u32> = (0..len).map(|_| rng.random_range(3..12)).collect();
            src.push(2);
            Example {
                labels: Some(src.iter().map(|&x| x as i64).collect()),
                input_ids: src,
                ..Default::default()
            }
        })
        .collect()
}

#[test]
fn trainer_learns_to_copy_and_scores_generations() {
    let model = AutoModelForSeq2SeqLM::from_config(tiny_config(), &Device::Cpu).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("seq2seq_trainer");
    let _ = std::fs::remove_dir_all(&dir);
    let args = TrainingArguments {
        output_dir: dir.clone(),
        max_steps: Some(600),
        per_device_train_batch_size: 32,
        per_device_eval_batch_size: 16,
        learning_rate: 3e-3,
        warmup_steps: 50,
        logging_steps: Steps::Every(100),
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        predict_with_generate: true,
        generation_max_length: Some(10),
        generation_num_beams: Some(2),
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, args, copy_examples(2000, 1))
        .unwrap()
        .with_eval_dataset(copy_examples(40, 2))
        .unwrap()
        .with_compute_metrics(|p: &EvalPrediction| {
            let text = |rows: Vec<Vec<u32>>| -> Vec<String> {
                rows.iter()
                    .map(|r| {
                        r.iter()
                            .filter(|&&t| t > 2)
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect()
            };
            let hyps = text(p.sequences()?);
            let refs = text(p.label_sequences()?);
            let exact = hyps.iter().zip(&refs).filter(|(h, r)| h == r).count();
            let bleu = corpus_bleu(&hyps, std::slice::from_ref(&refs))?;
            Ok([
                ("exact".to_string(), exact as f64 / hyps.len() as f64),
                ("bleu".to_string(), bleu.score),
            ]
            .into())
        });
    assert_eq!(
        trainer.seq2seq_collator(),
        Some(&DataCollatorForSeq2Seq::new(1))
    );
    let out = trainer.train().unwrap();
    assert!(out.training_loss.is_finite());
    let ev = trainer.evaluate().unwrap();
    println!("copy task: {:?}", ev.metrics);
    assert!(ev.eval_loss < 0.5, "eval_loss {}", ev.eval_loss);
    assert!(ev.metrics["eval_exact"] > 0.8, "{:?}", ev.metrics);
    assert!(ev.metrics["eval_bleu"] > 80.0, "{:?}", ev.metrics);
    // predict: generated ids, padded with -100 between batches, and test_ metrics
    let pred = trainer.predict(copy_examples(20, 3)).unwrap();
    assert_eq!(pred.predictions.dim(0).unwrap(), 20);
    assert_eq!(pred.predictions.dtype(), DType::I64);
    assert!(pred.metrics.contains_key("test_bleu"));
    let first = rows(&pred.predictions.clamp(0i64, 1000i64).unwrap());
    assert!(
        first.iter().all(|r| r[0] == 1),
        "sequences start with the decoder start token"
    );
}
