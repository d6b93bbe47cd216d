//! Tokenizers against Hugging Face: golden ids from tests/fixtures/make_tokenizers.py.
use massivetext::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizers")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// Every text of every source, through `from_pretrained` + `encode` and `encode_with`.
fn check_same_as_hf(name: &str) {
    let exp = expected();
    let tok = Tokenizer::from_pretrained(fixtures().join(name)).unwrap();
    let want = &exp["tokenizers"][name];
    assert_eq!(
        tok.vocab_size() as u64,
        want["vocab_size"].as_u64().unwrap()
    );
    let mut checked = 0;
    for source in ["wikitext", "multi30k", "tricky"] {
        let texts = strs(&exp["texts"][source]);
        let rows = want[source].as_array().unwrap();
        assert_eq!(texts.len(), rows.len());
        let batch = tok.encode_batch(&texts).unwrap();
        for (i, (text, row)) in texts.iter().zip(rows).enumerate() {
            let ids = tok.encode(text).unwrap();
            assert_eq!(
                ids,
                u32s(&row["input_ids"]),
                "{name} {source} line {i}: {text:?}"
            );
            assert_eq!(batch[i], ids);
            let enc = tok.encode_with(text, &EncodeOptions::default()).unwrap();
            assert_eq!(enc.ids, ids);
            assert_eq!(enc.attention_mask, u32s(&row["attention_mask"]));
            assert_eq!(
                enc.special_tokens_mask,
                u32s(&row["special_tokens_mask"]),
                "{name} {source} line {i}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 608);

    // Pairs: `tokenizer(a, b)`.
    let pairs = &want["pairs"];
    let (a, b) = (strs(&pairs["a"]), strs(&pairs["b"]));
    for i in 0..a.len() {
        let enc = tok
            .encode_pair(&a[i], &b[i], &EncodeOptions::default())
            .unwrap();
        assert_eq!(enc.ids, u32s(&pairs["input_ids"][i]), "{name} pair {i}");
        assert_eq!(
            enc.type_ids,
            u32s(&pairs["token_type_ids"][i]),
            "{name} pair {i}"
        );
        assert_eq!(
            enc.special_tokens_mask,
            u32s(&pairs["special_tokens_mask"][i])
        );
    }

    // `tokenizer(batch, padding=True, truncation=True, max_length=12)`.
    let padded = &want["padded"];
    let mut tok = tok;
    if tok.pad_token_id().is_none() {
        let mut s = tok.special_tokens().clone();
        s.pad_token = s.eos_token.clone();
        tok = tok.with_special_tokens(s).unwrap();
    }
    let opts = EncodeOptions {
        max_length: Some(12),
        truncation: Truncation::Truncate,
        padding: Padding::Longest,
        ..Default::default()
    };
    let encs = tok
        .encode_batch_with(&strs(&padded["texts"]), &opts)
        .unwrap();
    for (i, enc) in encs.iter().enumerate() {
        assert_eq!(enc.ids, u32s(&padded["input_ids"][i]), "{name} padded {i}");
        assert_eq!(enc.attention_mask, u32s(&padded["attention_mask"][i]));
        assert_eq!(
            enc.special_tokens_mask,
            u32s(&padded["special_tokens_mask"][i])
        );
    }

    // decode(ids, skip_special_tokens=True)
    for (i, want_text) in strs(&want["decoded"]).iter().enumerate() {
        let ids = u32s(&want["multi30k"][i]["input_ids"]);
        assert_eq!(
            &tok.decode(&ids, DecodeOptions::SKIP_SPECIAL_TOKENS)
                .unwrap(),
            want_text,
            "{name} decode {i}"
        );
    }

    // Named ids.
    let sid = &want["special_ids"];
    let get = |k: &str| sid[k].as_u64().map(|x| x as u32);
    assert_eq!(tok.unk_token_id(), get("unk"));
    assert_eq!(tok.cls_token_id(), get("cls"));
    assert_eq!(tok.sep_token_id(), get("sep"));
    assert_eq!(tok.mask_token_id(), get("mask"));
    assert_eq!(tok.bos_token_id(), get("bos"));
    assert_eq!(tok.eos_token_id(), get("eos"));
}

#[test]
fn gpt2_vocab_json_merges_same_as_hf() {
    check_same_as_hf("gpt2");
}

#[test]
fn bert_vocab_txt_lowercase_same_as_hf() {
    check_same_as_hf("bert");
}

#[test]
fn roberta_vocab_json_merges_same_as_hf() {
    check_same_as_hf("roberta");
}

#[test]
fn save_then_load_tokenizer_json_gives_same_ids() {
    let exp = expected();
    let texts = strs(&exp["texts"]["multi30k"]);
    for name in ["gpt2", "bert", "roberta"] {
        let tok = Tokenizer::from_pretrained(fixtures().join(name)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        tok.save_pretrained(dir.path()).unwrap();
        for f in [
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let again = Tokenizer::from_pretrained(dir.path()).unwrap();
        assert_eq!(again.special_tokens(), tok.special_tokens());
        assert_eq!(again.fingerprint().unwrap(), tok.fingerprint().unwrap());
        for t in &texts {
            assert_eq!(again.encode(t).unwrap(), tok.encode(t).unwrap());
        }
    }
}

#[path = "common/shared.rs"]
mod shared;
use shared::data;

fn lines(p: &str) -> Vec<String> {
    std::fs::read_to_string(data(p))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn quiet(vocab_size: usize) -> TrainOptions {
    TrainOptions {
        show_progress: false,
        ..TrainOptions::new(vocab_size)
    }
}

// ---------------------------------------------------------------- training

#[test]
fn train_bpe_gpt2_style_round_trips_and_saves() {
    let texts = lines("wikitext-2/valid.txt");
    let tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &quiet(1000)).unwrap();
    assert_eq!(tok.vocab_size(), 1000);
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(0));
    assert_eq!(tok.eos_token_id(), Some(0));
    assert_eq!(tok.pad_token_id(), None);
    // Byte-level: any text round-trips exactly, no special tokens added by default.
    let s = " The tower is 324 metres (1,063 ft) tall — Ünïcödé 😀";
    let ids = tok.encode(s).unwrap();
    assert!(!ids.contains(&0));
    assert_eq!(tok.decode(&ids, DecodeOptions::default()).unwrap(), s);
    // Learned merges compress: fewer tokens than bytes on held-out text.
    let test = lines("wikitext-2/test.txt")[..200].join("\n");
    let n = tok.encode(&test).unwrap().len();
    assert!(n * 2 < test.len(), "{n} tokens for {} bytes", test.len());
    let dir = tempfile::tempdir().unwrap();
    tok.save_pretrained(dir.path()).unwrap();
    let again = Tokenizer::from_pretrained(dir.path()).unwrap();
    assert_eq!(again.encode(&test).unwrap(), tok.encode(&test).unwrap());
    assert_eq!(again.eos_token_id(), Some(0));
}

#[test]
fn train_wordpiece_bert_style_from_dataset_column() {
    let dd = load_dataset("text", data("multi30k/train.en")).unwrap();
    let tok = Tokenizer::train_wordpiece(&dd["train"], "text", 2000).unwrap();
    for (t, id) in [
        ("[PAD]", 0),
        ("[UNK]", 1),
        ("[CLS]", 2),
        ("[SEP]", 3),
        ("[MASK]", 4),
    ] {
        assert_eq!(tok.token_to_id(t), Some(id), "{t}");
    }
    assert_eq!(tok.pad_token_id(), Some(0));
    assert_eq!(tok.mask_token_id(), Some(4));
    let enc = tok
        .encode_pair("Two dogs PLAY.", "A man sleeps.", &Default::default())
        .unwrap();
    assert_eq!(enc.ids[0], 2);
    assert_eq!(enc.tokens[1..4], ["two", "dogs", "play"]); // lowercased
    let sep: Vec<usize> = (0..enc.len()).filter(|&i| enc.ids[i] == 3).collect();
    assert_eq!(sep.len(), 2);
    assert_eq!(*sep.last().unwrap(), enc.len() - 1);
    assert_eq!(enc.type_ids[sep[0]], 0);
    assert_eq!(enc.type_ids[sep[0] + 1], 1);
    assert_eq!(
        tok.decode(
            &tok.encode("Two dogs play.").unwrap(),
            DecodeOptions::SKIP_SPECIAL_TOKENS
        )
        .unwrap(),
        "two dogs play."
    );
}

/// The `tokenizers` trainers walk hash maps seeded at random (huggingface/tokenizers#1794), so
/// the same corpus gave a different WordPiece and Unigram vocabulary on each training; the
/// crate feeds them ordered words. Three trainings of each kind must save the same file.
#[test]
fn training_twice_gives_the_same_vocabulary() {
    let texts = lines("wikitext-2/valid.txt");
    let texts: Vec<&String> = texts
        .iter()
        .filter(|l| !l.trim().is_empty())
        .take(3000)
        .collect();
    for (kind, size) in [
        (TokenizerKind::WordPiece, 800),
        (TokenizerKind::Unigram, 800),
        (TokenizerKind::Bpe, 600),
    ] {
        let saved: Vec<String> = (0..3)
            .map(|_| {
                let tok = Tokenizer::train(kind, texts.iter(), &quiet(size)).unwrap();
                let dir = tempfile::tempdir().unwrap();
                tok.save_pretrained(dir.path()).unwrap();
                std::fs::read_to_string(dir.path().join("tokenizer.json")).unwrap()
            })
            .collect();
        for (i, s) in saved.iter().enumerate().skip(1) {
            let differing = saved[0]
                .lines()
                .zip(s.lines())
                .filter(|(a, b)| a != b)
                .count();
            assert!(
                *s == saved[0],
                "{kind:?}: training {i} saved a different tokenizer.json ({differing} lines differ)"
            );
        }
    }
}

#[test]
fn train_unigram_round_trips() {
    let texts = lines("multi30k/train.en");
    let tok = Tokenizer::train(TokenizerKind::Unigram, texts.iter(), &quiet(800)).unwrap();
    assert!(
        tok.vocab_size() <= 800 && tok.vocab_size() > 500,
        "{}",
        tok.vocab_size()
    );
    assert_eq!(tok.eos_token_id(), tok.token_to_id("</s>"));
    let s = "A little girl climbing into a wooden playhouse.";
    let ids = tok.encode(s).unwrap();
    assert!(ids.len() < s.split(' ').count() * 3);
    assert_eq!(
        tok.decode(&ids, DecodeOptions::SKIP_SPECIAL_TOKENS)
            .unwrap(),
        s
    );
}

#[test]
fn extra_special_tokens_are_never_split() {
    let texts = lines("wikitext-2/valid.txt");
    let opts = TrainOptions {
        special_tokens: vec!["<|pad|>".into()],
        ..quiet(600)
    };
    let tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &opts).unwrap();
    let id = tok.token_to_id("<|pad|>").unwrap();
    assert_eq!(id, 1);
    assert!(tok.encode("a<|pad|>b").unwrap().contains(&id));
}

// ---------------------------------------------------------------- bad input

#[test]
fn error_missing_tokenizer_files() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_pretrained(dir.path()).unwrap_err();
    assert!(matches!(err, Error::TokenizerFiles { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    // vocab.json without merges.txt
    std::fs::copy(
        fixtures().join("gpt2/vocab.json"),
        dir.path().join("vocab.json"),
    )
    .unwrap();
    let err = Tokenizer::from_pretrained(dir.path()).unwrap_err();
    assert!(err.to_string().contains("merges.txt is missing"), "{err}");
    // neither a folder nor a cached model id
    let err = Tokenizer::from_pretrained("no-such-org/no-such-model-xyz").unwrap_err();
    assert!(matches!(err, Error::TokenizerFiles { .. }), "{err}");
}

#[test]
fn error_corrupt_tokenizer_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Corrupt vocab.json: names the file and the line.
    std::fs::write(d.join("vocab.json"), "{\"a\": 0,\n \"b\": }").unwrap();
    std::fs::copy(fixtures().join("gpt2/merges.txt"), d.join("merges.txt")).unwrap();
    let err = Tokenizer::from_pretrained(d).unwrap_err();
    assert!(matches!(err, Error::TokenizerParse { .. }), "{err}");
    assert!(err.to_string().contains("vocab.json: line 2"), "{err}");
    // Corrupt merges.txt line.
    std::fs::copy(fixtures().join("gpt2/vocab.json"), d.join("vocab.json")).unwrap();
    std::fs::write(
        d.join("merges.txt"),
        "#version: 0.2\nĠ t\nthis line is wrong\n",
    )
    .unwrap();
    let err = Tokenizer::from_pretrained(d).unwrap_err();
    assert!(err.to_string().contains("merges.txt: line 3"), "{err}");
    // Corrupt tokenizer.json wins over the legacy files.
    std::fs::write(
        d.join("tokenizer.json"),
        "{\"version\": \"1.0\", \"model\": 3}",
    )
    .unwrap();
    let err = Tokenizer::from_pretrained(d).unwrap_err();
    assert!(matches!(err, Error::TokenizerParse { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    // Corrupt tokenizer_config.json.
    let d2 = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("bert/vocab.txt"),
        d2.path().join("vocab.txt"),
    )
    .unwrap();
    std::fs::write(
        d2.path().join("tokenizer_config.json"),
        "{\"do_lower_case\": tru}",
    )
    .unwrap();
    let err = Tokenizer::from_pretrained(d2.path()).unwrap_err();
    assert!(
        err.to_string().contains("tokenizer_config.json: line 1"),
        "{err}"
    );
    // Empty vocab.txt.
    std::fs::remove_file(d2.path().join("tokenizer_config.json")).unwrap();
    std::fs::write(d2.path().join("vocab.txt"), "").unwrap();
    let err = Tokenizer::from_pretrained(d2.path()).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn error_vocab_smaller_than_alphabet() {
    let texts = lines("multi30k/val.en");
    // Byte-level BPE needs 256 bytes + <|endoftext|>.
    let err = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &quiet(100)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::VocabTooSmall {
                vocab_size: 100,
                alphabet: 257
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--vocab-size 257"), "{err}");
    // WordPiece keeps every character it saw: more than 40 in Multi30k.
    let err = Tokenizer::train(TokenizerKind::WordPiece, texts.iter(), &quiet(40)).unwrap_err();
    assert!(
        matches!(err, Error::VocabTooSmall { vocab_size: 40, .. }),
        "{err}"
    );
}

#[test]
fn error_empty_corpus() {
    for kind in [
        TokenizerKind::Bpe,
        TokenizerKind::WordPiece,
        TokenizerKind::Unigram,
    ] {
        let none: Vec<String> = vec!["".into(), "   ".into()];
        let err = Tokenizer::train(kind, none.iter(), &quiet(500)).unwrap_err();
        assert!(matches!(err, Error::EmptyCorpus { .. }), "{kind:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let dd = load_dataset("text", &empty).unwrap();
    let err = Tokenizer::train_bpe(&dd["train"], "text", 500).unwrap_err();
    assert!(err.to_string().contains("column `text`"), "{err}");
    let tok_dir = dir.path().join("tok");
    let err = massivetext::cli::run_from([
        "massivetext",
        "train-tokenizer",
        "--kind",
        "bpe",
        "--vocab-size",
        "500",
        "--out",
        tok_dir.to_str().unwrap(),
        empty.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("empty.txt"), "{err}");
}

#[test]
fn error_or_truncate_text_longer_than_max_length() {
    let tok = Tokenizer::from_pretrained(fixtures().join("bert")).unwrap();
    let text = lines("wikitext-2/test.txt")[3].clone();
    let full = tok.encode(&text).unwrap();
    assert!(full.len() > 32);
    let err = tok
        .encode_with(
            &text,
            &EncodeOptions {
                max_length: Some(32),
                truncation: Truncation::Error,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::EncodingTooLong { length, max_length: 32 } if length == full.len()),
        "{err}"
    );
    let cut = tok
        .encode_with(&text, &EncodeOptions::truncate(32))
        .unwrap();
    assert_eq!(cut.len(), 32);
    assert_eq!(cut.ids[..31], full[..31]);
    assert_eq!(cut.ids[31], tok.sep_token_id().unwrap());
    // No max_length given and none in the config: model_max_length (512) from the fixture.
    assert_eq!(tok.model_max_length(), Some(512));
    // Short text is untouched by Error mode.
    let short = tok.encode_with(
        "a dog",
        &EncodeOptions {
            truncation: Truncation::Error,
            ..Default::default()
        },
    );
    assert_eq!(short.unwrap().ids, tok.encode("a dog").unwrap());
}

#[test]
fn padding_needs_a_pad_token() {
    let tok = Tokenizer::from_pretrained(fixtures().join("gpt2")).unwrap();
    let opts = EncodeOptions {
        padding: Padding::Longest,
        ..Default::default()
    };
    let err = tok.encode_batch_with(&["a", "a b c"], &opts).unwrap_err();
    assert!(err.to_string().contains("pad token"), "{err}");
    let bert = Tokenizer::from_pretrained(fixtures().join("bert")).unwrap();
    let opts = EncodeOptions {
        padding: Padding::MaxLength,
        max_length: Some(10),
        ..Default::default()
    };
    let e = bert.encode_with("a dog", &opts).unwrap();
    assert_eq!(e.len(), 10);
    let n = bert.encode("a dog").unwrap().len();
    assert_eq!(e.attention_mask.iter().sum::<u32>() as usize, n);
    assert_eq!(e.ids[..n], bert.encode("a dog").unwrap()[..]);
    assert_eq!(e.ids[9], 0);
}

// ---------------------------------------------------------------- datasets

#[test]
fn dataset_tokenize_matches_hf_and_group_texts_is_run_clm() {
    let exp = expected();
    let texts = strs(&exp["texts"]["wikitext"]);
    let ds = massivetext::data::Dataset::from_columns(vec![massivetext::data::Column {
        name: "text".into(),
        values: texts.iter().map(|t| Value::String(t.clone())).collect(),
    }])
    .unwrap();
    let tok = Tokenizer::from_pretrained(fixtures().join("roberta")).unwrap();
    let t = ds.tokenize(&tok, "text").unwrap();
    assert_eq!(
        t.column_names(),
        ["text", "input_ids", "attention_mask", "special_tokens_mask"]
    );
    let want = exp["tokenizers"]["roberta"]["wikitext"].as_array().unwrap();
    let mut all_ids = Vec::new();
    for (i, row) in want.iter().enumerate() {
        for col in ["input_ids", "attention_mask", "special_tokens_mask"] {
            assert_eq!(t.column(col).unwrap()[i], row[col], "{col} row {i}");
        }
        all_ids.extend(u32s(&row["input_ids"]));
    }
    let g = t.group_texts(64).unwrap();
    assert_eq!(
        g.column_names(),
        [
            "input_ids",
            "attention_mask",
            "special_tokens_mask",
            "labels"
        ]
    );
    assert_eq!(g.num_rows(), all_ids.len() / 64);
    for r in 0..g.num_rows() {
        let block = u32s(&g.column("input_ids").unwrap()[r]);
        assert_eq!(block, all_ids[r * 64..(r + 1) * 64]);
        assert_eq!(
            g.column("labels").unwrap()[r],
            g.column("input_ids").unwrap()[r]
        );
    }
}

#[test]
fn group_texts_drops_the_remainder_per_batch_of_1000_rows() {
    // 2500 rows of 3 ids: batches of 1000, 1000, 500 rows hold 3000, 3000, 1500 ids;
    // block 7 keeps 428 + 428 + 214 blocks (run_clm.py with datasets' default batch_size).
    let row = Value::Array(vec![1.into(), 2.into(), 3.into()]);
    let ds = massivetext::data::Dataset::from_columns(vec![massivetext::data::Column {
        name: "input_ids".into(),
        values: vec![row; 2500],
    }])
    .unwrap();
    let g = ds.group_texts(7).unwrap();
    assert_eq!(g.num_rows(), 428 + 428 + 214);
    assert!(matches!(ds.group_texts(0), Err(Error::InvalidArgument(_))));
}

#[test]
fn tokenize_non_string_column_is_an_error() {
    let ds = massivetext::data::Dataset::from_columns(vec![massivetext::data::Column {
        name: "text".into(),
        values: vec![Value::String("ok".into()), Value::from(3)],
    }])
    .unwrap();
    let tok = Tokenizer::from_pretrained(fixtures().join("bert")).unwrap();
    let err = ds.tokenize(&tok, "text").unwrap_err();
    assert!(err.to_string().contains("row 1"), "{err}");
    assert!(matches!(
        ds.tokenize(&tok, "nope"),
        Err(Error::UnknownColumn { .. })
    ));
}

#[test]
fn dataset_dict_tokenize_and_group_texts_map_over_splits() {
    let dd = load_dataset("text", data("multi30k/val.en")).unwrap();
    let tok = Tokenizer::from_pretrained(fixtures().join("gpt2")).unwrap();
    let lm = dd.tokenize(&tok, "text").unwrap().group_texts(32).unwrap();
    assert_eq!(lm.split_names(), ["train"]);
    let train = &lm["train"];
    assert_eq!(
        train.column_names(),
        [
            "input_ids",
            "attention_mask",
            "special_tokens_mask",
            "labels"
        ]
    );
    // 1014 lines < 1000-row batch? No: two batches (1000 + 14 rows), each drops its remainder.
    let lines: Vec<String> = std::fs::read_to_string(data("multi30k/val.en"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let ids = tok.encode_batch(&lines).unwrap();
    let n1: usize = ids[..1000].iter().map(Vec::len).sum();
    let n2: usize = ids[1000..].iter().map(Vec::len).sum();
    assert_eq!(train.num_rows(), n1 / 32 + n2 / 32);
}

/// `train-tokenizer` over several files, one of which is not UTF-8: the error names that file,
/// and nothing is written (the files before and after it were read through the same reader).
#[test]
fn train_tokenizer_names_the_file_it_cannot_read_and_writes_nothing() {
    use massivetext::jobs::train_tokenizer::{TrainTokenizerOptions, train_tokenizer};
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&good, "the cat sat on the mat\na dog ran in the park\n").unwrap();
    std::fs::write(&bad, b"fine first line\n\xff\xfe not utf-8\n").unwrap();
    let out = dir.path().join("tok");
    let files = vec![good.clone(), bad.clone(), good];
    let o = TrainTokenizerOptions::new(TokenizerKind::Bpe, 300, out.clone(), files);
    let e = train_tokenizer(&o).unwrap_err().to_string();
    assert!(e.contains("bad.txt"), "{e}");
    assert!(!out.join("tokenizer.json").exists());
}
