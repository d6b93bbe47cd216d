//! Where a model's weights come from: a safetensors checkpoint (checked against the shapes the
//! config implies) or Hugging Face's random initialisation. Either way every weight becomes a
//! `Var` in the model's `VarMap` under its Hugging Face name, so `save_pretrained` writes exactly
//! the names transformers expects and a Trainer can walk the parameters by name.
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr_lite::normal;

use super::qweights::{QuantizedMatrix, QuantizedWeights};
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
    /// Set when building a LoRA model over frozen weights ([`Params::with_lora`]).
    lora: Option<Box<LoraBuild>>,
    /// Matrices kept quantized ([`Params::with_quantized`]), and the names the model took.
    quantized: Option<(Arc<QuantizedWeights>, HashSet<String>)>,
}

/// Which module names a rule picks (peft's `target_modules`, `modules_to_save`), decided by
/// the caller.
pub(crate) type ModuleRule = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Which biases a LoRA model trains: peft's `bias` (`"none"`, `"all"`, `"lora_only"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrainedBias {
    None,
    All,
    LoraOnly,
}

/// How the adapter matrices of a new LoRA model start: peft's `init_lora_weights`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoraInit {
    /// `True`: A Kaiming-uniform (`a = sqrt(5)`, as `nn.Linear`), B zeros: the model starts
    /// as the base model.
    Default,
    /// `"gaussian"`: A normal(0, 1/r), B zeros.
    Gaussian,
    /// `False`: A and B both Kaiming-uniform (a non-zero update from the start; for tests).
    Random,
}

/// Everything a LoRA model is built from besides the base weights: peft's `LoraConfig` reduced
/// to what the layers need, with the saved adapter's tensors when one is loaded.
#[derive(Clone)]
pub(crate) struct LoraSpec {
    /// The modules that get an adapter, by full name (`transformer.h.0.attn.c_attn`).
    pub target: ModuleRule,
    /// The modules trained whole and saved with the adapter (peft's `modules_to_save`).
    pub save_whole: ModuleRule,
    pub r: usize,
    pub scale: f64,
    pub dropout: f64,
    pub bias: TrainedBias,
    pub init: LoraInit,
    pub seed: u64,
    /// A saved adapter's tensors under peft's keys, and the file they came from.
    pub saved: Option<(HashMap<String, Tensor>, PathBuf)>,
}

/// The adapter of one dense layer as built: peft's `lora_A.weight [r, in]` and
/// `lora_B.weight [out, r]` (whatever the layer's own layout), the scale (`lora_alpha / r`, or
/// `lora_alpha / sqrt(r)` with rsLoRA) and `lora_dropout`, applied to the adapter's input in
/// training only. `layers::Linear` runs it.
#[derive(Clone)]
pub(crate) struct LoraAdapter {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    pub dropout: f64,
}

/// peft's key prefix: the `PeftModel` wraps a `LoraModel` (`base_model`) that wraps the model.
pub(crate) const PEFT_PREFIX: &str = "base_model.model.";

/// What building a LoRA model records.
pub(crate) struct LoraBuild {
    spec: LoraSpec,
    rng: Box<ChaCha8Rng>,
    /// Adapted modules in build order, and whether each is a `Conv1D`.
    adapted: Vec<(String, bool)>,
    /// Trained parameters (adapter matrices, biases, whole modules): saved key and model name.
    trained: Vec<(String, String)>,
    /// Keys of the saved adapter that were used.
    used: HashSet<String>,
}

