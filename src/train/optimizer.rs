//! AdamW equal to `torch.optim.AdamW` (decoupled weight decay, bias correction, `eps` added
//! after the square root as torch does), with Hugging Face's two parameter groups, and global-norm
//! gradient clipping equal to `torch.nn.utils.clip_grad_norm_`.
//!
//! Everything stays on the parameters' device: gradients are candle tensors, the moments live
//! beside each parameter, and the update is [`kernels::adamw_step`] (in place on CPU, composed
//! candle ops elsewhere). The one value read back per step is the global gradient norm.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var, backprop::GradStore};
use candle_nn::VarMap;

use crate::kernels::{self, AdamWStep};
use crate::models::uses_weight_decay;
use crate::{Error, Result, io};

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
    /// `[2, n]` f32 on the parameter's device: `exp_avg`, then `exp_avg_sq`.
    moments: Tensor,
}

/// AdamW over the variables of a `VarMap`, in name order.
#[derive(Clone)]
pub struct AdamW {
    params: Vec<ParamState>,
    pub config: AdamWConfig,
    /// Optimiser steps taken (torch's per-parameter `step`, equal for all here).
    pub step: usize,
}

/// Gradients of the optimiser's parameters, in its order, on their device (`None` when a
/// parameter got no gradient; torch skips those parameters too).
#[derive(Clone, Debug, Default)]
pub struct Grads(pub Vec<Option<Tensor>>);

impl Grads {
    /// `self += other * scale`, parameter by parameter (`other * scale` when `self` is empty).
    pub fn add_scaled(&mut self, other: Grads, scale: f32) -> Result<()> {
        let scaled = |g: Tensor| -> Result<Tensor> {
            Ok(if scale == 1.0 {
                g
            } else {
                g.affine(scale as f64, 0.0)?
            })
        };
        if self.0.is_empty() {
            self.0 = other
                .0
                .into_iter()
                .map(|g| g.map(scaled).transpose())
                .collect::<Result<_>>()?;
            return Ok(());
        }
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = match (a.take(), b) {
                (Some(a), Some(b)) => Some((a + b.affine(scale as f64, 0.0)?)?),
                (None, Some(b)) => Some(scaled(b)?),
                (a, None) => a,
            };
        }
        Ok(())
    }

    /// The global L2 norm over all gradients (one value read back from the device).
    pub fn global_norm(&self) -> Result<f64> {
        let sums = self
            .0
            .iter()
            .flatten()
            .map(|g| Ok(kernels::sum_squares(g)?.reshape(1)?))
            .collect::<Result<Vec<Tensor>>>()?;
        if sums.is_empty() {
            return Ok(0.0);
        }
        let total = Tensor::cat(&sums, 0)?.to_dtype(DType::F64)?.sum_all()?;
        Ok(total.to_scalar::<f64>()?.sqrt())
    }

    /// `torch.nn.utils.clip_grad_norm_`: scales every gradient by
    /// `min(1, max_norm / (total_norm + 1e-6))` and returns the norm before clipping.
    /// `max_norm <= 0` leaves the gradients alone.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        let (total, coef) = self.clip_coef(max_norm)?;
        if coef < 1.0 {
            for g in self.0.iter_mut().flatten() {
                *g = g.affine(coef as f64, 0.0)?;
            }
        }
        Ok(total)
    }

    /// The global norm and the factor [`clip_grad_norm`](Self::clip_grad_norm) would scale
    /// every gradient by (1 when `max_norm <= 0` or the norm is within it), without scaling:
    /// [`AdamW::step_grads_scaled`] applies it inside the update instead of in a pass of its own.
    pub fn clip_coef(&self, max_norm: f64) -> Result<(f64, f32)> {
        let total = self.global_norm()?;
        let coef = if max_norm > 0.0 {
            (max_norm / (total + 1e-6)).min(1.0) as f32
        } else {
            1.0
        };
        Ok((total, coef))
    }
}

