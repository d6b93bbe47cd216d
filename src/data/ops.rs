//! Dataset operations with Hugging Face names: `select`, `shuffle`, `filter`, `map`,
//! `train_test_split`, `concatenate`, column renames and removals.
use super::arrow::JSON_METADATA;
use super::column_fn::IntoColumn;
use super::row_map::RowBuffers;
use super::table::Table;
use super::{Column, Dataset, DatasetDict, Row};
use crate::{Error, Result};
use arrow_schema::{Field, Schema};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::sync::Arc;

/// The size of [`Dataset::train_test_split`]'s test split, typed where `datasets` takes a float
/// or an int: `0.2` (an `f64`) is a fraction, `20` (a `usize`) a count, so `1.5` cannot be read
/// as one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TestSize {
    /// A fraction of the rows, in (0, 1); the count is rounded up.
    Fraction(f64),
    /// A number of rows, at least 1 and fewer than the dataset has.
    Count(usize),
}

impl From<f64> for TestSize {
    fn from(x: f64) -> Self {
        TestSize::Fraction(x)
    }
}

impl From<usize> for TestSize {
    fn from(n: usize) -> Self {
        TestSize::Count(n)
    }
}

impl TestSize {
    /// The test split's row count for a dataset of `n` rows; an error when the size is not a
    /// fraction in (0, 1) or a count, or when a split would be empty.
    fn rows(self, n: usize) -> Result<usize> {
        let n_test = match self {
            TestSize::Fraction(f) if f > 0.0 && f < 1.0 => (f * n as f64).ceil() as usize,
            TestSize::Fraction(f) => {
                return Err(Error::InvalidArgument(format!(
                    "train_test_split: test_size {f} is a fraction and must be in (0, 1); for a number of rows give an integer (`train_test_split({}, seed)`)",
                    if f.is_finite() && f >= 1.0 {
                        f as usize
                    } else {
                        1
                    }
                )));
            }
            TestSize::Count(c) => c,
        };
        if n_test == 0 || n_test >= n {
            return Err(Error::InvalidArgument(format!(
                "train_test_split: test_size {self:?} gives {n_test} test rows of {n}, leaving an empty split; use a fraction in (0, 1) or a count in 1..{n}"
            )));
        }
        Ok(n_test)
    }
}

