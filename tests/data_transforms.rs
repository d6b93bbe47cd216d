//! Dataset transforms at scale (issue 34): `map` and `filter` in their row, batched, column
//! and parallel forms give the same rows; values keep their types through chunked building;
//! the transform cache returns the same rows again and a failing closure leaves no entry.
use massivetext::prelude::*;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The transform cache of this test binary, under the target dir (never the user's cache).
fn cache_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("transform-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // SAFETY: set once, before any test of this binary reads it (every test calls this first)
        unsafe { std::env::set_var("MASSIVETEXT_DATASETS_CACHE", &root) };
        root
    })
    .clone()
}

fn row(v: Value) -> Row {
    v.as_object().unwrap().clone().into()
}

/// `n` rows: text, an int label, an optional int, a list and a struct.
fn sample(n: usize) -> Dataset {
    Dataset::from_rows((0..n).map(|i| {
        row(json!({
            "text": "word ".repeat(i % 13),
            "label": (i % 3) as i64,
            "maybe": if i % 5 == 0 { Value::Null } else { json!(i) },
            "ids": (0..i % 4).collect::<Vec<_>>(),
            "meta": {"k": i % 2 == 0, "s": format!("r{i}")},
        }))
    }))
}

/// The expected output of the "add n" transforms: every row with `n` = its text's length.
fn with_n(ds: &Dataset) -> Dataset {
    Dataset::from_rows(ds.iter().map(|mut r| {
        let n = r["text"].as_str().unwrap().len();
        r.insert("n".into(), json!(n));
        r
    }))
}

fn add_n(mut r: Row) -> Result<Row> {
    let n = r.try_get("text")?.as_str().unwrap_or("").len();
    r.insert("n".into(), json!(n));
    Ok(r)
}

fn add_n_batch(b: Dataset) -> Result<Dataset> {
    let n: Vec<usize> = b.column_str("text")?.iter().map(|s| s.len()).collect();
    b.with_column("n", n)
}

#[test]
fn map_forms_give_the_same_rows() {
    cache_root();
    let ds = sample(5_003);
    let want = with_n(&ds);
    let row = ds.map(add_n).unwrap();
    assert_eq!(row, want);
    for num_proc in [1, 2, 3] {
        let opts = MapOptions {
            num_proc,
            writer_batch_size: 97,
            batch_size: 64,
            ..Default::default()
        };
        assert_eq!(
            ds.map_with(add_n, &opts).unwrap(),
            want,
            "map, num_proc {num_proc}"
        );
        assert_eq!(
            ds.map_batched_with(add_n_batch, &opts).unwrap(),
            want,
            "map_batched, num_proc {num_proc}"
        );
        assert_eq!(
            ds.map_column_with("text", "n", |s: &str| s.len(), &opts)
                .unwrap(),
            want,
            "map_column, num_proc {num_proc}"
        );
    }
    assert_eq!(ds.map_batched(1000, add_n_batch).unwrap(), want);
    assert_eq!(ds.map_column("text", "n", |s: &str| s.len()).unwrap(), want);
    // the column helper types its output as the closure returns it, with no JSON
    let n = ds
        .map_column("text", "n", |s: &str| s.len() as u32)
        .unwrap();
    assert_eq!(n.features().last().unwrap(), &("n".to_string(), "uint32"));
    // over an indices mapping (a shuffle) the forms agree with the flattened dataset
    let shuffled = ds.shuffle(7);
    let want = with_n(&shuffled.flatten_indices().unwrap());
    let par = MapOptions {
        num_proc: 2,
        writer_batch_size: 50,
        ..Default::default()
    };
    assert_eq!(shuffled.map_with(add_n, &par).unwrap(), want);
    assert_eq!(shuffled.map_batched_with(add_n_batch, &par).unwrap(), want);
    assert_eq!(
        shuffled
            .map_column_with("text", "n", |s: &str| s.len(), &par)
            .unwrap(),
        want
    );
}

