//! `massivetext dataset info|head`: the flags; the job is [`crate::jobs::dataset`].
use crate::data::{LoadOptions, SampleBy};
use crate::jobs::dataset::{DatasetSource, dataset_head, dataset_info};
use crate::{Error, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Splits, row counts, column names and types.
    Info {
        #[command(flatten)]
        source: Source,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The first rows, one JSON object per line. Text, CSV and JSON Lines are read only as far
    /// as the rows printed (CSV types are then guessed per cell, from those rows alone).
    Head {
        #[command(flatten)]
        source: Source,
        /// How many rows.
        #[arg(short = 'n', long, default_value_t = 5)]
        rows: usize,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Text,
    Csv,
    Json,
    Parquet,
    Arrow,
}

/// Which files, and how to read them.
#[derive(Debug, Args)]
pub struct Source {
    /// The loader: text, csv, json, parquet or arrow.
    #[arg(long, value_enum)]
    kind: Kind,
    /// json: the key of the list of rows in a top-level object.
    #[arg(long)]
    field: Option<String>,
    /// csv: the first row is data, not column names.
    #[arg(long)]
    no_header: bool,
    /// csv: the field delimiter (one character).
    #[arg(long, default_value = ",")]
    delimiter: String,
    /// text: line, paragraph or document.
    #[arg(long, default_value = "line")]
    sample_by: String,
    /// The columns to keep, comma-separated, in this order (every kind).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Files or globs; all go into split `train`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

impl Source {
    fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Text => "text",
            Kind::Csv => "csv",
            Kind::Json => "json",
            Kind::Parquet => "parquet",
            Kind::Arrow => "arrow",
        }
    }

    /// The files and the loader these flags name, checked.
    fn source(&self) -> Result<DatasetSource> {
        Ok(DatasetSource {
            kind: self.kind().to_string(),
            files: self.files.clone(),
            options: self.options()?,
        })
    }

    fn options(&self) -> Result<LoadOptions> {
        let delimiter = match self.delimiter.as_bytes() {
            [b] => *b,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "--delimiter must be one ASCII character, got {:?}",
                    self.delimiter
                )));
            }
        };
        let sample_by = match self.sample_by.as_str() {
            "line" => SampleBy::Line,
            "paragraph" => SampleBy::Paragraph,
            "document" => SampleBy::Document,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "--sample-by {other:?} is not one of: line, paragraph, document"
                )));
            }
        };
        Ok(LoadOptions {
            sample_by,
            delimiter,
            has_header: !self.no_header,
            field: self.field.clone(),
            columns: self.columns.clone(),
            ..LoadOptions::default()
        })
    }
}

pub fn run(cmd: DatasetCommand) -> Result<String> {
    match cmd {
        DatasetCommand::Info { source, json } => dataset_info(&source.source()?, json),
        DatasetCommand::Head { source, rows } => dataset_head(&source.source()?, rows),
    }
}
