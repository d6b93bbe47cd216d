//! How the code job measures a model: bits per byte on the held-out files, next-line exact
//! match and the parse rate of generated function bodies, with the sizes of [`CodeEvalSpec`].
//! Any causal LM with its tokenizer goes through [`code_metrics`] (the job's model from scratch,
//! a pretrained model, a LoRA-tuned one), so the numbers of one report compare.
use serde::{Deserialize, Serialize};

use super::code_corpus::CodeCorpus;
use crate::Result;
use crate::generate::GenerationConfig;
use crate::metrics::{
    PythonFunction, bits_per_byte_of_texts_within, complete_function_bodies, function_parse_rate,
    next_line_exact_match, next_line_tasks, python_functions,
};
use crate::models::PreTrainedModel;
use crate::tokenizer::Tokenizer;

/// How much of the held-out set the generation metrics use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodeEvalSpec {
    /// Next-line tasks per function, and in all.
    pub lines_per_function: usize,
    pub max_next_line_tasks: usize,
    /// New tokens for one line.
    pub next_line_max_new_tokens: usize,
    /// Functions whose bodies are generated for the parse rate.
    pub max_body_functions: usize,
    /// New tokens for one body.
    pub body_max_new_tokens: usize,
    /// Rows per forward pass for bits per byte.
    pub batch_size: usize,
    /// Bits per byte scores rows of at most this many tokens (and the model's context), so a
    /// pretrained model with a long context is scored in windows like the small one's.
    pub context: usize,
}

impl Default for CodeEvalSpec {
    fn default() -> Self {
        Self {
            lines_per_function: 2,
            max_next_line_tasks: 200,
            next_line_max_new_tokens: 32,
            max_body_functions: 100,
            body_max_new_tokens: 96,
            batch_size: 8,
            context: 256,
        }
    }
}

/// The three code metrics of one model on the held-out files.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CodeMetrics {
    pub bits_per_byte: f64,
    /// Mean held-out loss per token, in nats.
    pub loss_per_token: f64,
    pub next_line_exact_match: f64,
    pub next_line_tasks: usize,
    pub parse_rate: f64,
    pub bodies: usize,
    /// A generated function, to look at.
    pub example_body: Option<String>,
}

/// The functions of the held-out files, in file order.
pub fn held_out_functions(corpus: &CodeCorpus) -> Result<Vec<PythonFunction>> {
    let mut out = Vec::new();
    for f in &corpus.held_out {
        out.extend(python_functions(&f.text)?);
    }
    Ok(out)
}

/// Bits per byte, next-line exact match and parse rate of `model` on the held-out files and
/// their `functions` (any causal LM with its tokenizer: the job's model, or a pretrained one).
pub fn code_metrics<M: PreTrainedModel>(
    model: &M,
    tok: &Tokenizer,
    corpus: &CodeCorpus,
    functions: &[PythonFunction],
    eval: &CodeEvalSpec,
) -> Result<CodeMetrics> {
    let texts: Vec<&str> = corpus.held_out.iter().map(|f| f.text.as_str()).collect();
    let bpb = bits_per_byte_of_texts_within(model, tok, &texts, eval.batch_size, eval.context)?;
    let eos = tok.eos_token_id();
    let config = GenerationConfig {
        eos_token_id: eos.into_iter().collect(),
        pad_token_id: eos,
        ..Default::default()
    };
    let mut tasks = next_line_tasks(functions, eval.lines_per_function);
    tasks.truncate(eval.max_next_line_tasks);
    let em = next_line_exact_match(model, tok, &tasks, &config, eval.next_line_max_new_tokens)?;
    let some = &functions[..functions.len().min(eval.max_body_functions)];
    let bodies = complete_function_bodies(model, tok, some, &config, eval.body_max_new_tokens)?;
    let rate = function_parse_rate(&bodies)?;
    Ok(CodeMetrics {
        bits_per_byte: bpb.bits_per_byte,
        loss_per_token: bpb.loss_per_token(),
        next_line_exact_match: em.exact_match,
        next_line_tasks: em.total,
        parse_rate: rate.rate,
        bodies: rate.total,
        example_body: bodies.first().cloned(),
    })
}
