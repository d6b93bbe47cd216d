//! A corpus the crate writes itself, so the first training run needs no download: seeded short
//! stories about counting things (1 to 6 of them, then 1 to 6 more, or some lost), whose last
//! sentence states a sum or difference that can be checked. A model that learned the corpus completes `Now Tom has` with the right number.
//!
//! ```
//! use massivetext::corpus::stories;
//! let s = stories(3, 7);
//! assert_eq!(s.len(), 3);
//! assert!(s[0].text().ends_with(&format!("has {}.", s[0].answer_phrase())));
//! assert_eq!(s, stories(3, 7)); // seeded
//! ```
use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const NAMES: &[(&str, &str)] = &[
    ("Tom", "he"),
    ("Mia", "she"),
    ("Sam", "he"),
    ("Lily", "she"),
    ("Ben", "he"),
    ("Anna", "she"),
    ("Max", "he"),
    ("Zoe", "she"),
];
const THINGS: &[(&str, &str, bool)] = &[
    ("apple", "apples", true),
    ("cake", "cakes", true),
    ("egg", "eggs", true),
    ("plum", "plums", true),
    ("ball", "balls", false),
    ("book", "books", false),
    ("coin", "coins", false),
    ("shell", "shells", false),
];
const PLACES: &[&str] = &[
    "the park",
    "the shop",
    "the beach",
    "school",
    "the farm",
    "the lake",
];
const MOODS: &[&str] = &["happy", "sad", "tired", "hungry", "glad"];

/// One story: who, what, how many, and what happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Story {
    /// The sentences before the question: `"Tom had 3 apples. Mia gave him 4 more."`.
    pub setup: String,
    pub name: String,
    pub thing: String,
    pub plural: String,
    /// The count the last sentence states.
    pub answer: u32,
}

impl Story {
    /// The prompt a model completes: the setup and `"Now Tom has"`.
    pub fn prompt(&self) -> String {
        format!("{} Now {} has", self.setup, self.name)
    }

    /// `"7 apples"`, `"1 apple"`, `"no apples"`.
    pub fn answer_phrase(&self) -> String {
        count_phrase(self.answer, &self.thing, &self.plural)
    }

    /// The whole story, one line.
    pub fn text(&self) -> String {
        format!("{} {}.", self.prompt(), self.answer_phrase())
    }
}

fn count_phrase(n: u32, one: &str, many: &str) -> String {
    match n {
        0 => format!("no {many}"),
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

fn object(pron: &str) -> &'static str {
    if pron == "he" { "him" } else { "her" }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// One random story.
pub fn story(rng: &mut ChaCha8Rng) -> Story {
    let (name, pron) = NAMES[rng.random_range(0..NAMES.len())];
    let other = loop {
        let o = NAMES[rng.random_range(0..NAMES.len())].0;
        if o != name {
            break o;
        }
    };
    let (thing, plural, food) = THINGS[rng.random_range(0..THINGS.len())];
    let a: u32 = rng.random_range(1..=6);
    let mut setup = String::new();
    match rng.random_range(0..4) {
        0 => {
            setup += &format!(
                "One day {name} went to {}. ",
                PLACES[rng.random_range(0..PLACES.len())]
            )
        }
        1 => setup += &format!("{name} was {}. ", MOODS[rng.random_range(0..MOODS.len())]),
        _ => {}
    }
    setup += &format!("{name} had {}.", count_phrase(a, thing, plural));
    let answer = match rng.random_range(0..4) {
        0 => {
            let b = rng.random_range(1..=6);
            setup += &format!(" {other} gave {} {b} more.", object(pron));
            a + b
        }
        1 => {
            let b = rng.random_range(1..=6);
            setup += &format!(" {} found {b} more.", cap(pron));
            a + b
        }
        _ => {
            let b = rng.random_range(1..=a);
            let verb = if food && rng.random_bool(0.5) {
                "ate"
            } else {
                "lost"
            };
            setup += &format!(" {} {verb} {b}.", cap(pron));
            a - b
        }
    };
    Story {
        setup,
        name: name.to_string(),
        thing: thing.to_string(),
        plural: plural.to_string(),
        answer,
    }
}

/// `n` stories from `seed` (the same every time).
pub fn stories(n: usize, seed: u64) -> Vec<Story> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| story(&mut rng)).collect()
}

