//! Datasets: columnar, cheap to clone, loaded with Hugging Face `load_dataset` semantics.
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A table of rows; columns are shared behind an `Arc`, so cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    columns: Arc<Vec<(String, Vec<String>)>>,
}

impl Dataset {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|(n, _)| n.clone()).collect()
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
}

impl std::ops::Index<&str> for DatasetDict {
    type Output = Dataset;
    fn index(&self, name: &str) -> &Dataset {
        match self.get(name) {
            Ok(ds) => ds,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Load `files` as one `train` split. Kinds: `text` (one row per line, column `text`).
pub fn load_dataset<P: AsRef<Path>>(kind: &str, files: &[P]) -> Result<DatasetDict> {
    if kind != "text" {
        return Err(Error::UnknownKind {
            kind: kind.to_string(),
            supported: "text".into(),
        });
    }
    let mut rows = Vec::new();
    for f in files {
        let path: PathBuf = f.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
            path: path.clone(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        rows.extend(text.lines().map(str::to_string));
    }
    let ds = Dataset {
        columns: Arc::new(vec![("text".to_string(), rows)]),
    };
    Ok(DatasetDict {
        splits: BTreeMap::from([("train".to_string(), ds)]),
    })
}
