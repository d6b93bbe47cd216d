//! The Llama family's ops (kernels::{rms_norm, rope, swiglu, gqa_attention}, and the LoRA
//! layer `lora_linear` fine-tuning puts on its projections): the fused CPU
//! kernels against their composed twins (values and gradients, random shapes, strided inputs,
//! masks), both paths against transformers' own code (tests/fixtures/make_llama_ops.py), and
//! bad shapes refused with the shapes named.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use massivetext::kernels;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 4.0 - 2.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    let v: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// `max |a - b| / max |b|`: the relative error of the tests (house style, as tests/models.rs).
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(DType::F32).unwrap();
    let b = b.to_dtype(DType::F32).unwrap();
    max_abs(&(&a - &b).unwrap()) / max_abs(&b).max(1e-6)
}

/// The output of `f` on leaves `inputs`, and the gradients of `sum(out * w)` for each leaf.
fn run(
    inputs: &[Tensor],
    w: Option<&Tensor>,
    f: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) -> (Tensor, Vec<Option<Tensor>>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts).unwrap();
    let w = match w {
        Some(w) => w.clone(),
        None => randn(out.dims(), 99),
    };
    let grads = (&out * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let g = vars.iter().map(|v| grads.get(v).cloned()).collect();
    (out, g)
}

/// Fused against composed on the same inputs: values and the gradients of the first `n_grads`
/// inputs (relative error ≤ 1e-5).
fn fused_vs_composed(
    name: &str,
    inputs: &[Tensor],
    n_grads: usize,
    f: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) {
    let w = {
        let probe = kernels::with_fused(false, || f(inputs)).unwrap();
        randn(probe.dims(), 99)
    };
    let (a, ga) = kernels::with_fused(true, || run(inputs, Some(&w), f));
    let (b, gb) = kernels::with_fused(false, || run(inputs, Some(&w), f));
    let d = rel_diff(&a, &b);
    assert!(d <= 1e-5, "{name}: values differ by {d} (relative)");
    for i in 0..n_grads {
        let (x, y) = (ga[i].as_ref().unwrap(), gb[i].as_ref().unwrap());
        let d = rel_diff(x, y);
        assert!(
            d <= 1e-5,
            "{name}: gradient of input {i} differs by {d} (relative)"
        );
    }
}

/// `[b, 1, t, tk]`: causal (query i sees keys up to `i + tk - t`), the first `pad[bi]` keys of
/// each sequence masked with `fill`.
fn mask(b: usize, t: usize, tk: usize, pad: &[usize], fill: f32) -> Tensor {
    let mut m = vec![0f32; b * t * tk];
    for bi in 0..b {
        for i in 0..t {
            for j in 0..tk {
                if j > i + tk - t || j < pad[bi] {
                    m[(bi * t + i) * tk + j] = fill;
                }
            }
        }
    }
    Tensor::from_vec(m, (b, 1, t, tk), &Device::Cpu).unwrap()
}

/// cos and sin `[b, t, half]` of positions `p0[bi] + ti`, Llama's frequencies.
fn angles(b: usize, t: usize, half: usize, p0: &[usize]) -> (Tensor, Tensor) {
    let (mut c, mut s) = (vec![], vec![]);
    for &p in p0.iter().take(b) {
        for ti in 0..t {
            for i in 0..half {
                let a = (p + ti) as f32 / 10000f32.powf(i as f32 / half as f32);
                c.push(a.cos());
                s.push(a.sin());
            }
        }
    }
    let dev = &Device::Cpu;
    (
        Tensor::from_vec(c, (b, t, half), dev).unwrap(),
        Tensor::from_vec(s, (b, t, half), dev).unwrap(),
    )
}

