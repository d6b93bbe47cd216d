//! The decoding loops of transformers' `generate`: greedy and multinomial sampling (`_sample`)
//! and beam search (`_beam_search`), over a [`Step`]: what gives the next token's logits for
//! every row. Two steps exist: [`Decoder`], a causal LM over its prompts (through a
//! [`KvCache`] allocated once for the whole generation, or, for models without a cache, on the
//! whole prefix each step), and [`Seq2SeqDecoder`], an encoder–decoder's decoder over sources
//! encoded once (its sequences start with the decoder start token).
//!
//! Sequences live on the host (the logits processors read them).
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{EarlyStopping, GenerationConfig};
use super::logits::{RowState, argmax, log_softmax, log_softmax_into, process, softmax, warp};
use super::stop::StopStrings;
use crate::models::{EncoderDecoderCache, ForwardArgs, KvCache, PreTrainedModel};
use crate::{Error, Result};

/// Prompts ready to decode: one row per sequence, left padding marked in `mask`.
pub(crate) struct Prompts {
    pub ids: Vec<Vec<u32>>,
    pub mask: Vec<Vec<u32>>,
}

impl Prompts {
    /// Each row repeated `n` times in place (transformers' `repeat_interleave`).
    pub(crate) fn expand(&self, n: usize) -> Prompts {
        let rep = |v: &Vec<Vec<u32>>| {
            v.iter()
                .flat_map(|r| std::iter::repeat_n(r.clone(), n))
                .collect()
        };
        Prompts {
            ids: rep(&self.ids),
            mask: rep(&self.mask),
        }
    }
}

/// How many rows each input becomes: its beams, or its sampled sequences.
pub(crate) fn rows_per_input(c: &GenerationConfig) -> usize {
    if c.num_beams > 1 {
        c.num_beams
    } else if c.do_sample {
        c.num_return_sequences
    } else {
        1
    }
}

/// The model side of decoding, one step at a time.
pub(crate) trait Step {
    /// Logits `[rows][vocab]` (f32) of the last position of every row, after feeding what the
    /// rows hold beyond the tokens already fed.
    fn next_logits(&mut self, seqs: &[Vec<u32>], mask: &[Vec<u32>]) -> Result<Vec<Vec<f32>>>;
    /// Beam search: row `i` continues from old row `rows[i]`.
    fn reorder(&mut self, rows: &[u32]) -> Result<()>;
    /// Where the sequences are returned.
    fn device(&self) -> &Device;
}

/// A causal LM's step: feeds new tokens and returns the last position's logits.
pub(crate) struct Decoder<'a, M: PreTrainedModel> {
    model: &'a M,
    cache: Option<KvCache>,
    /// Tokens already fed (the cache's length).
    fed: usize,
}

impl<'a, M: PreTrainedModel> Decoder<'a, M> {
    pub(crate) fn new(model: &'a M, use_cache: bool, capacity: usize) -> Self {
        Decoder {
            model,
            cache: use_cache.then(|| KvCache::with_capacity(capacity)),
            fed: 0,
        }
    }
}

impl<M: PreTrainedModel> Step for Decoder<'_, M> {
    fn next_logits(&mut self, seqs: &[Vec<u32>], mask: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let rows = seqs.len();
        let len = seqs[0].len();
        let start = if self.cache.is_some() { self.fed } else { 0 };
        let t = len - start;
        let dev = self.model.device();
        let flat = |v: &[Vec<u32>], from: usize| -> Vec<u32> {
            v.iter().flat_map(|r| r[from..].iter().copied()).collect()
        };
        // positions follow the attention mask (transformers: cumsum(mask) - 1, padding at 0)
        let positions: Vec<u32> = mask
            .iter()
            .flat_map(|m| {
                let mut count = 0u32;
                let all: Vec<u32> = m
                    .iter()
                    .map(|&x| {
                        count += x;
                        if x == 0 { 0 } else { count - 1 }
                    })
                    .collect();
                all[start..].to_vec()
            })
            .collect();
        let ids = Tensor::from_vec(flat(seqs, start), (rows, t), dev)?;
        let mask_t = Tensor::from_vec(flat(mask, 0), (rows, len), dev)?;
        let pos = Tensor::from_vec(positions, (rows, t), dev)?;
        let args = ForwardArgs::new(&ids)
            .attention_mask(&mask_t)
            .position_ids(&pos);
        let out = match self.cache.as_mut() {
            Some(cache) => self.model.forward_with_cache(&args, cache)?,
            None => self.model.forward_with(&args)?,
        };
        self.fed = len;
        last_position(&out.logits)
    }

    fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        if let Some(c) = self.cache.as_mut() {
            c.reorder(rows)?;
        }
        Ok(())
    }

    fn device(&self) -> &Device {
        self.model.device()
    }
}

