//! Trainer, AdamW, schedules, collators and checkpoints, against torch / transformers reference
//! values from tests/fixtures/make_train.py.
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use massivetext::data::{Column, Dataset};
use massivetext::models::{ForwardArgs, ModelOutput, Task};
use massivetext::train::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The tiny causal LM of make_train.py.
#[derive(Clone)]
struct TinyLm {
    varmap: VarMap,
    vocab: usize,
}

impl TinyLm {
    fn from_tensors(tensors: Vec<(String, Tensor)>, vocab: usize) -> Self {
        let varmap = VarMap::new();
        {
            let mut d = varmap.data().lock().unwrap();
            for (k, t) in tensors {
                d.insert(k, Var::from_tensor(&t).unwrap());
            }
        }
        TinyLm { varmap, vocab }
    }

    fn from_fixture() -> Self {
        let t = candle_core::safetensors::load(fixture("train_init.safetensors"), &Device::Cpu)
            .unwrap();
        Self::from_tensors(t.into_iter().collect(), 11)
    }

    fn random(vocab: usize, hidden: usize, seed: u64) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut r = |shape: &[usize], scale: f32, offset: f32| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| offset + scale * (rng.random::<f32>() - 0.5))
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
        };
        Self::from_tensors(
            vec![
                ("wte.weight".into(), r(&[vocab, hidden], 1.0, 0.0)),
                ("fc.weight".into(), r(&[hidden, hidden], 1.0, 0.0)),
                ("fc.bias".into(), r(&[hidden], 0.2, 0.0)),
                ("ln_f.weight".into(), r(&[hidden], 0.2, 1.0)),
                ("ln_f.bias".into(), r(&[hidden], 0.2, 0.0)),
                ("lm_head.weight".into(), r(&[vocab, hidden], 1.0, 0.0)),
            ],
            vocab,
        )
    }

    fn get(&self, name: &str) -> Tensor {
        self.varmap.data().lock().unwrap()[name].as_tensor().clone()
    }

    fn weights(&self) -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<_> = self
            .varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn loss_of(&self, ids: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let x = self
            .get("wte.weight")
            .index_select(&ids.flatten_all()?, 0)?;
        let h = x
            .matmul(&self.get("fc.weight").t()?)?
            .broadcast_add(&self.get("fc.bias"))?
            .tanh()?;
        let h = h
            .broadcast_mul(&self.get("ln_f.weight"))?
            .broadcast_add(&self.get("ln_f.bias"))?;
        let logits = h
            .matmul(&self.get("lm_head.weight").t()?)?
            .reshape((b, s, self.vocab))?;
        let logits = logits
            .narrow(1, 0, s - 1)?
            .reshape((b * (s - 1), self.vocab))?;
        let labels = labels
            .narrow(1, 1, s - 1)?
            .flatten_all()?
            .to_dtype(DType::I64)?;
        let valid = labels.ge(0i64)?;
        let safe = valid
            .where_cond(&labels, &labels.zeros_like()?)?
            .to_dtype(DType::U32)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = logp.gather(&safe.unsqueeze(1)?, 1)?.squeeze(1)?;
        let mask = valid.to_dtype(DType::F32)?;
        let n = mask.sum_all()?;
        (picked * &mask)?.sum_all()?.neg()?.broadcast_div(&n)
    }
}

impl PreTrainedModel for TinyLm {
    fn forward_with(&self, args: &ForwardArgs) -> massivetext::Result<ModelOutput> {
        let labels = args.labels.as_ref().expect("the Trainer passes labels");
        let loss = self.loss_of(&args.input_ids, labels)?;
        Ok(ModelOutput {
            logits: loss.clone(),
            loss: Some(loss),
            attentions: None,
            hidden_states: None,
        })
    }
    fn task(&self) -> Task {
        Task::CausalLm
    }
    fn varmap(&self) -> &VarMap {
        &self.varmap
    }
    fn device(&self) -> &Device {
        &Device::Cpu
    }
    fn save_pretrained(&self, dir: &Path) -> massivetext::Result<()> {
        self.varmap.save(dir.join("model.safetensors"))?;
        std::fs::write(dir.join("config.json"), self.config_json().to_string()).unwrap();
        Ok(())
    }
    fn config_json(&self) -> Value {
        json!({"model_type": "tiny", "vocab_size": self.vocab})
    }
    fn vocab_size(&self) -> Option<usize> {
        Some(self.vocab)
    }
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("train_expected.json")).unwrap()).unwrap()
}

