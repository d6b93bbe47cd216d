//! What our code writes for the Python side to read: the inputs of the golden folders
//! tests/fixtures/arrow/ours_{dataset,dict} and tests/fixtures/api/saved/{bert,gpt2,roberta}.
//! Shared by the tests that compare with those folders and by
//! `cargo run --example write_fixtures`, which rewrites them (then rerun the Python scripts that
//! read them: make_arrow.py and make_api.py).
#![allow(dead_code)] // each user takes what it needs

use std::path::{Path, PathBuf};

use massivetext::prelude::*;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The dataset of make_arrow.py's `ROWS`, built from the rows Python recorded.
pub fn our_dataset() -> Dataset {
    let text = std::fs::read_to_string(fixtures().join("arrow/expected.json")).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    let rows = expected["hf_dataset"]["rows"].as_array().unwrap().clone();
    Dataset::from_rows(rows.into_iter().map(|r| r.as_object().unwrap().clone()))
}

/// Two splits of it, one through an indices mapping.
pub fn our_dict() -> DatasetDict {
    let ds = our_dataset();
    DatasetDict::from_splits([
        ("train".to_string(), ds.select(&[4, 0, 2]).unwrap()),
        ("test".to_string(), ds.select(&[1, 3]).unwrap()),
    ])
}

/// The tokenizers the `save_pretrained` round trip saves: legacy BERT with an added token,
/// GPT-2 given a pad token, RoBERTa as loaded.
pub fn round_trip_tokenizers() -> Vec<(&'static str, Tokenizer)> {
    let tok = |name: &str| Tokenizer::from_pretrained(fixtures().join("tokenizers").join(name));
    let mut bert = tok("bert").unwrap();
    bert.add_tokens(&["newword"]).unwrap();
    let mut gpt2 = tok("gpt2").unwrap();
    gpt2.add_special_tokens(&SpecialTokens {
        pad_token: Some("<|pad|>".into()),
        ..Default::default()
    })
    .unwrap();
    let gpt2 = gpt2.with_padding_side(PaddingSide::Left);
    let roberta = tok("roberta").unwrap();
    vec![("bert", bert), ("gpt2", gpt2), ("roberta", roberta)]
}
