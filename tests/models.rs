//! Models against Hugging Face transformers: reference values come from
//! tests/fixtures/make_models.py (tiny random GPT-2, BERT, RoBERTa; eager attention; CPU torch).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use massivetext::hub::{HubOptions, resolve_model_with};
use massivetext::kernels::{self as ops, Gelu, composed};
use massivetext::prelude::*;

#[path = "common/reference.rs"]
mod reference;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("expected.safetensors"), &Device::Cpu)
        .unwrap()
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

fn inputs(e: &HashMap<String, Tensor>) -> ForwardArgs {
    ForwardArgs::new(&e["input_ids"].to_dtype(DType::U32).unwrap())
        .attention_mask(&e["attention_mask"])
        .labels(&e["labels"])
        .output_attentions(true)
        .output_hidden_states(true)
}

/// Logits (≤ 1e-4) and loss (≤ 1e-5) against torch.
fn compare_logits_and_loss(name: &str, out: &ModelOutput, e: &HashMap<String, Tensor>) {
    let d = max_abs_diff(&out.logits, &e["logits"]);
    println!("{name}: max |logits - torch| = {d:.2e}");
    assert!(d <= 1e-4, "{name} logits differ by {d}");
    let loss = out.loss.as_ref().unwrap().to_scalar::<f32>().unwrap();
    let want = e["loss"].to_vec1::<f32>().unwrap()[0];
    println!("{name}: loss {loss} vs torch {want}");
    assert!((loss - want).abs() <= 1e-5, "{name} loss {loss} vs {want}");
}

fn compare(name: &str, out: &ModelOutput, e: &HashMap<String, Tensor>) {
    compare_logits_and_loss(name, out, e);
    let attns = out.attentions.as_ref().unwrap();
    assert_eq!(attns.len(), 2);
    for (i, a) in attns.iter().enumerate() {
        let d = max_abs_diff(a, &e[&format!("attentions.{i}")]);
        println!("{name}: layer {i} max |attention - torch| = {d:.2e}");
        assert!(d <= 1e-5, "{name} attentions.{i} differ by {d}");
    }
    let hs = out.hidden_states.as_ref().unwrap();
    assert_eq!(hs.len(), 3);
    for (i, h) in hs.iter().enumerate() {
        let d = max_abs_diff(h, &e[&format!("hidden_states.{i}")]);
        assert!(d <= 1e-4, "{name} hidden_states.{i} differ by {d}");
    }
}

/// The same inputs without attentions or hidden states: the fused attention kernel runs.
fn fused_inputs(e: &HashMap<String, Tensor>) -> ForwardArgs {
    ForwardArgs::new(&e["input_ids"].to_dtype(DType::U32).unwrap())
        .attention_mask(&e["attention_mask"])
        .labels(&e["labels"])
}

/// Logits and loss of the fused path against torch.
fn compare_fused(name: &str, out: &ModelOutput, e: &HashMap<String, Tensor>) {
    assert!(out.attentions.is_none());
    compare_logits_and_loss(&format!("{name} (fused attention)"), out, e);
}

#[test]
fn gpt2_matches_transformers() {
    let e = expected("gpt2");
    let m = AutoModelForCausalLM::from_pretrained(fixture("gpt2").to_str().unwrap()).unwrap();
    assert!(!m.is_training());
    compare("gpt2", &m.forward_with(&inputs(&e)).unwrap(), &e);
    compare_fused("gpt2", &m.forward_with(&fused_inputs(&e)).unwrap(), &e);
    // the short call gives the same logits
    let out = m
        .forward(
            &e["input_ids"].to_dtype(DType::U32).unwrap(),
            Some(&e["attention_mask"]),
        )
        .unwrap();
    assert_eq!(out.logits.dims(), &[2, 9, 101]);
    assert!(max_abs_diff(&out.logits, &e["logits"]) <= 1e-4);
}

#[test]
fn bert_matches_transformers() {
    let e = expected("bert");
    let m = AutoModelForMaskedLM::from_pretrained(fixture("bert").to_str().unwrap()).unwrap();
    compare("bert", &m.forward_with(&inputs(&e)).unwrap(), &e);
    compare_fused("bert", &m.forward_with(&fused_inputs(&e)).unwrap(), &e);
}

