//! What a Trainer reads: rows of token ids from a [`Dataset`], or random fixed-length windows
//! over one long token stream (token shards, a tokenized corpus), as nanoGPT samples them.
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::collator::{Example, TaskLabel};
use crate::data::Dataset;
use crate::{Error, Result};

/// A long token stream cut into `block_size` windows: training draws windows at random
/// offsets; evaluation walks consecutive non-overlapping windows.
#[derive(Clone, Debug)]
pub struct TokenWindows {
    tokens: Arc<Vec<u32>>,
    pub block_size: usize,
    /// Evaluate on at most this many windows (evenly spread); `None` = all.
    pub max_eval_windows: Option<usize>,
}

impl TokenWindows {
    pub fn new(tokens: impl Into<Arc<Vec<u32>>>, block_size: usize) -> Result<Self> {
        let tokens = tokens.into();
        if block_size == 0 {
            return Err(Error::InvalidArgument(
                "TokenWindows: block_size must be at least 1".into(),
            ));
        }
        if tokens.len() < block_size {
            return Err(Error::InvalidArgument(format!(
                "TokenWindows: the stream has {} tokens, fewer than one block of {block_size}; use a smaller block_size or more text",
                tokens.len()
            )));
        }
        Ok(TokenWindows {
            tokens,
            block_size,
            max_eval_windows: None,
        })
    }

    /// Windows over token shards built by the tokenizer (`TokenShards`). The ids are read
    /// into memory once (4 bytes a token), so sampling costs no I/O.
    pub fn from_shards(shards: &crate::tokenizer::TokenShards, block_size: usize) -> Result<Self> {
        let n = usize::try_from(shards.num_tokens()).map_err(|_| {
            Error::InvalidArgument(
                "the shards hold more tokens than this machine can address".into(),
            )
        })?;
        let mut buf = vec![0u32; n];
        shards.read_tokens(0, &mut buf)?;
        Self::new(buf, block_size)
    }

    pub fn with_max_eval_windows(mut self, n: usize) -> Self {
        self.max_eval_windows = Some(n.max(1));
        self
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Non-overlapping windows: what one epoch counts.
    pub fn num_windows(&self) -> usize {
        self.tokens.len() / self.block_size
    }

    fn window(&self, start: usize) -> Example {
        Example {
            input_ids: self.tokens[start..start + self.block_size].to_vec(),
            ..Example::default()
        }
    }
}

/// Training or evaluation data.
#[derive(Clone, Debug)]
pub enum TrainData {
    /// One example per dataset row (an `input_ids` column, optionally `labels`).
    Examples(Arc<Vec<Example>>),
    /// Windows over a token stream.
    Windows(TokenWindows),
}

impl From<TokenWindows> for TrainData {
    fn from(w: TokenWindows) -> Self {
        TrainData::Windows(w)
    }
}

impl From<Vec<Example>> for TrainData {
    fn from(e: Vec<Example>) -> Self {
        TrainData::Examples(Arc::new(e))
    }
}

impl TryFrom<Dataset> for TrainData {
    type Error = Error;
    fn try_from(ds: Dataset) -> Result<Self> {
        TrainData::from_dataset(&ds)
    }
}

impl TryFrom<&Dataset> for TrainData {
    type Error = Error;
    fn try_from(ds: &Dataset) -> Result<Self> {
        TrainData::from_dataset(ds)
    }
}

fn int_list(v: &Value, col: &str, row: usize) -> Result<Vec<i64>> {
    let bad = || {
        Error::InvalidArgument(format!(
            "row {row} of column `{col}` is not a list of integers ({}); tokenize the text first",
            crate::display::truncate(&v.to_string(), 60)
        ))
    };
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|x| x.as_i64().ok_or_else(bad))
        .collect()
}

