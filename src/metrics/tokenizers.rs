//! sacrebleu's BLEU tokenizers, reproduced character for character.
//!
//! `13a` is mteval-v13a.pl (WMT's default), `intl` is mteval-v14's international tokenizer,
//! `zh` splits CJK characters then applies 13a's rules, `char` splits every character, `none`
//! leaves the text alone. The output is a string of space-separated tokens, as in sacrebleu.
use super::py_split;
use crate::{Error, Result};
use regex::Regex;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Which sacrebleu tokenizer BLEU applies before counting n-grams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tokenize {
    /// mteval-v13a.pl, sacrebleu's default (`13a`).
    #[default]
    V13a,
    /// mteval-v14 international tokenization on Unicode punctuation and symbols (`intl`).
    Intl,
    /// Chinese: every CJK character is a token, the rest follows 13a (`zh`).
    Zh,
    /// Every character is a token (`char`).
    Char,
    /// No tokenization: split on whitespace only (`none`).
    None,
}

impl Tokenize {
    /// All tokenizers, by their sacrebleu names.
    pub const NAMES: [&'static str; 5] = ["13a", "intl", "zh", "char", "none"];

    /// The name sacrebleu prints in its signature (`tok:13a`).
    pub fn name(self) -> &'static str {
        match self {
            Tokenize::V13a => "13a",
            Tokenize::Intl => "intl",
            Tokenize::Zh => "zh",
            Tokenize::Char => "char",
            Tokenize::None => "none",
        }
    }

    /// Tokenizes one segment into space-separated tokens, exactly as sacrebleu does.
    pub fn tokenize(self, line: &str) -> String {
        match self {
            Tokenize::V13a | Tokenize::Intl | Tokenize::Zh => {
                join_tokens(&self.tokenize_unjoined(line))
            }
            _ => self.tokenize_unjoined(line),
        }
    }

    /// The tokenizer's output before sacrebleu's final `' '.join(line.split())`: the same tokens
    /// under a whitespace split, one pass cheaper (BLEU splits again anyway).
    pub(crate) fn tokenize_unjoined(self, line: &str) -> String {
        match self {
            Tokenize::V13a => tokenize_13a(line),
            Tokenize::Intl => tokenize_intl(line),
            Tokenize::Zh => tokenize_zh(line),
            Tokenize::Char => {
                let mut out = String::with_capacity(line.len() * 2);
                for (i, c) in line.chars().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push(c);
                }
                out
            }
            Tokenize::None => line.to_string(),
        }
    }
}

impl fmt::Display for Tokenize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tokenize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "13a" => Tokenize::V13a,
            "intl" => Tokenize::Intl,
            "zh" => Tokenize::Zh,
            "char" => Tokenize::Char,
            "none" => Tokenize::None,
            _ => {
                return Err(Error::UnknownMetricOption {
                    option: "BLEU tokenizer".into(),
                    value: s.into(),
                    valid: Tokenize::NAMES.join(", "),
                });
            }
        })
    }
}

