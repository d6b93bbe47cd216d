//! `load_dataset` for text, CSV and JSON files, with Hugging Face `datasets` semantics.
use super::arrow::strings;
use super::cache::cached;
use super::csv_quotes::QuoteScanner;
use super::ipc::read_arrow_files;
use super::table::Table;
use super::text::{load_lines, splitlines_into};
use super::{Column, DataFiles, Dataset, DatasetDict, Row};
use crate::{Error, Result};
use arrow_array::Array;
use arrow_schema::{Field, Schema};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The kinds `load_dataset` understands.
pub const KINDS: [&str; 5] = ["text", "csv", "json", "parquet", "arrow"];

/// The kinds that are parsed (and so cached as Arrow) and that stream.
pub(crate) const PARSED_KINDS: [&str; 3] = ["text", "csv", "json"];

/// How the `text` loader cuts a file into rows (HF's `sample_by`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SampleBy {
    /// One row per line (the default).
    #[default]
    Line,
    /// One row per block separated by a blank line (`"\n\n"`); empty blocks are dropped.
    Paragraph,
    /// One row per file.
    Document,
}

/// Options of `load_dataset_with`, named as in Hugging Face `datasets`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// text: how to cut the file into rows.
    pub sample_by: SampleBy,
    /// text: keep the `\n` at the end of each line.
    pub keep_linebreaks: bool,
    /// csv: the field delimiter.
    pub delimiter: u8,
    /// csv: `false` when the first row is data, not names.
    pub has_header: bool,
    /// csv: column names to use (required by HF when there is no header; here they default to
    /// `column_0`, `column_1`, ...).
    pub column_names: Option<Vec<String>>,
    /// json: the key of the list of rows inside a top-level object.
    pub field: Option<String>,
    /// The columns to keep, in this order (`None`: all); a name the files lack is an error.
    /// Parquet decodes only these; text, CSV and JSON are parsed (and cached) whole, then these
    /// are kept.
    pub columns: Option<Vec<String>>,
    /// text / csv / json: parse into memory every time instead of writing the Arrow form to
    /// the cache once and memory-mapping it on later loads (see the cache folder in the
    /// module doc of `load_dataset`).
    pub keep_in_memory: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            sample_by: SampleBy::Line,
            keep_linebreaks: false,
            delimiter: b',',
            has_header: true,
            column_names: None,
            field: None,
            columns: None,
            keep_in_memory: false,
        }
    }
}

/// Loads a dataset of `kind` (`"text"`, `"csv"`, `"json"`, `"parquet"` or `"arrow"`) from
/// `data_files`: a path, a list of paths or globs (split `train`), or a [`DataFiles`] map of
/// named splits.
///
/// The columns are Arrow arrays. Text, CSV and JSON are parsed once and their Arrow form written
/// to a cache folder (`$MASSIVETEXT_DATASETS_CACHE`, default `~/.cache/massivetext/datasets`;
/// `off` disables it), keyed by the files' paths, sizes and modification times; later loads
/// memory-map it, so they take neither the parse time nor the data's size in memory. As in
/// `datasets`, an edit that keeps a file's size and restores its modification time is not
/// seen: set `MASSIVETEXT_DATASETS_CACHE_HASH=1` to key files up to 64 MB by their contents
/// too, or [`LoadOptions::keep_in_memory`] to parse every time. Parquet is decoded into
/// memory; Arrow IPC files (`"arrow"`, as `datasets` caches and saves them) are memory-mapped.
/// Every Arrow file is validated before use (a damaged cache entry is rebuilt).
///
/// ```
/// # use massivetext::prelude::*;
/// # let dir = tempfile::tempdir().unwrap();
/// # let p = dir.path().join("a.csv");
/// # std::fs::write(&p, "label,text\n1,hello\n0,world\n").unwrap();
/// let dd = load_dataset("csv", &p)?;
/// assert_eq!(dd["train"].column_names(), ["label", "text"]);
/// # Ok::<(), massivetext::Error>(())
/// ```
pub fn load_dataset(kind: &str, data_files: impl Into<DataFiles>) -> Result<DatasetDict> {
    load_dataset_with(kind, data_files, &LoadOptions::default())
}

/// [`load_dataset`] with options (`sample_by`, `delimiter`, `field`, ...).
pub fn load_dataset_with(
    kind: &str,
    data_files: impl Into<DataFiles>,
    options: &LoadOptions,
) -> Result<DatasetDict> {
    crate::threads::init();
    check_kind(kind)?;
    let mut dd = DatasetDict::default();
    for (split, files) in data_files.into().resolve()? {
        dd.insert(split, load_split(kind, &files, options)?);
    }
    Ok(dd)
}

pub(crate) fn check_kind(kind: &str) -> Result<()> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(Error::UnknownKind {
            kind: kind.to_string(),
            supported: KINDS.join(", "),
        })
    }
}

