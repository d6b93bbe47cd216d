//! The `tokenizers` trainers, fed their word counts in one fixed order so that the same corpus
//! gives the same vocabulary every time.
//!
//! `tokenizers` 0.23 counts words into hash maps seeded at random for each map, and its trainers
//! walk those maps: the WordPiece trainer numbers the `##` continuation pieces in that order
//! (and breaks ties between equally frequent merges by those numbers), and the Unigram trainer
//! builds its suffix array and sums its EM statistics in it. So two trainings of the same text
//! gave different vocabularies (huggingface/tokenizers#1794), and with them different models
//! for the same seed. This wrapper keeps the trainers and their algorithms, and only hands them
//! the words sorted, in a map whose hasher has fixed seeds, and runs the Unigram trainer on one
//! thread (its float sums follow the thread count and rayon's work stealing). Byte-level BPE
//! was already deterministic (its whole alphabet is given up front); it goes through the same
//! path.
use ahash::{AHashMap, RandomState};
use compact_str::CompactString;
use rayon::prelude::*;
use tokenizers::models::bpe::BpeTrainer;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::{AddedToken, Result, Trainer};

/// Fixed seeds for the maps handed to the trainers (any constants do; they must not change
/// between runs).
const SEEDS: (u64, u64, u64, u64) = (
    0x6d61_7373_6976_6574,
    0x6578_7420_7472_6169,
    0x6e20_6f72_6465_7273,
    0x0000_0000_0000_0001,
);

/// A trainer of the `tokenizers` crate whose input words are counted here and given to it
/// sorted. For WordPiece, `bpe` is the BPE trainer with the `##` prefix that the WordPiece
/// trainer wraps (the wrapper's own is private).
pub(crate) struct OrderedTrainer {
    inner: TrainerWrapper,
    wordpiece_bpe: Option<BpeTrainer>,
    words: AHashMap<String, u64>,
}

impl OrderedTrainer {
    pub(crate) fn new(inner: TrainerWrapper) -> Self {
        OrderedTrainer {
            inner,
            wordpiece_bpe: None,
            words: AHashMap::new(),
        }
    }

    /// For WordPiece: train `bpe` (built as the WordPiece trainer builds its own) and convert.
    pub(crate) fn wordpiece(inner: TrainerWrapper, bpe: BpeTrainer) -> Self {
        OrderedTrainer {
            wordpiece_bpe: Some(bpe),
            ..OrderedTrainer::new(inner)
        }
    }

    /// The counted words, sorted by word.
    fn sorted(&self) -> Vec<(&String, u64)> {
        let mut words: Vec<(&String, u64)> = self.words.iter().map(|(w, &c)| (w, c)).collect();
        words.sort_unstable_by(|a, b| a.0.cmp(b.0));
        words
    }

    /// The sorted words in a map with fixed seeds, as the BPE trainer takes them.
    fn bpe_words(&self) -> AHashMap<CompactString, u64> {
        let (k0, k1, k2, k3) = SEEDS;
        let mut map = AHashMap::with_capacity_and_hasher(
            self.words.len(),
            RandomState::with_seeds(k0, k1, k2, k3),
        );
        for (w, c) in self.sorted() {
            map.insert(CompactString::from(w.as_str()), c);
        }
        map
    }
}

impl Trainer for OrderedTrainer {
    type Model = ModelWrapper;

    fn should_show_progress(&self) -> bool {
        self.inner.should_show_progress()
    }

    fn train(&self, model: &mut ModelWrapper) -> Result<Vec<AddedToken>> {
        match (&self.inner, model) {
            (TrainerWrapper::WordPieceTrainer(_), model @ ModelWrapper::WordPiece(_)) => {
                let bpe_trainer = self
                    .wordpiece_bpe
                    .as_ref()
                    .ok_or("a WordPiece trainer needs its BPE trainer")?;
                let mut bpe = tokenizers::models::bpe::BPE::default();
                let special = bpe_trainer.do_train(&self.bpe_words(), &mut bpe)?;
                // As `WordPieceTrainer::train` does: the vocabulary and prefix are the
                // trained ones, the unknown token and word length limit the model's.
                let mut wp = WordPiece::from_bpe(&bpe);
                if let ModelWrapper::WordPiece(old) = &*model {
                    wp.unk_token.clone_from(&old.unk_token);
                    wp.max_input_chars_per_word = old.max_input_chars_per_word;
                }
                *model = ModelWrapper::WordPiece(wp);
                Ok(special)
            }
            (TrainerWrapper::BpeTrainer(t), ModelWrapper::BPE(bpe)) => {
                t.do_train(&self.bpe_words(), bpe)
            }
            (TrainerWrapper::UnigramTrainer(t), ModelWrapper::Unigram(u)) => {
                let sentences = self
                    .sorted()
                    .into_iter()
                    .map(|(w, c)| (w.clone(), u32::try_from(c).unwrap_or(u32::MAX)))
                    .collect();
                // Its E and M steps sum floats over chunks of `sentences.len() / threads`
                // in rayon's work-stealing order: one thread makes that one chunk, the
                // same sum on every machine.
                let one = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .map_err(|e| e.to_string())?;
                one.install(|| t.do_train(sentences, u))
            }
            _ => Err("the trainer does not match the tokenizer's model".into()),
        }
    }

    fn feed<I, S, F>(&mut self, iterator: I, process: F) -> Result<()>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
        F: Fn(&str) -> Result<Vec<String>> + Sync,
    {
        // Counting is a sum, so its order does not matter; it runs in parallel as upstream's.
        let words: Result<AHashMap<String, u64>> = iterator
            .par_bridge()
            .map(|sequence| {
                let mut map = AHashMap::new();
                for word in process(sequence.as_ref())? {
                    *map.entry(word).or_default() += 1;
                }
                Ok(map)
            })
            .try_reduce(AHashMap::new, |mut acc, ws| {
                for (k, v) in ws {
                    *acc.entry(k).or_default() += v;
                }
                Ok(acc)
            });
        self.words = words?;
        Ok(())
    }
}