#[test]
fn roberta_matches_transformers() {
    let e = expected("roberta");
    let m = AutoModelForMaskedLM::from_pretrained(fixture("roberta").to_str().unwrap()).unwrap();
    compare("roberta", &m.forward_with(&inputs(&e)).unwrap(), &e);
    compare_fused("roberta", &m.forward_with(&fused_inputs(&e)).unwrap(), &e);
}

/// `MASSIVETEXT_FUSED=0`'s path (every op composed from candle ops: what CUDA runs) against
/// transformers, for every model: logits, loss, attentions and hidden states.
#[test]
fn composed_kernels_match_transformers() {
    massivetext::kernels::with_fused(false, || {
        assert!(!massivetext::kernels::fused_enabled());
        for name in ["gpt2", "bert", "roberta"] {
            let e = expected(name);
            let out = if name == "gpt2" {
                let m = AutoModelForCausalLM::from_dir(fixture(name), &Device::Cpu).unwrap();
                (
                    m.forward_with(&inputs(&e)),
                    m.forward_with(&fused_inputs(&e)),
                )
            } else {
                let m = AutoModelForMaskedLM::from_dir(fixture(name), &Device::Cpu).unwrap();
                (
                    m.forward_with(&inputs(&e)),
                    m.forward_with(&fused_inputs(&e)),
                )
            };
            compare(&format!("{name} (composed kernels)"), &out.0.unwrap(), &e);
            compare_logits_and_loss(&format!("{name} (composed kernels)"), &out.1.unwrap(), &e);
        }
    });
    assert!(
        massivetext::kernels::fused_enabled(),
        "the switch is scoped"
    );
}

#[test]
fn automodel_loads_head_checkpoint_and_pools() {
    // BertForMaskedLM weights carry the `bert.` prefix; AutoModel wants the bare names
    let e = expected("bert");
    let m = AutoModel::from_dir(fixture("bert"), &Device::Cpu).unwrap();
    let ids = e["input_ids"].to_dtype(DType::U32).unwrap();
    let out = m.forward(&ids, Some(&e["attention_mask"])).unwrap();
    assert!(out.pooler_output.is_none());
    let d = max_abs_diff(&out.last_hidden_state, &e["hidden_states.2"]);
    assert!(d <= 1e-4, "{d}");
    let emb = m.encode(&ids, Some(&e["attention_mask"])).unwrap();
    assert_eq!(emb.dims(), &[2, 36]);
    // row 1 has 6 real tokens: its embedding is the mean of those 6 hidden states only
    let manual = e["hidden_states.2"]
        .get(1)
        .unwrap()
        .narrow(0, 0, 6)
        .unwrap()
        .mean(0)
        .unwrap();
    assert!(max_abs_diff(&emb.get(1).unwrap(), &manual) <= 1e-4);
    // GPT-2 as a bare model: last hidden state = after ln_f
    let g = expected("gpt2");
    let m = AutoModel::from_dir(fixture("gpt2"), &Device::Cpu).unwrap();
    let out = m
        .forward(
            &g["input_ids"].to_dtype(DType::U32).unwrap(),
            Some(&g["attention_mask"]),
        )
        .unwrap();
    assert!(max_abs_diff(&out.last_hidden_state, &g["hidden_states.2"]) <= 1e-4);
}

/// The loss of model `$m`: the training step's `loss_with` (its head over the labelled rows
/// only), or the full forward pass's.
macro_rules! loss_of {
    ($m:expr) => {
        |args: &ForwardArgs, loss_with: bool| {
            if loss_with {
                $m.loss_with(args).unwrap()
            } else {
                $m.forward_with(args).unwrap().loss.unwrap()
            }
        }
    };
}

