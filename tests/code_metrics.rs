//! The code metrics: bits per byte against transformers' logits
//! (tests/fixtures/make_code_metrics.py) and by hand, the parse rate of known valid and invalid
//! Python, the functions of a file, and next-line exact match on lines the model does and does
//! not write.
use std::path::Path;

use massivetext::generate::GenerationConfig;
use massivetext::metrics::{
    NextLineTask, PythonFunction, bits_per_byte, bits_per_byte_of_ids, bits_per_byte_of_texts,
    complete_function_bodies, function_parse_rate, next_line_exact_match, parse_rate,
    parses_as_python, parses_as_python_function, python_functions,
};
use massivetext::prelude::*;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn bits_per_byte_equals_transformers_logits_over_overlapping_rows() {
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("code_metrics/expected.json")).unwrap(),
    )
    .unwrap();
    let model = AutoModelForCausalLM::from_dir(fixture("models/gpt2"), &Device::Cpu).unwrap();
    let docs: Vec<Vec<u32>> = serde_json::from_value(want["docs"].clone()).unwrap();
    let bytes = want["num_bytes"].as_u64().unwrap() as usize;
    let got = bits_per_byte_of_ids(&model, &docs, bytes, 3).unwrap();
    assert_eq!(got.num_tokens as u64, want["num_tokens"].as_u64().unwrap());
    let (exp, nll) = (
        want["bits_per_byte"].as_f64().unwrap(),
        want["nll_sum"].as_f64().unwrap(),
    );
    assert!(
        (got.nll_sum - nll).abs() <= 1e-4 * nll,
        "{} vs {nll}",
        got.nll_sum
    );
    assert!(
        (got.bits_per_byte - exp).abs() <= 1e-4 * exp,
        "{} vs {exp}",
        got.bits_per_byte
    );
    // the batch size changes nothing
    let one = bits_per_byte_of_ids(&model, &docs, bytes, 1).unwrap();
    assert!((one.nll_sum - got.nll_sum).abs() <= 1e-4 * nll);
}

#[test]
fn bits_per_byte_by_hand_and_of_texts() {
    // a uniform guess over 256 values is 8 bits a token: 3 tokens over 6 bytes is 4 bits a byte
    assert!((bits_per_byte(3.0 * 256f64.ln(), 6).unwrap() - 4.0).abs() < 1e-12);
    assert!(bits_per_byte(1.0, 0).is_err());
    assert!(bits_per_byte(f64::NAN, 3).is_err());

    let texts = ["def f(x):\n    return x\n", "import os\nprint(os.sep)\n"];
    let tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(300)).unwrap();
    let config = Gpt2Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 2,
        n_positions: 8,
        ..Gpt2Config::small(tok.vocab_size())
    };
    let model = AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap();
    let got = bits_per_byte_of_texts(&model, &tok, &texts, 4).unwrap();
    let tokens: usize = texts
        .iter()
        .map(|t| tok.encode_plain(t).unwrap().len())
        .sum();
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    // every token is predicted once (after the separator), over every byte
    assert_eq!((got.num_tokens, got.num_bytes), (tokens, bytes));
    let by_hand = got.nll_sum / std::f64::consts::LN_2 / bytes as f64;
    assert!((got.bits_per_byte - by_hand).abs() < 1e-12);
    // an untrained model is close to a uniform guess: about log2(vocab) bits a token
    let uniform = tokens as f64 * (tok.vocab_size() as f64).log2() / bytes as f64;
    assert!(
        (got.bits_per_byte - uniform).abs() < 0.2 * uniform,
        "{} vs {uniform}",
        got.bits_per_byte
    );
}

