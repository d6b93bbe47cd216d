//! BERT: post-LN encoder layers, separate query/key/value, erf GELU, token-type embeddings, and
//! its heads — the MLM head (transform + LayerNorm + decoder tied to the word embeddings + bias),
//! the pooler (dense + tanh on `[CLS]`), `BertForSequenceClassification`'s classifier and the
//! QA span head. Names follow transformers' `BertForMaskedLM`
//! (`bert.encoder.layer.0.attention.self.query.weight`, `cls.predictions.transform.dense.weight`).
//! RoBERTa is this encoder under other names (see `roberta.rs`, which passes its [`Names`]).
use std::sync::Arc;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::args::ForwardArgs;
use super::family::{
    Body, Family, Network, divisible, in_vocab, known_activation, positive, probability,
};
use super::heads::{Task, answer_span};
use super::labels::LabelConfig;
use super::layers::{
    Attention, Collect, Ctx, Embeddings, KvCache, LayerNorm, Linear, Mlp, Packing, Positions, Qkv,
    build_mask, layer_norm, linear, mask_in, read_ids, run_layers,
};
use super::params::{Init, Params};
use crate::{Error, Result, kernels};

/// BERT and RoBERTa hyper-parameters, with Hugging Face's key names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: u32,
}

impl BertConfig {
    /// A small BERT for training from scratch: 4 layers, 4 heads, 256 wide, 512 positions.
    pub fn small(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 256,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            intermediate_size: 1024,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        }
    }
}

/// The BERT family.
pub(crate) struct Bert;

/// The keys a BERT or RoBERTa `config.json` must hold.
pub(crate) const REQUIRED_KEYS: &[&str] = &[
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
];

/// The checks BERT and RoBERTa share, each naming the field.
pub(crate) fn validate(c: &BertConfig) -> std::result::Result<(), String> {
    positive(&[
        ("vocab_size", c.vocab_size),
        ("hidden_size", c.hidden_size),
        ("num_attention_heads", c.num_attention_heads),
        ("intermediate_size", c.intermediate_size),
        ("max_position_embeddings", c.max_position_embeddings),
    ])?;
    divisible(
        ("hidden_size", c.hidden_size),
        ("num_attention_heads", c.num_attention_heads),
    )?;
    probability(&[
        ("hidden_dropout_prob", c.hidden_dropout_prob),
        (
            "attention_probs_dropout_prob",
            c.attention_probs_dropout_prob,
        ),
    ])?;
    known_activation("hidden_act", &c.hidden_act)?;
    in_vocab("pad_token_id", Some(c.pad_token_id), c.vocab_size)
}

/// The summary rows BERT and RoBERTa share.
pub(crate) fn summary_rows(c: &BertConfig, max_positions: usize) -> Vec<(String, String)> {
    vec![
        ("layers".into(), c.num_hidden_layers.to_string()),
        ("hidden_size".into(), c.hidden_size.to_string()),
        ("heads".into(), c.num_attention_heads.to_string()),
        ("vocab_size".into(), c.vocab_size.to_string()),
        ("max_positions".into(), max_positions.to_string()),
    ]
}

/// The size BERT and RoBERTa share: embeddings (words, positions, token types), the encoder
/// and the masked-LM head's transform.
pub(crate) fn size(c: &BertConfig, max_positions: usize) -> super::family::ModelSize {
    let e = c.hidden_size;
    let embeddings = ((c.vocab_size + max_positions + c.type_vocab_size) * e + 2 * e) as f64;
    let encoder =
        super::family::stack_parameters(c.num_hidden_layers, (e, e, c.intermediate_size), 2, 4);
    let head = (e * e + 3 * e + c.vocab_size) as f64;
    super::family::ModelSize {
        parameters: embeddings + encoder + head,
        layers: c.num_hidden_layers,
        hidden_size: e,
        heads: c.num_attention_heads,
        intermediate_size: c.intermediate_size,
    }
}

/// `Family` methods BERT and RoBERTa answer the same way.
macro_rules! bert_sizes {
    () => {
        fn dims(c: &BertConfig) -> (usize, usize, usize) {
            (c.num_hidden_layers, c.hidden_size, c.num_attention_heads)
        }
        fn vocab_size(c: &BertConfig) -> usize {
            c.vocab_size
        }
        fn set_vocab_size(c: &mut BertConfig, vocab_size: usize) {
            c.vocab_size = vocab_size;
        }
        fn initializer_range(c: &BertConfig) -> f64 {
            c.initializer_range
        }
        fn summary_rows(c: &BertConfig) -> Vec<(String, String)> {
            $crate::models::bert::summary_rows(c, Self::max_positions(c))
        }
        fn size(c: &BertConfig) -> $crate::models::family::ModelSize {
            $crate::models::bert::size(c, Self::max_positions(c))
        }
    };
}
pub(crate) use bert_sizes;

