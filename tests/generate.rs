//! Generation against transformers' `generate` (tests/fixtures/make_generate.py), the KV cache
//! against recomputing the prefix, sampling properties, pipelines and bad input.
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use massivetext::generate::{EarlyStopping, GenerationConfig, GenerationMixin, pipeline};
use massivetext::models::{AutoModelForCausalLM, AutoModelForMaskedLM, ForwardArgs, Gpt2Config};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn gpt2() -> AutoModelForCausalLM {
    AutoModelForCausalLM::from_dir(fixture("models/gpt2"), &Device::Cpu).unwrap()
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("generate/expected.json")).unwrap())
        .unwrap()
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn tensor(r: &[Vec<u32>]) -> Tensor {
    let (b, t) = (r.len(), r[0].len());
    Tensor::from_vec(r.concat(), (b, t), &Device::Cpu).unwrap()
}

/// The model's own settings with the case's keyword arguments on top, as transformers merges.
fn config(model: &AutoModelForCausalLM, settings: &Value) -> GenerationConfig {
    let mut c = model.generation_config().unwrap();
    for (k, v) in settings.as_object().unwrap() {
        match k.as_str() {
            "max_new_tokens" => c.max_new_tokens = v.as_u64().unwrap() as usize,
            "min_new_tokens" => c.min_new_tokens = v.as_u64().unwrap() as usize,
            "num_beams" => c.num_beams = v.as_u64().unwrap() as usize,
            "num_return_sequences" => c.num_return_sequences = v.as_u64().unwrap() as usize,
            "eos_token_id" => c.eos_token_id = vec![v.as_u64().unwrap() as u32],
            "pad_token_id" => c.pad_token_id = Some(v.as_u64().unwrap() as u32),
            "repetition_penalty" => c.repetition_penalty = v.as_f64().unwrap(),
            "no_repeat_ngram_size" => c.no_repeat_ngram_size = v.as_u64().unwrap() as usize,
            "length_penalty" => c.length_penalty = v.as_f64().unwrap(),
            "early_stopping" => {
                c.early_stopping = match v {
                    Value::Bool(b) => (*b).into(),
                    _ => EarlyStopping::Never,
                }
            }
            other => panic!("unhandled setting {other}"),
        }
    }
    c
}

fn run_case(model: &AutoModelForCausalLM, name: &str, case: &Value, cache: bool) -> Vec<Vec<u32>> {
    let args = ForwardArgs::new(&tensor(&rows(&case["input_ids"])))
        .attention_mask(&tensor(&rows(&case["attention_mask"])));
    let c = config(model, &case["settings"]);
    let out = if cache {
        model.generate_with(&args, &c)
    } else {
        model.generate_without_cache(&args, &c)
    }
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    out.to_vec2().unwrap()
}

#[test]
fn every_case_equals_transformers_generate_token_for_token() {
    let model = gpt2();
    let exp = expected();
    let cases = exp.as_object().unwrap();
    assert!(cases.len() >= 14);
    for (name, case) in cases {
        let want = rows(&case["sequences"]);
        let got = run_case(&model, name, case, true);
        assert_eq!(got, want, "{name} (settings {})", case["settings"]);
    }
}

#[test]
fn kv_cache_gives_the_tokens_of_recomputing_the_prefix() {
    let model = gpt2();
    let exp = expected();
    for name in [
        "greedy",
        "beam3",
        "left_padded_greedy",
        "left_padded_beam",
        "repetition_penalty",
    ] {
        let case = &exp[name];
        assert_eq!(
            run_case(&model, name, case, true),
            run_case(&model, name, case, false),
            "{name}"
        );
    }
    // and on the composed kernels (the GPU's path)
    massivetext::kernels::with_fused(false, || {
        let case = &exp["left_padded_beam"];
        assert_eq!(
            run_case(&model, "composed", case, true),
            rows(&case["sequences"])
        );
    });
}

