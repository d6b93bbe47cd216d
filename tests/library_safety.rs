//! Issues 35 and 30: the library as a notebook user meets it on bad input. One test per
//! defect (items 35.2–35.7 and 35.11, 30.9, 30.11 and 30.14): each failed before its fix.
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use massivetext::Error;
use massivetext::cli::run_from;
use massivetext::generate::{Pipeline, PipelineOutput};
use massivetext::prelude::*;

// ---------------------------------------------------------------- helpers

fn numbers(n: usize) -> Dataset {
    Dataset::from_columns(vec![Column::new("x", (0..n).map(|i| json!(i)).collect())]).unwrap()
}

/// The message of a panic of `f`, or `None` when it did not panic.
fn panic_message(f: impl FnOnce()) -> Option<String> {
    catch_unwind(AssertUnwindSafe(f)).err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn tiny_gpt2(vocab_size: usize) -> Gpt2Config {
    Gpt2Config {
        vocab_size,
        n_positions: 16,
        n_embd: 16,
        n_layer: 1,
        n_head: 2,
        ..Gpt2Config::small(vocab_size)
    }
}

fn word_tokenizer() -> Tokenizer {
    let texts = [
        "the cat sat on the mat",
        "the dog ran to the cat",
        "a cat and a dog",
    ];
    Tokenizer::train(
        TokenizerKind::WordPiece,
        texts.iter(),
        &TrainOptions::new(60),
    )
    .unwrap()
}

/// A 16-position GPT-2 and its tokenizer saved in `dir`.
fn saved_model(dir: &Path) -> (AutoModelForCausalLM, Tokenizer) {
    let tok = word_tokenizer();
    let model =
        AutoModelForCausalLM::from_config(tiny_gpt2(tok.vocab_size()), &Device::Cpu).unwrap();
    model.save_pretrained(dir).unwrap();
    tok.save_pretrained(dir).unwrap();
    (model, tok)
}

fn generate_cli(dir: &Path, extra: &[&str]) -> massivetext::Result<String> {
    let mut args = vec![
        "massivetext",
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "the cat",
        "--max-new-tokens",
        "3",
    ];
    args.extend_from_slice(extra);
    run_from(args)
}

// ---------------------------------------------------------------- issue 35

#[test]
fn item_35_2_test_size_is_a_fraction_or_a_count() {
    let ds = numbers(200);
    // 1.5 is a fraction out of range (datasets raises), not "one row"
    let e = ds.train_test_split(1.5, 0).unwrap_err().to_string();
    assert!(e.contains("1.5") && e.contains("(0, 1)"), "{e}");
    assert!(ds.train_test_split(f64::NAN, 0).is_err());
    assert!(ds.train_test_split(TestSize::Fraction(1.0), 0).is_err());
    let by_fraction = ds.train_test_split(0.1, 0).unwrap();
    assert_eq!(by_fraction["test"].num_rows(), 20);
    let by_count = ds.train_test_split(7, 0).unwrap();
    assert_eq!(
        (by_count["train"].num_rows(), by_count["test"].num_rows()),
        (193, 7)
    );
    assert!(ds.train_test_split(200, 0).is_err());
    assert!(ds.train_test_split(0, 0).is_err());
}

#[test]
fn item_35_3_filter_has_a_fallible_form_and_row_access_names_the_column() {
    let ds = numbers(10);
    let e = ds
        .try_filter(|r| Ok(r.try_get("nope")? == &json!(1)))
        .unwrap_err();
    // the closure's error, wrapped with the row it failed on (issue 34)
    assert!(
        matches!(&e, Error::Transform { at, source, .. } if at == "row 0"
            && matches!(&**source, Error::UnknownColumn { column, available } if column == "nope" && available == "x")),
        "{e}"
    );
    let even = ds
        .try_filter(|r| Ok(r.try_get("x")?.as_u64().unwrap_or(1) % 2 == 0))
        .unwrap();
    assert_eq!(even.num_rows(), 5);
    // the idiomatic access panics (as a map's index does) naming the column and the way out
    let msg = panic_message(|| {
        ds.filter(|r| r["nope"] == json!(1));
    })
    .expect("a missing column panics");
    assert!(
        msg.contains("`nope`") && msg.contains("x") && msg.contains("try_get"),
        "{msg}"
    );
    // streaming: the same fallible form, its error yielded in the row's place
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.jsonl");
    std::fs::write(&p, "{\"x\": 1}\n{\"x\": 2}\n").unwrap();
    let stream = load_streaming("json", &p).unwrap();
    let rows: Vec<_> = stream
        .try_filter(|r| Ok(r.try_get("nope")? == &json!(1)))
        .iter()
        .collect();
    assert!(
        matches!(rows.as_slice(), [Err(Error::UnknownColumn { .. })]),
        "{rows:?}"
    );
    assert_eq!(
        stream
            .try_filter(|r| Ok(r.try_get("x")? == &json!(2)))
            .iter()
            .count(),
        1
    );
}

#[test]
fn item_35_4_unknown_split_panic_points_to_get() {
    let dd = DatasetDict::from_splits([("train".to_string(), numbers(3))]);
    let msg = panic_message(|| {
        let _ = &dd["nope"];
    })
    .expect("an unknown split panics");
    assert!(
        msg.contains("nope") && msg.contains("train") && msg.contains("ds.get(\"nope\")?"),
        "{msg}"
    );
    assert!(matches!(dd.get("nope"), Err(Error::UnknownSplit { .. })));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let first = readme.split("```rust").nth(1).unwrap();
    let first = first.split("```").next().unwrap();
    assert!(
        first.contains(".get(\"train\")?") && !first.contains("[\"train\"]"),
        "the README's first example uses the fallible form:\n{first}"
    );
}

#[test]
fn item_35_5_every_float_of_generation_config_is_checked() {
    let model = AutoModelForCausalLM::from_config(tiny_gpt2(20), &Device::Cpu).unwrap();
    let prompt = Tensor::new(&[[1u32, 2]], &Device::Cpu).unwrap();
    let base = GenerationConfig {
        max_new_tokens: 4,
        num_beams: 2,
        ..Default::default()
    };
    assert_eq!(model.generate(&prompt, &base).unwrap().dims(), &[1, 6]);
    type Set = fn(&mut GenerationConfig, f64);
    let fields: [(&str, Set); 4] = [
        ("length_penalty", |c, x| c.length_penalty = x),
        ("temperature", |c, x| c.temperature = x),
        ("top_p", |c, x| c.top_p = x),
        ("repetition_penalty", |c, x| c.repetition_penalty = x),
    ];
    for (name, set) in fields {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut c = base.clone();
            set(&mut c, bad);
            let e = model.generate(&prompt, &c).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidConfig(m) if m.contains(name)),
                "{name} = {bad}: {e}"
            );
        }
    }
}

