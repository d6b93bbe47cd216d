//! `save_to_disk` / `load_from_disk` in the folder layout of Hugging Face `datasets`, so a
//! dataset saved by Python opens here and ours opens with `datasets.load_from_disk`:
//!
//! - a dataset: `data-00000-of-00001.arrow` ... (Arrow IPC *stream* files, contiguous shards of
//!   at most ~500 MB as `datasets` cuts them), `dataset_info.json` (the `features`), `state.json`
//!   (the shard list and a fingerprint);
//! - a dataset dict: `dataset_dict.json` (`{"splits": [...]}`) and one such folder per split.
//!
//! Loading memory-maps the shards: the arrays point into the mapped files, so opening costs
//! no copy of the data. They are validated and, for folders we wrote, checked against the
//! checksum in `state.json` in one streaming pass (see `ipc`), which keeps about one batch
//! resident. Writing is deterministic (the same dataset gives the same bytes) and atomic per
//! file; the `_fingerprint` is `xxh3-` and the xxh3-64 of the shards' bytes, in order (a
//! `datasets` fingerprint, a random hex string, is not checked).
use super::ipc::{CHECKSUM_PREFIX, checksum_hasher, read_arrow_files};
use super::{Dataset, DatasetDict};
use crate::io::{create_dir_all, write_atomic, write_atomic_with};
use crate::{Error, Result};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema, SchemaRef};
use serde_json::{Value, json};
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use twox_hash::XxHash3_64 as Xxh3;

/// `datasets`' default `max_shard_size`.
const MAX_SHARD_BYTES: usize = 500_000_000;
/// Rows per record batch written are chosen so a batch holds about this much data: the IPC
/// writer copies a batch into one message, so this bounds the memory writing takes.
const WRITE_BATCH_BYTES: usize = 16 << 20;

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: e.line() as u64,
        column: e.column() as u64,
        message: format!("malformed JSON: {e}"),
    })
}

impl Dataset {
    /// Writes the dataset as `datasets.Dataset.save_to_disk` does (see the module doc); an
    /// indices mapping is applied first, as there.
    pub fn save_to_disk(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_dir_all(dir)?;
        let table = self.flat_table()?;
        let schema = hf_schema(&table.schema);
        let n = table.num_rows();
        let bytes: usize = table.batches.iter().map(batch_bytes).sum();
        let shards = (bytes / MAX_SHARD_BYTES + 1).min(n.max(1));
        let mut files = Vec::new();
        let mut hash = checksum_hasher();
        for k in 0..shards {
            // `datasets.Dataset.shard(num_shards, index, contiguous=True)`
            let (div, rem) = (n / shards, n % shards);
            let start = div * k + k.min(rem);
            let len = div + usize::from(k < rem);
            let name = format!("data-{k:05}-of-{shards:05}.arrow");
            let part = table.slice(start, len);
            let path = dir.join(&name);
            write_atomic_with(&path, |w| {
                let mut w = HashingWriter {
                    inner: w,
                    hash: &mut hash,
                };
                write_stream(&mut w, &schema, &part.batches).map_err(std::io::Error::other)
            })?;
            files.push(json!({ "filename": name }));
        }
        let state = json!({
            "_data_files": files,
            "_fingerprint": format!("{CHECKSUM_PREFIX}{:016x}", hash.finish()),
            "_format_columns": null,
            "_format_kwargs": {},
            "_format_type": null,
            "_output_all_columns": false,
            "_split": null,
        });
        let info = json!({
            "citation": "",
            "description": "",
            "features": features(&table.schema),
            "homepage": "",
            "license": "",
        });
        write_atomic(&dir.join("dataset_info.json"), pretty(&info).as_bytes())?;
        write_atomic(&dir.join("state.json"), pretty(&state).as_bytes())
    }

    /// Opens a folder written by `save_to_disk` (ours or `datasets`'), memory-mapping its
    /// shards. The arrays are validated (offsets in bounds, text valid UTF-8) and our own
    /// folders checked against their checksum, which reads the data once, in a streaming pass
    /// that releases each batch's pages after checking it. A damaged folder is an error naming
    /// the file.
    pub fn load_from_disk(dir: impl AsRef<Path>) -> Result<Dataset> {
        load_dir(dir.as_ref())
    }
}