/// Our own batch of left-padded prompts continues each prompt as our `generate` does with the
/// prompt alone (greedy and beam search; with and without the KV cache).
#[test]
fn a_padded_prompt_gives_the_tokens_it_gives_alone() {
    let model = gpt2();
    let exp = expected();
    for name in ["left_padded_greedy", "left_padded_beam"] {
        let case = &exp[name];
        let masks = rows(&case["attention_mask"]);
        for cache in [true, false] {
            let batch = run_case(&model, name, case, cache);
            for (i, (row, mask)) in batch.iter().zip(&masks).enumerate() {
                let prompt: Vec<u32> = rows(&case["input_ids"])[i]
                    .iter()
                    .zip(mask)
                    .filter(|(_, m)| **m == 1)
                    .map(|(t, _)| *t)
                    .collect();
                let alone = serde_json::json!({
                    "input_ids": [prompt],
                    "attention_mask": [vec![1; prompt.len()]],
                    "settings": case["settings"],
                });
                let alone = run_case(&model, name, &alone, cache).remove(0);
                let new_batch = &row[mask.len()..];
                let new_alone = &alone[prompt.len()..];
                assert!(new_batch.len() >= 8, "{name} row {i}: {new_batch:?}");
                assert_eq!(new_batch, new_alone, "{name} (cache {cache}) row {i}");
            }
        }
    }
}

fn small_lm(vocab: usize) -> AutoModelForCausalLM {
    let config = Gpt2Config {
        n_layer: 2,
        n_embd: 32,
        n_head: 4,
        n_positions: 64,
        ..Gpt2Config::small(vocab)
    };
    let mut m = AutoModelForCausalLM::from_config_seeded(config, &Device::Cpu, 3).unwrap();
    m.eval();
    m
}

fn sample_cfg(seed: u64) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: 24,
        do_sample: true,
        top_k: 0,
        seed,
        ..Default::default()
    }
}

#[test]
fn sampling_is_seeded() {
    let m = small_lm(50);
    let p = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let a: Vec<Vec<u32>> = m.generate(&p, &sample_cfg(7)).unwrap().to_vec2().unwrap();
    let b: Vec<Vec<u32>> = m.generate(&p, &sample_cfg(7)).unwrap().to_vec2().unwrap();
    let c: Vec<Vec<u32>> = m.generate(&p, &sample_cfg(8)).unwrap().to_vec2().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // several return sequences per prompt, each its own draw
    let cfg = GenerationConfig {
        num_return_sequences: 3,
        ..sample_cfg(7)
    };
    let several: Vec<Vec<u32>> = m.generate(&p, &cfg).unwrap().to_vec2().unwrap();
    assert_eq!(several.len(), 3);
    assert!(several[0] != several[1] || several[1] != several[2]);
}

