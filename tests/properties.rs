//! Property tests for every reader of outside bytes (issue 30): a valid file, changed at random
//! (bytes flipped, set, inserted, deleted, the file cut short, a piece repeated), never crashes
//! or hangs its reader, which either loads it or returns an error naming the file. Readers:
//! CSV, JSON (lines and array) and text loaders, the CSV and JSON Lines streams, Arrow IPC and
//! Parquet files, `save_to_disk` folders (what the dataset cache holds), TOML job files
//! (training, translation, `TrainingArguments`), `config.json`, `generation_config.json` and
//! safetensors files.
//!
//! `cargo test --test properties` runs a quick slice ([`QUICK_CASES`] cases per reader);
//! `scripts/properties.sh` runs the nightly size (`PROPTEST_CASES`, 10,000 by default). A
//! failure prints the smallest change of the seed file proptest found that still fails.
use massivetext::prelude::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Cases per reader in a plain `cargo test` run.
const QUICK_CASES: u32 = 48;
/// A reader still busy after this long on a file of a few hundred bytes is taken as hung.
const DEADLINE: Duration = Duration::from_secs(30);

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(QUICK_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// One change to a file's bytes; positions are fractions of the length at that point.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    Repeat(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // bytes that mean something to the formats: quotes, separators, brackets, UTF-8 lead and
    // continuation bytes, 0xFF in lengths and offsets
    let special = prop::sample::select(vec![
        b'"', b',', b'\n', b'\r', b'{', b'}', b'[', b']', b':', b'=', b'\\', 0, 0x7F, 0x80, 0xBF,
        0xC3, 0xE2, 0xF0, 0xFF,
    ]);
    let byte = prop_oneof![any::<u8>(), special];
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), prop::collection::vec(byte, 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

fn apply(seed: &[u8], changes: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in changes {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        match m {
            Mutation::Flip(i, mask) if !b.is_empty() => {
                let k = at(i, b.len());
                b[k] ^= mask;
            }
            Mutation::Set(i, v) if !b.is_empty() => {
                let k = at(i, b.len());
                b[k] = *v;
            }
            Mutation::Insert(i, bytes) => {
                let k = at(i, b.len() + 1);
                b.splice(k..k, bytes.iter().copied());
            }
            Mutation::Delete(i, n) if !b.is_empty() => {
                let k = at(i, b.len());
                let end = (k + n).min(b.len());
                b.drain(k..end);
            }
            Mutation::Truncate(i) => {
                let k = at(i, b.len() + 1);
                b.truncate(k);
            }
            Mutation::Repeat(i, n) if !b.is_empty() => {
                let k = at(i, b.len());
                let end = (k + n).min(b.len());
                let piece = b[k..end].to_vec();
                b.splice(end..end, piece);
            }
            _ => {}
        }
    }
    b
}

/// Runs `read` on its own thread: a panic or a hang fails the case (a crash ends the run).
fn run<T: Send + 'static>(
    read: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, TestCaseError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(v) => Ok(v),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "the reader hung (over {DEADLINE:?})"
        ))),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(TestCaseError::fail("the reader panicked"))
        }
    }
}

/// Either it loaded, or its error names the file.
fn named<T>(result: &Result<T>, file: &Path) -> std::result::Result<(), TestCaseError> {
    if let Err(e) = result {
        let name = file.file_name().unwrap().to_string_lossy();
        let msg = e.to_string();
        prop_assert!(
            msg.contains(&*name),
            "the error does not name {name}: {msg}"
        );
        prop_assert!(!msg.contains("panicked"), "{msg}");
    }
    Ok(())
}

/// A temporary folder holding `name` with the mutated bytes.
fn mutated(name: &str, seed: &[u8], changes: &[Mutation]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, apply(seed, changes)).unwrap();
    (dir, path)
}

/// Loads with `keep_in_memory` (no cache folder) and reads every row.
fn load_all(kind: &str, path: PathBuf) -> Result<usize> {
    let options = LoadOptions {
        keep_in_memory: true,
        ..Default::default()
    };
    let dd = load_dataset_with(kind, &path, &options)?;
    Ok(dd["train"].iter().count())
}

/// Streams every row.
fn stream_all(kind: &str, path: PathBuf) -> Result<usize> {
    let mut n = 0;
    for row in load_streaming(kind, &path)?.iter() {
        row?;
        n += 1;
    }
    Ok(n)
}

