//! Issue 26: a GGUF file with a SentencePiece vocabulary (`tokenizer.ggml.model = "llama"`, as
//! Llama 2, Mistral 7B and TinyLlama files have) gives transformers' ids, decodings and special
//! tokens (tests/fixtures/make_gguf_spm.py): merges derived from the scores when the file lists
//! none, byte fallback for characters outside the vocabulary, `▁` word marks, control and
//! user-defined tokens kept whole, a BOS when the file does not say otherwise.
use std::path::{Path, PathBuf};

use massivetext::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("spm_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check(name: &str) {
    let want = &expected()[name];
    let tok = Tokenizer::from_gguf(fixtures().join(name)).unwrap();
    assert_eq!(
        tok.vocab_size(),
        want["len"].as_u64().unwrap() as usize,
        "{name}"
    );
    let map = &want["special_tokens_map"];
    let s = tok.special_tokens();
    assert_eq!(s.bos_token.as_deref(), map["bos_token"].as_str(), "{name}");
    assert_eq!(s.eos_token.as_deref(), map["eos_token"].as_str(), "{name}");
    assert_eq!(s.unk_token.as_deref(), map["unk_token"].as_str(), "{name}");
    let texts: Vec<String> = serde_json::from_value(want["texts"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(want["ids"].clone()).unwrap();
    let decoded: Vec<String> = serde_json::from_value(want["decoded"].clone()).unwrap();
    let skipped: Vec<String> =
        serde_json::from_value(want["decoded_skip_special"].clone()).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let got = tok.encode(text).unwrap();
        assert_eq!(got, ids[i], "{name}: ids of {text:?}");
        assert_eq!(
            tok.decode(&got, DecodeOptions::default()).unwrap(),
            decoded[i],
            "{name}: decode of {text:?}"
        );
        assert_eq!(
            tok.decode(&got, DecodeOptions::SKIP_SPECIAL_TOKENS)
                .unwrap(),
            skipped[i],
            "{name}: decode(skip) of {text:?}"
        );
    }
}

#[test]
fn merges_derived_from_the_scores_give_transformers_ids() {
    check("spm.gguf");
}

#[test]
fn listed_merges_and_the_default_bos_give_transformers_ids() {
    check("spm_merges.gguf");
}

#[test]
fn a_sentencepiece_gguf_tokenizer_saves_and_loads_back() {
    let tok = Tokenizer::from_gguf(fixtures().join("spm.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tok.save_pretrained(dir.path()).unwrap();
    let back = Tokenizer::from_pretrained(dir.path()).unwrap();
    let text = "<s>naïve 🦀 <tool>x</tool>";
    assert_eq!(back.encode(text).unwrap(), tok.encode(text).unwrap());
    assert_eq!(back.special_tokens(), tok.special_tokens());
}