/// `n` stories as text, one per line.
pub fn corpus_text(n: usize, seed: u64) -> String {
    let mut s = String::new();
    for st in stories(n, seed) {
        s += &st.text();
        s.push('\n');
    }
    s
}

/// One extractive question about a story: the answer is a span of the context (SQuAD's
/// layout: `answer_start` is a character index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QaExample {
    pub question: String,
    /// The whole story, its last sentence included.
    pub context: String,
    /// The number asked for (`"7"`, or `"no"` for none), as it appears in the context.
    pub answer_text: String,
    /// Where `answer_text` starts in `context`, in characters.
    pub answer_start: usize,
}

/// The first number word of `text` after byte `from` (a digit run, or `no`), with its byte
/// position.
fn number_after(text: &str, from: usize) -> Option<(usize, String)> {
    let mut pos = from;
    for word in text[from..].split(' ') {
        let w = word.trim_end_matches(['.', ',']);
        if !w.is_empty() && (w.chars().all(|c| c.is_ascii_digit()) || w == "no") {
            return Some((pos, w.to_string()));
        }
        pos += word.len() + 1;
    }
    None
}

/// Extractive questions about `n` seeded stories (the same every time), three kinds in turn:
/// how many the person has now (the last sentence's number), had at first (the first count),
/// and how many changed hands (the number of the sentence before the last). The number to
/// give is always in the story, and "the first number of the story" is right for only one
/// kind, which makes it a baseline a model has to beat.
///
/// ```
/// use massivetext::corpus::qa_examples;
/// let qa = qa_examples(3, 1);
/// for q in &qa {
///     assert_eq!(&q.context[q.answer_start..q.answer_start + q.answer_text.len()], q.answer_text);
/// }
/// assert!(qa[0].question.ends_with("now?"));
/// ```
pub fn qa_examples(n: usize, seed: u64) -> Vec<QaExample> {
    stories(n, seed)
        .into_iter()
        .enumerate()
        .filter_map(|(i, st)| {
            let context = st.text();
            let had = format!("{} had ", st.name);
            let first = context.find(&had).map(|p| p + had.len())?;
            // the sentence before "Now ...": what changed
            let now = context.rfind(" Now ")?;
            let change_start = context[..now].rfind(". ").map_or(0, |p| p + 2);
            let change = &context[change_start..now];
            let (question, (start, text)) = match i % 3 {
                0 => (
                    format!("How many {} does {} have now?", st.plural, st.name),
                    number_after(&context, now + 5)?,
                ),
                1 => (
                    format!("How many {} did {} have at first?", st.plural, st.name),
                    number_after(&context, first)?,
                ),
                _ => {
                    let verb = if change.contains(" gave ") {
                        "get"
                    } else if change.contains(" found ") {
                        "find"
                    } else if change.contains(" ate ") {
                        "eat"
                    } else {
                        "lose"
                    };
                    (
                        format!("How many {} did {} {verb}?", st.plural, st.name),
                        number_after(&context, change_start)?,
                    )
                }
            };
            Some(QaExample {
                question,
                // ASCII text: byte and character positions agree
                answer_start: start,
                answer_text: text,
                context,
            })
        })
        .collect()
}

/// The "always the first number" answer to any question about `context`: what a model that
/// ignores the question gets right (the first number word, `no` included).
pub fn first_number(context: &str) -> String {
    number_after(context, 0).map(|(_, w)| w).unwrap_or_default()
}

/// A character-level vocabulary (nanoGPT's `stoi` / `itos`): ids in sorted character order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharVocab {
    pub chars: Vec<char>,
}

impl CharVocab {
    /// The sorted distinct characters of `text`.
    pub fn from_text(text: &str) -> Self {
        let mut set: Vec<char> = text.chars().collect();
        set.sort_unstable();
        set.dedup();
        CharVocab { chars: set }
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// Ids of `text`; a character outside the vocabulary is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let map: BTreeMap<char, u32> = self
            .chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        text.chars()
            .map(|c| {
                map.get(&c).copied().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "character {c:?} is not in the vocabulary of {} characters",
                        self.chars.len()
                    ))
                })
            })
            .collect()
    }

    /// Text of `ids` (unknown ids become `?`).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| self.chars.get(i as usize).copied().unwrap_or('?'))
            .collect()
    }
}