fn load_dir(dir: &Path) -> Result<Dataset> {
    let state_path = dir.join("state.json");
    if !state_path.is_file() {
        let hint = if dir.join("dataset_dict.json").is_file() {
            "it holds a dataset dict (dataset_dict.json): open it with DatasetDict::load_from_disk"
        } else {
            "expected a folder written by save_to_disk (state.json, dataset_info.json, data-*.arrow)"
        };
        return Err(Error::Io {
            path: state_path,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, hint),
        });
    }
    let state = read_json(&state_path)?;
    let names: Vec<String> = state["_data_files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f["filename"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: `_data_files` lists no file; the folder is not a saved dataset",
            state_path.display()
        )));
    }
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    // Our writer's fingerprint is a checksum of the shards' bytes; `datasets`' is not.
    let expected = state["_fingerprint"]
        .as_str()
        .and_then(|f| f.strip_prefix(CHECKSUM_PREFIX))
        .map(str::to_string);
    let mut hash = expected.as_ref().map(|_| checksum_hasher());
    let ds = read_arrow_files(&paths, hash.as_mut())?;
    if let (Some(expected), Some(hash)) = (expected, hash) {
        let found = format!("{:016x}", hash.finish());
        if found != expected {
            return Err(Error::InvalidArgument(format!(
                "{}: the data files' checksum is {CHECKSUM_PREFIX}{found}, but `_fingerprint` says {CHECKSUM_PREFIX}{expected}: they were changed or damaged after save_to_disk wrote them; save the dataset again",
                state_path.display()
            )));
        }
        // the checksum of the shards is this table's fingerprint: nothing to hash again
        if let Ok(fp) = u64::from_str_radix(&found, 16) {
            let _ = ds.table().fingerprint.set(fp);
        }
    }
    Ok(ds)
}

impl DatasetDict {
    /// Writes every split into its own folder under `dir`, with `dataset_dict.json`, as
    /// `datasets.DatasetDict.save_to_disk` does.
    pub fn save_to_disk(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_dir_all(dir)?;
        for (name, ds) in self.iter() {
            ds.save_to_disk(dir.join(name))?;
        }
        let splits = json!({ "splits": self.split_names() });
        write_atomic(
            &dir.join("dataset_dict.json"),
            splits.to_string().as_bytes(),
        )
    }

    /// Opens a folder written by `DatasetDict.save_to_disk` (ours or `datasets`').
    pub fn load_from_disk(dir: impl AsRef<Path>) -> Result<DatasetDict> {
        let dir = dir.as_ref();
        let path = dir.join("dataset_dict.json");
        if !path.is_file() && dir.join("state.json").is_file() {
            return Err(Error::Io {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "it holds a single dataset (state.json): open it with Dataset::load_from_disk",
                ),
            });
        }
        let splits = read_json(&path)?;
        let names = splits["splits"].as_array().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: expected {{\"splits\": [names]}}",
                path.display()
            ))
        })?;
        let mut dd = DatasetDict::default();
        for name in names.iter().filter_map(Value::as_str) {
            dd.insert(name, Dataset::load_from_disk(dir.join(name))?);
        }
        Ok(dd)
    }
}

/// The bytes of a batch's values. A slice counts its part of the buffers it shares, not the
/// whole of them (`get_array_memory_size` counts a 1000-row slice of a gigabyte of text as a
/// gigabyte, which cut a mapped dataset's chunks into 15-row batches and thousands of shards).
pub(crate) fn batch_bytes(b: &RecordBatch) -> usize {
    b.columns()
        .iter()
        .map(|a| {
            a.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| a.get_array_memory_size())
        })
        .sum()
}

