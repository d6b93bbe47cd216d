//! Issue 26, must show: SmolLM2-135M-Instruct from llama.cpp's GGUF file (Q4_1) through
//! `AutoModelForCausalLM::from_gguf` against transformers' own GGUF loader
//! (`from_pretrained(dir, gguf_file=..., dtype=float32)`): the logits of every position of a chat
//! prompt, code and Unicode text (live, through tests/fixtures/make_gguf.py --logits: too big to
//! commit), 32 greedy tokens, and the chat template's ids.
use massivetext::generate::{GenerationConfig, GenerationMixin};
use massivetext::prelude::*;
use std::ffi::OsStr;

#[path = "common/reference.rs"]
mod reference;
#[path = "common/smollm2.rs"]
mod smollm2;
use smollm2::{expected, gguf_path};

#[test]
fn smollm2_from_gguf_gives_transformers_logits_greedy_tokens_and_chat_ids() {
    let want = expected();
    let path = gguf_path();
    let tok = Tokenizer::from_gguf(&path).unwrap();
    let model = AutoModelForCausalLM::from_gguf(&path, &Device::Cpu).unwrap();

    // the chat template's ids, as a notebook builds the prompt
    let chat = [ChatMessage::user("What is the capital of France?")];
    let prompt = tok.apply_chat_template(&chat, true).unwrap();
    let greedy = &want["greedy"];
    let want_prompt: Vec<u32> = serde_json::from_value(greedy["prompt"].clone()).unwrap();
    assert_eq!(prompt, want_prompt);

    // logits of every position, against transformers live
    let texts: Vec<String> = serde_json::from_value(want["tokenizer"]["texts"].clone()).unwrap();
    let prompts = vec![
        prompt.clone(),
        tok.encode(&texts[1]).unwrap(), // code
        tok.encode(&texts[3]).unwrap(), // Unicode and emoji
    ];
    let dir = tempfile::tempdir().unwrap();
    let ids_json = dir.path().join("ids.json");
    std::fs::write(&ids_json, serde_json::to_string(&prompts).unwrap()).unwrap();
    let out = dir.path().join("logits.safetensors");
    reference::run_script(
        "make_gguf.py",
        &[
            OsStr::new("--logits"),
            out.as_os_str(),
            path.as_os_str(),
            ids_json.as_os_str(),
        ],
    );
    let reference = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    for (i, ids) in prompts.iter().enumerate() {
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model
            .forward(&input, None)
            .unwrap()
            .logits
            .squeeze(0)
            .unwrap();
        let theirs = &reference[&format!("logits.{i}")];
        assert_eq!(logits.dims(), theirs.dims());
        let d = (logits - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        println!(
            "SmolLM2 (GGUF) prompt {i}: {} positions, max |Δ logits| vs transformers = {d:.2e}",
            ids.len()
        );
        assert!(d <= 2e-3, "prompt {i}: logits differ by {d}");
    }

    // 32 greedy tokens (no stop at eos, as the fixture's argmax loop), with the KV cache
    let config = GenerationConfig {
        max_new_tokens: 32,
        eos_token_id: vec![],
        ..Default::default()
    };
    let input = Tensor::new(prompt.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let seq: Vec<Vec<u32>> = model.generate(&input, &config).unwrap().to_vec2().unwrap();
    let new = &seq[0][prompt.len()..];
    let want_tokens: Vec<u32> = serde_json::from_value(greedy["tokens"].clone()).unwrap();
    assert_eq!(new, &want_tokens[..]);
    println!(
        "greedy: {:?}",
        tok.decode(new, DecodeOptions::default()).unwrap()
    );
}

#[test]
fn a_gguf_model_saves_as_a_folder_transformers_layout_loads_back_the_same() {
    let model = AutoModelForCausalLM::from_gguf(gguf_path(), &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save_pretrained(dir.path()).unwrap();
    let back = AutoModelForCausalLM::from_dir(dir.path(), &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[1u32, 4093, 198, 6004, 2]], &Device::Cpu).unwrap();
    let a = model.forward(&ids, None).unwrap().logits;
    let b = back.forward(&ids, None).unwrap().logits;
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0);
}