/// Every parameter's gradient against torch's, relative to its largest entry (≤ `tol`): on the
/// composed attention (probabilities requested), the fused kernels, every kernel composed
/// (MASSIVETEXT_FUSED=0, the GPU's path), and the training step's `loss_with`, whose head sees
/// only the labelled rows. `loss(args, loss_with)` is the model's loss.
fn gradients_match_torch(
    name: &str,
    params: &[(String, candle_core::Var)],
    tol: f32,
    loss: impl Fn(&ForwardArgs, bool) -> Tensor,
) {
    let e = expected(name);
    let torch_grads = e.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(
        params.len(),
        torch_grads,
        "{name}: the parameters torch trains"
    );
    for (path, args, fused) in [
        ("composed attention", inputs(&e), true),
        ("fused", fused_inputs(&e), true),
        ("all composed", fused_inputs(&e), false),
        ("loss_with", fused_inputs(&e), true),
        ("loss_with, all composed", fused_inputs(&e), false),
    ] {
        let grads = massivetext::kernels::with_fused(fused, || {
            loss(&args, path.starts_with("loss_with"))
                .backward()
                .unwrap()
        });
        let mut worst = 0f32;
        for (pname, var) in params {
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("{name} ({path}): no gradient for {pname}"));
            let want = e
                .get(&format!("grad.{pname}"))
                .unwrap_or_else(|| panic!("{name}: torch has no parameter {pname}"));
            // Softmax ignores what the key bias adds to every score of a row: that gradient is
            // 0 (float64 torch: ~1e-20) and ours rounding noise, so it is held to 1e-6 absolute.
            let rel = if pname.ends_with("key.bias") {
                max_abs(g).max(max_abs(want)) * tol / 1e-6
            } else {
                max_abs_diff(g, want) / max_abs(want).max(1e-6)
            };
            worst = worst.max(rel);
            assert!(
                rel <= tol,
                "{name} ({path}): gradient of {pname}: relative difference {rel}"
            );
        }
        println!("{name} ({path}): worst relative gradient difference vs torch = {worst:.2e}");
    }
}

/// GPT-2 against torch's float32 backward (1e-4).
#[test]
fn gpt2_gradients_match_torch() {
    let m = AutoModelForCausalLM::from_dir(fixture("gpt2"), &Device::Cpu).unwrap();
    let params = m.named_parameters();
    assert_eq!(params.len(), 28);
    gradients_match_torch("gpt2", &params, 1e-4, loss_of!(m));
}

/// BERT and RoBERTa (masked LM, 5 labelled positions) against a float64 copy in torch (1e-5).
#[test]
fn bert_and_roberta_gradients_match_torch() {
    for name in ["bert", "roberta"] {
        let m = AutoModelForMaskedLM::from_dir(fixture(name), &Device::Cpu).unwrap();
        let params = m.named_parameters();
        gradients_match_torch(name, &params, 1e-5, loss_of!(m));
    }
}

/// The training step's loss (`loss_with`: the head over the labelled rows only) equals the
/// full forward pass's and transformers', with the same gradient for every parameter, for the
/// masked LMs (5 labelled positions of 18) and GPT-2 (13 of 18).
#[test]
fn training_loss_skips_unlabelled_rows_exactly() {
    for name in ["bert", "roberta", "gpt2"] {
        let e = expected(name);
        let args = fused_inputs(&e);
        let (loss, full) = if name == "gpt2" {
            let m = AutoModelForCausalLM::from_dir(fixture(name), &Device::Cpu).unwrap();
            let full = m.forward_with(&args).unwrap().loss.unwrap();
            (m.loss_with(&args).unwrap(), (full, m.named_parameters()))
        } else {
            let m = AutoModelForMaskedLM::from_dir(fixture(name), &Device::Cpu).unwrap();
            let full = m.forward_with(&args).unwrap().loss.unwrap();
            (m.loss_with(&args).unwrap(), (full, m.named_parameters()))
        };
        let (full, params) = full;
        let want = e["loss"].to_vec1::<f32>().unwrap()[0];
        let got = loss.to_scalar::<f32>().unwrap();
        assert!(
            (got - want).abs() <= 1e-5,
            "{name}: loss_with {got} vs transformers {want}"
        );
        let (g, gf) = (loss.backward().unwrap(), full.backward().unwrap());
        let mut worst = 0f32;
        for (pname, var) in &params {
            let (Some(a), Some(b)) = (g.get(var), gf.get(var)) else {
                panic!("{name}: {pname} has a gradient on one path only");
            };
            if pname.ends_with("key.bias") {
                // softmax ignores what the key bias adds to every score of a row: its true
                // gradient is 0, and both paths hold rounding noise
                assert!(max_abs(a) < 1e-6 && max_abs(b) < 1e-6, "{name}: {pname}");
                continue;
            }
            let rel = max_abs_diff(a, b) / max_abs(b).max(1e-6);
            worst = worst.max(rel);
            assert!(rel <= 1e-5, "{name}: gradient of {pname} differs by {rel}");
        }
        println!(
            "{name}: loss_with vs forward_with, worst relative gradient difference {worst:.2e}"
        );
    }
}

