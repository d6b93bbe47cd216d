//! Datasets: the real corpora against Hugging Face `datasets` (tests/fixtures/make_datasets.py),
//! operations, streaming, display and every bad-input error.
use massivetext::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[path = "common/shared.rs"]
mod shared;
use shared::data;

fn expected(case: &str) -> Value {
    let text = std::fs::read_to_string("tests/fixtures/datasets_expected.json").unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[case].clone()
}

/// Compares a row with the fixture, where long strings are stored as a prefix and a length.
fn assert_row_matches(row: &Row, want: &Value) {
    for (k, w) in want.as_object().unwrap() {
        let got = &row[k];
        match w.get("prefix") {
            Some(prefix) => {
                let s = got.as_str().unwrap();
                assert!(s.starts_with(prefix.as_str().unwrap()), "column {k}");
                assert_eq!(s.chars().count() as u64, w["chars"].as_u64().unwrap());
            }
            None => assert_eq!(got, w, "column {k}"),
        }
    }
}

fn check_against_hf(case: &str, ds: &Dataset) {
    let want = expected(case);
    assert_eq!(
        ds.num_rows() as u64,
        want["num_rows"].as_u64().unwrap(),
        "{case}"
    );
    let names: Vec<String> = serde_json::from_value(want["column_names"].clone()).unwrap();
    assert_eq!(ds.column_names(), names, "{case}");
    assert_row_matches(&ds.row(0).unwrap(), &want["first_row"]);
    assert_row_matches(&ds.row(ds.num_rows() - 1).unwrap(), &want["last_row"]);
    if let Some(total) = want.get("total_chars") {
        let got: usize = ds
            .column_str("text")
            .unwrap()
            .iter()
            .map(|s| s.chars().count())
            .sum();
        assert_eq!(got as u64, total.as_u64().unwrap(), "{case}");
    }
}

fn text_with(opts: LoadOptions) -> Dataset {
    load_dataset_with("text", data("tinyshakespeare/input.txt"), &opts).unwrap()["train"].clone()
}

#[test]
fn tinyshakespeare_matches_hf_for_every_sample_by() {
    let lines = text_with(LoadOptions::default());
    assert_eq!(lines.num_rows(), 40_000);
    check_against_hf("text_line", &lines);
    let paragraphs = text_with(LoadOptions {
        sample_by: SampleBy::Paragraph,
        ..Default::default()
    });
    check_against_hf("text_paragraph", &paragraphs);
    let document = text_with(LoadOptions {
        sample_by: SampleBy::Document,
        ..Default::default()
    });
    check_against_hf("text_document", &document);
    let kept = text_with(LoadOptions {
        keep_linebreaks: true,
        ..Default::default()
    });
    check_against_hf("text_keep_linebreaks", &kept);
}

#[test]
fn wikitext_keeps_empty_lines() {
    let dd = load_dataset("text", data("wikitext-2/valid.txt")).unwrap();
    check_against_hf("wikitext_valid", &dd["train"]);
    let empty = dd["train"]
        .column_str("text")
        .unwrap()
        .iter()
        .filter(|s| s.trim().is_empty())
        .count();
    assert!(empty > 1000, "blank lines are rows: {empty}");
}

#[test]
fn empty_lines_are_kept_as_empty_strings() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "e.txt", b"a\r\n\r\nb\n\nc");
    let ds = load_dataset("text", &p).unwrap()["train"].clone();
    assert_eq!(ds.column_str("text").unwrap(), ["a", "", "b", "", "c"]);
}

#[test]
fn ag_news_without_header() {
    let opts = LoadOptions {
        has_header: false,
        ..Default::default()
    };
    let dd = load_dataset_with("csv", data("ag_news/test.csv"), &opts).unwrap();
    let ds = &dd["train"];
    check_against_hf("ag_news", ds);
    assert_eq!(ds.features()[0].1, "int64");
    for class in 1..=4 {
        let n = ds
            .column("column_0")
            .unwrap()
            .iter()
            .filter(|v| **v == json!(class))
            .count();
        assert_eq!(n, 1900);
    }
}

#[test]
fn cnn_dailymail_quoted_newlines_and_crlf() {
    let dd = load_dataset("csv", data("cnn_dailymail_sample/train_sample.csv")).unwrap();
    let ds = &dd["train"];
    check_against_hf("cnn_dailymail", ds);
    let h = ds.column_str("highlights").unwrap();
    assert!(h.iter().all(|s| !s.contains('\r')));
    assert!(h[0].contains('\n'), "quoted newline kept: {:?}", h[0]);
}