fn check_all(b: usize, heads: usize, kv: usize, t: usize, tk: usize, half: usize, seed: u64) {
    let hd = 2 * half;
    // RMSNorm over [b, t, d] (d odd and even), weight around 1
    for d in [hd + 1, heads * hd] {
        let w = randn(&[d], seed + 1).affine(0.2, 1.0).unwrap();
        fused_vs_composed("rms_norm", &[randn(&[b, t, d], seed), w], 2, &|x| {
            kernels::rms_norm(&x[0], &x[1], 1e-6)
        });
    }
    // SwiGLU, contiguous and one strided input
    let (g, u) = (
        randn(&[b, t, hd + 3], seed + 2),
        randn(&[b, t, hd + 3], seed + 3),
    );
    fused_vs_composed("swiglu", &[g.clone(), u.clone()], 2, &|x| {
        kernels::swiglu(&x[0], &x[1])
    });
    fused_vs_composed(
        "swiglu strided",
        &[g, u.transpose(0, 2).unwrap()],
        2,
        &|x| kernels::swiglu(&x[0], &x[1].transpose(0, 2)?),
    );
    // RoPE: x a transposed view [b, t, heads, hd] -> [b, heads, t, hd] as a model makes it;
    // cos/sin per row, transposed, and one row broadcast over the batch
    let p0: Vec<usize> = (0..b).map(|i| 3 * i + seed as usize % 5).collect();
    let (cos, sin) = angles(b, t, half, &p0);
    let x = randn(&[b, t, heads, hd], seed + 4);
    fused_vs_composed("rope", std::slice::from_ref(&x), 1, &|x| {
        kernels::rope(&x[0].transpose(1, 2)?, &cos, &sin)
    });
    let (ct, st) = (
        cos.transpose(1, 2).unwrap().contiguous().unwrap(),
        sin.transpose(1, 2).unwrap().contiguous().unwrap(),
    );
    fused_vs_composed(
        "rope, cos and sin strided",
        std::slice::from_ref(&x),
        1,
        &|x| {
            kernels::rope(
                &x[0].transpose(1, 2)?,
                &ct.transpose(1, 2)?,
                &st.transpose(1, 2)?,
            )
        },
    );
    let (c1, s1) = (cos.narrow(0, 0, 1).unwrap(), sin.narrow(0, 0, 1).unwrap());
    fused_vs_composed(
        "rope, one row of angles",
        std::slice::from_ref(&x),
        1,
        &|x| kernels::rope(&x[0].transpose(1, 2)?, &c1, &s1),
    );
    let (cb, sb) = (
        c1.broadcast_as((b, t, half)).unwrap(),
        s1.broadcast_as((b, t, half)).unwrap(),
    );
    fused_vs_composed("rope, angles broadcast", &[x], 1, &|x| {
        kernels::rope(&x[0].transpose(1, 2)?, &cb, &sb)
    });
    // GQA: q and v transposed views, k contiguous; no mask, causal + padding with f32::MIN
    // (padded query rows then masked whole, as transformers' masks), -inf padding entries, and
    // one mask row broadcast over the batch
    let q = randn(&[b, t, heads, hd], seed + 5);
    let k = randn(&[b, kv, tk, hd], seed + 6);
    let v = randn(&[b, tk, kv, hd], seed + 7);
    let pad: Vec<usize> = (0..b).map(|i| i % tk.max(1)).collect();
    let masks = [
        None,
        Some(mask(b, t, tk, &pad, f32::MIN)),
        Some(mask(b, t, tk, &vec![0; b], f32::NEG_INFINITY)),
        Some(mask(1, t, tk, &[tk / 2], f32::MIN)),
    ];
    for m in &masks {
        fused_vs_composed(
            "gqa_attention",
            &[q.clone(), k.clone(), v.clone()],
            3,
            &|x| {
                kernels::gqa_attention(
                    &x[0].transpose(1, 2)?,
                    &x[1],
                    &x[2].transpose(1, 2)?,
                    m.as_ref(),
                )
            },
        );
    }
}

proptest! {
    #![proptest_config(Config { cases: 24, ..Config::default() })]
    /// Random shapes, odd half widths among them, kv heads shared by 1 to 3 query heads, as
    /// many or more keys than queries (a KV cache's decoding).
    #[test]
    fn fused_llama_ops_match_composed(
        b in 1usize..4,
        kv in 1usize..3,
        rep in 1usize..4,
        t in 1usize..7,
        extra in 0usize..4,
        half in 1usize..8,
        seed in 0u64..1000,
    ) {
        check_all(b, kv * rep, kv, t, t + extra, half, seed);
    }
}

