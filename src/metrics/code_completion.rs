//! What a code model writes, measured on held-out Python functions
//! ([`python_functions`](super::python_functions) finds them):
//!
//! - **Next-line exact match** ([`next_line_exact_match`]). A task is a function cut after its
//!   line `k` (k ≥ 1, counted from the `def` line): the *prompt* is lines `1..=k`, each with its
//!   newline, indentation kept; the *target* is line `k + 1` with trailing whitespace stripped.
//!   Targets that are blank are skipped. The model is given the prompt without its last newline
//!   (see below) and continues it greedily for `max_new_tokens`; the *prediction* is the line
//!   it wrote after that newline, trailing whitespace stripped (none when it did not start with
//!   a newline: it went on with line `k`). A task counts when prediction == target, byte for
//!   byte (leading indentation included: writing the right indentation is part of writing the
//!   right line).
//! - **Function bodies** ([`complete_function_bodies`]) for the parse rate. The prompt is the
//!   function's header: its lines up to and including the first one that ends with `:` (the
//!   signature's last line; the docstring is not given), again without its last newline. The
//!   model continues greedily for at most `max_new_tokens` (at top level it stops at
//!   `"\ndef "`, `"\nclass "` or `"\nif __name__"`); the body is what it wrote after its first
//!   newline, cut before the first non-blank line that is indented no deeper than the `def`
//!   (the function ended there); when no such line comes, the text after its last newline is
//!   dropped (a line that `max_new_tokens` cut is unfinished, and a body that ended with EOS
//!   ended with its newline). The snippet is header + body, dedented by the `def`'s indentation
//!   so that a method parses on its own.
//!
//! Why the last newline is left to the model: byte-level BPEs (GPT-2's, SmolLM2's, the code
//! job's) write a newline and the next line's indentation as one token (`"\n    "`), so a
//! prompt ending in a bare `"\n"` asks for a token split the model never saw in training, and
//! it answers with unindented text (SmolLM2-135M continued every such header with `#` or a
//! blank line, none of them parsing). The model writes that token itself here.
//!
//! Both prompt with the text alone (no document separator before it) and cut prompts longer
//! than the model's context from the left (`truncate_prompt`).
use serde::Serialize;

use super::python_syntax::PythonFunction;
use crate::generate::{GenerationConfig, GenerationMixin};
use crate::models::PreTrainedModel;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// One next-line task: continue `prompt` with `target`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NextLineTask {
    pub prompt: String,
    pub target: String,
}

/// The next-line tasks of `functions` (see the module docs): for each function, its first
/// `per_function` lines `k` whose next line is not blank (all of them when `per_function` is 0).
pub fn next_line_tasks(functions: &[PythonFunction], per_function: usize) -> Vec<NextLineTask> {
    let mut out = Vec::new();
    for f in functions {
        let lines: Vec<&str> = f.source.split('\n').collect();
        let mut taken = 0;
        for k in 1..lines.len() {
            let target = lines[k].trim_end();
            if target.trim().is_empty() {
                continue;
            }
            if per_function > 0 && taken == per_function {
                break;
            }
            let mut prompt = lines[..k].join("\n");
            prompt.push('\n');
            out.push(NextLineTask {
                prompt,
                target: target.to_string(),
            });
            taken += 1;
        }
    }
    out
}

/// The share of tasks whose greedy next line is the target, and the counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExactMatch {
    pub exact_match: f64,
    pub matched: usize,
    pub total: usize,
}

/// The greedy settings of these measures: `config` (its EOS and padding tokens) with greedy
/// decoding, `max_new_tokens`, the prompt cut from the left to fit, and `stop`.
fn greedy(config: &GenerationConfig, max_new_tokens: usize, stop: &[&str]) -> GenerationConfig {
    GenerationConfig {
        do_sample: false,
        num_beams: 1,
        num_return_sequences: 1,
        max_new_tokens,
        truncate_prompt: true,
        stop_strings: stop.iter().map(|s| s.to_string()).collect(),
        ..config.clone()
    }
}

/// Next-line exact match of `model` on `tasks` (see the module docs); `config` gives the EOS
/// and padding tokens, `max_new_tokens` bounds a line.
pub fn next_line_exact_match<M: PreTrainedModel>(
    model: &M,
    tokenizer: &Tokenizer,
    tasks: &[NextLineTask],
    config: &GenerationConfig,
    max_new_tokens: usize,
) -> Result<ExactMatch> {
    if tasks.is_empty() {
        return Err(Error::EmptyMetricInput {
            what: "the next-line tasks (no function has a second line)".into(),
        });
    }
    let c = greedy(config, max_new_tokens, &[]);
    let mut matched = 0;
    for t in tasks {
        let prompt = t.prompt.strip_suffix('\n').unwrap_or(&t.prompt);
        let text = model.generate_text(tokenizer, prompt, &c)?;
        if next_line(&text) == Some(t.target.as_str()) {
            matched += 1;
        }
    }
    Ok(ExactMatch {
        exact_match: matched as f64 / tasks.len() as f64,
        matched,
        total: tasks.len(),
    })
}

