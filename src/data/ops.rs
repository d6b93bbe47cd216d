//! Dataset operations with Hugging Face names: `select`, `shuffle`, `filter`, `map`,
//! `train_test_split`, `concatenate`, column renames and removals.
use super::{Column, Dataset, DatasetDict, Row};
use crate::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::Value;

impl Dataset {
    /// The rows at `indices`, in that order (indices may repeat).
    pub fn select(&self, indices: &[usize]) -> Result<Dataset> {
        let n = self.num_rows();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::InvalidArgument(format!(
                "select: index {bad} is out of range for a dataset of {n} rows"
            )));
        }
        let columns = self
            .columns()
            .iter()
            .map(|c| {
                Column::new(
                    &c.name,
                    indices.iter().map(|&i| c.values[i].clone()).collect(),
                )
            })
            .collect();
        Dataset::from_columns(columns)
    }

    /// The first `n` rows (fewer if the dataset is shorter).
    pub fn take(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.num_rows())).collect();
        self.select(&idx).unwrap_or_default()
    }

    /// The rows in a seeded random order; the same seed gives the same order on every machine.
    pub fn shuffle(&self, seed: u64) -> Dataset {
        self.take_permutation(&permutation(self.num_rows(), seed))
    }

    fn take_permutation(&self, idx: &[usize]) -> Dataset {
        // Indices come from a permutation of 0..num_rows, so they are always in range.
        self.select(idx).unwrap_or_default()
    }

    /// The rows for which `keep(row)` is true.
    pub fn filter(&self, mut keep: impl FnMut(&Row) -> bool) -> Dataset {
        let idx: Vec<usize> = self
            .iter()
            .enumerate()
            .filter(|(_, row)| keep(row))
            .map(|(i, _)| i)
            .collect();
        self.take_permutation(&idx)
    }

    /// Maps every row to a new row (which may add, change or drop columns).
    pub fn map(&self, mut f: impl FnMut(Row) -> Result<Row>) -> Result<Dataset> {
        let rows = self.iter().map(&mut f).collect::<Result<Vec<_>>>()?;
        Ok(Dataset::from_rows(rows))
    }

    /// Maps batches of up to `batch_size` rows, each given as a `Dataset`, to new datasets that
    /// are concatenated: a batch may change the number of rows and the columns (HF's
    /// `map(batched=True)`), as long as every batch returns the same columns.
    pub fn map_batched(
        &self,
        batch_size: usize,
        mut f: impl FnMut(Dataset) -> Result<Dataset>,
    ) -> Result<Dataset> {
        let batch_size = batch_size.max(1);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < self.num_rows() {
            let end = (start + batch_size).min(self.num_rows());
            parts.push(f(self.take_permutation(&(start..end).collect::<Vec<_>>()))?);
            start = end;
        }
        if parts.is_empty() {
            return Ok(self.clone());
        }
        concatenate(&parts)
    }

    /// Splits into `train` and `test` after a seeded shuffle. `test_size` below 1 is a fraction
    /// (rounded up, as HF does), otherwise a row count.
    pub fn train_test_split(&self, test_size: f64, seed: u64) -> Result<DatasetDict> {
        let n = self.num_rows();
        let n_test = if test_size > 0.0 && test_size < 1.0 {
            (test_size * n as f64).ceil() as usize
        } else {
            test_size as usize
        };
        if test_size <= 0.0 || n_test == 0 || n_test >= n {
            return Err(Error::InvalidArgument(format!(
                "train_test_split: test_size {test_size} leaves an empty split of a dataset of {n} rows; use a fraction in (0, 1) or a count in 1..{n}"
            )));
        }
        let perm = permutation(n, seed);
        Ok(DatasetDict::from_splits([
            ("train".to_string(), self.take_permutation(&perm[n_test..])),
            ("test".to_string(), self.take_permutation(&perm[..n_test])),
        ]))
    }

    /// Renames one column.
    pub fn rename_column(&self, from: &str, to: &str) -> Result<Dataset> {
        let i = self.column_index(from)?;
        let mut columns = self.columns().to_vec();
        columns[i].name = to.to_string();
        Dataset::from_columns(columns)
    }

    /// Removes the named columns.
    pub fn remove_columns(&self, names: &[&str]) -> Result<Dataset> {
        for n in names {
            self.column_index(n)?;
        }
        let columns = self
            .columns()
            .iter()
            .filter(|c| !names.contains(&c.name.as_str()))
            .cloned()
            .collect();
        Dataset::from_columns(columns)
    }

    /// Adds a column (or replaces one of the same name).
    pub fn with_column(&self, name: &str, values: Vec<Value>) -> Result<Dataset> {
        let mut columns = self.columns().to_vec();
        match columns.iter_mut().find(|c| c.name == name) {
            Some(c) => c.values = values,
            None => columns.push(Column::new(name, values)),
        }
        if self.columns().is_empty() {
            return Dataset::from_columns(columns);
        }
        let n = self.num_rows();
        if columns.iter().any(|c| c.values.len() != n) {
            return Err(Error::InvalidArgument(format!(
                "with_column: `{name}` needs {n} values, one per row"
            )));
        }
        Dataset::from_columns(columns)
    }
}

/// Stacks datasets with the same columns (HF's `concatenate_datasets`).
pub fn concatenate(parts: &[Dataset]) -> Result<Dataset> {
    let Some(first) = parts.first() else {
        return Ok(Dataset::default());
    };
    let names = first.column_names();
    let mut columns: Vec<Column> = names.iter().map(|n| Column::new(n, Vec::new())).collect();
    for (k, part) in parts.iter().enumerate() {
        if part.column_names() != names {
            return Err(Error::InvalidArgument(format!(
                "concatenate: dataset {k} has columns [{}] but dataset 0 has [{}]",
                part.column_names().join(", "),
                names.join(", ")
            )));
        }
        for (c, p) in columns.iter_mut().zip(part.columns()) {
            c.values.extend(p.values.iter().cloned());
        }
    }
    Dataset::from_columns(columns)
}

/// A seeded permutation of `0..n` (ChaCha8, stable across platforms and versions).
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    idx
}