/// One task label from a `label` / `labels` cell: an integer is a class id, a float a
/// regression target, a list of numbers a multi-label (or multi-output) target. A string of
/// digits (a CSV or TSV column read as text) is a class id too, as `datasets` would have typed
/// that column as integers.
fn task_label(v: &Value, col: &str, row: usize) -> Result<TaskLabel> {
    let bad = || {
        Error::InvalidArgument(format!(
            "row {row} of column `{col}` is {}, not a label: give a class id (0, 1, ...), a float, or a list of floats; map label names to ids first (label2id)",
            crate::display::truncate(&v.to_string(), 60)
        ))
    };
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            Ok(TaskLabel::Class(n.as_i64().ok_or_else(bad)?))
        }
        Value::Number(n) => Ok(TaskLabel::Floats(vec![n.as_f64().ok_or_else(bad)? as f32])),
        Value::Bool(b) => Ok(TaskLabel::Class(*b as i64)),
        Value::String(t) => t
            .trim()
            .parse::<i64>()
            .map(TaskLabel::Class)
            .map_err(|_| bad()),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(bad))
            .collect::<Result<Vec<f32>>>()
            .map(TaskLabel::Floats),
        _ => Err(bad()),
    }
}

fn position(v: &Value, col: &str, row: usize) -> Result<i64> {
    v.as_i64().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "row {row} of column `{col}` is {}, not a token index",
            crate::display::truncate(&v.to_string(), 60)
        ))
    })
}

impl TrainData {
    /// Reads the `input_ids` column (lists of token ids) and, when present, `token_type_ids`
    /// and the targets: `labels` holding lists the length of the ids (language modelling);
    /// a `label` (or `labels`) column of class ids, floats or float lists (sequence
    /// classification, as `DataCollatorWithPadding` reads it); or `start_positions` and
    /// `end_positions` (question answering).
    pub fn from_dataset(ds: &Dataset) -> Result<Self> {
        let ids = ds.column("input_ids")?;
        let types = ds.column("token_type_ids").ok();
        let lm_labels = ds
            .column("labels")
            .ok()
            .filter(|l| l.first().is_some_and(|v| v.is_array()) && ds.column("label").is_err());
        let class_labels = ds.column("label").ok().or_else(|| {
            ds.column("labels")
                .ok()
                .filter(|l| l.first().is_some_and(|v| !v.is_array()))
        });
        let class_col = if ds.column("label").is_ok() {
            "label"
        } else {
            "labels"
        };
        let spans = match (ds.column("start_positions"), ds.column("end_positions")) {
            (Ok(s), Ok(e)) => Some((s, e)),
            (Ok(_), Err(_)) | (Err(_), Ok(_)) => {
                return Err(Error::ConflictingArguments(
                    "the dataset has only one of `start_positions` / `end_positions`; question answering needs both".into(),
                ));
            }
            _ => None,
        };
        let labels = lm_labels;
        let mut out = Vec::with_capacity(ids.len());
        for (i, v) in ids.iter().enumerate() {
            let input_ids = int_list(v, "input_ids", i)?
                .into_iter()
                .map(|t| {
                    u32::try_from(t).map_err(|_| {
                        Error::InvalidArgument(format!(
                            "row {i} of column `input_ids` holds {t}, not a token id (0..2^32)"
                        ))
                    })
                })
                .collect::<Result<Vec<u32>>>()?;
            let labels = match labels {
                Some(l) => Some(int_list(&l[i], "labels", i)?),
                None => None,
            };
            let token_type_ids = match types {
                Some(t) => Some(
                    int_list(&t[i], "token_type_ids", i)?
                        .into_iter()
                        .map(|x| x.max(0) as u32)
                        .collect(),
                ),
                None => None,
            };
            let label = match (&spans, class_labels) {
                (Some((s, e)), _) => Some(TaskLabel::Span {
                    start: position(&s[i], "start_positions", i)?,
                    end: position(&e[i], "end_positions", i)?,
                }),
                (None, Some(c)) => Some(task_label(&c[i], class_col, i)?),
                (None, None) => None,
            };
            out.push(Example {
                input_ids,
                labels,
                token_type_ids,
                label,
            });
        }
        if out.is_empty() {
            return Err(Error::InvalidArgument(
                "the dataset has no rows to train or evaluate on".into(),
            ));
        }
        Ok(TrainData::Examples(Arc::new(out)))
    }