impl Family for Bert {
    type Config = BertConfig;
    const MODEL_TYPE: &'static str = "bert";
    const REQUIRED_KEYS: &'static [&'static str] = REQUIRED_KEYS;
    const TASKS: &'static [Task] = &[
        Task::MaskedLm,
        Task::Base,
        Task::SequenceClassification,
        Task::QuestionAnswering,
    ];

    fn defaults() -> BertConfig {
        BertConfig::small(0)
    }

    fn validate(c: &BertConfig) -> std::result::Result<(), String> {
        validate(c)
    }

    fn architecture(_: &BertConfig, task: Task) -> &'static str {
        match task {
            Task::Base => "BertModel",
            Task::SequenceClassification => "BertForSequenceClassification",
            Task::QuestionAnswering => "BertForQuestionAnswering",
            _ => "BertForMaskedLM",
        }
    }

    bert_sizes!();

    fn max_positions(c: &BertConfig) -> usize {
        c.max_position_embeddings
    }

    fn build(
        c: &BertConfig,
        p: &mut Params,
        task: Task,
        labels: &LabelConfig,
    ) -> Result<Arc<dyn Network>> {
        build_encoder(c, p, task, &BERT_NAMES, labels)
    }
}

/// The names and choices of a BERT-shaped family: its base-model prefix, how positions are
/// counted, its MLM head's pieces and which classification head it has.
pub(crate) struct Names {
    /// `bert.` or `roberta.`
    pub prefix: &'static str,
    /// RoBERTa's positions, counted after the padding id (else BERT's `0, 1, 2, ...`).
    pub positions_after_padding: bool,
    pub mlm_dense: &'static str,
    pub mlm_ln: &'static str,
    pub mlm_bias: &'static str,
    /// RoBERTa's `classifier.dense` / `classifier.out_proj` on `<s>` rather than BERT's pooler
    /// and `classifier`.
    pub roberta_classifier: bool,
}

const BERT_NAMES: Names = Names {
    prefix: "bert.",
    positions_after_padding: false,
    mlm_dense: "cls.predictions.transform.dense",
    mlm_ln: "cls.predictions.transform.LayerNorm",
    mlm_bias: "cls.predictions.bias",
    roberta_classifier: false,
};

/// `ln_1(x + attn(x))`, then `ln_2(x + mlp(x))`: BERT's post-LN layer.
#[derive(Clone)]
struct Layer {
    attn: Attention,
    ln_1: LayerNorm,
    mlp: Mlp,
    ln_2: LayerNorm,
    dropout: f64,
}

impl Layer {
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        want_probs: bool,
        ctx: &Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (a, probs) = self.attn.forward(x, mask, None, want_probs, ctx)?;
        Ok((self.finish(x, &a, ctx)?, probs))
    }

    /// [`forward`](Self::forward) over packed tokens `x [1, n, h]`.
    fn forward_packed(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        packing: &Packing,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let a = self.attn.forward_packed(x, mask, packing, ctx)?;
        self.finish(x, &a, ctx)
    }

    /// The residuals, LayerNorms and feed-forward block after attention's output `a`.
    fn finish(&self, x: &Tensor, a: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let x = self
            .ln_1
            .forward(&kernels::residual(x, &ctx.dropout(a, self.dropout)?)?)?;
        let m = self.mlp.forward(&x, ctx)?;
        self.ln_2
            .forward(&kernels::residual(&x, &ctx.dropout(&m, self.dropout)?)?)
    }
}

/// What sits on top of the encoder.
enum Head {
    /// dense → GELU → LayerNorm → decoder tied to the word embeddings + bias.
    MaskedLm {
        dense: Linear,
        ln: LayerNorm,
        act: Activation,
        bias: Tensor,
    },
    /// No head; the pooler (dense + tanh on the first token) when the checkpoint has one.
    Base { pooler: Option<Linear> },
    /// `BertForSequenceClassification`: pooler → dropout → `classifier`.
    BertClassifier {
        pooler: Linear,
        classifier: Linear,
        dropout: f64,
    },
    /// `RobertaClassificationHead`: `<s>` → dropout → `dense` → tanh → dropout → `out_proj`.
    RobertaClassifier {
        dense: Linear,
        out_proj: Linear,
        dropout: f64,
    },
    /// `qa_outputs`: a start and an end logit per token.
    Qa { qa_outputs: Linear },
}

struct Encoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    head: Head,
}