#[test]
fn sst2_jsonl_labels() {
    let dd = load_dataset("json", data("sst2/dev.jsonl")).unwrap();
    check_against_hf("sst2", &dd["train"]);
    let labels = dd["train"].column("label").unwrap();
    assert_eq!(
        labels.iter().filter(|v| v.as_str() == Some("0")).count(),
        428
    );
    assert_eq!(
        labels.iter().filter(|v| v.as_str() == Some("1")).count(),
        444
    );
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn csv_types_are_consistent_per_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.csv",
        "\u{feff}i;f;b;s;n\r\n1;2.5;true;x;\r\n2;3;False;\"a;b\";\r\n;4;;\"line\r\nbreak\";\r\n"
            .as_bytes(),
    );
    let opts = LoadOptions {
        delimiter: b';',
        ..Default::default()
    };
    let ds = load_dataset_with("csv", &p, &opts).unwrap()["train"].clone();
    assert_eq!(
        ds.features(),
        vec![
            ("i".into(), "int64"),
            ("f".into(), "float64"),
            ("b".into(), "bool"),
            ("s".into(), "string"),
            ("n".into(), "null")
        ]
    );
    assert_eq!(ds.column("i").unwrap(), &[json!(1), json!(2), Value::Null]);
    assert_eq!(
        ds.column("f").unwrap(),
        &[json!(2.5), json!(3.0), json!(4.0)]
    );
    assert_eq!(
        ds.column("b").unwrap(),
        &[json!(true), json!(false), Value::Null]
    );
    assert_eq!(ds.column("s").unwrap()[1], json!("a;b"));
    assert_eq!(ds.column("s").unwrap()[2], json!("line\r\nbreak"));
}

#[test]
fn json_array_field_and_nested_values() {
    let dir = tempfile::tempdir().unwrap();
    let arr = write(
        dir.path(),
        "a.json",
        br#"[{"a": 1, "m": {"x": [1, 2]}}, {"a": 2, "extra": true}]"#,
    );
    let ds = load_dataset("json", &arr).unwrap()["train"].clone();
    assert_eq!(ds.column_names(), ["a", "m", "extra"]);
    assert_eq!(ds.column("m").unwrap()[0], json!({"x": [1, 2]}));
    assert_eq!(ds.column("extra").unwrap(), &[Value::Null, json!(true)]);
    assert_eq!(ds.features()[1].1, "struct");
    let obj = write(
        dir.path(),
        "o.json",
        br#"{"version": 1, "data": [{"q": "a"}, {"q": "b"}]}"#,
    );
    let opts = LoadOptions {
        field: Some("data".into()),
        ..Default::default()
    };
    let ds = load_dataset_with("json", &obj, &opts).unwrap()["train"].clone();
    assert_eq!(ds.column("q").unwrap(), &[json!("a"), json!("b")]);
    let opts = LoadOptions {
        field: Some("rows".into()),
        ..Default::default()
    };
    let err = load_dataset_with("json", &obj, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no field `rows`") && err.contains("version, data"),
        "{err}"
    );
}

#[test]
fn globs_lists_and_split_maps() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a1.txt", b"one\ntwo\n");
    write(dir.path(), "a2.txt", b"three\n");
    write(dir.path(), "b.txt", b"four\n");
    let glob = dir.path().join("a*.txt");
    let dd = load_dataset("text", glob.to_str().unwrap()).unwrap();
    assert_eq!(
        dd["train"].column_str("text").unwrap(),
        ["one", "two", "three"]
    );
    let files =
        DataFiles::train([dir.path().join("a1.txt")]).split("test", [dir.path().join("b.txt")]);
    let dd = load_dataset("text", files).unwrap();
    assert_eq!(dd.split_names(), ["test", "train"]);
    assert_eq!(dd["test"].column_str("text").unwrap(), ["four"]);
    let list = vec![dir.path().join("b.txt"), dir.path().join("a2.txt")];
    assert_eq!(load_dataset("text", list).unwrap()["train"].num_rows(), 2);
}

fn numbers(n: i64) -> Dataset {
    Dataset::from_rows((0..n).map(|i| {
        let mut r = Row::new();
        r.insert("x".into(), json!(i));
        r.insert("s".into(), json!(format!("row {i}")));
        r
    }))
}

