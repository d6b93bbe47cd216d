//! Chart rendering speed: a 512 × 512 attention heatmap and a 100,000-point loss chart, each to
//! SVG and to PNG (median of 5 runs).
//!
//! ```text
//! cargo bench --bench viz
//! VIZ_BENCH_OUT=/tmp/viz cargo bench --bench viz   # also saves the pictures there, to look at
//! ```
use std::time::Instant;

use massivetext::prelude::*;

fn median_ms(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut t = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let t0 = Instant::now();
        size = f();
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    (t[2], size)
}

fn main() -> massivetext::Result<()> {
    let n = 512;
    // Causal softmax rows with a diagonal, a previous-token band and a first-token sink.
    let mut p = vec![0f32; n * n];
    for i in 0..n {
        let mut s = 0.0;
        for j in 0..=i {
            let w = (-(((i - j) as f32) / 6.0)).exp()
                + if j == 0 { 3.0 } else { 0.0 }
                + ((i * 31 + j * 17) % 7) as f32 * 0.01;
            p[i * n + j] = w;
            s += w;
        }
        for j in 0..=i {
            p[i * n + j] /= s;
        }
    }
    let t = Tensor::from_vec(p, (1, n, n), &Device::Cpu)?;
    let tokens: Vec<String> = (0..n).map(|i| format!("Ġtok{i}")).collect();
    let map = AttentionMap::from_tensor(&t, &tokens)?;
    let head = map.head(0, 0)?.width(1000).height(1000);
    let (svg_ms, svg_len) = median_ms(|| head.to_svg().map(|s| s.len()).unwrap_or(0));
    let (png_ms, png_len) = median_ms(|| head.to_png().map(|s| s.len()).unwrap_or(0));
    let out = std::env::var_os("VIZ_BENCH_OUT").map(std::path::PathBuf::from);
    if let Some(dir) = &out {
        head.save_png(dir.join("attention_512.png"))?;
    }
    println!(
        "attention 512×512 (1000×1000 px): svg {svg_ms:.0} ms ({} KB), png {png_ms:.0} ms ({} KB)",
        svg_len / 1024,
        png_len / 1024
    );

    let pts: Vec<(f64, f64)> = (0..100_000)
        .map(|i| {
            let x = i as f64;
            (
                x,
                2.0 + 6.0 / (1.0 + x / 500.0).sqrt() + 0.2 * (x * 0.7).sin(),
            )
        })
        .collect();
    let lr: Vec<(f64, f64)> = pts
        .iter()
        .map(|&(x, _)| (x, 1e-3 * (1.0 - x / 100_000.0)))
        .collect();
    let curves = TrainingCurves::new()
        .with_run(massivetext::viz::Run {
            name: "run".into(),
            loss: pts.clone(),
            learning_rate: lr,
            ..Default::default()
        })
        .width(900)
        .height(640);
    let (svg_ms, svg_len) = median_ms(|| curves.to_svg().map(|s| s.len()).unwrap_or(0));
    let (png_ms, png_len) = median_ms(|| curves.to_png().map(|s| s.len()).unwrap_or(0));
    if let Some(dir) = &out {
        curves.save_png(dir.join("loss_100k.png"))?;
    }
    println!(
        "loss 100,000 points (900×640 px): svg {svg_ms:.0} ms ({} KB), png {png_ms:.0} ms ({} KB)",
        svg_len / 1024,
        png_len / 1024
    );
    Ok(())
}
