//! LoRA adapters against Hugging Face peft: reference values come from
//! tests/fixtures/make_peft.py (tiny random GPT-2 and Llama; peft adapters with a non-zero B).
//! An adapter saved by peft loads here and gives peft's logits and gradients; an adapter saved
//! here loads in peft (live, through MASSIVETEXT_REF_PYTHON) and gives ours; merging equals
//! the adapted model; a LoRA run trains only the adapter, leaves the base weights bitwise as
//! they were, and checkpoints and resumes the adapter alone.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use massivetext::generate::{GenerationConfig, GenerationMixin};
use massivetext::peft::TargetModules;
use massivetext::prelude::*;

#[path = "common/reference.rs"]
mod reference;

const NAMES: [&str; 2] = ["gpt2", "llama"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/peft")
        .join(name)
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("expected.safetensors"), &Device::Cpu)
        .unwrap()
}

fn base(name: &str) -> AutoModelForCausalLM {
    AutoModelForCausalLM::from_dir(fixture(name).join("base"), &Device::Cpu).unwrap()
}

fn adapted(name: &str) -> PeftModel<AutoModelForCausalLM> {
    PeftModel::from_pretrained(base(name), fixture(name).join("adapter")).unwrap()
}

fn ids(e: &HashMap<String, Tensor>) -> Tensor {
    e["input_ids"].to_dtype(DType::U32).unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.to_dtype(DType::F32)
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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    max_abs(&(a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap()).unwrap())
}

/// Every parameter's bytes, by name: to compare weights bitwise.
fn snapshot(params: Vec<(String, candle_core::Var)>) -> Vec<(String, Vec<u32>)> {
    params
        .into_iter()
        .map(|(n, v)| {
            let bits = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f32::to_bits)
                .collect();
            (n, bits)
        })
        .collect()
}

#[test]
fn peft_adapters_load_with_peft_logits() {
    for name in NAMES {
        let e = expected(name);
        let plain = base(name)
            .forward_with(&ForwardArgs::new(&ids(&e)))
            .unwrap();
        let d = max_abs_diff(&plain.logits, &e["base_logits"]);
        assert!(d <= 1e-4, "{name}: base logits differ by {d}");
        let model = adapted(name);
        let out = PreTrainedModel::forward_with(&model, &ForwardArgs::new(&ids(&e))).unwrap();
        let d = max_abs_diff(&out.logits, &e["logits"]);
        assert!(
            d <= 1e-4,
            "{name}: adapted logits differ from peft's by {d}"
        );
        // the adapter matters: its logits are far from the base model's
        let moved = max_abs_diff(&out.logits, &e["base_logits"]);
        assert!(
            moved > 0.1,
            "{name}: the adapter changed the logits by only {moved}"
        );
        let with_labels = ForwardArgs::new(&ids(&e)).labels(&e["labels"]);
        let loss = model
            .loss_with(&with_labels)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = e["loss"].to_vec1::<f32>().unwrap()[0];
        assert!(
            (loss - want).abs() <= 1e-4,
            "{name}: loss {loss} vs peft's {want}"
        );
    }
}

#[test]
fn lora_gradients_match_peft() {
    for name in NAMES {
        let e = expected(name);
        let model = adapted(name);
        let args = ForwardArgs::new(&ids(&e)).labels(&e["labels"]);
        let grads = model.loss_with(&args).unwrap().backward().unwrap();
        let params = model.named_parameters();
        // the frozen base gets no gradient: besides the adapter's, the store holds at most
        // vectors (norms) and activations (the untracked side of a sum), no weight matrix
        let dims: Vec<Vec<usize>> = grads
            .get_ids()
            .filter(|id| !params.iter().any(|(_, v)| v.id() == **id))
            .filter_map(|id| grads.get_id(*id))
            .filter(|g| g.rank() == 2)
            .map(|g| g.dims().to_vec())
            .collect();
        let big = dims.len();
        assert_eq!(
            big, 0,
            "{name}: {big} weight-sized gradients of frozen tensors were computed: {dims:?}"
        );
        let n_grads = e.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(
            params.len(),
            n_grads,
            "{name}: one gradient per adapter tensor"
        );
        for (key, var) in params {
            let want = &e[&format!("grad.{key}")];
            let got = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{key}: no gradient"));
            let rel = max_abs_diff(got, want) / max_abs(want).max(1e-12);
            assert!(
                rel <= 1e-4,
                "{name}: gradient of {key} differs by {rel} (relative)"
            );
        }
    }
}