#[test]
fn select_shuffle_filter_map() {
    let ds = numbers(10);
    let sel = ds.select(&[3, 1, 3]).unwrap();
    assert_eq!(sel.column("x").unwrap(), &[json!(3), json!(1), json!(3)]);
    let a = ds.shuffle(7);
    assert_eq!(a, ds.shuffle(7), "same seed, same order");
    assert_ne!(a, ds.shuffle(8));
    let mut xs: Vec<i64> = a
        .column("x")
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    xs.sort();
    assert_eq!(xs, (0..10).collect::<Vec<_>>());
    let even = ds.filter(|r| r["x"].as_i64().unwrap() % 2 == 0);
    assert_eq!(even.num_rows(), 5);
    let doubled = ds
        .map(|mut r| {
            let x = r["x"].as_i64().unwrap();
            r.insert("y".into(), json!(2 * x));
            Ok(r)
        })
        .unwrap();
    assert_eq!(doubled.column_names(), ["x", "s", "y"]);
    assert_eq!(doubled.column("y").unwrap()[4], json!(8));
}

#[test]
fn batched_map_may_change_rows_and_columns() {
    let ds = numbers(10);
    // Each batch of 4 becomes one row holding the batch's sum: 3 batches → 3 rows.
    let sums = ds
        .map_batched(4, |batch| {
            let total: i64 = batch.column("x")?.iter().map(|v| v.as_i64().unwrap()).sum();
            Dataset::from_columns(vec![Column::new("sum", vec![json!(total)])])
        })
        .unwrap();
    assert_eq!(
        sums.column("sum").unwrap(),
        &[json!(6), json!(22), json!(17)]
    );
}

#[test]
fn train_test_split_and_concatenate() {
    let ds = numbers(10);
    let dd = ds.train_test_split(0.25, 42).unwrap();
    assert_eq!(dd["test"].num_rows(), 3, "ceil(0.25 * 10) as HF does");
    assert_eq!(dd["train"].num_rows(), 7);
    let both = concatenate(&[dd["train"].clone(), dd["test"].clone()]).unwrap();
    let mut xs: Vec<i64> = both
        .column("x")
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    xs.sort();
    assert_eq!(
        xs,
        (0..10).collect::<Vec<_>>(),
        "the splits are disjoint and complete"
    );
    assert!(ds.train_test_split(0.0, 1).is_err());
    assert!(ds.train_test_split(10.0, 1).is_err());
    let err = concatenate(&[ds.clone(), ds.remove_columns(&["s"]).unwrap()]).unwrap_err();
    assert!(
        err.to_string().contains("dataset 1 has columns [x]"),
        "{err}"
    );
}

#[test]
fn rename_remove_and_write_back() {
    let ds = numbers(3).rename_column("s", "text").unwrap();
    assert_eq!(ds.column_names(), ["x", "text"]);
    let dir = tempfile::tempdir().unwrap();
    let jp = dir.path().join("out.jsonl");
    ds.to_json(&jp).unwrap();
    let back = load_dataset("json", &jp).unwrap()["train"].clone();
    assert_eq!(back, ds);
    let cp = dir.path().join("out.csv");
    ds.to_csv(&cp).unwrap();
    let back = load_dataset("csv", &cp).unwrap()["train"].clone();
    assert_eq!(back, ds);
    assert!(!dir.path().join("out.csv.tmp").exists());
    let only = ds.remove_columns(&["x"]).unwrap();
    assert_eq!(only.column_names(), ["text"]);
}

