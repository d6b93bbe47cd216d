//! The model behind every `AutoModel*`: config, core, head, parameters and mode, plus loading
//! and saving in Hugging Face's layout.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde_json::{Map, Value};

use super::config::{ModelConfig, read_config_object};
use super::core::{CoreInput, CoreOutput, Ctx, DropoutStream, KvCache, Transformer};
use super::heads::{Head, Task};
use super::labels::LabelConfig;
use super::losses::{classification_loss, lm_loss, question_answering_loss};
use super::params::{LoadReport, Params};
use super::{bert, gpt2, roberta};
use crate::kernels::{self, IGNORE_INDEX};
use crate::{Error, Result, io};

/// Arguments of a full forward pass. Owned tensors (cheap clones) so it can be built once and
/// kept in a notebook variable.
#[derive(Clone, Debug)]
pub struct ForwardArgs {
    /// Token ids, `u32` (or `i64`) `[batch, seq]`.
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding, `[batch, seq]` (`[batch, cached + seq]` with a cache).
    pub attention_mask: Option<Tensor>,
    /// BERT's segment ids, `[batch, seq]`; zeros when absent.
    pub token_type_ids: Option<Tensor>,
    /// Position of each token, `[batch, seq]`; when absent, `past..past + seq` (GPT-2, BERT) or
    /// counted from the padding (RoBERTa). Generation with left padding sets them from the
    /// attention mask, as transformers does.
    pub position_ids: Option<Tensor>,
    /// Language models: integer `[batch, seq]`; -100 marks positions left out of the loss.
    /// Causal models shift them inside (position t predicts label t+1), as transformers does.
    /// Sequence classifiers: one class id per example (u32 or i64 `[batch]`), floats `[batch]`
    /// for regression, or floats `[batch, num_labels]` for multi-label classification.
    pub labels: Option<Tensor>,
    /// Question answering: the token index where each example's answer starts, `[batch]`
    /// (with `end_positions`, gives the loss). Indices past the sequence are ignored.
    pub start_positions: Option<Tensor>,
    /// Question answering: the token index where each example's answer ends, `[batch]`.
    pub end_positions: Option<Tensor>,
    /// Encoder–decoder models: the decoder's input ids `[batch, target_seq]` (starting with
    /// the decoder start token). When absent, the labels shifted right are used, as
    /// transformers' `shift_tokens_right` makes them (-100 becomes the padding id).
    pub decoder_input_ids: Option<Tensor>,
    /// Encoder–decoder models: 1 for real decoder tokens, 0 for padding, `[batch, target_seq]`;
    /// when absent only the causal mask applies (as in transformers).
    pub decoder_attention_mask: Option<Tensor>,
    pub output_attentions: bool,
    pub output_hidden_states: bool,
}

impl ForwardArgs {
    pub fn new(input_ids: &Tensor) -> Self {
        Self {
            input_ids: input_ids.clone(),
            attention_mask: None,
            token_type_ids: None,
            position_ids: None,
            labels: None,
            start_positions: None,
            end_positions: None,
            decoder_input_ids: None,
            decoder_attention_mask: None,
            output_attentions: false,
            output_hidden_states: false,
        }
    }
    pub fn attention_mask(mut self, mask: &Tensor) -> Self {
        self.attention_mask = Some(mask.clone());
        self
    }
    pub fn token_type_ids(mut self, ids: &Tensor) -> Self {
        self.token_type_ids = Some(ids.clone());
        self
    }
    pub fn position_ids(mut self, ids: &Tensor) -> Self {
        self.position_ids = Some(ids.clone());
        self
    }
    pub fn labels(mut self, labels: &Tensor) -> Self {
        self.labels = Some(labels.clone());
        self
    }
    /// Question answering: where each answer starts (integer `[batch]`).
    pub fn start_positions(mut self, positions: &Tensor) -> Self {
        self.start_positions = Some(positions.clone());
        self
    }
    /// Question answering: where each answer ends (integer `[batch]`).
    pub fn end_positions(mut self, positions: &Tensor) -> Self {
        self.end_positions = Some(positions.clone());
        self
    }
    /// Encoder–decoder models: the decoder's input ids (u32 or i64 `[batch, target_seq]`).
    pub fn decoder_input_ids(mut self, ids: &Tensor) -> Self {
        self.decoder_input_ids = Some(ids.clone());
        self
    }
    /// Encoder–decoder models: the decoder inputs' padding mask `[batch, target_seq]`.
    pub fn decoder_attention_mask(mut self, mask: &Tensor) -> Self {
        self.decoder_attention_mask = Some(mask.clone());
        self
    }
    pub fn output_attentions(mut self, yes: bool) -> Self {
        self.output_attentions = yes;
        self
    }
    pub fn output_hidden_states(mut self, yes: bool) -> Self {
        self.output_hidden_states = yes;
        self
    }
}