fn load_split(kind: &str, files: &[PathBuf], options: &LoadOptions) -> Result<Dataset> {
    match kind {
        "parquet" => load_parquet(files, options),
        "arrow" => {
            let ds = read_arrow_files(files, None)?;
            match &options.columns {
                Some(cols) => select_columns(&ds, cols, &files[0]),
                None => Ok(ds),
            }
        }
        _ => {
            // the whole file is parsed (and cached) once; `columns` picks from it
            let parse = LoadOptions {
                columns: None,
                ..options.clone()
            };
            let ds = if options.keep_in_memory {
                parse_split(kind, files, &parse)?
            } else {
                cached(kind, files, &format!("{parse:?}"), || {
                    parse_split(kind, files, &parse)
                })?
            };
            match &options.columns {
                Some(cols) => select_columns(&ds, cols, &files[0]),
                None => Ok(ds),
            }
        }
    }
}

/// The columns `cols`, in that order, or an error naming the file and its columns.
fn select_columns(ds: &Dataset, cols: &[String], path: &Path) -> Result<Dataset> {
    let mut keep = Vec::with_capacity(cols.len());
    for c in cols {
        keep.push(ds.column_index(c).map_err(|_| {
            Error::InvalidArgument(format!(
                "{}: no column `{c}` to select; the file's columns are: {}",
                path.display(),
                ds.column_names().join(", ")
            ))
        })?);
    }
    Ok(Dataset::from_table(ds.table().project(&keep)?, None))
}

#[cfg(feature = "parquet")]
fn load_parquet(files: &[PathBuf], options: &LoadOptions) -> Result<Dataset> {
    let mut tables = Vec::with_capacity(files.len());
    for path in files {
        let t = super::parquet::read_parquet(path, options.columns.as_deref())?;
        if let Some(first) = tables.first().map(|t: &Table| t.schema.clone())
            && first.fields() != t.schema.fields()
        {
            return Err(Error::InvalidArgument(format!(
                "{} has columns {:?} but the first file has {:?}; all files of a split need the same columns and types",
                path.display(),
                t.schema.fields(),
                first.fields()
            )));
        }
        tables.push(t);
    }
    let schema = tables[0].schema.clone();
    let batches = tables.into_iter().flat_map(|t| t.batches).collect();
    Dataset::from_record_batches(schema, batches)
}

#[cfg(not(feature = "parquet"))]
fn load_parquet(_files: &[PathBuf], _options: &LoadOptions) -> Result<Dataset> {
    Err(Error::Unsupported(
        "load_dataset(\"parquet\") needs massivetext's `parquet` feature (on by default; builds with default-features = false, such as the notebooks', leave it out): add features = [\"parquet\"]".into(),
    ))
}

/// Parses text, CSV or JSON files into one dataset.
fn parse_split(kind: &str, files: &[PathBuf], options: &LoadOptions) -> Result<Dataset> {
    match kind {
        "text" if options.sample_by == SampleBy::Line => Ok(Dataset::from_table(
            load_lines(files, options.keep_linebreaks)?,
            None,
        )),
        "text" => {
            let mut rows = Vec::new();
            for path in files {
                rows.extend(split_text(&read_utf8(path)?, options));
            }
            let array = strings(rows.iter().map(|s| Some(s.as_str())));
            drop(rows);
            let field = Field::new("text", array.data_type().clone(), true);
            let n = array.len();
            Ok(Dataset::from_table(
                Table::from_arrays(Arc::new(Schema::new(vec![field])), vec![array], n)?,
                None,
            ))
        }
        "csv" => {
            let mut table: Option<(Vec<String>, Vec<Vec<String>>)> = None;
            for path in files {
                let (names, cells) = parse_csv(path, &read_utf8(path)?, options)?;
                match &mut table {
                    None => table = Some((names, cells)),
                    Some((first, all)) => {
                        if *first != names {
                            return Err(Error::InvalidArgument(format!(
                                "{} has columns [{}] but the first file has [{}]; all files of a split need the same columns",
                                path.display(),
                                names.join(", "),
                                first.join(", ")
                            )));
                        }
                        for (col, more) in all.iter_mut().zip(cells) {
                            col.extend(more);
                        }
                    }
                }
            }
            let (names, cells) = table.unwrap_or_default();
            Dataset::from_columns(
                names
                    .into_iter()
                    .zip(cells)
                    .map(|(name, raw)| Column::new(name, infer_column(raw)))
                    .collect(),
            )
        }
        _ => {
            let mut rows = Vec::new();
            for path in files {
                rows.extend(parse_json(
                    path,
                    &read_utf8(path)?,
                    options.field.as_deref(),
                )?);
            }
            Ok(Dataset::from_rows(rows))
        }
    }
}

/// Reads a whole file as UTF-8, dropping a byte-order mark; bad bytes are reported by offset.
pub(crate) fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..3);
    }
    Ok(text)
}