    /// Examples (rows or non-overlapping windows) in one epoch.
    pub fn len(&self) -> usize {
        match self {
            TrainData::Examples(e) => e.len(),
            TrainData::Windows(w) => w.num_windows(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each example's length (its `input_ids`), for `group_by_length`; windows all have the
    /// block size.
    pub fn lengths(&self) -> Vec<usize> {
        match self {
            TrainData::Examples(e) => e.iter().map(|x| x.input_ids.len()).collect(),
            TrainData::Windows(w) => vec![w.block_size; w.num_windows()],
        }
    }

    /// The largest token id, to check against the model's vocabulary.
    pub fn max_token_id(&self) -> Option<u32> {
        match self {
            TrainData::Examples(e) => e.iter().flat_map(|x| x.input_ids.iter().copied()).max(),
            TrainData::Windows(w) => w.tokens.iter().copied().max(),
        }
    }

    /// The examples of training micro-batch `micro` of epoch `epoch` (`batch_size` each; the
    /// last of an epoch may be shorter). Rows are shuffled per epoch with `seed`; windows start
    /// at random offsets. Deterministic in (seed, epoch, micro), which makes resuming exact.
    pub fn train_batch(
        &self,
        seed: u64,
        epoch: usize,
        micro: usize,
        batch_size: usize,
        order: &mut EpochOrder,
    ) -> Vec<Example> {
        match self {
            TrainData::Examples(e) => {
                let perm = order.get(seed, epoch, e.len());
                let lo = (micro * batch_size).min(perm.len());
                let hi = (lo + batch_size).min(perm.len());
                perm[lo..hi].iter().map(|&i| e[i].clone()).collect()
            }
            TrainData::Windows(w) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(((epoch as u64) << 40) | micro as u64);
                let hi = w.tokens.len() - w.block_size;
                (0..batch_size)
                    .map(|_| w.window(rng.random_range(0..=hi)))
                    .collect()
            }
        }
    }

    /// Examples each of `world` ranks sees in one epoch: PyTorch's `DistributedSampler`
    /// (`drop_last=False`), `ceil(len / world)`; the epoch's order is padded to
    /// `world` times that by wrapping around to its start, so every rank takes as many.
    pub fn per_rank_len(&self, world: usize) -> usize {
        self.len().div_ceil(world.max(1))
    }

    /// The examples of optimiser step `update` of epoch `epoch`, over all `world` ranks, in
    /// the epoch's order: rank `r` takes every `world`-th from `r` (`DistributedSampler`'s
    /// `indices[r::world]`), in micro-batches of its own. Each rank holds `per_rank` of them
    /// (its micro-batch size times the accumulation steps; fewer at the end of an epoch).
    ///
    /// Rows follow the seeded epoch order, padded past its end by wrapping around (so with a
    /// row count that `world` does not divide, the last step repeats the epoch's first rows, as
    /// `DistributedSampler` does). Windows are drawn at random offsets from one stream per
    /// step, `(seed, epoch, update)`. Either way the set of examples of a step depends only on
    /// the global batch (`per_rank * world`), not on how it is split across ranks and
    /// micro-batches: N ranks with batch `b` train on what one process with batch `N b` does.
    pub fn step_examples(
        &self,
        seed: u64,
        epoch: usize,
        update: usize,
        per_rank: usize,
        world: usize,
        order: &mut EpochOrder,
    ) -> Vec<Example> {
        let world = world.max(1);
        let n_rank = self.per_rank_len(world);
        let lo = (update * per_rank).min(n_rank);
        let hi = (lo + per_rank).min(n_rank);
        let positions = lo * world..hi * world;
        match self {
            TrainData::Examples(e) => {
                let perm = order.get(seed, epoch, e.len());
                positions.map(|p| e[perm[p % perm.len()]].clone()).collect()
            }
            TrainData::Windows(w) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(((epoch as u64) << 40) | update as u64);
                let hi = w.tokens.len() - w.block_size;
                positions
                    .map(|_| w.window(rng.random_range(0..=hi)))
                    .collect()
            }
        }
    }

    /// Evaluation examples in fixed order.
    pub fn eval_examples(&self) -> Vec<Example> {
        match self {
            TrainData::Examples(e) => e.as_ref().clone(),
            TrainData::Windows(w) => {
                let n = w.num_windows();
                let take = w.max_eval_windows.unwrap_or(n).min(n);
                (0..take)
                    .map(|k| w.window((k * n / take) * w.block_size))
                    .collect()
            }
        }
    }
}

/// The shuffled row order of the current epoch, cached; grouped by length when made with
/// [`EpochOrder::length_grouped`].
#[derive(Clone, Debug, Default)]
pub struct EpochOrder {
    key: Option<(u64, usize)>,
    perm: Vec<usize>,
    /// Each row's length and the batch size, for `group_by_length`.
    grouping: Option<(Arc<Vec<usize>>, usize)>,
}

impl EpochOrder {
    /// The order of `TrainingArguments::group_by_length`: rows of `lengths` (one per row of
    /// the data) in batches of `batch_size`. Data of another number of rows gets the plain
    /// shuffled order (a `Trainer` always passes its own data's lengths).
    pub fn length_grouped(lengths: Vec<usize>, batch_size: usize) -> Self {
        Self {
            grouping: Some((Arc::new(lengths), batch_size.max(1))),
            ..Self::default()
        }
    }

