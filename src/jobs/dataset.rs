//! `massivetext dataset info|head`: what a dataset holds, from its files; returns what to print.
use crate::data::{DatasetDict, LoadOptions, Row, load_dataset_with, load_streaming_with};
use crate::{Error, Result};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

/// Which files, read by which loader (`text`, `csv`, `json`, `parquet`, `arrow`) and how; all go
/// into split `train`.
#[derive(Clone, Debug)]
pub struct DatasetSource {
    pub kind: String,
    pub files: Vec<PathBuf>,
    pub options: LoadOptions,
}

impl DatasetSource {
    fn load(&self) -> Result<DatasetDict> {
        self.check_files()?;
        load_dataset_with(&self.kind, self.files.clone(), &self.options)
    }

    /// A folder among the files is refused by name (reading one fails with the system's "Is a
    /// directory" or "No such device", which name neither the file nor what to do).
    fn check_files(&self) -> Result<()> {
        match self.files.iter().find(|f| f.is_dir()) {
            Some(dir) => Err(Error::InvalidArgument(format!(
                "{}: is a folder; `dataset` reads {} files, so name them (e.g. {}/*.{}); a folder written by save_to_disk loads with load_from_disk",
                dir.display(),
                self.kind,
                dir.display(),
                self.kind
            ))),
            None => Ok(()),
        }
    }

    /// The first `n` rows read lazily, when the files stream (line text, CSV, JSON Lines).
    fn head_streaming(&self, n: usize) -> Option<Result<Vec<Row>>> {
        if let Err(e) = self.check_files() {
            return Some(Err(e));
        }
        let stream = load_streaming_with(&self.kind, self.files.clone(), &self.options).ok()?;
        Some(stream.take(n).iter().collect())
    }
}

/// `massivetext dataset info`: splits, row counts, column names and types, as text or as one
/// JSON object ([`info_json`]).
pub fn dataset_info(source: &DatasetSource, json: bool) -> Result<String> {
    let dd = source.load()?;
    Ok(if json {
        info_json(&dd).to_string()
    } else {
        info_text(&dd)
    })
}

/// `massivetext dataset head`: the first `rows` rows of each split, one JSON object per line;
/// files that stream are read only as far as those rows.
pub fn dataset_head(source: &DatasetSource, rows: usize) -> Result<String> {
    if let Some(head) = source.head_streaming(rows) {
        let head = head?;
        let mut out = format!("# split train: first {} rows\n", head.len());
        for row in head {
            out += &Value::from(row).to_string();
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
            out += &Value::from(row).to_string();
            out.push('\n');
        }
    }
    Ok(out.trim_end().to_string())
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