/// A row map whose closure reshapes rows differently from row to row (adds columns, drops one,
/// returns a new map in another order): every row it is given has exactly the input's columns
/// in order (the rows of a chunk are reused), and every form gives the rows the closure made.
#[test]
fn row_maps_that_reshape_rows_see_only_the_input_columns() {
    cache_root();
    let ds = sample(2_503).shuffle(5);
    let names: Vec<String> = ds.column_names();
    let f = |r: Row| -> Result<Row> {
        let keys: Vec<&String> = r.keys().collect();
        if keys
            .iter()
            .map(|k| k.as_str())
            .ne(names.iter().map(String::as_str))
        {
            return Err(Error::InvalidArgument(format!(
                "the closure was given {keys:?}"
            )));
        }
        let i = r["meta"]["s"].as_str().unwrap()[1..]
            .parse::<usize>()
            .unwrap();
        Ok(match i % 4 {
            0 => {
                let mut r = r;
                r.insert("x".into(), json!(i));
                r.insert("y".into(), json!(format!("y{i}")));
                r
            }
            1 => {
                let mut r = r;
                r.shift_remove("text");
                r
            }
            2 => r.into_iter().rev().collect(),
            _ => r,
        })
    };
    let want = Dataset::from_rows(ds.iter().map(|r| f(r).unwrap()));
    assert_eq!(ds.map(f).unwrap(), want, "map");
    for (num_proc, writer_batch_size) in [(1, 7), (1, 1000), (2, 7)] {
        let opts = MapOptions {
            num_proc,
            writer_batch_size,
            ..Default::default()
        };
        assert_eq!(
            ds.map_with(f, &opts).unwrap(),
            want,
            "map_with num_proc {num_proc} writer_batch_size {writer_batch_size}"
        );
    }
    // a failure in a late chunk names its row, whichever thread filled it
    let fail_at = ds.num_rows() - 3;
    let mut seen = 0;
    let err = ds
        .map(|r| {
            seen += 1;
            if seen == fail_at + 1 {
                Err(Error::InvalidArgument("row refused".into()))
            } else {
                Ok(r)
            }
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("row {fail_at}")), "{err}");
}

#[test]
fn filter_forms_give_the_same_rows() {
    cache_root();
    let ds = sample(4_001).shuffle(3);
    let keep = |r: &Row| r["text"].as_str().unwrap().len() > 20 && r["label"] != json!(1);
    let want: Vec<Row> = ds.iter().filter(|r| keep(r)).collect();
    assert!(!want.is_empty() && want.len() < ds.num_rows());
    let check = |got: Dataset, form: &str| {
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{form}");
    };
    check(ds.filter(keep), "filter");
    check(ds.try_filter(|r| Ok(keep(r))).unwrap(), "try_filter");
    let mask = |b: &Dataset| -> Result<Vec<bool>> {
        let text = b.column_str("text")?;
        let label = b.column("label")?;
        Ok(text
            .iter()
            .zip(label)
            .map(|(t, l)| t.len() > 20 && *l != json!(1))
            .collect())
    };
    check(ds.filter_batched(333, mask).unwrap(), "filter_batched");
    for num_proc in [1, 2, 3] {
        let opts = MapOptions {
            num_proc,
            batch_size: 100,
            writer_batch_size: 77,
            ..Default::default()
        };
        check(
            ds.filter_with(|r| Ok(keep(r)), &opts).unwrap(),
            "filter_with",
        );
        check(
            ds.filter_batched_with(mask, &opts).unwrap(),
            "filter_batched_with",
        );
        // the column form reads one column, so it checks the text only; compare on that
        let by_len = ds
            .filter_column_with("text", |s: &str| s.len() > 20, &opts)
            .unwrap();
        assert_eq!(
            by_len,
            ds.filter(|r| r["text"].as_str().unwrap().len() > 20)
        );
    }
}

