//! Where a model's weights come from: a safetensors checkpoint (checked against the shapes the
//! config implies) or Hugging Face's random initialisation. Either way every weight becomes a
//! `Var` in the model's `VarMap` under its Hugging Face name, so `save_pretrained` writes exactly
//! the names transformers expects and a Trainer can walk the parameters by name.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr_lite::normal;

use crate::{Error, Result};

/// How a freshly initialised weight starts, following Hugging Face's `_init_weights`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init {
    Normal(f64),
    /// Normal, with one row zeroed: an embedding's `padding_idx`.
    NormalZeroRow(f64, usize),
    Zeros,
    Ones,
}

enum Source {
    Init(Box<ChaCha8Rng>),
    Loaded {
        tensors: HashMap<String, Tensor>,
        path: PathBuf,
    },
}

pub(crate) struct Params {
    pub varmap: VarMap,
    source: Source,
    device: Device,
    dtype: DType,
    /// The base-model prefix (`transformer.`, `bert.`, `roberta.`): checkpoints of the bare model
    /// omit it, those of a head model carry it; either loads into either.
    prefix: String,
}

impl Params {
    pub fn init(seed: u64, device: &Device, dtype: DType) -> Self {
        Self {
            varmap: VarMap::new(),
            source: Source::Init(Box::new(ChaCha8Rng::seed_from_u64(seed))),
            device: device.clone(),
            dtype,
            prefix: String::new(),
        }
    }

    pub fn loaded(
        tensors: HashMap<String, Tensor>,
        path: &Path,
        device: &Device,
        dtype: DType,
    ) -> Self {
        Self {
            varmap: VarMap::new(),
            source: Source::Loaded {
                tensors,
                path: path.to_path_buf(),
            },
            device: device.clone(),
            dtype,
            prefix: String::new(),
        }
    }

    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
    }

    /// Whether the checkpoint holds `name` (always true when initialising).
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::Init(_) => true,
            Source::Loaded { tensors, .. } => lookup(tensors, &self.prefix, name).is_some(),
        }
    }

    /// The weight `name` of shape `shape`, registered in the VarMap.
    pub fn get(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let t = match &mut self.source {
            Source::Init(rng) => match init {
                Init::Zeros => Tensor::zeros(shape, DType::F32, &self.device)?,
                Init::Ones => Tensor::ones(shape, DType::F32, &self.device)?,
                Init::Normal(std) | Init::NormalZeroRow(std, _) => {
                    let n: usize = shape.iter().product();
                    let mut v: Vec<f32> = (0..n).map(|_| (normal(rng) * std) as f32).collect();
                    if let (Init::NormalZeroRow(_, row), [rows, cols]) = (init, shape)
                        && row < *rows
                    {
                        v[row * cols..(row + 1) * cols].fill(0.0);
                    }
                    Tensor::from_vec(v, shape, &self.device)?
                }
            },
            Source::Loaded { tensors, path } => {
                let t =
                    lookup(tensors, &self.prefix, name).ok_or_else(|| Error::MissingWeight {
                        path: path.clone(),
                        name: name.to_string(),
                        found: tensors.len(),
                    })?;
                if t.dims() != shape {
                    return Err(Error::WeightShape {
                        path: path.clone(),
                        name: name.to_string(),
                        expected: shape.to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                t.to_device(&self.device)?
            }
        };
        let t = t.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .map_err(|_| Error::InvalidArgument("the model's VarMap lock is poisoned".into()))?
            .insert(name.to_string(), var);
        Ok(out)
    }
}

fn lookup<'a>(
    tensors: &'a HashMap<String, Tensor>,
    prefix: &str,
    name: &str,
) -> Option<&'a Tensor> {
    if let Some(t) = tensors.get(name) {
        return Some(t);
    }
    if prefix.is_empty() {
        return None;
    }
    match name.strip_prefix(prefix) {
        Some(bare) => tensors.get(bare),
        None => tensors.get(&format!("{prefix}{name}")),
    }
}

/// A standard normal sample by Box–Muller, so initialisation needs no extra dependency.
mod rand_distr_lite {
    use rand::Rng;
    pub fn normal(rng: &mut impl Rng) -> f64 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
