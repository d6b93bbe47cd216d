//! Accuracy, precision / recall / F1 against scikit-learn and SQuAD EM / F1 against the
//! official v1.1 script: expected values from tests/fixtures/make_task_metrics.py.
use massivetext::metrics::{
    Average, accuracy, f1_score, precision_recall_f1, squad, squad_f1, squad_normalize_answer,
};
use serde_json::Value;

fn expected() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/task_metrics_expected.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn close(what: &str, ours: f64, theirs: &Value) {
    let t = theirs.as_f64().unwrap();
    assert!(
        (ours - t).abs() < 1e-12,
        "{what}: ours {ours}, reference {t}"
    );
}

#[test]
fn precision_recall_f1_and_accuracy_equal_scikit_learn() {
    let e = expected();
    let mut checked = 0;
    for case in e["classification"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (yt, yp) = (ints(&case["y_true"]), ints(&case["y_pred"]));
        close(
            &format!("{name} accuracy"),
            accuracy(&yp, &yt).unwrap(),
            &case["accuracy"],
        );
        for avg in ["micro", "macro", "weighted", "binary"] {
            let Some(want) = case.get(avg) else { continue };
            let s = precision_recall_f1(&yp, &yt, Average::parse(avg).unwrap()).unwrap();
            close(
                &format!("{name} {avg} precision"),
                s.precision,
                &want["precision"],
            );
            close(&format!("{name} {avg} recall"), s.recall, &want["recall"]);
            close(&format!("{name} {avg} f1"), s.f1, &want["f1"]);
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
}

#[test]
fn a_class_never_predicted_has_precision_zero_as_scikit_learn_says() {
    // y_true has class 2, nothing predicts it; class 3 is predicted and never true
    let yt = [0, 1, 2, 2, 1, 0, 2, 1];
    let yp = [0, 2, 1, 3, 1, 0, 0, 1];
    let macro_f1 = f1_score(&yp, &yt, Average::Macro).unwrap();
    assert!((macro_f1 - 0.3666666666666667).abs() < 1e-12, "{macro_f1}");
    let err = f1_score(&yp, &yt, Average::Binary { pos_label: 1 })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("at most two classes") && err.contains("Average::Macro"),
        "{err}"
    );
    let err = f1_score(&[0, 1], &[0, 1, 1], Average::Micro)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3") && err.contains("2"), "{err}");
    assert!(Average::parse("samples").is_err());
}

#[test]
fn squad_exact_match_and_f1_equal_the_official_script() {
    let e = expected();
    for case in e["squad"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let preds = strings(&case["predictions"]);
        let refs: Vec<Vec<String>> = case["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect();
        for (p, n) in preds.iter().zip(strings(&case["normalized"])) {
            assert_eq!(squad_normalize_answer(p), n, "{name}: normalize {p:?}");
        }
        for ((p, gts), want) in preds
            .iter()
            .zip(&refs)
            .zip(case["per_example_f1"].as_array().unwrap())
        {
            let best = gts.iter().map(|g| squad_f1(p, g)).fold(0.0, f64::max);
            close(&format!("{name} f1 of {p:?}"), best, want);
        }
        let s = squad(&preds, &refs).unwrap();
        close(
            &format!("{name} exact_match"),
            s.exact_match,
            &case["exact_match"],
        );
        close(&format!("{name} f1"), s.f1, &case["f1"]);
    }
}

#[test]
fn squad_empty_answers_and_bad_input() {
    // v1.1: two empty answers match exactly but have F1 0
    let s = squad(&[""], &[vec![""]]).unwrap();
    assert_eq!((s.exact_match, s.f1), (100.0, 0.0));
    let err = squad(&["x"], &[Vec::<String>::new()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no ground-truth answers"), "{err}");
    assert!(squad::<&str, &str>(&[], &[]).is_err());
}
