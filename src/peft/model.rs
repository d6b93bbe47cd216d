//! [`PeftModel`]: a model of the crate with LoRA adapters, peft's `PeftModel` — built by
//! [`get_peft_model`] or [`PeftModel::from_pretrained`], saved as peft saves it, merged back by
//! `merge_and_unload`. It is a [`PreTrainedModel`] like the others (the Trainer trains only its
//! adapter; generation, evaluation and attention maps run through it), and its base weights are
//! shared with the model it wraps, frozen: never copied, never changed.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde_json::Value;

use super::config::{LoraConfig, TargetModules, default_targets, in_modules_to_save, matches};
use crate::models::layers::{EncoderDecoderCache, KvCache};
use crate::models::{
    Face, ForwardArgs, LoraInit, LoraReport, LoraSpec, ModelHandle, ModelOutput, PEFT_PREFIX,
    PreTrainedModel, Task, TrainedBias,
};
use crate::{Error, Result, io};

/// The models [`get_peft_model`] wraps: every `AutoModel*` face with a forward pass
/// (`AutoModelForCausalLM`, `AutoModelForSequenceClassification`, ...).
pub trait PeftHost: PreTrainedModel + Face {}

impl<M: PreTrainedModel + Face> PeftHost for M {}

/// Seed of the adapters' initialisation (a run is repeatable; peft draws from torch's global
/// generator).
const ADAPTER_SEED: u64 = 42;

/// Modules called by the task heads, which have no training state at hand: an adapter there
/// runs without `lora_dropout`, so a dropout is refused for them.
const HEAD_MODULES: [&str; 5] = ["lm_head", "score", "classifier", "qa_outputs", "pooler"];

/// A model with LoRA adapters (peft's `PeftModel` over a `LoraModel`).
///
/// ```
/// use massivetext::prelude::*;
/// let config = Gpt2Config { n_layer: 2, n_embd: 32, n_head: 4, n_positions: 16, ..Gpt2Config::small(50) };
/// let base = AutoModelForCausalLM::from_config(&config, &Device::Cpu)?;
/// let lora = LoraConfig { r: 4, target_modules: Some(["c_attn"].into()), fan_in_fan_out: true, ..Default::default() };
/// let model = get_peft_model(base, &lora)?;
/// let (trainable, all) = model.get_nb_trainable_parameters();
/// assert_eq!(trainable, 2 * (4 * 32 + 96 * 4));
/// assert!(trainable < all);
/// # Ok::<(), massivetext::Error>(())
/// ```
pub struct PeftModel<M: PeftHost> {
    /// The wrapped model, as it came (its weights are the frozen base of `model`).
    base: M,
    /// The same network rebuilt with adapters; its VarMap holds only what trains.
    model: M,
    config: LoraConfig,
    report: Arc<LoraReport>,
}

/// Wraps `model` with the LoRA adapters of `config` (peft's `get_peft_model`): the modules
/// `target_modules` names get `lora_A` and `lora_B` (drawn as `init_lora_weights` says), the
/// base weights are frozen, and only the adapter (plus `modules_to_save` and the biases of
/// `bias`) trains. A `target_modules` that matches no module is peft's error.
pub fn get_peft_model<M: PeftHost>(model: M, config: &LoraConfig) -> Result<PeftModel<M>> {
    PeftModel::build(model, config.clone(), None)
}

