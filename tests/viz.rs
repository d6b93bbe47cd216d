//! Charts: the SVG is parsed with an XML parser and its content checked against the data; PNG
//! output is decoded; PCA is compared with scikit-learn (tests/fixtures/make_pca.py).
use std::path::PathBuf;

use massivetext::prelude::*;
use massivetext::train::LogEntry;
use massivetext::viz::{downsample_min_max, luminance, svg_to_png, token_label};
use resvg::tiny_skia::Pixmap;
use roxmltree::{Document, Node};

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

/// The `<g class=…>` group of the document (first one).
fn group<'a>(doc: &'a Document, class: &str) -> Option<Node<'a, 'a>> {
    doc.descendants()
        .find(|n| n.has_tag_name("g") && n.attribute("class") == Some(class))
}

fn groups<'a>(doc: &'a Document, class: &str) -> Vec<Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some(class))
        .collect()
}

fn texts(g: Node) -> Vec<String> {
    g.children()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").to_string())
        .collect()
}

fn attr<T: std::str::FromStr>(n: Node, a: &str) -> Option<T> {
    n.attribute(a)?.parse().ok()
}

/// A 5-token, 2-head, non-causal probability tensor with distinct values.
fn probs5() -> (Tensor, Vec<Vec<Vec<f32>>>) {
    let mut data = vec![];
    for h in 0..2 {
        let mut head = vec![];
        for i in 0..5 {
            let raw: Vec<f32> = (0..5)
                .map(|j| ((i * 7 + j * 3 + h * 5) % 11 + 1) as f32 + j as f32 * 0.01)
                .collect();
            let s: f32 = raw.iter().sum();
            head.push(raw.iter().map(|v| v / s).collect::<Vec<f32>>());
        }
        data.push(head);
    }
    let t = Tensor::new(data.clone(), &Device::Cpu).unwrap();
    (t, data)
}

const TOKENS: [&str; 5] = ["The", "Ġcat", "Ġextraordinarilylongtoken", "Ċ", "sat"];

#[test]
fn heatmap_cells_follow_probabilities_and_labels_are_tokens() {
    let (t, data) = probs5();
    let map = AttentionMap::from_tensor(&t, &TOKENS).unwrap();
    assert!(!map.is_causal());
    assert_eq!(
        (map.num_layers(), map.num_heads(), map.num_keys()),
        (1, 2, 5)
    );
    let svg = map.head(0, 1).unwrap().to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let cells = group(&doc, "cells").unwrap();
    assert_eq!(attr::<usize>(cells, "data-rows"), Some(5));
    let rects: Vec<Node> = cells
        .children()
        .filter(|n| n.has_tag_name("rect"))
        .collect();
    assert_eq!(rects.len(), 25, "one rect per cell");
    let mut seen = vec![vec![false; 5]; 5];
    let mut by_prob: Vec<(f32, f64)> = vec![];
    for r in &rects {
        let (i, j): (usize, usize) = (attr(*r, "data-r").unwrap(), attr(*r, "data-c").unwrap());
        seen[i][j] = true;
        let p = data[1][i][j];
        let v: f64 = attr(*r, "data-v").unwrap();
        assert!(
            (v - p as f64).abs() < 1e-3,
            "cell ({i},{j}) says {v}, probability {p}"
        );
        let lum = luminance(r.attribute("fill").unwrap()).unwrap();
        by_prob.push((p, lum));
        // Tooltip names both tokens and the value.
        let title = r
            .children()
            .find(|n| n.has_tag_name("title"))
            .unwrap()
            .text()
            .unwrap();
        assert!(
            title.contains('→') && title.contains(&format!("{p:.4}")),
            "{title}"
        );
    }
    assert!(seen.iter().flatten().all(|&s| s));
    by_prob.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in by_prob.windows(2) {
        assert!(
            w[1].1 <= w[0].1 + 1e-9,
            "larger probability must not be lighter: {w:?}"
        );
    }
    assert!(
        by_prob[0].1 - by_prob[24].1 > 0.2,
        "the scale spans light to dark"
    );
    let expected: Vec<String> = TOKENS.iter().map(|t| token_label(t, 12)).collect();
    assert_eq!(expected[1], "␣cat");
    assert_eq!(expected[2], "␣extraordin…");
    assert_eq!(expected[3], "↵");
    assert_eq!(texts(group(&doc, "row-labels").unwrap()), expected);
    assert_eq!(texts(group(&doc, "col-labels").unwrap()), expected);
    assert!(group(&doc, "colour-bar").is_some());
    assert!(group(&doc, "masked").is_none());
}