fn ids_tensor(v: &Value, dtype: DType) -> Tensor {
    let rows: Vec<Vec<i64>> = serde_json::from_value(v.clone()).unwrap();
    let (b, s) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.into_iter().flatten().collect();
    Tensor::from_vec(flat, (b, s), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

#[test]
fn adamw_clipping_and_schedule_match_torch() {
    let exp = expected();
    let model = TinyLm::from_fixture();
    let cfg = AdamWConfig {
        lr: exp["lr"].as_f64().unwrap(),
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut opt = AdamW::new(&model.varmap, cfg).unwrap();
    assert_eq!(
        opt.no_decay_names(),
        vec!["fc.bias", "ln_f.bias", "ln_f.weight"]
    );
    let steps = exp["steps"].as_array().unwrap();
    let mut sched = LrScheduler::new(SchedulerType::Linear, cfg.lr, 2, steps.len());
    let mut max_diff = 0f64;
    for (k, (b, want)) in exp["batches"]
        .as_array()
        .unwrap()
        .iter()
        .zip(steps)
        .enumerate()
    {
        let ids = ids_tensor(&b["input_ids"], DType::U32);
        let labels = ids_tensor(&b["labels"], DType::I64);
        let loss = model.loss_of(&ids, &labels).unwrap();
        let l = loss.to_scalar::<f32>().unwrap() as f64;
        assert!(
            (l - want["loss"].as_f64().unwrap()).abs() < 1e-5,
            "step {k} loss {l}"
        );
        let mut g = opt.grads(&loss.backward().unwrap());
        let norm = g.clip_grad_norm(0.5).unwrap();
        assert!(
            (norm - want["grad_norm"].as_f64().unwrap()).abs() < 1e-5,
            "step {k} norm {norm}"
        );
        let lr = sched.get_last_lr();
        assert!(
            (lr - want["lr"].as_f64().unwrap()).abs() < 1e-12,
            "step {k} lr {lr}"
        );
        opt.config.lr = lr;
        opt.step_grads(&g).unwrap();
        sched.step();
        for (name, w) in model.weights() {
            let t: Vec<f64> = serde_json::from_value(want["params"][&name].clone()).unwrap();
            for (a, b) in w.iter().zip(&t) {
                max_diff = max_diff.max((*a as f64 - b).abs());
            }
        }
    }
    println!("max |param - torch| over 6 steps: {max_diff:.3e}");
    assert!(max_diff <= 1e-5, "max diff {max_diff}");
}

#[test]
fn schedules_match_transformers_get_scheduler() {
    let exp = expected();
    let s = &exp["schedules"];
    let warm = s["num_warmup_steps"].as_u64().unwrap() as usize;
    let total = s["num_training_steps"].as_u64().unwrap() as usize;
    for (name, kind) in [
        ("linear", SchedulerType::Linear),
        ("cosine", SchedulerType::Cosine),
        ("constant", SchedulerType::Constant),
        ("constant_with_warmup", SchedulerType::ConstantWithWarmup),
        ("cosine_with_min_lr", SchedulerType::CosineWithMinLr),
    ] {
        let mut args = TrainingArguments {
            learning_rate: 1.0,
            warmup_steps: warm,
            lr_scheduler_type: kind,
            ..Default::default()
        };
        args.lr_scheduler_kwargs.insert("min_lr".into(), json!(0.1));
        let sched = LrScheduler::from_args(&args, total).unwrap();
        for (k, v) in s["values"][name].as_array().unwrap().iter().enumerate() {
            let want = v.as_f64().unwrap();
            assert!(
                (sched.lr_at(k) - want).abs() < 1e-12,
                "{name} step {k}: {} vs {want}",
                sched.lr_at(k)
            );
        }
    }
    // warmup as a ratio: ceil(0.1 * 50) = 5
    let args = TrainingArguments {
        warmup_ratio: 0.1,
        ..Default::default()
    };
    assert_eq!(args.get_warmup_steps(50), 5);
}

#[test]
fn no_decay_rule_covers_gpt2_and_bert_names() {
    for n in [
        "transformer.h.0.ln_1.weight",
        "transformer.h.3.ln_2.bias",
        "transformer.ln_f.weight",
        "bert.embeddings.LayerNorm.weight",
        "roberta.encoder.layer.0.output.LayerNorm.weight",
        "transformer.h.0.attn.c_attn.bias",
        "cls.predictions.bias",
        "model.layer_norm.weight",
    ] {
        assert!(!uses_weight_decay(n), "{n} should not decay");
    }
    for n in [
        "transformer.wte.weight",
        "transformer.h.0.attn.c_attn.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "lm_head.weight",
    ] {
        assert!(uses_weight_decay(n), "{n} should decay");
    }
}

fn rows_dataset(rows: &[Vec<u32>]) -> Dataset {
    Dataset::from_columns(vec![Column::new(
        "input_ids",
        rows.iter().map(|r| json!(r)).collect(),
    )])
    .unwrap()
}

fn varied_rows(n: usize, vocab: u32, seed: u64) -> Vec<Vec<u32>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(3..12);
            (0..len).map(|_| rng.random_range(0..vocab)).collect()
        })
        .collect()
}

fn quiet_args(dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: dir.to_path_buf(),
        learning_rate: 1e-2,
        weight_decay: 0.01,
        disable_tqdm: true,
        save_strategy: IntervalStrategy::No,
        logging_steps: Steps::Every(1),
        ..Default::default()
    }
}

fn max_weight_diff(a: &TinyLm, b: &TinyLm) -> f64 {
    let mut m = 0f64;
    for ((na, wa), (nb, wb)) in a.weights().iter().zip(b.weights()) {
        assert_eq!(na, &nb);
        for (x, y) in wa.iter().zip(&wb) {
            m = m.max((x - y).abs() as f64);
        }
    }
    m
}

#[test]
fn accumulation_of_4x2_equals_one_batch_of_8() {
    let dir = tempfile::tempdir().unwrap();
    let ds = rows_dataset(&varied_rows(8, 13, 1));
    let big = TinyLm::random(13, 8, 7);
    let small = TinyLm::random(13, 8, 7);
    let mut a = Trainer::new(
        big.clone(),
        TrainingArguments {
            per_device_train_batch_size: 8,
            max_steps: Some(3),
            ..quiet_args(dir.path())
        },
        ds.clone(),
    )
    .unwrap();
    let mut b = Trainer::new(
        small.clone(),
        TrainingArguments {
            per_device_train_batch_size: 2,
            gradient_accumulation_steps: 4,
            max_steps: Some(3),
            ..quiet_args(dir.path())
        },
        ds,
    )
    .unwrap();
    for _ in 0..3 {
        let sa = a.step().unwrap();
        let sb = b.step().unwrap();
        assert!(
            (sa.loss - sb.loss).abs() < 1e-5,
            "{} vs {}",
            sa.loss,
            sb.loss
        );
        assert!((sa.grad_norm - sb.grad_norm).abs() < 1e-5);
        assert_eq!(sa.num_tokens, sb.num_tokens);
    }
    let d = max_weight_diff(&big, &small);
    println!("accumulation: max |w_8 - w_4x2| after 3 steps = {d:.3e}");
    assert!(d <= 1e-5, "{d}");
    assert!(
        max_weight_diff(&big, &TinyLm::random(13, 8, 7)) > 1e-3,
        "the weights moved"
    );
}

