//! `load_dataset` for text, CSV and JSON files.
use super::{Column, Dataset, DatasetDict};
use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const KINDS: &str = "text, csv, json";

/// Load `files` as one `train` split.
///
/// Kinds: `text` (one row per line in column `text`), `csv` (header row gives the names; types
/// inferred per column), `json` (JSON Lines or one top-level array of objects).
pub fn load_dataset<P: AsRef<Path>>(kind: &str, files: &[P]) -> Result<DatasetDict> {
    if !KINDS.split(", ").any(|k| k == kind) {
        return Err(Error::UnknownKind {
            kind: kind.to_string(),
            supported: KINDS.into(),
        });
    }
    let mut parts = Vec::new();
    for f in files {
        let path = f.as_ref().to_path_buf();
        let text = read_utf8(&path)?;
        parts.push(match kind {
            "text" => load_text(&text),
            "csv" => load_csv(&path, &text)?,
            _ => load_json(&path, &text)?,
        });
    }
    let mut columns: Vec<Column> = Vec::new();
    for part in parts {
        if columns.is_empty() {
            columns = part;
            continue;
        }
        for (c, p) in columns.iter_mut().zip(part) {
            c.values.extend(p.values);
        }
    }
    Ok(DatasetDict {
        splits: BTreeMap::from([("train".to_string(), Dataset::from_columns(columns))]),
    })
}

fn read_utf8(path: &PathBuf) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let mut text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        path: path.clone(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..3);
    }
    Ok(text)
}

fn load_text(text: &str) -> Vec<Column> {
    vec![Column {
        name: "text".into(),
        values: text.lines().map(|l| Value::String(l.to_string())).collect(),
    }]
}

fn load_csv(path: &Path, text: &str) -> Result<Vec<Column>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        if record.len() != names.len() {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: record.position().map_or(0, |p| p.line()),
                column: 0,
                message: format!("expected {} fields, found {}", names.len(), record.len()),
            });
        }
        for (col, field) in cells.iter_mut().zip(record.iter()) {
            col.push(field.to_string());
        }
    }
    Ok(names
        .into_iter()
        .zip(cells)
        .map(|(name, raw)| Column {
            name,
            values: infer(raw),
        })
        .collect())
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: e.position().map_or(0, |p| p.line()),
        column: 0,
        message: e.to_string(),
    }
}

/// One type for the whole column: integer, else float, else bool, else string; empty = null.
fn infer(raw: Vec<String>) -> Vec<Value> {
    let present = || raw.iter().filter(|s| !s.is_empty());
    let convert: fn(&str) -> Value = if present().all(|s| s.parse::<i64>().is_ok()) {
        |s| Value::from(s.parse::<i64>().unwrap_or_default())
    } else if present().all(|s| s.parse::<f64>().is_ok()) {
        |s| Value::from(s.parse::<f64>().unwrap_or_default())
    } else if present().all(|s| matches!(s.to_ascii_lowercase().as_str(), "true" | "false")) {
        |s| Value::Bool(s.eq_ignore_ascii_case("true"))
    } else {
        |s| Value::String(s.to_string())
    };
    raw.iter()
        .map(|s| {
            if s.is_empty() {
                Value::Null
            } else {
                convert(s)
            }
        })
        .collect()
}

fn load_json(path: &Path, text: &str) -> Result<Vec<Column>> {
    let rows: Vec<Value> = if text.trim_start().starts_with('[') {
        match serde_json::from_str(text).map_err(|e| json_error(path, e, 0))? {
            Value::Array(rows) => rows,
            _ => Vec::new(),
        }
    } else {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                rows.push(serde_json::from_str(line).map_err(|e| json_error(path, e, i))?);
            }
        }
        rows
    };
    let mut columns: Vec<Column> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(map) = row else {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: i as u64 + 1,
                column: 0,
                message: "expected a JSON object per row".into(),
            });
        };
        for (k, _) in map {
            if !columns.iter().any(|c| &c.name == k) {
                columns.push(Column {
                    name: k.clone(),
                    values: vec![Value::Null; i],
                });
            }
        }
        for c in columns.iter_mut() {
            c.values
                .push(map.get(&c.name).cloned().unwrap_or(Value::Null));
        }
    }
    Ok(columns)
}

fn json_error(path: &Path, e: serde_json::Error, line_offset: usize) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: (e.line() + line_offset) as u64,
        column: e.column() as u64,
        message: e.to_string(),
    }
}