#[test]
fn causal_triangle_is_drawn_masked_and_padding_left_out() {
    // 4 positions, the last one padding; causal rows.
    let rows = [
        [1.0f32, 0.0, 0.0, 0.0],
        [0.6, 0.4, 0.0, 0.0],
        [0.2, 0.3, 0.5, 0.0],
        [0.25, 0.25, 0.25, 0.25],
    ];
    let t = Tensor::new(&[[rows]], &Device::Cpu).unwrap(); // [1, 1, 4, 4]
    let map = AttentionMap::from_attentions(
        &[t],
        0,
        &["a", "b", "c", "<pad>"],
        Some(&[1u32, 1, 1, 0][..]),
    )
    .unwrap();
    assert_eq!(map.tokens(), &["a", "b", "c"]);
    assert!(map.is_causal());
    let doc_s = map.head(0, 0).unwrap().to_svg().unwrap();
    let doc = Document::parse(&doc_s).unwrap();
    let cells: usize = group(&doc, "cells")
        .unwrap()
        .children()
        .filter(|n| n.has_tag_name("rect"))
        .count();
    let masked: usize = group(&doc, "masked")
        .unwrap()
        .children()
        .filter(|n| n.has_tag_name("rect"))
        .map(|n| {
            assert_eq!(n.attribute("fill"), Some("url(#mt-masked)"));
            attr::<usize>(n, "data-n").unwrap()
        })
        .sum();
    assert_eq!((cells, masked), (6, 3));
    assert!(!doc_s.contains("&lt;pad&gt;"));
    let s = &map.head_stats()[0];
    assert!((s.prev_token - (0.6 + 0.3) / 2.0).abs() < 1e-6, "{s:?}");
    assert!((s.first_token - (0.6 + 0.2) / 2.0).abs() < 1e-6, "{s:?}");
    let ent = -(0.6f64 * 0.6f64.ln()
        + 0.4 * 0.4f64.ln()
        + 0.2 * 0.2f64.ln()
        + 0.3 * 0.3f64.ln()
        + 0.5 * 0.5f64.ln())
        / 3.0;
    assert!((s.entropy - ent).abs() < 1e-6);
}

