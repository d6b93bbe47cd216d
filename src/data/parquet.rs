//! Parquet, the format of most datasets on the Hugging Face Hub: `load_dataset("parquet", ...)`
//! (reading only the selected columns) and [`Dataset::to_parquet`]. Behind the default
//! `parquet` feature: the notebook build leaves the decoder out.
use super::Dataset;
use super::table::Table;
use crate::io::write_atomic_with;
use crate::{Error, Result};
use arrow_array::RecordBatchReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::Path;

/// Rows per decoded record batch.
const BATCH_ROWS: usize = 8192;

fn parse_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("not a readable Parquet file: {e}"),
    }
}

/// Reads one Parquet file; `columns` picks (and orders) the columns, decoding only those.
/// The `parquet` crate asserts on some malformed metadata: the known case (a column chunk at a
/// negative offset or of negative size) is checked first, and a panic that still escapes it
/// is turned into the same error naming the file.
pub(crate) fn read_parquet(path: &Path, columns: Option<&[String]>) -> Result<Table> {
    std::panic::catch_unwind(|| read(path, columns)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("malformed data");
        Err(parse_error(path, format!("the decoder failed: {why}")))
    })
}

fn read(path: &Path, columns: Option<&[String]>) -> Result<Table> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| parse_error(path, e))?
        .with_batch_size(BATCH_ROWS);
    for rg in builder.metadata().row_groups() {
        for col in rg.columns() {
            let start = col
                .dictionary_page_offset()
                .unwrap_or(col.data_page_offset());
            if start < 0 || col.compressed_size() < 0 {
                return Err(parse_error(
                    path,
                    format!(
                        "column chunk `{}` lies at a negative offset or has a negative size",
                        col.column_path()
                    ),
                ));
            }
        }
    }
    let mut order = None;
    if let Some(columns) = columns {
        let schema = builder.schema().clone();
        let mut roots = Vec::with_capacity(columns.len());
        for c in columns {
            roots.push(schema.index_of(c).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::InvalidArgument(format!(
                    "{}: no column `{c}` to select; the file's columns are: {}",
                    path.display(),
                    names.join(", ")
                ))
            })?);
        }
        let mut sorted = roots.clone();
        sorted.sort_unstable();
        sorted.dedup();
        // The reader returns the columns in file order; put them back in the order asked for.
        order = Some(
            roots
                .iter()
                .map(|r| sorted.binary_search(r).unwrap_or(0))
                .collect::<Vec<_>>(),
        );
        let mask = ProjectionMask::roots(builder.parquet_schema(), sorted);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(|e| parse_error(path, e))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| parse_error(path, e))?;
    let table = Table::new(schema, batches);
    match order {
        Some(order) => table.project(&order),
        None => Ok(table),
    }
}

impl Dataset {
    /// Writes a Parquet file (Snappy-compressed, as pandas and `datasets.to_parquet` write
    /// by default), atomically.
    pub fn to_parquet(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let table = self.flat_table()?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        write_atomic_with(path, |w| {
            let mut writer = ArrowWriter::try_new(w, table.schema.clone(), Some(props))
                .map_err(std::io::Error::other)?;
            for b in &table.batches {
                writer.write(b).map_err(std::io::Error::other)?;
            }
            writer.close().map_err(std::io::Error::other)?;
            Ok(())
        })
    }
}