impl<M: PeftHost> PeftModel<M> {
    /// `model` with the adapter saved in `adapter_dir` (`adapter_config.json` and
    /// `adapter_model.safetensors`, as peft's `save_pretrained` writes them), in evaluation
    /// mode. Keys of the file that match no module of `model` are an error naming them.
    pub fn from_pretrained(model: M, adapter_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = adapter_dir.as_ref();
        let config = LoraConfig::from_pretrained(dir)?;
        let path = dir.join("adapter_model.safetensors");
        let hint = if dir.join("adapter_model.bin").is_file() {
            " (found adapter_model.bin: only safetensors are loaded, since pickles can run code; save the adapter again with peft's save_pretrained(safe_serialization=True))"
        } else {
            ""
        };
        if !path.is_file() {
            return Err(Error::Io {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no adapter_model.safetensors{hint}"),
                ),
            });
        }
        let file = io::read_safetensors(&path)?;
        if let Some((name, dtype)) = file.skipped.first() {
            return Err(Error::CorruptWeights {
                path,
                message: format!(
                    "adapter tensor `{name}` has dtype {dtype}; adapters hold floating-point tensors"
                ),
            });
        }
        let mut m = Self::build(model, config, Some((file.tensors, path)))?;
        m.set_training(false);
        Ok(m)
    }

    fn build(
        base: M,
        mut config: LoraConfig,
        saved: Option<(HashMap<String, Tensor>, std::path::PathBuf)>,
    ) -> Result<Self> {
        let where_ = match &saved {
            Some((_, p)) => p.with_file_name("adapter_config.json"),
            None => "LoraConfig".into(),
        };
        config.validate(&where_)?;
        let handle = base.handle().0;
        let model_type = handle.config.model_type();
        let targets = match &config.target_modules {
            Some(t) => t.clone(),
            None => match default_targets(model_type) {
                Some(d) => TargetModules::from(d),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "LoraConfig: no default target_modules for model_type `{model_type}`; set target_modules"
                    )));
                }
            },
        };
        let mut to_save = config.modules_to_save.clone().unwrap_or_default();
        if config.task_type.as_deref() == Some("SEQ_CLS") {
            // peft's PeftModelForSequenceClassification trains the classifier head whole
            for head in ["classifier", "score"] {
                if !to_save.iter().any(|m| m == head) {
                    to_save.push(head.to_string());
                }
            }
        }
        let exclude = config.exclude_modules.clone();
        let save_list = to_save.clone();
        let target = Arc::new(move |key: &str| {
            matches(&targets, key)
                && !exclude.as_ref().is_some_and(|e| matches(e, key))
                && !in_modules_to_save(&save_list, key)
        });
        let save_list = to_save.clone();
        let save_whole = Arc::new(move |key: &str| in_modules_to_save(&save_list, key));
        let spec = LoraSpec {
            target,
            save_whole,
            r: config.r,
            scale: config.scaling(),
            dropout: config.lora_dropout,
            bias: match config.bias.as_str() {
                "all" => TrainedBias::All,
                "lora_only" => TrainedBias::LoraOnly,
                _ => TrainedBias::None,
            },
            init: match &config.init_lora_weights {
                super::config::InitLoraWeights::Bool(false) => LoraInit::Random,
                super::config::InitLoraWeights::Method(_) => LoraInit::Gaussian,
                _ => LoraInit::Default,
            },
            seed: ADAPTER_SEED,
            saved,
        };
        let saved_path = spec.saved.as_ref().map(|(_, p)| p.clone());
        let (adapted, report) = handle.with_lora(spec)?;
        if report.adapted.is_empty() {
            let shown = match &config.target_modules {
                Some(TargetModules::Names(n)) => format!("{n:?}"),
                Some(TargetModules::Regex(r)) => format!("{r:?}"),
                None => "(the default)".into(),
            };
            return Err(Error::InvalidArgument(format!(
                "Target modules {shown} not found in the base model. Please check the target modules and try again (the model's dense layers end in: {})",
                dense_layer_names(&base).join(", ")
            )));
        }
        if let (Some(path), Some(key)) = (saved_path, report.unused.first()) {
            return Err(Error::CorruptWeights {
                path,
                message: format!(
                    "adapter key `{key}` matches no module of this model ({} keys unused); load the adapter into the model it was trained on",
                    report.unused.len()
                ),
            });
        }
        if config.lora_dropout > 0.0
            && let Some((m, _)) = report
                .adapted
                .iter()
                .find(|(m, _)| m.split('.').any(|part| HEAD_MODULES.contains(&part)))
        {
            return Err(Error::InvalidArgument(format!(
                "LoraConfig: lora_dropout {} on the task head `{m}` is not supported (heads run without dropout here); set lora_dropout to 0 or leave the head out of target_modules",
                config.lora_dropout
            )));
        }
        let conv = report.adapted.iter().any(|(_, c)| *c);
        if conv != config.fan_in_fan_out {
            eprintln!(
                "warning: fan_in_fan_out is set to {} but the target modules are {}; setting fan_in_fan_out to {conv}",
                config.fan_in_fan_out,
                if conv {
                    "Conv1D (stored [in, out])"
                } else {
                    "nn.Linear (stored [out, in])"
                },
            );
            config.fan_in_fan_out = conv;
        }
        config.modules_to_save = config.modules_to_save.clone().or(if to_save.is_empty() {
            None
        } else {
            Some(to_save)
        });
        Ok(Self {
            base,
            model: M::from_handle(ModelHandle(adapted)),
            config,
            report: Arc::new(report),
        })
    }

    /// The LoRA settings (with `fan_in_fan_out` as the model needs it).
    pub fn peft_config(&self) -> &LoraConfig {
        &self.config
    }

    /// The wrapped model, its weights as they were (frozen).
    pub fn base_model(&self) -> &M {
        &self.base
    }

    /// The adapted modules' names, in the model's order.
    pub fn targeted_modules(&self) -> Vec<String> {
        self.report.adapted.iter().map(|(m, _)| m.clone()).collect()
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` (the trained tensors under
    /// peft's names, `base_model.model.<module>.lora_A.weight`, ...) that peft's
    /// `PeftModel.from_pretrained` loads; nothing of the base model.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        io::create_dir_all(dir)?;
        let tensors: Vec<(String, Tensor)> = self
            .model
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let metadata = [("format".to_string(), "pt".to_string())].into();
        io::write_safetensors(&dir.join("adapter_model.safetensors"), &tensors, metadata)?;
        self.config.save_pretrained(dir)
    }

    /// The base model with each adapter's update added to its weight (`W + scale · B A`) and
    /// the trained biases and modules in place: a plain model, independent of this one, that
    /// computes what this one computes (peft's `merge_and_unload`).
    pub fn merge_and_unload(&self) -> Result<M> {
        let base = self.base.handle().0;
        let adapted = self.model.handle().0;
        let merged = base.merged_with(&adapted, &self.report, self.config.scaling())?;
        Ok(M::from_handle(ModelHandle(merged)))
    }

    /// `(trainable, all)` parameter counts, as peft counts them (the adapter among all).
    pub fn get_nb_trainable_parameters(&self) -> (usize, usize) {
        let trainable: usize = self
            .model
            .named_parameters()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum();
        let base: usize = self
            .base
            .named_parameters()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum();
        // peft trains a bias in place (counted once) but a module of `modules_to_save` as a
        // copy beside the original (counted twice); ours are all copies
        let to_save = self.config.modules_to_save.clone().unwrap_or_default();
        let biases: usize = self
            .model
            .named_parameters()
            .iter()
            .filter(|(n, _)| {
                let name = n.strip_prefix(PEFT_PREFIX).unwrap_or(n);
                let module = name.rsplit_once('.').map_or("", |(m, _)| m);
                name.ends_with("bias") && !in_modules_to_save(&to_save, module)
            })
            .map(|(_, v)| v.elem_count())
            .sum();
        (trainable, base + trainable - biases)
    }

    /// peft's line: `trainable params: 294,912 || all params: 124,734,720 || trainable%:
    /// 0.2364`.
    pub fn trainable_parameters_line(&self) -> String {
        let (t, a) = self.get_nb_trainable_parameters();
        format!(
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            thousands(t),
            thousands(a),
            100.0 * t as f64 / a.max(1) as f64
        )
    }

    /// Prints [`trainable_parameters_line`](Self::trainable_parameters_line).
    pub fn print_trainable_parameters(&self) {
        println!("{}", self.trainable_parameters_line());
    }

    /// The forward pass (the wrapped face's `forward_with`).
    pub fn forward_with(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        self.model.forward_with(args)
    }

    /// Training mode (adapter dropout on).
    pub fn train(&mut self) {
        self.model.set_training(true);
    }

    /// Evaluation mode.
    pub fn eval(&mut self) {
        self.model.set_training(false);
    }
}

