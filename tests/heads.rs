//! Task heads against Hugging Face transformers: sequence classification (BERT, RoBERTa, GPT-2;
//! single-label, multi-label, regression) and extractive QA (BERT, RoBERTa). Reference values
//! come from tests/fixtures/make_heads.py (tiny random models, eager attention, CPU torch),
//! padded batches included.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use massivetext::kernels;
use massivetext::models::check_weights;
use massivetext::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/heads")
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

fn scalar(t: &Tensor) -> f32 {
    t.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap()
}

fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor) {
    let d = max_abs_diff(ours, theirs);
    println!("{what}: max |ours - transformers| = {d:.2e}");
    assert!(d <= 1e-4, "{what} differs by {d}");
}

fn assert_loss(what: &str, ours: &Option<Tensor>, theirs: &Tensor) {
    let (a, b) = (scalar(ours.as_ref().expect("a loss")), scalar(theirs));
    println!("{what}: ours {a} transformers {b}");
    assert!((a - b).abs() <= 1e-5, "{what}: {a} vs {b}");
}

fn args(e: &HashMap<String, Tensor>) -> ForwardArgs {
    let mut a = ForwardArgs::new(&e["input_ids"].to_dtype(DType::U32).unwrap())
        .attention_mask(&e["attention_mask"]);
    if let Some(t) = e.get("token_type_ids") {
        a = a.token_type_ids(t);
    }
    if let Some(p) = e.get("position_ids") {
        a = a.position_ids(p);
    }
    a
}

fn cls(name: &str) -> AutoModelForSequenceClassification {
    AutoModelForSequenceClassification::from_dir(fixture(name), &Device::Cpu).unwrap()
}

fn qa(name: &str) -> AutoModelForQuestionAnswering {
    AutoModelForQuestionAnswering::from_dir(fixture(name), &Device::Cpu).unwrap()
}

#[test]
fn bert_sequence_classification_matches_transformers_for_each_problem_type() {
    let e = expected("bert_cls");
    let mut m = cls("bert_cls");
    assert_eq!(m.num_labels(), 3);
    assert_eq!(m.id2label(2), "pos");
    assert_eq!(m.labels().label2id()["neutral"], 1);
    // int labels: single-label cross-entropy, inferred
    let out = m.forward_with(&args(&e).labels(&e["labels"])).unwrap();
    assert_close("bert_cls logits", &out.logits, &e["logits"]);
    assert_loss("bert_cls single-label", &out.loss, &e["loss_single"]);
    // u32 labels give the same loss
    let u = e["labels"].to_dtype(DType::U32).unwrap();
    let out = m.forward_with(&args(&e).labels(&u)).unwrap();
    assert_loss("bert_cls single-label (u32)", &out.loss, &e["loss_single"]);
    // float labels [b, n]: multi-label BCE, inferred from the dtype
    let out = m
        .forward_with(&args(&e).labels(&e["labels_multi"]))
        .unwrap();
    assert_loss("bert_cls multi-label", &out.loss, &e["loss_multi"]);
    // problem_type = regression set in the config: MSE over [b, n]
    m.set_problem_type(Some(ProblemType::Regression));
    let out = m
        .forward_with(&args(&e).labels(&e["labels_multi"]))
        .unwrap();
    assert_loss("bert_cls regression", &out.loss, &e["loss_regression"]);
}

#[test]
fn the_composed_kernels_give_the_same_classifier_and_qa_outputs() {
    // what a GPU runs, checked on the CPU
    kernels::with_fused(false, || {
        let e = expected("bert_cls");
        let out = cls("bert_cls")
            .forward_with(&args(&e).labels(&e["labels"]))
            .unwrap();
        assert_close("bert_cls logits (composed)", &out.logits, &e["logits"]);
        assert_loss("bert_cls loss (composed)", &out.loss, &e["loss_single"]);
        let e = expected("roberta_qa");
        let out = qa("roberta_qa")
            .forward_with(
                &args(&e)
                    .start_positions(&e["start_positions"])
                    .end_positions(&e["end_positions"]),
            )
            .unwrap();
        assert_close(
            "roberta_qa start (composed)",
            &out.start_logits,
            &e["start_logits"],
        );
        assert_loss("roberta_qa loss (composed)", &out.loss, &e["loss"]);
    });
}

