//! The GPU check (issue 31, part 2): what a GPU machine must show, in one program that writes one
//! JSON of results. scripts/device-check.sh builds it with `--features cuda`, bundles it with the
//! fixtures and the PyTorch twins, and runs it there; here it runs on the CPU as a dry run:
//!
//! ```text
//! cargo run --release --example device_check -- --device cpu --quick --out results.json
//! ```
//!
//! Checks, each recorded with its figures and `ok`, none stopping the others:
//! - `golden.*`: the fixture models (tests/fixtures/models: GPT-2, BERT, RoBERTa) on the device
//!   against transformers' committed float32 outputs: logits and loss (≤ 1e-4, ≤ 1e-5 as the
//!   suite), and the same models loaded in bf16 against the float32 logits (≤ 2e-2 of the
//!   largest logit);
//! - `gradients.gpt2`: every parameter's gradient on the device against torch's (≤ 1e-4
//!   relative to its largest entry, as tests/models.rs);
//! - `kernels`: each op with its own kernel on the device (LayerNorm, softmax, both GELUs, SiLU,
//!   cross-entropy, AdamW) against its composed twin on the same device, values and gradients
//!   (≤ 1e-5 relative);
//! - `kernels.attention`: the fused attention (kernels/flash.rs on a GPU) against the composed
//!   path, packed and grouped-query, masked and not, values and gradients (≤ 1e-5 relative),
//!   and both paths' forward + backward time at nanoGPT's shape;
//! - `generate.*`: every case of tests/fixtures/generate/expected.json (greedy, padded batches,
//!   beams, penalties) token for token against transformers' `generate`;
//! - `train.nanogpt`: nanoGPT's GPU configuration on tinyshakespeare (6 layers, 6 heads, 384
//!   wide, block 256, batch 64, dropout 0.2, lr 1e-3, warmup 100, cosine, betas 0.9/0.99):
//!   tokens/s, validation loss and model FLOPs utilisation;
//! - `decode.gpt2`: greedy decoding tokens/s of a GPT-2-small-sized model (random weights).
//!
//! The PyTorch side of the last two runs in the script (benches/nanogpt_torch.py,
//! benches/generate_torch.py), which puts the ratios beside these figures.
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use massivetext::corpus::CharVocab;
use massivetext::models::{AutoModelForCausalLM, AutoModelForMaskedLM, Gpt2Config};
use massivetext::prelude::*;
use serde_json::{Value, json};

type Check = std::result::Result<Value, String>;
/// A named check of the run.
type CheckFn = fn(&Options) -> Check;

struct Options {
    device: Device,
    quick: bool,
    fixtures: PathBuf,
    data: PathBuf,
    out: PathBuf,
    iters: usize,
}