fn assert_all_grads_nonzero(name: &str, params: Vec<(String, candle_core::Var)>, loss: &Tensor) {
    let grads = loss.backward().unwrap();
    assert!(!params.is_empty());
    for (n, v) in params {
        let g = grads
            .get(&v)
            .unwrap_or_else(|| panic!("{name}: {n} got no gradient"));
        assert!(max_abs(g) > 0.0, "{name}: gradient of {n} is zero");
    }
}

#[test]
fn every_parameter_gets_a_gradient_in_training_mode() {
    for name in ["gpt2", "bert", "roberta"] {
        let e = expected(name);
        let args = inputs(&e);
        if name == "gpt2" {
            let mut m = AutoModelForCausalLM::from_dir(fixture(name), &Device::Cpu).unwrap();
            m.train();
            let loss = m.forward_with(&args).unwrap().loss.unwrap();
            assert_all_grads_nonzero(name, m.named_parameters(), &loss);
        } else {
            let mut m = AutoModelForMaskedLM::from_dir(fixture(name), &Device::Cpu).unwrap();
            m.train();
            let loss = m.forward_with(&args).unwrap().loss.unwrap();
            assert_all_grads_nonzero(name, m.named_parameters(), &loss);
        }
    }
    // a model from from_config (HF init) too
    let cfg = Gpt2Config {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        n_positions: 16,
        ..Gpt2Config::small(50)
    };
    let m = AutoModelForCausalLM::from_config(&cfg, &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[1u32, 5, 7, 9, 3]], &Device::Cpu).unwrap();
    let loss = m
        .forward_with(&ForwardArgs::new(&ids).labels(&ids))
        .unwrap()
        .loss
        .unwrap();
    assert_all_grads_nonzero("gpt2 from_config", m.named_parameters(), &loss);
}

#[test]
fn dropout_is_real_in_training_and_absent_in_eval() {
    let e = expected("bert");
    let mut m = AutoModelForMaskedLM::from_dir(fixture("bert"), &Device::Cpu).unwrap();
    let args = ForwardArgs::new(&e["input_ids"].to_dtype(DType::U32).unwrap());
    let a = m.forward_with(&args).unwrap().logits;
    let b = m.forward_with(&args).unwrap().logits;
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    m.train();
    let c = m.forward_with(&args).unwrap().logits;
    let d = m.forward_with(&args).unwrap().logits;
    assert!(max_abs_diff(&a, &c) > 1e-3);
    assert!(max_abs_diff(&c, &d) > 1e-3);
    // seeded: the same seed repeats the same masks
    m.set_seed(5);
    let f = m.forward_with(&args).unwrap().logits;
    m.set_seed(5);
    let g = m.forward_with(&args).unwrap().logits;
    assert_eq!(max_abs_diff(&f, &g), 0.0);
    m.eval();
    assert_eq!(
        max_abs_diff(&a, &m.forward_with(&args).unwrap().logits),
        0.0
    );
}

#[test]
fn kv_cache_decoding_matches_full_forward() {
    let e = expected("gpt2");
    let m = AutoModelForCausalLM::from_dir(fixture("gpt2"), &Device::Cpu).unwrap();
    let ids = e["input_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .narrow(0, 0, 1)
        .unwrap();
    let full = &e["logits_row0"];
    let mut cache = KvCache::new();
    let first = m
        .forward_cached(&ids.narrow(1, 0, 5).unwrap(), &mut cache)
        .unwrap();
    assert_eq!(cache.len(), 5);
    assert!(max_abs_diff(&first.logits, &full.narrow(1, 0, 5).unwrap()) <= 1e-4);
    for t in 5..9 {
        let step = m
            .forward_cached(&ids.narrow(1, t, 1).unwrap(), &mut cache)
            .unwrap();
        let d = max_abs_diff(&step.logits, &full.narrow(1, t, 1).unwrap());
        assert!(d <= 1e-4, "step {t}: {d}");
    }
    assert_eq!(cache.len(), 9);
}

fn saved_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("models_saved")
}

