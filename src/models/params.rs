//! Where a model's weights come from: a safetensors checkpoint (checked against the shapes the
//! config implies) or Hugging Face's random initialisation. Either way every weight becomes a
//! `Var` in the model's `VarMap` under its Hugging Face name, so `save_pretrained` writes exactly
//! the names transformers expects and a Trainer can walk the parameters by name.
use std::collections::{HashMap, HashSet};
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
        /// Tensors of the file that were not read (not floating point): name and dtype.
        skipped: Vec<(String, String)>,
        /// Names of the file's tensors the model asked for.
        used: HashSet<String>,
        /// Head weights the file lacked, initialised instead (in the order asked).
        new: Vec<String>,
        /// Draws the initial values of those.
        rng: Box<ChaCha8Rng>,
    },
}

/// Seed of the initialisation of head weights a checkpoint lacks (transformers draws them from
/// torch's global generator; we use a fixed seed so a load is repeatable).
const NEW_WEIGHT_SEED: u64 = 42;

/// What loading a checkpoint found besides the weights the model asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The weights file (or shard index) read.
    pub path: PathBuf,
    /// Tensors in the file that the model never asked for (sorted), as transformers' "Some
    /// weights of the model checkpoint at X were not used" lists them; known buffers
    /// (`attn.bias`, `attn.masked_bias`, `position_ids`) are left out, as transformers does.
    pub unused: Vec<String>,
    /// Weights of the model's task head that the file lacked and that were initialised as
    /// transformers initialises them (normal(0, initializer_range), zero bias), as
    /// transformers' "Some weights of X were not initialized from the model checkpoint"
    /// lists them: e.g. `classifier.weight` when a bare BERT becomes a classifier.
    pub newly_initialized: Vec<String>,
}

impl LoadReport {
    /// transformers' warning, naming the unused weights.
    pub fn warning(&self, architecture: &str) -> String {
        format!(
            "Some weights of the model checkpoint at {} were not used when initializing {architecture}: {}; check that config.json matches the weights (n_layer, the architecture), or ignore this if you meant to drop them",
            self.path.display(),
            self.unused.join(", ")
        )
    }

    /// transformers' warning, naming the newly initialised weights.
    pub fn new_weights_warning(&self, architecture: &str) -> String {
        format!(
            "Some weights of {architecture} were not initialized from the model checkpoint at {} and are newly initialized: {}; you should probably train this model on a down-stream task to be able to use it for predictions and inference",
            self.path.display(),
            self.newly_initialized.join(", ")
        )
    }
}

/// Buffers that checkpoints carry and models rebuild (transformers ignores them on load), and
/// the copies of output embeddings tied to the input ones (GPT-2's `lm_head.weight`, BERT's and
/// RoBERTa's decoder), which transformers fills from the embeddings.
fn is_known_buffer(name: &str) -> bool {
    const SUFFIXES: [&str; 12] = [
        "attn.bias",
        "attn.masked_bias",
        "position_ids",
        // Llama-style checkpoints of older transformers: the rotary frequencies (rebuilt)
        "rotary_emb.inv_freq",
        // Marian: the sinusoidal tables older checkpoints store (rebuilt, never trained), and
        // the copies of the shared embedding under the encoder's and decoder's names
        "embed_positions.weight",
        "encoder.embed_tokens.weight",
        "decoder.embed_tokens.weight",
        "lm_head.weight",
        "cls.predictions.decoder.weight",
        "cls.predictions.decoder.bias",
        "lm_head.decoder.weight",
        "lm_head.decoder.bias",
    ];
    SUFFIXES.iter().any(|s| {
        name.strip_suffix(s)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
    })
}

