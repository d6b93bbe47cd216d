//! Fine-tuning task models with the Trainer: `DataCollatorWithPadding`, datasets with a `label`
//! column or answer positions, `compute_metrics`, `predict`, and `metric_for_best_model` on a
//! computed metric.
use std::collections::BTreeMap;

use massivetext::data::Column;
use massivetext::metrics::{Average, f1_score};
use massivetext::prelude::*;
use massivetext::train::{DataCollatorWithPadding, EvalPrediction, Metrics, TaskLabel, TrainData};
use serde_json::json;

fn tiny_bert(vocab: usize) -> BertConfig {
    BertConfig {
        num_hidden_layers: 1,
        hidden_size: 32,
        num_attention_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 32,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..BertConfig::small(vocab)
    }
}

/// Rows of random tokens 3..20 of random length; the label is whether token 7 occurs.
fn contains_seven(n: usize, seed: u64) -> Vec<Example> {
    let mut x = seed;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 4 + next() % 6;
            let mut ids: Vec<u32> = (0..len).map(|_| 8 + (next() % 12) as u32).collect();
            let positive = next() % 2 == 0;
            if positive {
                let at = next() % len;
                ids[at] = 7;
            }
            ids.insert(0, 2); // [CLS]-like
            Example::classification(ids, positive as i64)
        })
        .collect()
}

fn accuracy_and_f1(p: &EvalPrediction) -> massivetext::Result<Metrics> {
    let (preds, labels) = (p.argmax()?, p.labels()?);
    Ok(BTreeMap::from([
        ("accuracy".to_string(), accuracy(&preds, &labels)?),
        ("f1".to_string(), f1_score(&preds, &labels, Average::Macro)?),
    ]))
}

#[test]
fn a_classifier_learns_with_compute_metrics_predict_and_the_best_metric() {
    let dir = tempfile::tempdir().unwrap();
    let model =
        AutoModelForSequenceClassification::from_config(tiny_bert(24), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        per_device_train_batch_size: 16,
        per_device_eval_batch_size: 7, // batches of different lengths are gathered
        learning_rate: 3e-3,
        max_steps: Some(120),
        warmup_steps: 0,
        eval_strategy: IntervalStrategy::Steps,
        eval_steps: Some(Steps::Every(40)),
        save_strategy: IntervalStrategy::Steps,
        save_steps: Steps::Every(40),
        logging_steps: Steps::Every(40),
        metric_for_best_model: Some("accuracy".into()),
        load_best_model_at_end: true,
        disable_tqdm: true,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, args, contains_seven(400, 1))
        .unwrap()
        .with_eval_dataset(contains_seven(60, 2))
        .unwrap()
        .with_compute_metrics(accuracy_and_f1);
    assert_eq!(trainer.padding_collator().unwrap().pad_token_id, 0);
    let before = trainer.evaluate().unwrap();
    trainer.train().unwrap();
    let evals: Vec<f64> = trainer
        .log_history()
        .iter()
        .filter_map(|e| e.get("eval_accuracy").and_then(|v| v.as_f64()))
        .collect();
    assert_eq!(evals.len(), 4, "{:?}", trainer.log_history());
    let best = evals.iter().cloned().fold(0.0, f64::max);
    assert_eq!(trainer.state().best_metric, Some(best));
    assert!(
        trainer
            .log_history()
            .iter()
            .any(|e| e.contains_key("eval_f1"))
    );
    assert!(
        !trainer
            .log_history()
            .iter()
            .any(|e| e.contains_key("eval_perplexity"))
    );
    println!(
        "accuracy before {} after {best}",
        before.metrics["eval_accuracy"]
    );
    assert!(best >= 0.9, "eval accuracy {best}");
    // predict: logits, labels, metrics with the test_ prefix, equal to what the logits say
    let out = trainer.predict(contains_seven(60, 2)).unwrap();
    assert_eq!(out.predictions.dims(), &[60, 2]);
    let labels = out.label_ids.clone().unwrap();
    assert_eq!(labels.dims(), &[60]);
    let p = EvalPrediction {
        predictions: out.predictions.clone(),
        label_ids: labels,
    };
    let acc = accuracy(&p.argmax().unwrap(), &p.labels().unwrap()).unwrap();
    assert_eq!(out.metrics["test_accuracy"], acc);
    // the best checkpoint was loaded at the end
    assert!(
        (acc - best).abs() < 1e-12,
        "predict {acc} vs best eval {best}"
    );
    assert!(out.metrics["test_loss"] > 0.0);
}

#[test]
fn metric_for_best_model_must_be_a_metric_evaluation_produced() {
    let dir = tempfile::tempdir().unwrap();
    let model =
        AutoModelForSequenceClassification::from_config(tiny_bert(24), &Device::Cpu).unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        metric_for_best_model: Some("f2".into()),
        disable_tqdm: true,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, args, contains_seven(20, 1))
        .unwrap()
        .with_eval_dataset(contains_seven(10, 2))
        .unwrap()
        .with_compute_metrics(accuracy_and_f1);
    let err = trainer.evaluate().unwrap_err().to_string();
    assert!(
        err.contains("eval_f2") && err.contains("eval_accuracy") && err.contains("eval_f1"),
        "{err}"
    );
}