/// `n` with commas between thousands, as Python's `{:,}`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The distinct last components of the model's dense layers' names (for the error of a
/// target that matches nothing).
fn dense_layer_names<M: PeftHost>(model: &M) -> Vec<String> {
    let mut names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .filter(|(n, v)| n.ends_with(".weight") && v.rank() == 2)
        .filter_map(|(n, _)| {
            let module = n.strip_suffix(".weight")?;
            Some(module.rsplit('.').next().unwrap_or(module).to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

impl<M: PeftHost> Clone for PeftModel<M> {
    /// An independent copy of the adapter (new parameters with the same values) over the same
    /// frozen base weights: training one leaves the other as it was.
    fn clone(&self) -> Self {
        // copying tensors fails only when the device cannot allocate them
        self.try_clone().expect("copying the adapter's parameters")
    }
}

impl<M: PeftHost> PeftModel<M> {
    /// As `clone()`, with the error instead of a panic.
    pub fn try_clone(&self) -> Result<Self> {
        let tensors: HashMap<String, Tensor> = self
            .model
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().copy()))
            .collect::<HashMap<_, _>>()
            .into_iter()
            .map(|(n, t)| Ok((n, t?)))
            .collect::<Result<_>>()?;
        let mut config = self.config.clone();
        config.modules_to_save = self.config.modules_to_save.clone();
        let mut copy = Self::build(
            self.base.share(),
            config,
            Some((tensors, "<in memory>".into())),
        )?;
        let inner = self.model.handle().0;
        let mut copied = copy.model.handle().0;
        copied.training = inner.training;
        copied.dropout = inner.dropout.fork();
        copy.model = M::from_handle(ModelHandle(copied));
        Ok(copy)
    }
}

impl<M: PeftHost> std::fmt::Debug for PeftModel<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeftModel")
            .field("r", &self.config.r)
            .field("lora_alpha", &self.config.lora_alpha)
            .field("targeted_modules", &self.report.adapted.len())
            .field("trainable", &self.trainable_parameters_line())
            .finish()
    }
}