#[test]
fn merge_and_unload_computes_the_adapted_model() {
    for name in NAMES {
        let e = expected(name);
        let model = adapted(name);
        let merged = model.merge_and_unload().unwrap();
        let out = merged.forward_with(&ForwardArgs::new(&ids(&e))).unwrap();
        let d = max_abs_diff(&out.logits, &e["logits"]);
        assert!(
            d <= 1e-4,
            "{name}: merged logits differ from the adapter's by {d}"
        );
        // a plain model with the base's parameter names, the base itself unchanged
        let names = |m: &AutoModelForCausalLM| -> Vec<String> {
            m.named_parameters().into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names(&merged), names(model.base_model()));
        let plain = model
            .base_model()
            .forward_with(&ForwardArgs::new(&ids(&e)))
            .unwrap();
        assert!(max_abs_diff(&plain.logits, &e["base_logits"]) <= 1e-4);
    }
}

/// Our adapter, changed by a few steps of training, saved, loaded back by peft: peft's logits
/// are ours.
#[test]
fn adapters_saved_here_load_in_peft() {
    let dir = tempfile::tempdir().unwrap();
    for name in NAMES {
        let e = expected(name);
        let model = adapted(name);
        let out_dir = dir.path().join(name);
        let args = TrainingArguments {
            output_dir: out_dir.clone(),
            learning_rate: 1e-2,
            max_steps: Some(3),
            per_device_train_batch_size: 2,
            disable_tqdm: true,
            save_strategy: IntervalStrategy::No,
            ..Default::default()
        };
        let rows: Vec<Vec<u32>> = ids(&e).to_vec2().unwrap();
        let data = Dataset::from_columns(vec![Column::new(
            "input_ids",
            rows.iter().map(|r| json!(r)).collect(),
        )])
        .unwrap();
        let before = snapshot(model.named_parameters());
        let mut trainer = Trainer::new(model.share(), args, data).unwrap();
        trainer.train().unwrap();
        assert_ne!(
            snapshot(model.named_parameters()),
            before,
            "{name}: the adapter trained"
        );
        let adapter = out_dir.join("adapter");
        model.save_pretrained(&adapter).unwrap();
        let mut files: Vec<String> = std::fs::read_dir(&adapter)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["adapter_config.json", "adapter_model.safetensors"]);
        // the same keys as peft's own file
        let keys = |p: &Path| {
            let mut k: Vec<String> = candle_core::safetensors::load(p, &Device::Cpu)
                .unwrap()
                .into_keys()
                .collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&adapter.join("adapter_model.safetensors")),
            keys(&fixture(name).join("adapter/adapter_model.safetensors"))
        );
        let mut eval = model.eval_copy();
        eval.set_training(false);
        let logits = eval
            .forward_with(&ForwardArgs::new(&ids(&e)))
            .unwrap()
            .logits;
        assert!(
            max_abs_diff(&logits, &e["logits"]) > 1e-3,
            "{name}: training moved the logits"
        );
        let ours = out_dir.join("ours.safetensors");
        candle_core::safetensors::save(
            &HashMap::from([
                ("input_ids".to_string(), e["input_ids"].clone()),
                ("logits".to_string(), logits),
            ]),
            &ours,
        )
        .unwrap();
        let said = reference::run_script(
            "make_peft.py",
            &[
                OsStr::new("--check"),
                OsStr::new(name),
                adapter.as_os_str(),
                ours.as_os_str(),
            ],
        );
        assert!(said.contains("differ from ours"), "{said}");
    }
}

fn tiny_gpt2() -> AutoModelForCausalLM {
    let config = Gpt2Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 2,
        n_positions: 16,
        ..Gpt2Config::small(50)
    };
    AutoModelForCausalLM::from_config(&config, &Device::Cpu).unwrap()
}