impl AdamW {
    /// AdamW over every variable of `varmap`; weight decay only where
    /// [`uses_weight_decay`](crate::models::uses_weight_decay).
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
        // weights in two dtypes: a copy made for decoding, whose bf16 products have no backward
        if let (Some((a, va)), Some((b, vb))) = (
            named.first(),
            named.iter().find(|(_, v)| v.dtype() != named[0].1.dtype()),
        ) {
            return Err(Error::InvalidArgument(format!(
                "the model's weights mix dtypes (`{a}` is {:?}, `{b}` {:?}): a model from with_weight_dtype is for inference; train the f32 model (with_weight_dtype(DType::F32) converts back)",
                va.dtype(),
                vb.dtype()
            )));
        }
        let params = named
            .into_iter()
            .map(|(name, var)| {
                let moments = Tensor::zeros((2, var.elem_count()), DType::F32, var.device())?;
                Ok(ParamState {
                    decay: decay(&name),
                    name,
                    var,
                    moments,
                })
            })
            .collect::<Result<_>>()?;
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

    /// The gradients of this optimiser's parameters, where they are (no copy).
    pub fn grads(&self, grads: &GradStore) -> Grads {
        Grads(
            self.params
                .iter()
                .map(|p| grads.get(p.var.as_tensor()).cloned())
                .collect(),
        )
    }

    /// One update from a `GradStore` (as candle's `Optimizer::step`).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let g = self.grads(grads);
        self.step_grads(&g)
    }

    /// One update from gathered gradients, at learning rate `self.config.lr`.
    pub fn step_grads(&mut self, grads: &Grads) -> Result<()> {
        self.step_grads_scaled(grads, 1.0)
    }

    /// One update from gathered gradients each times `grad_scale` (the coefficient of
    /// [`Grads::clip_coef`]): the same update as [`step_grads`](Self::step_grads) after
    /// [`Grads::clip_grad_norm`], bit for bit.
    pub fn step_grads_scaled(&mut self, grads: &Grads, grad_scale: f32) -> Result<()> {
        if grads.0.len() != self.params.len() {
            return Err(Error::InvalidArgument(format!(
                "got gradients for {} parameters, the optimiser has {}",
                grads.0.len(),
                self.params.len()
            )));
        }
        self.step += 1;
        let c = self.config;
        for (p, g) in self.params.iter_mut().zip(&grads.0) {
            let Some(g) = g else { continue };
            if g.elem_count() != p.var.elem_count() {
                return Err(Error::InvalidArgument(format!(
                    "gradient of `{}` has {} values, the parameter {}",
                    p.name,
                    g.elem_count(),
                    p.var.elem_count()
                )));
            }
            let s = AdamWStep::new(
                c.lr,
                c.beta1,
                c.beta2,
                c.eps,
                c.weight_decay,
                self.step,
                p.decay,
            );
            kernels::adamw_step_scaled(&s, &p.var, g, grad_scale, &mut p.moments)?;
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
                p.moments.get(0)?.reshape(shape.clone())?,
            ));
            tensors.push((
                format!("{}.exp_avg_sq", p.name),
                p.moments.get(1)?.reshape(shape)?,
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
        io::write_safetensors(path, &tensors, meta)
    }

    /// Restores the state `save` wrote; every parameter must be there with its shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let file = io::read_safetensors(path)?;
        let mut tensors = file.tensors;
        let err = |message: String| Error::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let step: usize = file
            .metadata
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(
                || err("metadata has no `step`; was this written by AdamW::save?".into()),
            )?;
        let mut loaded = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let mut halves = Vec::with_capacity(2);
            for suffix in ["exp_avg", "exp_avg_sq"] {
                let key = format!("{}.{suffix}", p.name);
                let t = tensors.remove(&key).ok_or_else(|| {
                    err(format!(
                        "optimiser state `{key}` is missing; the checkpoint belongs to another model"
                    ))
                })?;
                if t.elem_count() != p.var.elem_count() {
                    return Err(err(format!(
                        "optimiser state `{key}` has shape {:?}, the parameter has {:?}",
                        t.dims(),
                        p.var.dims()
                    )));
                }
                halves.push(t.flatten_all()?);
            }
            loaded.push(Tensor::stack(&halves, 0)?.to_device(p.var.device())?);
        }
        for (p, m) in self.params.iter_mut().zip(loaded) {
            p.moments = m;
        }
        self.step = step;
        Ok(())
    }
}