#[test]
fn bert_with_one_label_is_a_regression() {
    let e = expected("bert_reg");
    let m = cls("bert_reg");
    assert_eq!(m.num_labels(), 1);
    let out = m.forward_with(&args(&e).labels(&e["labels"])).unwrap();
    assert_eq!(out.logits.dims(), &[3, 1]);
    assert_close("bert_reg logits", &out.logits, &e["logits"]);
    assert_loss("bert_reg MSE", &out.loss, &e["loss"]);
}

#[test]
fn roberta_sequence_classification_matches_transformers() {
    let e = expected("roberta_cls");
    let m = cls("roberta_cls");
    assert_eq!(m.num_labels(), 4);
    assert_eq!(m.id2label(3), "LABEL_3");
    let out = m.forward_with(&args(&e).labels(&e["labels"])).unwrap();
    assert_close("roberta_cls logits", &out.logits, &e["logits"]);
    assert_loss("roberta_cls loss", &out.loss, &e["loss"]);
}

#[test]
fn gpt2_scores_the_last_real_token_with_right_left_and_no_padding() {
    let e = expected("gpt2_cls");
    let m = cls("gpt2_cls");
    let out = m.forward_with(&args(&e).labels(&e["labels"])).unwrap();
    assert_close("gpt2_cls pooled logits", &out.logits, &e["logits"]);
    assert_loss("gpt2_cls loss", &out.loss, &e["loss"]);
    // no pad_token_id: the last token of a single row, as transformers
    let e = expected("gpt2_nopad");
    let m = cls("gpt2_nopad");
    let ids = e["input_ids"].to_dtype(DType::U32).unwrap();
    let out = m.forward(&ids, None).unwrap();
    assert_close("gpt2_nopad logits", &out.logits, &e["logits"]);
    // ... and a batch of two without a pad id is refused, saying what to set
    let two = Tensor::cat(&[&ids, &ids], 0).unwrap();
    let err = m.forward(&two, None).unwrap_err().to_string();
    assert!(err.contains("pad_token_id"), "{err}");
}

#[test]
fn question_answering_matches_transformers_with_clamped_positions() {
    for name in ["bert_qa", "roberta_qa"] {
        let e = expected(name);
        let m = qa(name);
        let a = args(&e)
            .start_positions(&e["start_positions"])
            .end_positions(&e["end_positions"]);
        let out = m.forward_with(&a).unwrap();
        assert_close(
            &format!("{name} start"),
            &out.start_logits,
            &e["start_logits"],
        );
        assert_close(&format!("{name} end"), &out.end_logits, &e["end_logits"]);
        assert_loss(&format!("{name} loss"), &out.loss, &e["loss"]);
        // the trait's view: start and end stacked, same loss
        let out2 = PreTrainedModel::forward_with(&m, &a).unwrap();
        assert_eq!(out2.logits.dims(), &[3, 9, 2]);
        assert_loss(&format!("{name} loss (trait)"), &out2.loss, &e["loss"]);
    }
}