/// The next-token probabilities after `prefix` (eval mode).
fn next_probs(m: &AutoModelForCausalLM, prefix: &[u32], temperature: f32) -> Vec<f32> {
    let ids = Tensor::from_vec(prefix.to_vec(), (1, prefix.len()), &Device::Cpu).unwrap();
    let logits: Vec<f32> = m
        .forward(&ids, None)
        .unwrap()
        .logits
        .get(0)
        .unwrap()
        .get(prefix.len() - 1)
        .unwrap()
        .to_vec1()
        .unwrap();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits
        .iter()
        .map(|l| ((l - max) / temperature).exp())
        .collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

#[test]
fn top_k_and_top_p_never_leave_their_sets() {
    let m = small_lm(50);
    let prompt = [1u32, 2, 3];
    let probs = next_probs(&m, &prompt, 1.0);
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let top3: Vec<u32> = order[..3].iter().map(|&i| i as u32).collect();
    // the nucleus of 0.3: the smallest prefix of the sorted tokens reaching 0.3
    let mut nucleus = vec![];
    let mut cum = 0.0;
    for &i in &order {
        nucleus.push(i as u32);
        cum += probs[i];
        if cum >= 0.3 {
            break;
        }
    }
    let p = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    for seed in 0..40 {
        let k = GenerationConfig {
            max_new_tokens: 1,
            top_k: 3,
            ..sample_cfg(seed)
        };
        let t: Vec<Vec<u32>> = m.generate(&p, &k).unwrap().to_vec2().unwrap();
        assert!(top3.contains(&t[0][3]), "top-k drew {}", t[0][3]);
        let tp = GenerationConfig {
            max_new_tokens: 1,
            top_p: 0.3,
            ..sample_cfg(seed)
        };
        let t: Vec<Vec<u32>> = m.generate(&p, &tp).unwrap().to_vec2().unwrap();
        assert!(
            nucleus.contains(&t[0][3]),
            "top-p drew {} outside {nucleus:?}",
            t[0][3]
        );
    }
}

#[test]
fn low_temperature_sampling_approaches_greedy() {
    let m = small_lm(50);
    let p = Tensor::new(&[[4u32, 9, 1]], &Device::Cpu).unwrap();
    let greedy: Vec<Vec<u32>> = m
        .generate(
            &p,
            &GenerationConfig {
                max_new_tokens: 16,
                ..Default::default()
            },
        )
        .unwrap()
        .to_vec2()
        .unwrap();
    let cold = GenerationConfig {
        max_new_tokens: 16,
        temperature: 1e-3,
        ..sample_cfg(11)
    };
    let sampled: Vec<Vec<u32>> = m.generate(&p, &cold).unwrap().to_vec2().unwrap();
    assert_eq!(sampled, greedy);
    // and a hot temperature does not
    let hot = GenerationConfig {
        temperature: 5.0,
        ..cold
    };
    let sampled: Vec<Vec<u32>> = m.generate(&p, &hot).unwrap().to_vec2().unwrap();
    assert_ne!(sampled, greedy);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let m = gpt2();
    let p = Tensor::new(&[[5u32, 17]], &Device::Cpu).unwrap();
    let err = |c: GenerationConfig| m.generate(&p, &c).unwrap_err().to_string();
    let e = err(GenerationConfig {
        top_p: 1.5,
        do_sample: true,
        ..Default::default()
    });
    assert!(e.contains("top_p") && e.contains("1.5"), "{e}");
    let e = err(GenerationConfig {
        temperature: 0.0,
        do_sample: true,
        ..Default::default()
    });
    assert!(e.contains("temperature"), "{e}");
    let e = err(GenerationConfig {
        num_beams: 0,
        ..Default::default()
    });
    assert!(e.contains("num_beams"), "{e}");
    // the context holds 40 positions
    let long = Tensor::zeros((1, 35), DType::U32, &Device::Cpu).unwrap();
    let c = GenerationConfig {
        max_new_tokens: 10,
        ..Default::default()
    };
    let e = m.generate(&long, &c).unwrap_err().to_string();
    assert!(
        e.contains("35") && e.contains("40") && e.contains("truncate_prompt"),
        "{e}"
    );
    let cut = GenerationConfig {
        truncate_prompt: true,
        ..c
    };
    assert_eq!(m.generate(&long, &cut).unwrap().dims(), &[1, 40]);
    // an empty prompt starts from BOS, or fails without one
    let empty = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
    let with_bos = m.generation_config().unwrap();
    assert_eq!(with_bos.bos_token_id, Some(0));
    assert!(
        m.generate(
            &empty,
            &GenerationConfig {
                max_new_tokens: 3,
                ..with_bos.clone()
            }
        )
        .is_ok()
    );
    let e = m
        .generate(
            &empty,
            &GenerationConfig {
                bos_token_id: None,
                ..with_bos
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("bos_token_id"), "{e}");
    // a masked LM does not generate
    let mlm = AutoModelForMaskedLM::from_dir(fixture("models/bert"), &Device::Cpu).unwrap();
    let e = mlm
        .generate(&p, &GenerationConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("causal") && e.contains("fill-mask"), "{e}");
}

#[test]
fn generation_config_comes_from_the_checkpoint() {
    let m = gpt2();
    let c = m.generation_config().unwrap();
    assert_eq!(c.eos_token_id, vec![0]);
    assert_eq!(c.bos_token_id, Some(0));
    assert_eq!(c.pad_id(), Some(0));
    // struct update from the checkpoint's settings
    let beam = GenerationConfig {
        max_new_tokens: 5,
        num_beams: 4,
        ..m.generation_config().unwrap()
    };
    assert_eq!(beam.eos_token_id, vec![0]);
    // saved with the model and read back
    let dir = tempfile::tempdir().unwrap();
    m.save_pretrained(dir.path()).unwrap();
    assert!(dir.path().join("generation_config.json").is_file());
    let back = GenerationConfig::from_pretrained(dir.path()).unwrap();
    assert_eq!(back, c);
    // early_stopping accepts true, false and "never"
    let v: GenerationConfig =
        serde_json::from_str(r#"{"early_stopping": "never", "eos_token_id": [3, 4]}"#).unwrap();
    assert_eq!(v.early_stopping, EarlyStopping::Never);
    assert_eq!(v.eos_token_id, vec![3, 4]);
}

#[test]
fn fill_mask_pipeline_equals_transformers() {
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("generate/fill_mask_expected.json")).unwrap(),
    )
    .unwrap();
    // the model and its tokenizer in one folder, as pipeline() loads them
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("models/bert").join(f), dir.path().join(f)).unwrap();
    }
    for f in std::fs::read_dir(fixture("generate/fill_mask")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let p = pipeline("fill-mask", dir.path().to_str().unwrap()).unwrap();
    let mut worst = 0f32;
    for (text, want) in exp["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(exp["results"].as_array().unwrap())
    {
        let got = match p.call(text.as_str().unwrap()).unwrap() {
            massivetext::generate::PipelineOutput::FillMask(m) => m,
            other => panic!("{other:?}"),
        };
        let want = want.as_array().unwrap();
        // one list per [MASK], each with the pipeline's top_k = 5 candidates, as transformers
        assert_eq!(got.len(), want.len(), "{text}: masks");
        for (g, w) in got.iter().zip(want) {
            let w = w.as_array().unwrap();
            assert_eq!(w.len(), 5, "the reference's candidates");
            assert_eq!(g.len(), w.len(), "{text}: candidates per mask");
            for (g, w) in g.iter().zip(w) {
                assert_eq!(g.token as u64, w["token"].as_u64().unwrap());
                assert_eq!(g.token_str, w["token_str"].as_str().unwrap());
                let d = (g.score - w["score"].as_f64().unwrap() as f32).abs();
                worst = worst.max(d);
                assert!(d <= 1e-4, "score {} vs {}", g.score, w["score"]);
            }
        }
    }
    println!("fill-mask: max |score - transformers| = {worst:.2e}");
}

#[test]
fn streaming_hands_out_the_text_as_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // a character vocabulary: the model's ids are the tokenizer's
    let m = small_lm(40);
    let vocab: serde_json::Map<String, Value> = (0..40u32)
        .map(|i| {
            (
                char::from(b'a' + (i % 26) as u8).to_string() + &"x".repeat((i / 26) as usize),
                Value::from(i),
            )
        })
        .collect();
    let tok_json = serde_json::json!({
        "version": "1.0",
        "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "post_processor": null,
        "pre_tokenizer": {"type": "Split", "pattern": {"String": ""}, "behavior": "Isolated", "invert": false},
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "a"}
    });
    std::fs::write(dir.path().join("tokenizer.json"), tok_json.to_string()).unwrap();
    let tok = massivetext::tokenizer::Tokenizer::from_pretrained(dir.path()).unwrap();
    let c = GenerationConfig {
        max_new_tokens: 12,
        ..Default::default()
    };
    let mut pieces = vec![];
    let text = m
        .generate_text_stream(&tok, "abc", &c, |s| pieces.push(s.to_string()))
        .unwrap();
    assert!(pieces.len() >= 2, "{pieces:?}");
    assert_eq!(pieces.concat(), text);
    assert_eq!(text, m.generate_text(&tok, "abc", &c).unwrap());
}