pub(crate) struct Params {
    pub varmap: VarMap,
    source: Source,
    device: Device,
    dtype: DType,
    /// The dtype of the matrices the model multiplies by, when it differs from `dtype`
    /// ([`Params::with_weight_dtype`]).
    weight_dtype: Option<DType>,
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
            weight_dtype: None,
            prefix: String::new(),
        }
    }

    pub fn loaded(
        tensors: HashMap<String, Tensor>,
        skipped: Vec<(String, String)>,
        path: &Path,
        device: &Device,
        dtype: DType,
    ) -> Self {
        Self {
            varmap: VarMap::new(),
            source: Source::Loaded {
                tensors,
                path: path.to_path_buf(),
                skipped,
                used: HashSet::new(),
                new: Vec::new(),
                rng: Box::new(ChaCha8Rng::seed_from_u64(NEW_WEIGHT_SEED)),
            },
            device: device.clone(),
            dtype,
            weight_dtype: None,
            prefix: String::new(),
        }
    }

    /// Stores the matrices the model multiplies by (dense layers, and the word embeddings
    /// that double as the LM head) in `dtype`; position and token-type tables, read one row per
    /// token, and every vector (biases, norms) keep the model's dtype, which is also the dtype
    /// activations are computed in.
    pub fn with_weight_dtype(mut self, dtype: DType) -> Self {
        self.weight_dtype = Some(dtype);
        self
    }

    /// The dtype weight `name` of rank `rank` is stored in.
    fn dtype_of(&self, name: &str, rank: usize) -> DType {
        const TABLES: [&str; 3] = [
            "wpe.weight",
            "position_embeddings.weight",
            "token_type_embeddings.weight",
        ];
        match self.weight_dtype {
            Some(d) if rank == 2 && !TABLES.iter().any(|t| name.ends_with(t)) => d,
            _ => self.dtype,
        }
    }

    /// The dtype parameters are stored in, and the one weight matrices are stored in when it
    /// differs.
    pub fn dtypes(&self) -> (DType, Option<DType>) {
        (self.dtype, self.weight_dtype)
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

    /// What the checkpoint held that the model did not ask for (empty when initialising).
    pub fn report(&self) -> LoadReport {
        match &self.source {
            Source::Init(_) => LoadReport::default(),
            Source::Loaded {
                tensors,
                path,
                skipped,
                used,
                new,
                ..
            } => {
                let mut unused: Vec<String> = tensors
                    .keys()
                    .filter(|k| !used.contains(*k))
                    .chain(skipped.iter().map(|(n, _)| n))
                    .filter(|k| !is_known_buffer(k))
                    .cloned()
                    .collect();
                unused.sort();
                LoadReport {
                    path: path.clone(),
                    unused,
                    newly_initialized: new.clone(),
                }
            }
        }
    }

    /// A head weight: loaded when the checkpoint has it, else initialised (and listed in
    /// [`LoadReport::newly_initialized`]), as transformers treats a task head missing from a
    /// base-model checkpoint.
    pub fn get_or_init(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        if self.contains(name) {
            return self.get(name, shape, init);
        }
        let t = match &mut self.source {
            Source::Init(rng) => sample(rng, shape, init, &self.device)?,
            Source::Loaded { rng, new, .. } => {
                new.push(name.to_string());
                sample(rng, shape, init, &self.device)?
            }
        };
        self.register(name, t)
    }

    /// A buffer (a tensor the model keeps but does not train, as Marian's `final_logits_bias`):
    /// the checkpoint's when it has one of shape `shape`, else `None`; never in the VarMap.
    pub fn buffer(&mut self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        let Source::Loaded {
            tensors,
            path,
            used,
            ..
        } = &mut self.source
        else {
            return Ok(None);
        };
        let Some((key, t)) = lookup(tensors, &self.prefix, name) else {
            return Ok(None);
        };
        if t.dims() != shape {
            return Err(Error::WeightShape {
                path: path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        used.insert(key.to_string());
        Ok(Some(t.to_device(&self.device)?.to_dtype(self.dtype)?))
    }

    /// The weight `name` of shape `shape`, registered in the VarMap.
    pub fn get(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let t = match &mut self.source {
            Source::Init(rng) => sample(rng, shape, init, &self.device)?,
            Source::Loaded {
                tensors,
                path,
                skipped,
                used,
                ..
            } => {
                let Some((key, t)) = lookup(tensors, &self.prefix, name) else {
                    // There, but not floating point: say so rather than "missing".
                    let bare = name.strip_prefix(self.prefix.as_str()).unwrap_or(name);
                    let with_prefix = format!("{}{bare}", self.prefix);
                    if let Some((n, dtype)) = skipped
                        .iter()
                        .find(|(n, _)| n == name || n == bare || *n == with_prefix)
                    {
                        return Err(Error::CorruptWeights {
                            path: path.clone(),
                            message: format!(
                                "weight `{n}` has dtype {dtype}, which is not supported (weights must be F32, F16, BF16 or F64); convert it to a floating-point type and save the file again"
                            ),
                        });
                    }
                    return Err(Error::MissingWeight {
                        path: path.clone(),
                        name: name.to_string(),
                        found: tensors.len(),
                    });
                };
                used.insert(key.to_string());
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
        self.register(name, t)
    }

    fn register(&mut self, name: &str, t: Tensor) -> Result<Tensor> {
        let t = t.to_dtype(self.dtype_of(name, t.rank()))?;
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

/// Hugging Face's initialisation of one weight, drawn from `rng`.
fn sample(rng: &mut ChaCha8Rng, shape: &[usize], init: Init, device: &Device) -> Result<Tensor> {
    Ok(match init {
        Init::Zeros => Tensor::zeros(shape, DType::F32, device)?,
        Init::Ones => Tensor::ones(shape, DType::F32, device)?,
        Init::Normal(std) | Init::NormalZeroRow(std, _) => {
            let n: usize = shape.iter().product();
            let mut v: Vec<f32> = (0..n).map(|_| (normal(rng) * std) as f32).collect();
            if let (Init::NormalZeroRow(_, row), [rows, cols]) = (init, shape)
                && row < *rows
            {
                v[row * cols..(row + 1) * cols].fill(0.0);
            }
            Tensor::from_vec(v, shape, device)?
        }
    })
}

/// The checkpoint's key for `name` (as is, without or with the prefix) and its tensor.
fn lookup<'a>(
    tensors: &'a HashMap<String, Tensor>,
    prefix: &str,
    name: &str,
) -> Option<(&'a str, &'a Tensor)> {
    if let Some((k, t)) = tensors.get_key_value(name) {
        return Some((k, t));
    }
    if prefix.is_empty() {
        return None;
    }
    let found = match name.strip_prefix(prefix) {
        Some(bare) => tensors.get_key_value(bare),
        None => tensors.get_key_value(&format!("{prefix}{name}")),
    };
    found.map(|(k, t)| (k.as_str(), t))
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