fn windows(seed: u64) -> TokenWindows {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // A learnable stream: mostly t+1 mod 13.
    let mut t = 0u32;
    let v: Vec<u32> = (0..4000)
        .map(|_| {
            t = if rng.random::<f32>() < 0.8 {
                (t + 1) % 13
            } else {
                rng.random_range(0..13)
            };
            t
        })
        .collect();
    TokenWindows::new(v, 16).unwrap()
}

#[test]
fn resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        per_device_train_batch_size: 4,
        gradient_accumulation_steps: 2,
        max_steps: Some(20),
        warmup_steps: 3,
        lr_scheduler_type: SchedulerType::Cosine,
        save_strategy: IntervalStrategy::Steps,
        save_steps: Steps::Every(10),
        ..quiet_args(dir.path())
    };
    let straight_model = TinyLm::random(13, 8, 3);
    let mut straight = Trainer::new(
        straight_model.clone(),
        TrainingArguments {
            output_dir: dir.path().join("a"),
            ..args.clone()
        },
        windows(5),
    )
    .unwrap();
    let losses_a: Vec<f64> = (0..20).map(|_| straight.step().unwrap().loss).collect();

    let first_model = TinyLm::random(13, 8, 3);
    let b_args = TrainingArguments {
        output_dir: dir.path().join("b"),
        ..args.clone()
    };
    let mut first = Trainer::new(first_model, b_args.clone(), windows(5)).unwrap();
    let mut losses_b: Vec<f64> = (0..10).map(|_| first.step().unwrap().loss).collect();
    drop(first);
    let cp = dir.path().join("b/checkpoint-10");
    for f in [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "scheduler.json",
        "rng_state.json",
        "trainer_state.json",
        "training_args.json",
    ] {
        assert!(cp.join(f).is_file(), "{f} missing");
    }
    // A fresh model with other weights: everything must come from the checkpoint.
    let resumed_model = TinyLm::random(13, 8, 99);
    let mut resumed = Trainer::new(resumed_model.clone(), b_args, windows(5)).unwrap();
    let from = resumed.resume_from_checkpoint("latest").unwrap();
    assert_eq!(from, cp);
    assert_eq!(resumed.global_step(), 10);
    losses_b.extend((0..10).map(|_| resumed.step().unwrap().loss));
    assert_eq!(losses_a, losses_b, "losses differ");
    let d = max_weight_diff(&straight_model, &resumed_model);
    assert_eq!(d, 0.0, "weights differ by {d}");
    assert!(
        losses_a[19] < losses_a[0] - 0.15,
        "it learned: {losses_a:?}"
    );
}

#[test]
fn checkpoints_state_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let eval = windows(9).with_max_eval_windows(8);
    let args = TrainingArguments {
        per_device_train_batch_size: 4,
        max_steps: Some(12),
        eval_strategy: IntervalStrategy::Steps,
        eval_steps: Some(Steps::Every(3)),
        save_strategy: IntervalStrategy::Steps,
        save_steps: Steps::Every(3),
        save_total_limit: Some(2),
        logging_steps: Steps::Every(2),
        learning_rate: 5e-2,
        load_best_model_at_end: true,
        logging_dir: Some(dir.path().join("logs")),
        ..quiet_args(dir.path())
    };
    let mut t = Trainer::new(TinyLm::random(13, 8, 4), args, windows(5))
        .unwrap()
        .with_eval_dataset(eval)
        .unwrap();
    let out = t.train().unwrap();
    assert_eq!(out.global_step, 12);
    let cps = sorted_checkpoints(dir.path());
    let names: Vec<String> = cps
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into())
        .collect();
    let state = TrainerState::load_from_json(&dir.path().join("trainer_state.json")).unwrap();
    let best = state.best_model_checkpoint.clone().unwrap();
    assert!(
        names.len() <= 2 && names.contains(&"checkpoint-12".to_string()),
        "{names:?}"
    );
    assert!(
        cps.iter().any(|p| p.display().to_string() == best),
        "best {best} kept: {names:?}"
    );
    assert_eq!(state.global_step, 12);
    let train_logs = state
        .log_history
        .iter()
        .filter(|e| e.contains_key("loss"))
        .count();
    let eval_logs = state
        .log_history
        .iter()
        .filter(|e| e.contains_key("eval_loss"))
        .count();
    assert_eq!(train_logs, 6);
    assert_eq!(eval_logs, 4);
    for e in state.log_history.iter().filter(|e| e.contains_key("loss")) {
        for k in ["loss", "learning_rate", "grad_norm", "epoch", "step"] {
            assert!(e.contains_key(k), "{k} missing in {e:?}");
        }
    }
    assert!(state.best_metric.is_some());
    // The file has Hugging Face's keys.
    let raw: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    for k in [
        "global_step",
        "epoch",
        "log_history",
        "best_metric",
        "best_model_checkpoint",
        "max_steps",
        "train_batch_size",
    ] {
        assert!(raw.get(k).is_some(), "{k}");
    }
    assert!(!dir.path().join("tmp-checkpoint-12").exists());
    let logs: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("logs/log_history.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(logs.len(), state.log_history.len());
    let svg = t.loss_curve().unwrap().to_svg().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("train loss") && svg.contains("eval loss"));
    t.save_model().unwrap();
    assert!(dir.path().join("model.safetensors").is_file());
}

