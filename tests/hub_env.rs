//! The environment path of the hub resolver (`HF_HOME`, `HF_HUB_OFFLINE`). Environment variables
//! are process-wide, so this binary holds exactly one test: nothing else runs beside it.
use std::path::{Path, PathBuf};

use massivetext::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

#[test]
fn from_pretrained_reads_hf_home_cache_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("hub").join("models--tiny-org--tiny-bert");
    let snap = repo.join("snapshots").join("feedbeef");
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("bert").join(f), snap.join(f)).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "feedbeef\n").unwrap();
    // SAFETY: the only test in this binary, so no other thread reads the environment.
    unsafe {
        std::env::remove_var("HF_HUB_CACHE");
        std::env::set_var("HF_HOME", tmp.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    let m = AutoModelForMaskedLM::from_pretrained("tiny-org/tiny-bert").unwrap();
    let ids = Tensor::new(&[[5u32, 6, 7]], &Device::Cpu).unwrap();
    assert_eq!(m.forward(&ids, None).unwrap().logits.dims(), &[1, 3, 101]);

    let msg = AutoModelForMaskedLM::from_pretrained("tiny-org/absent")
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("models--tiny-org--absent") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );
    // HF_HUB_CACHE wins over HF_HOME
    let other = tempfile::tempdir().unwrap();
    unsafe { std::env::set_var("HF_HUB_CACHE", other.path()) };
    assert!(AutoModelForMaskedLM::from_pretrained("tiny-org/tiny-bert").is_err());
    unsafe { std::env::set_var("HF_HUB_CACHE", tmp.path().join("hub")) };
    assert!(AutoModelForMaskedLM::from_pretrained("tiny-org/tiny-bert").is_ok());

    // issue 11: the tokenizer of the same id resolves through the same cache, and a revision
    // other than main is honoured by both (refs/v2 names another snapshot).
    unsafe { std::env::remove_var("HF_HUB_CACHE") };
    let toks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizers/bert");
    for f in ["vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(toks.join(f), snap.join(f)).unwrap();
    }
    let tok = Tokenizer::from_pretrained("tiny-org/tiny-bert").unwrap();
    assert_eq!(tok.tokenizer_class(), "BertTokenizer");
    // v2 is another checkpoint: RoBERTa's weights and config where main has BERT's
    let v2 = repo.join("snapshots").join("c0ffee02");
    std::fs::create_dir_all(&v2).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("roberta").join(f), v2.join(f)).unwrap();
    }
    std::fs::write(repo.join("refs").join("v2"), "c0ffee02").unwrap();
    let logits = |m: &AutoModelForMaskedLM| {
        let out = m.forward(&ids, None).unwrap().logits;
        out.to_vec3::<f32>().unwrap()
    };
    let at_main = AutoModelForMaskedLM::from_pretrained("tiny-org/tiny-bert").unwrap();
    let at_v2 = AutoModelForMaskedLM::from_pretrained_revision("tiny-org/tiny-bert", "v2").unwrap();
    let bert = AutoModelForMaskedLM::from_dir(fixture("bert"), &Device::Cpu).unwrap();
    let roberta = AutoModelForMaskedLM::from_dir(fixture("roberta"), &Device::Cpu).unwrap();
    assert_eq!(at_main.config(), bert.config());
    assert_eq!(at_v2.config(), roberta.config());
    assert_eq!(logits(&at_main), logits(&bert));
    assert_eq!(logits(&at_v2), logits(&roberta));
    assert_ne!(logits(&at_v2), logits(&at_main));
    // v2 has a model but no tokenizer files: the model loads, the tokenizer is not found there
    let msg = Tokenizer::from_pretrained_revision("tiny-org/tiny-bert", "v2")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("HF_HUB_OFFLINE") && msg.contains("`v2`"),
        "{msg}"
    );
    // v2's own tokenizer (RoBERTa's byte-level BPE) is the one loaded at v2, BERT's at main
    let roberta_toks = toks.with_file_name("roberta");
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
        std::fs::copy(roberta_toks.join(f), v2.join(f)).unwrap();
    }
    let tok_v2 = Tokenizer::from_pretrained_revision("tiny-org/tiny-bert", "v2").unwrap();
    let want = Tokenizer::from_pretrained(&roberta_toks).unwrap();
    assert_eq!(tok_v2.tokenizer_class(), want.tokenizer_class());
    assert_ne!(tok_v2.tokenizer_class(), tok.tokenizer_class());
    let text = "Hello world, unaffable tokens";
    assert_eq!(tok_v2.encode(text).unwrap(), want.encode(text).unwrap());
    assert_ne!(tok_v2.encode(text).unwrap(), tok.encode(text).unwrap());
    // an unknown revision names itself
    let msg = AutoModelForMaskedLM::from_pretrained_revision("tiny-org/tiny-bert", "v9")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`v9`"), "{msg}");
}