/// Output of a language model (`CausalLMOutput` / `MaskedLMOutput` in transformers) or a
/// sequence classifier (`SequenceClassifierOutput`).
#[derive(Clone, Debug)]
pub struct ModelOutput {
    /// `[batch, seq, vocab]` for a language model, `[batch, num_labels]` for a sequence
    /// classifier, `[batch, seq, 2]` (start, end) for a QA model seen through
    /// `PreTrainedModel`.
    pub logits: Tensor,
    /// The scalar loss when labels (or answer positions) were given.
    pub loss: Option<Tensor>,
    /// Per layer, `[batch, heads, seq, keys]`, when asked for.
    pub attentions: Option<Vec<Tensor>>,
    /// Embedding output then each layer's output (`n_layer + 1` tensors), when asked for.
    pub hidden_states: Option<Vec<Tensor>>,
}

/// transformers' name for a sequence classifier's output: logits `[batch, num_labels]`.
pub type SequenceClassifierOutput = ModelOutput;

/// Output of an extractive question-answering model (`QuestionAnsweringModelOutput`).
#[derive(Clone, Debug)]
pub struct QuestionAnsweringModelOutput {
    /// The mean of the start and end cross-entropies, when positions were given.
    pub loss: Option<Tensor>,
    /// `[batch, seq]`: how likely each token is to start the answer.
    pub start_logits: Tensor,
    /// `[batch, seq]`: how likely each token is to end the answer.
    pub end_logits: Tensor,
    pub attentions: Option<Vec<Tensor>>,
    pub hidden_states: Option<Vec<Tensor>>,
}

/// Output of a bare model (`BaseModelOutputWithPooling`).
#[derive(Clone, Debug)]
pub struct BaseModelOutput {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor,
    /// BERT's pooler output `[batch, hidden]`, when the model has a pooler.
    pub pooler_output: Option<Tensor>,
    pub attentions: Option<Vec<Tensor>>,
    pub hidden_states: Option<Vec<Tensor>>,
}

#[derive(Clone)]
pub(crate) struct Model {
    pub config: ModelConfig,
    /// Keys of the original config.json we do not model, written back on save.
    pub extra: Map<String, Value>,
    pub core: Transformer,
    pub head: Head,
    pub task: Task,
    pub varmap: VarMap,
    pub device: Device,
    pub training: bool,
    pub dropout: DropoutStream,
    /// `generation_config.json` of the folder the model was loaded from, if it had one.
    pub generation: Option<Value>,
    /// The labels of a task head (`num_labels`, `id2label`, `problem_type`).
    pub labels: LabelConfig,
}

/// Seed of `from_config`'s initialisation and of the dropout stream unless set otherwise.
pub(crate) const DEFAULT_SEED: u64 = 42;

fn check_task(config: &ModelConfig, task: Task) -> Result<()> {
    let ok = match task {
        Task::CausalLm => matches!(config, ModelConfig::Gpt2(_)),
        Task::MaskedLm | Task::QuestionAnswering => {
            matches!(config, ModelConfig::Bert(_) | ModelConfig::Roberta(_))
        }
        Task::Base | Task::SequenceClassification => true,
        Task::Seq2SeqLm => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::WrongTask {
            model_type: config.model_type().into(),
            task: task.describe().into(),
            supported: task.supported().into(),
        })
    }
}

impl Model {
    fn build(
        config: ModelConfig,
        extra: Map<String, Value>,
        p: Params,
        (task, labels): (Task, LabelConfig),
        device: &Device,
    ) -> Result<Self> {
        Ok(Self::build_reported(config, extra, p, (task, labels), device)?.0)
    }