#[test]
fn bad_input_gets_errors_naming_the_numbers() {
    let (t, _) = probs5();
    let e = AttentionMap::from_tensor(&t, &["a", "b", "c"])
        .unwrap_err()
        .to_string();
    assert!(e.contains('3') && e.contains('5'), "{e}");
    let map = AttentionMap::from_tensor(&t, &TOKENS).unwrap();
    let e = map.head(0, 7).unwrap_err().to_string();
    assert!(e.contains("head 7") && e.contains("2 heads"), "{e}");
    let e = map.head(3, 0).unwrap_err().to_string();
    assert!(e.contains("layer 3"), "{e}");
    let batch = Tensor::zeros((2, 1, 5, 5), DType::F32, &Device::Cpu).unwrap();
    let e = AttentionMap::from_tensor(&batch, &TOKENS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("from_tensor_batch"), "{e}");
    let e = AttentionMap::from_tensor_batch(&batch, 2, &TOKENS)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("batch index 2") && e.contains("2 sequences"),
        "{e}"
    );
    let e = map
        .head(0, 0)
        .unwrap()
        .width(0)
        .to_svg()
        .unwrap_err()
        .to_string();
    assert!(e.contains("0×680"), "{e}");
    let e = ConfusionMatrix::new(&[0, 1], &[0], &["a", "b"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 true labels but 1 predictions"), "{e}");
}

#[test]
fn attention_of_a_real_model_renders_head_grid_and_overview() {
    let mut m = AutoModelForCausalLM::from_dir(fixture("models/gpt2"), &Device::Cpu).unwrap();
    m.eval();
    let ids: Vec<u32> = vec![5, 17, 33, 2, 64, 90, 11, 40];
    let toks: Vec<String> = ids.iter().map(|i| format!("t{i}")).collect();
    let map = AttentionMap::from_model_ids(&m, &ids, &toks).unwrap();
    assert_eq!(
        (map.num_layers(), map.num_heads(), map.num_keys()),
        (2, 3, 8)
    );
    assert!(
        map.is_causal(),
        "GPT-2's mask gives exact zeros after the query"
    );
    for l in 0..2 {
        for h in 0..3 {
            let p = map.probs(l, h).unwrap();
            for i in 0..8 {
                let s: f32 = p[i * 8..(i + 1) * 8].iter().sum();
                assert!((s - 1.0).abs() < 1e-4);
            }
        }
    }
    let grid = map.layer_grid(1).unwrap().to_svg().unwrap();
    let doc = Document::parse(&grid).unwrap();
    let panels = groups(&doc, "cells");
    assert_eq!(panels.len(), 3, "one heatmap per head");
    for p in panels {
        assert_eq!(
            p.children().filter(|n| n.has_tag_name("rect")).count(),
            36,
            "8·9/2 visible cells"
        );
    }
    let ov = map.overview();
    assert_eq!(ov.stats().len(), 6);
    let doc_s = ov.to_svg().unwrap();
    let doc = Document::parse(&doc_s).unwrap();
    let panels = groups(&doc, "cells");
    assert_eq!(panels.len(), 3, "entropy, previous token, first token");
    let values: Vec<String> = panels[1]
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap().to_string())
        .collect();
    let expected: Vec<String> = ov
        .stats()
        .iter()
        .map(|s| format!("{:.2}", s.prev_token))
        .collect();
    assert_eq!(values, expected);
    // colour bars tick at round values in one format, not at the scale's own ends (the
    // entropy scale ends at ln 8 = 2.08)
    for bar in groups(&doc, "colour-bar") {
        let ticks: Vec<String> = texts(bar)
            .into_iter()
            .filter(|t| t.parse::<f64>().is_ok())
            .collect();
        assert!(ticks.len() >= 2, "{ticks:?}");
        let decimals = |t: &String| t.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(
            ticks.iter().all(|t| decimals(t) == decimals(&ticks[0])),
            "{ticks:?}"
        );
        assert!(!ticks.contains(&"2.08".to_string()), "{ticks:?}");
    }
    assert!(
        map.head(1, 2)
            .unwrap()
            .describe()
            .contains("layer 1 head 2")
    );
}

fn history(n: usize) -> Vec<LogEntry> {
    let mut h = vec![];
    for s in 1..=n {
        let mut e = LogEntry::new();
        e.insert("step".into(), (s as u64).into());
        e.insert(
            "loss".into(),
            (3.0 + 5.0 / (s as f64).sqrt() + 0.3 * ((s * 7919) % 13) as f64 / 13.0).into(),
        );
        e.insert(
            "learning_rate".into(),
            (1e-3 * (s as f64 / n as f64)).into(),
        );
        e.insert("grad_norm".into(), (1.0 + (s % 5) as f64).into());
        h.push(e);
        if s % 50 == 0 {
            let mut e = LogEntry::new();
            e.insert("step".into(), (s as u64).into());
            e.insert("eval_loss".into(), (3.5 + 4.0 / (s as f64).sqrt()).into());
            h.push(e);
        }
    }
    h
}

fn polylines(doc: &Document) -> Vec<Vec<(f64, f64)>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| {
            n.attribute("points")
                .unwrap()
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

#[test]
fn loss_chart_has_a_point_per_logged_step_and_axes_cover_the_data() {
    let h = history(300);
    let chart = TrainingCurves::from_log_history(&h).title("run");
    assert_eq!(chart.runs()[0].loss.len(), 300);
    assert_eq!(chart.runs()[0].eval_loss.len(), 6);
    let svg = chart.to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let lines = polylines(&doc);
    let counts: Vec<usize> = lines.iter().map(|l| l.len()).collect();
    // raw loss, EMA loss, eval loss, learning rate, grad norm
    assert_eq!(
        counts.iter().filter(|&&c| c == 300).count(),
        4,
        "{counts:?}"
    );
    assert!(counts.contains(&6));
    // The loss line starts at the left edge of the plot and ends at the right edge: its x span is
    // most of the chart, and every point lies inside the picture.
    let raw = lines.iter().find(|l| l.len() == 300).unwrap();
    let (x0, x1) = (raw[0].0, raw[299].0);
    assert!(x1 - x0 > 0.75 * 800.0, "{x0}..{x1}");
    assert!(
        raw.iter()
            .all(|p| p.0 >= 0.0 && p.0 <= 800.0 && p.1 >= 0.0 && p.1 <= 620.0)
    );
    // Numeric x tick labels lie within the step range and reach most of it.
    let ticks: Vec<f64> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text()?.trim().parse::<f64>().ok())
        .collect();
    assert!(
        ticks.iter().any(|t| (250.0..=300.0).contains(t)),
        "{ticks:?}"
    );
    // The loss axis labels cover the loss range: some tick below the minimum loss's neighbourhood.
    let losses: Vec<f64> = chart.runs()[0].loss.iter().map(|p| p.1).collect();
    let (lo, hi) = losses
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(
        ticks.iter().any(|&t| t <= lo + 0.2 * (hi - lo))
            && ticks
                .iter()
                .any(|&t| t >= hi - 0.2 * (hi - lo) && t <= hi + 1.0)
    );
    assert!(
        svg.contains("learning rate") && svg.contains("grad norm") && svg.contains("eval loss")
    );
    let alt = chart.describe();
    assert!(alt.contains("300 logged points"), "{alt}");
}