#[test]
fn item_35_6_decode_refuses_ids_outside_the_vocabulary() {
    let tok = word_tokenizer();
    let n = tok.vocab_size() as u32;
    assert!(tok.decode(&[5], DecodeOptions::default()).is_ok());
    for e in [
        tok.decode(&[5, 999_999], DecodeOptions::default())
            .unwrap_err(),
        tok.decode(&[n], DecodeOptions::SKIP_SPECIAL_TOKENS)
            .unwrap_err(),
        tok.batch_decode(
            &vec![vec![5u32], vec![5, 999_999]],
            DecodeOptions::default(),
        )
        .unwrap_err(),
    ] {
        assert!(matches!(e, Error::TokenOutOfVocab { .. }), "{e}");
    }
    let floats = Tensor::new(&[[5f32, 6.0]], &Device::Cpu).unwrap();
    assert!(tok.batch_decode(&floats, DecodeOptions::default()).is_err());
}

#[test]
fn item_35_7_generate_and_forward_share_one_input_check() {
    let model = AutoModelForCausalLM::from_config(tiny_gpt2(20), &Device::Cpu).unwrap();
    let floats = Tensor::new(&[[5.7f32, 1.0]], &Device::Cpu).unwrap();
    let negative = Tensor::new(&[[-3i64, 1]], &Device::Cpu).unwrap();
    let c = GenerationConfig {
        max_new_tokens: 2,
        ..Default::default()
    };
    for ids in [&floats, &negative] {
        let f = model.forward_with(&ForwardArgs::new(ids)).unwrap_err();
        let g = model.generate(ids, &c).unwrap_err();
        assert_eq!(f.to_string(), g.to_string());
    }
    let ok = Tensor::new(&[[5i64, 1]], &Device::Cpu).unwrap();
    assert_eq!(model.generate(&ok, &c).unwrap().dims(), &[1, 4]);
}

