//! Datasets: columnar, cheap to clone, loaded with Hugging Face `load_dataset` semantics.
//!
//! A [`Dataset`] is a table of named columns stored as Apache Arrow arrays (strings, integers,
//! floats, booleans, lists and structs), read row by row as JSON values (null, bool, number,
//! string, or nested lists and objects), shared behind an `Arc` so that cloning it into a
//! notebook variable costs nothing. A [`DatasetDict`] maps split names to datasets.
mod arrow;
mod cache;
mod cells;
mod chunks;
mod column_fn;
pub mod corpus;
mod csv_quotes;
mod disk;
mod display;
mod files;
mod fingerprint;
mod io;
mod ipc;
mod load;
mod ops;
mod options;
#[cfg(feature = "parquet")]
mod parquet;
mod row;
mod row_map;
mod stream;
mod table;
mod text;
mod transform;

/// The Arrow crates the columns are made of, re-exported so that callers name the same versions.
pub use arrow_array;
pub use arrow_schema;
pub use column_fn::{FromCell, IntoColumn};
pub use files::DataFiles;
pub use load::{LoadOptions, SampleBy, load_dataset, load_dataset_with};
pub use ops::{TestSize, concatenate};
pub use options::MapOptions;
pub use row::{Row, RowExt};
pub use stream::{IterableDataset, load_streaming, load_streaming_with};
pub use text::read_lines;

use crate::{Error, Result};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use table::Table;

/// One named column of values: how columns are given to [`Dataset::from_columns`] (they are
/// stored as Arrow arrays) and how [`Dataset::columns`] hands them back.
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

/// A table of rows, stored as Arrow arrays (memory-mapped when loaded from disk or the cache)
/// and shared behind an `Arc`, so cloning is cheap. `select`, `shuffle`, `filter` and splits
/// keep the arrays and record an indices mapping, as `datasets` does.
#[derive(Clone)]
pub struct Dataset {
    inner: Arc<Inner>,
}

struct Inner {
    table: Table,
    /// Row `i` of the dataset is row `indices[i]` of the table.
    indices: Option<Vec<usize>>,
    /// Per column: stored as JSON text (values of mixed types).
    json: Vec<bool>,
    /// Columns materialised as JSON values by [`Dataset::column`], once each.
    values: Vec<OnceLock<Vec<Value>>>,
    columns: OnceLock<Vec<Column>>,
}

// Arrow's `dyn Array` does not declare these, but its arrays are immutable once built and the
// lazily filled caches are `OnceLock`s, so a panic cannot leave a dataset half-changed; datasets
// stay usable across `catch_unwind`, as they were when columns were `Vec<Value>`.
impl std::panic::UnwindSafe for Dataset {}
impl std::panic::RefUnwindSafe for Dataset {}

impl Default for Dataset {
    fn default() -> Self {
        Dataset::from_table(Table::empty(), None)
    }
}