    /// `build`, and what the checkpoint held that the model did not ask for.
    fn build_reported(
        config: ModelConfig,
        extra: Map<String, Value>,
        mut p: Params,
        (task, labels): (Task, LabelConfig),
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        check_task(&config, task)?;
        let (core, head) = match &config {
            ModelConfig::Gpt2(c) => gpt2::build(c, &mut p, task, &labels)?,
            ModelConfig::Bert(c) => bert::build(c, &mut p, task, &labels)?,
            ModelConfig::Roberta(c) => roberta::build(c, &mut p, task, &labels)?,
        };
        let report = p.report();
        let model = Self {
            config,
            extra,
            core,
            head,
            task,
            varmap: p.varmap,
            device: device.clone(),
            training: false,
            dropout: DropoutStream::new(DEFAULT_SEED),
            generation: None,
            labels,
        };
        Ok((model, report))
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
        let tensors = self
            .named_parameters()
            .into_iter()
            .map(|(n, v)| Ok((n, v.as_tensor().to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let p = Params::loaded(
            tensors,
            Vec::new(),
            Path::new("<in memory>"),
            &self.device,
            DType::F32,
        )
        .with_weight_dtype(dtype);
        let task = (self.task, self.labels.clone());
        let mut m = Self::build(
            self.config.clone(),
            self.extra.clone(),
            p,
            task,
            &self.device,
        )?;
        m.generation = self.generation.clone();
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

    /// `from_config` with the task head's labels.
    pub fn from_config_labels(
        config: ModelConfig,
        device: &Device,
        (task, labels): (Task, LabelConfig),
        seed: u64,
    ) -> Result<Self> {
        config.validate(Path::new("<config>"))?;
        labels.validate(Path::new("<labels>"))?;
        let p = Params::init(seed, device, DType::F32);
        let mut m = Self::build(config, Map::new(), p, (task, labels), device)?;
        // from_config starts in training mode, like a freshly constructed torch module
        m.training = true;
        Ok(m)
    }

    /// Loads `dir/config.json` and `dir/model.safetensors` (or the shards of
    /// `model.safetensors.index.json`). Weights of the file the model does not use are named in
    /// a warning on stderr, as transformers warns (see [`check_weights`] for the list itself).
    pub fn load(dir: &Path, device: &Device, dtype: DType, task: Task) -> Result<Self> {
        Self::load_labels(dir, device, dtype, task, None)
    }

    /// `load`, with the task head's labels replacing those of `config.json` when given
    /// (transformers' `from_pretrained(dir, num_labels=4)`). Head weights the checkpoint lacks
    /// are initialised and named in a warning on stderr, as transformers warns.
    pub fn load_labels(
        dir: &Path,
        device: &Device,
        dtype: DType,
        task: Task,
        labels: Option<LabelConfig>,
    ) -> Result<Self> {
        let (model, report) = Self::load_reported_labels(dir, device, dtype, task, labels)?;
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
    ) -> Result<(Self, LoadReport)> {
        Self::load_reported_labels(dir, device, dtype, task, None)
    }

    fn load_reported_labels(
        dir: &Path,
        device: &Device,
        dtype: DType,
        task: Task,
        labels: Option<LabelConfig>,
    ) -> Result<(Self, LoadReport)> {
        let cfg_path = dir.join("config.json");
        let extra = read_config_object(&cfg_path)?;
        let config = ModelConfig::from_map(&extra, &cfg_path)?;
        check_task(&config, task)?;
        let labels = match labels {
            Some(l) => {
                l.validate(&cfg_path)?;
                l
            }
            None => LabelConfig::from_config_map(&extra, &cfg_path)?,
        };
        let (tensors, skipped, path) = read_weights(dir)?;
        let p = Params::loaded(tensors, skipped, &path, device, dtype);
        let mut model = Self::build_reported(config, extra, p, (task, labels), device)?;
        let gen_path = dir.join("generation_config.json");
        if gen_path.is_file() {
            model.0.generation = Some(io::read_json(&gen_path)?);
        }
        Ok(model)
    }

    pub fn architecture(&self) -> &'static str {
        match (&self.config, self.task) {
            (ModelConfig::Gpt2(_), Task::Base) => "GPT2Model",
            (ModelConfig::Gpt2(_), Task::SequenceClassification) => "GPT2ForSequenceClassification",
            (ModelConfig::Gpt2(_), _) => "GPT2LMHeadModel",
            (ModelConfig::Bert(_), Task::Base) => "BertModel",
            (ModelConfig::Bert(_), Task::SequenceClassification) => "BertForSequenceClassification",
            (ModelConfig::Bert(_), Task::QuestionAnswering) => "BertForQuestionAnswering",
            (ModelConfig::Bert(_), _) => "BertForMaskedLM",
            (ModelConfig::Roberta(_), Task::Base) => "RobertaModel",
            (ModelConfig::Roberta(_), Task::SequenceClassification) => {
                "RobertaForSequenceClassification"
            }
            (ModelConfig::Roberta(_), Task::QuestionAnswering) => "RobertaForQuestionAnswering",
            (ModelConfig::Roberta(_), _) => "RobertaForMaskedLM",
        }
    }

    /// Writes `config.json` and `model.safetensors`, each through a temporary file and a rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        io::create_dir_all(dir)?;
        let tensors: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let metadata = [("format".to_string(), "pt".to_string())].into();
        io::write_safetensors(&dir.join("model.safetensors"), &tensors, metadata)?;
        if let Some(g) = &self.generation {
            io::write_json(&dir.join("generation_config.json"), g)?;
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

    /// The generation settings: `generation_config.json` when loaded with one, else the full
    /// `config.json` (its generation keys: `bos_token_id`, `eos_token_id`, ...).
    pub fn generation_config_json(&self) -> Value {
        if let Some(g) = &self.generation {
            return g.clone();
        }
        let mut v = Value::Object(self.extra.clone());
        if let (Some(o), Value::Object(c)) = (v.as_object_mut(), self.config.to_value()) {
            o.extend(c);
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
        }
    }

    fn run_core(&self, args: &ForwardArgs, cache: Option<&mut KvCache>) -> Result<CoreOutput> {
        let input = CoreInput {
            input_ids: &args.input_ids,
            attention_mask: args.attention_mask.as_ref(),
            token_type_ids: args.token_type_ids.as_ref(),
            position_ids: args.position_ids.as_ref(),
            output_attentions: args.output_attentions,
            output_hidden_states: args.output_hidden_states,
        };
        self.core.forward(&input, cache, &self.ctx())
    }

    pub fn forward_lm(
        &self,
        args: &ForwardArgs,
        cache: Option<&mut KvCache>,
    ) -> Result<ModelOutput> {
        let out = self.run_core(args, cache)?;
        let h = &out.last_hidden_state;
        let (b, t, _) = h.dims3()?;
        let logits = self.lm_head(h)?;
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
        Ok(ModelOutput {
            logits,
            loss,
            attentions: out.attentions,
            hidden_states: out.hidden_states,
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
        let h = self.run_core(args, None)?.last_hidden_state;
        let (b, t, _) = h.dims3()?;
        let labels = self.lm_labels(labels, h.device(), (b, t))?;
        lm_loss(&h, &labels, |x| self.lm_head(x))
    }

    /// Logits `[..., vocab]` of hidden states `[..., hidden]` through the language-model head,
    /// straight from the fused linear kernel: no reshape, whose backward would copy.
    fn lm_head(&self, h: &Tensor) -> Result<Tensor> {
        let word = &self.core.embeddings.word;
        Ok(match &self.head {
            Head::TiedLm { bias } => kernels::linear(h, word, bias.as_ref(), false)?,
            Head::MaskedLm {
                dense,
                ln,
                act,
                bias,
            } => {
                let x = ln.forward(&act.forward(&dense.forward(h)?)?)?;
                kernels::linear(&x, word, Some(bias), false)?
            }
            _ => {
                return Err(Error::InvalidArgument(
                    "this model has no language-model head; use AutoModelForCausalLM or AutoModelForMaskedLM".into(),
                ));
            }
        })
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
            return Err(Error::InvalidArgument(format!(
                "labels have shape {:?}, expected [{b}, {t}] like input_ids",
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
        let out = self.run_core(args, None)?;
        let logits = self
            .head
            .classify(&out.last_hidden_state, &args.input_ids, &self.ctx())?;
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
        let out = self.run_core(args, None)?;
        let (start_logits, end_logits) = self.head.answer_span(&out.last_hidden_state)?;
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
        let out = self.run_core(args, None)?;
        let pooler_output = match &self.head {
            Head::Base { pooler: Some(p) } => {
                let first = out.last_hidden_state.narrow(1, 0, 1)?.squeeze(1)?;
                Some(p.forward(&first)?.tanh()?)
            }
            _ => None,
        };
        Ok(BaseModelOutput {
            last_hidden_state: out.last_hidden_state,
            pooler_output,
            attentions: out.attentions,
            hidden_states: out.hidden_states,
        })
    }
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
    Ok(Model::load_reported(dir.as_ref(), &Device::Cpu, DType::F32, task)?.1)
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