#[test]
fn trainable_parameters_are_counted_as_peft_counts_them() {
    // peft 0.21.2 on GPT2LMHeadModel(n_layer=1, n_embd=16, n_head=2, vocab_size=50,
    // n_positions=16) with LoraConfig(r=4, target_modules=["c_attn", "c_fc"]):
    let lora = LoraConfig {
        r: 4,
        target_modules: Some(["c_attn", "c_fc"].into()),
        fan_in_fan_out: true,
        ..Default::default()
    };
    let mut model = get_peft_model(tiny_gpt2(), &lora).unwrap();
    model.eval(); // from_config models start in training mode (dropout on)
    assert_eq!(
        model.trainable_parameters_line(),
        "trainable params: 576 || all params: 4,944 || trainable%: 11.6505"
    );
    assert_eq!(
        model.targeted_modules(),
        ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc"]
    );
    assert!(model.to_string().contains("2 adapted modules"), "{model}");
    // clone() copies the adapter: changing the copy leaves the original as it was
    let copy = model.clone();
    let before = snapshot(model.named_parameters());
    for (_, v) in copy.named_parameters() {
        v.set(&(v.as_tensor() + 1.0).unwrap()).unwrap();
    }
    assert_eq!(snapshot(model.named_parameters()), before);
    assert_ne!(snapshot(copy.named_parameters()), before);
    // B starts at zero: the adapted model computes the base model
    let ids = Tensor::new(&[[1u32, 5, 7, 9]], &Device::Cpu).unwrap();
    let a = model.forward_with(&ForwardArgs::new(&ids)).unwrap().logits;
    let b = model
        .base_model()
        .eval_copy()
        .forward_with(&ForwardArgs::new(&ids))
        .unwrap()
        .logits;
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn targets_and_configs_fail_clearly() {
    let lora = LoraConfig {
        target_modules: Some(["nope"].into()),
        ..Default::default()
    };
    let e = get_peft_model(tiny_gpt2(), &lora).unwrap_err().to_string();
    assert!(
        e.contains("Target modules [\"nope\"] not found in the base model") && e.contains("c_attn"),
        "{e}"
    );
    // a list matches a whole name component; a string is a regular expression over the name
    let by_regex = LoraConfig {
        target_modules: Some(TargetModules::Regex(r".*\.h\.0\.mlp\.c_.*".into())),
        fan_in_fan_out: true,
        ..Default::default()
    };
    let m = get_peft_model(tiny_gpt2(), &by_regex).unwrap();
    assert_eq!(
        m.targeted_modules(),
        ["transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj"]
    );
    let partial = LoraConfig {
        target_modules: Some(["attn"].into()),
        ..Default::default()
    };
    assert!(
        get_peft_model(tiny_gpt2(), &partial).is_err(),
        "`attn` is no module's last name"
    );
    for (bad, key) in [
        (
            LoraConfig {
                r: 0,
                ..Default::default()
            },
            "`r` is 0",
        ),
        (
            LoraConfig {
                lora_dropout: 1.0,
                ..Default::default()
            },
            "`lora_dropout`",
        ),
        (
            LoraConfig {
                bias: "some".into(),
                ..Default::default()
            },
            "`bias`",
        ),
    ] {
        let e = get_peft_model(tiny_gpt2(), &bad).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
    let mut dora = LoraConfig::default();
    dora.extra.insert("use_dora".into(), json!(true));
    let e = get_peft_model(tiny_gpt2(), &dora).unwrap_err().to_string();
    assert!(e.contains("`use_dora` is true"), "{e}");
    // an adapter of another model: its keys name modules this one lacks
    let e = PeftModel::from_pretrained(base("gpt2"), fixture("llama").join("adapter"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("q_proj") || e.contains("not found"), "{e}");
    let e = PeftModel::from_pretrained(base("gpt2"), fixture("gpt2").join("base"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("adapter_config.json"), "{e}");
}

#[test]
fn adapter_config_round_trips_peft_keys() {
    let dir = tempfile::tempdir().unwrap();
    let model = adapted("gpt2");
    model.save_pretrained(dir.path()).unwrap();
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p.join("adapter_config.json")).unwrap())
            .unwrap()
    };
    let ours = read(dir.path());
    let peft = read(&fixture("gpt2").join("adapter"));
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ours), keys(&peft));
    for k in [
        "r",
        "fan_in_fan_out",
        "target_modules",
        "peft_type",
        "task_type",
        "bias",
    ] {
        assert_eq!(ours[k], peft[k], "{k}");
    }
    assert_eq!(ours["lora_alpha"].as_f64(), peft["lora_alpha"].as_f64());
    let config = LoraConfig::from_pretrained(dir.path()).unwrap();
    assert_eq!(config.r, 4);
    assert_eq!(config.scaling(), 2.0);
}

/// The keys peft 0.21.2 saves for GPT2ForSequenceClassification with
/// `LoraConfig(r=4, target_modules=["c_attn"], bias="lora_only", modules_to_save=["score"])`.
#[test]
fn bias_and_modules_to_save_use_peft_keys() {
    let config = Gpt2Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 2,
        n_positions: 16,
        ..Gpt2Config::small(50)
    };
    let base = AutoModelForSequenceClassification::from_config(&config, &Device::Cpu).unwrap();
    let before = snapshot(base.named_parameters());
    let lora = LoraConfig {
        r: 4,
        target_modules: Some(["c_attn"].into()),
        fan_in_fan_out: true,
        bias: "lora_only".into(),
        modules_to_save: Some(vec!["score".into()]),
        ..Default::default()
    };
    let model = get_peft_model(base.share(), &lora).unwrap();
    let names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "base_model.model.score.weight",
            "base_model.model.transformer.h.0.attn.c_attn.base_layer.bias",
            "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
            "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight",
        ]
    );
    assert_eq!(
        model.trainable_parameters_line(),
        "trainable params: 336 || all params: 4,688 || trainable%: 7.1672"
    );
    // training the copies leaves the base's own score and bias as they were
    let labels = Tensor::new(&[1u32], &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[3u32, 4, 5]], &Device::Cpu).unwrap();
    let loss = model
        .loss_with(&ForwardArgs::new(&ids).labels(&labels))
        .unwrap();
    let grads = loss.backward().unwrap();
    for (_, v) in model.named_parameters() {
        let g = grads.get(v.as_tensor()).unwrap();
        v.set(&(v.as_tensor() - g).unwrap()).unwrap();
    }
    assert_eq!(snapshot(base.named_parameters()), before);
}

