//! Golden tests: BLEU, chrF and ROUGE against sacrebleu 2.6 and rouge-score 0.1.2.
//!
//! The expected numbers come from `tests/fixtures/make_metrics.py`; scores must agree to 1e-6
//! (BLEU and chrF on sacrebleu's 0–100 scale, ROUGE on rouge-score's 0–1 scale).
use massivetext::Error;
use massivetext::metrics::{
    Bleu, BootstrapAggregator, Chrf, RougeOptions, RougeScorer, Smoothing, Tokenize, accuracy,
    corpus_bleu, porter, rouge_tokenize, sentence_bleu, sentence_chrf,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const TOL: f64 = 1e-6;

#[path = "common/shared.rs"]
mod shared;
use shared::data;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn expected() -> &'static Value {
    static E: OnceLock<Value> = OnceLock::new();
    E.get_or_init(|| {
        let text = std::fs::read_to_string(fixture("metrics/expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn path_of(src: &Value) -> Option<PathBuf> {
    if let Some(p) = src.get("data") {
        Some(data(p.as_str().unwrap()))
    } else {
        src.get("fixture").map(|p| fixture(p.as_str().unwrap()))
    }
}

/// Resolves a source descriptor from expected.json to its segments.
fn load(src: &Value) -> Vec<String> {
    if let Some(p) = path_of(src) {
        return massivetext::metrics::cli::read_lines(&p).unwrap();
    }
    if let Some(p) = src.get("json") {
        let text = std::fs::read_to_string(fixture(p.as_str().unwrap())).unwrap();
        return serde_json::from_str(&text).unwrap();
    }
    src["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn close(ours: f64, theirs: f64, what: &str) {
    assert!(
        (ours - theirs).abs() <= TOL,
        "{what}: ours {ours} vs reference {theirs} (diff {})",
        (ours - theirs).abs()
    );
}

fn bleu_of(case: &Value) -> Bleu {
    Bleu {
        tokenize: case["tokenize"].as_str().unwrap().parse().unwrap(),
        lowercase: case["lowercase"].as_bool().unwrap(),
        smoothing: Smoothing::parse(
            case["smooth_method"].as_str().unwrap(),
            case["smooth_value"].as_f64(),
        )
        .unwrap(),
        effective_order: case["effective_order"].as_bool().unwrap(),
        ..Bleu::default()
    }
}

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let cases = expected()["bleu"].as_array().unwrap();
    assert!(cases.len() >= 90);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let hyps = load(&case["hyp"]);
        let refs: Vec<Vec<String>> = case["refs"].as_array().unwrap().iter().map(load).collect();
        let s = bleu_of(case).corpus_score(&hyps, &refs).unwrap();
        let e = &case["expected"];
        close(s.score, f(&e["score"]), &format!("{name} score"));
        close(s.bp, f(&e["bp"]), &format!("{name} bp"));
        close(s.ratio, f(&e["ratio"]), &format!("{name} ratio"));
        for (k, p) in s.precisions.iter().enumerate() {
            close(*p, f(&e["precisions"][k]), &format!("{name} precision {k}"));
        }
        assert_eq!(s.sys_len, e["sys_len"].as_u64().unwrap(), "{name} sys_len");
        assert_eq!(s.ref_len, e["ref_len"].as_u64().unwrap(), "{name} ref_len");
        if case["smooth_method"] != "add-k" {
            // sacrebleu adds k into its returned counts; ours stay the raw statistics.
            let counts: Vec<u64> = e["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as u64)
                .collect();
            assert_eq!(s.counts, counts, "{name} counts");
        }
        assert_eq!(s.signature, e["signature"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn multi30k_reference_against_itself_is_100() {
    let de = load(&serde_json::json!({"data": "multi30k/test_2016_flickr.de"}));
    let s = corpus_bleu(&de, std::slice::from_ref(&de)).unwrap();
    assert!((s.score - 100.0).abs() < 1e-9);
    assert_eq!(s.sys_len, s.ref_len);
}

#[test]
fn sentence_bleu_matches_sacrebleu() {
    for case in expected()["sentence_bleu"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let hyps = load(&case["hyp"]);
        let refs: Vec<Vec<String>> = case["refs"].as_array().unwrap().iter().map(load).collect();
        for i in 0..n {
            let r: Vec<&str> = refs.iter().map(|s| s[i].as_str()).collect();
            let s = sentence_bleu(&hyps[i], &r).unwrap();
            close(s.score, f(&case["scores"][i]), &format!("{name} line {i}"));
        }
    }
}

#[test]
fn chrf_matches_sacrebleu() {
    for case in expected()["chrf"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let hyps = load(&case["hyp"]);
        let refs: Vec<Vec<String>> = case["refs"].as_array().unwrap().iter().map(load).collect();
        let m = Chrf {
            word_order: case["word_order"].as_u64().unwrap() as usize,
            lowercase: case["lowercase"].as_bool().unwrap(),
            whitespace: case["whitespace"].as_bool().unwrap(),
            eps_smoothing: case["eps_smoothing"].as_bool().unwrap(),
            ..Chrf::default()
        };
        let s = m.corpus_score(&hyps, &refs).unwrap();
        let e = &case["expected"];
        close(s.score, f(&e["score"]), name);
        assert_eq!(s.name, e["name"].as_str().unwrap(), "{name}");
        assert_eq!(s.signature, e["signature"].as_str().unwrap(), "{name}");
        for (i, v) in case["sentence_scores"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let r: Vec<&str> = refs.iter().map(|s| s[i].as_str()).collect();
            let ss = m.sentence_score(&hyps[i], &r).unwrap();
            close(ss.score, f(v), &format!("{name} sentence {i}"));
        }
    }
}

#[test]
fn rouge_matches_rouge_score() {
    for case in expected()["rouge"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let preds = load(&case["pred"]);
        let refs = load(&case["ref"]);
        let types: Vec<String> = case["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let scorer = RougeScorer::new(
            &types,
            RougeOptions {
                use_stemmer: case["stemmer"].as_bool().unwrap(),
            },
        )
        .unwrap();
        let res = scorer.corpus_score(&preds, &refs).unwrap();
        for (i, ex) in case["per_example"].as_array().unwrap().iter().enumerate() {
            for t in &types {
                let s = res.per_example[i][t.as_str()];
                let e = &ex[t];
                close(s.precision, f(&e[0]), &format!("{name} #{i} {t} P"));
                close(s.recall, f(&e[1]), &format!("{name} #{i} {t} R"));
                close(s.fmeasure, f(&e[2]), &format!("{name} #{i} {t} F"));
            }
        }
        for t in &types {
            let s = res.mean[t.as_str()];
            let e = &case["mean"][t];
            close(s.precision, f(&e[0]), &format!("{name} mean {t} P"));
            close(s.recall, f(&e[1]), &format!("{name} mean {t} R"));
            close(s.fmeasure, f(&e[2]), &format!("{name} mean {t} F"));
        }
        if let Some(boot) = case.get("bootstrap") {
            let agg = BootstrapAggregator::default()
                .aggregate(&res.per_example)
                .unwrap();
            for t in &types {
                let a = agg.get(t).unwrap();
                let mean = res.mean[t.as_str()];
                // mid is the median of bootstrap means: close to the corpus mean, not equal.
                assert!(
                    (a.mid.fmeasure - mean.fmeasure).abs() < 0.005,
                    "{name} {t} mid"
                );
                assert!(a.low.fmeasure < a.mid.fmeasure && a.mid.fmeasure < a.high.fmeasure);
                assert!(a.low.recall < mean.recall && mean.recall < a.high.recall);
                // Different random streams: the bounds agree with rouge-score statistically.
                for (bound, ours) in [("low", a.low), ("mid", a.mid), ("high", a.high)] {
                    let e = &boot[t][bound];
                    for (k, v) in [ours.precision, ours.recall, ours.fmeasure]
                        .iter()
                        .enumerate()
                    {
                        assert!(
                            (v - f(&e[k])).abs() < 0.01,
                            "{name} {t} {bound}[{k}]: ours {v} vs rouge-score {}",
                            e[k]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn bootstrap_is_seeded() {
    let scorer = RougeScorer::standard(RougeOptions::default());
    let words = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let preds: Vec<String> = (0..40).map(|i| words[..1 + i % 7].join(" ")).collect();
    let refs: Vec<String> = (0..40).map(|i| words[i % 3..8].join(" ")).collect();
    let res = scorer.corpus_score(&preds, &refs).unwrap();
    let b = BootstrapAggregator {
        n_samples: 101,
        ..BootstrapAggregator::default()
    };
    assert_eq!(
        b.aggregate(&res.per_example).unwrap(),
        b.aggregate(&res.per_example).unwrap()
    );
    let other = BootstrapAggregator { seed: 7, ..b };
    assert_ne!(
        b.aggregate(&res.per_example).unwrap(),
        other.aggregate(&res.per_example).unwrap()
    );
}

#[test]
fn rouge_score_multi_matches() {
    let scorer = RougeScorer::new(&["rouge1", "rouge2", "rougeL"], RougeOptions::STEMMED).unwrap();
    for case in expected()["rouge_multi"].as_array().unwrap() {
        let targets: Vec<&str> = case["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let pred = case["prediction"].as_str().unwrap();
        let s = scorer.score_multi(&targets, pred).unwrap();
        for t in ["rouge1", "rouge2", "rougeL"] {
            let e = &case["expected"][t];
            close(s[t].precision, f(&e[0]), t);
            close(s[t].recall, f(&e[1]), t);
            close(s[t].fmeasure, f(&e[2]), t);
        }
    }
}

#[test]
fn porter_matches_nltk_on_cnn_vocabulary() {
    let stems = expected()["porter"].as_object().unwrap();
    assert!(stems.len() > 2000);
    let wrong: Vec<String> = stems
        .iter()
        .filter(|(w, s)| porter::stem(w) != s.as_str().unwrap())
        .map(|(w, s)| format!("{w}: ours {} nltk {s}", porter::stem(w)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} differ: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(20)]
    );
}

#[test]
fn rouge_tokenizer_follows_rouge_score() {
    assert_eq!(
        rouge_tokenize("The Cat's 3.5% café!", RougeOptions::default()),
        vec!["the", "cat", "s", "3", "5", "caf"]
    );
    assert_eq!(
        rouge_tokenize("Running dogs", RougeOptions::STEMMED),
        vec!["run", "dog"]
    );
}

#[test]
fn accuracy_counts_matches() {
    assert_eq!(
        accuracy(&["a", "b", "c", "d"], &["a", "x", "c", "d"]).unwrap(),
        0.75
    );
}

// ---- command line ---------------------------------------------------------------------------

/// `massivetext metrics ARGS`, parsed by clap and run as the binary would.
fn metrics_cli(a: &[&str]) -> massivetext::Result<String> {
    massivetext::cli::run_from(["massivetext", "metrics"].iter().chain(a).copied())
}

fn case<'a>(kind: &str, name: &str) -> &'a Value {
    expected()[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn cli_bleu_json_matches_sacrebleu() {
    let hyp = fixture("metrics/m30k_drop.de");
    let r1 = data("multi30k/test_2016_flickr.de");
    let r2 = fixture("metrics/m30k_shuffle.de");
    let out = metrics_cli(&[
        "bleu",
        "--hyp",
        hyp.to_str().unwrap(),
        "--ref",
        r1.to_str().unwrap(),
        "--ref",
        r2.to_str().unwrap(),
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let e = &case("bleu", "m30k_dropped_two_refs")["expected"];
    close(f(&v["score"]), f(&e["score"]), "cli bleu");
    close(f(&v["bp"]), f(&e["bp"]), "cli bp");
    assert_eq!(v["sys_len"], e["sys_len"]);
    assert_eq!(v["ref_len"], e["ref_len"]);
    assert_eq!(v["precisions"].as_array().unwrap().len(), 4);

    let text = metrics_cli(&[
        "bleu",
        "--hyp",
        hyp.to_str().unwrap(),
        "--ref",
        r1.to_str().unwrap(),
        "--tokenize",
        "intl",
    ])
    .unwrap();
    assert!(
        text.starts_with("BLEU|nrefs:1|case:mixed|eff:no|tok:intl|smooth:exp|version:2.6.0 = "),
        "{text}"
    );
}

#[test]
fn cli_chrf_and_rouge_json() {
    let hyp = fixture("metrics/m30k_drop.de");
    let r1 = data("multi30k/test_2016_flickr.de");
    let out = metrics_cli(&[
        "chrf",
        "--hyp",
        hyp.to_str().unwrap(),
        "--ref",
        r1.to_str().unwrap(),
        "--word-order",
        "2",
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    close(
        f(&v["score"]),
        f(&case("chrf", "m30k_dropped_pp")["expected"]["score"]),
        "cli chrF++",
    );

    let out = metrics_cli(&[
        "rouge",
        "--hyp",
        fixture("metrics/cnn_lead3.txt").to_str().unwrap(),
        "--ref",
        fixture("metrics/cnn_highlights.txt").to_str().unwrap(),
        "--rouge-types",
        "rouge1,rouge2",
        "rougeL",
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let e = &case("rouge", "cnn_lead3_lines")["mean"];
    for t in ["rouge1", "rouge2", "rougeL"] {
        close(f(&v[t]["precision"]), f(&e[t][0]), t);
        close(f(&v[t]["recall"]), f(&e[t][1]), t);
        close(f(&v[t]["fmeasure"]), f(&e[t][2]), t);
    }
}

// ---- bad input ------------------------------------------------------------------------------

#[test]
fn error_files_of_different_lengths_name_both() {
    let dir = tempfile::tempdir().unwrap();
    let hyp = dir.path().join("hyp.txt");
    let rf = dir.path().join("ref.txt");
    std::fs::write(&hyp, "a\nb\nc\n").unwrap();
    std::fs::write(&rf, "a\nb\n").unwrap();
    let e = metrics_cli(&[
        "bleu",
        "--hyp",
        hyp.to_str().unwrap(),
        "--ref",
        rf.to_str().unwrap(),
    ])
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            Error::MetricLengthMismatch {
                found: 2,
                expected: 3,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("ref.txt has 2 lines") && msg.contains("hyp.txt has 3"),
        "{msg}"
    );
    // The library API says which reference stream is short.
    let e = corpus_bleu(&["a", "b"], &[vec!["a"]])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("reference stream 1 has 1 lines") && e.contains("has 2"),
        "{e}"
    );
    let e = RougeScorer::standard(RougeOptions::default())
        .corpus_score(&["a"], &["a", "b"])
        .unwrap_err();
    assert!(e.to_string().contains("has 2 lines"), "{e}");
}

#[test]
fn error_empty_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let hyp = dir.path().join("empty.txt");
    std::fs::write(&hyp, "").unwrap();
    let e = metrics_cli(&[
        "chrf",
        "--hyp",
        hyp.to_str().unwrap(),
        "--ref",
        hyp.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(matches!(e, Error::EmptyMetricInput { .. }));
    assert!(e.to_string().contains("empty.txt is empty"), "{e}");
    let none: [&str; 0] = [];
    assert!(matches!(
        corpus_bleu(&none, &[none]),
        Err(Error::EmptyMetricInput { .. })
    ));
    let no_refs: [Vec<&str>; 0] = [];
    assert!(matches!(
        corpus_bleu(&["a"], &no_refs),
        Err(Error::EmptyMetricInput { .. })
    ));
    assert!(matches!(
        sentence_chrf("a", &none),
        Err(Error::EmptyMetricInput { .. })
    ));
    assert!(matches!(
        accuracy::<u8>(&[], &[]),
        Err(Error::EmptyMetricInput { .. })
    ));
    // clap reports the missing flag now (it used to be our own "--hyp FILE is required")
    let e = metrics_cli(&["rouge", "--ref", "x"]).unwrap_err();
    assert!(
        e.to_string()
            .contains("required arguments were not provided")
            && e.to_string().contains("--hyp <FILE>"),
        "{e}"
    );
}

#[test]
fn error_unknown_tokenizer_lists_valid_ones() {
    let e = "spm".parse::<Tokenize>().unwrap_err().to_string();
    assert!(
        e.contains("`spm`") && e.contains("13a, intl, zh, char, none"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.txt");
    std::fs::write(&p, "x\n").unwrap();
    let ps = p.to_str().unwrap();
    let e = metrics_cli(&["bleu", "--hyp", ps, "--ref", ps, "--tokenize", "moses"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("moses") && e.contains("13a, intl, zh, char, none"),
        "{e}"
    );
    let e = Smoothing::parse("laplace", None).unwrap_err().to_string();
    assert!(e.contains("exp, floor, add-k, none"), "{e}");
}

#[test]
fn error_unknown_rouge_type_lists_valid_ones() {
    for bad in ["rougeX", "rouge0", "rouge10", "ROUGE1", "bleu"] {
        let e = RougeScorer::new(&[bad], RougeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(bad) && e.contains("rouge1 .. rouge9, rougeL, rougeLsum"),
            "{e}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.txt");
    std::fs::write(&p, "x\n").unwrap();
    let ps = p.to_str().unwrap();
    let e = metrics_cli(&["rouge", "--hyp", ps, "--ref", ps, "--rouge-types", "rougeW"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("rougeW") && e.contains("rougeLsum"), "{e}");
    // An unknown metric is an unknown clap subcommand now; clap names it, and
    // `metrics --help` lists bleu, chrf and rouge.
    let e = metrics_cli(&["meteor", "--hyp", ps])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unrecognized subcommand 'meteor'"), "{e}");
    let help = metrics_cli(&["--help"]).unwrap();
    assert!(
        help.contains("bleu") && help.contains("chrf") && help.contains("rouge"),
        "{help}"
    );
}

// ---- display ----------------------------------------------------------------------------------

#[test]
fn results_render_as_html_and_text() {
    let s = corpus_bleu(&["the cat sat on the mat"], &[vec!["the cat sat on a mat"]]).unwrap();
    let html = s.to_html();
    assert!(html.starts_with("<table>") && html.ends_with("</table>"));
    assert!(html.contains(&format!("{:.2}", s.score)));
    let text = s.to_string();
    assert!(
        text.starts_with("BLEU|nrefs:1|") && text.contains("BP = 1.000"),
        "{text}"
    );
    let c = sentence_chrf("a <b> & c", &["a b c"]).unwrap();
    assert!(c.to_html().contains("chrF2") && c.to_string().starts_with("chrF2|nrefs:1|"));
    let r = RougeScorer::standard(RougeOptions::STEMMED).score("the cat sat", "the cat");
    let html = r.to_html();
    assert!(
        html.contains("<td>rougeLsum</td>") && html.contains("<td>1.0000</td>"),
        "{html}"
    );
}