impl PartialEq for Dataset {
    /// Same column names and the same rows (types compare as the JSON values they read as).
    fn eq(&self, other: &Self) -> bool {
        self.column_names() == other.column_names()
            && self.num_rows() == other.num_rows()
            && (0..self.num_rows()).all(|i| self.row_unchecked(i) == other.row_unchecked(i))
    }
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl Dataset {
    pub(crate) fn from_table(table: Table, indices: Option<Vec<usize>>) -> Self {
        let json = table
            .schema
            .fields()
            .iter()
            .map(|f| f.metadata().contains_key(arrow::JSON_METADATA))
            .collect();
        let values = table
            .schema
            .fields()
            .iter()
            .map(|_| OnceLock::new())
            .collect();
        Dataset {
            inner: Arc::new(Inner {
                table,
                indices,
                json,
                values,
                columns: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn table(&self) -> &Table {
        &self.inner.table
    }

    pub(crate) fn indices(&self) -> Option<&[usize]> {
        self.inner.indices.as_deref()
    }

    /// The table with the indices mapping applied (a copy only when there is one).
    pub(crate) fn flat_table(&self) -> Result<Table> {
        match self.indices() {
            Some(idx) => self.table().take(idx),
            None => Ok(self.table().clone()),
        }
    }

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
        let rows = columns.first().map_or(0, |c| c.values.len());
        let mut fields = Vec::with_capacity(columns.len());
        let mut arrays = Vec::with_capacity(columns.len());
        for c in columns {
            let (field, array) = arrow_column(&c.name, &c.values);
            fields.push(field);
            arrays.push(array);
        }
        let schema = Arc::new(Schema::new(fields));
        Ok(Dataset::from_table(
            Table::from_arrays(schema, arrays, rows)?,
            None,
        ))
    }

    /// A dataset over Arrow record batches that share `schema` (no copy).
    pub fn from_record_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        for f in schema.fields() {
            if !arrow::supported(f.data_type()) {
                return Err(Error::InvalidArgument(format!(
                    "column `{}` has Arrow type {}, which has no JSON value here; cast it to a string, number, list or struct first",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        if let Some(b) = batches
            .iter()
            .find(|b| b.schema().fields() != schema.fields())
        {
            return Err(Error::InvalidArgument(format!(
                "a record batch has schema {:?} but the dataset's is {:?}",
                b.schema(),
                schema
            )));
        }
        Ok(Dataset::from_table(Table::new(schema, batches), None))
    }

    /// The Arrow schema and record batches (the indices mapping applied: rows in dataset order).
    pub fn to_record_batches(&self) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let t = self.flat_table()?;
        Ok((t.schema, t.batches))
    }

    /// Builds a dataset from rows; the columns are the union of the rows' keys in first-seen
    /// order, with null where a row lacks a key.
    /// Rows may be [`Row`]s or JSON maps (`json!({..}).as_object()`).
    pub fn from_rows(rows: impl IntoIterator<Item = impl Into<Row>>) -> Self {
        let mut columns: Vec<Column> = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            let row: Row = row.into();
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
        // Names are unique and lengths equal by construction.
        Dataset::from_columns(columns).unwrap_or_default()
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        if self.inner.json.is_empty() {
            return 0;
        }
        match self.indices() {
            Some(idx) => idx.len(),
            None => self.table().num_rows(),
        }
    }

    /// Number of rows (Python's `len(ds)`).
    pub fn len(&self) -> usize {
        self.num_rows()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.num_rows() == 0
    }

    /// Number of columns.
    pub fn num_columns(&self) -> usize {
        self.inner.json.len()
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<String> {
        self.table()
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The columns as JSON values. This copies every cell out of Arrow (once; later calls
    /// reuse it), so prefer [`Dataset::column`], [`Dataset::column_str`] or rows on big data.
    pub fn columns(&self) -> &[Column] {
        self.inner.columns.get_or_init(|| {
            self.column_names()
                .into_iter()
                .enumerate()
                .map(|(c, name)| Column::new(name, self.column_values(c).to_vec()))
                .collect()
        })
    }

    /// `(name, type)` for every column, as `dataset info` prints them: `datasets`' dtype names
    /// (`int64`, `float64`, `bool`, `string`, `null`, ...), `list`, `struct`, and `mixed` for a
    /// column whose values have no common type. Read from the schema: no row is touched.
    pub fn features(&self) -> Vec<(String, &'static str)> {
        self.table()
            .schema
            .fields()
            .iter()
            .zip(&self.inner.json)
            .map(|(f, &json)| {
                let t = if json {
                    "mixed"
                } else {
                    arrow::dtype_name(f.data_type())
                };
                (f.name().clone(), t)
            })
            .collect()
    }

    /// The Arrow schema of the columns.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.table().schema.clone()
    }

    /// The values of column `name`, or an error listing the available columns. The column is
    /// copied out of Arrow into JSON values the first time it is asked for.
    pub fn column(&self, name: &str) -> Result<&[Value]> {
        Ok(self.column_values(self.column_index(name)?))
    }

    fn column_values(&self, c: usize) -> &[Value] {
        self.inner.values[c].get_or_init(|| (0..self.num_rows()).map(|i| self.cell(i, c)).collect())
    }

    /// The column `name` as strings (null → error naming the row), e.g. a `text` column.
    /// Borrowed from the Arrow buffers: nothing is copied.
    pub fn column_str(&self, name: &str) -> Result<Vec<&str>> {
        let c = self.column_index(name)?;
        let not_str = |i: usize| {
            Error::InvalidArgument(format!(
                "row {i} of column `{name}` is {}, not a string",
                self.cell(i, c)
            ))
        };
        if self.inner.json[c] {
            return self
                .column_values(c)
                .iter()
                .enumerate()
                .map(|(i, v)| v.as_str().ok_or_else(|| not_str(i)))
                .collect();
        }
        (0..self.num_rows())
            .map(|i| {
                let (b, j) = self.table().locate(self.physical(i));
                arrow::str_at(self.table().batches[b].column(c).as_ref(), j)
                    .ok_or_else(|| not_str(i))
            })
            .collect()
    }

    pub(crate) fn column_index(&self, name: &str) -> Result<usize> {
        self.table()
            .schema
            .index_of(name)
            .map_err(|_| Error::UnknownColumn {
                column: name.to_string(),
                available: self.column_names().join(", "),
            })
    }

    fn physical(&self, i: usize) -> usize {
        match self.indices() {
            Some(idx) => idx[i],
            None => i,
        }
    }

    /// The JSON value at row `i` (in range), column `c`.
    pub(crate) fn cell(&self, i: usize, c: usize) -> Value {
        let (b, j) = self.table().locate(self.physical(i));
        self.decode(
            c,
            arrow::value_at(self.table().batches[b].column(c).as_ref(), j),
        )
    }

    fn decode(&self, c: usize, v: Value) -> Value {
        if self.inner.json[c] {
            arrow::json_cell(v)
        } else {
            v
        }
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
        let (b, j) = self.table().locate(self.physical(i));
        let batch = &self.table().batches[b];
        self.table()
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(c, f)| {
                let v = arrow::value_at(batch.column(c).as_ref(), j);
                (f.name().clone(), self.decode(c, v))
            })
            .collect()
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = Row> + '_ {
        (0..self.num_rows()).map(|i| self.row_unchecked(i))
    }
}

/// The Arrow field and array of one column of JSON values.
pub(crate) fn arrow_column(name: &str, values: &[Value]) -> (Field, ArrayRef) {
    let (array, json) = arrow::from_values(values);
    let mut field = Field::new(name, array.data_type().clone(), true);
    if json {
        field.set_metadata([(arrow::JSON_METADATA, "true")]);
    }
    (field, array)
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
    /// Panics on an unknown split, as indexing a map does, with a message that names the splits
    /// and points to [`DatasetDict::get`], which returns a `Result` (in a notebook a panic loses
    /// the cell's new variables; `ds.get("test")?` gives an error and keeps them).
    #[track_caller]
    fn index(&self, name: &str) -> &Dataset {
        match self.get(name) {
            Ok(ds) => ds,
            Err(e) => panic!("{e}; use `ds.get(\"{name}\")?` for an error instead of a panic"),
        }
    }
}