#[test]
fn parse_rate_of_known_snippets() {
    let valid = [
        "def f(x):\n    return x + 1\n",
        "class A:\n    def m(self):\n        pass\n",
        "async def g():\n    await h()\n",
        "x = [i * i for i in range(10) if i % 2]\n",
        "with open(p) as f:\n    data = f.read()\n",
        "try:\n    pass\nexcept ValueError as e:\n    raise\n",
        "match x:\n    case [a, b]:\n        pass\n",
        "lambda a, *b, **c: (a, b, c)\n",
        "",
    ];
    let invalid = [
        "def f(x:\n    return x\n",
        "x = (1, 2\n",
        "if x\n    y = 1\n",
        "return return\n",
        "class :\n    pass\n",
        "x = 1 +\n",
        "for in range(3):\n    pass\n",
    ];
    for s in valid {
        assert!(parses_as_python(s).unwrap(), "should parse: {s:?}");
    }
    for s in invalid {
        assert!(!parses_as_python(s).unwrap(), "should not parse: {s:?}");
    }
    let all: Vec<&str> = valid.iter().chain(invalid.iter()).copied().collect();
    let r = parse_rate(&all).unwrap();
    assert_eq!((r.parsed, r.total), (valid.len(), all.len()));
    assert!((r.rate - valid.len() as f64 / all.len() as f64).abs() < 1e-12);
    assert!(parse_rate::<&str>(&[]).is_err());

    // tree-sitter's indentation is lenient; a generated function also needs a body
    let functions = [
        "def f(x):\n    return x\n",
        "def f(x):\n    # a comment\n    return x\n",
        "class A:\n    def m(self):\n        pass\n",
        "def f(x):\n",
        "def f(x):\n    # only a comment\n",
        "def f(x):\nreturn x\n",
        "def f(x):\n    return (x\n",
    ];
    assert!(parses_as_python("def f(x):\nreturn x\n").unwrap());
    let r = function_parse_rate(&functions).unwrap();
    assert_eq!((r.parsed, r.total), (3, 7));
    for (i, s) in functions.iter().enumerate() {
        assert_eq!(parses_as_python_function(s).unwrap(), i < 3, "{s:?}");
    }
}

#[test]
fn functions_of_a_file() {
    let src = "@decorator\ndef a(x):\n    return x\n\nclass B:\n    async def c(self):\n        \"\"\"Doc.\"\"\"\n        return 2\n";
    let fs = python_functions(src).unwrap();
    assert_eq!(
        fs.iter()
            .map(|f| (f.name.as_str(), f.line))
            .collect::<Vec<_>>(),
        [("a", 2), ("c", 6)]
    );
    assert_eq!(
        fs[1].source,
        "    async def c(self):\n        \"\"\"Doc.\"\"\"\n        return 2"
    );
    for f in &fs {
        let dedented: String = f
            .source
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        assert!(parses_as_python(&dedented).unwrap(), "{dedented}");
    }
}

#[test]
fn next_line_exact_match_counts_the_line_the_model_writes() {
    let texts = ["def f(x):\n    y = x + 1\n    return y\n"; 3];
    let tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(300)).unwrap();
    let config = Gpt2Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 2,
        n_positions: 64,
        ..Gpt2Config::small(tok.vocab_size())
    };
    let model = AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap();
    let eos = tok.eos_token_id().unwrap();
    let base = GenerationConfig {
        eos_token_id: vec![eos],
        pad_token_id: Some(eos),
        ..Default::default()
    };
    let prompt = "def f(x):\n";
    // what the model writes after the prompt less its newline: the line after its own newline
    let c = GenerationConfig {
        max_new_tokens: 6,
        ..base.clone()
    };
    let written = model.generate_text(&tok, "def f(x):", &c).unwrap();
    let line = written
        .strip_prefix('\n')
        .map(|w| w.split('\n').next().unwrap().trim_end().to_string());
    let target = line
        .clone()
        .unwrap_or_else(|| written.trim_end().to_string());
    let tasks = [
        NextLineTask {
            prompt: prompt.into(),
            target: target.clone(),
        },
        NextLineTask {
            prompt: prompt.into(),
            target: format!("{target} and more"),
        },
    ];
    let em = next_line_exact_match(&model, &tok, &tasks, &base, 6).unwrap();
    // a model that went on with the `def` line predicted no next line: even its own text misses
    let hits = usize::from(line.is_some());
    assert_eq!((em.matched, em.total), (hits, 2), "wrote {written:?}");
    assert_eq!(em.exact_match, hits as f64 / 2.0);
    assert!(next_line_exact_match(&model, &tok, &[], &base, 6).is_err());

    // bodies: one snippet per function with a header, each starting with its header
    let f = PythonFunction {
        name: "f".into(),
        line: 1,
        source: "def f(x):\n    y = x + 1\n    return y".into(),
    };
    let bodies = complete_function_bodies(&model, &tok, &[f], &base, 8).unwrap();
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].starts_with("def f(x):\n"), "{:?}", bodies[0]);
}
