//! The model behind every `AutoModel*`, written once for every family: its config, the network
//! its family built, its parameters and mode; loading and saving in Hugging Face's layout,
//! `with_weight_dtype`, and the forward pass of each task over the family's [`Network`].
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde_json::{Map, Value};

use super::args::{
    BaseModelOutput, ForwardArgs, ModelOutput, QuestionAnsweringModelOutput, Seq2SeqLMOutput,
};
use super::family::{Body, EncoderSide, Network};
use super::heads::Task;
use super::labels::LabelConfig;
use super::layers::{Ctx, DropoutStream, EncoderDecoderCache, KvCache};
use super::losses::{classification_loss, lm_loss, question_answering_loss};
use super::params::{LoadReport, Params};
use super::qweights::QuantizedWeights;
use super::registry::{ModelConfig, read_config_object};
use crate::kernels::{self, IGNORE_INDEX};
use crate::{Error, Result, io};

/// A model of any family and task. `Clone` on `Model` shares the weights (the `VarMap` and the
/// network are handles); the faces' `Clone` is [`deep_copy`](Model::deep_copy) and their
/// `share` is this.
#[derive(Clone)]
pub(crate) struct Model {
    pub config: ModelConfig,
    /// Keys of the original config.json we do not model, written back on save.
    pub extra: Map<String, Value>,
    /// What the family built; immutable, its tensors those of `varmap`.
    pub net: Arc<dyn Network>,
    pub task: Task,
    pub varmap: VarMap,
    pub device: Device,
    /// The dtype parameters were loaded or drawn in, and the one weight matrices are stored
    /// in when it differs ([`Params::with_weight_dtype`]).
    pub dtypes: (DType, Option<DType>),
    /// Mixed precision: the forward pass runs under `kernels::with_autocast` to this dtype
    /// (bf16 matrix products, f32 statistics) while the parameters stay f32; `None` computes in
    /// the parameters' dtype. Per handle, like `training`.
    pub compute_dtype: Option<DType>,
    pub training: bool,
    pub dropout: DropoutStream,
    /// `generation_config.json` of the folder the model was loaded from, if it had one.
    pub generation: Option<Value>,
    /// The labels of a task head (`num_labels`, `id2label`, `problem_type`).
    pub labels: LabelConfig,
    /// The GGUF file the weights were read from (`from_gguf`), which
    /// `with_quantized_weights` reads the quantized blocks of.
    pub gguf: Option<Arc<Path>>,
    /// The matrices a `with_quantized_weights` copy multiplies by (inference only).
    pub quantized: Option<Arc<QuantizedWeights>>,
}

/// Seed of `from_config`'s initialisation and of the dropout stream unless set otherwise.
pub(crate) const DEFAULT_SEED: u64 = 42;

impl Model {
    /// The model `config`'s family builds for `task` from `p`, and what the checkpoint held
    /// that the model did not ask for.
    pub(super) fn build(
        config: ModelConfig,
        extra: Map<String, Value>,
        mut p: Params,
        (task, labels): (Task, LabelConfig),
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        config.check_task(task)?;
        let net = config.build(&mut p, task, &labels)?;
        let report = p.report();
        let quantized = match p.quantized_report() {
            Some((q, unused)) if !unused.is_empty() => {
                return Err(Error::Config {
                    path: q.source.clone(),
                    message: format!(
                        "quantized matrices the model did not use: {unused:?}; the config and the file disagree"
                    ),
                });
            }
            q => q.map(|(q, _)| q),
        };
        let model = Self {
            config,
            extra,
            net,
            task,
            dtypes: p.dtypes(),
            varmap: p.varmap,
            device: device.clone(),
            compute_dtype: None,
            training: false,
            dropout: DropoutStream::new(DEFAULT_SEED),
            generation: None,
            labels,
            gguf: None,
            quantized,
        };
        Ok((model, report))
    }

    /// The same model rebuilt over `tensors` (parameters and buffers by name), stored as
    /// `dtypes` say. Tensors that are already this model's `Var`s are kept as they are (shared);
    /// any other tensor becomes a new `Var`.
    pub(super) fn rebuilt(
        &self,
        tensors: HashMap<String, Tensor>,
        dtypes: (DType, Option<DType>),
    ) -> Result<Self> {
        let mut p = Params::loaded(
            tensors,
            Vec::new(),
            Path::new("<in memory>"),
            &self.device,
            dtypes.0,
        );
        if let Some(w) = dtypes.1 {
            p = p.with_weight_dtype(w);
        }
        if let Some(q) = &self.quantized {
            p = p.with_quantized(q.clone());
        }
        let task = (self.task, self.labels.clone());
        let (mut m, _) = Self::build(
            self.config.clone(),
            self.extra.clone(),
            p,
            task,
            &self.device,
        )?;
        m.training = self.training;
        m.compute_dtype = self.compute_dtype;
        m.dropout = self.dropout.clone();
        m.generation = self.generation.clone();
        m.gguf = self.gguf.clone();
        Ok(m)
    }