#[test]
fn fused_llama_ops_match_composed_on_large_shapes() {
    // large enough for the parallel paths (rows, tasks and gemm blocks)
    check_all(3, 8, 2, 40, 40, 16, 7);
    check_all(2, 6, 3, 65, 65, 33, 8);
}

#[test]
fn fully_masked_row_is_nan_on_both_paths_as_in_torch() {
    // every key of query row 1 is -inf: torch's softmax gives NaN there; both paths agree, and
    // the other rows are untouched
    let (q, k, v) = (
        randn(&[1, 2, 3, 4], 1),
        randn(&[1, 1, 3, 4], 2),
        randn(&[1, 1, 3, 4], 3),
    );
    let mut m = vec![0f32; 9];
    m[3..6].fill(f32::NEG_INFINITY);
    let m = Tensor::from_vec(m, (1, 1, 3, 3), &Device::Cpu).unwrap();
    let run = |fused| {
        let y =
            kernels::with_fused(fused, || kernels::gqa_attention(&q, &k, &v, Some(&m))).unwrap();
        y.get(0).unwrap().to_vec2::<f32>().unwrap()
    };
    let (a, b) = (run(true), run(false));
    for (row, (ra, rb)) in a.iter().zip(&b).enumerate() {
        for (x, y) in ra.iter().zip(rb) {
            if row == 1 {
                assert!(x.is_nan() && y.is_nan(), "row 1: {x} and {y}");
            } else {
                assert!((x - y).abs() <= 1e-6, "row {row}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn lora_linear_over_a_frozen_layer_matches_composed() {
    // peft's lora.Linear on every projection: a frozen base (weight and bias plain tensors, not
    // variables, so the fused op applies) plus scale · B A x; x, the middle h and B train.
    let (rows, d_in, d_out, r) = (37, 24, 40, 4);
    for conv1d in [false, true] {
        let shape = if conv1d { [d_in, d_out] } else { [d_out, d_in] };
        let w = randn(&shape, 11);
        for bias in [None, Some(randn(&[d_out], 12))] {
            let name = format!("lora_linear conv1d {conv1d} bias {}", bias.is_some());
            fused_vs_composed(
                &name,
                &[
                    randn(&[3, rows, d_in], 13),
                    randn(&[3, rows, r], 14),
                    randn(&[d_out, r], 15),
                ],
                3,
                &|t| kernels::lora_linear(&t[0], &w, bias.as_ref(), conv1d, &t[1], &t[2]),
            );
        }
    }
    // and the sum it stands for: the base layer plus the adapter's product
    let (x, h, b) = (
        randn(&[2, 5, d_in], 1),
        randn(&[2, 5, r], 2),
        randn(&[d_out, r], 3),
    );
    let w = randn(&[d_out, d_in], 4);
    let fused = kernels::lora_linear(&x, &w, None, false, &h, &b).unwrap();
    let plain = (kernels::linear(&x, &w, None, false).unwrap()
        + kernels::linear(&h, &b, None, false).unwrap())
    .unwrap();
    assert!(rel_diff(&fused, &plain) <= 1e-6);
}

// ---------------------------------------------------------------- against transformers

fn expected() -> HashMap<String, Tensor> {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_ops/expected.safetensors");
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

/// One op on the fixture's inputs: values and gradients ≤ 1e-4 relative to torch's.
fn against_torch(
    e: &HashMap<String, Tensor>,
    case: &str,
    inputs: &[&str],
    f: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) {
    let ins: Vec<Tensor> = inputs
        .iter()
        .map(|n| e[&format!("{case}.{n}")].clone())
        .collect();
    for fused in [true, false] {
        let (out, grads) =
            kernels::with_fused(fused, || run(&ins, Some(&e[&format!("{case}.w")]), f));
        let d = rel_diff(&out, &e[&format!("{case}.out")]);
        assert!(
            d <= 1e-4,
            "{case} (fused {fused}): output differs from torch by {d}"
        );
        for (n, g) in inputs.iter().zip(&grads) {
            let d = rel_diff(g.as_ref().unwrap(), &e[&format!("{case}.grad.{n}")]);
            assert!(
                d <= 1e-4,
                "{case} (fused {fused}): gradient of {n} differs from torch by {d}"
            );
        }
    }
}

#[test]
fn llama_ops_match_transformers_values_and_gradients() {
    let e = expected();
    let eps = e["rms_norm.eps"].to_vec1::<f64>().unwrap()[0];
    against_torch(&e, "rms_norm", &["x", "weight"], &|x| {
        kernels::rms_norm(&x[0], &x[1], eps)
    });
    let (cos, sin) = (&e["rope.cos"], &e["rope.sin"]);
    against_torch(&e, "rope", &["x"], &|x| kernels::rope(&x[0], cos, sin));
    against_torch(&e, "swiglu", &["gate", "up"], &|x| {
        kernels::swiglu(&x[0], &x[1])
    });
    for case in ["gqa", "mha"] {
        let m = &e[&format!("{case}.mask")];
        against_torch(&e, case, &["q", "k", "v"], &|x| {
            kernels::gqa_attention(&x[0], &x[1], &x[2], Some(m))
        });
    }
    against_torch(&e, "mqa", &["q", "k", "v"], &|x| {
        kernels::gqa_attention(&x[0], &x[1], &x[2], None)
    });
}

// ---------------------------------------------------------------- bad input

/// The error of `f` on both paths; each must name every shape in `shapes`.
fn refused(f: &dyn Fn() -> candle_core::Result<Tensor>, op: &str, shapes: &[&str]) {
    for fused in [true, false] {
        let msg = match kernels::with_fused(fused, f) {
            Ok(t) => panic!(
                "{op} accepted bad shapes (fused {fused}), gave {:?}",
                t.dims()
            ),
            Err(e) => e.to_string(),
        };
        assert!(msg.starts_with(op), "{msg}");
        for s in shapes {
            assert!(msg.contains(s), "`{msg}` does not name {s}");
        }
    }
}

#[test]
fn bad_shapes_are_refused_naming_them() {
    let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
    refused(
        &|| kernels::rms_norm(&z(&[2, 5, 8]), &z(&[7]), 1e-6),
        "rms_norm",
        &["[2, 5, 8]", "[7]"],
    );
    // odd head width, angles of the wrong width, of the wrong length, cos and sin apart
    refused(
        &|| kernels::rope(&z(&[1, 2, 3, 5]), &z(&[1, 3, 2]), &z(&[1, 3, 2])),
        "rope",
        &["[1, 2, 3, 5]", "[1, 3, 2]"],
    );
    refused(
        &|| kernels::rope(&z(&[2, 2, 3, 8]), &z(&[2, 3, 8]), &z(&[2, 3, 8])),
        "rope",
        &["[2, 2, 3, 8]", "[2, 3, 8]"],
    );
    refused(
        &|| kernels::rope(&z(&[2, 2, 3, 8]), &z(&[2, 4, 4]), &z(&[2, 4, 4])),
        "rope",
        &["[2, 4, 4]"],
    );
    refused(
        &|| kernels::rope(&z(&[2, 2, 3, 8]), &z(&[2, 3, 4]), &z(&[1, 3, 4])),
        "rope",
        &["[2, 3, 4]", "[1, 3, 4]"],
    );
    refused(
        &|| kernels::rope(&z(&[2, 3, 8]), &z(&[2, 3, 4]), &z(&[2, 3, 4])),
        "rope",
        &["[2, 3, 8]"],
    );
    refused(
        &|| kernels::swiglu(&z(&[2, 3, 8]), &z(&[2, 8, 3])),
        "swiglu",
        &["[2, 3, 8]", "[2, 8, 3]"],
    );
    // heads not a multiple of kv heads, head widths apart, k and v apart, batch apart, masks
    let q = z(&[2, 6, 5, 4]);
    refused(
        &|| kernels::gqa_attention(&q, &z(&[2, 4, 5, 4]), &z(&[2, 4, 5, 4]), None),
        "gqa_attention",
        &["[2, 6, 5, 4]", "[2, 4, 5, 4]"],
    );
    refused(
        &|| kernels::gqa_attention(&q, &z(&[2, 2, 5, 8]), &z(&[2, 2, 5, 8]), None),
        "gqa_attention",
        &["[2, 2, 5, 8]"],
    );
    refused(
        &|| kernels::gqa_attention(&q, &z(&[2, 2, 5, 4]), &z(&[2, 2, 7, 4]), None),
        "gqa_attention",
        &["[2, 2, 7, 4]"],
    );
    refused(
        &|| kernels::gqa_attention(&q, &z(&[1, 2, 5, 4]), &z(&[1, 2, 5, 4]), None),
        "gqa_attention",
        &["[1, 2, 5, 4]"],
    );
    refused(
        &|| kernels::gqa_attention(&q, &z(&[2, 0, 5, 4]), &z(&[2, 0, 5, 4]), None),
        "gqa_attention",
        &["[2, 0, 5, 4]"],
    );
    let (k, v) = (z(&[2, 2, 7, 4]), z(&[2, 2, 7, 4]));
    refused(
        &|| kernels::gqa_attention(&q, &k, &v, Some(&z(&[2, 1, 5, 5]))),
        "gqa_attention",
        &["[2, 1, 5, 5]", "[2, 1, 5, 7]"],
    );
    refused(
        &|| kernels::gqa_attention(&q, &k, &v, Some(&z(&[5, 7]))),
        "gqa_attention",
        &["[5, 7]"],
    );
    refused(
        &|| kernels::gqa_attention(&z(&[6, 5, 4]), &k, &v, None),
        "gqa_attention",
        &["[6, 5, 4]"],
    );
}

// ---------------------------------------------------------------- decoding over a KV cache

#[test]
fn cached_gqa_attention_equals_attention_over_the_same_keys() {
    let (b, heads, kv, hd, cap) = (2, 6, 2, 8, 12);
    let cache = Tensor::zeros((2, b, kv, cap, hd), DType::F32, &Device::Cpu).unwrap();
    // a prompt of 5 (row 1 left-padded by 2), then one decoding step
    let (k0, v0) = (randn(&[b, kv, 5, hd], 1), randn(&[b, kv, 5, hd], 2));
    let (k1, v1) = (randn(&[b, kv, 1, hd], 3), randn(&[b, kv, 1, hd], 4));
    let (q0, q1) = (randn(&[b, heads, 5, hd], 5), randn(&[b, heads, 1, hd], 6));
    kernels::gqa_kv_cache_write(&cache, &k0, &v0, 0).unwrap();
    let m0 = mask(b, 5, 5, &[0, 2], f32::MIN);
    let m1 = mask(b, 1, 6, &[0, 2], f32::MIN);
    let full = |x: &Tensor, y: &Tensor| Tensor::cat(&[x, y], 2).unwrap();
    for fused in [true, false] {
        let (prompt, step) = kernels::with_fused(fused, || {
            let prompt = kernels::gqa_cached_attention(&q0, &cache, 5, Some(&m0)).unwrap();
            kernels::gqa_kv_cache_write(&cache, &k1, &v1, 5).unwrap();
            let step = kernels::gqa_cached_attention(&q1, &cache, 6, Some(&m1)).unwrap();
            (prompt, step)
        });
        let want0 = kernels::with_fused(false, || {
            kernels::gqa_attention(&q0, &k0, &v0, Some(&m0)).unwrap()
        });
        let want1 = kernels::with_fused(false, || {
            kernels::gqa_attention(&q1, &full(&k0, &k1), &full(&v0, &v1), Some(&m1)).unwrap()
        });
        assert!(rel_diff(&prompt, &want0) <= 1e-5, "fused {fused}: prompt");
        assert!(rel_diff(&step, &want1) <= 1e-5, "fused {fused}: step");
    }
    // positions past the capacity, or reading more than it holds, are refused
    let e = kernels::gqa_kv_cache_write(&cache, &k0, &v0, 8)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[2, 2, 2, 12, 8]") && e.contains("[2, 2, 5, 8]"),
        "{e}"
    );
    refused(
        &|| kernels::gqa_cached_attention(&q1, &cache, 13, None),
        "gqa_cached_attention",
        &["[2, 6, 1, 8]", "[2, 2, 2, 12, 8]"],
    );
}