/// Cuts text into rows as HF's text builder does: universal newlines (`\r\n` and `\r` read as
/// `\n`), then lines, blank-line paragraphs, or the whole document.
pub(crate) fn split_text<'a>(
    text: &'a str,
    options: &LoadOptions,
) -> Box<dyn Iterator<Item = String> + 'a> {
    let text: std::borrow::Cow<'a, str> = if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        text.into()
    };
    match options.sample_by {
        SampleBy::Line => {
            let mut ranges = Vec::new();
            splitlines_into(&text, options.keep_linebreaks, &mut ranges);
            let lines: Vec<String> = ranges
                .iter()
                .map(|&(s, e)| text[s..e].to_string())
                .collect();
            Box::new(lines.into_iter())
        }
        SampleBy::Paragraph => {
            let paras: Vec<String> = text
                .split("\n\n")
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            Box::new(paras.into_iter())
        }
        SampleBy::Document => Box::new((!text.is_empty()).then(|| text.into_owned()).into_iter()),
    }
}

/// Parses one CSV file (RFC 4180 quoting, quoted newlines, CRLF) into names and raw cells.
fn parse_csv(
    path: &Path,
    text: &str,
    options: &LoadOptions,
) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut quotes = QuoteScanner::new(options.delimiter);
    quotes.feed(text.as_bytes());
    quotes.finish(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(options.has_header)
        .delimiter(options.delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = if options.has_header {
        reader
            .headers()
            .map_err(|e| csv_error(path, e))?
            .iter()
            .enumerate()
            // pandas (and so HF) names an empty header cell `Unnamed: i`.
            .map(|(i, h)| {
                if h.is_empty() {
                    format!("Unnamed: {i}")
                } else {
                    h.to_string()
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut names = options.column_names.clone().unwrap_or(header);
    unique_names(&mut names);
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        if names.is_empty() {
            names = (0..record.len()).map(|i| format!("column_{i}")).collect();
            cells = vec![Vec::new(); names.len()];
        }
        if record.len() != names.len() {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: record.position().map_or(0, |p| p.line()),
                column: 0,
                message: format!(
                    "expected {} fields ({}), found {}; quote fields that contain the delimiter",
                    names.len(),
                    names.join(", "),
                    record.len()
                ),
            });
        }
        for (col, field) in cells.iter_mut().zip(record.iter()) {
            col.push(field.to_string());
        }
    }
    Ok((names, cells))
}

/// Repeated column names get `.1`, `.2`, ... as pandas (and so `datasets`) names them:
/// `a, a, b, a` becomes `a, a.1, b, a.2`.
pub(crate) fn unique_names(names: &mut [String]) {
    let mut used = std::collections::HashSet::new();
    for name in names.iter_mut() {
        let base = name.clone();
        let mut k = 1;
        while !used.insert(name.clone()) {
            *name = format!("{base}.{k}");
            k += 1;
        }
    }
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
fn infer_column(raw: Vec<String>) -> Vec<Value> {
    let present = || raw.iter().filter(|s| !s.is_empty());
    let is_bool = |s: &&String| s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false");
    let convert: fn(String) -> Value = if present().all(|s| s.parse::<i64>().is_ok()) {
        |s| s.parse::<i64>().map_or(Value::Null, Value::from)
    } else if present().all(|s| s.parse::<f64>().is_ok()) {
        |s| s.parse::<f64>().map_or(Value::Null, Value::from)
    } else if present().all(|s| is_bool(&s)) {
        |s| Value::Bool(s.eq_ignore_ascii_case("true"))
    } else {
        Value::String
    };
    raw.into_iter()
        .map(|s| {
            if s.is_empty() {
                Value::Null
            } else {
                convert(s)
            }
        })
        .collect()
}

/// Parses JSON Lines, one top-level array of objects, or the list under `field`.
fn parse_json(path: &Path, text: &str, field: Option<&str>) -> Result<Vec<Row>> {
    let values: Vec<Value> = if let Some(field) = field {
        let doc: Value = serde_json::from_str(text).map_err(|e| json_error(path, &e, 0))?;
        match doc.get(field) {
            Some(Value::Array(rows)) => rows.clone(),
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: field `{field}` holds {}, not a list of rows",
                    path.display(),
                    json_kind(other)
                )));
            }
            None => {
                let keys = doc
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                return Err(Error::InvalidArgument(format!(
                    "{}: no field `{field}` in the top-level object; its keys are: {keys}",
                    path.display()
                )));
            }
        }
    } else if text.trim_start().starts_with('[') {
        match serde_json::from_str(text).map_err(|e| json_error(path, &e, 0))? {
            Value::Array(rows) => rows,
            _ => Vec::new(),
        }
    } else {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                rows.push(serde_json::from_str(line).map_err(|e| json_error(path, &e, i))?);
            }
        }
        rows
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(row) => Ok(Row::from(row)),
            other => Err(Error::InvalidArgument(format!(
                "{}: row {} is {}, expected a JSON object; for a top-level object holding the rows use the `field` option",
                path.display(),
                i + 1,
                json_kind(&other)
            ))),
        })
        .collect()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn json_error(path: &Path, e: &serde_json::Error, line_offset: usize) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: (e.line() + line_offset) as u64,
        column: e.column() as u64,
        message: format!("malformed JSON: {e}"),
    }
}
