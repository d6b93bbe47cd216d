//! Perplexity and Evaluator against Hugging Face transformers on the tiny GPT-2 / BERT fixtures.
//! Golden values: tests/fixtures/perplexity_expected.json from tests/fixtures/make_perplexity.py.
use std::path::{Path, PathBuf};

use massivetext::Error;
use massivetext::data::{Column, Dataset};
use massivetext::metrics::{
    EvalAccumulator, Evaluator, MeanPerplexityOptions, SlidingWindow, load_causal_lm,
    mean_perplexity, mean_perplexity_of_texts, perplexity, perplexity_of_blocks,
    perplexity_of_text,
};
use massivetext::prelude::*;
use serde_json::Value;

const REL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("perplexity_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn gpt2() -> AutoModelForCausalLM {
    AutoModelForCausalLM::from_dir(fixtures().join("models/gpt2"), &Device::Cpu).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

#[track_caller]
fn close(ours: f64, theirs: f64, what: &str) {
    let rel = (ours - theirs).abs() / theirs.abs().max(1e-12);
    assert!(
        rel <= REL,
        "{what}: ours {ours} vs transformers {theirs} (relative {rel:e})"
    );
}

/// `massivetext perplexity ARGS`, parsed by clap and run as the binary would.
fn perplexity_cli(a: &[&str]) -> massivetext::Result<String> {
    massivetext::cli::run_from(["massivetext", "perplexity"].iter().chain(a).copied())
}

#[test]
fn sliding_window_matches_the_guide() {
    let exp = expected();
    let model = gpt2();
    let ids = u32s(&exp["ids"]);
    let settings = exp["sliding"].as_array().unwrap();
    assert!(settings.len() >= 2);
    for s in settings {
        let (m, st) = (usize_of(&s["max_length"]), usize_of(&s["stride"]));
        for batch in [1, 8] {
            let p = perplexity(&model, &ids, &SlidingWindow::new(m, st).batch_size(batch)).unwrap();
            let what = format!("max_length {m} stride {st} batch {batch}");
            assert_eq!(p.num_tokens, usize_of(&s["n_tokens"]), "{what}");
            close(p.nll_sum, f(&s["nll_sum"]), &what);
            close(p.perplexity, f(&s["perplexity"]), &what);
            assert_eq!((p.max_length, p.stride), (Some(m), Some(st)));
        }
    }
}

#[test]
fn default_window_is_the_model_context_without_overlap() {
    let exp = expected();
    let model = gpt2();
    let ids = u32s(&exp["ids"]);
    let p = perplexity(&model, &ids, &SlidingWindow::default()).unwrap();
    let s = &exp["sliding"][0];
    assert_eq!(
        (usize_of(&s["max_length"]), usize_of(&s["stride"])),
        (40, 40)
    );
    close(p.perplexity, f(&s["perplexity"]), "default window");
    assert_eq!(p.num_windows, 300_usize.div_ceil(40));
}

#[test]
fn plain_perplexity_over_blocks_matches() {
    let exp = expected();
    let model = gpt2();
    let ids = u32s(&exp["ids"]);
    let bs = usize_of(&exp["plain"]["block_size"]);
    let blocks: Vec<Vec<u32>> = ids.chunks(bs).map(|c| c.to_vec()).collect();
    // batch 3 pads the short last block alongside full ones
    for batch in [1, 3, 16] {
        let p = perplexity_of_blocks(&model, &blocks, batch).unwrap();
        assert_eq!(p.num_tokens, usize_of(&exp["plain"]["n_tokens"]));
        close(p.nll_sum, f(&exp["plain"]["nll_sum"]), "plain nll_sum");
        close(
            p.perplexity,
            f(&exp["plain"]["perplexity"]),
            "plain perplexity",
        );
    }
}

#[test]
fn text_perplexity_tokenizes_like_python() {
    let exp = expected();
    let model = gpt2();
    let tok = Tokenizer::from_pretrained(fixtures().join("perplexity/tokenizer")).unwrap();
    let text = std::fs::read_to_string(fixtures().join("perplexity/text.txt")).unwrap();
    assert_eq!(tok.encode(&text).unwrap(), u32s(&exp["text"]["ids"]));
    for s in exp["text"]["sliding"].as_array().unwrap() {
        let w = SlidingWindow::new(usize_of(&s["max_length"]), usize_of(&s["stride"]));
        let p = perplexity_of_text(&model, &tok, &text, &w).unwrap();
        close(p.perplexity, f(&s["perplexity"]), "text perplexity");
    }
}

#[test]
fn mean_perplexity_matches_evaluate() {
    let exp = expected();
    let model = gpt2();
    let tok = Tokenizer::from_pretrained(fixtures().join("perplexity/tokenizer")).unwrap();
    let text = std::fs::read_to_string(fixtures().join("perplexity/text.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let ids: Vec<Vec<u32>> = exp["mean_lines_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(u32s)
        .collect();
    for m in exp["mean"].as_array().unwrap() {
        let add = m["add_start_token"].as_bool().unwrap();
        let opts = MeanPerplexityOptions {
            add_start_token: add,
            max_length: Some(usize_of(&m["max_length"])),
            batch_size: usize_of(&m["batch_size"]),
            ..Default::default()
        };
        let r = mean_perplexity_of_texts(&model, &tok, &lines, &opts).unwrap();
        let theirs = m["perplexities"].as_array().unwrap();
        assert_eq!(r.perplexities.len(), theirs.len());
        for (i, (a, b)) in r.perplexities.iter().zip(theirs).enumerate() {
            close(*a, f(b), &format!("text {i} (add_start_token {add})"));
        }
        close(
            r.mean_perplexity,
            f(&m["mean_perplexity"]),
            "mean_perplexity",
        );
        // the id-level entry point gives the same, whatever the batch size
        let opts_ids = MeanPerplexityOptions {
            bos_token_id: tok.bos_token_id(),
            batch_size: 1,
            ..opts
        };
        let r2 = mean_perplexity(&model, &ids, &opts_ids).unwrap();
        close(
            r2.mean_perplexity,
            f(&m["mean_perplexity"]),
            "mean_perplexity ids",
        );
    }
}

#[test]
fn evaluator_matches_run_clm_eval() {
    let exp = expected();
    let model = gpt2();
    let ids = u32s(&exp["ids"]);
    let blocks: Vec<Vec<u32>> = ids.chunks(32).map(|c| c.to_vec()).collect();
    let e = &exp["clm_eval"];
    let r = Evaluator::new()
        .batch_size(4)
        .evaluate_ids(&model, &blocks)
        .unwrap();
    assert_eq!(r.num_tokens, usize_of(&e["num_tokens"]));
    assert_eq!(r.num_samples, blocks.len());
    close(r.eval_loss, f(&e["eval_loss"]), "eval_loss");
    close(r.accuracy, f(&e["accuracy"]), "accuracy");
    close(
        r.perplexity,
        f(&exp["plain"]["perplexity"]),
        "eval perplexity",
    );

    // the same rows as a Dataset, padded with an attention mask, give the same numbers
    let ids_col: Vec<Value> = blocks.iter().map(|b| Value::from(b.clone())).collect();
    let mask_col: Vec<Value> = blocks
        .iter()
        .map(|b| Value::from(vec![1u32; b.len()]))
        .collect();
    let ds = Dataset::from_columns(vec![
        Column::new("input_ids", ids_col),
        Column::new("attention_mask", mask_col),
    ])
    .unwrap();
    let r2 = Evaluator::new()
        .batch_size(3)
        .evaluate(&model, &ds)
        .unwrap();
    assert_eq!(r2.num_tokens, r.num_tokens);
    close(r2.eval_loss, r.eval_loss, "dataset eval_loss");
    assert_eq!(r2.accuracy, r.accuracy);
}

#[test]
fn evaluator_masked_lm_scores_masked_tokens_only() {
    let exp = expected();
    let e = &exp["mlm_eval"];
    let model =
        AutoModelForMaskedLM::from_dir(fixtures().join("models/bert"), &Device::Cpu).unwrap();
    let rows: Vec<Vec<u32>> = e["rows"].as_array().unwrap().iter().map(u32s).collect();
    let labels: Vec<Vec<i64>> = e["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect();
    let r = Evaluator::new()
        .batch_size(4)
        .evaluate_labeled(&model, &rows, &labels)
        .unwrap();
    assert_eq!(r.num_tokens, usize_of(&e["num_tokens"]));
    close(r.eval_loss, f(&e["eval_loss"]), "mlm eval_loss");
    assert!((r.accuracy - f(&e["accuracy"])).abs() < 1e-12);
    // a dataset without labels cannot be scored by a masked LM
    let ds = Dataset::from_columns(vec![Column::new(
        "input_ids",
        rows.iter().map(|r| Value::from(r.clone())).collect(),
    )])
    .unwrap();
    let err = Evaluator::new().evaluate(&model, &ds).unwrap_err();
    assert!(err.to_string().contains("`labels` column"), "{err}");
}

#[test]
fn accumulator_counts_shifted_labels_and_accuracy() {
    // logits that put all mass on token (position + 1): a causal model that is always right
    let (t, v) = (4, 6);
    let mut data = vec![0f32; t * v];
    for p in 0..t {
        data[p * v + (p + 1) % v] = 10.0;
    }
    let logits = Tensor::from_vec(data, (1, t, v), &Device::Cpu).unwrap();
    let labels = Tensor::new(&[[0i64, 1, 2, -100]], &Device::Cpu).unwrap();
    let mut acc = EvalAccumulator::new();
    acc.update(&logits, &labels, true).unwrap();
    // labels 1 and 2 are predicted (from positions 0 and 1); -100 is skipped
    assert_eq!(acc.num_tokens, 2);
    assert_eq!(acc.num_correct, 2);
    let r = acc.finish().unwrap();
    assert_eq!(r.accuracy, 1.0);
    assert!(r.eval_loss < 1e-3);
    // masked: no shift, position p is scored against label p
    let mut acc = EvalAccumulator::new();
    acc.update(&logits, &labels, false).unwrap();
    assert_eq!((acc.num_tokens, acc.num_correct), (3, 0));
}

#[test]
fn results_render_as_html_and_text() {
    let exp = expected();
    let model = gpt2();
    let ids = u32s(&exp["ids"]);
    let p = perplexity(&model, &ids, &SlidingWindow::new(40, 16)).unwrap();
    let html = p.to_html();
    assert!(html.starts_with("<table>") && html.contains("<th>perplexity</th>"));
    assert!(html.contains("max_length 40, stride 16"));
    assert!(p.to_string().starts_with("perplexity = "), "{p}");
    let blocks: Vec<Vec<u32>> = ids.chunks(32).map(|c| c.to_vec()).collect();
    let r = Evaluator::new().evaluate_ids(&model, &blocks).unwrap();
    assert!(r.to_html().contains("<th>eval_loss</th>"));
    assert!(r.to_string().contains("accuracy = "));
    let names: Vec<String> = r.metrics().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["eval_loss", "perplexity", "eval_accuracy"]);
}

#[test]
fn cli_json_matches_the_guide_on_the_text_file() {
    let exp = expected();
    let fx = fixtures();
    let s = &exp["text"]["sliding"][1];
    let out = perplexity_cli(&[
        "--model",
        fx.join("models/gpt2").to_str().unwrap(),
        "--data",
        fx.join("perplexity/text.txt").to_str().unwrap(),
        "--tokenizer",
        fx.join("perplexity/tokenizer").to_str().unwrap(),
        "--max-length",
        &s["max_length"].to_string(),
        "--stride",
        &s["stride"].to_string(),
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    close(f(&v["perplexity"]), f(&s["perplexity"]), "CLI perplexity");
    assert_eq!(usize_of(&v["num_tokens"]), usize_of(&s["n_tokens"]));
    assert_eq!(usize_of(&v["stride"]), usize_of(&s["stride"]));
}

#[test]
fn cli_tokenizer_defaults_to_the_model_folder() {
    let exp = expected();
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    for (from, name) in [
        ("models/gpt2/config.json", "config.json"),
        ("models/gpt2/model.safetensors", "model.safetensors"),
        ("perplexity/tokenizer/tokenizer.json", "tokenizer.json"),
        (
            "perplexity/tokenizer/tokenizer_config.json",
            "tokenizer_config.json",
        ),
    ] {
        std::fs::copy(fx.join(from), dir.path().join(name)).unwrap();
    }
    let out = perplexity_cli(&[
        "--model",
        dir.path().to_str().unwrap(),
        "--data",
        fx.join("perplexity/text.txt").to_str().unwrap(),
    ])
    .unwrap();
    let want = f(&exp["text"]["sliding"][0]["perplexity"]);
    assert!(out.starts_with("perplexity = "), "{out}");
    let shown: f64 = out["perplexity = ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((shown - want).abs() < 1e-3, "{out} vs {want}");
    assert!(out.contains("max_length 40, stride 40"), "{out}");
}

// ---- bad input ----

#[test]
fn a_masked_lm_is_refused_with_a_clear_error() {
    let fx = fixtures();
    let bert = fx.join("models/bert");
    let err = load_causal_lm(bert.to_str().unwrap()).err().unwrap();
    assert!(matches!(err, Error::NotCausalLm { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("`bert`") && msg.contains("not a causal language model"),
        "{msg}"
    );

    let err = perplexity_cli(&[
        "--model",
        bert.to_str().unwrap(),
        "--data",
        fx.join("perplexity/text.txt").to_str().unwrap(),
        "--tokenizer",
        fx.join("perplexity/tokenizer").to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(matches!(err, Error::NotCausalLm { .. }), "{err:?}");

    // the library entry points refuse a masked LM passed directly
    let mlm = AutoModelForMaskedLM::from_dir(&bert, &Device::Cpu).unwrap();
    let err = perplexity(&mlm, &[1, 2, 3], &SlidingWindow::default()).unwrap_err();
    assert!(matches!(err, Error::NotCausalLm { .. }), "{err:?}");
    let err = perplexity_of_blocks(&mlm, &[vec![1, 2, 3]], 1).unwrap_err();
    assert!(matches!(err, Error::NotCausalLm { .. }), "{err:?}");
}

#[test]
fn empty_input_is_an_error() {
    let model = gpt2();
    let err = perplexity(&model, &[], &SlidingWindow::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyMetricInput { .. }), "{err:?}");
    let err = perplexity(&model, &[5], &SlidingWindow::default()).unwrap_err();
    assert!(err.to_string().contains("at least 2 tokens"), "{err}");
    let err = perplexity_of_blocks(&model, &[], 4).unwrap_err();
    assert!(matches!(err, Error::EmptyMetricInput { .. }), "{err:?}");
    let err = mean_perplexity(&model, &[], &MeanPerplexityOptions::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyMetricInput { .. }), "{err:?}");
    let err = Evaluator::new().evaluate_ids(&model, &[]).unwrap_err();
    assert!(matches!(err, Error::EmptyMetricInput { .. }), "{err:?}");

    let tok = Tokenizer::from_pretrained(fixtures().join("perplexity/tokenizer")).unwrap();
    let err = perplexity_of_text(&model, &tok, "  \n", &SlidingWindow::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyMetricInput { .. }), "{err:?}");
    // evaluate refuses an empty text in a list, and a one-token text without a start token
    let opts = MeanPerplexityOptions::default();
    let err = mean_perplexity_of_texts(&model, &tok, &["a man", ""], &opts).unwrap_err();
    assert!(err.to_string().contains("text 1"), "{err}");
    let no_bos = MeanPerplexityOptions {
        add_start_token: false,
        ..opts
    };
    let err = mean_perplexity(&model, &[vec![5, 6], vec![7]], &no_bos).unwrap_err();
    assert!(err.to_string().contains("text 1 has 1 token"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let fx = fixtures();
    let err = perplexity_cli(&[
        "--model",
        fx.join("models/gpt2").to_str().unwrap(),
        "--data",
        empty.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(matches!(err, Error::EmptyMetricInput { .. }), "{err:?}");
    assert!(err.to_string().contains("empty.txt"), "{err}");
}

#[test]
fn bad_windows_are_errors() {
    let model = gpt2();
    let ids: Vec<u32> = (0..100).map(|i| i % 101).collect();
    let err = perplexity(&model, &ids, &SlidingWindow::new(16, 32)).unwrap_err();
    assert!(
        err.to_string()
            .contains("stride 32 is larger than max_length 16"),
        "{err}"
    );
    let err = perplexity(&model, &ids, &SlidingWindow::new(16, 0)).unwrap_err();
    assert!(
        err.to_string().contains("stride must be at least 1"),
        "{err}"
    );
    let err = perplexity(&model, &ids, &SlidingWindow::new(0, 0)).unwrap_err();
    assert!(
        err.to_string().contains("max_length must be at least 1"),
        "{err}"
    );
    let err = perplexity(&model, &ids, &SlidingWindow::new(64, 32)).unwrap_err();
    assert!(err.to_string().contains("model's 40 positions"), "{err}");
    let long: Vec<Vec<u32>> = vec![ids.clone()];
    let err = perplexity_of_blocks(&model, &long, 1).unwrap_err();
    assert!(err.to_string().contains("sliding-window"), "{err}");

    // the CLI checks the window before loading the model
    let fx = fixtures();
    for (m, s, what) in [
        ("8", "16", "larger than max_length"),
        ("8", "0", "stride must be at least 1"),
    ] {
        let err = perplexity_cli(&[
            "--model",
            "/nonexistent",
            "--data",
            fx.join("perplexity/text.txt").to_str().unwrap(),
            "--max-length",
            m,
            "--stride",
            s,
        ])
        .unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
    // clap reports the missing flag now (it used to be our own "--model is required")
    let err = perplexity_cli(&["--data", "x.txt"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("required arguments were not provided")
            && err.to_string().contains("--model <DIR>"),
        "{err}"
    );
    let err = perplexity_cli(&["--model", "m", "--data", "x", "--stride", "two"]).unwrap_err();
    assert!(err.to_string().contains("whole number"), "{err}");
}
