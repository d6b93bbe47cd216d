//! Column transforms that need no JSON: [`Dataset::map_column`] reads one column's cells as
//! Rust values ([`FromCell`]: `&str`, `i64`, `f64`, `bool`, `Option<..>` of those, or a JSON
//! `Value`) and builds the new column straight into a typed Arrow array ([`IntoColumn`]:
//! integers, floats, `bool`, `String`, `Option<..>`, `Vec<..>` for lists, `Value`).
//! [`Dataset::filter_column`] keeps rows by one column. Both run chunk by chunk, on
//! `num_proc` threads and through the transform cache like `map`.
use super::Dataset;
use super::arrow::{from_values, str_at, value_at};
use super::chunks::{Chunk, Part, assemble};
use super::options::MapOptions;
use super::transform::par_chunks;
use crate::{Error, Result};
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, LargeStringArray, ListArray, PrimitiveArray, StringArray,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::Field;
use serde_json::Value;
use std::sync::Arc;

/// Rows per chunk of the column transforms (no JSON is held, so chunks can be large).
const COLUMN_CHUNK: usize = 1 << 16;

/// Whether cell `i` is null (every cell of a `null`-typed column is).
fn is_null(array: &dyn Array, i: usize) -> bool {
    array.data_type() == &arrow_schema::DataType::Null || array.is_null(i)
}

/// A Rust value one cell of a column reads as in [`Dataset::map_column`] and
/// [`Dataset::filter_column`]. `None` from [`from_cell`](Self::from_cell) when the cell is not
/// of this type (a null for a non-`Option` type, text for a number, ...).
pub trait FromCell<'a>: Sized {
    /// What the type expects, for the error naming a cell that does not fit.
    const EXPECTED: &'static str;
    fn from_cell(array: &'a dyn Array, i: usize) -> Option<Self>;
}

impl<'a> FromCell<'a> for &'a str {
    const EXPECTED: &'static str = "a string";
    fn from_cell(array: &'a dyn Array, i: usize) -> Option<Self> {
        str_at(array, i)
    }
}

impl<'a> FromCell<'a> for Value {
    const EXPECTED: &'static str = "a value";
    fn from_cell(array: &'a dyn Array, i: usize) -> Option<Self> {
        Some(value_at(array, i))
    }
}

macro_rules! from_cell_json {
    ($t:ty, $expected:literal, $get:expr) => {
        impl<'a> FromCell<'a> for $t {
            const EXPECTED: &'static str = $expected;
            fn from_cell(array: &'a dyn Array, i: usize) -> Option<Self> {
                if is_null(array, i) {
                    return None;
                }
                $get(&value_at(array, i))
            }
        }
    };
}
from_cell_json!(i64, "an integer", Value::as_i64);
from_cell_json!(u64, "a non-negative integer", Value::as_u64);
from_cell_json!(f64, "a number", Value::as_f64);
from_cell_json!(bool, "a bool", Value::as_bool);

/// `Option<T>`: a null cell reads as `None`, any other as `T` would.
impl<'a, T: FromCell<'a>> FromCell<'a> for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_cell(array: &'a dyn Array, i: usize) -> Option<Self> {
        if is_null(array, i) {
            Some(None)
        } else {
            T::from_cell(array, i).map(Some)
        }
    }
}

/// A Rust value that a column can be built from, one per row, straight into Arrow: `usize`
/// and `isize` become `int64` (as Python ints do in `datasets`), the other integer and float
/// types keep their width, `String` / `&str` become `string`, `Option<T>` makes `None` a
/// null, `Vec<T>` a list, and a JSON `Value` is typed as `from_rows` types a column.
pub trait IntoColumn: Sized {
    /// The Arrow array of the values, and whether it is JSON text standing for values of
    /// mixed types (only a `Value` column can be).
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool);
}

macro_rules! into_column_primitive {
    ($t:ty, $arrow:ty) => {
        impl IntoColumn for $t {
            fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
                (Arc::new(PrimitiveArray::<$arrow>::from(values)), false)
            }
        }
        impl IntoColumn for Option<$t> {
            fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
                (Arc::new(PrimitiveArray::<$arrow>::from(values)), false)
            }
        }
    };
}
into_column_primitive!(i8, Int8Type);
into_column_primitive!(i16, Int16Type);
into_column_primitive!(i32, Int32Type);
into_column_primitive!(i64, Int64Type);
into_column_primitive!(u8, UInt8Type);
into_column_primitive!(u16, UInt16Type);
into_column_primitive!(u32, UInt32Type);
into_column_primitive!(u64, UInt64Type);
into_column_primitive!(f32, Float32Type);
into_column_primitive!(f64, Float64Type);