/// A task head's dense layer: loaded, or initialised when the checkpoint lacks it.
fn head_linear(p: &mut Params, name: &str, d_in: usize, d_out: usize, std: f64) -> Result<Linear> {
    let weight = p.get_or_init(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std))?;
    let bias = p.get_or_init(&format!("{name}.bias"), &[d_out], Init::Zeros)?;
    Linear::named(p, name, weight, Some(bias), false)
}

/// The encoder and head of a BERT-shaped family, under `names`.
pub(crate) fn build_encoder(
    c: &BertConfig,
    p: &mut Params,
    task: Task,
    names: &Names,
    labels: &LabelConfig,
) -> Result<Arc<dyn Network>> {
    let prefix = names.prefix;
    p.set_prefix(prefix);
    let pre = if task == Task::Base { "" } else { prefix };
    let (h, std, eps) = (c.hidden_size, c.initializer_range, c.layer_norm_eps);
    let act = Activation::from_hf(&c.hidden_act).unwrap_or(Activation::GeluErf);
    let pad = c.pad_token_id as usize;
    let e = format!("{pre}embeddings");
    let (positions, pos_init) = if names.positions_after_padding {
        (
            Positions::PaddingOffset {
                padding_idx: c.pad_token_id,
            },
            Init::NormalZeroRow(std, pad),
        )
    } else {
        (Positions::Absolute, Init::Normal(std))
    };
    let embeddings = Embeddings {
        word: p.get(
            &format!("{e}.word_embeddings.weight"),
            &[c.vocab_size, h],
            Init::NormalZeroRow(std, pad),
        )?,
        position: p.get(
            &format!("{e}.position_embeddings.weight"),
            &[c.max_position_embeddings, h],
            pos_init,
        )?,
        token_type: if c.type_vocab_size > 0 {
            Some(p.get(
                &format!("{e}.token_type_embeddings.weight"),
                &[c.type_vocab_size, h],
                Init::Normal(std),
            )?)
        } else {
            None
        },
        ln: Some(layer_norm(p, &format!("{e}.LayerNorm"), h, eps)?),
        positions,
        dropout: c.hidden_dropout_prob,
    };
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for i in 0..c.num_hidden_layers {
        let n = format!("{pre}encoder.layer.{i}");
        let a = format!("{n}.attention");
        layers.push(Layer {
            attn: Attention {
                qkv: Qkv::Split {
                    q: linear(p, &format!("{a}.self.query"), h, h, std)?,
                    k: linear(p, &format!("{a}.self.key"), h, h, std)?,
                    v: linear(p, &format!("{a}.self.value"), h, h, std)?,
                },
                out: linear(p, &format!("{a}.output.dense"), h, h, std)?,
                n_head: c.num_attention_heads,
                attn_dropout: c.attention_probs_dropout_prob,
            },
            ln_1: layer_norm(p, &format!("{a}.output.LayerNorm"), h, eps)?,
            mlp: Mlp {
                fc: linear(
                    p,
                    &format!("{n}.intermediate.dense"),
                    h,
                    c.intermediate_size,
                    std,
                )?,
                proj: linear(p, &format!("{n}.output.dense"), c.intermediate_size, h, std)?,
                act,
                act_dropout: 0.0,
            },
            ln_2: layer_norm(p, &format!("{n}.output.LayerNorm"), h, eps)?,
            dropout: c.hidden_dropout_prob,
        });
    }
    let head = match task {
        Task::MaskedLm => Head::MaskedLm {
            dense: linear(p, names.mlm_dense, h, h, std)?,
            ln: layer_norm(p, names.mlm_ln, h, eps)?,
            act,
            bias: p.get(names.mlm_bias, &[c.vocab_size], Init::Zeros)?,
        },
        Task::SequenceClassification => {
            let n = labels.num_labels();
            let dropout = labels.classifier_dropout.unwrap_or(c.hidden_dropout_prob);
            if names.roberta_classifier {
                Head::RobertaClassifier {
                    dense: head_linear(p, "classifier.dense", h, h, std)?,
                    out_proj: head_linear(p, "classifier.out_proj", h, n, std)?,
                    dropout,
                }
            } else {
                Head::BertClassifier {
                    pooler: head_linear(p, &format!("{prefix}pooler.dense"), h, h, std)?,
                    classifier: head_linear(p, "classifier", h, n, std)?,
                    dropout,
                }
            }
        }
        // transformers' QA models have no pooler; qa_outputs gives 2 logits per token
        Task::QuestionAnswering => Head::Qa {
            qa_outputs: head_linear(p, "qa_outputs", h, 2, std)?,
        },
        _ => {
            // the pooler exists in BertModel checkpoints, not in BertForMaskedLM ones
            let pooler = if p.contains("pooler.dense.weight") {
                Some(linear(p, "pooler.dense", h, h, std)?)
            } else {
                None
            };
            Head::Base { pooler }
        }
    };
    Ok(Arc::new(Encoder {
        embeddings,
        layers,
        head,
    }))
}

