//! `massivetext dataset info|head`.
use crate::data::{
    DatasetDict, LoadOptions, Row, SampleBy, load_dataset_with, load_streaming_with,
};
use crate::{Error, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
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
    /// parquet / arrow: the columns to read, comma-separated.
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

    fn load(&self) -> Result<DatasetDict> {
        load_dataset_with(self.kind(), self.files.clone(), &self.options()?)
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

    /// The first `n` rows read lazily, when the files stream (line text, CSV, JSON Lines).
    fn head_streaming(&self, n: usize) -> Option<Result<Vec<Row>>> {
        let options = match self.options() {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        let stream = load_streaming_with(self.kind(), self.files.clone(), &options).ok()?;
        Some(stream.take(n).iter().collect())
    }
}

pub fn run(cmd: DatasetCommand) -> Result<String> {
    match cmd {
        DatasetCommand::Info { source, json } => {
            let dd = source.load()?;
            Ok(if json {
                info_json(&dd).to_string()
            } else {
                info_text(&dd)
            })
        }
        DatasetCommand::Head { source, rows } => {
            if let Some(head) = source.head_streaming(rows) {
                let head = head?;
                let mut out = format!("# split train: first {} rows\n", head.len());
                for row in head {
                    out += &Value::Object(row).to_string();
                    out.push('\n');
                }
                return Ok(out.trim_end().to_string());
            }
            let dd = source.load()?;
            let mut out = String::new();
            for (name, ds) in dd.iter() {
                out += &format!(
                    "# split {name}: first {} of {} rows\n",
                    rows.min(ds.num_rows()),
                    ds.num_rows()
                );
                for row in ds.iter().take(rows) {
                    out += &Value::Object(row).to_string();
                    out.push('\n');
                }
            }
            Ok(out.trim_end().to_string())
        }
    }
}

/// `{"splits": {"train": {"num_rows": N, "columns": {"name": "type"}}}}`
pub fn info_json(dd: &DatasetDict) -> Value {
    let mut splits = Map::new();
    for (name, ds) in dd.iter() {
        let columns: Map<String, Value> = ds
            .features()
            .into_iter()
            .map(|(n, t)| (n, Value::from(t)))
            .collect();
        splits.insert(
            name.clone(),
            json!({"num_rows": ds.num_rows(), "columns": columns}),
        );
    }
    json!({ "splits": splits })
}

fn info_text(dd: &DatasetDict) -> String {
    let mut out = String::new();
    for (name, ds) in dd.iter() {
        out += &format!(
            "split {name}: {} rows, {} columns\n",
            ds.num_rows(),
            ds.num_columns()
        );
        for (col, dtype) in ds.features() {
            out += &format!("  {col}: {dtype}\n");
        }
    }
    out.trim_end().to_string()
}