#[test]
fn item_35_11_candle_errors_debug_print_the_message_not_a_backtrace() {
    let inner = candle_core::Error::Msg("shape mismatch in matmul".into());
    let with_bt = candle_core::Error::WithBacktrace {
        inner: Box::new(inner),
        backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
    };
    let e = Error::from(with_bt);
    for shown in [format!("{e:?}"), e.to_string()] {
        assert!(shown.contains("shape mismatch in matmul"), "{shown}");
        assert!(!shown.contains('\n'), "one line, no backtrace: {shown}");
    }
    // a real one, from candle
    let a = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let e: Error = a.matmul(&a).unwrap_err().into();
    assert!(!format!("{e:?}").contains('\n'), "{e:?}");
}

#[test]
fn item_35_11_output_dir_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("results");
    std::fs::write(&file, "not a folder").unwrap();
    let model = AutoModelForCausalLM::from_config(tiny_gpt2(13), &Device::Cpu).unwrap();
    let ids: Vec<u32> = (0..200u32).map(|i| i % 13).collect();
    let data = TokenWindows::new(ids, 8).unwrap();
    let args = TrainingArguments {
        output_dir: file.clone(),
        max_steps: Some(2),
        per_device_train_batch_size: 2,
        disable_tqdm: true,
        ..Default::default()
    };
    let e = Trainer::new(model, args, data)
        .and_then(|mut t| t.train().map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a file, not a folder"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
}

#[test]
fn item_35_11_unigram_with_no_room_is_vocab_too_small() {
    let ds = Dataset::from_columns(vec![Column::new(
        "text",
        vec![json!("the cat sat"), json!("the dog ran")],
    )])
    .unwrap();
    for n in [0, 1] {
        let e = Tokenizer::train_unigram(&ds, "text", n).unwrap_err();
        assert!(matches!(e, Error::VocabTooSmall { .. }), "{n}: {e}");
    }
}

#[test]
fn item_35_11_text_generation_pipeline_default_fits_a_small_model() {
    let dir = tempfile::tempdir().unwrap();
    saved_model(dir.path());
    let p = pipeline("text-generation", dir.path().to_string_lossy()).unwrap();
    let PipelineOutput::TextGeneration(out) = p.call("the cat").unwrap() else {
        panic!("a text-generation output")
    };
    assert!(
        out.generated_text.len() > "the cat".len(),
        "{}",
        out.generated_text
    );
    // an explicit count that cannot fit is still an error
    let Pipeline::TextGeneration(mut p) = p else {
        panic!("a text-generation pipeline")
    };
    p.config.max_new_tokens = 15;
    assert!(p.call("the cat").is_err());
    p.config.max_new_tokens = 4;
    assert!(p.call("the cat").is_ok());
}

// ---------------------------------------------------------------- issue 30

