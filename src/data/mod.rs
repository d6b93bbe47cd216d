//! Datasets: columnar, cheap to clone, loaded with Hugging Face `load_dataset` semantics.
//!
//! A [`Dataset`] is a table of named columns of JSON values (null, bool, integer, float, string,
//! or nested lists and objects), shared behind an `Arc` so that cloning it into a notebook
//! variable costs nothing. A [`DatasetDict`] maps split names to datasets.
mod display;
mod files;
mod io;
mod load;
mod ops;
mod stream;

pub use files::DataFiles;
pub use load::{LoadOptions, SampleBy, load_dataset, load_dataset_with};
pub use ops::concatenate;
pub use stream::{IterableDataset, load_streaming, load_streaming_with};

use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One row: column name → value, in column order.
pub type Row = serde_json::Map<String, Value>;

/// `row.try_get("text")?`: a row's value by column name, or an error naming the columns the
/// row has (indexing a `Row` with a missing key panics, as a map's index does).
pub trait RowExt {
    fn try_get(&self, key: &str) -> Result<&Value>;
}

impl RowExt for Row {
    fn try_get(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::UnknownColumn {
            column: key.to_string(),
            available: self.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

/// One named column of values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Vec<Value>,
}

impl Column {
    pub fn new(name: impl Into<String>, values: Vec<Value>) -> Self {
        Column {
            name: name.into(),
            values,
        }
    }

    /// The column's type, named as Hugging Face `Value` features are: `int64`, `float64`,
    /// `bool`, `string`, `list`, `struct`; `null` when every value is null, `mixed` otherwise.
    pub fn dtype(&self) -> &'static str {
        let mut found: Option<&'static str> = None;
        for v in &self.values {
            let t = match v {
                Value::Null => continue,
                Value::Bool(_) => "bool",
                Value::Number(n) if n.is_f64() => "float64",
                Value::Number(_) => "int64",
                Value::String(_) => "string",
                Value::Array(_) => "list",
                Value::Object(_) => "struct",
            };
            found = match (found, t) {
                (None, t) => Some(t),
                (Some(a), b) if a == b => Some(a),
                (Some("int64"), "float64") | (Some("float64"), "int64") => Some("float64"),
                _ => return "mixed",
            };
        }
        found.unwrap_or("null")
    }
}

/// A table of rows; columns are shared behind an `Arc`, so cloning is cheap.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    columns: Arc<Vec<Column>>,
}

impl Dataset {
    /// Builds a dataset from columns of equal length.
    pub fn from_columns(columns: Vec<Column>) -> Result<Self> {
        if let Some(first) = columns.first() {
            for c in &columns {
                if c.values.len() != first.values.len() {
                    return Err(Error::InvalidArgument(format!(
                        "column `{}` has {} rows but column `{}` has {}; all columns must have the same length",
                        c.name,
                        c.values.len(),
                        first.name,
                        first.values.len()
                    )));
                }
            }
        }
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::InvalidArgument(format!(
                    "column `{}` appears twice; column names must be unique",
                    c.name
                )));
            }
        }
        Ok(Dataset {
            columns: Arc::new(columns),
        })
    }

    /// Builds a dataset from rows; the columns are the union of the rows' keys in first-seen
    /// order, with null where a row lacks a key.
    pub fn from_rows(rows: impl IntoIterator<Item = Row>) -> Self {
        let mut columns: Vec<Column> = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            for key in row.keys() {
                if !columns.iter().any(|c| &c.name == key) {
                    columns.push(Column::new(key.clone(), vec![Value::Null; i]));
                }
            }
            let mut row = row;
            for c in columns.iter_mut() {
                c.values.push(row.remove(&c.name).unwrap_or(Value::Null));
            }
        }
        Dataset {
            columns: Arc::new(columns),
        }
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// Number of rows (Python's `len(ds)`).
    pub fn len(&self) -> usize {
        self.num_rows()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.num_rows() == 0
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The columns themselves.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// `(name, type)` for every column, as `dataset info` prints them.
    pub fn features(&self) -> Vec<(String, &'static str)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.dtype()))
            .collect()
    }

    /// The values of column `name`, or an error listing the available columns.
    pub fn column(&self, name: &str) -> Result<&[Value]> {
        Ok(&self.columns[self.column_index(name)?].values)
    }

    /// The column `name` as strings (null → error naming the row), e.g. a `text` column.
    pub fn column_str(&self, name: &str) -> Result<Vec<&str>> {
        self.column(name)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "row {i} of column `{name}` is {v}, not a string"
                    ))
                })
            })
            .collect()
    }

    pub(crate) fn column_index(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Error::UnknownColumn {
                column: name.to_string(),
                available: self.column_names().join(", "),
            })
    }

    /// Row `i` as a map from column name to value.
    pub fn row(&self, i: usize) -> Result<Row> {
        if i >= self.num_rows() {
            return Err(Error::InvalidArgument(format!(
                "row {i} is out of range: the dataset has {} rows",
                self.num_rows()
            )));
        }
        Ok(self.row_unchecked(i))
    }

    fn row_unchecked(&self, i: usize) -> Row {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.values[i].clone()))
            .collect()
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = Row> + '_ {
        (0..self.num_rows()).map(|i| self.row_unchecked(i))
    }
}

/// Named splits (`train`, `test`, ...), indexed like a map: `dd["train"]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetDict {
    splits: BTreeMap<String, Dataset>,
}

impl DatasetDict {
    /// Builds a dictionary from `(split name, dataset)` pairs.
    pub fn from_splits(splits: impl IntoIterator<Item = (String, Dataset)>) -> Self {
        DatasetDict {
            splits: splits.into_iter().collect(),
        }
    }

    /// The split called `name`, or an error that lists the available ones.
    pub fn get(&self, name: &str) -> Result<&Dataset> {
        self.splits.get(name).ok_or_else(|| Error::UnknownSplit {
            split: name.to_string(),
            available: self.splits.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Adds or replaces a split.
    pub fn insert(&mut self, name: impl Into<String>, ds: Dataset) {
        self.splits.insert(name.into(), ds);
    }

    /// Split names in order.
    pub fn split_names(&self) -> Vec<String> {
        self.splits.keys().cloned().collect()
    }

    /// `(name, dataset)` pairs in split-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Dataset)> {
        self.splits.iter()
    }

    /// Applies `f` to every split, e.g. `dd.map_splits(|ds| ds.rename_column("a", "b"))`.
    pub fn map_splits(&self, f: impl Fn(&Dataset) -> Result<Dataset>) -> Result<DatasetDict> {
        let mut out = BTreeMap::new();
        for (name, ds) in &self.splits {
            out.insert(name.clone(), f(ds)?);
        }
        Ok(DatasetDict { splits: out })
    }
}

impl std::ops::Index<&str> for DatasetDict {
    type Output = Dataset;
    /// Panics on an unknown split, as indexing a map does; [`DatasetDict::get`] returns a `Result`.
    fn index(&self, name: &str) -> &Dataset {
        match self.get(name) {
            Ok(ds) => ds,
            Err(e) => panic!("{e}"),
        }
    }
}
