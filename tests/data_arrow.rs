//! Datasets on Arrow: interop with Hugging Face `datasets`, pyarrow and pandas through the
//! files tests/fixtures/make_arrow.py wrote, `datasets` itself reading the folders our writer
//! produces (live, through the reference Python), Parquet, the load cache, and operations over
//! memory-mapped data.
use massivetext::data::arrow_schema::DataType;
use massivetext::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[path = "common/reference.rs"]
mod reference;
#[path = "common/written.rs"]
mod written;
use written::{our_dataset, our_dict};

fn fixture(rel: &str) -> PathBuf {
    Path::new("tests/fixtures/arrow").join(rel)
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every test of this binary shares one cache folder under the target dir, so tests never
/// write into the user's cache and never delete a folder another test is reading.
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("massivetext-datasets-cache");
        // SAFETY: set once, before any test of this binary reads it.
        unsafe { std::env::set_var("MASSIVETEXT_DATASETS_CACHE", dir) };
    });
}

/// A type as pyarrow prints it (`str(field.type)`), to compare with what Python recorded.
fn pa_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "bool".into(),
        DataType::Null => "null".into(),
        DataType::List(f) => format!("list<{}: {}>", f.name(), pa_type(f.data_type())),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), pa_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}

fn rows_json(ds: &Dataset) -> Value {
    Value::Array(ds.iter().map(Value::from).collect())
}

fn types_json(ds: &Dataset) -> Value {
    Value::Object(
        ds.arrow_schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), json!(pa_type(f.data_type()))))
            .collect(),
    )
}

/// Rows, column names and Arrow types as Python recorded them.
fn assert_like_python(ds: &Dataset, want: &Value) {
    let names: Vec<String> = serde_json::from_value(want["column_names"].clone()).unwrap();
    assert_eq!(ds.column_names(), names);
    assert_eq!(types_json(ds), want["arrow_types"]);
    assert_eq!(rows_json(ds), want["rows"]);
}

#[test]
fn python_saved_dataset_opens_with_the_same_rows_and_types() {
    let ds = Dataset::load_from_disk(fixture("hf_dataset")).unwrap();
    let want = &expected()["hf_dataset"];
    assert_like_python(&ds, want);
    assert_eq!(
        ds.features(),
        [
            ("text", "string"),
            ("label", "int64"),
            ("score", "float64"),
            ("flag", "bool"),
            ("ids", "list"),
            ("words", "list"),
            ("meta", "struct"),
            ("empty", "null")
        ]
        .map(|(n, t)| (n.to_string(), t))
    );
    assert_eq!(
        ds.column_str("text").unwrap_err().to_string(),
        "row 2 of column `text` is null, not a string"
    );
}

