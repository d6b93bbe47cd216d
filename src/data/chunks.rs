//! The output of a transform, chunk by chunk: each chunk of input rows becomes one Arrow record
//! batch as soon as it is mapped, so a transform never holds more than a chunk of JSON rows.
//! [`assemble`] stacks the chunks into one table; when chunks typed a column differently (all
//! null in one, ints in the next, floats in a third) those chunks are typed again to the kind
//! merged over the whole column, as `from_rows` would have typed it in one go.
use super::arrow::{JSON_METADATA, Kind, from_refs, json_cell, kind_of_refs, merge, value_at};
use super::table::{Table, arrow_error};
use crate::Result;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Field, Schema};
use serde_json::Value;
use std::sync::Arc;

/// One column of one chunk.
pub(crate) struct Part {
    pub array: ArrayRef,
    /// The array holds JSON text standing for values of mixed types.
    pub json: bool,
    /// The kind its values were typed as, when they were built from JSON values (`None`: an
    /// array taken over as it was, e.g. an input column the function left unchanged).
    pub kind: Option<Kind>,
}

impl Part {
    /// An array taken over as it is.
    pub fn reused(array: ArrayRef, json: bool) -> Self {
        Part {
            array,
            json,
            kind: None,
        }
    }

    /// The part's cells as JSON values (JSON text decoded).
    fn values(&self) -> Vec<Value> {
        (0..self.array.len())
            .map(|j| {
                let v = value_at(self.array.as_ref(), j);
                if self.json { json_cell(v) } else { v }
            })
            .collect()
    }

    fn kind(&self) -> Kind {
        match &self.kind {
            Some(k) => k.clone(),
            None => {
                let values = self.values();
                kind_of_refs(&values.iter().collect::<Vec<_>>())
            }
        }
    }
}

/// The output of one chunk of rows: its row count and its named columns, in order.
pub(crate) struct Chunk {
    pub rows: usize,
    pub columns: Vec<(String, Part)>,
}

/// Stacks chunks into one table. Columns are ordered as first seen; a chunk without a column
/// has nulls there.
pub(crate) fn assemble(chunks: Vec<Chunk>) -> Result<Table> {
    let mut names: Vec<String> = Vec::new();
    for chunk in &chunks {
        for (name, _) in &chunk.columns {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    // per column: one array per chunk
    let mut fields = Vec::with_capacity(names.len());
    let mut columns: Vec<Vec<ArrayRef>> = Vec::with_capacity(names.len());
    for name in &names {
        let parts: Vec<Option<&Part>> = chunks
            .iter()
            .map(|c| c.columns.iter().find(|(n, _)| n == name).map(|(_, p)| p))
            .collect();
        let (arrays, json) = unify(&parts, &chunks)?;
        let data_type = arrays
            .first()
            .map_or(arrow_schema::DataType::Null, |a| a.data_type().clone());
        let mut field = Field::new(name, data_type, true);
        if json {
            field.set_metadata([(JSON_METADATA, "true")]);
        }
        fields.push(field);
        columns.push(arrays);
    }
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::with_capacity(chunks.len());
    for (k, chunk) in chunks.iter().enumerate() {
        let arrays = columns.iter().map(|col| col[k].clone()).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(chunk.rows));
        batches.push(
            RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
                .map_err(|e| arrow_error("stacking the mapped rows", e))?,
        );
    }
    Ok(Table::new(schema, batches))
}

/// One column's arrays, one per chunk, all of one type; and whether they are JSON text.
fn unify(parts: &[Option<&Part>], chunks: &[Chunk]) -> Result<(Vec<ArrayRef>, bool)> {
    if let Some(Some(first)) = parts.first()
        && parts.iter().all(|p| {
            p.is_some_and(|p| {
                p.json == first.json && p.array.data_type() == first.array.data_type()
            })
        })
    {
        return Ok((
            parts.iter().flatten().map(|p| p.array.clone()).collect(),
            first.json,
        ));
    }
    let merged = parts
        .iter()
        .flatten()
        .fold(Kind::Null, |k, p| merge(k, p.kind()));
    // only the chunks typed otherwise are built again
    let (empty, json) = from_refs(&[], &merged);
    let target = empty.data_type();
    let arrays = parts
        .iter()
        .zip(chunks)
        .map(|(p, chunk)| match p {
            Some(p) if p.json == json && p.array.data_type() == target => p.array.clone(),
            _ => {
                let values = match p {
                    Some(p) => p.values(),
                    None => vec![Value::Null; chunk.rows],
                };
                from_refs(&values.iter().collect::<Vec<_>>(), &merged).0
            }
        })
        .collect();
    Ok((arrays, json))
}