    /// An independent copy: every parameter copied into a new `Var` of a new `VarMap`, the
    /// network rebuilt over them, the dropout stream forked; training one leaves the other as
    /// it was.
    pub fn deep_copy(&self) -> Result<Self> {
        let tensors = self
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.detach()))
            .collect();
        let mut m = self.rebuilt(tensors, self.dtypes)?;
        m.dropout = self.dropout.fork();
        Ok(m)
    }

    /// Every parameter's tensor and every buffer, by name.
    pub(super) fn tensors(&self) -> HashMap<String, Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .chain(self.net.buffers())
            .collect()
    }

    /// A copy for inference whose weight matrices are stored in `dtype` (bf16; or f32 to
    /// undo), computed in f32 ([`Params::with_weight_dtype`] says which weights). It shares no
    /// storage with `self` and has no gradients: train the f32 model.
    pub fn with_weight_dtype(&self, dtype: DType) -> Result<Self> {
        if !matches!(dtype, DType::BF16 | DType::F32) {
            return Err(Error::InvalidArgument(format!(
                "with_weight_dtype takes bf16 (weights in half the bytes, computed in f32) or f32, not {dtype:?}"
            )));
        }
        self.refuse_quantized("with_weight_dtype")?;
        let tensors = self
            .tensors()
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_dtype(DType::F32)?.detach())))
            .collect::<Result<HashMap<_, _>>>()?;
        let mut m = self.rebuilt(tensors, (DType::F32, Some(dtype)))?;
        m.training = false;
        m.compute_dtype = None;
        m.dropout = DropoutStream::new(DEFAULT_SEED);
        Ok(m)
    }

    pub fn from_config(
        config: ModelConfig,
        device: &Device,
        task: Task,
        seed: u64,
    ) -> Result<Self> {
        Self::from_config_labels(config, device, (task, LabelConfig::default()), seed)
    }

    /// `from_config` with the task head's labels; the config is checked first
    /// (`InvalidConfig` naming the field).
    pub fn from_config_labels(
        config: ModelConfig,
        device: &Device,
        (task, labels): (Task, LabelConfig),
        seed: u64,
    ) -> Result<Self> {
        config.validate_in_code()?;
        labels.validate(Path::new("<labels>"))?;
        let p = Params::init(seed, device, DType::F32);
        let (mut m, _) = Self::build(config, Map::new(), p, (task, labels), device)?;
        // from_config starts in training mode, like a freshly constructed torch module
        m.training = true;
        Ok(m)
    }

    /// Loads `dir/config.json` and `dir/model.safetensors` (or the shards of
    /// `model.safetensors.index.json`), with the task head's labels replacing those of
    /// `config.json` when given (transformers' `from_pretrained(dir, num_labels=4)`). Weights of
    /// the file the model does not use, and head weights the checkpoint lacks (initialised), are
    /// named in warnings on stderr, as transformers warns.
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        task: Task,
        labels: Option<LabelConfig>,
    ) -> Result<Self> {
        let (model, report) = Self::load_reported(dir, device, dtype, task, labels)?;
        if !report.unused.is_empty() {
            eprintln!("warning: {}", report.warning(model.architecture()));
        }
        if !report.newly_initialized.is_empty() {
            eprintln!(
                "warning: {}",
                report.new_weights_warning(model.architecture())
            );
        }
        Ok(model)
    }

    /// `load`, and what the weights file held that the model did not use.
    pub fn load_reported(
        dir: &Path,
        device: &Device,
        dtype: DType,
        task: Task,
        labels: Option<LabelConfig>,
    ) -> Result<(Self, LoadReport)> {
        let cfg_path = dir.join("config.json");
        let extra = read_config_object(&cfg_path)?;
        let config = ModelConfig::from_map(&extra, &cfg_path)?;
        config.check_task(task)?;
        let labels = match labels {
            Some(l) => {
                l.validate(&cfg_path)?;
                l
            }
            None => LabelConfig::from_config_map(&extra, &cfg_path)?,
        };
        let (tensors, skipped, path) = read_weights(dir)?;
        let p = Params::loaded(tensors, skipped, &path, device, dtype);
        let mut model = Self::build(config, extra, p, (task, labels), device)?;
        let gen_path = dir.join("generation_config.json");
        if gen_path.is_file() {
            model.0.generation = Some(io::read_json(&gen_path)?);
        }
        Ok(model)
    }

    pub fn architecture(&self) -> &'static str {
        self.config.architecture(self.task)
    }

    /// Writes `config.json`, `model.safetensors` (parameters and buffers) and, when there is
    /// one, `generation_config.json`, each through a temporary file and a rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.refuse_quantized("save_pretrained")?;
        io::create_dir_all(dir)?;
        let tensors: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .chain(self.net.buffers())
            .collect();
        let metadata = [("format".to_string(), "pt".to_string())].into();
        io::write_safetensors(&dir.join("model.safetensors"), &tensors, metadata)?;
        if let Some(g) = self
            .generation
            .clone()
            .or_else(|| self.config.generation_defaults())
        {
            io::write_json(&dir.join("generation_config.json"), &g)?;
        }
        let mut extra = self.extra.clone();
        if matches!(
            self.task,
            Task::SequenceClassification | Task::QuestionAnswering
        ) {
            self.labels.write_to(&mut extra);
        }
        let json = self.config.to_json(self.architecture(), &extra)?;
        io::write_atomic(&dir.join("config.json"), json.as_bytes())
    }

    /// The generation settings: `generation_config.json` when loaded with one, else the
    /// family's (Marian's beam search), else the full `config.json` (its generation keys:
    /// `bos_token_id`, `eos_token_id`, ...).
    pub fn generation_config_json(&self) -> Value {
        if let Some(g) = self
            .generation
            .clone()
            .or_else(|| self.config.generation_defaults())
        {
            return g;
        }
        let mut v = Value::Object(self.extra.clone());
        if let (Some(o), Value::Object(c)) = (v.as_object_mut(), self.config.to_value()) {
            o.extend(c);
        }
        v
    }

    /// The config as a value with `model_type` (and a task head's labels), for summaries.
    pub fn config_json(&self) -> Value {
        let mut v = self.config.to_value();
        if matches!(
            self.task,
            Task::SequenceClassification | Task::QuestionAnswering
        ) && let Some(o) = v.as_object_mut()
        {
            self.labels.write_to(o);
        }
        v
    }

    /// Every trainable parameter with its Hugging Face name, sorted by name.
    pub fn named_parameters(&self) -> Vec<(String, Var)> {
        let data = match self.varmap.data().lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            training: self.training,
            dropout: self.dropout.clone(),
            first_token_only: false,
        }
    }

    /// Mixed precision, as `torch.autocast(bfloat16)`: matrix products in `dtype` (bf16) over
    /// the f32 parameters, which stay what the optimiser updates (the forward casts them where
    /// they are used; see `kernels::precision`); `None` or the parameters' own dtype turns it
    /// off.
    /// Refused for a model whose parameters are not f32 (one loaded in bf16, or a
    /// `with_weight_dtype` copy): mixed precision keeps f32 master weights.
    pub fn set_compute_dtype(&mut self, dtype: Option<DType>) -> Result<()> {
        // the Trainer sets the compute dtype first: a quantized copy stops it there
        self.refuse_quantized("training (and mixed precision)")?;
        let dtype = dtype.filter(|&d| d != self.dtypes.0);
        match dtype {
            None => {}
            Some(DType::BF16 | DType::F16) if self.dtypes == (DType::F32, None) => {}
            Some(d @ (DType::BF16 | DType::F16)) => {
                return Err(Error::Unsupported(format!(
                    "mixed precision ({d:?} activations) needs f32 parameters (master weights), but this model's are stored in {:?}{}; load or build the model in f32 and set the compute dtype on it",
                    self.dtypes.1.unwrap_or(self.dtypes.0),
                    if self.dtypes.1.is_some() {
                        " (a with_weight_dtype copy, for inference)"
                    } else {
                        ""
                    }
                )));
            }
            Some(d) => {
                return Err(Error::InvalidArgument(format!(
                    "the compute dtype of mixed precision is bf16 (or f16), not {d:?}"
                )));
            }
        }
        self.compute_dtype = dtype;
        Ok(())
    }

    /// An output tensor in the parameters' dtype: under mixed precision the logits (and some
    /// hidden states) are bf16 and are widened for the caller, as transformers' `logits.float()`.
    fn out(&self, t: Tensor) -> Result<Tensor> {
        Ok(match self.compute_dtype {
            Some(_) if t.dtype() != self.dtypes.0 => t.to_dtype(self.dtypes.0)?,
            _ => t,
        })
    }

    fn out_all(&self, ts: Option<Vec<Tensor>>) -> Result<Option<Vec<Tensor>>> {
        ts.map(|v| v.into_iter().map(|t| self.out(t)).collect())
            .transpose()
    }

    /// The stack's output with every tensor in the parameters' dtype (see [`out`](Self::out)).
    fn widened(&self, b: Body) -> Result<Body> {
        if self.compute_dtype.is_none() {
            return Ok(b);
        }
        let encoder = match b.encoder {
            Some(e) => Some(EncoderSide {
                last_hidden_state: self.out(e.last_hidden_state)?,
                hidden_states: self.out_all(e.hidden_states)?,
                attentions: self.out_all(e.attentions)?,
            }),
            None => None,
        };
        Ok(Body {
            last_hidden_state: b.last_hidden_state,
            hidden_states: self.out_all(b.hidden_states)?,
            attentions: self.out_all(b.attentions)?,
            encoder,
            cross_attentions: self.out_all(b.cross_attentions)?,
        })
    }

    /// `f` (a call into the network) under autocast to the compute dtype, when one is set.
    fn autocast<T>(&self, f: impl FnOnce() -> T) -> T {
        kernels::with_autocast(self.compute_dtype, f)
    }

    fn body(&self, args: &ForwardArgs, cache: Option<&mut KvCache>) -> Result<Body> {
        self.body_in(args, cache, &self.ctx())
    }

    fn body_in(&self, args: &ForwardArgs, cache: Option<&mut KvCache>, ctx: &Ctx) -> Result<Body> {
        if self.training {
            self.refuse_quantized("a forward pass in training mode")?;
        }
        self.autocast(|| self.net.body(args, cache, ctx))
    }

    /// A language model's logits (and loss with labels): causal, masked or encoder–decoder.
    pub fn forward_lm(
        &self,
        args: &ForwardArgs,
        cache: Option<&mut KvCache>,
    ) -> Result<ModelOutput> {
        let out = self.body(args, cache)?;
        let (logits, loss) = self.logits_and_loss(args, &out)?;
        let out = self.widened(out)?;
        Ok(ModelOutput {
            logits,
            loss,
            attentions: out.attentions,
            hidden_states: out.hidden_states,
        })
    }

    fn logits_and_loss(&self, args: &ForwardArgs, out: &Body) -> Result<(Tensor, Option<Tensor>)> {
        let h = &out.last_hidden_state;
        let (b, t, _) = h.dims3()?;
        let logits = self.out(self.autocast(|| self.net.lm_logits(h))?)?;
        let loss = match &args.labels {
            None => None,
            Some(labels) => {
                let labels = self.lm_labels(labels, h.device(), (b, t))?;
                Some(kernels::cross_entropy(
                    &logits.to_dtype(DType::F32)?,
                    &labels,
                )?)
            }
        };
        Ok((logits, loss))
    }

    /// An encoder–decoder's full output: logits, loss, the encoder's last hidden state, and
    /// the three kinds of attention when asked for.
    pub fn forward_seq2seq(&self, args: &ForwardArgs) -> Result<Seq2SeqLMOutput> {
        let out = self.body(args, None)?;
        let (logits, loss) = self.logits_and_loss(args, &out)?;
        let out = self.widened(out)?;
        let Some(enc) = out.encoder else {
            return Err(Error::InvalidArgument(
                "this model has no encoder; forward_seq2seq is for encoder-decoder models".into(),
            ));
        };
        Ok(Seq2SeqLMOutput {
            logits,
            loss,
            encoder_last_hidden_state: enc.last_hidden_state,
            encoder_attentions: enc.attentions,
            decoder_attentions: out.attentions,
            cross_attentions: out.cross_attentions,
            encoder_hidden_states: enc.hidden_states,
            decoder_hidden_states: out.hidden_states,
        })
    }

    /// The loss of [`forward_lm`](Self::forward_lm) alone, with the head run only over the
    /// labelled positions ([`lm_loss`]): what a training step needs.
    pub fn loss_lm(&self, args: &ForwardArgs) -> Result<Tensor> {
        let Some(labels) = &args.labels else {
            return Err(Error::InvalidArgument(
                "the loss needs labels: set ForwardArgs::labels".into(),
            ));
        };
        let h = self.body(args, None)?.last_hidden_state;
        let (b, t, _) = h.dims3()?;
        let labels = self.lm_labels(labels, h.device(), (b, t))?;
        lm_loss(&h, &labels, |x| self.autocast(|| self.net.lm_logits(x)))
    }

    /// Hugging Face's labels, aligned with the hidden states on `device`: -100 is ignored; a
    /// causal model's labels are shifted left inside (position t predicts token t+1).
    fn lm_labels(
        &self,
        labels: &Tensor,
        device: &Device,
        (b, t): (usize, usize),
    ) -> Result<Tensor> {
        if labels.dims() != [b, t] {
            let like = if self.task == Task::Seq2SeqLm {
                "the decoder's inputs"
            } else {
                "input_ids"
            };
            return Err(Error::InvalidArgument(format!(
                "labels have shape {:?}, expected [{b}, {t}] like {like}",
                labels.dims()
            )));
        }
        let labels = labels.to_device(device)?.to_dtype(DType::I64)?;
        Ok(if self.task == Task::CausalLm {
            let end = Tensor::full(IGNORE_INDEX, (b, 1), device)?;
            if t > 1 {
                Tensor::cat(&[&labels.narrow(1, 1, t - 1)?, &end], 1)?
            } else {
                end
            }
        } else {
            labels
        })
    }

    /// A sequence classifier's logits `[b, num_labels]`, and its loss when `args.labels` is set.
    pub fn forward_classification(&self, args: &ForwardArgs) -> Result<ModelOutput> {
        // the head reads the first token alone (BERT, RoBERTa) or ignores this (GPT-2's last
        // token), unless the caller wants every layer's states
        let ctx = Ctx {
            first_token_only: !args.output_hidden_states && !args.output_attentions,
            ..self.ctx()
        };
        let out = self.body_in(args, None, &ctx)?;
        let logits = self.out(self.autocast(|| {
            self.net
                .classify(&out.last_hidden_state, &args.input_ids, &self.ctx())
        })?)?;
        let out = self.widened(out)?;
        let loss = match &args.labels {
            None => None,
            Some(labels) => Some(classification_loss(
                &logits,
                labels,
                self.labels.problem_type,
            )?),
        };
        Ok(ModelOutput {
            logits,
            loss,
            attentions: out.attentions,
            hidden_states: out.hidden_states,
        })
    }

    /// A QA model's start and end logits `[b, t]`, and its loss when both
    /// `args.start_positions` and `args.end_positions` are set.
    pub fn forward_qa(&self, args: &ForwardArgs) -> Result<QuestionAnsweringModelOutput> {
        let out = self.body(args, None)?;
        let (start_logits, end_logits) =
            self.autocast(|| self.net.answer_span(&out.last_hidden_state))?;
        let (start_logits, end_logits) = (self.out(start_logits)?, self.out(end_logits)?);
        let out = self.widened(out)?;
        let loss = match (&args.start_positions, &args.end_positions) {
            (Some(s), Some(e)) => Some(question_answering_loss(&start_logits, &end_logits, s, e)?),
            (None, None) => None,
            _ => {
                return Err(Error::ConflictingArguments(
                    "give both start_positions and end_positions for the QA loss, or neither"
                        .into(),
                ));
            }
        };
        Ok(QuestionAnsweringModelOutput {
            loss,
            start_logits,
            end_logits,
            attentions: out.attentions,
            hidden_states: out.hidden_states,
        })
    }

    pub fn forward_base(&self, args: &ForwardArgs) -> Result<BaseModelOutput> {
        let out = self.body(args, None)?;
        let pooler_output = self.autocast(|| self.net.pooled(&out.last_hidden_state))?;
        let pooler_output = pooler_output.map(|p| self.out(p)).transpose()?;
        let out = self.widened(out)?;
        Ok(BaseModelOutput {
            last_hidden_state: self.out(out.last_hidden_state)?,
            pooler_output,
            attentions: out.attentions,
            hidden_states: out.hidden_states,
        })
    }

    /// Encoder–decoders: the encoder run once for generation.
    pub fn start_decoding(
        &self,
        args: &ForwardArgs,
        rows_per_source: usize,
        capacity: usize,
    ) -> Result<EncoderDecoderCache> {
        self.autocast(|| {
            self.net
                .start_decoding(args, rows_per_source, capacity, &self.ctx())
        })
    }

    /// Encoder–decoders: logits of new decoder tokens after those in `cache`.
    pub fn decode_cached(&self, ids: &Tensor, cache: &mut EncoderDecoderCache) -> Result<Tensor> {
        self.out(self.autocast(|| self.net.decode_cached(ids, cache, &self.ctx()))?)
    }

    /// See `AutoModel*::resize_token_embeddings`: every tensor with a row per token (the
    /// family says which) resized, then the network rebuilt over the same parameters.
    pub(crate) fn resize_token_embeddings(&mut self, new_size: usize) -> Result<()> {
        if new_size == 0 {
            return Err(Error::InvalidArgument(
                "resize_token_embeddings: the new vocabulary size must be at least 1".into(),
            ));
        }
        self.refuse_quantized("resize_token_embeddings")?;
        let resized = self.net.vocab_tensors();
        if resized.is_empty() {
            return Err(Error::Unsupported(format!(
                "resize_token_embeddings is not supported for {}",
                self.architecture()
            )));
        }
        let mut tensors = self.tensors();
        for t in resized {
            let name = tensors
                .iter()
                .find(|(_, v)| v.id() == t.id())
                .map(|(n, _)| n.clone())
                .ok_or_else(|| {
                    Error::InvalidArgument(
                        "resize_token_embeddings: the embedding table is not among the model's parameters".into(),
                    )
                })?;
            tensors.insert(name, resize_rows(&t, new_size)?);
        }
        let mut config = self.config.clone();
        config.set_vocab_size(new_size);
        let old = std::mem::replace(&mut self.config, config);
        match self.rebuilt(tensors, self.dtypes) {
            Ok(m) => {
                *self = m;
                Ok(())
            }
            Err(e) => {
                self.config = old;
                Err(e)
            }
        }
    }
}