fn options() -> std::result::Result<Options, String> {
    let mut o = Options {
        device: Device::Cpu,
        quick: false,
        fixtures: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        data: std::env::var_os("MASSIVETEXT_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
            .join("tinyshakespeare/input.txt"),
        out: PathBuf::from("device-check.json"),
        iters: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value (see the doc comment of device_check)"))
        };
        match a.as_str() {
            "--device" => {
                o.device = match value()?.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => Device::new_cuda(0).map_err(|e| format!("--device cuda: {e}"))?,
                    other => return Err(format!("--device {other}: expected cpu or cuda")),
                }
            }
            "--quick" => o.quick = true,
            "--fixtures" => o.fixtures = value()?.into(),
            "--data" => o.data = value()?.into(),
            "--out" => o.out = value()?.into(),
            "--iters" => {
                let v = value()?;
                o.iters = v
                    .parse()
                    .map_err(|_| format!("--iters {v}: expected a whole number"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> std::result::Result<f32, String> {
    if a.dims() != b.dims() {
        return Err(format!("shapes differ: {:?} vs {:?}", a.dims(), b.dims()));
    }
    let a = a.to_device(&Device::Cpu).map_err(s)?.to_dtype(DType::F32);
    let b = b.to_device(&Device::Cpu).map_err(s)?.to_dtype(DType::F32);
    (a.map_err(s)? - b.map_err(s)?)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
        .map_err(s)
}

fn max_abs(a: &Tensor) -> std::result::Result<f32, String> {
    let z = a.zeros_like().map_err(s)?;
    max_abs_diff(a, &z)
}

fn expected(o: &Options, name: &str) -> std::result::Result<HashMap<String, Tensor>, String> {
    let p = o
        .fixtures
        .join("models")
        .join(name)
        .join("expected.safetensors");
    candle_core::safetensors::load(&p, &o.device).map_err(|e| format!("{}: {e}", p.display()))
}

fn inputs(e: &HashMap<String, Tensor>) -> std::result::Result<ForwardArgs, String> {
    Ok(
        ForwardArgs::new(&e["input_ids"].to_dtype(DType::U32).map_err(s)?)
            .attention_mask(&e["attention_mask"])
            .labels(&e["labels"]),
    )
}

/// A fixture model's logits and loss on the device (f32) against torch, and its bf16-weight copy
/// against the f32 logits.
fn golden(o: &Options, name: &str) -> Check {
    let e = expected(o, name)?;
    let dir = o.fixtures.join("models").join(name);
    let args = inputs(&e)?;
    let forward = |dtype: DType| -> std::result::Result<ModelOutput, String> {
        if name == "gpt2" {
            AutoModelForCausalLM::from_pretrained_with(&dir, &o.device, dtype)
                .and_then(|m| m.forward_with(&args))
        } else {
            AutoModelForMaskedLM::from_pretrained_with(&dir, &o.device, dtype)
                .and_then(|m| m.forward_with(&args))
        }
        .map_err(s)
    };
    let out = forward(DType::F32)?;
    let logits = max_abs_diff(&out.logits, &e["logits"])?;
    let loss = out
        .loss
        .as_ref()
        .ok_or("no loss")?
        .to_dtype(DType::F32)
        .and_then(|l| l.to_device(&Device::Cpu)?.to_scalar::<f32>())
        .map_err(s)?;
    let want = e["loss"]
        .to_device(&Device::Cpu)
        .and_then(|l| l.to_vec1::<f32>())
        .map_err(s)?[0];
    // bf16 keeps ~3 significant digits: its logits are held relative to the largest f32 logit.
    let bf16 = max_abs_diff(&forward(DType::BF16)?.logits, &out.logits)? / max_abs(&out.logits)?;
    Ok(json!({
        "ok": logits <= 1e-4 && (loss - want).abs() <= 1e-5 && bf16 <= 2e-2,
        "max_abs_logits_vs_torch_f32": logits,
        "abs_loss_vs_torch": (loss - want).abs(),
        "max_relative_bf16_vs_f32": bf16,
    }))
}

/// GPT-2's gradients on the device against torch's float32 backward.
fn gradients(o: &Options) -> Check {
    let e = expected(o, "gpt2")?;
    let m = AutoModelForCausalLM::from_dir(o.fixtures.join("models/gpt2"), &o.device).map_err(s)?;
    let loss = m
        .forward_with(&inputs(&e)?)
        .map_err(s)?
        .loss
        .ok_or("no loss")?;
    let grads = loss.backward().map_err(s)?;
    let mut worst = 0f32;
    let mut worst_name = String::new();
    for (name, var) in m.named_parameters() {
        let g = grads.get(&var).ok_or(format!("no gradient for {name}"))?;
        let want = e
            .get(&format!("grad.{name}"))
            .ok_or(format!("torch has no {name}"))?;
        let rel = max_abs_diff(g, want)? / max_abs(want)?.max(1e-6);
        if rel > worst {
            worst = rel;
            worst_name = name;
        }
    }
    Ok(json!({"ok": worst <= 1e-4, "worst_relative": worst, "worst_parameter": worst_name}))
}

/// The relative difference of two tensors (to the larger's largest entry).
fn rel(a: &Tensor, b: &Tensor) -> std::result::Result<f32, String> {
    Ok(max_abs_diff(a, b)? / max_abs(b)?.max(max_abs(a)?).max(1e-12))
}

/// Each op with its own kernel against its composed twin on the device: output and the gradient
/// of every input for a random upstream gradient.
fn kernels(o: &Options) -> Check {
    use massivetext::kernels as k;
    let dev = &o.device;
    let randn = |shape: &[usize]| Tensor::randn(0f32, 1f32, shape, dev).map_err(s);
    let (rows, d) = (96, 384);
    let x = candle_core::Var::from_tensor(&randn(&[rows, d])?).map_err(s)?;
    let w = candle_core::Var::from_tensor(&randn(&[d])?).map_err(s)?;
    let b = candle_core::Var::from_tensor(&randn(&[d])?).map_err(s)?;
    let up = randn(&[rows, d])?;
    // every fifth row ignored, as padding is
    let labels: Vec<i64> = (0..rows as i64)
        .map(|i| {
            if i % 5 == 0 {
                k::IGNORE_INDEX
            } else {
                (7 * i + 3) % d as i64
            }
        })
        .collect();
    let labels = Tensor::new(labels.as_slice(), dev).map_err(s)?;
    type Op<'a> = Box<dyn Fn() -> candle_core::Result<Tensor> + 'a>;
    let ops: Vec<(&str, Op)> = vec![
        ("layer_norm", Box::new(|| k::layer_norm(&x, &w, &b, 1e-5))),
        ("softmax", Box::new(|| k::softmax_last_dim(&x))),
        ("gelu_tanh", Box::new(|| k::gelu(&x, k::Gelu::Tanh))),
        ("gelu_erf", Box::new(|| k::gelu(&x, k::Gelu::Erf))),
        ("silu", Box::new(|| k::silu(&x))),
        ("rms_norm", Box::new(|| k::rms_norm(&x, &w, 1e-6))),
        (
            "swiglu",
            Box::new(|| k::swiglu(&x, &(x.as_tensor() * 0.5)?)),
        ),
        ("cross_entropy", Box::new(|| k::cross_entropy(&x, &labels))),
    ];
    let mut worst = serde_json::Map::new();
    let mut ok = true;
    for (name, op) in &ops {
        let run = |fused: bool| -> std::result::Result<(Tensor, Vec<Tensor>), String> {
            k::with_fused(fused, || -> candle_core::Result<_> {
                let y = op()?;
                let loss = if y.rank() == 0 {
                    y.clone()
                } else {
                    (&y * &up)?.sum_all()?
                };
                let g = loss.backward()?;
                let grads = [&x, &w, &b]
                    .iter()
                    .filter_map(|v| g.get(v).cloned())
                    .collect();
                Ok((y, grads))
            })
            .map_err(|e| format!("{name}: {e}"))
        };
        let ((y1, g1), (y0, g0)) = (run(true)?, run(false)?);
        if g1.len() != g0.len() {
            return Err(format!(
                "{name}: {} gradients vs {} composed",
                g1.len(),
                g0.len()
            ));
        }
        let mut r = rel(&y1, &y0)?;
        for (a, b) in g1.iter().zip(&g0) {
            r = r.max(rel(a, b)?);
        }
        ok &= r <= 1e-5;
        worst.insert((*name).into(), r.into());
    }
    // AdamW: one step from the same state on both paths.
    let step = k::AdamWStep::new(1e-3, 0.9, 0.99, 1e-8, 0.1, 3, true);
    let grad = randn(&[rows, d])?;
    let moments = Tensor::stack(
        &[&randn(&[rows * d])?, &randn(&[rows * d])?.abs().map_err(s)?],
        0,
    )
    .map_err(s)?;
    let adamw = |fused: bool| -> std::result::Result<(Tensor, Tensor), String> {
        let wv = candle_core::Var::from_tensor(&x.as_tensor().copy().map_err(s)?).map_err(s)?;
        let mut m = moments.copy().map_err(s)?;
        k::with_fused(fused, || k::adamw_step(&step, &wv, &grad, &mut m)).map_err(s)?;
        Ok((wv.as_tensor().clone(), m))
    };
    let ((w1, m1), (w0, m0)) = (adamw(true)?, adamw(false)?);
    let r = rel(&w1, &w0)?.max(rel(&m1, &m0)?);
    ok &= r <= 1e-5;
    worst.insert("adamw".into(), r.into());
    Ok(json!({"ok": ok, "worst_relative": worst}))
}

/// An additive mask `[b, 1, tq, tk]`: causal (query `i` of `tq` sits at key position
/// `tk - tq + i`), and the first `2 * s` keys of sequence `s` hidden, as left padding.
fn causal_padded(
    b: usize,
    tq: usize,
    tk: usize,
    dev: &Device,
) -> std::result::Result<Tensor, String> {
    let mut m = vec![0f32; b * tq * tk];
    for s in 0..b {
        for i in 0..tq {
            for j in 0..tk {
                if j > tk - tq + i || j < 2 * s {
                    m[(s * tq + i) * tk + j] = f32::MIN;
                }
            }
        }
    }
    Tensor::from_vec(m, (b, 1, tq, tk), dev).map_err(s)
}

/// The fused attention (on a GPU: kernels/flash.rs; on the CPU: the fused CPU kernels) against
/// its composed twin on the same device, values and the gradients of q, k and v: packed
/// projections with and without a mask, grouped-query attention with tails of every tile size
/// (a head of 80, 45 positions, fewer queries than keys); then both paths' time for a forward
/// and backward pass at nanoGPT's shape (batch 64, block 256, 6 heads of 64).
fn attention(o: &Options) -> Check {
    use massivetext::kernels as k;
    let dev = &o.device;
    let var = |shape: &[usize]| {
        Tensor::randn(0f32, 1f32, shape, dev)
            .and_then(|t| candle_core::Var::from_tensor(&t))
            .map_err(s)
    };
    type Case<'a> = (
        &'a str,
        Vec<candle_core::Var>,
        Box<dyn Fn(&[Tensor]) -> candle_core::Result<Tensor> + 'a>,
    );
    let mask = causal_padded(3, 70, 70, dev)?;
    let shared = causal_padded(1, 70, 70, dev)?;
    let gqa_mask = causal_padded(2, 45, 45, dev)?;
    let short_mask = causal_padded(2, 5, 45, dev)?;
    let cases: Vec<Case> = vec![
        (
            "packed_masked",
            vec![var(&[3, 70, 3 * 256])?],
            Box::new(|x| k::self_attention(&x[0], Some(&mask), 4)),
        ),
        (
            "packed_shared_mask",
            vec![var(&[3, 70, 3 * 256])?],
            Box::new(|x| k::self_attention(&x[0], Some(&shared), 4)),
        ),
        (
            "packed_no_mask",
            vec![var(&[2, 33, 3 * 384])?],
            Box::new(|x| k::self_attention(&x[0], None, 3)),
        ),
        (
            "gqa_masked",
            vec![
                var(&[2, 6, 45, 80])?,
                var(&[2, 2, 45, 80])?,
                var(&[2, 2, 45, 80])?,
            ],
            Box::new(|x| k::gqa_attention(&x[0], &x[1], &x[2], Some(&gqa_mask))),
        ),
        (
            "gqa_fewer_queries",
            vec![
                var(&[2, 6, 5, 128])?,
                var(&[2, 3, 45, 128])?,
                var(&[2, 3, 45, 128])?,
            ],
            Box::new(|x| k::gqa_attention(&x[0], &x[1], &x[2], Some(&short_mask))),
        ),
    ];
    let mut worst = serde_json::Map::new();
    let mut ok = true;
    for (name, vars, f) in &cases {
        let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let run = |fused: bool| -> std::result::Result<(Tensor, Vec<Tensor>), String> {
            k::with_fused(fused, || -> candle_core::Result<_> {
                let y = f(&inputs)?;
                let up = Tensor::ones_like(&y)?.cumsum(2)?.sin()?;
                let g = (&y * &up)?.sum_all()?.backward()?;
                let grads = vars.iter().filter_map(|v| g.get(v).cloned()).collect();
                Ok((y, grads))
            })
            .map_err(|e| format!("{name}: {e}"))
        };
        let ((y1, g1), (y0, g0)) = (run(true)?, run(false)?);
        if g1.len() != vars.len() || g0.len() != vars.len() {
            return Err(format!(
                "{name}: {} and {} gradients for {} inputs",
                g1.len(),
                g0.len(),
                vars.len()
            ));
        }
        let mut r = rel(&y1, &y0)?;
        for (a, b) in g1.iter().zip(&g0) {
            r = r.max(rel(a, b)?);
        }
        ok &= r <= 1e-5;
        worst.insert((*name).into(), r.into());
    }
    // Speed at nanoGPT's shape (a quick run: a smaller batch).
    let b = if o.quick { 2 } else { 64 };
    let qkv = var(&[b, 256, 3 * 384])?;
    let mask = causal_padded(1, 256, 256, dev)?;
    let mut ms = serde_json::Map::new();
    for fused in [true, false] {
        let step = || -> std::result::Result<(), String> {
            k::with_fused(fused, || -> candle_core::Result<()> {
                let y = k::self_attention(qkv.as_tensor(), Some(&mask), 6)?;
                y.sum_all()?.backward()?;
                Ok(())
            })
            .map_err(s)?;
            dev.synchronize().map_err(s)
        };
        step()?;
        let t0 = Instant::now();
        let n = if o.quick { 2 } else { 20 };
        for _ in 0..n {
            step()?;
        }
        let label = if fused { "fused_ms" } else { "composed_ms" };
        ms.insert(
            label.into(),
            (t0.elapsed().as_secs_f64() * 1e3 / n as f64).into(),
        );
    }
    Ok(json!({"ok": ok, "worst_relative": worst, "forward_backward_b256": ms}))
}

fn rows(v: &Value) -> std::result::Result<Vec<Vec<u32>>, String> {
    serde_json::from_value(v.clone()).map_err(s)
}

fn tensor(r: &[Vec<u32>], device: &Device) -> std::result::Result<Tensor, String> {
    let (b, t) = (r.len(), r.first().map_or(0, |x| x.len()));
    Tensor::from_vec(r.concat(), (b, t), device).map_err(s)
}

/// The model's own settings with a case's keyword arguments on top, as transformers merges.
fn generation_config(
    m: &AutoModelForCausalLM,
    settings: &Value,
) -> std::result::Result<GenerationConfig, String> {
    let mut c = m.generation_config().map_err(s)?;
    let int = |v: &Value| v.as_u64().ok_or(format!("{v}: expected a whole number"));
    let float = |v: &Value| v.as_f64().ok_or(format!("{v}: expected a number"));
    for (k, v) in settings.as_object().ok_or("settings: expected an object")? {
        match k.as_str() {
            "max_new_tokens" => c.max_new_tokens = int(v)? as usize,
            "min_new_tokens" => c.min_new_tokens = int(v)? as usize,
            "num_beams" => c.num_beams = int(v)? as usize,
            "num_return_sequences" => c.num_return_sequences = int(v)? as usize,
            "eos_token_id" => c.eos_token_id = vec![int(v)? as u32],
            "pad_token_id" => c.pad_token_id = Some(int(v)? as u32),
            "repetition_penalty" => c.repetition_penalty = float(v)?,
            "no_repeat_ngram_size" => c.no_repeat_ngram_size = int(v)? as usize,
            "length_penalty" => c.length_penalty = float(v)?,
            "early_stopping" => {
                c.early_stopping = match v {
                    Value::Bool(b) => (*b).into(),
                    _ => EarlyStopping::Never,
                }
            }
            other => return Err(format!("unhandled setting {other}")),
        }
    }
    Ok(c)
}

/// Every generation case of the fixture on the device, token for token.
fn generate_cases(o: &Options) -> Check {
    let p = o.fixtures.join("generate/expected.json");
    let cases: Value = std::fs::read_to_string(&p)
        .map_err(|e| format!("{}: {e}", p.display()))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display())))?;
    let m = AutoModelForCausalLM::from_dir(o.fixtures.join("models/gpt2"), &o.device).map_err(s)?;
    let mut failed = vec![];
    let mut n = 0;
    for (name, case) in cases.as_object().ok_or("expected an object of cases")? {
        let args = ForwardArgs::new(&tensor(&rows(&case["input_ids"])?, &o.device)?)
            .attention_mask(&tensor(&rows(&case["attention_mask"])?, &o.device)?);
        let c = generation_config(&m, &case["settings"])?;
        let got: Vec<Vec<u32>> = m
            .generate_with(&args, &c)
            .and_then(|t| Ok(t.to_device(&Device::Cpu)?.to_vec2()?))
            .map_err(|e| format!("{name}: {e}"))?;
        n += 1;
        if got != rows(&case["sequences"])? {
            failed.push(name.clone());
        }
    }
    Ok(json!({"ok": failed.is_empty(), "cases": n, "differ": failed}))
}

/// nanoGPT's GPU configuration (its README's shakespeare-char run) with our Trainer.
fn train_nanogpt(o: &Options) -> Check {
    let text = std::fs::read_to_string(&o.data).map_err(|e| {
        format!(
            "{}: {e} (give --data PATH/tinyshakespeare/input.txt)",
            o.data.display()
        )
    })?;
    let (layers, width, block, batch) = if o.quick {
        (2, 64, 64, 8)
    } else {
        (6, 384, 256, 64)
    };
    let vocab = CharVocab::from_text(&text);
    let ids = vocab.encode(&text).map_err(s)?;
    let n = ids.len() * 9 / 10;
    let train = TokenWindows::new(ids[..n].to_vec(), block).map_err(s)?;
    let val = TokenWindows::new(ids[n..].to_vec(), block)
        .map_err(s)?
        .with_max_eval_windows(if o.quick { 64 } else { 2400 });
    let config = Gpt2Config {
        vocab_size: vocab.len(),
        n_positions: block,
        n_embd: width,
        n_layer: layers,
        n_head: if o.quick { 2 } else { 6 },
        resid_pdrop: 0.2,
        embd_pdrop: 0.2,
        attn_pdrop: 0.2,
        ..Gpt2Config::gpt2()
    };
    let model = AutoModelForCausalLM::from_config(config, &o.device).map_err(s)?;
    let params: usize = model
        .named_parameters()
        .iter()
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum();
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("min_lr".into(), 1e-4.into());
    let out_dir =
        std::env::temp_dir().join(format!("massivetext-device-check-{}", std::process::id()));
    let args = TrainingArguments {
        output_dir: out_dir.clone(),
        overwrite_output_dir: true,
        max_steps: Some(o.iters),
        per_device_train_batch_size: batch,
        per_device_eval_batch_size: 64,
        learning_rate: 1e-3,
        warmup_steps: 100.min(o.iters / 2),
        lr_scheduler_type: SchedulerType::CosineWithMinLr,
        lr_scheduler_kwargs: kwargs,
        adam_beta2: 0.99,
        weight_decay: 0.1,
        max_grad_norm: 1.0,
        logging_steps: Steps::Every(100),
        save_strategy: IntervalStrategy::No,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, args, train)
        .and_then(|t| t.with_eval_dataset(val))
        .map_err(s)?;
    let t0 = Instant::now();
    let out = trainer.train().map_err(s)?;
    let seconds = t0.elapsed().as_secs_f64();
    let eval = trainer.evaluate().map_err(s)?;
    let _ = std::fs::remove_dir_all(&out_dir);
    // nanoGPT's estimate of the FLOPs per token (6N + 12·L·T·d) against the H100's dense bf16
    // peak (989 TFLOP/s, SXM): what its `estimate_mfu` reports.
    let flops_per_token = 6.0 * params as f64 + 12.0 * (layers * block * width) as f64;
    let mfu = out.tokens_per_second * flops_per_token / 989e12;
    Ok(json!({
        "ok": eval.eval_loss.is_finite(),
        "iters": o.iters,
        "parameters": params,
        "seconds": seconds,
        "tokens_per_second": out.tokens_per_second,
        "val_loss": eval.eval_loss,
        "mfu_vs_bf16_peak": mfu,
    }))
}

/// Greedy decoding speed of a GPT-2-small-sized model (random weights), batch 1.
fn decode_speed(o: &Options) -> Check {
    let config = if o.quick {
        Gpt2Config {
            n_embd: 64,
            n_layer: 2,
            n_head: 2,
            vocab_size: 1000,
            ..Gpt2Config::gpt2()
        }
    } else {
        Gpt2Config::gpt2()
    };
    let m = AutoModelForCausalLM::from_config(config, &o.device).map_err(s)?;
    let new_tokens = if o.quick { 16 } else { 128 };
    // GPT-2's ids of "The quick brown fox jumps over the lazy", folded into the quick vocabulary
    // as decode_torch.py folds them.
    let vocab = if o.quick { 1000 } else { 50257 };
    let ids = [464u32, 2068, 7586, 21831, 18045, 625, 262, 16931].map(|i| i % vocab);
    let prompt = Tensor::new(&[ids], &o.device).map_err(s)?;
    let mut c = m.generation_config().map_err(s)?;
    c.max_new_tokens = new_tokens;
    c.min_new_tokens = new_tokens;
    c.eos_token_id = vec![];
    let args = ForwardArgs::new(&prompt);
    m.generate_with(&args, &c).map_err(s)?; // warm-up: kernels load, memory pools fill
    let t0 = Instant::now();
    m.generate_with(&args, &c).map_err(s)?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(
        json!({"ok": true, "new_tokens": new_tokens, "tokens_per_second": new_tokens as f64 / seconds}),
    )
}

/// The NCCL backend's wiring on one GPU: a world of one process made by `dist::world`, each
/// collective once through the GPU (two ranks need two GPUs: NCCL refuses two ranks of one
/// communicator on the same device). A build without `nccl` checks the refusal instead.
fn nccl(_o: &Options) -> Check {
    let world = match massivetext::dist::world(Some("nccl")) {
        Ok(w) => w,
        Err(e) if !cfg!(feature = "nccl") => {
            let refused = e.to_string().contains("--features nccl");
            return Ok(json!({"ok": refused, "built_with_nccl": false, "refusal": e.to_string()}));
        }
        Err(e) => return Err(s(e)),
    };
    let mut sum = vec![1.5f32, -2.0, 3.25];
    world.all_reduce_sum_f32(&mut sum).map_err(s)?;
    let mut wide = vec![1e-300f64, 2.0];
    world.all_reduce_sum_f64(&mut wide).map_err(s)?;
    let mut bytes = b"rank 0's bytes".to_vec();
    world.broadcast_bytes(&mut bytes, 0).map_err(s)?;
    let gathered = world.all_gather_u64(7).map_err(s)?;
    world.barrier().map_err(s)?;
    let ok = world.backend() == "nccl"
        && sum == [1.5, -2.0, 3.25]
        && wide == [1e-300, 2.0]
        && bytes == b"rank 0's bytes"
        && gathered == [7];
    Ok(
        json!({"ok": ok, "built_with_nccl": true, "backend": world.backend(),
        "world_size": world.world_size(), "all_reduce": sum, "all_gather": gathered}),
    )
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("device_check: {e}");
            std::process::exit(2);
        }
    };
    let mut results = serde_json::Map::new();
    results.insert("device".into(), format!("{:?}", o.device).into());
    let checks: [(&str, CheckFn); 10] = [
        ("golden.gpt2", |o| golden(o, "gpt2")),
        ("golden.bert", |o| golden(o, "bert")),
        ("golden.roberta", |o| golden(o, "roberta")),
        ("gradients.gpt2", gradients),
        ("kernels", kernels),
        ("kernels.attention", attention),
        ("generate.cases", generate_cases),
        ("decode.gpt2", decode_speed),
        ("train.nanogpt", train_nanogpt),
        ("dist.nccl", nccl),
    ];
    let mut all_ok = true;
    for (name, check) in checks {
        let t0 = Instant::now();
        let v = match check(&o) {
            Ok(v) => v,
            Err(e) => json!({"ok": false, "error": e}),
        };
        all_ok &= v["ok"] == json!(true);
        println!("{name}: {v} ({:.1}s)", t0.elapsed().as_secs_f64());
        results.insert(name.into(), v);
        // Written after every check: a run cut off by its time limit keeps what it finished.
        let text =
            serde_json::to_string_pretty(&Value::Object(results.clone())).unwrap_or_default();
        if let Err(e) = std::fs::write(&o.out, text) {
            eprintln!("device_check: {}: {e}", o.out.display());
        }
    }
    if !all_ok {
        std::process::exit(1);
    }
}
