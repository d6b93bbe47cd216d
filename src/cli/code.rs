//! `massivetext code`: the flags; the job is [`crate::jobs::code`].
use std::path::PathBuf;

use clap::Args;

use super::train::DeviceArg;
use super::values::{positive_steps, positive_usize};
use crate::Result;
use crate::jobs::code::{CodeJob, run_code_job};

/// `massivetext code [--quick] [--config job.toml] [--stdlib DIR] [--max-steps N] ...`
#[derive(Debug, Args)]
pub struct CodeArgs {
    /// A TOML job file (`[corpus]`, `[model]`, `[eval]`, `[training]`, `[pretrained]`); flags
    /// override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A run of seconds that shows every step (30 files, a 2-layer model, 30 steps).
    #[arg(long)]
    pub quick: bool,
    /// Print the job as TOML and stop.
    #[arg(long)]
    pub print_config: bool,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// The interpreter whose standard library is the corpus [default: python3].
    #[arg(long, value_name = "PYTHON")]
    pub python: Option<String>,
    /// The corpus folder itself, instead of asking the interpreter (any folder of .py files).
    #[arg(long, value_name = "DIR")]
    pub stdlib: Option<PathBuf>,
    /// Where the model, tokenizer, file lists and code_report.json go [default: code-run].
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Write into a folder that already holds a run.
    #[arg(long)]
    pub overwrite_output_dir: bool,
    /// Optimisation steps.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive_steps)]
    pub max_steps: Option<usize>,
    /// Tokenizer vocabulary.
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub vocab_size: Option<usize>,
    /// At most this many training files.
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub max_train_files: Option<usize>,
    /// A pretrained causal LM as a GGUF file (SmolLM2-135M-Instruct's, say), measured as read
    /// and after a LoRA fine-tune on the same training files (`[pretrained]` of the job file).
    #[arg(long, value_name = "FILE.gguf")]
    pub base_model: Option<PathBuf>,
    /// Optimisation steps of the LoRA fine-tune.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive_steps)]
    pub lora_steps: Option<usize>,
    /// Print one JSON object (the report) instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bar or log lines.
    #[arg(long)]
    pub disable_tqdm: bool,
}

impl CodeArgs {
    /// The job these flags describe.
    pub fn job(&self) -> Result<CodeJob> {
        let mut job = match (&self.config, self.quick) {
            (Some(path), _) => CodeJob::from_file(path)?,
            (None, true) => CodeJob::quick(),
            (None, false) => CodeJob::default(),
        };
        if let Some(p) = &self.python {
            job.corpus.python = p.clone();
        }
        if let Some(d) = &self.stdlib {
            job.corpus.stdlib = Some(d.clone());
        }
        if let Some(d) = &self.output_dir {
            job.training.output_dir = d.clone();
        }
        job.training.overwrite_output_dir |= self.overwrite_output_dir;
        job.training.disable_tqdm |= self.disable_tqdm;
        if let Some(n) = self.max_steps {
            job.training.max_steps = Some(n);
        }
        if let Some(n) = self.vocab_size {
            job.model.vocab_size = n;
        }
        if let Some(n) = self.max_train_files {
            job.corpus.max_train_files = n;
        }
        if let Some(p) = &self.base_model {
            job.pretrained.gguf = Some(p.clone());
        }
        if let Some(n) = self.lora_steps {
            job.pretrained.max_steps = n;
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
        let quiet = job.training.disable_tqdm || self.json;
        let report = run_code_job(&job, &device, |line| {
            if !quiet {
                eprintln!("{line}");
            }
        })?;
        if self.json {
            return serde_json::to_string_pretty(&report).map_err(|e| {
                crate::Error::InvalidArgument(format!("cannot write the report as JSON: {e}"))
            });
        }
        Ok(format!(
            "{}\nwrote {}",
            report.summary(),
            job.training.output_dir.display()
        ))
    }
}