#[test]
fn a_checkpoint_without_the_head_gets_a_new_one_and_says_which_weights() {
    let dir = fixture("bert_base");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("loading_info.json")).unwrap())
            .unwrap();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    for (task, key) in [
        (Task::SequenceClassification, "sequence_classification"),
        (Task::QuestionAnswering, "question_answering"),
    ] {
        let report = check_weights(&dir, task).unwrap();
        let mut new = report.newly_initialized.clone();
        new.sort();
        assert_eq!(new, names(&info[key]["missing_keys"]), "{key}");
        assert_eq!(report.unused, names(&info[key]["unexpected_keys"]), "{key}");
        assert!(
            report
                .new_weights_warning("BertForSequenceClassification")
                .contains("newly initialized")
        );
    }
    // transformers' initialisation: normal(0, initializer_range), zero bias
    let m = AutoModelForSequenceClassification::from_pretrained_with_labels(
        &dir,
        LabelConfig::new(200),
    )
    .unwrap();
    let params: HashMap<String, _> = m.named_parameters().into_iter().collect();
    let w = params["classifier.weight"].as_tensor().clone();
    assert_eq!(w.dims(), &[200, 36]);
    let std = scalar(&w.sqr().unwrap().mean_all().unwrap()).sqrt();
    assert!((std - 0.02).abs() < 0.002, "std {std}");
    assert_eq!(
        scalar(
            &params["classifier.bias"]
                .as_tensor()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
        ),
        0.0
    );
    // the body was loaded: the pooler is the checkpoint's
    let body = check_weights(&dir, Task::Base).unwrap();
    assert!(body.newly_initialized.is_empty());
}

#[test]
fn save_pretrained_writes_labels_and_reloads_the_same_logits() {
    let e = expected("bert_cls");
    let m = cls("bert_cls");
    let tmp = tempfile::tempdir().unwrap();
    m.save_pretrained(tmp.path()).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert_eq!(cfg["id2label"]["1"], "neutral");
    assert_eq!(cfg["label2id"]["pos"], 2);
    let back = AutoModelForSequenceClassification::from_dir(tmp.path(), &Device::Cpu).unwrap();
    let out = back.forward_with(&args(&e)).unwrap();
    assert_close("reloaded logits", &out.logits, &e["logits"]);
    assert!(out.loss.is_none());
    // QA too
    let q = qa("roberta_qa");
    let tmp = tempfile::tempdir().unwrap();
    q.save_pretrained(tmp.path()).unwrap();
    let back = AutoModelForQuestionAnswering::from_dir(tmp.path(), &Device::Cpu).unwrap();
    let e = expected("roberta_qa");
    assert_close(
        "reloaded qa",
        &back.forward_with(&args(&e)).unwrap().end_logits,
        &e["end_logits"],
    );
}

#[test]
fn from_config_builds_every_classifier_and_trains_in_training_mode() {
    let bert = BertConfig {
        num_hidden_layers: 1,
        hidden_size: 16,
        num_attention_heads: 2,
        intermediate_size: 32,
        ..BertConfig::small(30)
    };
    let gpt2 = Gpt2Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 2,
        n_positions: 16,
        pad_token_id: Some(0),
        ..Gpt2Config::small(30)
    };
    let ids = Tensor::new(&[[2u32, 7, 9, 4], [2, 5, 0, 0]], &Device::Cpu).unwrap();
    let labels = Tensor::new(&[3u32, 0], &Device::Cpu).unwrap();
    for config in [
        ModelConfig::from(&bert),
        ModelConfig::from(RobertaConfig::from(bert.clone())),
        ModelConfig::from(&gpt2),
    ] {
        let m = AutoModelForSequenceClassification::from_config_with_labels(
            &config,
            LabelConfig::new(4),
            &Device::Cpu,
        )
        .unwrap();
        assert!(m.is_training());
        let out = m
            .forward_with(&ForwardArgs::new(&ids).labels(&labels))
            .unwrap();
        assert_eq!(out.logits.dims(), &[2, 4]);
        let loss = scalar(out.loss.as_ref().unwrap());
        // four classes, tiny random weights: about ln 4
        assert!((loss - 4f32.ln()).abs() < 0.3, "{loss}");
    }
    let q = AutoModelForQuestionAnswering::from_config(&bert, &Device::Cpu).unwrap();
    assert_eq!(q.forward(&ids, None).unwrap().start_logits.dims(), &[2, 4]);
    let err = AutoModelForQuestionAnswering::from_config(&gpt2, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bert, roberta"), "{err}");
}

