use massivetext::prelude::*;

#[test]
fn tinyshakespeare_has_40000_lines() {
    let dd = load_dataset("text", &["../shared/data/tinyshakespeare/input.txt"]).unwrap();
    assert_eq!(dd["train"].num_rows(), 40_000);
    assert_eq!(dd["train"].column_names(), vec!["text"]);
}

#[test]
fn missing_file_is_named() {
    let err = load_dataset("text", &["no/such/file.txt"]).unwrap_err();
    assert!(err.to_string().contains("no/such/file.txt"), "{err}");
}

#[test]
fn unknown_kind_lists_supported() {
    let err = load_dataset("parquet", &["x"]).unwrap_err();
    assert!(
        err.to_string().contains("supported kinds: text, csv, json"),
        "{err}"
    );
}

#[test]
fn sst2_jsonl_labels() {
    let dd = load_dataset("json", &["../shared/data/sst2/dev.jsonl"]).unwrap();
    let labels = dd["train"].column("label").unwrap();
    assert_eq!(labels.len(), 872);
    assert_eq!(
        labels.iter().filter(|v| v.as_str() == Some("0")).count(),
        428
    );
    assert_eq!(
        labels.iter().filter(|v| v.as_str() == Some("1")).count(),
        444
    );
}

#[test]
fn cnn_dailymail_csv_has_100_records() {
    let dd = load_dataset(
        "csv",
        &["../shared/data/cnn_dailymail_sample/train_sample.csv"],
    )
    .unwrap();
    let ds = &dd["train"];
    assert_eq!(ds.num_rows(), 100);
    assert_eq!(
        ds.column_names(),
        vec!["Unnamed: 0", "id", "article", "highlights"]
    );
    let h = ds.column("highlights").unwrap()[0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(h.contains('\n'), "quoted newline kept: {h:?}");
    assert!(!h.contains('\r'));
}

#[test]
fn unknown_column_lists_available() {
    let dd = load_dataset("json", &["../shared/data/sst2/dev.jsonl"]).unwrap();
    let err = dd["train"].column("text").unwrap_err().to_string();
    assert!(
        err.contains("sentence, label") || err.contains("label, sentence"),
        "{err}"
    );
}

#[test]
fn malformed_json_names_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.jsonl");
    std::fs::write(&p, "{\"a\": 1}\n{\"a\": }\n").unwrap();
    let err = load_dataset("json", &[&p]).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:2:"), "{err}");
}
