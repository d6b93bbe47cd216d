//! The Llama-style decoder families (Llama, Qwen2, Mistral) against Hugging Face transformers:
//! reference values come from tests/fixtures/make_llama.py (tiny random models; eager attention;
//! CPU torch): logits on right- and left-padded batches, the loss, attention maps, hidden
//! states, gradients on both kernel paths, `generate` (greedy, left-padded batch, 3 beams), bf16
//! weights, the save round trip through transformers, and the errors of bad configs.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use massivetext::generate::{GenerationConfig, GenerationMixin};
use massivetext::prelude::*;
use serde_json::Value;

#[path = "common/reference.rs"]
mod reference;

const NAMES: [&str; 4] = ["llama", "llama_linear", "qwen2", "mistral"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llama")
        .join(name)
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("expected.safetensors"), &Device::Cpu)
        .unwrap()
}

fn load(name: &str) -> AutoModelForCausalLM {
    AutoModelForCausalLM::from_dir(fixture(name), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    max_abs(&(a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap()).unwrap())
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

fn scalar(e: &HashMap<String, Tensor>, key: &str) -> f32 {
    e[key].to_vec1::<f32>().unwrap()[0]
}

/// The fixture's batch (`pre` "" right-padded, "left." left-padded) with its labels.
fn batch(e: &HashMap<String, Tensor>, pre: &str) -> ForwardArgs {
    ForwardArgs::new(&e[&format!("{pre}input_ids")].to_dtype(DType::U32).unwrap())
        .attention_mask(&e[&format!("{pre}attention_mask")])
        .labels(&e[&format!("{pre}labels")])
}

#[test]
fn logits_loss_attentions_and_hidden_states_match_transformers() {
    for name in NAMES {
        let e = expected(name);
        let m = load(name);
        assert!(!m.is_training());
        // the composed attention (probabilities asked for): every output
        let args = batch(&e, "")
            .output_attentions(true)
            .output_hidden_states(true);
        let out = m.forward_with(&args).unwrap();
        let d = max_abs_diff(&out.logits, &e["logits"]);
        println!("{name}: max |logits - torch| = {d:.2e} (right-padded, composed attention)");
        assert!(d <= 1e-4, "{name}: logits differ by {d}");
        let loss = out.loss.unwrap().to_scalar::<f32>().unwrap();
        assert!(
            (loss - scalar(&e, "loss")).abs() <= 1e-5,
            "{name}: loss {loss}"
        );
        let attns = out.attentions.unwrap();
        assert_eq!(attns.len(), 2);
        for (i, a) in attns.iter().enumerate() {
            let want = &e[&format!("attentions.{i}")];
            // one map per query head, not per kv head
            assert_eq!(a.dims(), want.dims(), "{name}: attentions.{i}");
            let d = max_abs_diff(a, want);
            println!("{name}: layer {i} max |attention - torch| = {d:.2e}");
            assert!(d <= 1e-5, "{name}: attentions.{i} differ by {d}");
        }
        let hs = out.hidden_states.unwrap();
        assert_eq!(hs.len(), 3);
        for (i, h) in hs.iter().enumerate() {
            let d = max_abs_diff(h, &e[&format!("hidden_states.{i}")]);
            assert!(d <= 1e-4, "{name}: hidden_states.{i} differ by {d}");
        }
        // the attention kernel (no probabilities), right- then left-padded
        for pre in ["", "left."] {
            let out = m.forward_with(&batch(&e, pre)).unwrap();
            assert!(out.attentions.is_none());
            let d = max_abs_diff(&out.logits, &e[&format!("{pre}logits")]);
            println!("{name}: max |logits - torch| = {d:.2e} ({pre}batch, attention kernel)");
            assert!(d <= 1e-4, "{name}: {pre}logits differ by {d}");
            let loss = out.loss.unwrap().to_scalar::<f32>().unwrap();
            let want = scalar(&e, &format!("{pre}loss"));
            assert!(
                (loss - want).abs() <= 1e-5,
                "{name}: {pre}loss {loss} vs {want}"
            );
        }
    }
}

/// Every parameter's gradient against a float64 copy in torch, relative to its largest entry
/// (≤ 1e-4), through the composed attention, the kernels' path and every op composed
/// (`with_fused(false)`), and the training step's `loss_with`.
#[test]
fn gradients_match_torch_on_every_kernel_path() {
    for name in NAMES {
        let e = expected(name);
        let m = load(name);
        let params = m.named_parameters();
        let torch_grads = e.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(
            params.len(),
            torch_grads,
            "{name}: the parameters torch trains"
        );
        for (path, fused, loss_with, probs) in [
            ("composed attention", true, false, true),
            ("kernels", true, false, false),
            ("all composed", false, false, false),
            ("loss_with", true, true, false),
            ("loss_with, all composed", false, true, false),
        ] {
            let args = batch(&e, "").output_attentions(probs);
            let grads = massivetext::kernels::with_fused(fused, || {
                let loss = if loss_with {
                    m.loss_with(&args).unwrap()
                } else {
                    m.forward_with(&args).unwrap().loss.unwrap()
                };
                loss.backward().unwrap()
            });
            let mut worst = 0f32;
            for (pname, var) in &params {
                let g = grads
                    .get(var)
                    .unwrap_or_else(|| panic!("{name} ({path}): no gradient for {pname}"));
                let want = &e[&format!("grad.{pname}")];
                let rel = max_abs_diff(g, want) / max_abs(want).max(1e-6);
                worst = worst.max(rel);
                assert!(
                    rel <= 1e-4,
                    "{name} ({path}): gradient of {pname}: relative difference {rel}"
                );
            }
            println!("{name} ({path}): worst relative gradient difference vs torch = {worst:.2e}");
        }
    }
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn tensor(r: &[Vec<u32>]) -> Tensor {
    Tensor::from_vec(r.concat(), (r.len(), r[0].len()), &Device::Cpu).unwrap()
}

/// The model's generation settings (its generation_config.json: eos 2, pad 0) with the case's.
fn settings(m: &AutoModelForCausalLM, case: &Value) -> GenerationConfig {
    let mut c = m.generation_config().unwrap();
    for (k, v) in case["settings"].as_object().unwrap() {
        let n = v.as_u64().unwrap() as usize;
        match k.as_str() {
            "max_new_tokens" => c.max_new_tokens = n,
            "num_beams" => c.num_beams = n,
            "num_return_sequences" => c.num_return_sequences = n,
            other => panic!("unhandled setting {other}"),
        }
    }
    c
}

/// Greedy, a left-padded batch (positions from the attention mask, one row stopping at eos)
/// and 3-beam search, token for token, with the KV cache of the kv heads and without a cache.
#[test]
fn generate_equals_transformers_token_for_token() {
    for name in NAMES {
        let m = load(name);
        let cases: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(name).join("generate.json")).unwrap(),
        )
        .unwrap();
        for (case_name, case) in cases.as_object().unwrap() {
            let args = ForwardArgs::new(&tensor(&rows(&case["input_ids"])))
                .attention_mask(&tensor(&rows(&case["attention_mask"])));
            let c = settings(&m, case);
            let want = rows(&case["sequences"]);
            let got: Vec<Vec<u32>> = m.generate_with(&args, &c).unwrap().to_vec2().unwrap();
            assert_eq!(got, want, "{name} {case_name} (KV cache)");
            let got: Vec<Vec<u32>> = m
                .generate_without_cache(&args, &c)
                .unwrap()
                .to_vec2()
                .unwrap();
            assert_eq!(got, want, "{name} {case_name} (no cache)");
        }
        println!("{name}: greedy, left-padded batch and 3 beams equal transformers");
    }
}

/// Feeding a prompt, then one token at a time through the cache, gives the logits of the full
/// forward pass: the cache holds only the kv heads, and Mistral's window (4) slides over it.
#[test]
fn kv_cache_steps_equal_the_full_forward_pass() {
    for name in NAMES {
        let m = load(name);
        let ids: Vec<u32> = (0..12).map(|i| 3 + (i * 7) % 90).collect();
        let full = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let want = m.forward(&full, None).unwrap().logits;
        let mut cache = KvCache::with_capacity(4);
        let mut got = vec![
            m.forward_cached(&full.narrow(1, 0, 3).unwrap(), &mut cache)
                .unwrap()
                .logits,
        ];
        for i in 3..12 {
            let step = full.narrow(1, i, 1).unwrap();
            got.push(m.forward_cached(&step, &mut cache).unwrap().logits);
        }
        assert_eq!(cache.len(), 12);
        let got = Tensor::cat(&got, 1).unwrap();
        let d = max_abs_diff(&got, &want);
        println!("{name}: max |cached - full| = {d:.2e}");
        assert!(d <= 1e-4, "{name}: cached logits differ by {d}");
    }
}

/// `with_weight_dtype(BF16)`: the weight matrices stored in bf16 and everything computed in
/// f32 equals transformers in f32 on the bf16-rounded weights.
#[test]
fn bf16_weights_equal_transformers_on_the_rounded_weights() {
    for name in NAMES {
        let e = expected(name);
        let m = load(name).with_weight_dtype(DType::BF16).unwrap();
        let params = m.named_parameters();
        let dtype = |suffix: &str| {
            params
                .iter()
                .find(|(n, _)| n.ends_with(suffix))
                .map(|(_, v)| v.dtype())
                .unwrap()
        };
        assert_eq!(dtype("embed_tokens.weight"), DType::BF16);
        assert_eq!(dtype("layers.0.self_attn.k_proj.weight"), DType::BF16);
        assert_eq!(dtype("layers.0.mlp.down_proj.weight"), DType::BF16);
        assert_eq!(dtype("model.norm.weight"), DType::F32);
        let out = m.forward_with(&batch(&e, "")).unwrap();
        let d = max_abs_diff(&out.logits, &e["bf16.logits"]);
        println!("{name}: bf16 weights, max |logits - torch on rounded weights| = {d:.2e}");
        assert!(d <= 1e-4, "{name}: bf16 logits differ by {d}");
        assert!(m.summary().contains("bf16"), "{}", m.summary());
    }
}

/// Our `save_pretrained` reloads to the same model, and transformers loads it (each family's
/// class) and reproduces the committed logits.
#[test]
fn save_pretrained_round_trip_through_transformers() {
    let root = tempfile::tempdir().unwrap();
    for name in NAMES {
        let e = expected(name);
        let m = load(name);
        let dir = root.path().join(name);
        m.save_pretrained(&dir).unwrap();
        let back = AutoModelForCausalLM::from_dir(&dir, &Device::Cpu).unwrap();
        assert_eq!(back.config(), m.config());
        let args = batch(&e, "");
        let d = max_abs_diff(
            &m.forward_with(&args).unwrap().logits,
            &back.forward_with(&args).unwrap().logits,
        );
        assert_eq!(d, 0.0, "{name}: reloaded logits differ");
    }
    let report = reference::run_script(
        "make_llama.py",
        &["--check".as_ref(), root.path().as_os_str()],
    );
    println!("{report}");
    assert_eq!(report.matches("transformers loads").count(), 4, "{report}");
    for class in ["LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"] {
        assert!(report.contains(class), "{report}");
    }
}

/// A config.json in the older layout (`rope_theta` and `rope_scaling` with `type`, as the Hub's
/// Llama checkpoints have it) reads as the same model as transformers 5's `rope_parameters`.
#[test]
fn rope_scaling_and_rope_parameters_read_alike() {
    let e = expected("llama");
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "generation_config.json"] {
        std::fs::copy(fixture("llama").join(f), dir.path().join(f)).unwrap();
    }
    let mut cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("llama").join("config.json")).unwrap(),
    )
    .unwrap();
    let o = cfg.as_object_mut().unwrap();
    let mut rope = o.remove("rope_parameters").unwrap();
    let r = rope.as_object_mut().unwrap();
    o.insert("rope_theta".into(), r.remove("rope_theta").unwrap());
    let kind = r.remove("rope_type").unwrap();
    r.insert("type".into(), kind);
    o.insert("rope_scaling".into(), rope);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let m = AutoModelForCausalLM::from_dir(dir.path(), &Device::Cpu).unwrap();
    let d = max_abs_diff(
        &m.forward_with(&batch(&e, "")).unwrap().logits,
        &e["logits"],
    );
    assert!(d <= 1e-4, "old-style rope keys: logits differ by {d}");
}