#[test]
fn long_runs_are_downsampled_to_the_documented_count() {
    let n = 100_000;
    let pts: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            (
                i as f64,
                ((i as f64) * 0.37).sin() + if i == 54_321 { 9.0 } else { 0.0 },
            )
        })
        .collect();
    let chart = TrainingCurves::from_series(&pts).smoothing(0.0).width(800);
    let thin = downsample_min_max(&pts, 800);
    assert!(
        thin.len() <= 2 * 800 + 2 && thin.len() > 800,
        "{}",
        thin.len()
    );
    assert!(
        thin.contains(&(54_321.0, pts[54_321].1)),
        "the spike survives"
    );
    assert_eq!(chart.plotted(&pts), thin);
    let doc_s = chart.to_svg().unwrap();
    let doc = Document::parse(&doc_s).unwrap();
    // Polylines of more than two points are data (plotters draws legend marks and axes as
    // two-point polylines).
    let lines: Vec<Vec<(f64, f64)>> = polylines(&doc)
        .into_iter()
        .filter(|l| l.len() > 2)
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].len(), thin.len());
    // Several runs on one chart, one line each, a legend entry per run.
    let two = TrainingCurves::new()
        .add_run("a", history(120))
        .add_run("b", history(80))
        .log_scale(true);
    let svg = two.to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let counts: Vec<usize> = polylines(&doc).iter().map(|l| l.len()).collect();
    assert_eq!(
        counts.iter().filter(|&&c| c == 120).count(),
        4,
        "{counts:?}"
    );
    assert_eq!(counts.iter().filter(|&&c| c == 80).count(), 4, "{counts:?}");
    assert!(
        svg.contains("a train loss (raw)")
            && svg.contains("a train loss (EMA 0.85)")
            && svg.contains("b eval loss")
            && svg.contains("loss (log)")
    );
}

#[test]
fn trainer_state_files_load_as_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-a");
    std::fs::create_dir(&run).unwrap();
    let state = massivetext::train::TrainerState {
        log_history: history(40),
        ..Default::default()
    };
    state.save_to_json(&run.join("trainer_state.json")).unwrap();
    let c = TrainingCurves::from_trainer_state(run.join("trainer_state.json")).unwrap();
    assert_eq!(c.runs()[0].name, "run-a");
    assert_eq!(c.runs()[0].loss.len(), 40);
    assert_eq!(c.runs()[0].grad_norm.len(), 40);
    let e = TrainingCurves::from_trainer_state(dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json"), "{e}");
}

#[test]
fn evcxr_blocks_have_the_mime_header_and_close() {
    let (t, _) = probs5();
    let map = AttentionMap::from_tensor(&t, &TOKENS).unwrap();
    let out = map.head(0, 0).unwrap().to_evcxr();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "EVCXR_BEGIN_CONTENT image/svg+xml");
    assert!(lines[1].starts_with("<svg"));
    let ends: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == "EVCXR_END_CONTENT")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ends.len(), 2);
    assert!(lines[ends[0] - 1].ends_with("</svg>"));
    assert_eq!(lines[ends[0] + 1], "EVCXR_BEGIN_CONTENT text/plain");
    assert!(lines[ends[0] + 2].starts_with("Attention heatmap of layer 0 head 0"));
    assert_eq!(*lines.last().unwrap(), "EVCXR_END_CONTENT");
    // The SVG block is a whole XML document.
    Document::parse(lines[1..ends[0]].join("\n").as_str()).unwrap();
    let html = TokenScores::probabilities(&["a", "Ġb"], &[None, Some(0.5)])
        .unwrap()
        .to_evcxr();
    assert!(html.starts_with("EVCXR_BEGIN_CONTENT text/html\n<div"));
    assert!(html.contains("title=\"␣b · p = 0.5\""));
    assert!(html.trim_end().ends_with("EVCXR_END_CONTENT"));
}