impl<M: PeftHost> std::fmt::Display for PeftModel<M> {
    /// peft's line, then the settings and the adapted modules.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        writeln!(f, "{}", self.trainable_parameters_line())?;
        writeln!(
            f,
            "LoRA r {}, lora_alpha {}, scaling {}, lora_dropout {}, bias {}",
            c.r,
            c.lora_alpha,
            c.scaling(),
            c.lora_dropout,
            c.bias
        )?;
        write!(
            f,
            "{} adapted modules: {}",
            self.report.adapted.len(),
            self.targeted_modules().join(", ")
        )
    }
}

impl<M: PeftHost> PeftModel<M> {
    /// Shows [`Display`](std::fmt::Display)'s text as the value of an evcxr notebook cell.
    pub fn evcxr_display(&self) {
        crate::display::emit("text/plain", &self.to_string());
    }
}

impl<M: PeftHost> PreTrainedModel for PeftModel<M> {
    fn forward_with(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        self.model.forward_with(args)
    }
    fn loss_with(&self, args: &ForwardArgs) -> Result<Tensor> {
        self.model.loss_with(args)
    }
    fn task(&self) -> Task {
        self.model.task()
    }
    /// The adapter's parameters only (what an optimiser updates and a checkpoint holds).
    fn varmap(&self) -> &VarMap {
        self.model.varmap()
    }
    fn device(&self) -> &Device {
        self.model.device()
    }
    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        PeftModel::save_pretrained(self, dir)
    }
    fn weights_file_name(&self) -> &'static str {
        "adapter_model.safetensors"
    }
    fn config_json(&self) -> Value {
        self.model.config_json()
    }
    fn vocab_size(&self) -> Option<usize> {
        self.model.vocab_size()
    }
    fn max_positions(&self) -> Option<usize> {
        self.model.max_positions()
    }
    fn forward_with_cache(&self, args: &ForwardArgs, cache: &mut KvCache) -> Result<ModelOutput> {
        self.model.forward_with_cache(args, cache)
    }
    fn has_kv_cache(&self) -> bool {
        self.model.has_kv_cache()
    }
    fn is_encoder_decoder(&self) -> bool {
        self.model.is_encoder_decoder()
    }
    fn encode(
        &self,
        args: &ForwardArgs,
        rows_per_source: usize,
        capacity: usize,
    ) -> Result<EncoderDecoderCache> {
        self.model.encode(args, rows_per_source, capacity)
    }
    fn decode_cached(
        &self,
        decoder_input_ids: &Tensor,
        cache: &mut EncoderDecoderCache,
    ) -> Result<Tensor> {
        self.model.decode_cached(decoder_input_ids, cache)
    }
    fn generation_config_json(&self) -> Value {
        self.model.generation_config_json()
    }
    /// bf16 mixed precision reaches the adapted network (its frozen base weights are cast
    /// where used, as the adapter's are).
    fn set_compute_dtype(&mut self, dtype: Option<DType>) -> Result<()> {
        self.model.set_compute_dtype(dtype)
    }
    fn compute_dtype(&self) -> Option<DType> {
        self.model.compute_dtype()
    }
    fn set_training(&mut self, training: bool) {
        self.model.set_training(training);
    }
    fn set_seed(&mut self, seed: u64) {
        self.model.set_seed(seed);
    }
    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.model.named_parameters()
    }
    fn share(&self) -> Self {
        Self {
            base: self.base.share(),
            model: self.model.share(),
            config: self.config.clone(),
            report: self.report.clone(),
        }
    }
}