fn config_error(json: &str) -> String {
    ModelConfig::from_json_str(json, Path::new("models/x/config.json"))
        .unwrap_err()
        .to_string()
}

/// Bad configs are errors naming the file and the key, from a file or from code.
#[test]
fn bad_configs_name_the_key() {
    let base =
        r#""vocab_size": 50, "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 1"#;
    let err = config_error(&format!(
        r#"{{"model_type": "llama", {base}, "num_attention_heads": 6, "num_key_value_heads": 4}}"#
    ));
    assert!(
        err.contains("models/x/config.json")
            && err.contains("`num_attention_heads` 6")
            && err.contains("`num_key_value_heads` 4"),
        "{err}"
    );
    let err = config_error(&format!(
        r#"{{"model_type": "llama", {base}, "num_attention_heads": 6, "rope_scaling": {{"rope_type": "yarn", "factor": 4.0}}}}"#
    ));
    assert!(
        err.contains("`rope_scaling.rope_type` `yarn`") && err.contains("llama3"),
        "{err}"
    );
    let err = config_error(&format!(
        r#"{{"model_type": "mistral", {base}, "num_attention_heads": 6, "rope_parameters": {{"rope_type": "dynamic", "rope_theta": 10000.0}}}}"#
    ));
    assert!(
        err.contains("`rope_parameters.rope_type` `dynamic`"),
        "{err}"
    );
    let err = config_error(&format!(
        r#"{{"model_type": "llama", {base}, "num_attention_heads": 6, "rope_scaling": {{"rope_type": "llama3", "factor": 8.0}}}}"#
    ));
    assert!(err.contains("`low_freq_factor`"), "{err}");
    let err = config_error(&format!(
        r#"{{"model_type": "qwen2", {base}, "num_attention_heads": 16, "num_key_value_heads": 16}}"#
    ));
    assert!(err.contains("`head_dim` 3 is odd"), "{err}");
    let err = config_error(&format!(
        r#"{{"model_type": "llama", {base}, "num_attention_heads": 6, "hidden_act": "gelu"}}"#
    ));
    assert!(err.contains("`hidden_act` `gelu`"), "{err}");
    let err = config_error(&format!(
        r#"{{"model_type": "mistral", {base}, "num_attention_heads": 6, "num_key_value_heads": 2, "sliding_window": 0}}"#
    ));
    assert!(err.contains("`sliding_window` is 0"), "{err}");
    let err = config_error(r#"{"model_type": "llama", "vocab_size": 50}"#);
    assert!(err.contains("missing key `hidden_size`"), "{err}");
    // from code
    let cfg = LlamaConfig {
        num_key_value_heads: Some(4),
        ..LlamaConfig::small(50)
    };
    let err = AutoModelForCausalLM::from_config(&cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("llama config") && err.contains("`num_key_value_heads` 4"),
        "{err}"
    );
}

/// `from_config`: Hugging Face's names and shapes, the kv projections `kv_heads * head_dim`
/// wide, no `lm_head` when tied, and a summary that says how the heads share.
#[test]
fn from_config_builds_grouped_query_attention_under_hf_names() {
    let cfg = LlamaConfig {
        num_hidden_layers: 2,
        ..LlamaConfig::small(300)
    };
    let m = AutoModelForCausalLM::from_config(&cfg, &Device::Cpu).unwrap();
    let shapes: HashMap<String, Vec<usize>> = m
        .named_parameters()
        .into_iter()
        .map(|(n, v)| (n, v.dims().to_vec()))
        .collect();
    assert_eq!(shapes["model.embed_tokens.weight"], [300, 384]);
    assert_eq!(shapes["model.layers.1.self_attn.q_proj.weight"], [384, 384]);
    assert_eq!(shapes["model.layers.1.self_attn.k_proj.weight"], [128, 384]);
    assert_eq!(shapes["model.layers.1.mlp.gate_proj.weight"], [1024, 384]);
    assert_eq!(shapes["model.layers.0.input_layernorm.weight"], [384]);
    assert!(
        !shapes.contains_key("lm_head.weight"),
        "tied to the embeddings"
    );
    assert!(!shapes.contains_key("model.layers.0.self_attn.q_proj.bias"));
    assert_eq!(shapes.len(), 1 + 2 * 9 + 1);
    let s = m.summary();
    assert!(
        s.contains("LlamaForCausalLM") && s.contains("2 (3 query heads each)"),
        "{s}"
    );
    let untied = LlamaConfig {
        tie_word_embeddings: false,
        ..cfg
    };
    let m = AutoModelForCausalLM::from_config(&untied, &Device::Cpu).unwrap();
    assert!(
        m.named_parameters()
            .iter()
            .any(|(n, v)| n == "lm_head.weight" && v.dims() == [300, 384])
    );
}

/// A tiny Llama (GQA, tied head) trains through the `Trainer` like any causal LM: the loss of a
/// periodic token stream falls by more than half in 40 steps, and the RMSNorm scales get no
/// weight decay (transformers' Trainer leaves every `norm` out).
#[test]
fn a_tiny_llama_trains_with_the_trainer() {
    use massivetext::train::TokenWindows;
    let cfg = LlamaConfig {
        vocab_size: 13,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 16,
        ..LlamaConfig::small(13)
    };
    let model = AutoModelForCausalLM::from_config(&cfg, &Device::Cpu).unwrap();
    let ids: Vec<u32> = (0..600u32).map(|i| (i * 7 + i / 5) % 13).collect();
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        learning_rate: 1e-2,
        weight_decay: 0.01,
        per_device_train_batch_size: 8,
        max_steps: Some(40),
        disable_tqdm: true,
        save_strategy: IntervalStrategy::No,
        logging_steps: Steps::Every(1),
        ..Default::default()
    };
    let mut trainer =
        Trainer::new(model.share(), args, TokenWindows::new(ids, 8).unwrap()).unwrap();
    let first = trainer.step().unwrap().loss;
    trainer.train().unwrap();
    let losses: Vec<f64> = trainer
        .log_history()
        .iter()
        .filter_map(|e| e.get("loss").and_then(Value::as_f64))
        .collect();
    let last = *losses.last().unwrap();
    println!("tiny llama: loss {first:.3} -> {last:.3} in 40 steps");
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    for n in ["model.norm.weight", "model.layers.0.input_layernorm.weight"] {
        assert!(!massivetext::models::uses_weight_decay(n), "{n}");
    }
    assert!(massivetext::models::uses_weight_decay(
        "model.layers.0.self_attn.q_proj.weight"
    ));
}