#[test]
fn png_output_decodes_at_the_asked_size_and_saves_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _) = probs5();
    let map = AttentionMap::from_tensor(&t, &TOKENS).unwrap();
    let path = dir.path().join("head.png");
    map.head(0, 0)
        .unwrap()
        .width(400)
        .height(300)
        .save_png(&path)
        .unwrap();
    let img = Pixmap::decode_png(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (400, 300));
    // Something dark was drawn (cells, text), on a white background.
    let dark = img.pixels().iter().filter(|p| p.red() < 100).count();
    assert!(dark > 200, "{dark}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary left behind"
    );
    let curves = TrainingCurves::from_log_history(history(50))
        .width(640)
        .height(480);
    let img = Pixmap::decode_png(&curves.to_png().unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (640, 480));
    curves.save(dir.path().join("c.svg")).unwrap();
    Document::parse(&std::fs::read_to_string(dir.path().join("c.svg")).unwrap()).unwrap();
    let bad = dir.path().join("no/such/dir/x.png");
    let e = curves.save_png(&bad).unwrap_err().to_string();
    assert!(e.contains("no/such/dir/x.png"), "{e}");
}

/// A PNG of a large matrix paints its cells as one bitmap (fast) instead of one rectangle per
/// cell; it must look the same as rasterising the SVG, cell for cell and in the masked triangle.
#[test]
fn large_heatmap_png_matches_its_svg_cell_for_cell() {
    let n = 96; // 9216 cells: above the size where the PNG takes the bitmap path
    let mut p = vec![0f32; n * n];
    for i in 0..n {
        let w: Vec<f32> = (0..=i)
            .map(|j| 1.0 + ((i * 7 + j * 13) % 11) as f32 + if j == i { 20.0 } else { 0.0 })
            .collect();
        let s: f32 = w.iter().sum();
        for j in 0..=i {
            p[i * n + j] = w[j] / s;
        }
    }
    let t = Tensor::from_vec(p, (1, n, n), &Device::Cpu).unwrap();
    let tokens: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let map = AttentionMap::from_tensor(&t, &tokens).unwrap();
    let head = map.head(0, 0).unwrap().vmax(0.5).width(700).height(700);
    let svg = head.to_svg().unwrap();
    let fast = Pixmap::decode_png(&head.to_png().unwrap()).unwrap();
    let slow = Pixmap::decode_png(&svg_to_png(&svg).unwrap()).unwrap();
    assert_eq!((fast.width(), fast.height()), (700, 700));
    let doc = Document::parse(&svg).unwrap();
    let mut checked = [0usize; 2];
    for (k, class) in ["cells", "masked"].into_iter().enumerate() {
        for cell in group(&doc, class)
            .unwrap()
            .children()
            .filter(|c| c.is_element())
        {
            let (x, y, w, h): (f64, f64, f64, f64) = (
                attr(cell, "x").unwrap(),
                attr(cell, "y").unwrap(),
                attr(cell, "width").unwrap(),
                attr(cell, "height").unwrap(),
            );
            let runs = attr::<usize>(cell, "data-n").unwrap_or(1);
            for c in 0..runs {
                let cx = (x + w / runs as f64 * (c as f64 + 0.5)) as u32;
                let cy = (y + h / 2.0) as u32;
                let (a, b) = (fast.pixel(cx, cy).unwrap(), slow.pixel(cx, cy).unwrap());
                let close = |u: u8, v: u8| u.abs_diff(v) <= 3;
                assert!(
                    close(a.red(), b.red())
                        && close(a.green(), b.green())
                        && close(a.blue(), b.blue()),
                    "{class} at ({cx}, {cy}): bitmap {a:?} vs rectangles {b:?}"
                );
                checked[k] += 1;
            }
        }
    }
    assert_eq!(checked[0], n * (n + 1) / 2, "every visible cell compared");
    assert_eq!(checked[1], n * (n - 1) / 2, "every masked cell compared");
}