#[test]
fn item_30_9_a_bad_generation_setting_names_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = saved_model(dir.path());
    assert!(model.generation_config().is_ok());
    for (bad, key) in [
        (json!({"temperature": "hot", "top_k": 5}), "temperature"),
        (json!({"max_new_tokens": -5}), "max_new_tokens"),
        (json!({"eos_token_id": 1e20}), "eos_token_id"),
    ] {
        let path = dir.path().join("generation_config.json");
        std::fs::write(&path, bad.to_string()).unwrap();
        let e = generate_cli(dir.path(), &[]).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains(key),
            "{bad}: {e}"
        );
        let loaded = AutoModelForCausalLM::from_pretrained(dir.path().to_str().unwrap()).unwrap();
        let e = loaded.generation_config().unwrap_err().to_string();
        assert!(
            e.contains("generation_config.json") && e.contains(key),
            "{e}"
        );
        assert!(pipeline("text-generation", dir.path().to_string_lossy()).is_err());
    }
    std::fs::write(
        dir.path().join("generation_config.json"),
        json!({"max_new_tokens": 2, "eos_token_id": null}).to_string(),
    )
    .unwrap();
    let loaded = AutoModelForCausalLM::from_pretrained(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(loaded.generation_config().unwrap().max_new_tokens, 2);
}

#[test]
fn item_30_11_generate_with_nan_weights_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = saved_model(dir.path());
    for (name, var) in model.named_parameters() {
        if name.ends_with("h.0.mlp.c_fc.weight") {
            let t = var.as_tensor();
            var.set(&(t.ones_like().unwrap() * f64::NAN).unwrap())
                .unwrap();
        }
    }
    let prompt = Tensor::new(&[[1u32, 2]], &Device::Cpu).unwrap();
    for c in [
        GenerationConfig {
            max_new_tokens: 3,
            ..Default::default()
        },
        GenerationConfig {
            max_new_tokens: 3,
            do_sample: true,
            ..Default::default()
        },
        GenerationConfig {
            max_new_tokens: 3,
            num_beams: 2,
            ..Default::default()
        },
    ] {
        let e = model.generate(&prompt, &c).unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
    }
    model.save_pretrained(dir.path()).unwrap();
    let e = generate_cli(dir.path(), &[]).unwrap_err().to_string();
    assert!(e.contains("not finite"), "{e}");
}