/// `massivetext train --set model_type=llama` trains a Llama (2 layers of 32, 4 heads) on the
/// story corpus: the folder holds a `LlamaForCausalLM` that loads back, and the logged training
/// loss falls; an unknown model type is an error naming the key.
#[test]
fn massivetext_train_trains_a_llama() {
    use massivetext::train::TrainerState;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = [
        "massivetext",
        "train",
        "--device",
        "cpu",
        "--max-steps",
        "30",
        "--logging-steps",
        "5",
        "--eval-steps",
        "1000",
        "--save-steps",
        "1000",
        "--n-layer",
        "2",
        "--n-embd",
        "32",
        "--n-head",
        "4",
        "--block-size",
        "32",
        "--per-device-train-batch-size",
        "8",
        "--train-stories",
        "300",
        "--eval-stories",
        "4",
        "--check-stories",
        "0",
        "--disable-tqdm",
        "true",
        "--set",
        "model_type=llama",
        "--set",
        "learning_rate=0.01",
        "--output-dir",
    ];
    let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    all.push(out.clone().into());
    massivetext::cli::run_from(all).unwrap();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "llama");
    assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
    AutoModelForCausalLM::from_dir(&out, &Device::Cpu).unwrap();
    let state = TrainerState::load_from_json(&out.join("trainer_state.json")).unwrap();
    let losses: Vec<f64> = state
        .log_history
        .iter()
        .filter_map(|e| e.get("loss").and_then(Value::as_f64))
        .collect();
    println!("massivetext train (llama): losses {losses:?}");
    assert!(losses.len() >= 5, "{losses:?}");
    assert!(losses.last().unwrap() < &(0.8 * losses[0]), "{losses:?}");
    let err = massivetext::cli::run_from([
        "massivetext",
        "train",
        "--set",
        "model_type=falcon",
        "--output-dir",
        dir.path().join("bad").to_str().unwrap(),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("model_type `falcon`") && err.contains("llama"),
        "{err}"
    );
}
