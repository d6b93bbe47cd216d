//! Datasets: columnar, cheap to clone, loaded with Hugging Face `load_dataset` semantics.
mod load;

pub use load::load_dataset;

use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One named column of values (`null`, bool, integer, float, string or nested JSON).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Vec<Value>,
}

/// A table of rows; columns are shared behind an `Arc`, so cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    columns: Arc<Vec<Column>>,
}

impl Dataset {
    /// Build from columns of equal length.
    pub fn from_columns(columns: Vec<Column>) -> Self {
        Dataset {
            columns: Arc::new(columns),
        }
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The values of column `name`, or an error listing the available columns.
    pub fn column(&self, name: &str) -> Result<&[Value]> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.values.as_slice())
            .ok_or_else(|| Error::UnknownColumn {
                column: name.to_string(),
                available: self.column_names().join(", "),
            })
    }
}

/// Named splits (`train`, `test`, ...).
#[derive(Clone, Debug, Default)]
pub struct DatasetDict {
    splits: BTreeMap<String, Dataset>,
}

impl DatasetDict {
    /// The split called `name`, or an error that lists the available ones.
    pub fn get(&self, name: &str) -> Result<&Dataset> {
        self.splits.get(name).ok_or_else(|| Error::UnknownSplit {
            split: name.to_string(),
            available: self.splits.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Split names in order.
    pub fn split_names(&self) -> Vec<String> {
        self.splits.keys().cloned().collect()
    }
}

impl std::ops::Index<&str> for DatasetDict {
    type Output = Dataset;
    /// Panics on an unknown split, like a map; use [`DatasetDict::get`] for a `Result`.
    fn index(&self, name: &str) -> &Dataset {
        match self.get(name) {
            Ok(ds) => ds,
            Err(e) => panic!("{e}"),
        }
    }
}
