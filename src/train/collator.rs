//! Turning examples (lists of token ids) into padded batches with labels: causal LM (labels =
//! inputs, padding ignored), masked LM (`DataCollatorForLanguageModeling`, 80/10/10), and
//! task examples with one label each (`DataCollatorWithPadding`: sequence classification,
//! question answering), and sources with targets (`DataCollatorForSeq2Seq`).
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::models::ForwardArgs;
use crate::{Error, Result};

/// The label value the loss ignores (PyTorch's `ignore_index`).
pub use crate::kernels::IGNORE_INDEX;

/// One example: token ids, and optionally labels of the same length (else derived) for a
/// language model, or one [`TaskLabel`] for a task model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Example {
    pub input_ids: Vec<u32>,
    /// Language modelling: one label per token (-100: no loss there).
    pub labels: Option<Vec<i64>>,
    /// BERT's segment ids (question 0, context 1), the length of `input_ids`.
    pub token_type_ids: Option<Vec<u32>>,
    /// A task model's target: a class, floats, or an answer span.
    pub label: Option<TaskLabel>,
}

impl Example {
    /// A sequence-classification example: token ids and a class id.
    pub fn classification(input_ids: Vec<u32>, class: i64) -> Self {
        Self {
            input_ids,
            label: Some(TaskLabel::Class(class)),
            ..Self::default()
        }
    }
}

/// The target of one task example (what `DataCollatorWithPadding` turns into `labels`, or
/// `start_positions` / `end_positions`).
#[derive(Clone, Debug, PartialEq)]
pub enum TaskLabel {
    /// A class id (single-label classification).
    Class(i64),
    /// One float (regression) or one per label (multi-label classification, or regression with
    /// several outputs).
    Floats(Vec<f32>),
    /// Extractive QA: the token indices where the answer starts and ends.
    Span { start: i64, end: i64 },
}

/// A model-ready batch. `input_ids` are `u32 [batch, seq]`, `attention_mask` `u32 [batch, seq]`
/// (1 = real token), `labels` `i64 [batch, seq]` with -100 where no loss is taken.
#[derive(Clone, Debug)]
pub struct Batch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub labels: Tensor,
    /// Tokens that carry a loss: what the mean loss divides by, and what gradient accumulation
    /// weights micro-batches by (Hugging Face's `num_items_in_batch`).
    pub num_label_tokens: usize,
    /// Real (non-padding) input tokens, for tokens/s.
    pub num_input_tokens: usize,
    /// A seed for this batch's dropout masks, derived from the run's seed and the batch's
    /// position in the run, so that a resumed run draws the same masks.
    pub dropout_seed: u64,
    /// Segment ids, when the examples had them.
    pub token_type_ids: Option<Tensor>,
    /// Question answering: `labels` is `[batch, 2]` (start, end) and the model gets these
    /// two columns as `start_positions` / `end_positions`.
    pub answer_spans: bool,
    /// Whether the examples had labels; task examples without any (to predict) give a batch
    /// whose `labels` are zeros that are not passed to the model.
    pub labelled: bool,
}

impl Batch {
    /// The model call for this batch: ids, attention mask, segment ids and labels (or answer
    /// positions), all on the batch's device.
    pub fn forward_args(&self) -> ForwardArgs {
        let mut args = ForwardArgs::new(&self.input_ids).attention_mask(&self.attention_mask);
        if let Some(t) = &self.token_type_ids {
            args = args.token_type_ids(t);
        }
        if !self.labelled {
            return args;
        }
        if self.answer_spans {
            // narrow of a [b, 2] tensor: cannot fail
            if let (Ok(s), Ok(e)) = (self.labels.narrow(1, 0, 1), self.labels.narrow(1, 1, 1)) {
                return args.start_positions(&s).end_positions(&e);
            }
        }
        args.labels(&self.labels)
    }
}

/// Hugging Face's `DataCollatorWithPadding` for task examples (one [`TaskLabel`] each): pads
/// `input_ids` with `pad_token_id` (and `token_type_ids` with 0) to the longest example, masks
/// the padding, and stacks the labels: class ids as i64 `[batch]`, floats as f32 `[batch]`
/// (one each) or `[batch, n]`, answer spans as i64 `[batch, 2]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataCollatorWithPadding {
    pub pad_token_id: u32,
    /// Pad on the left (GPT-2 classifiers find the last real token either way).
    pub left_padding: bool,
    pub seed: u64,
}