#[test]
fn types_survive_chunked_building() {
    cache_root();
    // 10 rows cut into chunks of 3: a column typed differently from chunk to chunk
    let ds = Dataset::from_rows((0..10).map(|i| row(json!({"i": i}))));
    let opts = MapOptions {
        writer_batch_size: 3,
        num_proc: 2,
        ..Default::default()
    };
    let out = ds
        .map_with(
            |mut r| {
                let i = r["i"].as_i64().unwrap();
                // null in the first chunk only, then ints
                r.insert(
                    "late_int".into(),
                    if i < 3 { Value::Null } else { json!(i) },
                );
                // ints, then a float in the last chunk
                r.insert("num".into(), if i == 9 { json!(0.5) } else { json!(i) });
                r.insert("always_null".into(), Value::Null);
                r.insert("nested".into(), json!({"xs": [i, i + 1], "tag": null}));
                // an int in one chunk, text in another: kept as the values they were
                r.insert("mixed".into(), if i < 5 { json!(i) } else { json!("t") });
                Ok(r)
            },
            &opts,
        )
        .unwrap();
    let types: std::collections::BTreeMap<String, &str> = out.features().into_iter().collect();
    assert_eq!(types["i"], "int64");
    assert_eq!(types["late_int"], "int64");
    assert_eq!(types["num"], "float64");
    assert_eq!(types["always_null"], "null");
    assert_eq!(types["nested"], "struct");
    assert_eq!(types["mixed"], "mixed");
    let r0 = out.row(0).unwrap();
    assert_eq!(r0["late_int"], Value::Null);
    assert_eq!(r0["always_null"], Value::Null);
    assert_eq!(r0["nested"], json!({"xs": [0, 1], "tag": null}));
    assert_eq!(r0["mixed"], json!(0));
    assert_eq!(out.row(7).unwrap()["mixed"], json!("t"));
    assert_eq!(out.row(4).unwrap()["late_int"], json!(4));
    assert_eq!(out.row(9).unwrap()["num"], json!(0.5));
    // the same rows as building them in one go
    let whole = ds
        .map(|mut r| {
            let i = r["i"].as_i64().unwrap();
            r.insert(
                "late_int".into(),
                if i < 3 { Value::Null } else { json!(i) },
            );
            r.insert("num".into(), if i == 9 { json!(0.5) } else { json!(i) });
            r.insert("always_null".into(), Value::Null);
            r.insert("nested".into(), json!({"xs": [i, i + 1], "tag": null}));
            r.insert("mixed".into(), if i < 5 { json!(i) } else { json!("t") });
            Ok(r)
        })
        .unwrap();
    assert_eq!(out, whole);
    // an input column the closure leaves alone keeps its Arrow type (int32 stays int32)
    let (schema, batches) = Dataset::from_rows((0..5).map(|i| row(json!({"i": i}))))
        .map_column("i", "i32", |v: i64| v as i32)
        .unwrap()
        .map_column("i", "i", |v: i64| v)
        .unwrap()
        .to_record_batches()
        .unwrap();
    assert_eq!(schema.field(1).data_type(), &arrow_schema::DataType::Int32);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    let kept = sample(50).map(Ok).unwrap();
    assert_eq!(kept.features(), sample(50).features());
    // typed columns: lists, options and nulls
    let ids = sample(6)
        .map_column("ids", "len", |v: Value| v.as_array().map(|a| a.len()))
        .unwrap();
    assert_eq!(ids.column("len").unwrap()[3], json!(3));
    let maybe = sample(6)
        .map_column("maybe", "twice", |v: Option<i64>| v.map(|x| x * 2))
        .unwrap();
    assert_eq!(maybe.column("twice").unwrap()[0], Value::Null);
    assert_eq!(maybe.column("twice").unwrap()[1], json!(2));
    assert_eq!(maybe.features().last().unwrap().1, "int64");
    let lists = sample(6)
        .map_column("text", "chars", |s: &str| {
            s.bytes().take(2).map(u32::from).collect::<Vec<u32>>()
        })
        .unwrap();
    assert_eq!(lists.column("chars").unwrap()[1], json!([119, 111]));
}

