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
            &tok.decode(&ids, true).unwrap(),
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
        tok.save(dir.path()).unwrap();
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