#[test]
fn save_pretrained_round_trip() {
    let root = saved_root();
    for name in ["gpt2", "bert", "roberta"] {
        let e = expected(name);
        let args = inputs(&e);
        let dir = root.join(name);
        let (before, after) = if name == "gpt2" {
            let m = AutoModelForCausalLM::from_dir(fixture(name), &Device::Cpu).unwrap();
            m.save_pretrained(&dir).unwrap();
            let back = AutoModelForCausalLM::from_dir(&dir, &Device::Cpu).unwrap();
            assert_eq!(back.config(), m.config());
            (
                m.forward_with(&args).unwrap(),
                back.forward_with(&args).unwrap(),
            )
        } else {
            let m = AutoModelForMaskedLM::from_dir(fixture(name), &Device::Cpu).unwrap();
            m.save_pretrained(&dir).unwrap();
            let back = AutoModelForMaskedLM::from_dir(&dir, &Device::Cpu).unwrap();
            assert_eq!(back.config(), m.config());
            (
                m.forward_with(&args).unwrap(),
                back.forward_with(&args).unwrap(),
            )
        };
        assert_eq!(max_abs_diff(&before.logits, &after.logits), 0.0);
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["model_type"], name);
        assert!(!dir.join("model.safetensors.tmp").exists());
    }
    // transformers loads what we wrote and gives the committed reference logits (≤ 1e-4)
    let report = reference::run_script("make_models.py", &["--check".as_ref(), root.as_os_str()]);
    println!("{report}");
    assert_eq!(report.matches("transformers loads").count(), 3, "{report}");
}

#[test]
fn from_config_uses_hf_initialisation() {
    let cfg = Gpt2Config {
        n_layer: 4,
        n_head: 4,
        n_embd: 64,
        n_positions: 32,
        ..Gpt2Config::small(500)
    };
    let m = AutoModelForCausalLM::from_config(&cfg, &Device::Cpu).unwrap();
    assert!(m.is_training());
    let p: HashMap<String, Tensor> = m
        .named_parameters()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    assert!(!p.contains_key("lm_head.weight"), "lm_head is tied to wte");
    let std = |t: &Tensor| {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt()
    };
    let s = std(&p["transformer.wte.weight"]);
    assert!((s - 0.02).abs() < 0.001, "wte std {s}");
    let s = std(&p["transformer.h.0.attn.c_proj.weight"]);
    let want = 0.02 / (8f32).sqrt();
    assert!((s - want).abs() < 0.001, "c_proj std {s} vs {want}");
    assert_eq!(max_abs(&p["transformer.h.0.attn.c_attn.bias"]), 0.0);
    let ln = p["transformer.ln_f.weight"].to_vec1::<f32>().unwrap();
    assert!(ln.iter().all(|&x| x == 1.0));
    // a different seed gives different weights, the same seed the same
    let a = AutoModelForCausalLM::from_config_seeded(&cfg, &Device::Cpu, 1).unwrap();
    let b = AutoModelForCausalLM::from_config_seeded(&cfg, &Device::Cpu, 1).unwrap();
    let w = |m: &AutoModelForCausalLM| {
        m.named_parameters()
            .into_iter()
            .find(|(n, _)| n == "transformer.wte.weight")
            .unwrap()
            .1
            .as_tensor()
            .clone()
    };
    assert_eq!(max_abs_diff(&w(&a), &w(&b)), 0.0);
    assert!(max_abs_diff(&w(&a), &w(&m)) > 0.0);
    // BERT/RoBERTa: padding rows of the embeddings start at zero
    let r = AutoModelForMaskedLM::from_config(
        &RobertaConfig {
            hidden_size: 32,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            intermediate_size: 40,
            max_position_embeddings: 20,
            ..RobertaConfig::small(60)
        },
        &Device::Cpu,
    )
    .unwrap();
    let word = r
        .named_parameters()
        .into_iter()
        .find(|(n, _)| n == "roberta.embeddings.word_embeddings.weight")
        .unwrap()
        .1;
    assert_eq!(max_abs(&word.as_tensor().get(1).unwrap()), 0.0);
    let ids = Tensor::new(&[[0u32, 5, 7, 2, 1, 1]], &Device::Cpu).unwrap();
    let out = r.forward(&ids, None).unwrap();
    assert_eq!(out.logits.dims(), &[1, 6, 60]);
}