#[test]
fn failures_name_the_row_for_any_num_proc() {
    cache_root();
    let ds = sample(5_000);
    for num_proc in [1, 2, 4] {
        let opts = MapOptions {
            num_proc,
            writer_batch_size: 100,
            ..Default::default()
        };
        let e = ds
            .map_with(
                |r| {
                    let i = r["meta"]["s"].as_str().unwrap()[1..]
                        .parse::<usize>()
                        .unwrap();
                    if i == 1_234 || i == 4_000 {
                        r.try_get("nope")?;
                    }
                    Ok(r)
                },
                &opts,
            )
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::Transform { source, .. } if matches!(**source, Error::UnknownColumn { .. })),
            "{msg}"
        );
        assert!(msg.contains("row 1234") && msg.contains("`nope`"), "{msg}");
        let e = ds
            .filter_batched_with(|b| Ok(vec![true; b.num_rows() - 1]), &opts)
            .unwrap_err();
        assert!(e.to_string().contains("rows 0..1000"), "{e}");
    }
    // a cell that is not the closure's type
    let e = sample(20)
        .map_column("maybe", "x", |v: i64| v + 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 0") && e.contains("`maybe`") && e.contains("null"),
        "{e}"
    );
    let e = sample(3)
        .map_column("nope", "x", |s: &str| s.len())
        .unwrap_err();
    assert!(matches!(e, Error::UnknownColumn { .. }), "{e}");
    let e = sample(3)
        .map_with(
            Ok,
            &MapOptions {
                remove_columns: vec!["nope".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("`nope`"), "{e}");
}

/// Entries of the transform cache made by transforms `op` (their names start with `op-`;
/// other tests' entries, of other transforms, are left out), temporary folders included.
fn entries_of(op: &str) -> Vec<String> {
    match std::fs::read_dir(cache_root().join("transforms")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&format!("{op}-")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// All of the cache's behaviour in one test: the other tests cache only `map_column`, so the
/// `map` and `filter_batched` entries counted here are this test's alone.
#[test]
fn the_transform_cache_reuses_results_and_never_keeps_a_failed_one() {
    cache_root();
    let ds = sample(3_000);
    let calls = AtomicUsize::new(0);
    let counted = |r: Row| {
        calls.fetch_add(1, Ordering::Relaxed);
        add_n(r)
    };
    let opts = MapOptions {
        new_fingerprint: Some("add-n-v1".into()),
        num_proc: 2,
        ..Default::default()
    };
    // not cached without a name
    let before = entries_of("map");
    ds.map_with(counted, &MapOptions::default()).unwrap();
    assert_eq!(entries_of("map"), before);
    // the first run computes and writes one entry; the second reads it
    let first = ds.map_with(counted, &opts).unwrap();
    assert_eq!(calls.swap(0, Ordering::Relaxed), 6_000);
    assert_eq!(entries_of("map").len(), before.len() + 1);
    let again = ds.map_with(counted, &opts).unwrap();
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "a cached re-run calls nothing"
    );
    assert_eq!(again, first);
    assert_eq!(again, with_n(&ds));
    assert_eq!(again.features(), first.features());
    // num_proc does not change the key; the input, the name and the options do
    let serial = MapOptions {
        num_proc: 1,
        ..opts.clone()
    };
    assert_eq!(ds.map_with(counted, &serial).unwrap(), first);
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    ds.select(&[0, 1, 2])
        .unwrap()
        .map_with(counted, &opts)
        .unwrap();
    assert_eq!(calls.swap(0, Ordering::Relaxed), 3);
    // load_from_cache_file: false computes again (and replaces the entry)
    let fresh = MapOptions {
        load_from_cache_file: false,
        ..opts.clone()
    };
    assert_eq!(ds.map_with(counted, &fresh).unwrap(), first);
    assert_eq!(calls.swap(0, Ordering::Relaxed), 3_000);
    // keep_in_memory: no cache read or write
    let n = entries_of("map").len();
    let mem = MapOptions {
        keep_in_memory: true,
        new_fingerprint: Some("in-memory".into()),
        ..Default::default()
    };
    ds.map_with(counted, &mem).unwrap();
    assert_eq!(entries_of("map").len(), n);
    calls.store(0, Ordering::Relaxed);

    // a closure failing half-way leaves no entry and no temporary folder
    let failing = MapOptions {
        new_fingerprint: Some("fails".into()),
        num_proc: 2,
        ..Default::default()
    };
    let e = ds
        .map_with(
            |r: Row| {
                if r["meta"]["s"] == json!("r2500") {
                    return Err(Error::InvalidArgument("bad row".into()));
                }
                Ok(r)
            },
            &failing,
        )
        .unwrap_err();
    assert!(e.to_string().contains("row 2500"), "{e}");
    assert_eq!(entries_of("map").len(), n, "{:?}", entries_of("map"));
    assert!(
        entries_of("map")
            .iter()
            .all(|e| !e.contains(".tmp") && !e.contains(".old"))
    );
    // so the same name computes (and caches) next time
    ds.map_with(counted, &failing).unwrap();
    assert_eq!(calls.swap(0, Ordering::Relaxed), 3_000);
    assert_eq!(entries_of("map").len(), n + 1);

    // filters cache their kept rows; batched and column forms too
    let fopts = MapOptions {
        new_fingerprint: Some("long".into()),
        ..Default::default()
    };
    let keep = |r: &Row| {
        calls.fetch_add(1, Ordering::Relaxed);
        Ok(r["text"].as_str().unwrap().len() > 30)
    };
    let kept = ds.filter_with(keep, &fopts).unwrap();
    assert_eq!(calls.swap(0, Ordering::Relaxed), 3_000);
    assert_eq!(ds.filter_with(keep, &fopts).unwrap(), kept);
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(kept, ds.filter(|r| r["text"].as_str().unwrap().len() > 30));
    let batched = ds.map_batched_with(add_n_batch, &opts).unwrap();
    assert_eq!(ds.map_batched_with(add_n_batch, &opts).unwrap(), batched);
    assert_eq!(batched, first);
    let col = ds
        .map_column_with("text", "n", |s: &str| s.len(), &opts)
        .unwrap();
    assert_eq!(col, first);
    // a failing batched filter leaves nothing either
    let n = entries_of("filter_batched").len();
    let e = ds
        .filter_batched_with(
            |b| {
                if b.row(0)?["meta"]["s"] == json!("r2000") {
                    return Err(Error::InvalidArgument("bad batch".into()));
                }
                Ok(vec![true; b.num_rows()])
            },
            &MapOptions {
                new_fingerprint: Some("fails-too".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("rows 2000..3000"), "{e}");
    assert_eq!(entries_of("filter_batched").len(), n);
    // a cached result is memory-mapped Arrow with the input's fingerprint chain
    assert_ne!(first.fingerprint(), ds.fingerprint());
    assert_eq!(ds.fingerprint(), sample(3_000).fingerprint());
    assert_ne!(ds.fingerprint(), sample(2_999).fingerprint());
}

/// `load_dataset` and the rest of the family take any path-like value (issue 34).
#[test]
fn loaders_take_any_path_like_value() {
    cache_root();
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("a.txt");
    std::fs::write(&path, "one\ntwo\n").unwrap();
    let s: String = path.to_string_lossy().into_owned();
    let slice: &str = s.as_str();
    assert_eq!(load_dataset("text", &s).unwrap()["train"].num_rows(), 2);
    assert_eq!(
        load_dataset("text", s.clone()).unwrap()["train"].num_rows(),
        2
    );
    assert_eq!(load_dataset("text", slice).unwrap()["train"].num_rows(), 2);
    assert_eq!(load_dataset("text", &path).unwrap()["train"].num_rows(), 2);
    assert_eq!(
        load_dataset("text", path.as_os_str()).unwrap()["train"].num_rows(),
        2
    );
    assert_eq!(
        load_dataset("text", vec![s.clone()]).unwrap()["train"].num_rows(),
        2
    );
    let opts = LoadOptions::default();
    assert_eq!(
        load_dataset_with("text", &s, &opts).unwrap()["train"].num_rows(),
        2
    );
    assert_eq!(load_streaming("text", &s).unwrap().iter().count(), 2);
    assert_eq!(
        load_streaming_with("text", &s, &opts)
            .unwrap()
            .iter()
            .count(),
        2
    );
    assert_eq!(massivetext::data::read_lines(&s).unwrap(), ["one", "two"]);
    assert_eq!(
        massivetext::data::read_lines(&path).unwrap(),
        ["one", "two"]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    /// Any rows of ints, nulls and text, any chunk size and thread count: the row map, the
    /// batched map and `from_rows` of the expected rows agree, and so do the filters.
    #[test]
    fn chunked_parallel_transforms_match_the_plain_result(
        cells in prop::collection::vec(
            (prop::option::of(-5i64..5), prop::option::of("[a-c]{0,3}")), 0..60),
        chunk in 1usize..9,
        num_proc in 1usize..4,
    ) {
        cache_root();
        let ds = Dataset::from_rows(cells.iter().map(|(a, b)| row(json!({"a": a, "b": b}))));
        let opts = MapOptions { writer_batch_size: chunk, batch_size: chunk, num_proc, ..Default::default() };
        let f = |mut r: Row| {
            let a = r["a"].as_i64();
            r.insert("a2".into(), a.map_or(Value::Null, |a| json!(a * a)));
            let b = json!(r["b"].as_str().map(str::len));
            r.insert("b".into(), b);
            Ok(r)
        };
        let want = Dataset::from_rows(ds.iter().map(|r| f(r).unwrap()));
        let got = ds.map_with(f, &opts).unwrap();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(got.features(), want.features());
        let batched = ds.map_batched_with(|b| b.map(f), &opts).unwrap();
        prop_assert_eq!(&batched, &want);
        let keep = |r: &Row| r["a"].as_i64().is_some_and(|a| a > 0);
        let plain = ds.filter(keep);
        prop_assert_eq!(&ds.filter_with(|r| Ok(keep(r)), &opts).unwrap(), &plain);
        prop_assume!(!cells.is_empty());
        prop_assert_eq!(
            &ds.filter_column_with("a", |a: Option<i64>| a.is_some_and(|a| a > 0), &opts).unwrap(),
            &plain
        );
    }
}

/// The code of notebook 02's transform cells (cells 08, 08b, 08d), on SST-2-shaped rows: the
/// forms it shows agree and the named transform's re-run reads the cache.
#[test]
fn notebook_02_transform_cells_hold() {
    cache_root();
    let train = Dataset::from_rows((0..1_500).map(|i| {
        row(json!({"sentence": "a fine film ".repeat(i % 17), "label": format!("{}", i % 2)}))
    }));
    let with_len = train
        .map(|mut row| {
            let n = row
                .try_get("sentence")?
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .count();
            row.insert("words".into(), json!(n));
            Ok(row)
        })
        .unwrap();
    let words = |s: &str| s.split_whitespace().count();
    let batched = train
        .map_batched(1000, |batch| {
            let n: Vec<usize> = batch
                .column_str("sentence")?
                .iter()
                .map(|s| words(s))
                .collect();
            batch.with_column("words", n)
        })
        .unwrap();
    let column = train.map_column("sentence", "words", words).unwrap();
    let two = MapOptions {
        num_proc: 2,
        ..Default::default()
    };
    let parallel = train
        .map_with(
            |mut row| {
                let n = words(row.try_get("sentence")?.as_str().unwrap_or(""));
                row.insert("words".into(), json!(n));
                Ok(row)
            },
            &two,
        )
        .unwrap();
    assert!(batched == with_len && column == with_len && parallel == with_len);
    let long = with_len.filter_column("words", |n: i64| n > 30).unwrap();
    assert_eq!(
        long.num_rows(),
        (0..1_500).filter(|i| 3 * (i % 17) > 30).count()
    );
    let named = MapOptions {
        new_fingerprint: Some("notebook-02-words".into()),
        ..Default::default()
    };
    let first = train
        .map_column_with("sentence", "words", words, &named)
        .unwrap();
    let again = train
        .map_column_with("sentence", "words", |_: &str| 0usize, &named)
        .unwrap();
    assert!(
        again == first && again == with_len,
        "the re-run came from the cache"
    );
}

/// A map's chunks share the input's arrays; saving (and so caching) one counts each chunk's
/// part of those buffers, not all of them, so the result is one shard of few batches (before:
/// each 1000-row slice of a gigabyte of text counted as a gigabyte: thousands of shards of
/// 15-row batches, 235 s and 6.7 GB to open the cached 1 GB map again).
#[test]
fn a_mapped_dataset_saves_as_one_shard() {
    cache_root();
    let ds = sample(20_000);
    let out = ds
        .map_with(
            add_n,
            &MapOptions {
                writer_batch_size: 10,
                ..Default::default()
            },
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    out.save_to_disk(dir.path()).unwrap();
    let shards = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".arrow")
        })
        .count();
    assert_eq!(shards, 1);
    let back = Dataset::load_from_disk(dir.path()).unwrap();
    assert_eq!(back, out);
    let n = back.to_record_batches().unwrap().1.len();
    // 2,000 chunks of 10 rows, joined (a list slice still counts its whole child array)
    assert!(n < 100, "{n} batches");
}