/// `' '.join(line.split())` in Python.
fn join_tokens(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for t in py_split(line) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

/// mteval-v13a: unescape a few HTML entities, pad with spaces, then the regexp rules.
fn tokenize_13a(line: &str) -> String {
    let mut line = line.to_string();
    if line.contains("<skipped>") {
        line = line.replace("<skipped>", "");
    }
    if line.contains('\n') {
        line = line.replace("-\n", "").replace('\n', " ");
    }
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut padded = Vec::with_capacity(line.len() + 2);
    padded.push(b' ');
    padded.extend_from_slice(line.as_bytes());
    padded.push(b' ');
    tokenize_regexp(padded)
}

/// sacrebleu's `TokenizerRegexp`, the rules shared by `13a` and `zh`.
///
/// Every rule looks only at ASCII characters (digits, `.`, `,`, `-` and the punctuation set),
/// and a non-ASCII character only ever plays the part of "not a digit", so running the rules
/// over UTF-8 bytes gives exactly the regex result on characters, several times faster.
fn tokenize_regexp(bytes: Vec<u8>) -> String {
    // Rule 1: ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 '
    let mut a = Vec::with_capacity(bytes.len() * 2);
    for &b in &bytes {
        let sep =
            matches!(b, b'{'..=b'~' | b'['..=b'`' | b' '..=b'&' | b'('..=b'+' | b':'..=b'@' | b'/');
        if sep {
            a.push(b' ');
            a.push(b);
            a.push(b' ');
        } else {
            a.push(b);
        }
    }
    // Rule 2: ([^0-9])([\.,]) -> '\1 \2 ' (leftmost, non-overlapping)
    let mut b2 = Vec::with_capacity(a.len() + 16);
    let mut i = 0;
    while i < a.len() {
        if i + 1 < a.len() && !a[i].is_ascii_digit() && matches!(a[i + 1], b'.' | b',') {
            b2.extend_from_slice(&[a[i], b' ', a[i + 1], b' ']);
            i += 2;
        } else {
            b2.push(a[i]);
            i += 1;
        }
    }
    // Rule 3: ([\.,])([^0-9]) -> ' \1 \2'
    let mut c = Vec::with_capacity(b2.len() + 16);
    let mut i = 0;
    while i < b2.len() {
        if i + 1 < b2.len() && matches!(b2[i], b'.' | b',') && !b2[i + 1].is_ascii_digit() {
            c.extend_from_slice(&[b' ', b2[i], b' ', b2[i + 1]]);
            i += 2;
        } else {
            c.push(b2[i]);
            i += 1;
        }
    }
    // Rule 4: ([0-9])(-) -> '\1 \2 '
    let mut d = Vec::with_capacity(c.len() + 16);
    let mut i = 0;
    while i < c.len() {
        if i + 1 < c.len() && c[i].is_ascii_digit() && c[i + 1] == b'-' {
            d.extend_from_slice(&[c[i], b' ', b'-', b' ']);
            i += 2;
        } else {
            d.push(c[i]);
            i += 1;
        }
    }
    // Only ASCII spaces were inserted next to whole characters, so this is still valid UTF-8.
    String::from_utf8(d).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
}

fn intl_rules() -> &'static [(Regex, &'static str); 3] {
    static RULES: OnceLock<[(Regex, &'static str); 3]> = OnceLock::new();
    RULES.get_or_init(|| {
        // These patterns are constants; they compile on every supported regex version.
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("bad built-in regex {p}: {e}"));
        [
            (re(r"(\P{N})(\p{P})"), "${1} ${2} "),
            (re(r"(\p{P})(\P{N})"), " ${1} ${2}"),
            (re(r"(\p{S})"), " ${1} "),
        ]
    })
}

/// mteval-v14 international tokenization.
fn tokenize_intl(line: &str) -> String {
    let mut s = line.to_string();
    for (re, rep) in intl_rules() {
        s = re.replace_all(&s, *rep).into_owned();
    }
    s
}

/// The code point ranges sacrebleu's `zh` tokenizer treats as Chinese characters.
///
/// These are the ranges its `_is_chinese_char` actually accepts, found by running it on every
/// code point. They differ from the table in its source: entries written `u'\u20000'` there
/// are two-character strings, so the first compares as U+2001..=U+2A6D, which also makes
/// general punctuation such as `“` and `—` count as Chinese.
const ZH_RANGES: [(u32, u32); 13] = [
    (0x2001, 0x2a6d),
    (0x2e80, 0x2fdf),
    (0x2ff0, 0x303f),
    (0x3100, 0x312f),
    (0x31a0, 0x31ef),
    (0x3200, 0x4db5),
    (0x4e00, 0x9fbb),
    (0xf900, 0xfa2d),
    (0xfa30, 0xfa6a),
    (0xfa70, 0xfad9),
    (0xfe10, 0xfe1f),
    (0xfe30, 0xfe4f),
    (0xff00, 0xffef),
];

fn is_chinese_char(c: char) -> bool {
    let u = c as u32;
    ZH_RANGES.iter().any(|&(a, b)| a <= u && u <= b)
}

/// sacrebleu's `zh`: strip, space out Chinese characters, then the 13a regexp rules.
fn tokenize_zh(line: &str) -> String {
    let line = line.trim_matches(super::py_isspace);
    let mut s = String::with_capacity(line.len() * 2);
    for c in line.chars() {
        if is_chinese_char(c) {
            s.push(' ');
            s.push(c);
            s.push(' ');
        } else {
            s.push(c);
        }
    }
    tokenize_regexp(s.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_a_matches_known_outputs() {
        assert_eq!(
            Tokenize::V13a.tokenize("Hello, world! It costs $3.50 (really)."),
            "Hello , world ! It costs $ 3.50 ( really ) ."
        );
        assert_eq!(
            Tokenize::V13a.tokenize("1990-2000 a&amp;b"),
            "1990 - 2000 a & b"
        );
    }

    #[test]
    fn unknown_tokenizer_lists_valid_ones() {
        let e = "moses".parse::<Tokenize>().unwrap_err().to_string();
        assert!(
            e.contains("moses") && e.contains("13a, intl, zh, char, none"),
            "{e}"
        );
    }
}