const CSV: &str = "label,text,score\n1,\"hello, world\",0.5\n0,\"multi\nline \"\"quoted\"\"\",1.25\n2,plain,\n3,é ü 🙂,-4\n";
const JSONL: &str = "{\"text\": \"a\", \"n\": 1, \"tags\": [\"x\"]}\n{\"text\": \"b\\n\\u00e9\", \"n\": null, \"tags\": []}\n{\"text\": \"c\", \"n\": 3.5, \"nested\": {\"k\": true}}\n";
const JSON_ARRAY: &str =
    "[{\"text\": \"a\", \"n\": 1}, {\"text\": \"é\", \"n\": 2}, {\"text\": \"\", \"n\": null}]";
const TEXT: &str = "First line\nsecond, with é and 🙂\r\n\nlast line without newline";

fn sample_dataset() -> Dataset {
    Dataset::from_rows(
        [
            json!({"text": "alpha", "label": 1, "score": 0.5, "ids": [1, 2, 3]}),
            json!({"text": "béta 🙂", "label": 0, "score": null, "ids": []}),
            json!({"text": "", "label": 2, "score": -1.0, "ids": [7]}),
        ]
        .iter()
        .map(|v| v.as_object().unwrap().clone()),
    )
}

fn arrow_seed() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    sample_dataset().save_to_disk(dir.path()).unwrap();
    std::fs::read(dir.path().join("data-00000-of-00001.arrow")).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csv_loader(changes in mutations()) {
        let (_dir, path) = mutated("data.csv", CSV.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || load_all("csv", p))?, &path)?;
    }

    #[test]
    fn csv_stream(changes in mutations()) {
        let (_dir, path) = mutated("data.csv", CSV.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || stream_all("csv", p))?, &path)?;
    }

    #[test]
    fn json_lines_loader_and_stream(changes in mutations()) {
        let (_dir, path) = mutated("data.jsonl", JSONL.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || load_all("json", p))?, &path)?;
        let p = path.clone();
        named(&run(move || stream_all("json", p))?, &path)?;
    }

    #[test]
    fn json_array_loader(changes in mutations()) {
        let (_dir, path) = mutated("data.json", JSON_ARRAY.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || load_all("json", p))?, &path)?;
    }

    #[test]
    fn text_loader_and_stream(changes in mutations()) {
        let (_dir, path) = mutated("data.txt", TEXT.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || load_all("text", p))?, &path)?;
        let p = path.clone();
        named(&run(move || stream_all("text", p))?, &path)?;
    }

    #[test]
    fn arrow_file(changes in mutations()) {
        static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let seed = SEED.get_or_init(arrow_seed);
        let (_dir, path) = mutated("data.arrow", seed, &changes);
        let p = path.clone();
        named(&run(move || load_all("arrow", p))?, &path)?;
    }

    #[test]
    fn parquet_file(changes in mutations()) {
        static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let seed = SEED.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("seed.parquet");
            sample_dataset().to_parquet(&path).unwrap();
            std::fs::read(path).unwrap()
        });
        let (_dir, path) = mutated("data.parquet", seed, &changes);
        let p = path.clone();
        named(&run(move || load_all("parquet", p))?, &path)?;
    }

    /// A saved folder (the layout of a cache entry) with one of its files changed: it loads
    /// with exactly the rows saved, or is refused naming a file of the folder. Never other rows:
    /// the shards carry a checksum.
    #[test]
    fn saved_folder(which in 0usize..3, changes in mutations()) {
        static SEED: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
        let seed = SEED.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            sample_dataset().save_to_disk(dir.path()).unwrap();
            ["data-00000-of-00001.arrow", "state.json", "dataset_info.json"]
                .iter()
                .map(|n| (n.to_string(), std::fs::read(dir.path().join(n)).unwrap()))
                .collect()
        });
        let dir = tempfile::tempdir().unwrap();
        for (k, (name, bytes)) in seed.iter().enumerate() {
            let bytes = if k == which { apply(bytes, &changes) } else { bytes.clone() };
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let folder = dir.path().to_path_buf();
        let loaded = run(move || {
            Dataset::load_from_disk(&folder).map(|ds| ds.iter().collect::<Vec<_>>())
        })?;
        match loaded {
            Ok(rows) => prop_assert_eq!(rows, sample_dataset().iter().collect::<Vec<_>>()),
            Err(e) => {
                // a file of the folder: one of its own, or the one a damaged state.json names
                let msg = e.to_string();
                let folder = dir.path().display().to_string();
                prop_assert!(
                    msg.contains(&folder) || seed.iter().any(|(n, _)| msg.contains(n.as_str())),
                    "the error names no file of the folder: {}", msg
                );
            }
        }
    }

    #[test]
    fn train_job_toml(changes in mutations()) {
        let seed = massivetext::train::cli::TrainJob::default().to_toml().unwrap();
        let (_dir, path) = mutated("job.toml", seed.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || massivetext::train::cli::TrainJob::from_file(&p).map(|_| ()))?, &path)?;
    }

    #[test]
    fn translation_job_toml(changes in mutations()) {
        let seed = massivetext::translate::TranslationJob::default().to_toml().unwrap();
        let (_dir, path) = mutated("translate.toml", seed.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || massivetext::translate::TranslationJob::from_file(&p).map(|_| ()))?, &path)?;
    }

    #[test]
    fn training_arguments_toml(changes in mutations()) {
        let (_dir, path) = mutated("args.toml", TRAINING_ARGS.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || TrainingArguments::from_file(&p).map(|_| ()))?, &path)?;
    }

    #[test]
    fn config_json(changes in mutations()) {
        let (_dir, path) = mutated("config.json", CONFIG_JSON.as_bytes(), &changes);
        let p = path.clone();
        named(&run(move || ModelConfig::from_file(&p).map(|_| ()))?, &path)?;
    }

    #[test]
    fn generation_config_json(changes in mutations()) {
        let (dir, path) = mutated("generation_config.json", GENERATION_JSON.as_bytes(), &changes);
        let d = dir.path().to_path_buf();
        named(&run(move || GenerationConfig::from_pretrained(&d).map(|_| ()))?, &path)?;
    }

    #[test]
    fn safetensors_file(changes in mutations()) {
        static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let seed = SEED.get_or_init(safetensors_seed);
        let (_dir, path) = mutated("model.safetensors", seed, &changes);
        let p = path.clone();
        named(&run(move || massivetext::io::read_safetensors(&p).map(|_| ()))?, &path)?;
    }
}

