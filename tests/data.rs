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
    assert!(err.to_string().contains("supported kinds: text"), "{err}");
}
