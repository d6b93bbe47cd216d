//! Generation for code against transformers (tests/fixtures/make_code_generate.py, on
//! SmolLM2-135M-Instruct from its GGUF file): `stop_strings` with greedy decoding, a left-padded
//! batch and beam search, token for token; fill-in-the-middle prompts and their greedy middle;
//! and the errors of both.
use std::path::Path;

use massivetext::generate::{FimTokens, GenerationConfig, GenerationMixin, fim_prompt};
use massivetext::prelude::*;
use serde_json::Value;

#[path = "common/smollm2.rs"]
#[allow(dead_code)]
mod smollm2;

fn expected() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/code_generate/expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn row(ids: Vec<u32>) -> Tensor {
    let n = ids.len();
    Tensor::from_vec(ids, (1, n), &Device::Cpu).unwrap()
}

fn tensor(r: &[Vec<u32>]) -> Tensor {
    Tensor::from_vec(r.concat(), (r.len(), r[0].len()), &Device::Cpu).unwrap()
}

/// The fixture's settings: its EOS and padding token, and the case's keyword arguments.
fn config(tok: &Tokenizer, settings: &Value) -> GenerationConfig {
    let eos = tok.token_to_id("<|endoftext|>").unwrap();
    let base = GenerationConfig {
        eos_token_id: vec![eos],
        pad_token_id: Some(eos),
        ..Default::default()
    };
    base.update(settings).unwrap()
}

fn run(model: &AutoModelForCausalLM, tok: &Tokenizer, case: &Value) -> Vec<Vec<u32>> {
    let args = ForwardArgs::new(&tensor(&rows(&case["input_ids"])))
        .attention_mask(&tensor(&rows(&case["attention_mask"])));
    let c = config(tok, &case["settings"]);
    model
        .generate_with_tokenizer(&args, &c, tok)
        .unwrap()
        .to_vec2()
        .unwrap()
}

#[test]
fn stop_strings_equal_transformers_token_for_token_and_smollm2_has_no_fim_tokens() {
    let want = expected();
    let path = smollm2::gguf_path();
    let tok = Tokenizer::from_gguf(&path).unwrap();
    let model = AutoModelForCausalLM::from_gguf(&path, &Device::Cpu).unwrap();

    for name in [
        "greedy_free",
        "greedy_stop",
        "greedy_two_stops",
        "greedy_code_stop",
        "batch_stop",
        "beam_free",
        "beam_stop",
    ] {
        let case = &want[name];
        let got = run(&model, &tok, case);
        assert_eq!(got, rows(&case["sequences"]), "{name}");
    }
    // the stop string straddles two tokens and ends the run early, and stays in the text
    let free = rows(&want["greedy_free"]["sequences"]);
    let stopped = rows(&want["greedy_stop"]["sequences"]);
    assert!(stopped[0].len() < free[0].len());
    let stop = want["greedy_stop"]["settings"]["stop_strings"][0]
        .as_str()
        .unwrap();
    assert!(
        tok.decode(&stopped[0], DecodeOptions::SKIP_SPECIAL_TOKENS)
            .unwrap()
            .contains(stop)
    );
    let beam_free = rows(&want["beam_free"]["sequences"]);
    assert!(rows(&want["beam_stop"]["sequences"])[0].len() < beam_free[0].len());

    // SmolLM2 has no FIM tokens: a clear error, as transformers' vocabulary says
    assert_eq!(want["smollm2_has_fim_tokens"], json!(false));
    let e = FimTokens::of(&tok).unwrap_err().to_string();
    assert!(e.contains("<fim_prefix>") && e.contains("no "), "{e}");
}

#[test]
fn fim_prompts_and_middles_equal_transformers() {
    let want = expected();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/code_generate/fim");
    let tok = Tokenizer::from_pretrained(&dir).unwrap();
    let model = AutoModelForCausalLM::from_dir(&dir, &Device::Cpu).unwrap();
    let ids = &want["fim_token_ids"];
    let fim = FimTokens::of(&tok).unwrap();
    assert_eq!(
        [fim.prefix, fim.suffix, fim.middle],
        [
            &ids["<fim_prefix>"],
            &ids["<fim_suffix>"],
            &ids["<fim_middle>"]
        ]
        .map(|v| v.as_u64().unwrap() as u32)
    );
    let cases = want["fim"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let (prefix, suffix) = (
            case["prefix"].as_str().unwrap(),
            case["suffix"].as_str().unwrap(),
        );
        let prompt = fim_prompt(&tok, prefix, suffix).unwrap();
        assert_eq!(vec![prompt.clone()], rows(&case["input_ids"]));
        let c = GenerationConfig {
            eos_token_id: vec![0],
            pad_token_id: Some(0),
            ..Default::default()
        }
        .update(&case["settings"])
        .unwrap();
        let input = row(prompt);
        let out: Vec<Vec<u32>> = model
            .generate_with_tokenizer(&ForwardArgs::new(&input), &c, &tok)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(out, rows(&case["sequences"]));
        let middle = model.generate_fim(&tok, prefix, suffix, &c).unwrap();
        assert_eq!(middle, case["middle"].as_str().unwrap());
    }
}