    fn get(&mut self, seed: u64, epoch: usize, n: usize) -> &[usize] {
        if self.key != Some((seed, epoch)) || self.perm.len() != n {
            let mut perm: Vec<usize> = (0..n).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(epoch as u64));
            perm.shuffle(&mut rng);
            if let Some((lengths, bs)) = &self.grouping
                && lengths.len() == n
            {
                perm = length_grouped(perm, lengths, *bs);
            }
            self.perm = perm;
            self.key = Some((seed, epoch));
        }
        &self.perm
    }
}

/// transformers' `get_length_grouped_indices`: the shuffled `perm` cut into mega-batches of
/// `min(n / (4 batch_size), 50)` (at least 1) batches, each sorted by length, longest first
/// (stable, as Python's `sorted(reverse=True)`), then the first element of the mega-batch
/// with the longest example swapped with the very first, so an out-of-memory shows at once.
fn length_grouped(perm: Vec<usize>, lengths: &[usize], batch_size: usize) -> Vec<usize> {
    let n = perm.len();
    let mult = (n / (batch_size * 4)).clamp(1, 50);
    let mut mega: Vec<Vec<usize>> = perm
        .chunks(mult * batch_size)
        .map(|c| {
            let mut c = c.to_vec();
            c.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
            c
        })
        .collect();
    let mut longest = 0;
    for (i, m) in mega.iter().enumerate() {
        if lengths[m[0]] > lengths[mega[longest][0]] {
            longest = i;
        }
    }
    if longest != 0 {
        let first = mega[0][0];
        mega[0][0] = mega[longest][0];
        mega[longest][0] = first;
    }
    mega.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers' `get_length_grouped_indices` on the same permutations
    /// (tests/fixtures/make_length_grouped.py).
    #[test]
    fn length_grouping_matches_transformers() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/train/length_grouped.json"
        );
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(cases.len(), 6);
        let list = |v: &serde_json::Value| -> Vec<usize> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect()
        };
        for case in &cases {
            let (perm, lengths) = (list(&case["perm"]), list(&case["lengths"]));
            let bs = case["batch_size"].as_u64().unwrap() as usize;
            assert_eq!(
                length_grouped(perm, &lengths, bs),
                list(&case["expected"]),
                "{} rows, batches of {bs}",
                lengths.len()
            );
        }
    }

    fn numbered(n: usize) -> TrainData {
        TrainData::from(
            (0..n)
                .map(|i| Example {
                    input_ids: vec![i as u32],
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        )
    }

    fn ids(ex: &[Example]) -> Vec<u32> {
        ex.iter().map(|e| e.input_ids[0]).collect()
    }

    /// A step's examples depend on the global batch only, and rank r's share is every
    /// world-th one: what torch's DistributedSampler gives each rank.
    #[test]
    fn step_examples_split_the_global_batch_as_distributed_sampler() {
        let data = numbered(10);
        let mut order = EpochOrder::default();
        let one = data.step_examples(7, 0, 0, 4, 1, &mut order);
        let two = data.step_examples(7, 0, 0, 2, 2, &mut order);
        assert_eq!(ids(&one), ids(&two));
        let perm: Vec<u32> = order.get(7, 0, 10).iter().map(|&i| i as u32).collect();
        // 3 ranks: ceil(10/3) = 4 each; the padded order wraps to the start
        assert_eq!(data.per_rank_len(3), 4);
        let mut all = Vec::new();
        for update in 0..2 {
            all.extend(ids(&data.step_examples(7, 0, update, 2, 3, &mut order)));
        }
        assert_eq!(all.len(), 12);
        assert_eq!(&all[..10], &perm[..]);
        assert_eq!(&all[10..], &perm[..2]);
        // rank 1's share: positions 1, 4, 7, 10 of the padded order
        let rank1: Vec<u32> = all.iter().skip(1).step_by(3).copied().collect();
        assert_eq!(rank1, vec![perm[1], perm[4], perm[7], perm[0]]);
        // past the epoch's end: nothing
        assert!(data.step_examples(7, 0, 2, 2, 3, &mut order).is_empty());
        // windows: one draw per step, whatever the split
        let w = TrainData::Windows(TokenWindows::new((0..100u32).collect::<Vec<_>>(), 4).unwrap());
        let a = w.step_examples(3, 1, 2, 8, 1, &mut order);
        let b = w.step_examples(3, 1, 2, 2, 4, &mut order);
        assert_eq!(a, b);
        assert_ne!(a, w.step_examples(3, 1, 3, 8, 1, &mut order));
    }

    #[test]
    fn grouped_epochs_visit_every_row_once_in_batches_of_similar_length() {
        let lengths: Vec<usize> = (0..500).map(|i| 1 + (i * 37) % 60).collect();
        let data = TrainData::from(
            lengths
                .iter()
                .map(|&n| Example {
                    input_ids: vec![1; n],
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        );
        let mut order = EpochOrder::length_grouped(data.lengths(), 8);
        let mut spread = (0usize, 0usize);
        for epoch in 0..2 {
            let mut seen = vec![0; 500];
            for micro in 0..500usize.div_ceil(8) {
                let batch = data.train_batch(3, epoch, micro, 8, &mut order);
                let l: Vec<usize> = batch.iter().map(|e| e.input_ids.len()).collect();
                spread.0 += l.iter().max().unwrap() - l.iter().min().unwrap();
                spread.1 += 1;
            }
            let perm = order.get(3, epoch, 500).to_vec();
            for &i in &perm {
                seen[i] += 1;
            }
            assert!(seen.iter().all(|&c| c == 1), "epoch {epoch}");
            assert_eq!(lengths[perm[0]], 60, "the longest row comes first");
        }
        // random batches of 8 from lengths 1..=60 spread over ~45 tokens; sorted mega-batches of
        // 120 rows over 60 lengths, by about 4
        assert!(spread.0 as f64 / (spread.1 as f64) < 8.0, "{spread:?}");
        let first = order.get(3, 0, 500).to_vec();
        assert_ne!(
            first,
            order.get(3, 1, 500).to_vec(),
            "a new order each epoch"
        );
        assert_eq!(first, EpochOrder::length_grouped(lengths, 8).get(3, 0, 500));
    }
}
