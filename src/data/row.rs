//! [`Row`]: one row of a dataset, a JSON map from column name to value. It is a map (every
//! method of `serde_json::Map` works on it) whose indexing names the missing column: a bare
//! map's `row["nope"]` panics with "no entry found for key", which tells a notebook user
//! neither which key nor what the row has.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Borrow;
use std::fmt::Display;
use std::hash::Hash;
use std::ops::{Deref, DerefMut, Index, IndexMut};

/// One row: column name → value, in column order. `row["text"]` reads a column (and panics
/// with the column's name and the row's columns when there is none, as indexing a map panics);
/// [`Row::try_get`] returns an error instead, for closures that return a `Result`
/// ([`Dataset::try_filter`](super::Dataset::try_filter), [`Dataset::map`](super::Dataset::map)).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Row(Map<String, Value>);

impl Row {
    pub fn new() -> Self {
        Row(Map::new())
    }

    /// `row.try_get("text")?`: the value of a column, or an error naming the columns the row has.
    pub fn try_get(&self, key: &str) -> Result<&Value> {
        self.0.get(key).ok_or_else(|| self.missing(key))
    }

    /// The map itself.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    fn missing(&self, key: &str) -> Error {
        Error::UnknownColumn {
            column: key.to_string(),
            available: self.columns(),
        }
    }

    fn columns(&self) -> String {
        self.0.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    #[track_caller]
    fn panic_missing(&self, key: &str) -> ! {
        panic!(
            "row has no column `{key}` (its columns: {}); use `row.try_get(\"{key}\")?` inside `try_filter` or `map` for an error instead of a panic",
            self.columns()
        )
    }
}

/// `row.try_get("text")?` through a trait, for code written when `Row` was a plain map.
pub trait RowExt {
    fn try_get(&self, key: &str) -> Result<&Value>;
}

impl RowExt for Row {
    fn try_get(&self, key: &str) -> Result<&Value> {
        Row::try_get(self, key)
    }
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Deref for Row {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Row {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<Q> Index<&Q> for Row
where
    String: Borrow<Q>,
    Q: ?Sized + Ord + Eq + Hash + Display,
{
    type Output = Value;
    #[track_caller]
    fn index(&self, key: &Q) -> &Value {
        match self.0.get(key) {
            Some(v) => v,
            None => self.panic_missing(&key.to_string()),
        }
    }
}

impl<Q> IndexMut<&Q> for Row
where
    String: Borrow<Q>,
    Q: ?Sized + Ord + Eq + Hash + Display,
{
    #[track_caller]
    fn index_mut(&mut self, key: &Q) -> &mut Value {
        if !self.0.contains_key(key) {
            self.panic_missing(&key.to_string());
        }
        // present (checked above), so this inserts nothing
        self.0.entry(key.to_string()).or_insert(Value::Null)
    }
}

impl From<Map<String, Value>> for Row {
    fn from(m: Map<String, Value>) -> Self {
        Row(m)
    }
}

impl From<Row> for Map<String, Value> {
    fn from(r: Row) -> Self {
        r.0
    }
}

impl From<Row> for Value {
    fn from(r: Row) -> Self {
        Value::Object(r.0)
    }
}

impl FromIterator<(String, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Row(iter.into_iter().collect())
    }
}

impl IntoIterator for Row {
    type Item = (String, Value);
    type IntoIter = serde_json::map::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Row {
    type Item = (&'a String, &'a Value);
    type IntoIter = serde_json::map::Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