#[test]
fn data_collator_with_padding_pads_and_stacks_each_kind_of_label() {
    let c = DataCollatorWithPadding::new(9);
    let ex = vec![
        Example {
            input_ids: vec![1, 2, 3],
            token_type_ids: Some(vec![0, 1, 1]),
            label: Some(TaskLabel::Span { start: 1, end: 2 }),
            ..Default::default()
        },
        Example {
            input_ids: vec![4],
            label: Some(TaskLabel::Span { start: 0, end: 0 }),
            ..Default::default()
        },
    ];
    let b = c.collate(&ex, 0, &Device::Cpu).unwrap();
    assert_eq!(
        b.input_ids.to_vec2::<u32>().unwrap(),
        [[1, 2, 3], [4, 9, 9]]
    );
    assert_eq!(
        b.attention_mask.to_vec2::<u32>().unwrap(),
        [[1, 1, 1], [1, 0, 0]]
    );
    assert_eq!(
        b.token_type_ids.as_ref().unwrap().to_vec2::<u32>().unwrap(),
        [[0, 1, 1], [0, 0, 0]]
    );
    assert_eq!(b.labels.to_vec2::<i64>().unwrap(), [[1, 2], [0, 0]]);
    let args = b.forward_args();
    assert_eq!(
        args.start_positions
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap(),
        [1, 0]
    );
    assert!(args.labels.is_none());
    // left padding moves the answer with the tokens
    let left = DataCollatorWithPadding {
        left_padding: true,
        ..c.clone()
    };
    let b = left.collate(&ex, 0, &Device::Cpu).unwrap();
    assert_eq!(
        b.input_ids.to_vec2::<u32>().unwrap(),
        [[1, 2, 3], [9, 9, 4]]
    );
    assert_eq!(b.labels.to_vec2::<i64>().unwrap(), [[1, 2], [2, 2]]);
    // regression floats [b], multi-label [b, n], classes i64 [b]
    let reg = [0.5f32, -1.0].map(|v| Example {
        input_ids: vec![1],
        label: Some(TaskLabel::Floats(vec![v])),
        ..Default::default()
    });
    let b = c.collate(&reg, 0, &Device::Cpu).unwrap();
    assert_eq!(b.labels.to_vec1::<f32>().unwrap(), [0.5, -1.0]);
    let multi = [Example {
        input_ids: vec![1],
        label: Some(TaskLabel::Floats(vec![1.0, 0.0, 1.0])),
        ..Default::default()
    }];
    assert_eq!(
        c.collate(&multi, 0, &Device::Cpu).unwrap().labels.dims(),
        &[1, 3]
    );
    let cls = [Example::classification(vec![1, 2], 3)];
    assert_eq!(
        c.collate(&cls, 0, &Device::Cpu)
            .unwrap()
            .labels
            .to_vec1::<i64>()
            .unwrap(),
        [3]
    );
    // mixed kinds and missing labels are refused with a reason
    let mixed = [cls[0].clone(), reg[0].clone()];
    let err = c.collate(&mixed, 0, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("mixes kinds of labels"), "{err}");
    let none = Example {
        input_ids: vec![1],
        ..Default::default()
    };
    let err = c
        .collate(&[none.clone(), cls[0].clone()], 0, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("example 0 has no label while others have one"),
        "{err}"
    );
    // no labels at all: inputs only, for predict
    let b = c.collate(&[none], 0, &Device::Cpu).unwrap();
    assert!(!b.labelled && b.num_label_tokens == 0);
    assert!(b.forward_args().labels.is_none());
}

#[test]
fn datasets_with_a_label_column_or_answer_positions_become_task_examples() {
    let ds = Dataset::from_columns(vec![
        Column::new("input_ids", vec![json!([1, 2, 3]), json!([4, 5])]),
        Column::new("label", vec![json!(1), json!(0)]),
    ])
    .unwrap();
    let TrainData::Examples(ex) = TrainData::from_dataset(&ds).unwrap() else {
        panic!("rows")
    };
    assert_eq!(ex[0].label, Some(TaskLabel::Class(1)));
    assert!(ex[0].labels.is_none());
    // A label column read from CSV as text: digits are class ids (as `datasets` types them).
    let ds = Dataset::from_columns(vec![
        Column::new("input_ids", vec![json!([1, 2, 3]), json!([4, 5])]),
        Column::new("label", vec![json!("1"), json!("0")]),
    ])
    .unwrap();
    let TrainData::Examples(ex) = TrainData::from_dataset(&ds).unwrap() else {
        panic!("rows")
    };
    assert_eq!(ex[0].label, Some(TaskLabel::Class(1)));
    assert_eq!(ex[1].label, Some(TaskLabel::Class(0)));
    let ds = Dataset::from_columns(vec![
        Column::new("input_ids", vec![json!([1, 2, 3])]),
        Column::new("token_type_ids", vec![json!([0, 1, 1])]),
        Column::new("start_positions", vec![json!(1)]),
        Column::new("end_positions", vec![json!(2)]),
    ])
    .unwrap();
    let TrainData::Examples(ex) = TrainData::from_dataset(&ds).unwrap() else {
        panic!("rows")
    };
    assert_eq!(ex[0].label, Some(TaskLabel::Span { start: 1, end: 2 }));
    assert_eq!(ex[0].token_type_ids, Some(vec![0, 1, 1]));
    let ds = Dataset::from_columns(vec![
        Column::new("input_ids", vec![json!([1, 2, 3])]),
        Column::new("label", vec![json!("positive")]),
    ])
    .unwrap();
    let err = TrainData::from_dataset(&ds).unwrap_err().to_string();
    assert!(
        err.contains("row 0 of column `label`") && err.contains("label2id"),
        "{err}"
    );
}