/// The logits of the last position of `[rows, t, vocab]`, on the host. Logits that are not
/// finite are an error: no token can be chosen from NaN (greedy would take token 0 every time,
/// sampling nothing), and they come from weights that are not finite.
fn last_position(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let t = logits.dim(1)?;
    let last = logits.narrow(1, t - 1, 1)?.squeeze(1)?;
    let rows: Vec<Vec<f32>> = last.to_dtype(DType::F32)?.to_vec2()?;
    // a check without an early exit vectorises (`find` compares one value at a time, every
    // step over every row's vocabulary); the culprit is looked for only when there is one
    let finite = |r: &Vec<f32>| r.iter().fold(true, |ok, x| ok & x.is_finite());
    if !rows.iter().all(finite)
        && let Some(x) = rows.iter().flatten().find(|x| !x.is_finite())
    {
        return Err(Error::InvalidArgument(format!(
            "the model's next-token logits hold {x}, so no token can be chosen: its weights or outputs are not finite; check its weights (a run that diverged writes NaN weights) and generate with an earlier checkpoint"
        )));
    }
    Ok(rows)
}

/// An encoder–decoder's step: the sources encoded once (each repeated per row), then the
/// decoder fed one token a step through its cache.
pub(crate) struct Seq2SeqDecoder<'a, M: PreTrainedModel> {
    model: &'a M,
    cache: EncoderDecoderCache,
}

impl<'a, M: PreTrainedModel> Seq2SeqDecoder<'a, M> {
    /// Encodes the sources of `args`, each repeated `rows_per_source` times, with room for
    /// `capacity` decoder tokens.
    pub(crate) fn new(
        model: &'a M,
        args: &ForwardArgs,
        rows_per_source: usize,
        capacity: usize,
    ) -> Result<Self> {
        Ok(Self {
            model,
            cache: model.encode(args, rows_per_source, capacity)?,
        })
    }
}

impl<M: PreTrainedModel> Step for Seq2SeqDecoder<'_, M> {
    fn next_logits(&mut self, seqs: &[Vec<u32>], _mask: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let rows = seqs.len();
        let start = self.cache.len();
        let t = seqs[0].len() - start;
        let flat: Vec<u32> = seqs
            .iter()
            .flat_map(|r| r[start..].iter().copied())
            .collect();
        let ids = Tensor::from_vec(flat, (rows, t), self.model.device())?;
        let logits = self.model.decode_cached(&ids, &mut self.cache)?;
        last_position(&logits)
    }

    fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        self.cache.reorder(rows)
    }

    fn device(&self) -> &Device {
        self.model.device()
    }
}

/// The finished sequences as one u32 tensor, rows padded on the right with `pad`.
fn to_tensor(device: &Device, rows: Vec<Vec<u32>>, pad: u32) -> Result<Tensor> {
    let len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let n = rows.len();
    let flat: Vec<u32> = rows
        .into_iter()
        .flat_map(|mut r| {
            r.resize(len, pad);
            r
        })
        .collect();
    Ok(Tensor::from_vec(flat, (n, len), device)?)
}

/// Greedy decoding or multinomial sampling (transformers' `_sample`) of the rows of `p`
/// (already repeated per returned sequence).
///
/// A row that ends with one of `stops` is finished as one that ends with an EOS token: its next
/// tokens are padding.
pub(crate) fn sample(
    dec: &mut impl Step,
    p: Prompts,
    c: &GenerationConfig,
    mut stops: Option<&mut StopStrings>,
    mut on_step: impl FnMut(&[Vec<u32>]) -> Result<()>,
) -> Result<Tensor> {
    let (mut seqs, mut mask) = (p.ids, p.mask);
    let pad = c.pad_id();
    // transformers pads finished rows only when an EOS token is set; a row stopped by a stop
    // string is padded as well whenever there is a padding token
    let fills = !c.eos_token_id.is_empty() || (stops.is_some() && pad.is_some());
    if stops.is_some() && pad.is_none() && seqs.len() > 1 {
        return Err(Error::InvalidConfig(
            "stop_strings over several rows needs a token to fill the rows that stopped: set pad_token_id (or eos_token_id)".into(),
        ));
    }
    let mut unfinished = vec![true; seqs.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    for step in 0..c.max_new_tokens {
        let logits = dec.next_logits(&seqs, &mask)?;
        for (i, mut scores) in logits.into_iter().enumerate() {
            let row = RowState {
                tokens: &seqs[i],
                new_tokens: step,
            };
            process(&mut scores, &row, c);
            let next = if c.do_sample {
                warp(&mut scores, c);
                multinomial(&softmax(&scores), &mut rng)
            } else {
                argmax(&scores)
            };
            let next = match (unfinished[i], fills, pad) {
                (false, true, Some(pad)) => pad,
                _ => next,
            };
            if c.eos_token_id.contains(&next) {
                unfinished[i] = false;
            }
            seqs[i].push(next);
            mask[i].push(1);
            if unfinished[i]
                && let Some(s) = stops.as_deref_mut()
                && s.hit(&seqs[i])?
            {
                unfinished[i] = false;
            }
        }
        on_step(&seqs)?;
        if !unfinished.iter().any(|&u| u) {
            break;
        }
    }
    to_tensor(dec.device(), seqs, pad.unwrap_or(0))
}

/// One draw from `probs` (a row summing to 1).
fn multinomial(probs: &[f32], rng: &mut ChaCha8Rng) -> u32 {
    let u: f32 = rng.random::<f32>() * probs.iter().sum::<f32>();
    let mut cum = 0f32;
    let mut last_nonzero = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last_nonzero = i;
            cum += p;
            if u < cum {
                return i as u32;
            }
        }
    }
    last_nonzero as u32
}

