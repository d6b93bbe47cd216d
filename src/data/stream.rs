//! Streaming datasets (HF's `streaming=True`): rows are read lazily, file by file, so a corpus
//! larger than memory is iterated with bounded memory.
use super::csv_quotes::QuoteCheckedReader;
use super::load::{
    KINDS, LoadOptions, PARSED_KINDS, SampleBy, check_kind, json_error, unique_names,
};
use super::{DataFiles, Row};
use crate::{Error, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type RowIter = Box<dyn Iterator<Item = Result<Row>> + Send>;
/// A recorded filter: whether to keep a row, or why that cannot be told.
type Keep = Arc<dyn Fn(&Row) -> Result<bool> + Send + Sync>;

#[derive(Clone)]
enum Step {
    Map(Arc<dyn Fn(Row) -> Result<Row> + Send + Sync>),
    Filter(Keep),
    Take(usize),
    Skip(usize),
}

/// A lazily read dataset: `map`, `filter`, `take` and `skip` are recorded and applied while
/// iterating. Cloning is cheap; every `iter()` starts again from the first file.
#[derive(Clone)]
pub struct IterableDataset {
    kind: String,
    files: Vec<PathBuf>,
    options: LoadOptions,
    steps: Vec<Step>,
}

impl std::fmt::Debug for IterableDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IterableDataset {{ kind: {:?}, files: {:?}, steps: {} }}",
            self.kind,
            self.files,
            self.steps.len()
        )
    }
}

/// Opens the `train` split of `data_files` for streaming.
pub fn load_streaming(kind: &str, data_files: impl Into<DataFiles>) -> Result<IterableDataset> {
    load_streaming_with(kind, data_files, &LoadOptions::default())
}