/// What a LoRA build adapted and trained, and the saved keys it did not use.
pub(crate) struct LoraReport {
    pub adapted: Vec<(String, bool)>,
    pub trained: Vec<(String, String)>,
    pub unused: Vec<String>,
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
            lora: None,
            quantized: None,
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
            lora: None,
            quantized: None,
        }
    }

    /// Builds a LoRA model: every weight read from the source stays as it is (no `Var`, no
    /// copy, no gradient: the tensors of the base model, frozen), adapters are attached where
    /// `spec` says, and the VarMap receives only what trains (adapter matrices, the biases of
    /// `spec.bias`, the modules of `spec.save_whole`) under peft's saved names.
    pub fn with_lora(mut self, spec: LoraSpec) -> Self {
        let rng = Box::new(ChaCha8Rng::seed_from_u64(spec.seed));
        self.lora = Some(Box::new(LoraBuild {
            spec,
            rng,
            adapted: Vec::new(),
            trained: Vec::new(),
            used: HashSet::new(),
        }));
        self
    }

    /// What the LoRA build adapted and trained, and the saved adapter's keys it never asked
    /// for (`None` unless built [`with_lora`](Self::with_lora)).
    pub fn lora_report(&self) -> Option<LoraReport> {
        let l = self.lora.as_ref()?;
        let mut unused: Vec<String> = match &l.spec.saved {
            Some((t, _)) => t.keys().filter(|k| !l.used.contains(*k)).cloned().collect(),
            None => Vec::new(),
        };
        unused.sort();
        Some(LoraReport {
            adapted: l.adapted.clone(),
            trained: l.trained.clone(),
            unused,
        })
    }

    /// The LoRA adapter of the dense layer `module` (`d_in` to `d_out`; `conv1d` for GPT-2's
    /// layout), when this build targets it: `lora_A [r, d_in]` and `lora_B [d_out, r]` read
    /// from the saved adapter or drawn, registered under peft's names.
    pub fn lora_adapter(
        &mut self,
        module: &str,
        d_in: usize,
        d_out: usize,
        conv1d: bool,
    ) -> Result<Option<LoraAdapter>> {
        let dtype = self.dtype;
        let device = self.device.clone();
        let Some(l) = self.lora.as_mut() else {
            return Ok(None);
        };
        if !(l.spec.target)(module) {
            return Ok(None);
        }
        l.adapted.push((module.to_string(), conv1d));
        let r = l.spec.r;
        let mut matrix = |which: &str, shape: [usize; 2], fan_in: usize, zero: bool| {
            let key = format!("{PEFT_PREFIX}{module}.{which}.weight");
            let t = match &l.spec.saved {
                Some((tensors, path)) => {
                    let t = tensors.get(&key).ok_or_else(|| Error::MissingWeight {
                        path: path.clone(),
                        name: key.clone(),
                        found: tensors.len(),
                    })?;
                    if t.dims() != shape {
                        return Err(Error::WeightShape {
                            path: path.clone(),
                            name: key.clone(),
                            expected: shape.to_vec(),
                            found: t.dims().to_vec(),
                        });
                    }
                    l.used.insert(key.clone());
                    t.to_device(&device)?
                }
                None if zero => Tensor::zeros(&shape, DType::F32, &device)?,
                None if l.spec.init == LoraInit::Gaussian && which == "lora_A" => {
                    sample(&mut l.rng, &shape, Init::Normal(1.0 / r as f64), &device)?
                }
                None => kaiming_uniform(&mut l.rng, &shape, fan_in, &device)?,
            };
            l.trained
                .push((key.clone(), format!("{module}.{which}.weight")));
            Ok::<_, Error>((key, t))
        };
        let zero_b = l.spec.init != LoraInit::Random;
        let (ka, a) = matrix("lora_A", [r, d_in], d_in, false)?;
        let (kb, b) = matrix("lora_B", [d_out, r], r, zero_b)?;
        let (scale, dropout) = (l.spec.scale, l.spec.dropout);
        let a = self.insert_var(&ka, a.to_dtype(dtype)?)?;
        let b = self.insert_var(&kb, b.to_dtype(dtype)?)?;
        Ok(Some(LoraAdapter {
            a,
            b,
            scale,
            dropout,
        }))
    }

    /// Stores the matrices the model multiplies by (dense layers, and the word embeddings
    /// that double as the LM head) in `dtype`; position and token-type tables, read one row per
    /// token, and every vector (biases, norms) keep the model's dtype, which is also the dtype
    /// activations are computed in.
    pub fn with_weight_dtype(mut self, dtype: DType) -> Self {
        self.weight_dtype = Some(dtype);
        self
    }

    /// Dense layers whose weight is among `q` take it quantized ([`Params::quantized`]) instead
    /// of a tensor of the source.
    pub fn with_quantized(mut self, q: Arc<QuantizedWeights>) -> Self {
        self.quantized = Some((q, HashSet::new()));
        self
    }

    /// The quantized matrix `name` (`[d_out, d_in]`), when building over quantized weights
    /// and they hold it.
    pub fn quantized(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<Option<QuantizedMatrix>> {
        let Some((q, used)) = self.quantized.as_mut() else {
            return Ok(None);
        };
        let m = q.matrix(name, d_in, d_out)?;
        if m.is_some() {
            used.insert(name.to_string());
        }
        Ok(m)
    }

    /// Whether the quantized weights hold `name` (the decoder asks for its tied head).
    pub fn has_quantized(&self, name: &str) -> bool {
        self.quantized
            .as_ref()
            .is_some_and(|(q, _)| q.tensors.contains_key(name))
    }

    /// The quantized weights built over, and those of their names no layer took.
    pub fn quantized_report(&self) -> Option<(Arc<QuantizedWeights>, Vec<String>)> {
        let (q, used) = self.quantized.as_ref()?;
        let mut unused: Vec<String> = q
            .tensors
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect();
        unused.sort();
        Some((q.clone(), unused))
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
        if let Some(l) = self.lora.as_mut() {
            let Some(key) = l.trained_key(name) else {
                // frozen: the base model's own storage, outside the graph of gradients
                return Ok(t.detach());
            };
            let t = match &l.spec.saved {
                Some((tensors, path)) => match tensors.get(&key) {
                    Some(s) if s.dims() != t.dims() => {
                        return Err(Error::WeightShape {
                            path: path.clone(),
                            name: key,
                            expected: t.dims().to_vec(),
                            found: s.dims().to_vec(),
                        });
                    }
                    Some(s) => {
                        l.used.insert(key.clone());
                        s.to_device(&self.device)?.to_dtype(t.dtype())?
                    }
                    None => t,
                },
                None => t,
            };
            l.trained.push((key.clone(), name.to_string()));
            return self.insert_var(&key, t);
        }
        self.insert_var(name, t)
    }

    /// `t` copied into a new `Var` of the VarMap under `name`.
    fn insert_var(&mut self, name: &str, t: Tensor) -> Result<Tensor> {
        let var = crate::kernels::weight_var(&t)?;
        let out = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .map_err(|_| Error::InvalidArgument("the model's VarMap lock is poisoned".into()))?
            .insert(name.to_string(), var);
        Ok(out)
    }
}

