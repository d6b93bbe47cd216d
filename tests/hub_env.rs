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
}