/// The line written after the prompt's last line, trailing whitespace stripped: `None` when
/// the text does not start with a newline.
fn next_line(text: &str) -> Option<&str> {
    text.strip_prefix('\n').map(first_line)
}

/// The text before the first newline, trailing whitespace stripped.
fn first_line(text: &str) -> &str {
    text.split('\n').next().unwrap_or("").trim_end()
}

/// The function's header (lines up to the first ending with `:`) and the `def`'s indentation;
/// `None` when no line ends with `:`.
fn header(source: &str) -> Option<(String, usize)> {
    let indent = source.len() - source.trim_start_matches([' ', '\t']).len();
    let mut out = String::new();
    for line in source.split('\n') {
        out.push_str(line);
        out.push('\n');
        if line.trim_end().ends_with(':') {
            return Some((out, indent));
        }
    }
    None
}

/// The body the model wrote, cut as the module docs say.
fn cut_body(generated: &str, indent: usize) -> String {
    let lines: Vec<&str> = generated.split('\n').collect();
    let mut keep = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let depth = line.len() - line.trim_start_matches([' ', '\t']).len();
        if !line.trim().is_empty() && depth <= indent {
            keep = i;
            break;
        }
    }
    let ended = keep < lines.len();
    let mut kept = lines[..keep].to_vec();
    if !ended {
        kept.pop();
    }
    kept.join("\n")
}

/// Dedents every line by `indent` characters of leading whitespace (fewer where a line has
/// fewer).
fn dedent(text: &str, indent: usize) -> String {
    text.split('\n')
        .map(|l| {
            let ws = l.len() - l.trim_start_matches([' ', '\t']).len();
            &l[ws.min(indent)..]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The functions the model writes from the headers of `functions` (see the module docs): one
/// snippet per function with a header, ready for
/// [`function_parse_rate`](super::function_parse_rate).
pub fn complete_function_bodies<M: PreTrainedModel>(
    model: &M,
    tokenizer: &Tokenizer,
    functions: &[PythonFunction],
    config: &GenerationConfig,
    max_new_tokens: usize,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in functions {
        let Some((head, indent)) = header(&f.source) else {
            continue;
        };
        let stops: &[&str] = if indent == 0 {
            &["\ndef ", "\nclass ", "\nif __name__"]
        } else {
            &[]
        };
        let c = greedy(config, max_new_tokens, stops);
        let prompt = head.strip_suffix('\n').unwrap_or(&head);
        let generated = model.generate_text(tokenizer, prompt, &c)?;
        // what it wrote on the header's own line (a comment, say) is not part of the body
        let after_header = generated.split_once('\n').map_or("", |(_, rest)| rest);
        let body = cut_body(after_header, indent);
        out.push(dedent(&format!("{head}{body}\n"), indent));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn func(source: &str) -> PythonFunction {
        PythonFunction {
            name: "f".into(),
            line: 1,
            source: source.into(),
        }
    }

    #[test]
    fn tasks_cut_after_each_line_and_skip_blank_targets() {
        let f = func("def f(x):\n    y = x  \n\n    return y");
        let t = next_line_tasks(std::slice::from_ref(&f), 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].prompt, "def f(x):\n");
        assert_eq!(t[0].target, "    y = x");
        assert_eq!(t[1].prompt, "def f(x):\n    y = x  \n\n");
        assert_eq!(t[1].target, "    return y");
        assert_eq!(next_line_tasks(&[f], 1).len(), 1);
    }

    #[test]
    fn the_next_line_is_the_one_after_the_newline_the_model_writes() {
        assert_eq!(next_line("\n    return x  \n"), Some("    return x"));
        assert_eq!(next_line("\n    return x"), Some("    return x"));
        // it went on with the prompt's last line: no prediction
        assert_eq!(next_line("  # comment\n    return x"), None);
        assert_eq!(next_line(""), None);
    }

    #[test]
    fn bodies_end_at_the_dedent_or_before_an_unfinished_line() {
        assert_eq!(first_line("  return 1   \nx"), "  return 1");
        assert_eq!(
            header("    def m(self,\n          x):\n        pass"),
            Some(("    def m(self,\n          x):\n".to_string(), 4))
        );
        let written = "        return 1\n\n    def other(self):\n";
        assert_eq!(cut_body(written, 4), "        return 1\n");
        assert_eq!(cut_body("    x = 1\n    y = (", 0), "    x = 1");
        assert_eq!(
            cut_body("    x = 1\n    y = 2\n", 0),
            "    x = 1\n    y = 2"
        );
        assert_eq!(
            dedent("    def m(self):\n        pass\n", 4),
            "def m(self):\n    pass\n"
        );
    }
}
