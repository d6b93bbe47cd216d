//! Fill-in-the-middle prompts: a code model trained with FIM (StarCoder, StarCoder2, SantaCoder)
//! writes the code between a prefix and a suffix when both come first, marked by its FIM tokens.
//! Not every code-capable model has them: SmolLM2's vocabulary, though it came from StarCoder's,
//! has none, and [`FimTokens::of`] says so. The order
//! here is StarCoder's PSM (prefix, suffix, middle):
//! `<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>`, after which the model writes the
//! middle and, when it is done, its end-of-text token.
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The FIM tokens, as StarCoder names them.
pub const FIM_PREFIX: &str = "<fim_prefix>";
pub const FIM_SUFFIX: &str = "<fim_suffix>";
pub const FIM_MIDDLE: &str = "<fim_middle>";

/// The ids of a tokenizer's three FIM tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FimTokens {
    pub prefix: u32,
    pub suffix: u32,
    pub middle: u32,
}

impl FimTokens {
    /// The FIM tokens of `tokenizer`; an error naming the missing ones when it lacks any (a
    /// tokenizer trained without them cannot mark a middle, and a model trained without them
    /// would not know what to do with it).
    pub fn of(tokenizer: &Tokenizer) -> Result<Self> {
        let find = |t: &str| tokenizer.token_to_id(t);
        match (find(FIM_PREFIX), find(FIM_SUFFIX), find(FIM_MIDDLE)) {
            (Some(prefix), Some(suffix), Some(middle)) => Ok(FimTokens {
                prefix,
                suffix,
                middle,
            }),
            found => {
                let missing: Vec<&str> = [
                    (FIM_PREFIX, found.0),
                    (FIM_SUFFIX, found.1),
                    (FIM_MIDDLE, found.2),
                ]
                .iter()
                .filter(|(_, id)| id.is_none())
                .map(|(t, _)| *t)
                .collect();
                Err(Error::Unsupported(format!(
                    "fill-in-the-middle needs the tokens {FIM_PREFIX}, {FIM_SUFFIX} and {FIM_MIDDLE}, and this tokenizer ({} tokens) has no {}: use a code model's tokenizer trained with them (StarCoder, SantaCoder), or prompt with the prefix alone",
                    tokenizer.vocab_size(),
                    missing.join(", ")
                )))
            }
        }
    }
}

/// The ids of the PSM prompt for `prefix` and `suffix`:
/// `<fim_prefix> prefix <fim_suffix> suffix <fim_middle>`, each text encoded on its own
/// (what the tokenizer gives the whole string, since it splits at its special tokens).
///
/// ```
/// use massivetext::prelude::*;
/// let texts = ["def f(x):\n    return x\n"];
/// let mut tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(300))?;
/// assert!(fim_prompt(&tok, "def f(", "):\n").unwrap_err().to_string().contains("<fim_middle>"));
/// tok.add_tokens(&["<fim_prefix>", "<fim_suffix>", "<fim_middle>"])?;
/// let ids = fim_prompt(&tok, "def f(", "):\n")?;
/// let fim = FimTokens::of(&tok)?;
/// assert_eq!((ids[0], *ids.last().unwrap()), (fim.prefix, fim.middle));
/// # Ok::<(), massivetext::Error>(())
/// ```
pub fn fim_prompt(tokenizer: &Tokenizer, prefix: &str, suffix: &str) -> Result<Vec<u32>> {
    let fim = FimTokens::of(tokenizer)?;
    let mut ids = vec![fim.prefix];
    ids.extend(tokenizer.encode_plain(prefix)?);
    ids.push(fim.suffix);
    ids.extend(tokenizer.encode_plain(suffix)?);
    ids.push(fim.middle);
    Ok(ids)
}