#[test]
fn bad_labels_and_label_configs_get_clear_errors() {
    let e = expected("bert_cls");
    let m = cls("bert_cls");
    let bad = Tensor::new(&[0u32, 3, 1], &Device::Cpu).unwrap();
    let err = m
        .forward_with(&args(&e).labels(&bad))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("label 3") && err.contains("num_labels = 3"),
        "{err}"
    );
    let wrong_shape = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
    let err = m
        .forward_with(&args(&e).labels(&wrong_shape))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[3]"), "{err}");
    // QA: one of the two positions only
    let e = expected("bert_qa");
    let err = qa("bert_qa")
        .forward_with(&args(&e).start_positions(&e["start_positions"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("end_positions"), "{err}");
    // config.json with an id2label that skips an id
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("bert_cls").join(f), tmp.path().join(f)).unwrap();
    }
    let path = tmp.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["id2label"] = serde_json::json!({"0": "a", "2": "c"});
    std::fs::write(&path, cfg.to_string()).unwrap();
    let err = AutoModelForSequenceClassification::from_dir(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("id2label"),
        "{err}"
    );
    cfg["id2label"] = serde_json::json!({"0": "a", "1": "b"});
    cfg["problem_type"] = serde_json::json!("ranking");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let err = AutoModelForSequenceClassification::from_dir(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("problem_type `ranking`"), "{err}");
}

/// A classifier on a right-padded batch skips the padding inside the encoder (the real tokens
/// packed into one row); asking for the hidden states runs every position instead. Both give
/// the same logits, loss and gradient of every parameter, for BERT and RoBERTa, with rows of
/// three lengths (one unpadded) and attention dropout off (the two paths draw hidden dropout
/// over different layouts).
#[test]
fn skipping_padding_keeps_logits_loss_and_gradients() {
    let bert = BertConfig {
        num_hidden_layers: 2,
        hidden_size: 16,
        num_attention_heads: 2,
        intermediate_size: 32,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..BertConfig::small(30)
    };
    let dev = Device::Cpu;
    let ids = Tensor::new(
        &[[2u32, 7, 9, 4, 5], [2, 5, 1, 1, 1], [2, 8, 3, 1, 1]],
        &dev,
    )
    .unwrap();
    let mask = Tensor::new(
        &[[1u32, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]],
        &dev,
    )
    .unwrap();
    let labels = Tensor::new(&[2u32, 0, 1], &dev).unwrap();
    for config in [
        ModelConfig::from(&bert),
        ModelConfig::from(RobertaConfig::from(bert.clone())),
    ] {
        let m = AutoModelForSequenceClassification::from_config_with_labels(
            &config,
            LabelConfig::new(3),
            &dev,
        )
        .unwrap();
        let args = ForwardArgs::new(&ids).attention_mask(&mask).labels(&labels);
        let packed = m.forward_with(&args).unwrap();
        let full = m
            .forward_with(&args.clone().output_hidden_states(true))
            .unwrap();
        assert!(full.hidden_states.is_some());
        let d = max_abs_diff(&packed.logits, &full.logits);
        assert!(d <= 1e-5, "logits differ by {d}");
        let (a, b) = (packed.loss.unwrap(), full.loss.unwrap());
        assert!((scalar(&a) - scalar(&b)).abs() <= 1e-6);
        let (ga, gb) = (a.backward().unwrap(), b.backward().unwrap());
        for (name, var) in m.named_parameters() {
            let (Some(x), Some(y)) = (ga.get(&var), gb.get(&var)) else {
                panic!("{name} has a gradient on one path only");
            };
            let scale = y
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let d = max_abs_diff(x, y);
            // (+1e-7: a key bias's true gradient is 0, both paths hold rounding noise)
            assert!(
                d <= 1e-5 * scale + 1e-7,
                "gradient of {name} differs by {d}"
            );
        }
    }
}