const TRAINING_ARGS: &str = "output_dir = \"out\"\nnum_train_epochs = 2.0\nlearning_rate = 0.0005\nper_device_train_batch_size = 4\nwarmup_steps = 10\nweight_decay = 0.01\nlogging_steps = 5\nsave_steps = 10\nseed = 7\n";
const CONFIG_JSON: &str = "{\"model_type\": \"gpt2\", \"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 100, \"n_positions\": 64, \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2, \"layer_norm_epsilon\": 1e-5, \"initializer_range\": 0.02, \"bos_token_id\": 0, \"eos_token_id\": 0}";
const GENERATION_JSON: &str = "{\"do_sample\": true, \"temperature\": 0.7, \"top_k\": 50, \"top_p\": 0.9, \"max_new_tokens\": 20, \"eos_token_id\": 2, \"repetition_penalty\": 1.1}";

fn safetensors_seed() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.safetensors");
    let a = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu).unwrap();
    let b = Tensor::new(&[0.5f32, -1., 2.], &Device::Cpu).unwrap();
    let metadata = [("format".to_string(), "pt".to_string())].into();
    massivetext::io::write_safetensors(&path, &[("a".into(), a), ("b.weight".into(), b)], metadata)
        .unwrap();
    std::fs::read(path).unwrap()
}

/// The seeds are valid: each reader loads its unchanged file (so the mutations start from a
/// file that reaches the reader's deeper paths).
#[test]
fn every_seed_loads() {
    let none: &[Mutation] = &[];
    for (name, seed, kind) in [
        ("a.csv", CSV, "csv"),
        ("a.jsonl", JSONL, "json"),
        ("a.json", JSON_ARRAY, "json"),
        ("a.txt", TEXT, "text"),
    ] {
        let (_d, p) = mutated(name, seed.as_bytes(), none);
        assert!(load_all(kind, p.clone()).unwrap() >= 3, "{name}");
        if name != "a.json" {
            assert!(stream_all(kind, p).unwrap() >= 3, "{name}");
        }
    }
    let (_d, p) = mutated("a.arrow", &arrow_seed(), none);
    assert_eq!(load_all("arrow", p).unwrap(), 3);
    let (_d, p) = mutated("args.toml", TRAINING_ARGS.as_bytes(), none);
    assert_eq!(TrainingArguments::from_file(&p).unwrap().seed, 7);
    let (_d, p) = mutated("config.json", CONFIG_JSON.as_bytes(), none);
    ModelConfig::from_file(&p).unwrap();
    let (d, _p) = mutated("generation_config.json", GENERATION_JSON.as_bytes(), none);
    let g = GenerationConfig::from_pretrained(d.path()).unwrap();
    assert!(g.do_sample);
    let (_d, p) = mutated("m.safetensors", &safetensors_seed(), none);
    assert_eq!(
        massivetext::io::read_safetensors(&p).unwrap().tensors.len(),
        2
    );
}