/// [`load_streaming`] with options. Only line-by-line text, CSV and JSON Lines stream with
/// bounded memory; a JSON array or a `field` needs the whole file and is rejected here.
pub fn load_streaming_with(
    kind: &str,
    data_files: impl Into<DataFiles>,
    options: &LoadOptions,
) -> Result<IterableDataset> {
    check_kind(kind)?;
    if !PARSED_KINDS.contains(&kind) {
        return Err(Error::InvalidArgument(format!(
            "streaming reads {}; open {kind} files with load_dataset (Arrow files are memory-mapped, so they need no streaming)",
            PARSED_KINDS.join(", ")
        )));
    }
    if kind == "json" && options.field.is_some() {
        return Err(Error::InvalidArgument(
            "streaming reads JSON Lines; a `field` inside one JSON document needs load_dataset"
                .into(),
        ));
    }
    if kind == "text" && options.sample_by != SampleBy::Line {
        return Err(Error::InvalidArgument(
            "streaming text reads line by line; use load_dataset for sample_by paragraph or document".into(),
        ));
    }
    let files = data_files.into().resolve()?;
    let files = files
        .get("train")
        .cloned()
        .ok_or_else(|| Error::UnknownSplit {
            split: "train".into(),
            available: files.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
    let first = files.first().cloned().unwrap_or_default();
    let steps = match options.columns.clone() {
        Some(cols) => vec![Step::Map(Arc::new(move |row| select(row, &cols, &first)))],
        None => Vec::new(),
    };
    Ok(IterableDataset {
        kind: kind.to_string(),
        files,
        options: options.clone(),
        steps,
    })
}

/// `LoadOptions::columns` on one streamed row: those columns in that order, or an error naming
/// the missing one and the file's columns.
fn select(mut row: Row, cols: &[String], path: &Path) -> Result<Row> {
    let mut out = Row::new();
    for c in cols {
        match row.remove(c) {
            Some(v) => {
                out.insert(c.clone(), v);
            }
            None => {
                return Err(Error::InvalidArgument(format!(
                    "{}: no column `{c}` to select; the file's columns are: {}",
                    path.display(),
                    out.keys()
                        .chain(row.keys())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    Ok(out)
}

impl IterableDataset {
    fn with(&self, step: Step) -> Self {
        let mut out = self.clone();
        out.steps.push(step);
        out
    }

    /// Applies `f` to every row as it is read.
    pub fn map(&self, f: impl Fn(Row) -> Result<Row> + Send + Sync + 'static) -> Self {
        self.with(Step::Map(Arc::new(f)))
    }

    /// Keeps the rows for which `keep` is true.
    pub fn filter(&self, keep: impl Fn(&Row) -> bool + Send + Sync + 'static) -> Self {
        self.with(Step::Filter(Arc::new(move |r| Ok(keep(r)))))
    }

    /// As [`filter`](Self::filter), with a closure that may fail (`Ok(r.try_get("label")? ==
    /// "1")`): its error is yielded in the row's place and ends the iteration.
    pub fn try_filter(&self, keep: impl Fn(&Row) -> Result<bool> + Send + Sync + 'static) -> Self {
        self.with(Step::Filter(Arc::new(keep)))
    }

    /// Stops after `n` rows.
    pub fn take(&self, n: usize) -> Self {
        self.with(Step::Take(n))
    }

    /// Skips the first `n` rows.
    pub fn skip(&self, n: usize) -> Self {
        self.with(Step::Skip(n))
    }

    /// Iterates the rows; an error (bad line, unreadable file) is yielded once, then iteration ends.
    pub fn iter(&self) -> impl Iterator<Item = Result<Row>> + Send + use<> {
        let kind = self.kind.clone();
        let options = self.options.clone();
        let files = self.files.clone();
        let mut rows: RowIter = Box::new(
            files
                .into_iter()
                .flat_map(move |path| open_rows(&kind, path, &options)),
        );
        for step in self.steps.clone() {
            rows = match step {
                Step::Map(f) => Box::new(rows.map(move |r| r.and_then(|r| f(r)))),
                Step::Filter(keep) => Box::new(rows.filter_map(move |r| match r {
                    Ok(row) => match keep(&row) {
                        Ok(true) => Some(Ok(row)),
                        Ok(false) => None,
                        Err(e) => Some(Err(e)),
                    },
                    Err(e) => Some(Err(e)),
                })),
                Step::Take(n) => Box::new(rows.take(n)),
                Step::Skip(n) => Box::new(rows.skip(n)),
            };
        }
        let mut failed = false;
        rows.take_while(move |r| {
            let go = !failed;
            failed |= r.is_err();
            go
        })
    }
}

fn open_rows(kind: &str, path: PathBuf, options: &LoadOptions) -> RowIter {
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(source) => return Box::new(std::iter::once(Err(Error::Io { path, source }))),
    };
    if kind == "csv" {
        return csv_rows(path, file, options);
    }
    let reader = BufReader::with_capacity(1 << 20, file);
    match kind {
        "text" => {
            let keep = options.keep_linebreaks;
            Box::new(Lines::new(path, reader).map(move |line| {
                let (mut line, _) = line?;
                if !keep {
                    while line.ends_with(['\n', '\r']) {
                        line.pop();
                    }
                } else if line.ends_with("\r\n") {
                    line.truncate(line.len() - 2);
                    line.push('\n');
                }
                let mut row = Row::new();
                row.insert("text".into(), Value::String(line));
                Ok(row)
            }))
        }
        _ => {
            debug_assert!(KINDS.contains(&kind));
            Box::new(Lines::new(path.clone(), reader).filter_map(move |line| {
                let (line, number) = match line {
                    Ok(l) => l,
                    Err(e) => return Some(Err(e)),
                };
                if line.trim().is_empty() {
                    return None;
                }
                Some(match serde_json::from_str::<Value>(&line) {
                    Ok(Value::Object(row)) => Ok(Row::from(row)),
                    Ok(_) => Err(Error::Parse {
                        path: path.clone(),
                        line: number,
                        column: 1,
                        message: "expected a JSON object per line".into(),
                    }),
                    Err(e) => Err(json_error(&path, &e, number as usize - 1)),
                })
            }))
        }
    }
}

/// CSV rows, read through a [`QuoteCheckedReader`]: a quote the file never closes is the
/// whole-file loader's error, found without reading the rest of the file into one field.
fn csv_rows(path: PathBuf, file: std::fs::File, options: &LoadOptions) -> RowIter {
    let (checked, found) = QuoteCheckedReader::new(file, path.clone(), options.delimiter);
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(options.has_header)
        .delimiter(options.delimiter)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(checked);
    // The quote checker's own error when it stopped the reader, else the csv reader's.
    let error = move |path: &Path, e: csv::Error| {
        found
            .lock()
            .ok()
            .and_then(|mut f| f.take())
            .unwrap_or_else(|| Error::Parse {
                path: path.to_path_buf(),
                line: e.position().map_or(1, |p| p.line()),
                column: 0,
                message: e.to_string(),
            })
    };
    let header = if options.has_header {
        match csv.headers() {
            Ok(h) => h.iter().map(str::to_string).collect(),
            Err(e) => return Box::new(std::iter::once(Err(error(&path, e)))),
        }
    } else {
        Vec::new()
    };
    let mut names: Vec<String> = options.column_names.clone().unwrap_or(header);
    unique_names(&mut names);
    Box::new(csv.into_records().map(move |rec| {
        let rec = rec.map_err(|e| error(&path, e))?;
        let line = rec.position().map_or(0, |p| p.line());
        if !names.is_empty() && rec.len() != names.len() {
            return Err(Error::Parse {
                path: path.clone(),
                line,
                column: 0,
                message: format!("expected {} fields, found {}", names.len(), rec.len()),
            });
        }
        Ok(rec
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("column_{i}"));
                (name, infer_cell(f))
            })
            .collect())
    }))
}

/// Per-cell type inference: a stream cannot look ahead at the rest of the column.
fn infer_cell(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else if let Ok(i) = s.parse::<i64>() {
        Value::from(i)
    } else if let Ok(f) = s.parse::<f64>() {
        Value::from(f)
    } else if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
        Value::Bool(s.eq_ignore_ascii_case("true"))
    } else {
        Value::String(s.to_string())
    }
}

/// Lines of a file as UTF-8 strings with their 1-based line numbers; invalid UTF-8 is reported
/// with its byte offset in the file.
struct Lines {
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    offset: usize,
    number: u64,
    buf: Vec<u8>,
    done: bool,
}

impl Lines {
    fn new(path: PathBuf, reader: BufReader<std::fs::File>) -> Self {
        Lines {
            path,
            reader,
            offset: 0,
            number: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for Lines {
    type Item = Result<(String, u64)>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(n) => {
                let start = self.offset;
                self.offset += n;
                self.number += 1;
                let mut bytes = std::mem::take(&mut self.buf);
                let bom = if start == 0 && bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
                    bytes.drain(..3);
                    3
                } else {
                    0
                };
                match String::from_utf8(bytes) {
                    Ok(s) => Some(Ok((s, self.number))),
                    Err(e) => {
                        self.done = true;
                        Some(Err(Error::InvalidUtf8 {
                            path: self.path().to_path_buf(),
                            offset: start + bom + e.utf8_error().valid_up_to(),
                        }))
                    }
                }
            }
            Err(source) => {
                self.done = true;
                Some(Err(Error::Io {
                    path: self.path.clone(),
                    source,
                }))
            }
        }
    }
}
