//! `massivetext translate-train`: the flags; the job is [`crate::jobs::translate`].
//!
//! Settings come from the job's defaults (or `--quick`), then `--config job.toml` (tables
//! `[data]`, `[vocab]`, `[model]`, `[decode]`, `[training]`), then the flags.
use std::path::PathBuf;

use clap::Args;

use super::train::DeviceArg;
use super::values::{positive_steps, positive_usize};
use crate::Result;
use crate::jobs::translate::{TranslationJob, run_translation};

/// `massivetext translate-train [--data-dir DIR] [--output-dir DIR] [--max-steps N] ...`
#[derive(Debug, Default, Args)]
pub struct TranslateArgs {
    /// A TOML job file with [data], [vocab], [model], [decode] and [training] tables.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start from the one-minute settings (1,000 pairs, a 1 + 1 layer model, 60 steps).
    #[arg(long)]
    pub quick: bool,
    /// Print the settings as TOML (a job file for --config) and stop.
    #[arg(long)]
    pub print_config: bool,
    /// Where to train: auto picks a CUDA GPU when built with the `cuda` feature and one is present.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// The folder with `{split}.{lang}` files [default: ../shared/data/multi30k].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Source language suffix [default: en].
    #[arg(long, value_name = "LANG")]
    pub source_lang: Option<String>,
    /// Target language suffix [default: de].
    #[arg(long, value_name = "LANG")]
    pub target_lang: Option<String>,
    /// Folder for the model, tokenizer, translations.txt and report.json [default: translate-run].
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Train into a non-empty --output-dir anyway.
    #[arg(long)]
    pub overwrite_output_dir: bool,
    /// Resume from a checkpoint folder, or from the newest in --output-dir with `latest`.
    #[arg(long, value_name = "DIR|latest")]
    pub resume_from_checkpoint: Option<String>,
    /// Optimiser steps [default: 1500].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive_steps)]
    pub max_steps: Option<usize>,
    /// Joint vocabulary size [default: 4000].
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub vocab_size: Option<usize>,
    /// Use only the first N training pairs.
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub max_train_examples: Option<usize>,
    /// Translate only the first N test sentences.
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub max_test_examples: Option<usize>,
    /// Beams of the test translations [default: 4].
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub num_beams: Option<usize>,
    /// No progress bar or log lines.
    #[arg(long)]
    pub disable_tqdm: bool,
}

impl TranslateArgs {
    /// The job these flags describe.
    pub fn job(&self) -> Result<TranslationJob> {
        let mut job = match (&self.config, self.quick) {
            (Some(path), _) => TranslationJob::from_file(path)?,
            (None, true) => TranslationJob::quick(),
            (None, false) => TranslationJob::default(),
        };
        if let Some(d) = &self.data_dir {
            job.data.dir = d.clone();
        }
        if let Some(l) = &self.source_lang {
            job.data.source_lang = l.clone();
        }
        if let Some(l) = &self.target_lang {
            job.data.target_lang = l.clone();
        }
        if let Some(d) = &self.output_dir {
            job.training.output_dir = d.clone();
        }
        job.training.overwrite_output_dir |= self.overwrite_output_dir;
        if let Some(r) = &self.resume_from_checkpoint {
            job.training.resume_from_checkpoint = Some(r.clone());
        }
        job.training.disable_tqdm |= self.disable_tqdm;
        if let Some(n) = self.max_steps {
            job.training.max_steps = Some(n);
        }
        if let Some(n) = self.vocab_size {
            job.vocab.vocab_size = n;
        }
        if let Some(n) = self.max_train_examples {
            job.data.max_train_examples = Some(n);
        }
        if let Some(n) = self.max_test_examples {
            job.data.max_test_examples = Some(n);
        }
        if let Some(n) = self.num_beams {
            job.decode.num_beams = n;
        }
        job.training.validate()?;
        Ok(job)
    }

    pub fn run(&self) -> Result<String> {
        let job = self.job()?;
        if self.print_config {
            return job.to_toml();
        }
        let device = self.device.device()?;
        let quiet = job.training.disable_tqdm;
        let report = run_translation(&job, &device, |line| {
            if !quiet {
                eprintln!("{line}");
            }
        })?;
        Ok(format!(
            "{}\nwrote {}",
            report.summary(),
            job.training.output_dir.display()
        ))
    }
}
