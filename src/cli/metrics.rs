//! `massivetext metrics bleu|chrf|rouge`: the flags; the job is [`crate::jobs::metrics`].
use super::values::number;
use crate::Result;
use crate::jobs::metrics::{ScoreFiles, score_bleu, score_chrf, score_rouge};
use crate::metrics::{Bleu, Chrf, RougeOptions, RougeScorer, Smoothing, Tokenize};
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Score line-aligned files like sacrebleu / rouge-score.
#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Corpus BLEU as sacrebleu computes it (0-100).
    Bleu(BleuArgs),
    /// Corpus chrF (or chrF++ with --word-order 2) as sacrebleu computes it (0-100).
    Chrf(ChrfArgs),
    /// ROUGE as rouge-score computes it: mean precision, recall and F-measure (0-1).
    Rouge(RougeArgs),
}

/// The files every metric reads.
#[derive(Debug, Args)]
pub struct Files {
    /// The system output, one segment per line.
    #[arg(long, value_name = "FILE")]
    pub hyp: PathBuf,
    /// A reference file with as many lines as --hyp; repeat for several references.
    #[arg(long = "ref", value_name = "FILE", required = true)]
    pub refs: Vec<PathBuf>,
    /// Print one JSON object instead of the one-line summary.
    #[arg(long)]
    pub json: bool,
}

impl Files {
    fn score_files(&self) -> ScoreFiles {
        ScoreFiles {
            hyp: self.hyp.clone(),
            refs: self.refs.clone(),
            json: self.json,
        }
    }
}

/// `massivetext metrics bleu --hyp FILE --ref FILE...`
#[derive(Debug, Args)]
pub struct BleuArgs {
    #[command(flatten)]
    pub files: Files,
    /// sacrebleu's tokenizer applied before counting n-grams.
    #[arg(long, value_name = "TOK", default_value = "13a",
          value_parser = PossibleValuesParser::new(Tokenize::NAMES))]
    pub tokenize: String,
    /// Lowercase hypotheses and references first.
    #[arg(long)]
    pub lowercase: bool,
    /// How n-gram precisions of 0 are smoothed (Chen & Cherry 2014).
    #[arg(long, value_name = "METHOD", default_value = "exp",
          value_parser = PossibleValuesParser::new(Smoothing::NAMES))]
    pub smooth_method: String,
    /// The value for floor (default 0.1) or add-k (default 1).
    #[arg(long, value_name = "V", value_parser = number)]
    pub smooth_value: Option<f64>,
}

/// `massivetext metrics chrf --hyp FILE --ref FILE...`
#[derive(Debug, Args)]
pub struct ChrfArgs {
    #[command(flatten)]
    pub files: Files,
    /// Word n-gram order: 0 for chrF, 2 for chrF++.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=4))]
    pub word_order: u8,
    /// Lowercase hypotheses and references first.
    #[arg(long)]
    pub lowercase: bool,
}

/// `massivetext metrics rouge --hyp FILE --ref FILE...`
#[derive(Debug, Args)]
pub struct RougeArgs {
    #[command(flatten)]
    pub files: Files,
    /// ROUGE types, comma- or space-separated: rouge1 .. rouge9, rougeL, rougeLsum.
    #[arg(long, value_name = "TYPES", num_args = 1.., value_delimiter = ',',
          default_values = ["rouge1", "rouge2", "rougeL"])]
    pub rouge_types: Vec<String>,
    /// Porter-stem words before matching (rouge-score's use_stemmer).
    #[arg(long)]
    pub stemmer: bool,
}

pub fn run(cmd: &MetricsCommand) -> Result<String> {
    match cmd {
        MetricsCommand::Bleu(a) => {
            let bleu = Bleu {
                tokenize: a.tokenize.parse::<Tokenize>()?,
                lowercase: a.lowercase,
                smoothing: Smoothing::parse(&a.smooth_method, a.smooth_value)?,
                ..Bleu::default()
            };
            score_bleu(&a.files.score_files(), &bleu)
        }
        MetricsCommand::Chrf(a) => {
            let chrf = Chrf {
                word_order: usize::from(a.word_order),
                lowercase: a.lowercase,
                ..Chrf::default()
            };
            score_chrf(&a.files.score_files(), &chrf)
        }
        MetricsCommand::Rouge(a) => {
            // `--rouge-types "rouge1 rougeL"` (one quoted word) also works.
            let types: Vec<&str> = a
                .rouge_types
                .iter()
                .flat_map(|t| t.split_whitespace())
                .collect();
            let scorer = RougeScorer::new(
                &types,
                RougeOptions {
                    use_stemmer: a.stemmer,
                },
            )?;
            score_rouge(&a.files.score_files(), &scorer)
        }
    }
}
