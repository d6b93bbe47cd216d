//! AdamW equal to `torch.optim.AdamW` (decoupled weight decay, bias correction, `eps` added
//! after the square root as torch does), with Hugging Face's two parameter groups, and global-norm
//! gradient clipping equal to `torch.nn.utils.clip_grad_norm_`.
//!
//! The update runs on host `f32` buffers in torch's order of operations, one pass per
//! parameter: cheaper on CPU than a dozen temporary tensors per parameter, and it keeps the
//! arithmetic identical to torch's single-tensor kernel.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var, backprop::GradStore};
use candle_nn::VarMap;

use super::st::{self, HostTensor};
use crate::{Error, Result};

/// Whether a parameter gets weight decay, decided by its (Hugging Face) name, as Hugging Face
/// decides it: no decay for biases and for LayerNorm weights. Our models have no module types
/// to inspect, so LayerNorms are recognised by name: any path component that is `ln`, starts
/// with `ln_` (GPT-2's `ln_1`, `ln_2`, `ln_f`), or contains `layernorm`, `layer_norm` or
/// `rmsnorm` (BERT's `LayerNorm`), case-insensitively; and any name ending in `.bias` or
/// equal to `bias`.
pub fn uses_weight_decay(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('.').collect();
    if parts.last().is_some_and(|p| *p == "bias") {
        return false;
    }
    !parts.iter().any(|p| {
        *p == "ln"
            || p.starts_with("ln_")
            || p.contains("layernorm")
            || p.contains("layer_norm")
            || p.contains("rmsnorm")
    })
}

/// AdamW hyper-parameters (torch's names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// torch's defaults.
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

#[derive(Clone)]
struct ParamState {
    name: String,
    var: Var,
    decay: bool,
    exp_avg: Vec<f32>,
    exp_avg_sq: Vec<f32>,
}

/// AdamW over the variables of a `VarMap`, in name order.
#[derive(Clone)]
pub struct AdamW {
    params: Vec<ParamState>,
    pub config: AdamWConfig,
    /// Optimiser steps taken (torch's per-parameter `step`, equal for all here).
    pub step: usize,
}

/// Gradients copied to the host, one buffer per parameter in the optimiser's order (`None`
/// when a parameter got no gradient; torch skips those parameters too).
#[derive(Clone, Debug, Default)]
pub struct HostGrads(pub Vec<Option<Vec<f32>>>);

impl HostGrads {
    /// `self += other * scale`, parameter by parameter.
    pub fn add_scaled(&mut self, other: HostGrads, scale: f32) {
        if self.0.is_empty() {
            self.0 = other
                .0
                .into_iter()
                .map(|g| {
                    g.map(|mut v| {
                        if scale != 1.0 {
                            v.iter_mut().for_each(|x| *x *= scale);
                        }
                        v
                    })
                })
                .collect();
            return;
        }
        for (a, b) in self.0.iter_mut().zip(other.0) {
            match (a.as_mut(), b) {
                (Some(a), Some(b)) => a.iter_mut().zip(b).for_each(|(x, y)| *x += y * scale),
                (None, Some(mut b)) => {
                    b.iter_mut().for_each(|x| *x *= scale);
                    *a = Some(b);
                }
                _ => {}
            }
        }
    }

    /// The global L2 norm over all gradients.
    pub fn global_norm(&self) -> f64 {
        self.0
            .iter()
            .flatten()
            .map(|g| g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
            .sum::<f64>()
            .sqrt()
    }

    /// `torch.nn.utils.clip_grad_norm_`: scales every gradient by
    /// `min(1, max_norm / (total_norm + 1e-6))` and returns the norm before clipping.
    /// `max_norm <= 0` leaves the gradients alone.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let total = self.global_norm();
        if max_norm > 0.0 {
            let coef = (max_norm / (total + 1e-6)).min(1.0) as f32;
            if coef < 1.0 {
                for g in self.0.iter_mut().flatten() {
                    g.iter_mut().for_each(|x| *x *= coef);
                }
            }
        }
        total
    }
}

fn host_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

impl AdamW {
    /// AdamW over every variable of `varmap`; weight decay only where [`uses_weight_decay`].
    pub fn new(varmap: &VarMap, config: AdamWConfig) -> Result<Self> {
        Self::with_decay_rule(varmap, config, uses_weight_decay)
    }