/// A model whose loss becomes NaN after `after` calls.
#[derive(Clone)]
struct Exploding {
    inner: TinyLm,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    after: usize,
}

impl PreTrainedModel for Exploding {
    fn forward_with(&self, args: &ForwardArgs) -> massivetext::Result<ModelOutput> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut out = self.inner.forward_with(args)?;
        if n >= self.after {
            out.loss = Some((out.loss.unwrap() * f64::NAN)?);
        }
        Ok(out)
    }
    fn task(&self) -> Task {
        Task::CausalLm
    }
    fn varmap(&self) -> &VarMap {
        &self.inner.varmap
    }
    fn device(&self) -> &Device {
        &Device::Cpu
    }
    fn save_pretrained(&self, dir: &Path) -> massivetext::Result<()> {
        self.inner.save_pretrained(dir)
    }
    fn config_json(&self) -> Value {
        self.inner.config_json()
    }
}

#[test]
fn nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let m = Exploding {
        inner: TinyLm::random(13, 8, 1),
        calls: Default::default(),
        after: 5,
    };
    let args = TrainingArguments {
        max_steps: Some(10),
        per_device_train_batch_size: 2,
        save_strategy: IntervalStrategy::Steps,
        save_steps: Steps::Every(2),
        ..quiet_args(dir.path())
    };
    let mut t = Trainer::new(m.clone(), args, windows(2)).unwrap();
    let before_weights;
    let err = loop {
        let w = m.inner.weights();
        match t.step() {
            Ok(_) => {}
            Err(e) => {
                before_weights = w;
                break e;
            }
        }
    };
    let msg = err.to_string();
    assert!(
        msg.contains("step 6") && msg.contains("NaN") && msg.contains("checkpoint-4"),
        "{msg}"
    );
    assert_eq!(
        before_weights,
        m.inner.weights(),
        "no update after a NaN loss"
    );
    assert!(dir.path().join("checkpoint-4/model.safetensors").is_file());
    assert!(!dir.path().join("checkpoint-6").exists());
}

#[test]
fn causal_collator_pads_and_ignores_padding() {
    let c = DataCollatorForLanguageModeling::causal(0);
    let ex = vec![
        Example {
            input_ids: vec![5, 6, 7],
            ..Default::default()
        },
        Example {
            input_ids: vec![8],
            ..Default::default()
        },
    ];
    let b = c.collate(&ex, 0, &Device::Cpu).unwrap();
    assert_eq!(
        b.input_ids.to_vec2::<u32>().unwrap(),
        vec![vec![5, 6, 7], vec![8, 0, 0]]
    );
    assert_eq!(
        b.attention_mask.to_vec2::<u32>().unwrap(),
        vec![vec![1, 1, 1], vec![1, 0, 0]]
    );
    assert_eq!(
        b.labels.to_vec2::<i64>().unwrap(),
        vec![vec![5, 6, 7], vec![8, -100, -100]]
    );
    assert_eq!(b.num_label_tokens, 2, "shifted: 6, 7");
    assert_eq!(b.num_input_tokens, 4);
}

#[test]
fn mlm_collator_masks_80_10_10_and_never_special_or_padding() {
    let special = vec![0u32, 1, 2]; // pad, cls, sep
    let c = DataCollatorForLanguageModeling::mlm(3, 0, 1000, special.clone()).with_seed(7);
    let ex: Vec<Example> = (0..64)
        .map(|r| {
            let mut ids = vec![1u32];
            ids.extend((0..(200 + r)).map(|i| 4 + ((i * 7 + r * 13) % 990) as u32));
            ids.push(2);
            Example {
                input_ids: ids,
                ..Default::default()
            }
        })
        .collect();
    let b = c.collate(&ex, 0, &Device::Cpu).unwrap();
    let ids = b.input_ids.to_vec2::<u32>().unwrap();
    let labels = b.labels.to_vec2::<i64>().unwrap();
    let (mut chosen, mut masked, mut kept, mut candidates) = (0, 0, 0, 0);
    for (r, e) in ex.iter().enumerate() {
        for j in 0..ids[r].len() {
            let orig = e.input_ids.get(j).copied();
            match orig {
                None => assert_eq!(labels[r][j], -100, "padding never chosen"),
                Some(t) if special.contains(&t) => {
                    assert_eq!(labels[r][j], -100, "special never chosen");
                    assert_eq!(ids[r][j], t);
                }
                Some(t) => {
                    candidates += 1;
                    if labels[r][j] != -100 {
                        chosen += 1;
                        assert_eq!(labels[r][j], t as i64);
                        if ids[r][j] == 3 {
                            masked += 1;
                        } else if ids[r][j] == t {
                            kept += 1;
                        }
                    } else {
                        assert_eq!(ids[r][j], t, "unchosen tokens unchanged");
                    }
                }
            }
        }
    }
    let p = chosen as f64 / candidates as f64;
    let pm = masked as f64 / chosen as f64;
    let pk = kept as f64 / chosen as f64;
    println!("chosen {p:.3}, masked {pm:.3}, kept {pk:.3} of {candidates}");
    assert!((p - 0.15).abs() < 0.01, "{p}");
    assert!((pm - 0.8).abs() < 0.02, "{pm}");
    assert!((pk - 0.1).abs() < 0.02, "{pk}");
    assert_eq!(b.num_label_tokens, chosen);
    // Seeded: the same stream gives the same batch, another stream another one.
    let again = c.collate(&ex, 0, &Device::Cpu).unwrap();
    assert_eq!(again.input_ids.to_vec2::<u32>().unwrap(), ids);
    let other = c.collate(&ex, 1, &Device::Cpu).unwrap();
    assert_ne!(other.input_ids.to_vec2::<u32>().unwrap(), ids);
}