/// Writes an IPC stream in batches of about [`WRITE_BATCH_BYTES`]: big batches are cut, runs
/// of small ones (a transform's 1000-row chunks) joined, so a reader gets few batches.
pub(crate) fn write_stream(
    w: &mut impl Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> std::result::Result<(), arrow_schema::ArrowError> {
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(w, schema)?;
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_bytes = 0;
    let flush = |writer: &mut arrow_ipc::writer::StreamWriter<_>,
                 pending: &mut Vec<RecordBatch>|
     -> std::result::Result<(), arrow_schema::ArrowError> {
        match pending.len() {
            0 => {}
            1 => writer.write(&pending[0])?,
            _ => writer.write(&arrow_select::concat::concat_batches(
                schema,
                pending.iter(),
            )?)?,
        }
        pending.clear();
        Ok(())
    };
    for b in batches {
        let bytes = batch_bytes(b).max(1);
        let rows = (b.num_rows() * WRITE_BATCH_BYTES / bytes).clamp(1, b.num_rows().max(1));
        let mut start = 0;
        while start < b.num_rows() {
            let len = rows.min(b.num_rows() - start);
            let part =
                RecordBatch::try_new(schema.clone(), b.slice(start, len).columns().to_vec())?;
            let part_bytes = if len == b.num_rows() {
                bytes
            } else {
                batch_bytes(&part)
            };
            if pending_bytes + part_bytes > WRITE_BATCH_BYTES {
                flush(&mut writer, &mut pending)?;
                pending_bytes = 0;
            }
            pending.push(part);
            pending_bytes += part_bytes;
            start += len;
        }
    }
    flush(&mut writer, &mut pending)?;
    writer.finish()
}

/// The schema with `datasets`' own metadata (`{"huggingface": {"info": {"features": ...}}}`),
/// which `datasets` reads the features from.
fn hf_schema(schema: &SchemaRef) -> SchemaRef {
    let mut metadata = schema.metadata().clone();
    let info = json!({ "info": { "features": features(schema) } });
    metadata.insert("huggingface", info.to_string());
    Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata))
}

/// `datasets.Features` as JSON for a schema: `Value` for scalars, `List` for lists, a plain
/// dict for a struct.
pub(crate) fn features(schema: &Schema) -> Value {
    Value::Object(
        schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), feature(f.data_type())))
            .collect::<serde_json::Map<_, _>>(),
    )
}

fn feature(t: &DataType) -> Value {
    use DataType::*;
    let value = |dtype: &str| json!({ "dtype": dtype, "_type": "Value" });
    match t {
        List(f) => json!({ "feature": feature(f.data_type()), "_type": "List" }),
        LargeList(f) => json!({ "feature": feature(f.data_type()), "_type": "LargeList" }),
        FixedSizeList(f, n) => {
            json!({ "feature": feature(f.data_type()), "length": n, "_type": "List" })
        }
        Struct(fields) => Value::Object(
            fields
                .iter()
                .map(|f| (f.name().clone(), feature(f.data_type())))
                .collect::<serde_json::Map<_, _>>(),
        ),
        Utf8View => value("string_view"),
        LargeBinary => value("large_binary"),
        other => value(super::arrow::dtype_name(other)),
    }
}

/// JSON with two-space indents, as Python's `json.dump(indent=2)` writes it.
fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A fingerprint of the bytes written, stable across platforms and versions and independent
/// of how the writes are cut: eight interleaved 64-bit FNV-1a lanes (byte `i` goes to lane
/// `i % 8`), so hashing a gigabyte is not one long chain of multiplications.
#[derive(Clone)]
pub(crate) struct Fnv {
    lanes: [u64; 8],
    pos: usize,
}

const FNV_PRIME: u64 = 0x0100_0000_01b3;

impl Default for Fnv {
    fn default() -> Self {
        Fnv {
            lanes: [0xcbf2_9ce4_8422_2325; 8],
            pos: 0,
        }
    }
}

impl Fnv {
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !self.pos.is_multiple_of(8) && !bytes.is_empty() {
            self.byte(bytes[0]);
            bytes = &bytes[1..];
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            for (lane, &b) in self.lanes.iter_mut().zip(w) {
                *lane = (*lane ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
        }
        self.pos += bytes.len() - words.remainder().len();
        for &b in words.remainder() {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        let lane = &mut self.lanes[self.pos % 8];
        *lane = (*lane ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        self.pos += 1;
    }

    pub fn finish(&self) -> u64 {
        self.lanes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &l| {
            (h ^ l).wrapping_mul(FNV_PRIME)
        })
    }
}

/// Feeds every byte written to the shards' checksum.
struct HashingWriter<'a, W: Write> {
    inner: W,
    hash: &'a mut Xxh3,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.write(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