#[test]
fn streaming_map_filter_take() {
    let stream = load_streaming("text", data("tinyshakespeare/input.txt")).unwrap();
    assert_eq!(stream.iter().count(), 40_000);
    let speakers = stream
        .filter(|r| r["text"].as_str().is_some_and(|t| t.ends_with(':')))
        .map(|mut r| {
            let t = r["text"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches(':')
                .to_string();
            r.insert("speaker".into(), json!(t));
            Ok(r)
        })
        .take(3);
    let rows: Vec<Row> = speakers.iter().collect::<Result<_>>().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["speaker"], json!("First Citizen"));
    assert_eq!(rows[1]["speaker"], json!("All"));
    let sst = load_streaming("json", data("sst2/dev.jsonl")).unwrap();
    assert_eq!(
        sst.iter()
            .filter(|r| r.as_ref().unwrap()["label"] == json!("1"))
            .count(),
        444
    );
    let ag = load_streaming_with(
        "csv",
        data("ag_news/test.csv"),
        &LoadOptions {
            has_header: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ag.skip(7599).iter().count(), 1);
}

#[test]
fn display_in_terminal_and_notebook() {
    let ds = numbers(7);
    assert_eq!(
        ds.to_string(),
        "Dataset({ features: {'x': int64, 's': string}, num_rows: 7 })"
    );
    let html = ds.to_html();
    assert!(html.contains("7 rows × 2 columns"), "{html}");
    assert!(
        html.contains("<th>x<br><small>int64</small></th>"),
        "{html}"
    );
    assert!(
        html.contains("<td>row 4</td>") && !html.contains("<td>row 5</td>"),
        "{html}"
    );
    assert!(html.contains("… 2 more rows"), "{html}");
    let dd = ds.train_test_split(2, 0).unwrap();
    assert!(dd.to_string().contains("test: Dataset({"), "{dd}");
    assert!(dd.to_html().contains("<h4>train</h4>"));
}

// ---- bad input: one test each ----

#[test]
fn missing_file_is_named() {
    let err = load_dataset("text", "no/such/file.txt").unwrap_err();
    assert!(err.to_string().contains("no/such/file.txt"), "{err}");
}

#[test]
fn glob_matching_nothing() {
    let err = load_dataset("text", "no/such/dir/*.txt")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no/such/dir/*.txt") && err.contains("matches no file"),
        "{err}"
    );
}

#[test]
fn csv_row_with_wrong_field_count() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.csv", b"a,b\n1,2\n3,4,5\n");
    let err = load_dataset("csv", &p).unwrap_err().to_string();
    assert!(err.contains("bad.csv:3:"), "{err}");
    assert!(err.contains("expected 2 fields (a, b), found 3"), "{err}");
}

#[test]
fn malformed_json_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.jsonl", b"{\"a\": 1}\n{\"a\": }\n");
    let err = load_dataset("json", &p).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:2:7"), "{err}");
    let stream_err = load_streaming("json", &p)
        .unwrap()
        .iter()
        .find_map(|r| r.err())
        .unwrap();
    assert!(
        stream_err.to_string().contains("bad.jsonl:2:7"),
        "{stream_err}"
    );
}

#[test]
fn invalid_utf8_names_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "latin1.txt", b"ok line\ncaf\xe9\n");
    let err = load_dataset("text", &p).unwrap_err().to_string();
    assert!(
        err.contains("latin1.txt") && err.contains("byte offset 11"),
        "{err}"
    );
    let stream_err = load_streaming("text", &p)
        .unwrap()
        .iter()
        .find_map(|r| r.err())
        .unwrap();
    assert!(
        stream_err.to_string().contains("byte offset 11"),
        "{stream_err}"
    );
}

#[test]
fn unknown_kind_lists_supported() {
    let err = load_dataset("xml", "x").unwrap_err();
    assert!(
        err.to_string()
            .contains("supported kinds: text, csv, json, parquet, arrow"),
        "{err}"
    );
}

#[test]
fn unknown_column_lists_available() {
    let dd = load_dataset("json", data("sst2/dev.jsonl")).unwrap();
    let err = dd["train"].column("text").unwrap_err().to_string();
    assert!(
        err.contains("`text`") && err.contains("available columns: sentence, label"),
        "{err}"
    );
    let err = dd.get("validation").unwrap_err().to_string();
    assert!(err.contains("available splits: train"), "{err}");
}

// ---- command line ----

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_massivetext"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_dataset_info_json() {
    let p = data("ag_news/test.csv");
    let out = cli(&[
        "dataset",
        "info",
        "--kind",
        "csv",
        "--no-header",
        "--json",
        p.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"splits": {"train": {"num_rows": 7600, "columns": {"column_0": "int64", "column_1": "string", "column_2": "string"}}}})
    );
    let p = data("sst2/dev.jsonl");
    let out = cli(&[
        "dataset",
        "head",
        "-n",
        "1",
        "--kind",
        "json",
        p.to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            r#"{"sentence":"it 's a charming and often affecting journey . ","label":"1"}"#
        ),
        "{text}"
    );
}

#[test]
fn cli_errors_exit_nonzero_with_message() {
    let out = cli(&["dataset", "info", "--kind", "text", "missing.txt"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("missing.txt"), "{err}");
    let out = cli(&["dataset", "info", "--kind", "xml", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("text, csv, json"), "{err}");
}
