//! Turning examples (lists of token ids) into padded batches with labels: causal LM (labels =
//! inputs, padding ignored) and masked LM (`DataCollatorForLanguageModeling`, 80/10/10).
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::models::ForwardArgs;
use crate::{Error, Result};

/// The label value the loss ignores (PyTorch's `ignore_index`).
pub use crate::kernels::IGNORE_INDEX;

/// One example: token ids, and optionally labels of the same length (else derived).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Example {
    pub input_ids: Vec<u32>,
    pub labels: Option<Vec<i64>>,
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
}

impl Batch {
    /// The model call for this batch: ids, attention mask and labels (all on the batch's device).
    pub fn forward_args(&self) -> ForwardArgs {
        ForwardArgs::new(&self.input_ids)
            .attention_mask(&self.attention_mask)
            .labels(&self.labels)
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
        if examples.is_empty() {
            return Err(Error::InvalidArgument(
                "cannot collate an empty batch".into(),
            ));
        }
        let b = examples.len();
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