#[test]
fn item_30_14_sampling_flags_without_do_sample_warn_and_negative_numbers_parse() {
    let dir = tempfile::tempdir().unwrap();
    saved_model(dir.path());
    let bin = env!("CARGO_BIN_EXE_massivetext");
    for (flag, value) in [("--temperature", "-1"), ("--top-p", "2")] {
        let out = Command::new(bin)
            .args([
                "generate",
                "--model",
                dir.path().to_str().unwrap(),
                "--prompt",
                "the cat",
                "--max-new-tokens",
                "3",
                flag,
                value,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flag} {value}: {stderr}");
        let name = flag.trim_start_matches("--").replace('-', "_");
        assert!(
            stderr.contains("warning") && stderr.contains(&name) && stderr.contains("do_sample"),
            "{flag} {value}: {stderr}"
        );
    }
    // with sampling on, the same values are errors naming the setting
    let e = generate_cli(dir.path(), &["--do-sample", "--temperature", "-1"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("temperature"), "{e}");
    let e = generate_cli(dir.path(), &["--temperature", "nan"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("temperature") && e.contains("finite"), "{e}");
}

#[test]
fn item_30_14_dataset_columns_apply_to_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("a.csv");
    std::fs::write(&csv, "a,b,c\n1,x,true\n2,y,false\n").unwrap();
    let json = dir.path().join("a.jsonl");
    std::fs::write(
        &json,
        "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"b\": \"y\"}\n",
    )
    .unwrap();
    for (kind, file) in [("csv", &csv), ("json", &json)] {
        let f = file.to_str().unwrap();
        for cmd in ["head", "info"] {
            let out = run_from([
                "massivetext",
                "dataset",
                cmd,
                "--kind",
                kind,
                "--columns",
                "b,a",
                f,
            ])
            .unwrap();
            if cmd == "head" {
                let first = out.lines().nth(1).unwrap();
                let row: serde_json::Map<String, Value> = serde_json::from_str(first).unwrap();
                assert_eq!(row.keys().collect::<Vec<_>>(), ["b", "a"], "{kind}: {out}");
            } else {
                assert!(out.contains("2 columns"), "{kind}: {out}");
            }
            let e = run_from([
                "massivetext",
                "dataset",
                cmd,
                "--kind",
                kind,
                "--columns",
                "nope",
                f,
            ])
            .unwrap_err()
            .to_string();
            assert!(e.contains("nope") && e.contains(f), "{kind} {cmd}: {e}");
        }
        // the library reads the same
        let opts = LoadOptions {
            columns: Some(vec!["b".into()]),
            keep_in_memory: true,
            ..Default::default()
        };
        let dd = load_dataset_with(kind, file, &opts).unwrap();
        assert_eq!(dd["train"].column_names(), ["b"]);
    }
}

/// Issue 29: the README's examples paste into a notebook as they stand. Their doctests run the
/// visible lines; the only hidden lines are the `fn main` wrapper a doctest needs (a notebook
/// cell takes `?` at its top level), never set-up a notebook lacks (`tempfile`, hidden data).
#[test]
fn readme_examples_hide_nothing_but_their_fn_main() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let allowed = [
        "# fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {",
        "# Ok(()) }",
        "# ; Ok(()) }",
    ];
    let mut examples = 0;
    for block in readme.split("```rust").skip(1) {
        let code = block.split("```").next().unwrap();
        examples += 1;
        for line in code.lines().filter(|l| l.trim_start().starts_with("# ")) {
            assert!(
                allowed.contains(&line.trim()),
                "a README example hides `{line}`: a notebook would lack it; make it visible"
            );
        }
        assert!(!code.contains("tempfile"), "{code}");
    }
    assert!(examples >= 6, "{examples} examples");
}

/// Issue 29, the trap: a second copy of the crate in one process (evcxr's plain `:dep` links one
/// into every cell) fails at its first tensor operation with the `:dep` line to use instead. The
/// second copy is `examples/second_copy.rs`, a C dynamic library that links the crate again;
/// this test process holds the first.
#[test]
fn a_second_copy_of_the_crate_fails_at_its_first_op_with_the_dep_line() {
    let x = Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap();
    massivetext::kernels::softmax_last_dim(&x).unwrap(); // this copy's first operation
    let exe = std::env::current_exe().unwrap();
    let lib = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(format!(
            "{}second_copy{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
    assert!(
        lib.exists(),
        "{} is missing: build it with `cargo build --example second_copy` (with the features of this test run; `cargo test` builds it with the other targets)",
        lib.display()
    );
    let path = std::ffi::CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols are the example's
    // `extern "C"` functions with these signatures. The library is never unloaded (a Rust
    // library's thread-local destructors may still point into it).
    let message = unsafe {
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(
            !handle.is_null(),
            "dlopen {}: {:?}",
            lib.display(),
            std::ffi::CStr::from_ptr(libc::dlerror())
        );
        let first_op = libc::dlsym(handle, c"second_copy_first_op".as_ptr());
        let free = libc::dlsym(handle, c"second_copy_free".as_ptr());
        assert!(!first_op.is_null() && !free.is_null());
        let first_op: extern "C" fn() -> *mut std::ffi::c_char = std::mem::transmute(first_op);
        let free: unsafe extern "C" fn(*mut std::ffi::c_char) = std::mem::transmute(free);
        let m = first_op();
        assert!(!m.is_null(), "the second copy's first operation succeeded");
        let text = std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned();
        free(m);
        text
    };
    assert!(message.contains("second copy of massivetext"), "{message}");
    let kernel = Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks/kernel");
    let dep = format!(
        ":dep massivetext = {{ package = \"massivetext-notebook\", path = \"{}\" }}",
        kernel.display()
    );
    assert!(message.contains(&dep), "{message}\nshould name {dep}");
    // This process's own copy goes on working.
    massivetext::kernels::softmax_last_dim(&x).unwrap();
}