// ---------------------------------------------------------------- fused ops vs composed

fn randn(shape: &[usize], seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 4.0 - 2.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Checks a fused op against its composed twin: values, and gradients of `sum(out * w)`.
fn check_op(
    name: &str,
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Tensor,
    reference: impl Fn(&[Tensor]) -> Tensor,
) {
    let vars: Vec<candle_core::Var> = inputs
        .iter()
        .map(|t| candle_core::Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let a = fused(&ts);
    let b = reference(&ts);
    let d = max_abs_diff(&a, &b);
    assert!(d <= 1e-5, "{name}: values differ by {d}");
    let w = randn(a.dims(), 99);
    let ga = (&a * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (&b * &w).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let (x, y) = (ga.get(v).unwrap(), gb.get(v).unwrap());
        let d = max_abs_diff(x, y) / max_abs(y).max(1e-6);
        assert!(
            d <= 1e-5,
            "{name}: gradient of input {i} differs by {d} (relative)"
        );
    }
}

#[test]
fn fused_ops_match_composed_values_and_gradients() {
    // big enough to take the parallel path too
    for shape in [vec![3usize, 5, 36], vec![64, 9, 129]] {
        let d = *shape.last().unwrap();
        check_op(
            "layer_norm",
            &[randn(&shape, 1), randn(&[d], 2), randn(&[d], 3)],
            |t| ops::layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap(),
            |t| composed::layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap(),
        );
        check_op(
            "softmax",
            &[randn(&shape, 4)],
            |t| ops::softmax_last_dim(&t[0]).unwrap(),
            |t| composed::softmax_last_dim(&t[0]).unwrap(),
        );
        for act in [Gelu::Tanh, Gelu::Erf] {
            check_op(
                "gelu",
                &[randn(&shape, 5)],
                |t| ops::gelu(&t[0], act).unwrap(),
                |t| composed::gelu(&t[0], act).unwrap(),
            );
        }
        check_op(
            "silu",
            &[randn(&shape, 6)],
            |t| ops::silu(&t[0]).unwrap(),
            |t| composed::silu(&t[0]).unwrap(),
        );
    }
    // dense layers: nn.Linear [out, in] and Conv1D [in, out], with and without bias; the large
    // one takes gemm's parallel path
    for (rows, d_in, d_out) in [(7usize, 5usize, 3usize), (300, 96, 130)] {
        for conv1d in [false, true] {
            let w_shape = if conv1d { [d_in, d_out] } else { [d_out, d_in] };
            let ins = [
                randn(&[rows, d_in], 7),
                randn(&w_shape, 8),
                randn(&[d_out], 9),
            ];
            check_op(
                "linear",
                &ins,
                |t| ops::linear(&t[0], &t[1], Some(&t[2]), conv1d).unwrap(),
                |t| composed::linear(&t[0], &t[1], Some(&t[2]), conv1d).unwrap(),
            );
            check_op(
                "linear without bias",
                &ins[..2],
                |t| ops::linear(&t[0], &t[1], None, conv1d).unwrap(),
                |t| composed::linear(&t[0], &t[1], None, conv1d).unwrap(),
            );
        }
    }
    // attention: no mask, a causal mask with a padded key in each sequence, and the first
    // sequence's mask for every sequence
    for (b, t, n_head, hd) in [(2usize, 5usize, 2usize, 3usize), (4, 33, 4, 16)] {
        let h = n_head * hd;
        let qkv = randn(&[b, t, 3 * h], 10);
        let mut mask = vec![0f32; b * t * t];
        for bi in 0..b {
            for qi in 0..t {
                for ki in 0..t {
                    if ki > qi || ki == (bi + 1) % t {
                        mask[(bi * t + qi) * t + ki] = f32::MIN;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(mask, (b, 1, t, t), &Device::Cpu).unwrap();
        // one mask shared by the batch, broadcast as the composed path does
        let shared = mask.narrow(0, 0, 1).unwrap();
        for m in [None, Some(&mask), Some(&shared)] {
            check_op(
                "self_attention",
                std::slice::from_ref(&qkv),
                |x| ops::self_attention(&x[0], m, n_head).unwrap(),
                |x| composed::self_attention(&x[0], m, n_head).unwrap(),
            );
            // attention dropout (BERT's fine-tuning): the fused op draws the mask of
            // kernels::dropout for the same (seed, stream) over [b, heads, t, t]
            let drop = (0.3, 7u64, 11u64);
            check_op(
                "self_attention with dropout",
                std::slice::from_ref(&qkv),
                |x| ops::self_attention_dropout(&x[0], m, n_head, drop).unwrap(),
                |x| composed::self_attention_dropout(&x[0], m, n_head, drop).unwrap(),
            );
            let plain = ops::self_attention(&qkv, m, n_head).unwrap();
            let dropped = ops::self_attention_dropout(&qkv, m, n_head, drop).unwrap();
            assert!(
                max_abs_diff(&plain, &dropped) > 1e-3,
                "dropout changed nothing"
            );
        }
    }
    // softmax with a masked (f32::MIN) entry, as attention uses it
    let x = Tensor::new(&[[1f32, f32::MIN, 0.5]], &Device::Cpu).unwrap();
    let y: Vec<Vec<f32>> = ops::softmax_last_dim(&x).unwrap().to_vec2().unwrap();
    assert_eq!(y[0][1], 0.0);
    // cross-entropy with ignored positions
    let labels = Tensor::new(&[3i64, -100, 0, 7, -100, 2], &Device::Cpu).unwrap();
    check_op(
        "cross_entropy",
        &[randn(&[6, 11], 6)],
        |t| ops::cross_entropy(&t[0], &labels).unwrap(),
        |t| composed::cross_entropy(&t[0], &labels).unwrap(),
    );
}

// ---------------------------------------------------------------- bad input

fn copy_fixture(name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(f), to.join(f)).unwrap();
    }
}

fn edit_config(dir: &Path, f: impl Fn(&mut serde_json::Map<String, serde_json::Value>)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

fn load_err(dir: &Path) -> String {
    match AutoModelForCausalLM::from_dir(dir, &Device::Cpu) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn config_missing_key_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_fixture("gpt2", tmp.path());
    edit_config(tmp.path(), |m| {
        m.remove("n_embd");
    });
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("n_embd") && msg.contains("config.json"),
        "{msg}"
    );
}

#[test]
fn unsupported_model_type_lists_supported() {
    let tmp = tempfile::tempdir().unwrap();
    copy_fixture("gpt2", tmp.path());
    edit_config(tmp.path(), |m| {
        m.insert("model_type".into(), "gemma".into());
    });
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("gemma") && msg.contains("gpt2, bert, roberta") && msg.contains("llama"),
        "{msg}"
    );
    // and a BERT checkpoint is not a causal LM
    let msg = match AutoModelForCausalLM::from_dir(fixture("bert"), &Device::Cpu) {
        Ok(_) => panic!("bert is not a causal LM"),
        Err(e) => e.to_string(),
    };
    assert!(msg.contains("bert") && msg.contains("gpt2"), "{msg}");
}

#[test]
fn missing_or_misshapen_weight_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_fixture("gpt2", tmp.path());
    // one more layer than the file holds
    edit_config(tmp.path(), |m| {
        m.insert("n_layer".into(), 3.into());
    });
    let msg = load_err(tmp.path());
    assert!(msg.contains("transformer.h.2.ln_1.weight"), "{msg}");
    assert!(msg.contains("missing"), "{msg}");
    // a wider MLP than the file holds
    edit_config(tmp.path(), |m| {
        m.insert("n_layer".into(), 2.into());
        m.insert("n_inner".into(), 60.into());
    });
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("transformer.h.0.mlp.c_fc.weight")
            && msg.contains("[36, 52]")
            && msg.contains("[36, 60]"),
        "{msg}"
    );
}

#[test]
fn corrupt_safetensors_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    copy_fixture("gpt2", tmp.path());
    let p = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("model.safetensors") && msg.contains("not a valid safetensors"),
        "{msg}"
    );
    std::fs::write(&p, b"garbage").unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains("not a valid safetensors"), "{msg}");
}