#[test]
fn stop_strings_need_a_tokenizer_and_fim_needs_its_tokens() {
    let texts = ["def f(x):\n    return x\n", "def g(y):\n    return y + 1\n"];
    let tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(300)).unwrap();
    let config = Gpt2Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 2,
        n_positions: 64,
        ..Gpt2Config::small(tok.vocab_size())
    };
    let model = AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap();
    let prompt = row(tok.encode_plain("def f(").unwrap());
    let c = GenerationConfig {
        max_new_tokens: 8,
        stop_strings: vec!["\n".into()],
        ..Default::default()
    };
    let e = model.generate(&prompt, &c).unwrap_err().to_string();
    assert!(
        e.contains("tokenizer") && e.contains("generate_with_tokenizer"),
        "{e}"
    );
    let empty = GenerationConfig {
        stop_strings: vec![String::new()],
        ..c.clone()
    };
    let e = model
        .generate_with_tokenizer(&ForwardArgs::new(&prompt), &empty, &tok)
        .unwrap_err()
        .to_string();
    assert!(e.contains("stop_strings[0] is empty"), "{e}");
    // several rows and no token to fill the ones that stopped
    let two = Tensor::new(&[[5u32, 6], [7, 8]], &Device::Cpu).unwrap();
    let e = model
        .generate_with_tokenizer(&ForwardArgs::new(&two), &c, &tok)
        .unwrap_err()
        .to_string();
    assert!(e.contains("pad_token_id"), "{e}");

    let e = fim_prompt(&tok, "def f(", "):\n").unwrap_err().to_string();
    for t in ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"] {
        assert!(e.contains(t), "{e}");
    }
    assert!(model.generate_fim(&tok, "a", "b", &c).is_err());
}

#[test]
fn sampled_rows_stop_right_after_their_stop_string() {
    let texts = ["def f(x):\n    return x\n"; 4];
    let tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(280)).unwrap();
    let config = Gpt2Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 2,
        n_positions: 128,
        ..Gpt2Config::small(tok.vocab_size())
    };
    let model = AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap();
    let eos = tok.token_to_id("<|endoftext|>").unwrap();
    let prompt = row(tok.encode_plain("x").unwrap());
    // a one-byte stop string that an untrained model over ~280 tokens writes within 100 tokens
    let stop = "e";
    let c = GenerationConfig {
        max_new_tokens: 100,
        do_sample: true,
        num_return_sequences: 6,
        eos_token_id: vec![eos],
        pad_token_id: Some(eos),
        stop_strings: vec![stop.into()],
        seed: 7,
        ..Default::default()
    };
    let out: Vec<Vec<u32>> = model
        .generate_with_tokenizer(&ForwardArgs::new(&prompt), &c, &tok)
        .unwrap()
        .to_vec2()
        .unwrap();
    let mut stopped = 0;
    for row in &out {
        // the new tokens up to the first EOS (a sampled EOS, or the padding after a stop)
        let new: Vec<u32> = row[1..].iter().copied().take_while(|&t| t != eos).collect();
        let ended_by_eos = new.len() < row.len() - 1;
        let text = tok.decode(&new, DecodeOptions::default()).unwrap();
        if let Some(at) = text.find(stop) {
            stopped += 1;
            // the token that completes the first stop string is the last one generated
            let upto = (1..=new.len())
                .find(|&i| {
                    tok.decode(&new[..i], DecodeOptions::default())
                        .unwrap()
                        .len()
                        > at
                })
                .unwrap();
            assert_eq!(upto, new.len(), "row went on after {stop:?}: {text:?}");
        } else {
            assert!(ended_by_eos || new.len() == c.max_new_tokens, "{text:?}");
        }
    }
    assert!(
        stopped >= 3,
        "only {stopped} of 6 sampled rows met {stop:?}"
    );
}

#[test]
fn stop_strings_in_generation_config_json() {
    let c = GenerationConfig::from_value(
        &json!({"stop_strings": "\ndef ", "max_new_tokens": 9}),
        Path::new("generation_config.json"),
    )
    .unwrap();
    assert_eq!(c.stop_strings, vec!["\ndef ".to_string()]);
    let c = GenerationConfig::from_value(
        &json!({"stop_strings": ["a", "b"]}),
        Path::new("generation_config.json"),
    )
    .unwrap();
    assert_eq!(c.stop_strings, vec!["a".to_string(), "b".to_string()]);
    let written = serde_json::to_value(&c).unwrap();
    assert_eq!(written["stop_strings"], json!(["a", "b"]));
    // unset: not written, so that transformers reads None rather than an empty list
    let plain = serde_json::to_value(GenerationConfig::default()).unwrap();
    assert!(plain.get("stop_strings").is_none());
    let e = GenerationConfig::from_value(&json!({"stop_strings": 3}), Path::new("g.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("stop_strings") && e.contains("g.json"), "{e}");
}