impl IntoColumn for usize {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        let ints: Vec<i64> = values.into_iter().map(|v| v as i64).collect();
        i64::into_column(ints)
    }
}

impl IntoColumn for Option<usize> {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        let ints: Vec<Option<i64>> = values.into_iter().map(|v| v.map(|v| v as i64)).collect();
        Option::<i64>::into_column(ints)
    }
}

impl IntoColumn for isize {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        i64::into_column(values.into_iter().map(|v| v as i64).collect())
    }
}

impl IntoColumn for bool {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        (Arc::new(BooleanArray::from(values)), false)
    }
}

impl IntoColumn for Option<bool> {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        (Arc::new(BooleanArray::from(values)), false)
    }
}

/// Text: `string`, or `large_string` past 2 GiB in one column.
fn text_column<S: AsRef<str>>(values: &[Option<S>]) -> ArrayRef {
    let bytes: usize = values
        .iter()
        .map(|s| s.as_ref().map_or(0, |s| s.as_ref().len()))
        .sum();
    let it = values.iter().map(|s| s.as_ref().map(|s| s.as_ref()));
    if bytes < i32::MAX as usize {
        Arc::new(it.collect::<StringArray>())
    } else {
        Arc::new(it.collect::<LargeStringArray>())
    }
}

impl IntoColumn for String {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        let v: Vec<Option<String>> = values.into_iter().map(Some).collect();
        (text_column(&v), false)
    }
}

impl IntoColumn for Option<String> {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        (text_column(&values), false)
    }
}

impl IntoColumn for &str {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        let v: Vec<Option<&str>> = values.into_iter().map(Some).collect();
        (text_column(&v), false)
    }
}

impl IntoColumn for Option<&str> {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        (text_column(&values), false)
    }
}

impl IntoColumn for Value {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        from_values(&values)
    }
}

/// Lists (token ids, scores per label, ...): a `list<T>` column.
impl<T: IntoColumn> IntoColumn for Vec<T> {
    fn into_column(values: Vec<Self>) -> (ArrayRef, bool) {
        let mut offsets = Vec::with_capacity(values.len() + 1);
        offsets.push(0i32);
        let mut items = Vec::new();
        for v in values {
            items.extend(v);
            offsets.push(i32::try_from(items.len()).unwrap_or(i32::MAX));
        }
        let (child, _) = T::into_column(items);
        let field = Arc::new(Field::new_list_field(child.data_type().clone(), true));
        (
            Arc::new(ListArray::new(
                field,
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                child,
                None,
            )),
            false,
        )
    }
}

impl Dataset {
    /// A cell that does not read as `T`: the error names the column, the row and the value.
    fn cell_error<'a, T: FromCell<'a>>(&self, op: &str, column: &str, i: usize) -> Error {
        let c = self.column_index(column).unwrap_or(0);
        Error::Transform {
            op: op.to_string(),
            at: format!("row {i}"),
            source: Box::new(Error::InvalidArgument(format!(
                "column `{column}` holds {}, not {}; take an `Option<..>` for nulls or a `Value` for any cell",
                self.cell(i, c),
                T::EXPECTED
            ))),
        }
    }

    /// Cell `i` of column `c` (named `src`) as `I`, borrowed from the dataset's arrays.
    fn read_cell<'s, I: FromCell<'s>>(
        &'s self,
        op: &str,
        src: &str,
        c: usize,
        i: usize,
    ) -> Result<I> {
        let (b, j) = self.table().locate(self.physical(i));
        I::from_cell(self.table().batches[b].column(c).as_ref(), j)
            .ok_or_else(|| self.cell_error::<I>(op, src, i))
    }

    /// The index of column `src`, which must be typed (not JSON text of mixed values).
    fn typed_column(&self, op: &str, src: &str) -> Result<usize> {
        let c = self.column_index(src)?;
        if self.inner.json[c] {
            return Err(Error::InvalidArgument(format!(
                "{op}: column `{src}` holds values of mixed types; use `map` on rows for it"
            )));
        }
        Ok(c)
    }

