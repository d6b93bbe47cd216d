//! A chunk's input columns typed once, for the row-wise transforms: filling a row cell by
//! cell then costs no downcast and no search for the record batch, and comparing an output
//! cell with the input's (to share an unchanged column) reads the typed array directly.
use super::arrow::{json_cell, value_at};
use super::row::Row;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, LargeStringArray, StringArray, StringViewArray};
use arrow_schema::{DataType, Fields};
use serde_json::Value;

/// One input column over a chunk's rows.
pub(crate) enum Cells {
    Utf8(StringArray),
    LargeUtf8(LargeStringArray),
    Utf8View(StringViewArray),
    /// JSON text standing for values of mixed types: read back as the values.
    Json(ArrayRef),
    Other(ArrayRef),
}

impl Cells {
    pub fn new(array: ArrayRef, json: bool) -> Self {
        if json {
            return Cells::Json(array);
        }
        match array.data_type() {
            DataType::Utf8 => Cells::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Cells::LargeUtf8(array.as_string::<i64>().clone()),
            DataType::Utf8View => Cells::Utf8View(array.as_string_view().clone()),
            _ => Cells::Other(array),
        }
    }

    /// The column as an Arrow array (shared, not copied).
    pub fn array(&self) -> ArrayRef {
        match self {
            Cells::Utf8(a) => std::sync::Arc::new(a.clone()),
            Cells::LargeUtf8(a) => std::sync::Arc::new(a.clone()),
            Cells::Utf8View(a) => std::sync::Arc::new(a.clone()),
            Cells::Json(a) | Cells::Other(a) => a.clone(),
        }
    }

    /// Text cell `k`, or `None` where the cell is null or the column is not text.
    fn str_at(&self, k: usize) -> Option<&str> {
        match self {
            Cells::Utf8(a) => a.is_valid(k).then(|| a.value(k)),
            Cells::LargeUtf8(a) => a.is_valid(k).then(|| a.value(k)),
            Cells::Utf8View(a) => a.is_valid(k).then(|| a.value(k)),
            Cells::Json(_) | Cells::Other(_) => None,
        }
    }

    fn is_text(&self) -> bool {
        matches!(
            self,
            Cells::Utf8(_) | Cells::LargeUtf8(_) | Cells::Utf8View(_)
        )
    }

    /// Cell `k` as the JSON value a row holds.
    fn value(&self, k: usize) -> Value {
        match self {
            Cells::Json(a) => json_cell(value_at(a.as_ref(), k)),
            Cells::Other(a) => value_at(a.as_ref(), k),
            text => text
                .str_at(k)
                .map_or(Value::Null, |s| Value::String(s.to_owned())),
        }
    }

    /// Sets `v` to cell `k`, reusing `v`'s string buffer for text.
    fn set(&self, v: &mut Value, k: usize) {
        match (self.str_at(k), v) {
            (Some(s), Value::String(t)) => {
                t.clear();
                t.push_str(s);
            }
            (Some(s), v) => *v = Value::String(s.to_owned()),
            (None, v) => *v = self.value(k),
        }
    }

    /// Whether cell `k` reads as `v` (for a column that is not JSON text).
    pub fn same(&self, k: usize, v: &Value) -> bool {
        if self.is_text() {
            return match (self.str_at(k), v) {
                (Some(s), Value::String(t)) => s == t,
                (None, v) => v.is_null(),
                (Some(_), _) => false,
            };
        }
        self.value(k) == *v
    }
}

/// Sets `row` to cell `k` of every column of `cells` (named by `fields`), keeping the row's
/// keys and string buffers where it can: [`drop_added_keys`], then [`fill_values`].
pub(crate) fn fill_row(
    row: &mut Row,
    fields: &Fields,
    cells: &[Cells],
    k: usize,
    added: &mut Vec<String>,
) {
    drop_added_keys(row, fields.len(), added);
    fill_values(row, fields, cells, k);
}

/// Removes, last first, the keys after the first `n` (the columns a transform added to the
/// previous row held in this map); `added` keeps their names so that no key is allocated. A
/// key's removal from the end of the map costs no shifting. Keys out of order are left to
/// [`fill_values`].
pub(crate) fn drop_added_keys(row: &mut Row, n: usize, added: &mut Vec<String>) {
    while row.len() > n {
        let last = row.keys().next_back().map(String::as_str).unwrap_or("");
        let at = match added.iter().position(|a| a == last) {
            Some(at) => at,
            None => {
                added.push(last.to_owned());
                added.len() - 1
            }
        };
        row.shift_remove(added[at].as_str());
    }
}

/// Sets the first `fields.len()` values of `row` to cell `k` of `cells`, where the row's first
/// keys are the fields in order (keys after them are left as they are); otherwise the row is
/// made of exactly the fields first.
pub(crate) fn fill_values(row: &mut Row, fields: &Fields, cells: &[Cells], k: usize) {
    let n = fields.len();
    let prefix_in_order =
        |row: &Row| row.len() >= n && row.keys().zip(fields.iter()).all(|(a, f)| a == f.name());
    if !prefix_in_order(row) {
        row.retain(|key, _| fields.iter().any(|f| f.name() == key));
        if !prefix_in_order(row) {
            row.clear();
            for f in fields {
                row.insert(f.name().clone(), Value::Null);
            }
        }
    }
    for (cell, v) in cells.iter().zip(row.values_mut()) {
        cell.set(v, k);
    }
}
