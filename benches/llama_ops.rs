//! The Llama family's ops, fused CPU kernel against its composed twin, at the sizes of one
//! training step of a 6-layer 384-wide Llama (batch 8, 256 positions, 6 heads over 2 kv heads of
//! 64, MLP 1024): the median time of the forward pass and of forward + backward per op (the
//! backward pass of `sum(out * w)`, whose own time is measured alone and taken off).
//!
//!     cargo bench --bench llama_ops                  # default threads, no variable set
//!     BENCH_THREADS=2 BENCH_REPS=21 cargo bench --bench llama_ops
//!
//! Ours only (no reference side): both paths are massivetext's, chosen with `with_fused`.
mod common;

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};
use massivetext::kernels;

use common::{bench_threads, env_or};

fn randn(shape: &[usize]) -> Result<Tensor> {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu)
}

/// Median seconds of the composed (`[0]`) and fused (`[1]`) runs of `f`, interleaved rep by rep
/// after one warm-up each, so both meet the same allocator and machine state (run one after the
/// other, the second path's fresh buffers paid page faults the first one's did not).
fn medians(reps: usize, f: impl Fn() -> Result<()>) -> Result<[f64; 2]> {
    let run = |fused| kernels::with_fused(fused, &f);
    run(false)?;
    run(true)?;
    let mut times = [Vec::with_capacity(reps), Vec::with_capacity(reps)];
    for _ in 0..reps {
        for (i, fused) in [false, true].into_iter().enumerate() {
            let t0 = Instant::now();
            run(fused)?;
            times[i].push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(times.map(|mut t| {
        t.sort_by(|a, b| a.total_cmp(b));
        t[reps / 2]
    }))
}

type Op<'a> = &'a dyn Fn(&[Tensor]) -> Result<Tensor>;

/// Prints one op's line: forward and forward + backward, composed and fused, and the ratios.
fn bench(name: &str, reps: usize, inputs: &[Tensor], op: Op) -> Result<()> {
    let vars: Vec<Var> = inputs.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let w = randn(op(&ts)?.dims())?;
    let [cf, ff] = medians(reps, || op(inputs).map(|_| ()))?;
    let [cb, fb] = medians(reps, || {
        (op(&ts)? * &w)?.sum_all()?.backward()?;
        Ok(())
    })?;
    // the loss around the op, `sum(out * w)` and its backward pass, timed alone and taken off
    // both paths' forward + backward time: it is the same on both
    let out = Var::from_tensor(&w.zeros_like()?)?;
    let [loss, _] = medians(reps, || {
        (out.as_tensor() * &w)?.sum_all()?.backward()?;
        Ok(())
    })?;
    let (cb, fb) = ((cb - loss).max(1e-9), (fb - loss).max(1e-9));
    println!(
        "| {name} | {:.2} | {:.2} | {:.1}x | {:.2} | {:.2} | {:.1}x | {:.2} |",
        cf * 1e3,
        ff * 1e3,
        cf / ff,
        cb * 1e3,
        fb * 1e3,
        cb / fb,
        loss * 1e3
    );
    Ok(())
}

fn main() -> Result<()> {
    let threads = bench_threads();
    let reps: usize = env_or("BENCH_REPS", 11);
    let (b, t, h, heads, kv, hd, ff) = (8, 256, 384, 6, 2, 64, 1024);
    println!("llama ops, batch {b} x {t} positions, {threads}, median of {reps} (ms)\n");
    println!(
        "| op | fwd composed | fwd fused | speed-up | fwd+bwd composed | fwd+bwd fused | speed-up \
         | loss (taken off) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let weight = randn(&[h])?;
    bench(
        "rms_norm [8, 256, 384]",
        reps,
        &[randn(&[b, t, h])?, weight],
        &|x| kernels::rms_norm(&x[0], &x[1], 1e-6),
    )?;
    // the heads of a projection: a transposed view, as a model makes them
    let (cos, sin) = (randn(&[b, t, hd / 2])?, randn(&[b, t, hd / 2])?);
    bench(
        "rope [8, 6, 256, 64]",
        reps,
        &[randn(&[b, t, heads, hd])?],
        &|x| kernels::rope(&x[0].transpose(1, 2)?, &cos, &sin),
    )?;
    bench(
        "swiglu [8, 256, 1024]",
        reps,
        &[randn(&[b, t, ff])?, randn(&[b, t, ff])?],
        &|x| kernels::swiglu(&x[0], &x[1]),
    )?;
    let causal: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { f32::MIN } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(causal, (1, 1, t, t), &Device::Cpu)?.broadcast_as((b, 1, t, t))?;
    let ins = [
        randn(&[b, t, heads, hd])?,
        randn(&[b, kv, t, hd])?,
        randn(&[b, t, kv, hd])?,
    ];
    bench("gqa_attention 6 heads / 2 kv, causal", reps, &ins, &|x| {
        kernels::gqa_attention(
            &x[0].transpose(1, 2)?,
            &x[1],
            &x[2].transpose(1, 2)?,
            Some(&mask),
        )
    })?;
    Ok(())
}