#[test]
fn generate_command_continues_a_prompt_like_the_library() {
    // the fill-mask tokenizer's words w5..w100 are ids 5..100 of the GPT-2 fixture too
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "generation_config.json"] {
        std::fs::copy(fixture("models/gpt2").join(f), dir.path().join(f)).unwrap();
    }
    for f in std::fs::read_dir(fixture("generate/fill_mask")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let model = dir.path().to_str().unwrap();
    let out = massivetext::cli::run_from([
        "massivetext",
        "generate",
        "--model",
        model,
        "--prompt",
        "w5 w17 w42 w8",
        "--max-new-tokens",
        "6",
    ])
    .unwrap();
    // greedy from [5, 17, 42, 8]: transformers gives 72 72 72 72 72 72 (see expected.json)
    assert_eq!(out, "w5 w17 w42 w8w72 w72 w72 w72 w72 w72");
    let e = massivetext::cli::run_from([
        "massivetext",
        "generate",
        "--model",
        model,
        "--prompt",
        "w5",
        "--do-sample",
        "--top-p",
        "2",
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("top_p"), "{e}");
}

fn bf16_expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("generate/bf16_weights.json")).unwrap())
        .unwrap()
}

fn flat(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        x => vec![x.as_f64().unwrap() as f32],
    }
}