    /// Adds (or replaces) column `dst` computed from column `src` one cell at a time, with no
    /// JSON rows: `ds.map_column("text", "n", |s: &str| s.len())`. The cell type is what the
    /// closure takes ([`FromCell`]), the new column's type what it returns ([`IntoColumn`]);
    /// the other columns are shared. A cell of another type (a null for a `&str`) is an error
    /// naming the row.
    pub fn map_column<'s, I, O>(
        &'s self,
        src: &str,
        dst: &str,
        f: impl Fn(I) -> O + Send + Sync,
    ) -> Result<Dataset>
    where
        I: FromCell<'s>,
        O: IntoColumn + Send,
    {
        self.map_column_with(src, dst, f, &MapOptions::default())
    }

    /// [`map_column`](Self::map_column) with `datasets`' options: `num_proc` threads, a cache
    /// entry under `new_fingerprint`, `remove_columns`.
    pub fn map_column_with<'s, I, O>(
        &'s self,
        src: &str,
        dst: &str,
        f: impl Fn(I) -> O + Send + Sync,
        opts: &MapOptions,
    ) -> Result<Dataset>
    where
        I: FromCell<'s>,
        O: IntoColumn + Send,
    {
        let c = self.typed_column("map_column", src)?;
        let extra = format!("{src}\u{0}{dst}");
        self.cached_map("map_column", opts, &extra, || {
            let ranges = self.chunk_ranges(COLUMN_CHUNK);
            let names = self.column_names();
            let chunks = par_chunks(
                ranges.len(),
                opts.num_proc,
                || (),
                |_, k| {
                    let range = ranges[k].clone();
                    let mut out = Vec::with_capacity(range.len());
                    for i in range.clone() {
                        out.push(f(self.read_cell::<I>("map_column", src, c, i)?));
                    }
                    let (array, json) = O::into_column(out);
                    let mut columns = Vec::with_capacity(names.len() + 1);
                    for (k, name) in names.iter().enumerate() {
                        if name != dst {
                            let a = self.chunk_column(k, &range)?;
                            columns.push((name.clone(), Part::reused(a, self.inner.json[k])));
                        } else {
                            columns.push((dst.to_string(), Part::reused(array.clone(), json)));
                        }
                    }
                    if !names.iter().any(|n| n == dst) {
                        columns.push((dst.to_string(), Part::reused(array, json)));
                    }
                    Ok(Chunk {
                        rows: range.len(),
                        columns,
                    })
                },
            )?;
            let ds = Dataset::from_table(assemble(chunks)?, None);
            let remove: Vec<&str> = opts.remove_columns.iter().map(String::as_str).collect();
            if remove.is_empty() {
                Ok(ds)
            } else {
                ds.remove_columns(&remove)
            }
        })
    }

    /// Keeps the rows whose cell of column `src` passes `keep`, with no JSON rows:
    /// `ds.filter_column("text", |s: &str| s.len() > 40)`. An indices mapping, as `filter`.
    pub fn filter_column<'s, I>(
        &'s self,
        src: &str,
        keep: impl Fn(I) -> bool + Send + Sync,
    ) -> Result<Dataset>
    where
        I: FromCell<'s>,
    {
        self.filter_column_with(src, keep, &MapOptions::default())
    }

    /// [`filter_column`](Self::filter_column) with `datasets`' options: `num_proc` threads and
    /// a cached list of kept rows under `new_fingerprint`.
    pub fn filter_column_with<'s, I>(
        &'s self,
        src: &str,
        keep: impl Fn(I) -> bool + Send + Sync,
        opts: &MapOptions,
    ) -> Result<Dataset>
    where
        I: FromCell<'s>,
    {
        let c = self.typed_column("filter_column", src)?;
        self.cached_filter("filter_column", opts, src, || {
            let ranges = self.chunk_ranges(COLUMN_CHUNK);
            let parts = par_chunks(
                ranges.len(),
                opts.num_proc,
                || (),
                |_, k| {
                    let range = ranges[k].clone();
                    let mut kept = Vec::new();
                    for i in range {
                        if keep(self.read_cell::<I>("filter_column", src, c, i)?) {
                            kept.push(i);
                        }
                    }
                    Ok(kept)
                },
            )?;
            Ok(parts.concat())
        })
    }
}