impl LoraBuild {
    /// peft's saved key of the weight `name` when a LoRA model trains it: a module of
    /// `modules_to_save` (`base_model.model.score.weight`), or a bias that `bias` trains
    /// (`...c_attn.base_layer.bias` in an adapted layer, `...ln_1.bias` elsewhere); else `None`
    /// (frozen).
    fn trained_key(&self, name: &str) -> Option<String> {
        let (module, param) = name.rsplit_once('.').unwrap_or(("", name));
        if (self.spec.save_whole)(module) {
            return Some(format!("{PEFT_PREFIX}{name}"));
        }
        let adapted = (self.spec.target)(module);
        let trains_bias = match self.spec.bias {
            TrainedBias::None => false,
            TrainedBias::All => true,
            TrainedBias::LoraOnly => adapted,
        };
        if param != "bias" || !trains_bias {
            return None;
        }
        Some(if adapted {
            format!("{PEFT_PREFIX}{module}.base_layer.bias")
        } else {
            format!("{PEFT_PREFIX}{name}")
        })
    }
}

/// `nn.Linear`'s default initialisation (`kaiming_uniform_(a=sqrt(5))`): uniform in
/// `±1/sqrt(fan_in)`, which peft keeps for `lora_A`.
fn kaiming_uniform(
    rng: &mut ChaCha8Rng,
    shape: &[usize],
    fan_in: usize,
    device: &Device,
) -> Result<Tensor> {
    use rand::Rng;
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Ok(Tensor::from_vec(v, shape, device)?)
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