#[test]
fn training_arguments_defaults_and_files() {
    let a = TrainingArguments::default();
    assert_eq!(a.num_train_epochs, 3.0);
    assert_eq!(a.per_device_train_batch_size, 8);
    assert_eq!(a.learning_rate, 5e-5);
    assert_eq!(
        (a.adam_beta1, a.adam_beta2, a.adam_epsilon),
        (0.9, 0.999, 1e-8)
    );
    assert_eq!(a.max_grad_norm, 1.0);
    assert_eq!(a.seed, 42);
    assert_eq!(a.lr_scheduler_type, SchedulerType::Linear);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("args.toml");
    std::fs::write(&p, "output_dir = \"out\"\nlearning_rate = 1e-3\nlr_scheduler_type = \"cosine\"\nwarmup_steps = 0.1\n").unwrap();
    let t = TrainingArguments::from_file(&p).unwrap();
    assert_eq!(t.learning_rate, 1e-3);
    assert_eq!(t.lr_scheduler_type, SchedulerType::Cosine);
    assert_eq!(
        t.get_warmup_steps(100),
        10,
        "fractional warmup_steps is a ratio"
    );
    let j = dir.path().join("args.json");
    std::fs::write(&j, a.to_json()).unwrap();
    assert_eq!(TrainingArguments::from_file(&j).unwrap(), a);
    let back: TrainingArguments = toml::from_str(&a.to_toml().unwrap()).unwrap();
    assert_eq!(back, a);
}

/// Step counts are `usize` / `Option<usize>` / [`Steps`] in Rust, and transformers' numbers in
/// files: `max_steps = -1` is unset, a whole `logging_steps` a count, one in (0, 1) a share of
/// the run; `training_args.json` writes them back as transformers does.
#[test]
fn step_counts_are_typed_and_read_transformers_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("args.json");
    std::fs::write(
        &j,
        r#"{"max_steps": -1, "logging_steps": 50, "save_steps": 0.25, "eval_steps": 100.0}"#,
    )
    .unwrap();
    let a = TrainingArguments::from_file(&j).unwrap();
    assert_eq!(a.max_steps, None);
    assert_eq!(a.logging_steps, Steps::Every(50));
    assert_eq!(a.save_steps, Steps::Ratio(0.25));
    assert_eq!(a.eval_steps, Some(Steps::Every(100)));
    assert_eq!(
        (a.save_steps.resolve(10), a.logging_steps.resolve(10)),
        (3, 50)
    );
    let v: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
    assert_eq!(v["max_steps"], json!(-1));
    assert_eq!(v["logging_steps"], json!(50));
    assert_eq!(v["save_steps"], json!(0.25));
    let t = dir.path().join("args.toml");
    std::fs::write(
        &t,
        "max_steps = 30
logging_steps = 5
",
    )
    .unwrap();
    let a = TrainingArguments::from_file(&t).unwrap();
    assert_eq!((a.max_steps, a.logging_steps), (Some(30), Steps::Every(5)));
    // What transformers refuses is refused, naming the key.
    for (text, key) in [
        ("logging_steps = 2.5\n", "logging_steps"),
        ("save_steps = 0\n", "save_steps"),
        ("eval_steps = -3\n", "eval_steps"),
    ] {
        std::fs::write(&t, text).unwrap();
        let e = TrainingArguments::from_file(&t).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("args.toml"), "{text}: {e}");
    }
    let zero = TrainingArguments {
        max_steps: Some(0),
        ..Default::default()
    };
    assert!(
        zero.validate()
            .unwrap_err()
            .to_string()
            .contains("max_steps")
    );
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "output_dir = \"out\"\nlearnig_rate = 1e-3\n").unwrap();
    let e = TrainingArguments::from_file(&p).unwrap_err().to_string();
    assert!(
        e.contains("bad.toml:2") && e.contains("learnig_rate"),
        "{e}"
    );
    std::fs::write(&p, "per_device_train_batch_size = 0\n").unwrap();
    let e = TrainingArguments::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("per_device_train_batch_size"), "{e}");
    std::fs::write(&p, "lr_scheduler_type = \"cosine_with_min_lr\"\n").unwrap();
    let e = TrainingArguments::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("min_lr"), "{e}");
    let args = quiet_args(dir.path());
    let m = TinyLm::random(13, 8, 1);
    // No input_ids column.
    let ds = Dataset::from_columns(vec![Column::new("text", vec![json!("hi")])]).unwrap();
    let e = Trainer::new(m.clone(), args.clone(), ds)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("input_ids"), "{e}");
    // Not a list of ids.
    let ds = Dataset::from_columns(vec![Column::new(
        "input_ids",
        vec![json!([1, 2]), json!("x")],
    )])
    .unwrap();
    let e = Trainer::new(m.clone(), args.clone(), ds)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("row 1"), "{e}");
    // Token id outside the vocabulary.
    let e = Trainer::new(m.clone(), args.clone(), rows_dataset(&[vec![1, 50]]))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("50") && e.contains("13"), "{e}");
    // evaluate without an eval set.
    let mut t = Trainer::new(m.clone(), args.clone(), rows_dataset(&[vec![1, 2, 3]])).unwrap();
    assert!(
        t.evaluate()
            .unwrap_err()
            .to_string()
            .contains("with_eval_dataset")
    );
    // Resume from nothing.
    let e = t.resume_from_checkpoint("latest").unwrap_err().to_string();
    assert!(e.contains("no checkpoint"), "{e}");
    // Corrupt checkpoint.
    let cp = dir.path().join("checkpoint-3");
    std::fs::create_dir_all(&cp).unwrap();
    let e = t
        .resume_from_checkpoint(cp.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("trainer_state.json"), "{e}");
    // MLM collator without a mask token.
    let mut c = DataCollatorForLanguageModeling::mlm(3, 0, 10, vec![]);
    c.mask_token_id = None;
    assert!(
        t.clone()
            .with_collator(c)
            .err()
            .unwrap()
            .to_string()
            .contains("mask_token_id")
    );
    // A block larger than the stream.
    assert!(
        TokenWindows::new(vec![1, 2, 3], 8)
            .unwrap_err()
            .to_string()
            .contains("block_size")
    );
}