fn first_token(h: &Tensor) -> Result<Tensor> {
    Ok(h.narrow(1, 0, 1)?.squeeze(1)?)
}

impl Encoder {
    /// The packing of this call's padding when the caller reads the first tokens alone (a
    /// classifier) and the batch is right-padded; `None` runs every position.
    fn packing(&self, args: &ForwardArgs, ctx: &Ctx) -> Result<Option<Packing>> {
        let classifier = matches!(
            self.head,
            Head::BertClassifier { .. } | Head::RobertaClassifier { .. }
        );
        match &args.attention_mask {
            Some(m) if classifier && ctx.first_token_only => Packing::of_mask(m),
            _ => Ok(None),
        }
    }
}

impl Network for Encoder {
    fn body(&self, args: &ForwardArgs, _cache: Option<&mut KvCache>, ctx: &Ctx) -> Result<Body> {
        let dev = self.embeddings.word.device();
        let (ids, (b, t)) = read_ids(&args.input_ids, dev)?;
        let x = self.embeddings.forward(
            &ids,
            args.token_type_ids.as_ref(),
            args.position_ids.as_ref(),
            0,
            ctx,
        )?;
        let mask = build_mask(args.attention_mask.as_ref(), false, (b, t), 0, dev)?
            .map(|m| mask_in(&m, x.dtype()))
            .transpose()?;
        if let Some(packing) = self.packing(args, ctx)? {
            let mut x = packing.pack(&x)?;
            for layer in &self.layers {
                x = layer.forward_packed(&x, mask.as_ref(), &packing, ctx)?;
            }
            return Ok(Body::new(packing.first_tokens(&x)?, None, None));
        }
        let collect = Collect {
            hidden_states: args.output_hidden_states,
            attentions: args.output_attentions,
        };
        let (x, states) = run_layers(x, self.layers.len(), None, collect, |i, x, _, want| {
            self.layers[i].forward(x, mask.as_ref(), want, ctx)
        })?;
        let states = states.finish(&x);
        Ok(Body::new(x, states.hidden_states, states.attentions))
    }

    fn lm_logits(&self, h: &Tensor) -> Result<Tensor> {
        let Head::MaskedLm {
            dense,
            ln,
            act,
            bias,
        } = &self.head
        else {
            return Err(Error::InvalidArgument(
                "this model has no language-model head; use AutoModelForMaskedLM".into(),
            ));
        };
        let x = ln.forward(&act.forward(&dense.forward(h)?)?)?;
        Ok(kernels::linear(
            &x,
            &self.embeddings.word,
            Some(bias),
            false,
        )?)
    }

    fn classify(&self, h: &Tensor, _input_ids: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        match &self.head {
            Head::BertClassifier {
                pooler,
                classifier,
                dropout,
            } => {
                let pooled = pooler.forward(&first_token(h)?)?.tanh()?;
                classifier.forward(&ctx.dropout(&pooled, *dropout)?)
            }
            Head::RobertaClassifier {
                dense,
                out_proj,
                dropout,
            } => {
                let x = ctx.dropout(&first_token(h)?, *dropout)?;
                let x = dense.forward(&x)?.tanh()?;
                out_proj.forward(&ctx.dropout(&x, *dropout)?)
            }
            _ => Err(Error::InvalidArgument(
                "this model has no sequence-classification head; load it with AutoModelForSequenceClassification".into(),
            )),
        }
    }

    fn answer_span(&self, h: &Tensor) -> Result<(Tensor, Tensor)> {
        match &self.head {
            Head::Qa { qa_outputs } => answer_span(qa_outputs, h),
            _ => Err(Error::InvalidArgument(
                "this model has no question-answering head; load it with AutoModelForQuestionAnswering".into(),
            )),
        }
    }

    fn pooled(&self, h: &Tensor) -> Result<Option<Tensor>> {
        match &self.head {
            Head::Base { pooler: Some(p) } => Ok(Some(p.forward(&first_token(h)?)?.tanh()?)),
            _ => Ok(None),
        }
    }

    fn vocab_tensors(&self) -> Vec<Tensor> {
        let mut v = vec![self.embeddings.word.clone()];
        if let Head::MaskedLm { bias, .. } = &self.head {
            v.push(bias.clone());
        }
        v
    }

    fn dtype(&self) -> DType {
        self.embeddings.word.dtype()
    }
}