/// A beam: its tokens (prompt included) and accumulated log-probability.
#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f32,
}

/// A finished hypothesis slot: length-penalised score, and whether a sequence finished there.
#[derive(Clone)]
struct Hyp {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
}

/// Indices of the `k` largest values, largest first; equal values keep their order: what a
/// full sort by (value, then index) truncated to `k` gives. One pass that keeps the best `k`
/// seen so far in order: beam search asks for a few of `num_beams * vocab` scores every step,
/// and almost every value loses to the `k`-th best with one comparison (a partial selection
/// over all the indices took several times longer).
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    use std::cmp::Ordering::{Greater, Less};
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (i, &v) in values.iter().enumerate() {
        if best.len() == k {
            let worst = values[best[k - 1]];
            // `<` first: one float comparison decides almost every value; the total order
            // (as the sort's) decides the rest (equal values, -0 and +0, NaN)
            if v < worst || v.total_cmp(&worst) != Greater {
                continue;
            }
        }
        // after every kept value at least as large (they came first)
        let at = best.partition_point(|&j| values[j].total_cmp(&v) != Less);
        best.insert(at, i);
        best.truncate(k);
    }
    best
}

/// Beam search as transformers' `_beam_search` (its vectorised form since v4.50): the top
/// `max(2, 1 + n_eos) * num_beams` continuations of all beams, the best `num_beams` unfinished ones
/// continue, finished ones compete for `num_beams` slots by `log p / new_len ** length_penalty`,
/// and the early-stopping heuristic decides when no running beam can still win.
///
/// `p` holds each input's row repeated `num_beams` times. A continuation that ends with one of
/// `stops` is finished, as one that ends with an EOS token (transformers' stopping criteria).
pub(crate) fn beam_search(
    dec: &mut impl Step,
    p: Prompts,
    c: &GenerationConfig,
    mut stops: Option<&mut StopStrings>,
) -> Result<Tensor> {
    if c.do_sample {
        return Err(Error::Unsupported(
            "beam sampling (num_beams > 1 with do_sample) is not supported; use one or the other"
                .into(),
        ));
    }
    let nb = c.num_beams;
    let batch = p.ids.len() / nb;
    let mut mask = p.mask;
    let prompt_len = p.ids[0].len();
    let max_length = prompt_len + c.max_new_tokens;
    let keep = 2usize.max(1 + c.eos_token_id.len()) * nb;
    let lp = c.length_penalty;
    const NEG: f32 = -1.0e9;
    let mut running: Vec<Vec<Beam>> = (0..batch)
        .map(|i| {
            (0..nb)
                .map(|j| Beam {
                    tokens: p.ids[i * nb + j].clone(),
                    score: if j == 0 { 0.0 } else { NEG },
                })
                .collect()
        })
        .collect();
    let mut finished: Vec<Vec<Hyp>> = (0..batch)
        .map(|i| {
            vec![
                Hyp {
                    tokens: p.ids[i * nb].clone(),
                    score: NEG,
                    finished: false,
                };
                nb
            ]
        })
        .collect();
    let mut unsatisfied = vec![true; batch];
    let mut cur_len = prompt_len;
    let mut acc: Vec<f32> = Vec::new();
    while cur_len < max_length {
        let seqs: Vec<Vec<u32>> = running
            .iter()
            .flat_map(|bs| bs.iter().map(|b| b.tokens.clone()))
            .collect();
        let logits = dec.next_logits(&seqs, &mask)?;
        let vocab = logits[0].len();
        let mut all_hit = true;
        let mut reorder = Vec::with_capacity(batch * nb);
        for i in 0..batch {
            // accumulated log-probabilities of every continuation of every beam
            acc.clear();
            for (j, beam) in running[i].iter().enumerate() {
                let at = acc.len();
                log_softmax_into(&logits[i * nb + j], &mut acc);
                let row = RowState {
                    tokens: &beam.tokens,
                    new_tokens: cur_len - prompt_len,
                };
                process(&mut acc[at..], &row, c);
                if c.renormalize_logits {
                    let lp_row = log_softmax(&acc[at..]);
                    acc[at..].copy_from_slice(&lp_row);
                }
                acc[at..].iter_mut().for_each(|x| *x += beam.score);
            }
            let top = top_k(&acc, keep);
            let mut cands: Vec<(usize, u32, f32, bool)> = Vec::with_capacity(top.len());
            for &f in &top {
                let (beam, tok) = (f / vocab, (f % vocab) as u32);
                let mut hit = c.eos_token_id.contains(&tok) || cur_len + 1 >= max_length;
                if !hit && let Some(s) = stops.as_deref_mut() {
                    let mut tokens = running[i][beam].tokens.clone();
                    tokens.push(tok);
                    hit = s.hit(&tokens)?;
                }
                cands.push((beam, tok, acc[f], hit));
            }
            all_hit &= cands.iter().all(|c| c.3);
            // the best num_beams unfinished continuations run on
            let run_scores: Vec<f32> = cands
                .iter()
                .map(|&(_, _, s, hit)| if hit { s + NEG } else { s })
                .collect();
            let next: Vec<Beam> = top_k(&run_scores, nb)
                .into_iter()
                .map(|k| {
                    let (beam, tok, _, _) = cands[k];
                    reorder.push((i * nb + beam) as u32);
                    let mut tokens = running[i][beam].tokens.clone();
                    tokens.push(tok);
                    Beam {
                        tokens,
                        score: run_scores[k],
                    }
                })
                .collect();
            // finished candidates among the first num_beams compete for the finished slots
            let all_done = finished[i].iter().all(|h| h.finished);
            let denom = ((cur_len + 1 - prompt_len) as f64).powf(lp) as f32;
            let mut merged = finished[i].clone();
            for (k, &(beam, tok, s, hit)) in cands.iter().enumerate() {
                let did = hit && k < nb;
                let mut score = s / denom;
                if all_done && c.early_stopping == EarlyStopping::True {
                    score += NEG;
                }
                if !unsatisfied[i] {
                    score += NEG;
                }
                if !did {
                    score += NEG;
                }
                let mut tokens = running[i][beam].tokens.clone();
                tokens.push(tok);
                merged.push(Hyp {
                    tokens,
                    score,
                    finished: did,
                });
            }
            let scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
            finished[i] = top_k(&scores, nb)
                .into_iter()
                .map(|k| merged[k].clone())
                .collect();
            running[i] = next;
        }
        cur_len += 1;
        for m in mask.iter_mut() {
            m.push(1);
        }
        dec.reorder(&reorder)?;
        // could a running beam still beat the worst finished one?
        let best_len = if c.early_stopping == EarlyStopping::Never && lp > 0.0 {
            max_length - prompt_len
        } else {
            cur_len - prompt_len
        };
        for i in 0..batch {
            let best = running[i][0].score / (best_len as f64).powf(lp) as f32;
            let worst = finished[i]
                .iter()
                .map(|h| h.score)
                .fold(f32::INFINITY, f32::min);
            let improvable = finished[i]
                .iter()
                .any(|h| best > if h.finished { worst } else { NEG });
            unsatisfied[i] &= improvable;
        }
        let all_finished = finished.iter().flatten().all(|h| h.finished);
        let open = !(all_finished && c.early_stopping == EarlyStopping::True);
        if !(unsatisfied.iter().any(|&u| u) && open && !all_hit) {
            break;
        }
    }
    let pad = c.pad_id().unwrap_or(0);
    let rows: Vec<Vec<u32>> = finished
        .into_iter()
        .flat_map(|hyps| {
            hyps.into_iter()
                .take(c.num_return_sequences)
                .map(|h| h.tokens)
        })
        .collect();
    to_tensor(dec.device(), rows, pad)
}

#[cfg(test)]
mod tests {
    use super::top_k;

    /// The one-pass selection equals a full sort by (value descending, index ascending)
    /// truncated to `k`, with ties, -0 beside +0, infinities and NaN among the values, for `k`
    /// from none to more than there are.
    #[test]
    fn top_k_equals_a_sorted_prefix() {
        let mut values: Vec<f32> = (0..200)
            .map(|i| ((i * 73 % 41) as f32 - 20.0) / 4.0)
            .collect();
        values[3] = -0.0;
        values[17] = 0.0;
        values[50] = f32::NEG_INFINITY;
        values[90] = f32::INFINITY;
        values[120] = f32::NAN;
        values[121] = -1.0e9;
        for k in [0, 1, 2, 3, 8, 16, 40, 199, 200, 250] {
            let mut want: Vec<usize> = (0..values.len()).collect();
            want.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
            want.truncate(k);
            assert_eq!(top_k(&values, k), want, "k {k}");
        }
    }
}