#[test]
fn pca_matches_scikit_learn() {
    let text = std::fs::read_to_string(fixture("pca_expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = |k: &str| -> Vec<Vec<f64>> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let data: Vec<Vec<f32>> = rows("data")
        .iter()
        .map(|r| r.iter().map(|&x| x as f32).collect())
        .collect();
    let pca = Pca::fit(&data, 2).unwrap();
    let close = |a: f64, b: f64, what: &str| {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{what}: {a} vs {b}"
        )
    };
    for (i, c) in rows("components").iter().enumerate() {
        for (j, &x) in c.iter().enumerate() {
            close(pca.components[i][j], x, "component");
        }
    }
    for (i, x) in v["explained_variance"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        close(pca.explained_variance[i], x.as_f64().unwrap(), "variance");
    }
    for (i, x) in v["explained_variance_ratio"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        close(
            pca.explained_variance_ratio[i],
            x.as_f64().unwrap(),
            "ratio",
        );
    }
    let proj = pca.transform(&data).unwrap();
    for (p, q) in proj.iter().zip(rows("transformed")) {
        close(p[0], q[0], "pc1");
        close(p[1], q[1], "pc2");
    }
    // The same through a tensor, and drawn with its labels.
    let t = Tensor::new(data.clone(), &Device::Cpu).unwrap();
    let labels: Vec<String> = (0..data.len()).map(|i| format!("s{i}")).collect();
    let plot = EmbeddingPlot::from_tensor(&t, &labels).unwrap();
    close(plot.points()[3].0, proj[3][0], "plot point");
    let svg = plot.to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let shown: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(
        labels.iter().all(|l| shown.contains(&l.as_str())),
        "{shown:?}"
    );
    assert!(svg.contains("PC1 (") && svg.contains("% of variance)"));
    let e = Pca::fit(&[vec![1.0, 2.0], vec![1.0]], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 1 has 1 values but row 0 has 2"), "{e}");
}

#[test]
fn confusion_matrix_counts_and_normalises() {
    let t = ["pos", "pos", "neg", "neg", "neg", "neu"];
    let p = ["pos", "neg", "neg", "neg", "pos", "neu"];
    let cm = ConfusionMatrix::from_labels(&t, &p).unwrap();
    assert_eq!(cm.labels(), &["neg", "neu", "pos"]);
    assert_eq!(cm.counts(), &[vec![2, 0, 1], vec![0, 1, 0], vec![1, 0, 1]]);
    assert!((cm.accuracy() - 4.0 / 6.0).abs() < 1e-12);
    let svg = cm.clone().normalize(Normalize::True).to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let vals: Vec<&str> = group(&doc, "cells")
        .unwrap()
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(
        vals,
        [
            "0.67", "0.00", "0.33", "0.00", "1.00", "0.00", "0.50", "0.00", "0.50"
        ]
    );
    let svg = cm.to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let vals: Vec<&str> = group(&doc, "cells")
        .unwrap()
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(vals, ["2", "0", "1", "0", "1", "0", "1", "0", "1"]);
}

#[test]
fn token_scores_tint_by_probability() {
    let ts = TokenScores::probabilities(
        &["The", "Ġcat", "Ġsat", "Ċ"],
        &[None, Some(0.9), Some(0.05), Some(0.5)],
    )
    .unwrap();
    let svg = ts.to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let rects: Vec<Node> = group(&doc, "tokens")
        .unwrap()
        .children()
        .filter(|n| n.has_tag_name("rect"))
        .collect();
    assert_eq!(rects.len(), 4);
    let tips: Vec<&str> = rects
        .iter()
        .map(|r| {
            r.children()
                .find(|n| n.has_tag_name("title"))
                .unwrap()
                .text()
                .unwrap()
        })
        .collect();
    assert_eq!(tips, ["not scored", "p = 0.9", "p = 0.05", "p = 0.5"]);
    let tok = Tokenizer::from_pretrained(fixture("tokenizers/gpt2")).unwrap();
    let config = Gpt2Config {
        vocab_size: tok.vocab_size(),
        n_positions: 64,
        n_embd: 16,
        n_layer: 1,
        n_head: 2,
        ..Gpt2Config::gpt2()
    };
    let mut m = AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap();
    m.eval();
    let s = TokenScores::from_model(&m, &tok, "hello world, hello").unwrap();
    let n = tok.encode("hello world, hello").unwrap().len();
    assert_eq!(s.values().len(), n);
    assert_eq!(s.values()[0], None);
    assert!(
        s.values()[1..]
            .iter()
            .all(|v| v.is_some_and(|p| p > 0.0 && p < 1.0))
    );
    // The same text's attention, straight from the model and tokenizer.
    let map = AttentionMap::from_model(&m, &tok, "hello world, hello").unwrap();
    assert_eq!(
        (map.num_layers(), map.num_heads(), map.num_keys()),
        (1, 2, n)
    );
    assert!(map.tokens().iter().any(|t| t.starts_with('Ġ')));
}

// ---------------------------------------------------------------- issue 29: charts that do not mislead

/// Every `font-size` of an SVG.
fn font_sizes(doc: &Document) -> Vec<f64> {
    doc.descendants()
        .filter_map(|n| {
            n.attribute("font-size")
                .and_then(|v| v.trim_end_matches("px").parse().ok())
        })
        .collect()
}

/// The `<text>` nodes of a document with their content.
fn all_texts<'a>(doc: &'a Document) -> Vec<(Node<'a, 'a>, String)> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            let t = n.text().unwrap_or("").trim().to_string();
            (n, t)
        })
        .collect()
}