/// A LoRA run with the Trainer: the optimiser holds the adapter only, checkpoints hold the
/// adapter only, a resumed run ends where a straight one does, and the base weights are
/// bitwise as they were.
#[test]
fn lora_training_checkpoints_and_resumes_the_adapter_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = LlamaConfig {
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 32,
        ..LlamaConfig::small(13)
    };
    let lora = LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.1,
        target_modules: Some(["q_proj", "v_proj", "down_proj"].into()),
        ..Default::default()
    };
    let stream: Vec<u32> = (0..2000u32).map(|i| (i * 7 + i / 13) % 13).collect();
    let data = || TokenWindows::new(stream.clone(), 16).unwrap();
    let args = |sub: &str| TrainingArguments {
        output_dir: dir.path().join(sub),
        learning_rate: 5e-3,
        per_device_train_batch_size: 4,
        max_steps: Some(8),
        save_strategy: IntervalStrategy::Steps,
        save_steps: Steps::Every(4),
        disable_tqdm: true,
        logging_steps: Steps::Every(1),
        ..Default::default()
    };
    let fresh = || {
        let base = AutoModelForCausalLM::from_config(&config, &Device::Cpu).unwrap();
        let before = snapshot(base.named_parameters());
        let mut m = get_peft_model(base, &lora).unwrap();
        m.train();
        (m, before)
    };
    let (straight, before) = fresh();
    let mut t = Trainer::new(straight.share(), args("a"), data()).unwrap();
    let losses: Vec<f64> = (0..8).map(|_| t.step().unwrap().loss).collect();
    assert!(losses[7] < losses[0], "it learned: {losses:?}");
    assert_eq!(
        snapshot(straight.base_model().named_parameters()),
        before,
        "base untouched"
    );

    let (first, _) = fresh();
    let mut t = Trainer::new(first.share(), args("b"), data()).unwrap();
    for _ in 0..4 {
        t.step().unwrap();
    }
    t.save_checkpoint().unwrap();
    let cp = dir.path().join("b/checkpoint-4");
    assert!(cp.join("adapter_model.safetensors").is_file());
    assert!(
        !cp.join("model.safetensors").exists(),
        "a checkpoint holds the adapter only"
    );
    let opt =
        candle_core::safetensors::load(cp.join("optimizer.safetensors"), &Device::Cpu).unwrap();
    let state: usize = opt.values().map(|t| t.elem_count()).sum();
    let adapter: usize = first
        .named_parameters()
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum();
    assert!(
        state <= 2 * adapter + 16,
        "optimiser state of {state} numbers for an adapter of {adapter}"
    );
    let (resumed, _) = fresh();
    let mut t = Trainer::new(resumed.share(), args("b"), data()).unwrap();
    t.resume_from_checkpoint("latest").unwrap();
    for _ in 0..4 {
        t.step().unwrap();
    }
    assert_eq!(
        snapshot(resumed.named_parameters()),
        snapshot(straight.named_parameters()),
        "the resumed adapter ends where the straight run's does"
    );
}

/// A PeftModel is a model like the others: generation (with the KV cache) and attention maps.
#[test]
fn peft_models_generate_and_show_attention() {
    let model = adapted("llama");
    let e = expected("llama");
    let prompt = ids(&e).narrow(0, 0, 1).unwrap();
    let config = GenerationConfig {
        max_new_tokens: 5,
        do_sample: false,
        ..Default::default()
    };
    let out = model.generate(&prompt, &config).unwrap();
    assert_eq!(out.dims(), &[1, 14]);
    // greedy decoding picks the adapted model's argmax, not the base's
    let first = out
        .narrow(1, 9, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap()[0];
    let last = e["logits"].get(0).unwrap().get(8).unwrap();
    let want = last.argmax(0).unwrap().to_scalar::<u32>().unwrap();
    assert_eq!(first, want);
    let args = ForwardArgs::new(&prompt).output_attentions(true);
    let att = model.forward_with(&args).unwrap().attentions.unwrap();
    assert_eq!(att.len(), 2);
    assert_eq!(att[0].dims(), &[1, 4, 9, 9]);
}