#[test]
fn too_long_sequence_and_unknown_token_are_errors() {
    let m = AutoModelForCausalLM::from_dir(fixture("gpt2"), &Device::Cpu).unwrap();
    let long = Tensor::zeros((1, 41), DType::U32, &Device::Cpu).unwrap();
    let msg = m.forward(&long, None).err().unwrap().to_string();
    assert!(msg.contains("41") && msg.contains("40"), "{msg}");
    let bad = Tensor::new(&[[1u32, 101]], &Device::Cpu).unwrap();
    let msg = m.forward(&bad, None).err().unwrap().to_string();
    assert!(
        msg.contains("101") && msg.contains("vocab_size 101"),
        "{msg}"
    );
    // RoBERTa's table holds max_position_embeddings - padding_idx - 1 tokens
    let r = AutoModelForMaskedLM::from_dir(fixture("roberta"), &Device::Cpu).unwrap();
    let ok = Tensor::full(5u32, (1, 38), &Device::Cpu).unwrap();
    assert!(r.forward(&ok, None).is_ok());
    let long = Tensor::full(5u32, (1, 39), &Device::Cpu).unwrap();
    let msg = r.forward(&long, None).err().unwrap().to_string();
    assert!(msg.contains("39") && msg.contains("38"), "{msg}");
    // a label outside the vocabulary
    let ids = Tensor::new(&[[1u32, 2]], &Device::Cpu).unwrap();
    let labels = Tensor::new(&[[1i64, 500]], &Device::Cpu).unwrap();
    let msg = m
        .forward_with(&ForwardArgs::new(&ids).labels(&labels))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("500"), "{msg}");
}