impl Dataset {
    /// The rows at `indices`, in that order (indices may repeat). The arrays are kept and an
    /// indices mapping recorded (a contiguous range is a zero-copy slice), as `datasets` does.
    pub fn select(&self, indices: &[usize]) -> Result<Dataset> {
        let n = self.num_rows();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::InvalidArgument(format!(
                "select: index {bad} is out of range for a dataset of {n} rows"
            )));
        }
        Ok(self.take_rows(indices))
    }

    /// The first `n` rows (fewer if the dataset is shorter).
    pub fn take(&self, n: usize) -> Dataset {
        self.take_rows(&(0..n.min(self.num_rows())).collect::<Vec<_>>())
    }

    /// The rows in a seeded random order; the same seed gives the same order on every machine.
    pub fn shuffle(&self, seed: u64) -> Dataset {
        self.take_rows(&permutation(self.num_rows(), seed))
    }

    /// `idx` are in range (checked by the caller or built from `0..num_rows`).
    pub(crate) fn take_rows(&self, idx: &[usize]) -> Dataset {
        let contiguous = idx.windows(2).all(|w| w[1] == w[0] + 1);
        match self.indices() {
            Some(old) => Dataset::from_table(
                self.table().clone(),
                Some(idx.iter().map(|&i| old[i]).collect()),
            ),
            None if contiguous => Dataset::from_table(
                self.table()
                    .slice(idx.first().copied().unwrap_or(0), idx.len()),
                None,
            ),
            None => Dataset::from_table(self.table().clone(), Some(idx.to_vec())),
        }
    }

    /// The rows in dataset order in fresh arrays, without an indices mapping (HF's
    /// `flatten_indices`): later row reads are sequential again.
    pub fn flatten_indices(&self) -> Result<Dataset> {
        Ok(Dataset::from_table(self.flat_table()?, None))
    }

    /// The rows for which `keep(row)` is true, as an indices mapping (no data is copied).
    /// Index a row by its columns (`row["label"]`); when the closure can fail,
    /// [`try_filter`](Self::try_filter) takes one that returns a `Result`. For threads and a
    /// cache see [`filter_with`](Self::filter_with); [`filter_column`](Self::filter_column)
    /// reads one column without building rows.
    pub fn filter(&self, mut keep: impl FnMut(&Row) -> bool) -> Dataset {
        // the closure cannot fail, so neither can this
        self.try_filter(|r| Ok(keep(r))).unwrap_or_default()
    }

    /// As [`filter`](Self::filter), with a closure that may fail: the first error is returned,
    /// naming the row, so `ds.try_filter(|r| Ok(r.try_get("label")? == "1"))?` names a missing
    /// column instead of panicking.
    pub fn try_filter(&self, mut keep: impl FnMut(&Row) -> Result<bool>) -> Result<Dataset> {
        let mut state = RowBuffers::default();
        let mut idx = Vec::new();
        for r in self.chunk_ranges(1 << 16) {
            idx.extend(self.filter_chunk("filter", r, &mut keep, &mut state)?);
        }
        Ok(self.take_rows(&idx))
    }

    /// Splits into `train` and `test` after a seeded shuffle. `test_size` is a fraction of the
    /// rows in (0, 1) (`0.2`, rounded up, as `datasets` does) or a count of rows (`20`), see
    /// [`TestSize`]; a fraction of 1 or more is an error, as in `datasets`.
    pub fn train_test_split(
        &self,
        test_size: impl Into<TestSize>,
        seed: u64,
    ) -> Result<DatasetDict> {
        let n = self.num_rows();
        let n_test = test_size.into().rows(n)?;
        let perm = permutation(n, seed);
        Ok(DatasetDict::from_splits([
            ("train".to_string(), self.take_rows(&perm[n_test..])),
            ("test".to_string(), self.take_rows(&perm[..n_test])),
        ]))
    }

    /// Renames one column (the arrays are shared).
    pub fn rename_column(&self, from: &str, to: &str) -> Result<Dataset> {
        let i = self.column_index(from)?;
        if from != to && self.column_index(to).is_ok() {
            return Err(Error::InvalidArgument(format!(
                "column `{to}` appears twice; column names must be unique"
            )));
        }
        let schema = self.arrow_schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[i] = fields[i].clone().with_name(to);
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(self.with_table(self.table().with_schema(schema)?))
    }

    /// The same rows (and indices mapping) over another table of the same row count.
    fn with_table(&self, table: Table) -> Dataset {
        Dataset::from_table(table, self.indices().map(<[usize]>::to_vec))
    }

    /// Removes the named columns (the others' arrays are shared).
    pub fn remove_columns(&self, names: &[&str]) -> Result<Dataset> {
        for n in names {
            self.column_index(n)?;
        }
        let keep: Vec<usize> = self
            .column_names()
            .iter()
            .enumerate()
            .filter(|(_, c)| !names.contains(&c.as_str()))
            .map(|(i, _)| i)
            .collect();
        Ok(self.with_table(self.table().project(&keep)?))
    }

    /// Adds a column (or replaces one of the same name) from one value per row: JSON values,
    /// or typed ones that need no JSON (`Vec<i64>`, `Vec<f32>`, `Vec<String>`, `Vec<Vec<u32>>`,
    /// `Vec<Option<bool>>`, ... see [`IntoColumn`]), as in a batched map:
    /// `batch.with_column("n", lengths)`. The other columns are shared unless an indices
    /// mapping has to be applied first.
    pub fn with_column<T: IntoColumn>(&self, name: &str, values: Vec<T>) -> Result<Dataset> {
        let n = self.num_rows();
        if self.num_columns() > 0 && values.len() != n {
            return Err(Error::InvalidArgument(format!(
                "with_column: `{name}` needs {n} values, one per row, but {} were given",
                values.len()
            )));
        }
        let (array, json) = T::into_column(values);
        let mut field = Field::new(name, array.data_type().clone(), true);
        if json {
            field.set_metadata([(JSON_METADATA, "true")]);
        }
        let base = if self.indices().is_some() {
            self.flatten_indices()?
        } else {
            self.clone()
        };
        let replace = base.column_index(name).ok();
        Ok(Dataset::from_table(
            base.table().with_array(Arc::new(field), array, replace)?,
            None,
        ))
    }
}

/// Stacks datasets with the same columns (HF's `concatenate_datasets`). When the columns
/// also have the same Arrow types the record batches are appended (no copy) and indices
/// mappings are offset and joined; otherwise the values are re-typed together.
pub fn concatenate(parts: &[Dataset]) -> Result<Dataset> {
    let Some(first) = parts.first() else {
        return Ok(Dataset::default());
    };
    let names = first.column_names();
    for (k, part) in parts.iter().enumerate() {
        if part.column_names() != names {
            return Err(Error::InvalidArgument(format!(
                "concatenate: dataset {k} has columns [{}] but dataset 0 has [{}]",
                part.column_names().join(", "),
                names.join(", ")
            )));
        }
    }
    let schema = first.arrow_schema();
    if parts
        .iter()
        .all(|p| p.arrow_schema().fields() == schema.fields())
    {
        let mut batches = Vec::new();
        let mut indices: Option<Vec<usize>> = None;
        let mut offset = 0;
        for part in parts {
            batches.extend(part.table().batches.iter().cloned());
            if part.indices().is_some() && indices.is_none() {
                indices = Some((0..offset).collect());
            }
            if let Some(idx) = &mut indices {
                match part.indices() {
                    Some(p) => idx.extend(p.iter().map(|&i| i + offset)),
                    None => idx.extend(offset..offset + part.table().num_rows()),
                }
            }
            offset += part.table().num_rows();
        }
        return Ok(Dataset::from_table(Table::new(schema, batches), indices));
    }
    let columns = (0..names.len())
        .map(|c| {
            let values = parts
                .iter()
                .flat_map(|p| p.column(&names[c]).unwrap_or_default().iter().cloned())
                .collect();
            Column::new(&names[c], values)
        })
        .collect();
    Dataset::from_columns(columns)
}

/// A seeded permutation of `0..n` (ChaCha8, stable across platforms and versions).
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    idx
}