#[test]
fn python_saved_dict_opens_with_each_split() {
    let dd = DatasetDict::load_from_disk(fixture("hf_dict")).unwrap();
    let want = &expected()["hf_dict"];
    assert_eq!(dd.split_names(), ["test", "train"]);
    for (name, ds) in dd.iter() {
        assert_like_python(ds, &want[name.as_str()]);
    }
    let err = Dataset::load_from_disk(fixture("hf_dict"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("DatasetDict::load_from_disk"), "{err}");
    let err = DatasetDict::load_from_disk(fixture("hf_dataset"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Dataset::load_from_disk"), "{err}");
}

#[test]
fn arrow_kind_reads_the_stream_files_datasets_writes() {
    init();
    let file = fixture("hf_dataset/data-00000-of-00001.arrow");
    let dd = load_dataset("arrow", &file).unwrap();
    assert_eq!(rows_json(&dd["train"]), expected()["hf_dataset"]["rows"]);
    let opts = LoadOptions {
        columns: Some(vec!["label".into(), "text".into()]),
        ..Default::default()
    };
    let ds = load_dataset_with("arrow", &file, &opts).unwrap()["train"].clone();
    assert_eq!(ds.column_names(), ["label", "text"]);
    assert_eq!(ds.row(3).unwrap()["text"], json!("naïve ☃"));
}

#[test]
fn parquet_from_pandas_and_pyarrow_reads_the_same_rows_and_types() {
    init();
    let all = expected();
    for name in ["pandas.parquet", "pyarrow.parquet"] {
        let dd = load_dataset("parquet", fixture(name)).unwrap();
        assert_like_python(&dd["train"], &all[name]);
    }
    let opts = LoadOptions {
        columns: Some(vec!["name".into(), "id".into()]),
        ..Default::default()
    };
    let ds =
        load_dataset_with("parquet", fixture("pandas.parquet"), &opts).unwrap()["train"].clone();
    assert_eq!(ds.column_names(), ["name", "id"]);
    assert_eq!(
        ds.column("id").unwrap(),
        &[json!(1), json!(2), Value::Null, json!(4)]
    );
    let opts = LoadOptions {
        columns: Some(vec!["nope".into()]),
        ..Default::default()
    };
    let err = load_dataset_with("parquet", fixture("pandas.parquet"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pandas.parquet")
            && err.contains("no column `nope`")
            && err.contains("id, x, name, ok, tokens"),
        "{err}"
    );
    let err = load_dataset("parquet", fixture("expected.json"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected.json") && err.contains("not a readable Parquet file"),
        "{err}"
    );
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `our_dataset` and `our_dict` saved by our `save_to_disk` into a fresh folder (kept while the
/// returned guard lives).
fn save_ours() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (ds_dir, dict_dir) = (
        tmp.path().join("ours_dataset"),
        tmp.path().join("ours_dict"),
    );
    our_dataset().save_to_disk(&ds_dir).unwrap();
    our_dict().save_to_disk(&dict_dir).unwrap();
    (tmp, ds_dir, dict_dir)
}

/// Our writer is deterministic: the folders it writes now are byte for byte the ones committed
/// under tests/fixtures/arrow/ours_*. A change of the written bytes that is intended is
/// committed with `cargo run --example write_fixtures`; the test never rewrites them.
#[test]
fn our_folders_are_byte_for_byte_the_committed_ones() {
    let (_tmp, ds_dir, dict_dir) = save_ours();
    for (dir, name) in [(&ds_dir, "ours_dataset"), (&dict_dir, "ours_dict")] {
        assert!(
            files_of(dir) == files_of(&fixture(name)),
            "save_to_disk wrote other bytes than tests/fixtures/arrow/{name}: if that is \
             intended, `cargo run --example write_fixtures` and commit the folder"
        );
    }
}

/// Hugging Face `datasets.load_from_disk` (live, through the reference Python) opens the
/// folders our `save_to_disk` writes as the dataset and the dict Python built itself: the same
/// rows, features, Arrow types and column names.
#[test]
fn our_folders_open_in_python_datasets_as_the_ones_python_built() {
    let (_tmp, ds_dir, dict_dir) = save_ours();
    let out = reference::run_script(
        "make_arrow.py",
        &[
            "--verify".as_ref(),
            ds_dir.as_os_str(),
            dict_dir.as_os_str(),
        ],
    );
    let live: Value = serde_json::from_str(&out).unwrap();
    let hf = expected();
    for key in ["rows", "features", "arrow_types", "column_names"] {
        assert_eq!(live[0][key], hf["hf_dataset"][key], "{key}");
        for split in ["train", "test"] {
            assert_eq!(
                live[1][split][key], hf["hf_dict"][split][key],
                "{split} {key}"
            );
        }
    }
}

#[test]
fn save_load_and_parquet_round_trip_with_an_indices_mapping() {
    let ds = our_dataset().shuffle(3);
    let tmp = tempfile::tempdir().unwrap();
    ds.save_to_disk(tmp.path().join("d")).unwrap();
    let back = Dataset::load_from_disk(tmp.path().join("d")).unwrap();
    assert_eq!(back, ds);
    assert_eq!(types_json(&back), expected()["hf_dataset"]["arrow_types"]);
    ds.to_parquet(tmp.path().join("d.parquet")).unwrap();
    assert!(!tmp.path().join("d.parquet.tmp").exists());
    let back = load_dataset("parquet", tmp.path().join("d.parquet")).unwrap();
    assert_eq!(back["train"], ds);
}

#[test]
fn operations_on_memory_mapped_data_match_the_rows() {
    let ds = Dataset::load_from_disk(fixture("hf_dataset")).unwrap();
    let labels = |d: &Dataset| d.column("label").unwrap().to_vec();
    let sel = ds.select(&[4, 0, 0]).unwrap();
    assert_eq!(labels(&sel), [json!(1u64 << 40), json!(0), json!(0)]);
    let shuffled = ds.shuffle(1).select(&[0, 1]).unwrap();
    let perm: Vec<Value> = labels(&ds.shuffle(1))[..2].to_vec();
    assert_eq!(
        labels(&shuffled),
        perm,
        "a select over a shuffle composes the mappings"
    );
    let kept = ds.filter(|r| r["flag"] == json!(true));
    assert_eq!(labels(&kept), [json!(0), json!(-5)]);
    let dd = ds.train_test_split(2, 0).unwrap();
    let both = concatenate(&[dd["train"].clone(), dd["test"].clone(), ds.take(1)]).unwrap();
    assert_eq!(both.num_rows(), 6);
    let mut got: Vec<String> = both
        .iter()
        .take(5)
        .map(|r| Value::from(r).to_string())
        .collect();
    let mut all: Vec<String> = ds.iter().map(|r| Value::from(r).to_string()).collect();
    got.sort();
    all.sort();
    assert_eq!(got, all);
    assert_eq!(both.row(5).unwrap(), ds.row(0).unwrap());
    let renamed = ds
        .rename_column("label", "y")
        .unwrap()
        .remove_columns(&["meta"])
        .unwrap();
    assert_eq!(renamed.column("y").unwrap(), ds.column("label").unwrap());
    let added = ds
        .shuffle(2)
        .with_column("k", (0..5).map(|i| json!(i)).collect())
        .unwrap();
    assert_eq!(added.column("k").unwrap()[3], json!(3));
    assert_eq!(
        added.column("text").unwrap(),
        ds.shuffle(2).column("text").unwrap()
    );
    // Columns of other types (null here, int64 there) are re-typed together.
    let ints = Dataset::from_rows([json!({"a": 1})].map(|v| v.as_object().unwrap().clone()));
    let nulls = Dataset::from_rows([json!({"a": null})].map(|v| v.as_object().unwrap().clone()));
    let mixed = concatenate(&[nulls, ints]).unwrap();
    assert_eq!(mixed.column("a").unwrap(), &[Value::Null, json!(1)]);
    assert_eq!(mixed.features()[0].1, "int64");
}

#[test]
fn mixed_type_columns_keep_their_values() {
    let rows = [
        json!({"v": 1}),
        json!({"v": "one"}),
        json!({"v": [1, "x"]}),
        json!({"v": null}),
    ];
    let ds = Dataset::from_rows(rows.iter().map(|v| v.as_object().unwrap().clone()));
    assert_eq!(ds.features(), [("v".to_string(), "mixed")]);
    let tmp = tempfile::tempdir().unwrap();
    ds.save_to_disk(tmp.path()).unwrap();
    let back = Dataset::load_from_disk(tmp.path()).unwrap();
    assert_eq!(back.column("v").unwrap(), rows.map(|r| r["v"].clone()));
}

#[test]
fn load_dataset_caches_the_arrow_form_and_reuses_it() {
    init();
    let root = PathBuf::from(std::env::var_os("MASSIVETEXT_DATASETS_CACHE").unwrap()).join("text");
    let entries = || -> Vec<PathBuf> {
        std::fs::read_dir(&root)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("t.txt");
    std::fs::write(&file, "one\ntwo\n").unwrap();
    let before = entries();
    let first = load_dataset("text", &file).unwrap();
    let new: Vec<PathBuf> = entries()
        .into_iter()
        .filter(|e| !before.contains(e))
        .collect();
    assert_eq!(new.len(), 1, "one cache entry: {new:?}");
    assert!(new[0].join("state.json").is_file());
    // The second load reads the entry, not the file: swap the entry's rows to see it.
    Dataset::from_columns(vec![Column::new("text", vec![json!("cached")])])
        .unwrap()
        .save_to_disk(&new[0])
        .unwrap();
    let second = load_dataset("text", &file).unwrap();
    assert_eq!(second["train"].column_str("text").unwrap(), ["cached"]);
    assert_eq!(first["train"].column_str("text").unwrap(), ["one", "two"]);
    // keep_in_memory parses again; a changed file is a new key.
    let opts = LoadOptions {
        keep_in_memory: true,
        ..Default::default()
    };
    let fresh = load_dataset_with("text", &file, &opts).unwrap();
    assert_eq!(fresh["train"].column_str("text").unwrap(), ["one", "two"]);
    std::fs::write(&file, "one\ntwo\nthree\n").unwrap();
    let changed = load_dataset("text", &file).unwrap();
    assert_eq!(changed["train"].num_rows(), 3);
}

#[test]
fn bad_folders_and_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Dataset::load_from_disk(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("state.json") && err.contains("save_to_disk"),
        "{err}"
    );
    std::fs::write(
        tmp.path().join("state.json"),
        "{\"_data_files\": [{\"filename\": \"x.arrow\"}]}",
    )
    .unwrap();
    std::fs::write(tmp.path().join("x.arrow"), "not arrow").unwrap();
    let err = Dataset::load_from_disk(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("x.arrow") && err.contains("not a readable Arrow IPC file"),
        "{err}"
    );
    let err = load_streaming("parquet", fixture("pandas.parquet"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("streaming reads text, csv, json"), "{err}");
}