#[test]
fn short_runs_are_drawn_raw_and_long_runs_smoothed_with_both_in_the_legend() {
    use massivetext::viz::auto_smoothing;
    assert_eq!(auto_smoothing(8), 0.0);
    assert_eq!(auto_smoothing(29), 0.0);
    assert!(auto_smoothing(30) > 0.0 && auto_smoothing(300) <= 0.95);
    assert!(auto_smoothing(100) < auto_smoothing(300));
    // 8 points: one line through the points themselves, no EMA
    let few = TrainingCurves::from_log_history(history(8));
    let svg = few.to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let data: Vec<usize> = polylines(&doc)
        .iter()
        .map(|l| l.len())
        .filter(|&n| n > 2)
        .collect();
    assert_eq!(
        data.iter().filter(|&&n| n == 8).count(),
        3,
        "loss, lr, grad norm: {data:?}"
    );
    assert!(!svg.contains("EMA"), "no smoothing below 30 points");
    assert!(all_texts(&doc).iter().any(|(_, t)| t == "train loss"));
    // 300 points: the raw series is named in the legend beside the smoothed one
    let many = TrainingCurves::from_log_history(history(300))
        .to_svg()
        .unwrap();
    assert!(many.contains("train loss (raw)") && many.contains("train loss (EMA 0.94)"));
    // an explicit weight wins
    let fixed = TrainingCurves::from_log_history(history(8))
        .smoothing(0.5)
        .to_svg()
        .unwrap();
    assert!(fixed.contains("train loss (EMA 0.5)"));
}

#[test]
fn the_legend_sits_above_the_data_and_text_is_at_least_10px() {
    let svg = TrainingCurves::from_log_history(history(300))
        .with_eval_loss(&[(100.0, 3.5), (200.0, 3.4)])
        .to_svg()
        .unwrap();
    let doc = Document::parse(&svg).unwrap();
    let top_of_data = polylines(&doc)
        .iter()
        .filter(|l| l.len() > 2)
        .flat_map(|l| l.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min);
    for label in ["train loss (raw)", "eval loss"] {
        let (node, _) = all_texts(&doc)
            .into_iter()
            .find(|(_, t)| t == label)
            .unwrap_or_else(|| panic!("no legend entry {label}"));
        let y: f64 = attr(node, "y").unwrap();
        assert!(y < top_of_data, "{label} at y {y}, data from {top_of_data}");
    }
    let sizes = font_sizes(&doc);
    assert!(
        !sizes.is_empty() && sizes.iter().all(|&s| s >= 10.0),
        "{sizes:?}"
    );
}

