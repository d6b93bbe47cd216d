//! The Arrow storage under a dataset: record batches (chunks that share one schema, as a
//! memory-mapped file holds them) and the row → (chunk, offset) lookup. Slicing and appending
//! chunks copy nothing; only `take` (flattening an indices mapping) builds new arrays.
use crate::{Error, Result};
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// `starts[k]` is the first row of batch `k`; the last entry is the row count.
    starts: Vec<usize>,
    /// The table's fingerprint (see `fingerprint.rs`), computed once and shared by the clones
    /// (an indices mapping over this table reuses it); recorded directly for tables read from
    /// a checksummed `save_to_disk` folder.
    pub fingerprint: Arc<OnceLock<u64>>,
}

pub(crate) fn arrow_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{what}: {e}"))
}

impl Table {
    /// Batches without rows are dropped: they add nothing and slow the row lookup.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let mut starts = Vec::with_capacity(batches.len() + 1);
        let mut n = 0;
        starts.push(0);
        for b in &batches {
            n += b.num_rows();
            starts.push(n);
        }
        Table {
            schema,
            batches,
            starts,
            fingerprint: Arc::new(OnceLock::new()),
        }
    }

    pub fn empty() -> Self {
        Table::new(Arc::new(Schema::empty()), Vec::new())
    }

    /// One batch from columns of equal length (checked by the caller).
    pub fn from_arrays(schema: SchemaRef, arrays: Vec<ArrayRef>, rows: usize) -> Result<Self> {
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
            .map_err(|e| arrow_error("building a record batch", e))?;
        Ok(Table::new(schema, vec![batch]))
    }

    pub fn num_rows(&self) -> usize {
        *self.starts.last().unwrap_or(&0)
    }

    /// The first row of batch `k`.
    pub fn batch_start(&self, k: usize) -> usize {
        self.starts[k]
    }

    /// The batch holding row `row` and the row's offset inside it.
    pub fn locate(&self, row: usize) -> (usize, usize) {
        let b = self.starts.partition_point(|&s| s <= row) - 1;
        (b, row - self.starts[b])
    }

    /// Rows `offset..offset + len`, sharing the arrays.
    pub fn slice(&self, offset: usize, len: usize) -> Table {
        let end = offset + len;
        let mut out = Vec::new();
        for (k, b) in self.batches.iter().enumerate() {
            let (s, e) = (self.starts[k], self.starts[k + 1]);
            if e <= offset || s >= end {
                continue;
            }
            let from = offset.max(s) - s;
            let to = end.min(e) - s;
            out.push(b.slice(from, to - from));
        }
        Table::new(self.schema.clone(), out)
    }

    /// The rows at `rows`, gathered into new arrays (one batch).
    pub fn take(&self, rows: &[usize]) -> Result<Table> {
        let pairs: Vec<(usize, usize)> = rows.iter().map(|&r| self.locate(r)).collect();
        let arrays = (0..self.schema.fields().len())
            .map(|c| {
                let chunks: Vec<&dyn Array> =
                    self.batches.iter().map(|b| b.column(c).as_ref()).collect();
                if chunks.is_empty() {
                    return Ok(arrow_array::new_empty_array(
                        self.schema.field(c).data_type(),
                    ));
                }
                arrow_select::interleave::interleave(&chunks, &pairs)
                    .map_err(|e| arrow_error("gathering rows", e))
            })
            .collect::<Result<Vec<_>>>()?;
        Table::from_arrays(self.schema.clone(), arrays, rows.len())
    }

    /// The same rows under another schema of the same types (renamed or re-labelled fields).
    pub fn with_schema(&self, schema: SchemaRef) -> Result<Table> {
        let batches = self
            .batches
            .iter()
            .map(|b| {
                RecordBatch::try_new_with_options(
                    schema.clone(),
                    b.columns().to_vec(),
                    &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
                )
                .map_err(|e| arrow_error("changing the schema", e))
            })
            .collect::<Result<_>>()?;
        Ok(Table::new(schema, batches))
    }

    /// Keeps the columns at `keep`, in that order.
    pub fn project(&self, keep: &[usize]) -> Result<Table> {
        let schema = Arc::new(
            self.schema
                .project(keep)
                .map_err(|e| arrow_error("selecting columns", e))?,
        );
        let batches = self
            .batches
            .iter()
            .map(|b| {
                b.project(keep)
                    .map_err(|e| arrow_error("selecting columns", e))
            })
            .collect::<Result<_>>()?;
        Ok(Table::new(schema, batches))
    }

    /// Adds (or replaces, at `replace`) one column given as a single array of `num_rows` values,
    /// cut into slices along the existing batches.
    pub fn with_array(
        &self,
        field: arrow_schema::FieldRef,
        array: ArrayRef,
        replace: Option<usize>,
    ) -> Result<Table> {
        let mut fields: Vec<_> = self.schema.fields().iter().cloned().collect();
        match replace {
            Some(i) => fields[i] = field,
            None => fields.push(field),
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            self.schema.metadata().clone(),
        ));
        if self.batches.is_empty() {
            let n = array.len();
            let arrays = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| match replace {
                    Some(r) if r == i => array.clone(),
                    None if i + 1 == schema.fields().len() => array.clone(),
                    _ => arrow_array::new_empty_array(f.data_type()),
                })
                .collect();
            return Table::from_arrays(schema, arrays, n);
        }
        let batches = self
            .batches
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let part = array.slice(self.starts[k], b.num_rows());
                let mut cols = b.columns().to_vec();
                match replace {
                    Some(i) => cols[i] = part,
                    None => cols.push(part),
                }
                RecordBatch::try_new(schema.clone(), cols)
                    .map_err(|e| arrow_error("adding a column", e))
            })
            .collect::<Result<_>>()?;
        Ok(Table::new(schema, batches))
    }
}