impl DataCollatorWithPadding {
    pub fn new(pad_token_id: u32) -> Self {
        Self {
            pad_token_id,
            left_padding: false,
            seed: 42,
        }
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Pads `examples` and stacks their labels. `stream` seeds the batch's dropout.
    pub fn collate(&self, examples: &[Example], stream: u64, device: &Device) -> Result<Batch> {
        let (b, s) = batch_shape(examples)?;
        let mut ids = vec![self.pad_token_id; b * s];
        let mut mask = vec![0u32; b * s];
        let with_types = examples.iter().any(|e| e.token_type_ids.is_some());
        let mut types = vec![0u32; b * s];
        let mut n_inputs = 0;
        for (r, e) in examples.iter().enumerate() {
            let n = e.input_ids.len();
            let off = if self.left_padding { s - n } else { 0 };
            n_inputs += n;
            ids[r * s + off..r * s + off + n].copy_from_slice(&e.input_ids);
            mask[r * s + off..r * s + off + n].fill(1);
            if let Some(t) = &e.token_type_ids {
                if t.len() != n {
                    return Err(Error::InvalidArgument(format!(
                        "example {r} has {} token_type_ids for {n} input_ids; they must be the same length",
                        t.len()
                    )));
                }
                types[r * s + off..r * s + off + n].copy_from_slice(t);
            }
        }
        let batch = |labels: Tensor, answer_spans: bool, labelled: bool| -> Result<Batch> {
            Ok(Batch {
                input_ids: Tensor::from_vec(ids.clone(), (b, s), device)?,
                attention_mask: Tensor::from_vec(mask.clone(), (b, s), device)?,
                labels,
                num_label_tokens: if labelled { b } else { 0 },
                num_input_tokens: n_inputs,
                dropout_seed: self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream,
                token_type_ids: if with_types {
                    Some(Tensor::from_vec(types.clone(), (b, s), device)?)
                } else {
                    None
                },
                answer_spans,
                labelled,
            })
        };
        if examples.iter().all(|e| e.label.is_none()) {
            // nothing to learn from: inputs only (Trainer::predict on unlabelled data)
            return batch(
                Tensor::zeros(b, candle_core::DType::I64, device)?,
                false,
                false,
            );
        }
        let labels: Vec<&TaskLabel> = examples
            .iter()
            .enumerate()
            .map(|(r, e)| {
                e.label.as_ref().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "example {r} has no label while others have one; DataCollatorWithPadding needs one per example (a `label` column, or `start_positions` / `end_positions` for QA) or none at all"
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let mixed = || {
            Error::InvalidArgument(
                "the batch mixes kinds of labels (class ids, floats, answer spans, or float lists of different lengths); give every example the same kind".into(),
            )
        };
        let (labels, answer_spans) = match labels[0] {
            TaskLabel::Class(_) => {
                let v = labels
                    .iter()
                    .map(|l| match l {
                        TaskLabel::Class(c) => Ok(*c),
                        _ => Err(mixed()),
                    })
                    .collect::<Result<Vec<i64>>>()?;
                (Tensor::from_vec(v, b, device)?, false)
            }
            TaskLabel::Floats(first) => {
                let k = first.len();
                let mut v = Vec::with_capacity(b * k);
                for l in &labels {
                    match l {
                        TaskLabel::Floats(f) if f.len() == k => v.extend_from_slice(f),
                        _ => return Err(mixed()),
                    }
                }
                let t = if k == 1 {
                    Tensor::from_vec(v, b, device)?
                } else {
                    Tensor::from_vec(v, (b, k), device)?
                };
                (t, false)
            }
            TaskLabel::Span { .. } => {
                let mut v = Vec::with_capacity(b * 2);
                for (r, l) in labels.iter().enumerate() {
                    match l {
                        TaskLabel::Span { start, end } => {
                            // left padding moves the tokens, and the answer with them
                            let off = if self.left_padding {
                                (s - examples[r].input_ids.len()) as i64
                            } else {
                                0
                            };
                            v.extend_from_slice(&[start + off, end + off]);
                        }
                        _ => return Err(mixed()),
                    }
                }
                (Tensor::from_vec(v, (b, 2), device)?, true)
            }
        };
        batch(labels, answer_spans, true)
    }
}

/// Hugging Face's `DataCollatorForSeq2Seq` for encoder–decoder examples (`input_ids`: the
/// source; `labels`: the target, any length): pads the sources with `pad_token_id` on the right
/// and masks the padding, and pads the labels with `label_pad_token_id` (-100, left out of the
/// loss). The model shifts the labels right behind its decoder start token to make the
/// decoder's inputs, as transformers' collator does with the model's
/// `prepare_decoder_input_ids_from_labels`.
///
/// ```
/// use massivetext::train::{DataCollatorForSeq2Seq, Example};
/// use candle_core::Device;
/// let ex = |src: Vec<u32>, tgt: Vec<i64>| Example { input_ids: src, labels: Some(tgt), ..Default::default() };
/// let batch = DataCollatorForSeq2Seq::new(9)
///     .collate(&[ex(vec![1, 2, 3], vec![4, 0]), ex(vec![5], vec![6, 7, 0])], 0, &Device::Cpu)?;
/// assert_eq!(batch.input_ids.to_vec2::<u32>()?, [[1, 2, 3], [5, 9, 9]]);
/// assert_eq!(batch.labels.to_vec2::<i64>()?, [[4, 0, -100], [6, 7, 0]]);
/// assert_eq!(batch.num_label_tokens, 5);
/// # Ok::<(), massivetext::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DataCollatorForSeq2Seq {
    pub pad_token_id: u32,
    /// What pads the labels (Hugging Face: -100).
    pub label_pad_token_id: i64,
    pub seed: u64,
}

impl DataCollatorForSeq2Seq {
    pub fn new(pad_token_id: u32) -> Self {
        Self {
            pad_token_id,
            label_pad_token_id: IGNORE_INDEX,
            seed: 42,
        }
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Pads `examples` (sources and labels, each to its longest). Examples without labels (to
    /// predict) give a batch whose labels are not passed to the model. `stream` seeds the
    /// batch's dropout.
    pub fn collate(&self, examples: &[Example], stream: u64, device: &Device) -> Result<Batch> {
        let (b, s) = batch_shape(examples)?;
        let mut ids = vec![self.pad_token_id; b * s];
        let mut mask = vec![0u32; b * s];
        let mut n_inputs = 0;
        for (r, e) in examples.iter().enumerate() {
            let n = e.input_ids.len();
            n_inputs += n;
            ids[r * s..r * s + n].copy_from_slice(&e.input_ids);
            mask[r * s..r * s + n].fill(1);
        }
        let labelled = examples.iter().any(|e| e.labels.is_some());
        let (labels, num_label_tokens) = if labelled {
            let rows: Vec<&Vec<i64>> = examples
                .iter()
                .enumerate()
                .map(|(r, e)| {
                    e.labels.as_ref().filter(|l| !l.is_empty()).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "example {r} has no labels (target tokens) while others have some; DataCollatorForSeq2Seq needs a target for every example, or none at all"
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            let t = rows.iter().map(|l| l.len()).max().unwrap_or(0);
            let mut v = vec![self.label_pad_token_id; b * t];
            for (r, l) in rows.iter().enumerate() {
                v[r * t..r * t + l.len()].copy_from_slice(l);
            }
            let n = v.iter().filter(|&&l| l != IGNORE_INDEX).count();
            (Tensor::from_vec(v, (b, t), device)?, n)
        } else {
            (Tensor::zeros((b, 1), candle_core::DType::I64, device)?, 0)
        };
        Ok(Batch {
            input_ids: Tensor::from_vec(ids, (b, s), device)?,
            attention_mask: Tensor::from_vec(mask, (b, s), device)?,
            labels,
            num_label_tokens,
            num_input_tokens: n_inputs,
            dropout_seed: self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream,
            token_type_ids: None,
            answer_spans: false,
            labelled,
        })
    }
}

/// The collator a Trainer batches with: language modelling, task examples, or sources and
/// targets of an encoder–decoder.
#[derive(Clone, Debug, PartialEq)]
pub enum Collator {
    LanguageModeling(DataCollatorForLanguageModeling),
    WithPadding(DataCollatorWithPadding),
    Seq2Seq(DataCollatorForSeq2Seq),
}

impl From<DataCollatorForSeq2Seq> for Collator {
    fn from(c: DataCollatorForSeq2Seq) -> Self {
        Self::Seq2Seq(c)
    }
}

impl From<DataCollatorForLanguageModeling> for Collator {
    fn from(c: DataCollatorForLanguageModeling) -> Self {
        Self::LanguageModeling(c)
    }
}

impl From<DataCollatorWithPadding> for Collator {
    fn from(c: DataCollatorWithPadding) -> Self {
        Self::WithPadding(c)
    }
}

impl Collator {
    pub fn collate(&self, examples: &[Example], stream: u64, device: &Device) -> Result<Batch> {
        match self {
            Self::LanguageModeling(c) => c.collate(examples, stream, device),
            Self::WithPadding(c) => c.collate(examples, stream, device),
            Self::Seq2Seq(c) => c.collate(examples, stream, device),
        }
    }
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::LanguageModeling(c) => c.validate(),
            Self::WithPadding(_) | Self::Seq2Seq(_) => Ok(()),
        }
    }
    pub fn seed(&self) -> u64 {
        match self {
            Self::LanguageModeling(c) => c.seed,
            Self::WithPadding(c) => c.seed,
            Self::Seq2Seq(c) => c.seed,
        }
    }
    pub fn with_seed(self, seed: u64) -> Self {
        match self {
            Self::LanguageModeling(c) => Self::LanguageModeling(c.with_seed(seed)),
            Self::WithPadding(c) => Self::WithPadding(c.with_seed(seed)),
            Self::Seq2Seq(c) => Self::Seq2Seq(c.with_seed(seed)),
        }
    }
}

/// How examples become batches (Hugging Face's `DataCollatorForLanguageModeling`; `mlm: false`
/// is the causal-LM collator).
#[derive(Clone, Debug, PartialEq)]
pub struct DataCollatorForLanguageModeling {
    /// Masked LM (true) or causal LM (false).
    pub mlm: bool,
    pub mlm_probability: f64,
    /// Fraction of chosen tokens replaced by the mask token (Hugging Face: 0.8).
    pub mask_replace_prob: f64,
    /// Fraction of chosen tokens replaced by a random token (Hugging Face: 0.1).
    pub random_replace_prob: f64,
    pub pad_token_id: u32,
    pub mask_token_id: Option<u32>,
    pub vocab_size: usize,
    /// Ids never chosen for masking (CLS, SEP, BOS, EOS, PAD...).
    pub special_token_ids: Vec<u32>,
    /// Whether causal-LM labels are shifted inside the model (Hugging Face: yes), so the first
    /// label of each row never carries a loss; this only changes `num_label_tokens`.
    pub shift_labels: bool,
    pub seed: u64,
}

impl DataCollatorForLanguageModeling {
    /// The causal-LM collator: labels = inputs, padded positions -100.
    pub fn causal(pad_token_id: u32) -> Self {
        DataCollatorForLanguageModeling {
            mlm: false,
            mlm_probability: 0.15,
            mask_replace_prob: 0.8,
            random_replace_prob: 0.1,
            pad_token_id,
            mask_token_id: None,
            vocab_size: 0,
            special_token_ids: Vec::new(),
            shift_labels: true,
            seed: 42,
        }
    }

    /// The MLM collator: 15% of the non-special tokens chosen; of those 80% become
    /// `mask_token_id`, 10% a random token, 10% stay.
    pub fn mlm(
        mask_token_id: u32,
        pad_token_id: u32,
        vocab_size: usize,
        special_token_ids: Vec<u32>,
    ) -> Self {
        DataCollatorForLanguageModeling {
            mlm: true,
            mask_token_id: Some(mask_token_id),
            vocab_size,
            special_token_ids,
            shift_labels: false,
            ..Self::causal(pad_token_id)
        }
    }

    pub fn with_mlm_probability(mut self, p: f64) -> Self {
        self.mlm_probability = p;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the settings, naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.mlm {
            if self.mask_token_id.is_none() {
                return Err(Error::InvalidArgument(
                    "DataCollatorForLanguageModeling: masked-LM training needs the mask token's id, and neither the model nor the data knows it; pass `.with_tokenizer(&tok)` to the Trainer (its [MASK] / <mask> token is used), or `.with_collator(DataCollatorForLanguageModeling::mlm(mask_token_id, pad_token_id, vocab_size, special_token_ids))`".into(),
                ));
            }
            if !(0.0..=1.0).contains(&self.mlm_probability) {
                return Err(Error::InvalidArgument(format!(
                    "DataCollatorForLanguageModeling.mlm_probability must be in [0, 1], got {}",
                    self.mlm_probability
                )));
            }
            if self.mask_replace_prob + self.random_replace_prob > 1.0 {
                return Err(Error::InvalidArgument(
                    "DataCollatorForLanguageModeling: mask_replace_prob + random_replace_prob must be <= 1".into(),
                ));
            }
            if self.vocab_size == 0 {
                return Err(Error::InvalidArgument(
                    "DataCollatorForLanguageModeling: mlm needs the vocab_size for random replacements".into(),
                ));
            }
        }
        Ok(())
    }

    /// Pads `examples` to the longest and builds a batch. `stream` picks the random stream for
    /// MLM masking, so that batch `k` of a seeded run is masked the same way every time (and
    /// after a resume).
    pub fn collate(&self, examples: &[Example], stream: u64, device: &Device) -> Result<Batch> {
        self.validate()?;
        let (b, s) = batch_shape(examples)?;
        let mut ids = vec![self.pad_token_id; b * s];
        let mut mask = vec![0u32; b * s];
        let mut labels = vec![IGNORE_INDEX; b * s];
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream);
        let mut n_inputs = 0;
        for (r, e) in examples.iter().enumerate() {
            if let Some(l) = &e.labels
                && l.len() != e.input_ids.len()
            {
                return Err(Error::InvalidArgument(format!(
                    "example {r} has {} labels for {} input_ids; they must be the same length",
                    l.len(),
                    e.input_ids.len()
                )));
            }
            n_inputs += e.input_ids.len();
            for (j, &t) in e.input_ids.iter().enumerate() {
                let k = r * s + j;
                ids[k] = t;
                mask[k] = 1;
                labels[k] = match &e.labels {
                    Some(l) => l[j],
                    None => t as i64,
                };
            }
        }
        if self.mlm {
            self.mask_tokens(&mut ids, &mut labels, &mask, &mut rng);
        }
        let num_label_tokens = if !self.mlm && self.shift_labels {
            (0..b)
                .map(|r| {
                    labels[r * s + 1..(r + 1) * s]
                        .iter()
                        .filter(|&&l| l != IGNORE_INDEX)
                        .count()
                })
                .sum()
        } else {
            labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
        };
        Ok(Batch {
            input_ids: Tensor::from_vec(ids, (b, s), device)?,
            attention_mask: Tensor::from_vec(mask, (b, s), device)?,
            labels: Tensor::from_vec(labels, (b, s), device)?,
            num_label_tokens,
            num_input_tokens: n_inputs,
            dropout_seed: self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream,
            token_type_ids: None,
            answer_spans: false,
            labelled: true,
        })
    }

    /// Hugging Face `torch_mask_tokens`: choose tokens with `mlm_probability` (never padding or
    /// special tokens), label only those, then 80% → mask, 10% → random, 10% → unchanged.
    fn mask_tokens(&self, ids: &mut [u32], labels: &mut [i64], mask: &[u32], rng: &mut ChaCha8Rng) {
        let mask_id = self.mask_token_id.unwrap_or(0);
        let random_given_not_masked = if self.mask_replace_prob >= 1.0 {
            0.0
        } else {
            self.random_replace_prob / (1.0 - self.mask_replace_prob)
        };
        for k in 0..ids.len() {
            let special = mask[k] == 0 || self.special_token_ids.contains(&ids[k]);
            let chosen = !special && rng.random::<f64>() < self.mlm_probability;
            if !chosen {
                labels[k] = IGNORE_INDEX;
                continue;
            }
            labels[k] = ids[k] as i64;
            if rng.random::<f64>() < self.mask_replace_prob {
                ids[k] = mask_id;
            } else if rng.random::<f64>() < random_given_not_masked {
                ids[k] = rng.random_range(0..self.vocab_size as u32);
            }
        }
    }
}

impl Default for DataCollatorForLanguageModeling {
    /// The causal-LM collator with pad id 0.
    fn default() -> Self {
        Self::causal(0)
    }
}

/// `(rows, longest row)` of a batch to pad; an error for an empty batch or all-empty rows.
fn batch_shape(examples: &[Example]) -> Result<(usize, usize)> {
    if examples.is_empty() {
        return Err(Error::InvalidArgument(
            "cannot collate an empty batch".into(),
        ));
    }
    let s = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(0);
    if s == 0 {
        return Err(Error::InvalidArgument(
            "every example in the batch is empty; filter out empty rows first".into(),
        ));
    }
    Ok((examples.len(), s))
}