#[test]
fn each_axis_has_one_tick_format() {
    let h: Vec<LogEntry> = (1..=8)
        .map(|s| {
            let mut e = LogEntry::new();
            e.insert("step".into(), (s as u64 * 10).into());
            e.insert("loss".into(), (0.2 + 2.0 / s as f64).into());
            e
        })
        .collect();
    let svg = TrainingCurves::from_log_history(h).to_svg().unwrap();
    let doc = Document::parse(&svg).unwrap();
    let numbers: Vec<String> = all_texts(&doc)
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.parse::<f64>().is_ok())
        .collect();
    let decimals = |t: &String| t.split_once('.').map_or(0, |(_, d)| d.len());
    let y: Vec<&String> = numbers.iter().filter(|t| t.contains('.')).collect();
    assert!(y.len() >= 3, "{numbers:?}");
    assert!(
        y.iter().all(|t| decimals(t) == decimals(y[0])),
        "{numbers:?}"
    );
    assert!(
        numbers.iter().any(|t| t == "1.0" || t == "2.0"),
        "whole values keep the axis' decimals: {numbers:?}"
    );
    assert!(!numbers.iter().any(|t| t == "-0" || t == "-0.0"));
}

#[test]
fn sentence_labels_read_as_text_and_stay_inside_the_chart() {
    use massivetext::viz::point_label;
    assert_eq!(
        point_label("A man  is\teating food.", 40),
        "A man is eating food."
    );
    assert_eq!(point_label("Ġhello", 40), "␣hello");
    assert_eq!(
        point_label("A man is riding a horse on the beach at sunset.", 32),
        "A man is riding a horse on the…"
    );
    let emb = vec![vec![0.0f32, 0.0], vec![1.0, 0.1], vec![0.2, 1.0]];
    let labels = ["a cat sat", "The new movie is awesome", "a dog ran"];
    let plot = EmbeddingPlot::new(&emb, &labels).unwrap();
    let svg = plot.to_svg().unwrap();
    assert!(svg.contains("The new movie is awesome") && !svg.contains('␣'));
    let doc = Document::parse(&svg).unwrap();
    // labels point inward: right of the middle, anchored at their end (left of the point)
    let xs: Vec<f64> = plot.points().iter().map(|p| p.0).collect();
    let mid = (xs.iter().cloned().fold(f64::INFINITY, f64::min)
        + xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
        / 2.0;
    for (label, x) in labels.iter().zip(&xs) {
        let (node, _) = all_texts(&doc)
            .into_iter()
            .find(|(_, t)| t == label)
            .unwrap();
        let want = if *x > mid { "end" } else { "start" };
        assert_eq!(node.attribute("text-anchor"), Some(want), "{label} at {x}");
    }
    assert!(font_sizes(&doc).iter().all(|&s| s >= 10.0));
}

#[test]
fn token_scores_wrap_whole_words_and_carry_a_colour_key() {
    // words of two tokens each ("Ġjum" + "ps"), on a narrow chart that must wrap
    let mut tokens = vec!["The".to_string()];
    for w in [
        "quick", "brown", "jumps", "overall", "lazily", "forests", "nobody",
    ] {
        tokens.push(format!("Ġ{}", &w[..3]));
        tokens.push(w[3..].to_string());
    }
    let probs: Vec<Option<f64>> = (0..tokens.len()).map(|i| Some(i as f64 / 20.0)).collect();
    let svg = TokenScores::probabilities(&tokens, &probs)
        .unwrap()
        .width(220)
        .to_svg()
        .unwrap();
    let doc = Document::parse(&svg).unwrap();
    let rects: Vec<(f64, f64)> = group(&doc, "tokens")
        .unwrap()
        .children()
        .filter(|n| n.has_tag_name("rect"))
        .map(|r| (attr(r, "x").unwrap(), attr(r, "y").unwrap()))
        .collect();
    assert_eq!(rects.len(), tokens.len());
    let lines: std::collections::BTreeSet<i64> = rects.iter().map(|r| r.1 as i64).collect();
    assert!(lines.len() > 1, "the text wraps at this width");
    for (i, t) in tokens.iter().enumerate().skip(1) {
        if !t.starts_with('Ġ') {
            assert_eq!(
                rects[i].1,
                rects[i - 1].1,
                "token {i} ({t}) left its word's line"
            );
        }
    }
    assert!(svg.contains(">probability<") && svg.contains("red: surprising"));
    assert!(
        font_sizes(&doc).iter().all(|&s| s >= 10.0),
        "{:?}",
        font_sizes(&doc)
    );
    // the drawing is as tall as its content, not a fixed 240 px with the text cut
    let h: f64 = attr(doc.root_element(), "height").unwrap();
    let bottom = rects.iter().map(|r| r.1).fold(0.0, f64::max);
    assert!(
        h > bottom && h < bottom + 120.0,
        "height {h}, last line at {bottom}"
    );
}