/// The first `n` rows of `t` (`[rows, ..]`), or all of them followed by copies of their mean.
fn resize_rows(t: &Tensor, n: usize) -> Result<Tensor> {
    let rows = t.dim(0)?;
    if n <= rows {
        return Ok(t.narrow(0, 0, n)?.contiguous()?);
    }
    let dtype = t.dtype();
    let mean = t.to_dtype(DType::F32)?.mean_keepdim(0)?;
    let mut shape = t.dims().to_vec();
    shape[0] = n - rows;
    let extra = mean.broadcast_as(shape)?.to_dtype(dtype)?.contiguous()?;
    Ok(Tensor::cat(&[t, &extra], 0)?)
}

/// A folder's tensors, the ones skipped (name, dtype) and the file read.
type Weights = (
    std::collections::HashMap<String, Tensor>,
    Vec<(String, String)>,
    PathBuf,
);

/// Loads the model in `dir` for `task` on the CPU and returns what its weights file holds that
/// the model does not use (transformers' "Some weights of the model checkpoint at X were not
/// used"): e.g. the layers beyond `n_layer` of a config that says fewer layers than the weights
/// have. Missing weights are an error, as when loading.
pub fn check_weights(dir: impl AsRef<Path>, task: Task) -> Result<LoadReport> {
    Ok(Model::load_reported(dir.as_ref(), &Device::Cpu, DType::F32, task, None)?.1)
}

/// Reads the weights of a model folder: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`. PyTorch pickles are refused (they can run code).
pub(crate) fn read_weights(dir: &Path) -> Result<Weights> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        let f = io::read_safetensors(&single)?;
        return Ok((f.tensors, f.skipped, single));
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let v: Value = io::read_json(&index)?;
        let mut files: Vec<String> = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::Config {
                path: index.clone(),
                message: "missing key `weight_map`".into(),
            })?
            .values()
            .filter_map(|f| f.as_str().map(String::from))
            .collect();
        files.sort();
        files.dedup();
        let mut all = std::collections::HashMap::new();
        let mut skipped = Vec::new();
        for f in files {
            let f = io::read_safetensors(&dir.join(f))?;
            all.extend(f.tensors);
            skipped.extend(f.skipped);
        }
        return Ok((all, skipped, index));
    }
    let hint = if dir.join("pytorch_model.bin").is_file() {
        " (found pytorch_model.bin: only safetensors are loaded, since pickles can run code; convert it with transformers: `AutoModel.from_pretrained(dir).save_pretrained(dir)`)"
    } else {
        ""
    };
    Err(Error::Io {
        path: single,
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no model.safetensors or model.safetensors.index.json{hint}"),
        ),
    })
}