fn max_diff(a: &Tensor, want: &[f32]) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), want.len());
    a.iter()
        .zip(want)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn dtype_of(params: &[(String, candle_core::Var)], suffix: &str) -> DType {
    params
        .iter()
        .find(|(n, _)| n.ends_with(suffix))
        .unwrap_or_else(|| panic!("no parameter {suffix}"))
        .1
        .dtype()
}

/// `with_weight_dtype(BF16)`: matrices stored in bf16, everything computed in f32, equal to
/// transformers in f32 on the bf16-rounded weights (tests/fixtures/make_bf16_weights.py): every
/// generate case token for token, and logits both through the bf16 kernel (≤ 8 rows: a prompt
/// of 4, a decoding step) and through the widened f32 product (12 and 18 rows).
#[test]
fn bf16_weights_equal_transformers_on_the_rounded_weights() {
    let full = gpt2();
    let m = full.with_weight_dtype(DType::BF16).unwrap();
    let params = m.named_parameters();
    assert_eq!(dtype_of(&params, "wte.weight"), DType::BF16);
    assert_eq!(dtype_of(&params, "h.0.attn.c_attn.weight"), DType::BF16);
    assert_eq!(dtype_of(&params, "h.0.mlp.c_proj.weight"), DType::BF16);
    assert_eq!(dtype_of(&params, "wpe.weight"), DType::F32);
    assert_eq!(dtype_of(&params, "h.0.attn.c_attn.bias"), DType::F32);
    assert_eq!(dtype_of(&params, "ln_f.weight"), DType::F32);
    let exp = bf16_expected();
    let cases = expected();
    let seqs = exp["sequences"].as_object().unwrap();
    assert_eq!(seqs.len(), cases.as_object().unwrap().len());
    for (name, want) in seqs {
        let got = run_case(&m, name, &cases[name], true);
        assert_eq!(got, rows(want), "{name}: bf16 weights vs transformers");
    }
    let back = m.with_weight_dtype(DType::F32).unwrap();
    assert_eq!(dtype_of(&back.named_parameters(), "wte.weight"), DType::F32);
    for name in ["gpt2_4", "gpt2_12"] {
        let case = &exp["logits"][name];
        let ids = tensor(&rows(&case["input_ids"]));
        let want = flat(&case["logits"]);
        let logits = m.forward(&ids, None).unwrap().logits;
        let d = max_diff(&logits, &want);
        println!("{name}: max |logits - transformers (bf16-rounded weights)| = {d:.2e}");
        assert!(d <= 1e-4, "{name}: logits differ by {d}");
        // back in f32, the rounded weights give the same logits
        let d = max_diff(&back.forward(&ids, None).unwrap().logits, &want);
        assert!(
            d <= 1e-4,
            "{name}: with_weight_dtype(F32) logits differ by {d}"
        );
    }
    let bert = AutoModelForMaskedLM::from_dir(fixture("models/bert"), &Device::Cpu)
        .unwrap()
        .with_weight_dtype(DType::BF16)
        .unwrap();
    assert_eq!(
        dtype_of(&bert.named_parameters(), "token_type_embeddings.weight"),
        DType::F32
    );
    for name in ["bert_2x9", "bert_1x5"] {
        let case = &exp["logits"][name];
        let args = ForwardArgs::new(&tensor(&rows(&case["input_ids"])))
            .attention_mask(&tensor(&rows(&case["attention_mask"])));
        let logits = bert.forward_with(&args).unwrap().logits;
        let d = max_diff(&logits, &flat(&case["logits"]));
        println!("{name}: max |logits - transformers (bf16-rounded weights)| = {d:.2e}");
        assert!(d <= 1e-4, "{name}: logits differ by {d}");
    }
    // a copy for decoding is not trainable, and only bf16 or f32 weights are offered
    let err = massivetext::train::AdamW::new(m.varmap(), Default::default())
        .err()
        .expect("training a bf16-weight copy must be refused")
        .to_string();
    assert!(err.contains("with_weight_dtype"), "{err}");
    let err = full
        .with_weight_dtype(DType::F16)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bf16"), "{err}");
}