    /// AdamW with your own rule for which parameters (by name) get weight decay.
    pub fn with_decay_rule(
        varmap: &VarMap,
        config: AdamWConfig,
        decay: impl Fn(&str) -> bool,
    ) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::InvalidArgument("the model's VarMap lock is poisoned".into()))?;
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, var)| {
                let n = var.elem_count();
                ParamState {
                    decay: decay(&name),
                    name,
                    var,
                    exp_avg: vec![0.0; n],
                    exp_avg_sq: vec![0.0; n],
                }
            })
            .collect();
        Ok(AdamW {
            params,
            config,
            step: 0,
        })
    }

    /// Parameter names in the optimiser's order.
    pub fn param_names(&self) -> Vec<String> {
        self.params.iter().map(|p| p.name.clone()).collect()
    }

    /// Names of the parameters without weight decay (biases and LayerNorm weights).
    pub fn no_decay_names(&self) -> Vec<String> {
        self.params
            .iter()
            .filter(|p| !p.decay)
            .map(|p| p.name.clone())
            .collect()
    }

    /// The gradients of this optimiser's parameters, copied to the host.
    pub fn host_grads(&self, grads: &GradStore) -> Result<HostGrads> {
        let mut out = Vec::with_capacity(self.params.len());
        for p in &self.params {
            out.push(match grads.get(p.var.as_tensor()) {
                Some(g) => Some(host_vec(g)?),
                None => None,
            });
        }
        Ok(HostGrads(out))
    }

    /// One update from a `GradStore` (as candle's `Optimizer::step`).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let g = self.host_grads(grads)?;
        self.step_host(&g)
    }

    /// One update from host gradients, at learning rate `self.config.lr`.
    pub fn step_host(&mut self, grads: &HostGrads) -> Result<()> {
        if grads.0.len() != self.params.len() {
            return Err(Error::InvalidArgument(format!(
                "got gradients for {} parameters, the optimiser has {}",
                grads.0.len(),
                self.params.len()
            )));
        }
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        // torch computes these scalars in double precision, then the kernel in f32.
        let bias_correction1 = 1.0 - c.beta1.powi(t);
        let bias_correction2 = 1.0 - c.beta2.powi(t);
        let step_size = (c.lr / bias_correction1) as f32;
        let bc2_sqrt = bias_correction2.sqrt() as f32;
        let decay_mul = (1.0 - c.lr * c.weight_decay) as f32;
        let w1 = (1.0 - c.beta1) as f32;
        let b2 = c.beta2 as f32;
        let w2 = (1.0 - c.beta2) as f32;
        let eps = c.eps as f32;
        for (p, g) in self.params.iter_mut().zip(&grads.0) {
            let Some(g) = g else { continue };
            let var_t = p.var.as_tensor();
            let mut w = host_vec(var_t)?;
            if w.len() != g.len() {
                return Err(Error::InvalidArgument(format!(
                    "gradient of `{}` has {} values, the parameter {}",
                    p.name,
                    g.len(),
                    w.len()
                )));
            }
            let decay = p.decay && c.weight_decay != 0.0;
            for i in 0..w.len() {
                let gi = g[i];
                if decay {
                    w[i] *= decay_mul;
                }
                let m = &mut p.exp_avg[i];
                *m += w1 * (gi - *m);
                let v = &mut p.exp_avg_sq[i];
                *v = *v * b2 + w2 * gi * gi;
                let denom = v.sqrt() / bc2_sqrt + eps;
                w[i] += -step_size * *m / denom;
            }
            let new =
                Tensor::from_vec(w, var_t.shape(), var_t.device())?.to_dtype(var_t.dtype())?;
            p.var.set(&new)?;
        }
        Ok(())
    }

    /// Writes `exp_avg` / `exp_avg_sq` per parameter and the step and hyper-parameters (as
    /// metadata) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = Vec::with_capacity(2 * self.params.len());
        for p in &self.params {
            let shape = p.var.dims().to_vec();
            tensors.push((
                format!("{}.exp_avg", p.name),
                HostTensor {
                    shape: shape.clone(),
                    data: p.exp_avg.clone(),
                },
            ));
            tensors.push((
                format!("{}.exp_avg_sq", p.name),
                HostTensor {
                    shape,
                    data: p.exp_avg_sq.clone(),
                },
            ));
        }
        let c = self.config;
        let meta: HashMap<String, String> = [
            ("step", self.step.to_string()),
            ("lr", c.lr.to_string()),
            ("beta1", c.beta1.to_string()),
            ("beta2", c.beta2.to_string()),
            ("eps", c.eps.to_string()),
            ("weight_decay", c.weight_decay.to_string()),
            ("format", "massivetext-adamw".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        st::save(path, &tensors, meta)
    }

    /// Restores the state `save` wrote; every parameter must be there with its shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let (mut tensors, meta) = st::load(path)?;
        let err = |message: String| Error::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let step: usize = meta
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(
                || err("metadata has no `step`; was this written by AdamW::save?".into()),
            )?;
        for p in self.params.iter_mut() {
            for (suffix, buf) in [
                ("exp_avg", &mut p.exp_avg),
                ("exp_avg_sq", &mut p.exp_avg_sq),
            ] {
                let key = format!("{}.{suffix}", p.name);
                let t = tensors.remove(&key).ok_or_else(|| {
                    err(format!(
                        "optimiser state `{key}` is missing; the checkpoint belongs to another model"
                    ))
                })?;
                if t.data.len() != buf.len() {
                    return Err(err(format!(
                        "optimiser state `{key}` has shape {:?}, the parameter has {:?}",
                        t.shape,
                        p.var.dims()
                    )));
                }
                *buf = t.data;
            }
        }
        self.step = step;
        Ok(())
    }
}