fn make_cache(root: &Path, id: &str, name: &str) -> PathBuf {
    let repo = root.join(format!("models--{}", id.replace('/', "--")));
    let snap = repo.join("snapshots").join("0123abcd");
    copy_fixture(name, &snap);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123abcd").unwrap();
    snap
}

#[test]
fn hub_cache_layout_is_resolved() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = tmp.path().join("hub");
    let snap = make_cache(&hub, "tiny-org/tiny-gpt2", "gpt2");
    let opts = HubOptions {
        cache_dir: hub.clone(),
        offline: true,
        revision: "main".into(),
        endpoint: None,
    };
    let dir = resolve_model_with("tiny-org/tiny-gpt2", &opts).unwrap();
    assert_eq!(dir, snap);
    let e = expected("gpt2");
    let m = AutoModelForCausalLM::from_dir(&dir, &Device::Cpu).unwrap();
    let out = m.forward_with(&inputs(&e)).unwrap();
    assert!(max_abs_diff(&out.logits, &e["logits"]) <= 1e-4);
    // a local folder wins over the cache
    let local = resolve_model_with(fixture("bert").to_str().unwrap(), &opts).unwrap();
    assert_eq!(local, fixture("bert"));
}

#[test]
fn model_not_found_offline_says_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = HubOptions {
        cache_dir: tmp.path().to_path_buf(),
        offline: true,
        revision: "main".into(),
        endpoint: None,
    };
    let msg = resolve_model_with("nobody/nothing", &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("nobody/nothing")
            && msg.contains("models--nobody--nothing")
            && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );
}

#[test]
fn no_weight_decay_groups_biases_and_layer_norms() {
    let no_weight_decay = |n: &str| !massivetext::models::uses_weight_decay(n);
    let m = AutoModelForCausalLM::from_dir(fixture("gpt2"), &Device::Cpu).unwrap();
    let (skip, decay): (Vec<String>, Vec<String>) = m
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .partition(|n| no_weight_decay(n));
    // 2 layers x (ln_1, ln_2 weight+bias, 4 biases) + ln_f weight+bias
    assert_eq!(skip.len(), 2 * 8 + 2, "{skip:?}");
    assert!(
        decay
            .iter()
            .all(|n| n.ends_with(".weight") && !n.contains("ln_"))
    );
    assert_eq!(decay.len(), 2 * 4 + 2);
    let b = AutoModelForMaskedLM::from_dir(fixture("bert"), &Device::Cpu).unwrap();
    for (n, _) in b.named_parameters() {
        let want = n.ends_with("bias") || n.contains("LayerNorm");
        assert_eq!(no_weight_decay(&n), want, "{n}");
    }
    assert!(no_weight_decay("ln_f.weight"));
    assert!(no_weight_decay("roberta.embeddings.LayerNorm.weight"));
    assert!(no_weight_decay("lm_head.layer_norm.weight"));
    assert!(!no_weight_decay("lm_head.dense.weight"));
}
