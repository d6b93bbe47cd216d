//! `map` and `filter` at scale: rows are processed chunk by chunk (at most
//! [`MapOptions::writer_batch_size`] rows held as JSON per worker), each chunk's output built
//! into Arrow arrays at once (`chunks.rs`), optionally on several threads with the result in
//! input order, and optionally cached as Arrow files keyed by the input's fingerprint and the
//! transform's name (`cache.rs`), as `datasets` does.
//!
//! The row-wise `map` itself (rows filled from typed columns, reused from chunk to chunk, the
//! closure's thread beside a building thread, unchanged columns shared with the input) is
//! `row_map.rs` with `cells.rs`; this file holds the options, the parallel and cached forms,
//! the filters and the batched map.
use super::cache::cached_transform;
use super::cells::fill_row;
use super::chunks::{Chunk, Part, assemble};
use super::ipc::checksum_hasher;
use super::options::MapOptions;
use super::row_map::{RowBuffers, row_error};
use super::table::arrow_error;
use super::{Dataset, Row};
use crate::{Error, Result};
use arrow_array::{Array, ArrayRef, UInt64Array};
use arrow_schema::{Field, Schema};
use rayon::prelude::*;
use std::hash::Hasher;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `task` on chunks `0..n` with `num_proc` threads (each with its own `init()` state),
/// the results in chunk order. When chunks fail, the error of the first failing chunk is
/// returned (chunks after a failed one are skipped, chunks before it always run), so the
/// error names the same row for any `num_proc`.
pub(crate) fn par_chunks<T: Send, S>(
    n: usize,
    num_proc: usize,
    init: impl Fn() -> S + Sync + Send,
    task: impl Fn(&mut S, usize) -> Result<T> + Sync + Send,
) -> Result<Vec<T>> {
    if num_proc <= 1 || n <= 1 {
        let mut state = init();
        return (0..n).map(|k| task(&mut state, k)).collect();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(num_proc)
        .build()
        .map_err(|e| Error::InvalidArgument(format!("num_proc {num_proc}: {e}")))?;
    let failed = AtomicUsize::new(usize::MAX);
    let results: Vec<Option<Result<T>>> = pool.install(|| {
        (0..n)
            .into_par_iter()
            .map_init(init, |state, k| {
                if k > failed.load(Ordering::Relaxed) {
                    return None;
                }
                let r = task(state, k);
                if r.is_err() {
                    failed.fetch_min(k, Ordering::Relaxed);
                }
                Some(r)
            })
            .collect()
    });
    // every chunk before the first failure ran, so this is the first error in row order
    results.into_iter().map_while(|r| r).collect()
}

fn batch_error(op: &str, rows: &Range<usize>, e: Error) -> Error {
    Error::Transform {
        op: op.to_string(),
        at: format!("the batch of rows {}..{}", rows.start, rows.end),
        source: Box::new(e),
    }
}

impl Dataset {
    /// Dataset rows `start..start + len` as a dataset (arrays shared).
    pub(crate) fn rows_range(&self, range: Range<usize>) -> Dataset {
        match self.indices() {
            Some(idx) => Dataset::from_table(self.table().clone(), Some(idx[range].to_vec())),
            None => Dataset::from_table(self.table().slice(range.start, range.len()), None),
        }
    }

    /// Ranges of at most `rows` dataset rows; without an indices mapping none crosses a record
    /// batch, so a chunk's input columns are slices of one array.
    pub(crate) fn chunk_ranges(&self, rows: usize) -> Vec<Range<usize>> {
        let rows = rows.max(1);
        let mut out = Vec::new();
        let mut cut = |start: usize, end: usize| {
            let mut s = start;
            while s < end {
                let e = (s + rows).min(end);
                out.push(s..e);
                s = e;
            }
        };
        match self.indices() {
            Some(idx) => cut(0, idx.len()),
            None => {
                for k in 0..self.table().batches.len() {
                    let s = self.table().batch_start(k);
                    cut(s, s + self.table().batches[k].num_rows());
                }
            }
        }
        out
    }

    /// Input column `c` over a chunk's rows: a slice of the input array, or (under an indices
    /// mapping) the rows gathered.
    pub(crate) fn chunk_column(&self, c: usize, range: &Range<usize>) -> Result<ArrayRef> {
        let table = self.table();
        match self.indices() {
            None => {
                let (b, j) = table.locate(range.start);
                Ok(table.batches[b].column(c).slice(j, range.len()))
            }
            Some(idx) => {
                let arrays: Vec<&dyn Array> =
                    table.batches.iter().map(|b| b.column(c).as_ref()).collect();
                let pairs: Vec<(usize, usize)> = idx[range.clone()]
                    .iter()
                    .map(|&r| table.locate(r))
                    .collect();
                arrow_select::interleave::interleave(&arrays, &pairs)
                    .map_err(|e| arrow_error("gathering rows", e))
            }
        }
    }

    /// The kept dataset rows of one chunk.
    pub(crate) fn filter_chunk(
        &self,
        op: &str,
        range: Range<usize>,
        keep: &mut dyn FnMut(&Row) -> Result<bool>,
        state: &mut RowBuffers,
    ) -> Result<Vec<usize>> {
        let cells = self.chunk_cells(&range)?;
        let fields = self.table().schema.fields();
        let row = &mut state.row;
        let mut kept = Vec::new();
        for (k, i) in range.enumerate() {
            fill_row(row, fields, &cells, k, &mut state.added);
            if keep(row).map_err(|e| row_error(op, i, e))? {
                kept.push(i);
            }
        }
        Ok(kept)
    }

    /// The mapped chunks of rows as a dataset, less the `remove_columns` it has.
    fn finish_map(&self, chunks: Vec<Chunk>, remove: &[String]) -> Result<Dataset> {
        let ds = Dataset::from_table(assemble(chunks)?, None);
        let present: Vec<&str> = remove
            .iter()
            .map(String::as_str)
            .filter(|c| ds.column_index(c).is_ok())
            .collect();
        if present.is_empty() {
            Ok(ds)
        } else {
            ds.remove_columns(&present)
        }
    }

    /// `remove_columns` must name input columns, as in `datasets`.
    fn check_remove(&self, op: &str, opts: &MapOptions) -> Result<()> {
        for c in &opts.remove_columns {
            self.column_index(c).map_err(|_| {
                Error::InvalidArgument(format!(
                    "{op}: remove_columns names `{c}`, which the dataset does not have; its columns: {}",
                    self.column_names().join(", ")
                ))
            })?;
        }
        Ok(())
    }

    /// The cache key of a transform of this dataset, or `None` when it is not to be cached.
    fn transform_key(&self, op: &str, opts: &MapOptions, extra: &str) -> Option<String> {
        let name = opts.new_fingerprint.as_ref()?;
        if opts.keep_in_memory {
            return None;
        }
        let mut h = checksum_hasher();
        for part in [
            op,
            name,
            extra,
            &opts.remove_columns.join("\u{0}"),
            &format!("{}", self.fingerprint_u64()),
        ] {
            h.write(part.as_bytes());
            h.write(&[0xff]);
        }
        Some(format!("{op}-{:016x}", h.finish()))
    }

    /// `build()`, or its cached result under `opts` (see [`MapOptions::new_fingerprint`]).
    pub(crate) fn cached_map(
        &self,
        op: &str,
        opts: &MapOptions,
        extra: &str,
        build: impl FnOnce() -> Result<Dataset>,
    ) -> Result<Dataset> {
        self.check_remove(op, opts)?;
        match self.transform_key(op, opts, extra) {
            Some(key) => cached_transform(&key, opts.load_from_cache_file, build),
            None => build(),
        }
    }

    /// The kept rows of a filter, or their cached list (an Arrow file of row numbers, as
    /// `datasets` caches a filter's indices), as an indices mapping over this dataset.
    pub(crate) fn cached_filter(
        &self,
        op: &str,
        opts: &MapOptions,
        extra: &str,
        build: impl FnOnce() -> Result<Vec<usize>>,
    ) -> Result<Dataset> {
        let Some(key) = self.transform_key(op, opts, extra) else {
            return Ok(self.take_rows(&build()?));
        };
        let n = self.num_rows();
        let kept = cached_transform(&key, opts.load_from_cache_file, || {
            let idx = build()?;
            let array: ArrayRef =
                Arc::new(UInt64Array::from_iter_values(idx.iter().map(|&i| i as u64)));
            let schema = Arc::new(Schema::new(vec![Field::new(
                "indices",
                array.data_type().clone(),
                false,
            )]));
            Dataset::from_record_batches(
                schema.clone(),
                vec![
                    arrow_array::RecordBatch::try_new(schema, vec![array])
                        .map_err(|e| arrow_error("writing the kept rows", e))?,
                ],
            )
        })?;
        let mut idx = Vec::with_capacity(kept.num_rows());
        for b in &kept.table().batches {
            let col = b.column(0);
            let ints = col.as_any().downcast_ref::<UInt64Array>();
            match ints {
                Some(a) if a.null_count() == 0 => {
                    idx.extend(a.values().iter().map(|&i| i as usize));
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "{op}: the cached entry for `{key}` is not a list of row numbers; remove it from the transform cache"
                    )));
                }
            }
        }
        if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
            return Err(Error::InvalidArgument(format!(
                "{op}: the cached entry `{key}` keeps row {bad} of a dataset of {n} rows; remove it from the transform cache"
            )));
        }
        Ok(self.take_rows(&idx))
    }

    /// Maps every row to a new row (which may add, change or drop columns). Rows are given to
    /// `f` and built into Arrow arrays 1000 at a time, so memory stays near the size of the
    /// output; columns `f` leaves unchanged share the input's arrays. An error names the row.
    /// `f` runs on the calling thread, in row order; a second thread fills the rows and builds
    /// the arrays meanwhile (`row_map.rs`).
    /// For threads, a cache and other options see [`map_with`](Self::map_with).
    pub fn map(&self, mut f: impl FnMut(Row) -> Result<Row>) -> Result<Dataset> {
        let ranges = self.chunk_ranges(MapOptions::default().writer_batch_size);
        let chunks = self.map_rows("map", &ranges, &mut f)?;
        self.finish_map(chunks, &[])
    }

    /// [`map`](Self::map) with `datasets`' options ([`MapOptions`]): `num_proc` worker threads
    /// (the output in input order, the same for any `num_proc`), a cache entry named by
    /// `new_fingerprint`, `remove_columns`, ...
    pub fn map_with(
        &self,
        f: impl Fn(Row) -> Result<Row> + Send + Sync,
        opts: &MapOptions,
    ) -> Result<Dataset> {
        self.cached_map("map", opts, &format!("{}", opts.writer_batch_size), || {
            let ranges = self.chunk_ranges(opts.writer_batch_size);
            let chunks = if opts.num_proc <= 1 {
                self.map_rows("map", &ranges, &mut |r| f(r))?
            } else {
                par_chunks(ranges.len(), opts.num_proc, RowBuffers::default, |st, k| {
                    self.map_chunk("map", ranges[k].clone(), &mut |r| f(r), st)
                })?
            };
            self.finish_map(chunks, &opts.remove_columns)
        })
    }

    /// As [`filter`](Self::filter), with `datasets`' options: `num_proc` threads, a cached
    /// list of kept rows under `new_fingerprint`. The closure may fail; the error names the row.
    pub fn filter_with(
        &self,
        keep: impl Fn(&Row) -> Result<bool> + Send + Sync,
        opts: &MapOptions,
    ) -> Result<Dataset> {
        self.cached_filter("filter", opts, "", || {
            let ranges = self.chunk_ranges(opts.writer_batch_size);
            let parts = par_chunks(ranges.len(), opts.num_proc, RowBuffers::default, |st, k| {
                self.filter_chunk("filter", ranges[k].clone(), &mut |r| keep(r), st)
            })?;
            Ok(parts.concat())
        })
    }

    /// Maps batches of up to `batch_size` rows, each given as a `Dataset` (columns shared with
    /// this one), to new datasets that are stacked: a batch may change the number of rows and
    /// the columns (HF's `map(batched=True)`). Each batch's output becomes Arrow chunks at
    /// once; when batches type a column differently, the column is typed over all of them.
    pub fn map_batched(
        &self,
        batch_size: usize,
        mut f: impl FnMut(Dataset) -> Result<Dataset>,
    ) -> Result<Dataset> {
        if self.is_empty() {
            return Ok(self.clone());
        }
        let ranges = batch_ranges(self.num_rows(), batch_size);
        let mut chunks = Vec::new();
        for r in ranges {
            chunks.extend(self.map_batch("map_batched", r, &mut f)?);
        }
        self.finish_map(chunks, &[])
    }

    /// [`map_batched`](Self::map_batched) with `datasets`' options: `batch_size`, `num_proc`
    /// threads (batches in input order), a cache entry under `new_fingerprint`,
    /// `remove_columns`.
    pub fn map_batched_with(
        &self,
        f: impl Fn(Dataset) -> Result<Dataset> + Send + Sync,
        opts: &MapOptions,
    ) -> Result<Dataset> {
        if self.is_empty() {
            return Ok(self.clone());
        }
        self.cached_map("map_batched", opts, &format!("{}", opts.batch_size), || {
            let ranges = batch_ranges(self.num_rows(), opts.batch_size);
            let parts = par_chunks(
                ranges.len(),
                opts.num_proc,
                || (),
                |_, k| self.map_batch("map_batched", ranges[k].clone(), &mut |b| f(b)),
            )?;
            self.finish_map(parts.into_iter().flatten().collect(), &opts.remove_columns)
        })
    }

    /// One batch through `f`, as chunks.
    fn map_batch(
        &self,
        op: &str,
        range: Range<usize>,
        f: &mut dyn FnMut(Dataset) -> Result<Dataset>,
    ) -> Result<Vec<Chunk>> {
        let out = f(self.rows_range(range.clone())).map_err(|e| batch_error(op, &range, e))?;
        let table = out.flat_table()?;
        let json = &out.inner.json;
        Ok(table
            .batches
            .iter()
            .map(|b| Chunk {
                rows: b.num_rows(),
                columns: table
                    .schema
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .zip(json)
                    .map(|((f, a), &j)| (f.name().clone(), Part::reused(a.clone(), j)))
                    .collect(),
            })
            .collect())
    }

    /// Keeps rows by batches: `keep` gets up to `batch_size` rows as a `Dataset` and returns
    /// one `bool` per row (HF's `filter(batched=True)`). The result is an indices mapping.
    pub fn filter_batched(
        &self,
        batch_size: usize,
        mut keep: impl FnMut(&Dataset) -> Result<Vec<bool>>,
    ) -> Result<Dataset> {
        let mut idx = Vec::new();
        for r in batch_ranges(self.num_rows(), batch_size) {
            idx.extend(self.filter_batch("filter_batched", r, &mut keep)?);
        }
        Ok(self.take_rows(&idx))
    }

    /// [`filter_batched`](Self::filter_batched) with `datasets`' options: `batch_size`,
    /// `num_proc` threads, a cached list of kept rows under `new_fingerprint`.
    pub fn filter_batched_with(
        &self,
        keep: impl Fn(&Dataset) -> Result<Vec<bool>> + Send + Sync,
        opts: &MapOptions,
    ) -> Result<Dataset> {
        self.cached_filter(
            "filter_batched",
            opts,
            &format!("{}", opts.batch_size),
            || {
                let ranges = batch_ranges(self.num_rows(), opts.batch_size);
                let parts = par_chunks(
                    ranges.len(),
                    opts.num_proc,
                    || (),
                    |_, k| self.filter_batch("filter_batched", ranges[k].clone(), &mut |b| keep(b)),
                )?;
                Ok(parts.concat())
            },
        )
    }

    fn filter_batch(
        &self,
        op: &str,
        range: Range<usize>,
        keep: &mut dyn FnMut(&Dataset) -> Result<Vec<bool>>,
    ) -> Result<Vec<usize>> {
        let mask = keep(&self.rows_range(range.clone())).map_err(|e| batch_error(op, &range, e))?;
        if mask.len() != range.len() {
            return Err(batch_error(
                op,
                &range,
                Error::InvalidArgument(format!(
                    "the function returned {} booleans for a batch of {} rows; return one per row",
                    mask.len(),
                    range.len()
                )),
            ));
        }
        Ok(range
            .zip(mask)
            .filter(|&(_, k)| k)
            .map(|(i, _)| i)
            .collect())
    }
}

/// `0..n` cut into batches of `batch_size` rows (the last one shorter), as `datasets` cuts them.
fn batch_ranges(n: usize, batch_size: usize) -> Vec<Range<usize>> {
    let b = batch_size.max(1);
    (0..n.div_ceil(b))
        .map(|k| k * b..((k + 1) * b).min(n))
        .collect()
}