#[test]
fn train_cli_writes_a_complete_output_dir() {
    use massivetext::cli::run_from;
    use massivetext::train::cli::TrainJob;
    let train = |a: &[&str]| run_from(["massivetext", "train"].iter().chain(a).copied());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let summary = train(&[
        "--device",
        "cpu",
        "--output-dir",
        out.to_str().unwrap(),
        "--max-steps",
        "20",
        "--eval-steps",
        "10",
        "--save-steps",
        "10",
        "--logging-steps",
        "5",
        "--n-layer",
        "1",
        "--n-embd",
        "32",
        "--n-head",
        "2",
        "--block-size",
        "32",
        "--train-stories",
        "300",
        "--eval-stories",
        "20",
        "--check-stories",
        "4",
        "--disable-tqdm",
        "true",
        "--set",
        "warmup_steps=2",
    ])
    .unwrap();
    assert!(
        summary.contains("trained 20 steps") && summary.contains("answers right"),
        "{summary}"
    );
    for f in [
        "checkpoint-20/model.safetensors",
        "checkpoint-20/optimizer.safetensors",
        "checkpoint-20/trainer_state.json",
        "trainer_state.json",
        "model.safetensors",
        "config.json",
        "loss_curve.svg",
        "samples.txt",
        "vocab.json",
        "job.toml",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(sorted_checkpoints(&out).len(), 2, "save_total_limit 2");
    let state = TrainerState::load_from_json(&out.join("trainer_state.json")).unwrap();
    assert_eq!(state.global_step, 20);
    let losses = state.series("loss");
    assert!(losses.last().unwrap().1 < losses[0].1, "{losses:?}");
    // The saved model loads back with the models' from_pretrained.
    massivetext::models::AutoModelForCausalLM::from_dir(&out, &Device::Cpu).unwrap();
    // The job file round-trips and resumes.
    let job = TrainJob::from_file(&out.join("job.toml")).unwrap();
    assert_eq!(job.training.max_steps, Some(20));
    assert_eq!(job.training.warmup_steps, 2, "--set warmup_steps=2");
    // Bad flags. Unknown flags and missing values are clap's errors now (they used to be our
    // own "unknown flag --max-stepz" and "--max-steps needs a value").
    let e = train(&["--max-stepz", "3"]).unwrap_err().to_string();
    assert!(
        e.contains("unexpected argument '--max-stepz'") && e.contains("Usage"),
        "{e}"
    );
    let e = train(&["--n-embd", "30", "--n-head", "4"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple of n_head"), "{e}");
    let e = train(&["--max-steps"]).unwrap_err().to_string();
    assert!(
        e.contains("a value is required for '--max-steps <N>'"),
        "{e}"
    );
    let e = train(&["--max-steps", "-5"]).unwrap_err().to_string();
    assert!(
        e.contains("--max-steps") && e.contains("must be at least 1, got -5"),
        "{e}"
    );
    let e = train(&["--dropout", "1.5"]).unwrap_err().to_string();
    assert!(e.contains("must be in [0, 1)"), "{e}");
    let e = train(&["--set", "max_stepz=3"]).unwrap_err().to_string();
    assert!(e.contains("unknown setting `max_stepz`"), "{e}");
    let e = train(&["--set", "max_steps"]).unwrap_err().to_string();
    assert!(e.contains("KEY=VALUE"), "{e}");
    let e = train(&["--set", "max_steps=many"]).unwrap_err().to_string();
    assert!(e.contains("bad setting value"), "{e}");
    let e = train(&["--device", "tpu"]).unwrap_err().to_string();
    assert!(e.contains("[possible values: auto, cpu, cuda]"), "{e}");
    #[cfg(not(feature = "cuda"))]
    {
        let e = train(&["--device", "cuda", "--max-steps", "1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("without the `cuda` feature"), "{e}");
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[training]\nmax_steps = \"many\"\n").unwrap();
    let e = train(&["--config", bad.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.toml:2"), "{e}");
    let printed = train(&["--print-config", "--n-layer", "2"]).unwrap();
    assert!(
        printed.contains("n_layer = 2") && printed.contains("[training]"),
        "{printed}"
    );
    // --seed sets both the corpus seed and the training seed; --set reaches any field.
    let printed = train(&[
        "--print-config",
        "--seed",
        "7",
        "--set",
        "lr_scheduler_type=cosine",
        "--set",
        "adam_beta2=0.95",
    ])
    .unwrap();
    let job: TrainJob = toml::from_str(&printed).unwrap();
    assert_eq!((job.training.seed, job.corpus.seed), (7, 7));
    assert_eq!(job.training.adam_beta2, 0.95);
    assert_eq!(
        job.training.lr_scheduler_type,
        massivetext::train::SchedulerType::Cosine
    );
}

#[test]
fn corpus_is_seeded_and_checkable() {
    use massivetext::corpus::{CharVocab, corpus_text, stories};
    let s = stories(200, 3);
    assert_eq!(s, stories(200, 3));
    assert_ne!(s, stories(200, 4));
    for st in &s {
        let t = st.text();
        assert!(t.starts_with(&st.setup) && t.ends_with('.'), "{t}");
        // The setup's numbers give the answer.
        let nums: Vec<u32> = st
            .setup
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().unwrap())
            .collect();
        let (a, b) = (nums[0], nums[1]);
        assert!(st.answer == a + b || st.answer + b == a, "{t}");
    }
    let text = corpus_text(50, 1);
    let v = CharVocab::from_text(&text);
    assert_eq!(v.decode(&v.encode(&text).unwrap()), text);
    assert!(
        v.encode("€")
            .unwrap_err()
            .to_string()
            .contains("not in the vocabulary")
    );
}

#[test]
fn gpt2_with_dropout_resumes_exactly() {
    use massivetext::models::{AutoModelForCausalLM, Gpt2Config};
    let config = Gpt2Config {
        vocab_size: 13,
        n_positions: 16,
        n_embd: 16,
        n_layer: 1,
        n_head: 2,
        ..Gpt2Config::gpt2() // dropout 0.1 everywhere
    };
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        per_device_train_batch_size: 4,
        max_steps: Some(6),
        learning_rate: 1e-2,
        save_strategy: IntervalStrategy::Steps,
        save_steps: Steps::Every(3),
        ..quiet_args(dir.path())
    };
    let run = |sub: &str, steps: usize, resume: bool| {
        let m = AutoModelForCausalLM::from_config(config.clone(), &Device::Cpu).unwrap();
        let a = TrainingArguments {
            output_dir: dir.path().join(sub),
            ..args.clone()
        };
        let mut t = Trainer::new(m.share(), a, windows(5)).unwrap();
        if resume {
            t.resume_from_checkpoint("latest").unwrap();
        }
        let l: Vec<f64> = (0..steps).map(|_| t.step().unwrap().loss).collect();
        (l, m)
    };
    let (straight, m1) = run("a", 6, false);
    let (mut first, _) = run("b", 3, false);
    let (second, m2) = run("b", 3, true);
    first.extend(second);
    assert_eq!(straight, first);
    let w = |m: &AutoModelForCausalLM| -> Vec<Vec<f32>> {
        m.named_parameters()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    assert_eq!(w(&m1), w(&m2));
    // Dropout is on: the training loss differs from the eval-mode loss of the same batch.
    let c = DataCollatorForLanguageModeling::causal(0);
    let b = c
        .collate(
            &[Example {
                input_ids: (0..16).map(|i| i % 13).collect(),
                ..Default::default()
            }],
            0,
            &Device::Cpu,
        )
        .unwrap();
    let lt = compute_loss(&m1, &b, true)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let le = compute_loss(&m1, &b, false)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_ne!(lt, le);
}

#[test]
fn decay_groups_agree_with_the_models_rule_on_every_parameter() {
    use massivetext::models::{
        AutoModelForCausalLM, AutoModelForMaskedLM, BertConfig, Gpt2Config, ModelConfig,
    };
    let gpt = AutoModelForCausalLM::from_config(
        Gpt2Config {
            n_layer: 2,
            n_embd: 16,
            n_head: 2,
            n_positions: 8,
            ..Gpt2Config::small(20)
        },
        &Device::Cpu,
    )
    .unwrap();
    let small = BertConfig {
        hidden_size: 16,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 32,
        ..BertConfig::small(20)
    };
    let bert =
        AutoModelForMaskedLM::from_config(ModelConfig::Bert(small.clone()), &Device::Cpu).unwrap();
    let roberta =
        AutoModelForMaskedLM::from_config(ModelConfig::Roberta(small), &Device::Cpu).unwrap();
    let mut names: Vec<String> = gpt.named_parameters().into_iter().map(|(n, _)| n).collect();
    names.extend(bert.named_parameters().into_iter().map(|(n, _)| n));
    names.extend(roberta.named_parameters().into_iter().map(|(n, _)| n));
    let mut no_decay = 0;
    // one rule (models::uses_weight_decay, re-exported by train) decides for every model
    for n in &names {
        no_decay += usize::from(!uses_weight_decay(n));
    }
    assert!(names.iter().any(|n| n.contains("ln_f")) && no_decay > 10);
    let opt = AdamW::new(gpt.varmap(), AdamWConfig::default()).unwrap();
    for n in opt.no_decay_names() {
        assert!(n.ends_with(".bias") || n.contains(".ln_"), "{n}");
    }
}

/// The notebook flow of the design brief, end to end at toy size.
#[test]
fn notebook_flow_from_text_to_trained_model() {
    use massivetext::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.txt");
    std::fs::write(&path, massivetext::corpus::corpus_text(300, 5)).unwrap();
    let ds = load_dataset("text", &path).unwrap();
    let tok = Tokenizer::train_bpe(&ds["train"], "text", 400).unwrap();
    let lm = ds["train"]
        .tokenize(&tok, "text")
        .unwrap()
        .group_texts(32)
        .unwrap();
    let config = Gpt2Config {
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_positions: 32,
        ..Gpt2Config::small(tok.vocab_size())
    };
    let model = AutoModelForCausalLM::from_config(&config, &Device::Cpu).unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().join("results"),
        num_train_epochs: 2.0,
        per_device_train_batch_size: 8,
        learning_rate: 3e-3,
        warmup_steps: 5,
        weight_decay: 0.01,
        logging_steps: Steps::Every(5),
        disable_tqdm: true,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, args, lm.clone()).unwrap();
    let first = trainer.step().unwrap();
    assert_eq!(first.step, 1);
    assert_eq!(first.learning_rate, 0.0, "HF warmup starts at 0");
    let out = trainer.train().unwrap();
    assert_eq!(out.global_step, trainer.max_steps());
    assert_eq!(trainer.max_steps(), 2 * lm.num_rows().div_ceil(8));
    let losses = trainer.state().series("loss");
    assert!(losses.last().unwrap().1 < losses[0].1 - 0.5, "{losses:?}");
    assert!(
        trainer
            .loss_curve()
            .unwrap()
            .to_svg()
            .unwrap()
            .contains("<svg")
    );
    assert!(trainer.summary().contains("step"));
}

/// The Trainer's update (the clipping coefficient applied inside AdamW, over parallel chunks)
/// against `clip_grad_norm` then `step_grads` (scaled gradients, then the update): the same
/// weights and moments, bit for bit, for a parameter that spans several chunks and a small one.
#[test]
fn clipping_inside_adamw_equals_clipping_first() {
    let make = || {
        let varmap = VarMap::new();
        {
            let mut d = varmap.data().lock().unwrap();
            let big: Vec<f32> = (0..70_007)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
                .collect();
            d.insert(
                "big.weight".into(),
                Var::from_tensor(&Tensor::from_vec(big, (7, 10_001), &Device::Cpu).unwrap())
                    .unwrap(),
            );
            d.insert(
                "small.bias".into(),
                Var::from_tensor(&Tensor::new(&[0.5f32, -0.25, 2.0], &Device::Cpu).unwrap())
                    .unwrap(),
            );
        }
        varmap
    };
    let (a, b) = (make(), make());
    let cfg = AdamWConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let (mut opt_a, mut opt_b) = (AdamW::new(&a, cfg).unwrap(), AdamW::new(&b, cfg).unwrap());
    for step in 0..3 {
        let grads = || {
            let g: Vec<f32> = (0..70_007)
                .map(|i| ((i * 13 + step * 7) % 29) as f32 - 14.0)
                .collect();
            Grads(vec![
                Some(Tensor::from_vec(g, (7, 10_001), &Device::Cpu).unwrap()),
                Some(Tensor::new(&[3.0f32, -1.0, 0.125], &Device::Cpu).unwrap()),
            ])
        };
        let mut ga = grads();
        let norm_a = ga.clip_grad_norm(1.0).unwrap();
        opt_a.step_grads(&ga).unwrap();
        let gb = grads();
        let (norm_b, coef) = gb.clip_coef(1.0).unwrap();
        assert!(coef < 1.0, "the test must clip (coefficient {coef})");
        assert_eq!(norm_a, norm_b);
        opt_b.step_grads_scaled(&gb, coef).unwrap();
    }
    let values = |m: &VarMap| -> Vec<Vec<u32>> {
        let d = m.data().lock().unwrap();
        let mut names: Vec<&String> = d.keys().collect();
        names.sort();
        names
            .iter()
            .map(|n| {
                let v: Vec<f32> = d[*n].flatten_all().unwrap().to_vec1().unwrap();
                v.iter().map(|x| x.to_bits()).collect()
            })
            .collect()
    };
    assert_eq!(values(&a), values(&b));
    let dir = std::env::temp_dir().join(format!("mt-clip-adamw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    opt_a.save(&dir.join("a.safetensors")).unwrap();
    opt_b.save(&dir.join("b.safetensors")).unwrap();
    // the moments, tensor by tensor (the files' metadata order may differ)
    let moments = |f: &str| -> Vec<(String, Vec<u32>)> {
        let mut t: Vec<_> = candle_core::safetensors::load(dir.join(f), &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                let v: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
                (k, v.iter().map(|x| x.to_bits()).collect())
            })
            .collect();
        t.sort();
        t
    };
    let (ma, mb) = (moments("a.safetensors"), moments("b.safetensors"));
    assert_eq!(ma.len(), 4);
    assert!(ma == mb, "the moments differ");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The backward pass (candle's, with the patch that stores a node's first gradient as is)
/// sums the gradients of a tensor used twice, and hands a gradient that arrives through a
/// transposed view back contiguous (the optimizer's kernels read gradients as one slice):
/// `d/dx [sum(xᵀ ⊙ w) + sum(x ⊙ x)] = wᵀ + 2x`, and `d/dx sum(xᵀ ⊙ w) = wᵀ` alone.
#[test]
fn gradients_sum_over_uses_and_come_back_contiguous() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(
        &Tensor::arange(0f32, 6., &dev)
            .unwrap()
            .reshape((2, 3))
            .unwrap(),
    )
    .unwrap();
    let w = Tensor::arange(1f32, 7., &dev)
        .unwrap()
        .reshape((3, 2))
        .unwrap();
    let wt: Vec<Vec<f32>> = w.t().unwrap().to_vec2().unwrap();
    let xv: Vec<Vec<f32>> = x.to_vec2().unwrap();
    let through_view = (x.t().unwrap() * &w).unwrap().sum_all().unwrap();
    let g = through_view.backward().unwrap();
    let gx = g.get(&x).unwrap();
    assert!(gx.is_contiguous());
    assert_eq!(gx.to_vec2::<f32>().unwrap(), wt);
    let both =
        (&through_view + (x.as_tensor() * x.as_tensor()).unwrap().sum_all().unwrap()).unwrap();
    let g = both.backward().unwrap();
    let want: Vec<Vec<f32>> = wt
        .iter()
        .zip(&xv)
        .map(|(w, x)| w.iter().zip(x).map(|(w, x)| w + 2. * x).collect())
        .collect();
    assert_eq!(g.get(&x).unwrap().to_vec2::<f32>().unwrap(), want);
}
