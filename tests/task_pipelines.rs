//! `pipeline("text-classification")` and `pipeline("question-answering")` against transformers'
//! pipelines on tiny random BERT models with a small WordPiece vocabulary: expected outputs from
//! tests/fixtures/make_pipelines.py (transformers 4.57, whose QA pipeline 5.x removed).
use std::path::PathBuf;

use massivetext::generate::{
    Answer, ClassificationLabel, Pipeline, PipelineOutput, QuestionAnsweringPipeline,
};
use massivetext::prelude::*;
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pipelines")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir("expected.json")).unwrap()).unwrap()
}

fn check_labels(ours: &[ClassificationLabel], theirs: &Value, what: &str) {
    let theirs = theirs.as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{what}");
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o.label, t["label"].as_str().unwrap(), "{what}");
        let s = t["score"].as_f64().unwrap() as f32;
        assert!((o.score - s).abs() <= 1e-5, "{what}: {} vs {s}", o.score);
    }
}

#[test]
fn text_classification_equals_transformers_softmax_and_sigmoid() {
    let e = expected();
    let Pipeline::TextClassification(mut clf) =
        pipeline("text-classification", dir("text_cls").to_str().unwrap()).unwrap()
    else {
        panic!("a text-classification pipeline")
    };
    let texts = e["text_cls"]["texts"].as_array().unwrap();
    for (i, t) in texts.iter().enumerate() {
        let t = t.as_str().unwrap();
        check_labels(&clf.call(t).unwrap(), &e["text_cls"]["top1"][i], t);
    }
    clf.top_k = None;
    for (i, t) in texts.iter().enumerate() {
        let t = t.as_str().unwrap();
        check_labels(&clf.call(t).unwrap(), &e["text_cls"]["all"][i], t);
    }
    // problem_type multi_label_classification: sigmoid scores
    let Pipeline::TextClassification(mut multi) =
        pipeline("sentiment-analysis", dir("text_multi").to_str().unwrap()).unwrap()
    else {
        panic!("a text-classification pipeline")
    };
    multi.top_k = None;
    for (i, t) in texts.iter().enumerate() {
        let t = t.as_str().unwrap();
        check_labels(&multi.call(t).unwrap(), &e["text_multi"]["all"][i], t);
    }
}

#[test]
fn question_answering_equals_transformers_across_spans_and_settings() {
    let e = expected();
    let p = pipeline("question-answering", dir("qa").to_str().unwrap()).unwrap();
    let Pipeline::QuestionAnswering(base) = p.clone() else {
        panic!("a question-answering pipeline")
    };
    let base: QuestionAnsweringPipeline = base.with_max_seq_len(40, 10);
    let mut n = 0;
    for case in e["qa"].as_array().unwrap() {
        let mut qa = base.clone();
        if let Some(k) = case.get("top_k") {
            qa.top_k = k.as_u64().unwrap() as usize;
        }
        if let Some(k) = case.get("max_answer_len") {
            qa.max_answer_len = k.as_u64().unwrap() as usize;
        }
        let (q, c) = (
            case["question"].as_str().unwrap(),
            case["context"].as_str().unwrap(),
        );
        let ours: Vec<Answer> = qa.call(q, c).unwrap();
        let theirs = case["answers"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{q} {case:?}");
        for (o, t) in ours.iter().zip(theirs) {
            assert_eq!(o.answer, t["answer"].as_str().unwrap(), "{q}");
            assert_eq!(o.start as u64, t["start"].as_u64().unwrap(), "{q}");
            assert_eq!(o.end as u64, t["end"].as_u64().unwrap(), "{q}");
            let s = t["score"].as_f64().unwrap() as f32;
            assert!(
                (o.score - s).abs() <= 1e-6 + 1e-4 * s,
                "{q}: {} vs {s}",
                o.score
            );
            n += 1;
        }
    }
    assert!(n >= 15, "{n}");
    // the enum's entry point, and a clear error for the one-text call
    let PipelineOutput::QuestionAnswering(a) = p.answer("who?", "Anna met Bob.").unwrap() else {
        panic!("answers")
    };
    assert_eq!(a.len(), 1);
    let err = p.call("who?").unwrap_err().to_string();
    assert!(err.contains("answer(question, context)"), "{err}");
    let mut bad = base.clone();
    bad.doc_stride = 40;
    assert!(
        bad.call("who?", "Anna met Bob.")
            .unwrap_err()
            .to_string()
            .contains("doc_stride")
    );
}

/// Issue 29: a pipeline from a model in memory with its tokenizer equals the one loaded from
/// the folder; options by name change what the task has and refuse what it lacks; a batch is
/// the texts one by one; the wrong model for a task is an error naming both.
#[test]
fn pipelines_from_memory_with_options_and_batches() {
    let e = expected();
    let folder = dir("text_cls");
    let model =
        AutoModelForSequenceClassification::from_pretrained(folder.to_str().unwrap()).unwrap();
    let tok = Tokenizer::from_pretrained(&folder).unwrap();
    let texts: Vec<String> = serde_json::from_value(e["text_cls"]["texts"].clone()).unwrap();
    let from_dir = pipeline("text-classification", &folder).unwrap();
    let from_memory = pipeline("text-classification", (&model, &tok)).unwrap();
    let every = PipelineOptions {
        all_labels: true,
        ..Default::default()
    };
    let all = from_memory.clone().with_options(&every).unwrap();
    let batch = all.call_batch(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(
            from_memory.call(t).unwrap(),
            from_dir.call(t).unwrap(),
            "{t}"
        );
        let PipelineOutput::TextClassification(labels) = &batch[i] else {
            panic!("labels")
        };
        check_labels(labels, &e["text_cls"]["all"][i], t);
    }
    let two = PipelineOptions {
        top_k: Some(2),
        ..Default::default()
    };
    let PipelineOutput::TextClassification(labels) = from_dir
        .clone()
        .with_options(&two)
        .unwrap()
        .call(&texts[0])
        .unwrap()
    else {
        panic!("labels")
    };
    assert_eq!(labels.len(), 2);
    // an option the task lacks, and a model of the wrong kind
    let tokens = PipelineOptions {
        max_new_tokens: Some(5),
        ..Default::default()
    };
    let err = from_dir.with_options(&tokens).err().unwrap().to_string();
    assert!(
        err.contains("text-classification") && err.contains("max_new_tokens"),
        "{err}"
    );
    let err = pipeline("fill-mask", (&model, &tok))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("AutoModelForSequenceClassification") && err.contains("AutoModelForMaskedLM"),
        "{err}"
    );
    let err = pipeline("translation", &folder).err().unwrap().to_string();
    assert!(err.contains("unknown pipeline task"), "{err}");
}
