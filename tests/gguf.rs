//! Issue 26: SmolLM2-135M-Instruct from llama.cpp's GGUF file (Q4_1) against transformers' own
//! GGUF loader (tests/fixtures/make_gguf.py): the tokenizer's ids on varied text, the Hugging Face
//! config the metadata describes, and every dequantized tensor under its Hugging Face name.
use massivetext::gguf::GgufFile;
use massivetext::models::gguf::{config_from_gguf, load_gguf_checkpoint};
use massivetext::prelude::*;

#[path = "common/smollm2.rs"]
mod smollm2;
use smollm2::{expected, gguf_path};

#[test]
fn tokenizer_from_gguf_gives_transformers_ids_on_varied_text() {
    let want = &expected()["tokenizer"];
    let tok = Tokenizer::from_gguf(gguf_path()).unwrap();
    assert_eq!(tok.vocab_size(), want["len"].as_u64().unwrap() as usize);
    let map = &want["special_tokens_map"];
    let s = tok.special_tokens();
    assert_eq!(s.bos_token.as_deref(), map["bos_token"].as_str());
    assert_eq!(s.eos_token.as_deref(), map["eos_token"].as_str());
    assert_eq!(s.unk_token.as_deref(), map["unk_token"].as_str());
    assert_eq!(s.pad_token.as_deref(), map["pad_token"].as_str());
    assert_eq!(tok.pad_token_id(), Some(2));
    let texts: Vec<String> = serde_json::from_value(want["texts"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(want["ids"].clone()).unwrap();
    let decoded: Vec<String> = serde_json::from_value(want["decoded"].clone()).unwrap();
    let skipped: Vec<String> =
        serde_json::from_value(want["decoded_skip_special"].clone()).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let got = tok.encode(text).unwrap();
        assert_eq!(got, ids[i], "ids of {text:?}");
        assert_eq!(
            tok.decode(&got, DecodeOptions::default()).unwrap(),
            decoded[i],
            "decode of {text:?}"
        );
        assert_eq!(
            tok.decode(&got, DecodeOptions::SKIP_SPECIAL_TOKENS)
                .unwrap(),
            skipped[i],
            "decode(skip) of {text:?}"
        );
    }
}

#[test]
fn a_saved_gguf_tokenizer_loads_back_with_the_same_ids_and_template() {
    let tok = Tokenizer::from_gguf(gguf_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tok.save_pretrained(dir.path()).unwrap();
    let back = Tokenizer::from_pretrained(dir.path()).unwrap();
    let text = "<|im_start|>user\nfn main() {}  🦀<|im_end|>";
    assert_eq!(back.encode(text).unwrap(), tok.encode(text).unwrap());
    assert_eq!(back.special_tokens(), tok.special_tokens());
    assert_eq!(back.chat_template(), tok.chat_template());
    assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
}

#[test]
fn the_config_from_gguf_metadata_is_transformers() {
    let want = expected()["config"].clone();
    let file = GgufFile::open(gguf_path()).unwrap();
    let got = config_from_gguf(&file).unwrap();
    for (k, v) in want.as_object().unwrap() {
        if k == "architectures" {
            // AutoConfig leaves it empty; the model transformers loads is a LlamaForCausalLM
            assert_eq!(got[k], json!(["LlamaForCausalLM"]));
            continue;
        }
        assert_eq!(got.get(k), Some(v), "config key `{k}`");
    }
    assert_eq!(got["rope_theta"], want["rope_parameters"]["rope_theta"]);
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn every_dequantized_tensor_is_transformers_under_its_hugging_face_name() {
    let want = expected()["tensors"].clone();
    let want = want.as_object().unwrap();
    let ckpt = load_gguf_checkpoint(gguf_path(), &Device::Cpu).unwrap();
    // transformers' state dict also lists the tied head; the file has no `output` tensor
    let mut names: Vec<&String> = want.keys().filter(|k| *k != "lm_head.weight").collect();
    names.sort();
    let got: Vec<&String> = ckpt.tensors.keys().collect();
    assert_eq!(got, names);
    assert_eq!(ckpt.config["tie_word_embeddings"], json!(true));
    for name in names {
        let w = &want[name];
        let t = &ckpt.tensors[name];
        let shape: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap();
        assert_eq!(t.dims(), &shape[..], "{name} shape");
        assert_eq!(t.dtype(), DType::F32);
        let flat = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let positions: Vec<usize> = serde_json::from_value(w["positions"].clone()).unwrap();
        let values: Vec<f32> = serde_json::from_value(w["values"].clone()).unwrap();
        for (p, v) in positions.iter().zip(&values) {
            assert!(
                close(flat[*p] as f64, *v as f64, 1e-6),
                "{name}[{p}] = {} but transformers has {v}",
                flat[*p]
            );
        }
        let sum: f64 = flat.iter().map(|&x| x as f64).sum();
        let sum_sq: f64 = flat.iter().map(|&x| (x as f64) * (x as f64)).sum();
        // moves when values move (a row permutation keeps the sums)
        let weighted: f64 = flat
            .iter()
            .enumerate()
            .map(|(i, &x)| x as f64 * (((i as u64 * 7919) % 1013) as f64 / 1013.0))
            .sum();
        assert!(
            close(weighted, w["weighted_sum"].as_f64().unwrap(), 1e-7),
            "{name} position-weighted sum {weighted} vs {}",
            w["weighted_sum"]
        );
        assert!(
            close(sum, w["sum"].as_f64().unwrap(), 1e-7),
            "{name} sum {sum} vs {}",
            w["sum"]
        );
        assert!(
            close(sum_sq, w["sum_sq"].as_f64().unwrap(), 1e-7),
            "{name} sum of squares"
        );
    }
}

#[test]
fn damaged_or_foreign_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("model.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00short").unwrap();
    let e = Tokenizer::from_gguf(&bad).unwrap_err().to_string();
    assert!(e.contains("model.gguf") && e.contains("GGUF"), "{e}");
    let e = GgufFile::open(dir.path().join("missing.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.gguf"), "{e}");
    // a file cut short after its header: the tensor data is missing
    let full = std::fs::read(gguf_path()).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let e = load_gguf_checkpoint(&cut, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.gguf") && e.contains("tensor"), "{e}");
}
