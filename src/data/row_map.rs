//! The row-wise `map`: rows filled from a chunk's typed input columns (`cells.rs`), given to
//! the closure, and built into Arrow columns chunk by chunk (`chunks.rs`).
//!
//! With one closure (`map`, or `map_with` at `num_proc` 1) the closure runs on the calling
//! thread and a second thread does the rest: it fills the rows of the next group of chunks and
//! builds the previous group's columns while the closure runs. Rows travel in groups of at
//! least [`GROUP_ROWS`] so the two threads meet rarely, and each thread frees what it
//! allocated (the calling thread removes the keys its closure added), which keeps the
//! allocator's per-thread caches warm. The result is the same as chunk after chunk.
use super::arrow::{from_refs, kind_of_refs};
use super::cells::{Cells, drop_added_keys, fill_row, fill_values};
use super::chunks::{Chunk, Part};
use super::{Dataset, Row};
use crate::{Error, Result};
use serde_json::Value;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Rows handed between the two threads at a time (whole chunks, at least this many, or an
/// eighth of the rows where that is less, so that small datasets take the same path).
const GROUP_ROWS: usize = 8192;

/// A worker's reusable rows: the row maps of a chunk (`map`), the one row (`filter`), and the
/// names of the keys a closure added (see [`drop_added_keys`]).
#[derive(Default)]
pub(crate) struct RowBuffers {
    pub rows: Vec<Row>,
    pub row: Row,
    pub added: Vec<String>,
}

/// The error of a closure that failed on row `i`.
pub(crate) fn row_error(op: &str, i: usize, e: Error) -> Error {
    Error::Transform {
        op: op.to_string(),
        at: format!("row {i}"),
        source: Box::new(e),
    }
}

/// Consecutive chunks of `ranges` (as index ranges into it) holding at least `rows` rows each,
/// but the last.
fn groups(ranges: &[Range<usize>], rows: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut held) = (0, 0);
    for (k, r) in ranges.iter().enumerate() {
        held += r.len();
        if held >= rows {
            out.push(start..k + 1);
            (start, held) = (k + 1, 0);
        }
    }
    if start < ranges.len() {
        out.push(start..ranges.len());
    }
    out
}

impl Dataset {
    /// A chunk's input columns, typed once (`cells.rs`).
    pub(crate) fn chunk_cells(&self, range: &Range<usize>) -> Result<Vec<Cells>> {
        (0..self.table().schema.fields().len())
            .map(|c| Ok(Cells::new(self.chunk_column(c, range)?, self.inner.json[c])))
            .collect()
    }

    /// Maps one chunk of rows through `f` into Arrow columns; `state.rows` is the worker's
    /// buffer of row maps, reused from chunk to chunk.
    pub(crate) fn map_chunk(
        &self,
        op: &str,
        range: Range<usize>,
        f: &mut dyn FnMut(Row) -> Result<Row>,
        state: &mut RowBuffers,
    ) -> Result<Chunk> {
        let cells = self.chunk_cells(&range)?;
        let fields = self.table().schema.fields();
        state.rows.resize_with(range.len(), Row::new);
        for (k, i) in range.clone().enumerate() {
            let mut row = std::mem::take(&mut state.rows[k]);
            fill_row(&mut row, fields, &cells, k, &mut state.added);
            state.rows[k] = f(row).map_err(|e| row_error(op, i, e))?;
        }
        self.chunk_of_rows(&state.rows[..range.len()], &cells)
    }

    /// The chunks `ranges` through `f`, in order, `f` on this thread (see the module's note).
    pub(crate) fn map_rows(
        &self,
        op: &str,
        ranges: &[Range<usize>],
        f: &mut dyn FnMut(Row) -> Result<Row>,
    ) -> Result<Vec<Chunk>> {
        let total: usize = ranges.iter().map(Range::len).sum();
        let groups = groups(ranges, (total / 8).clamp(1, GROUP_ROWS));
        if groups.len() <= 1 {
            let mut state = RowBuffers::default();
            return ranges
                .iter()
                .map(|r| self.map_chunk(op, r.clone(), f, &mut state))
                .collect();
        }
        let n = self.table().schema.fields().len();
        std::thread::scope(|scope| {
            // filled rows: worker → this thread; mapped rows: this thread → worker
            let (filled_tx, filled) = sync_channel::<Result<Vec<Row>>>(1);
            let (mapped_tx, mapped) = sync_channel::<Vec<Row>>(1);
            let groups = &groups;
            let worker = std::thread::Builder::new()
                .name("massivetext-map".into())
                .spawn_scoped(scope, move || {
                    self.fill_and_build(ranges, groups, &filled_tx, &mapped)
                })
                .map_err(|e| {
                    Error::InvalidArgument(format!(
                        "{op}: could not start the thread that builds the output: {e}"
                    ))
                })?;
            let mut added = Vec::new();
            for g in groups {
                let Ok(rows) = filled.recv() else {
                    break; // the worker stopped: its error comes from join below
                };
                let mut rows = rows?;
                let first = ranges[g.start].start;
                for (i, row) in (first..).zip(rows.iter_mut()) {
                    drop_added_keys(row, n, &mut added);
                    *row = f(std::mem::take(row)).map_err(|e| row_error(op, i, e))?;
                }
                if mapped_tx.send(rows).is_err() {
                    break;
                }
            }
            drop(mapped_tx);
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// [`map_rows`](Self::map_rows)' second thread: fills the rows of up to two groups ahead
    /// (reusing the row maps of built groups) and builds each group's chunks as its mapped rows
    /// come back. Stops quietly when the mapping thread stops (its closure failed).
    fn fill_and_build(
        &self,
        ranges: &[Range<usize>],
        groups: &[Range<usize>],
        filled: &SyncSender<Result<Vec<Row>>>,
        mapped: &Receiver<Vec<Row>>,
    ) -> Result<Vec<Chunk>> {
        let fields = self.table().schema.fields();
        let mut spare: Vec<Vec<Row>> = Vec::new();
        let mut in_flight: VecDeque<Vec<Vec<Cells>>> = VecDeque::new();
        let mut chunks = Vec::with_capacity(ranges.len());
        let mut next = groups.iter();
        for built in 0..groups.len() {
            while in_flight.len() < 2
                && let Some(g) = next.next()
            {
                let mut rows = spare.pop().unwrap_or_default();
                let rows_in = ranges[g.start].start..ranges[g.end - 1].end;
                rows.resize_with(rows_in.len(), Row::new);
                let mut cells_of = Vec::with_capacity(g.len());
                let mut at = 0;
                for range in &ranges[g.clone()] {
                    let cells = match self.chunk_cells(range) {
                        Ok(cells) => cells,
                        Err(e) => {
                            let _ = filled.send(Err(e));
                            return Ok(chunks);
                        }
                    };
                    for (k, row) in rows[at..at + range.len()].iter_mut().enumerate() {
                        fill_values(row, fields, &cells, k);
                    }
                    at += range.len();
                    cells_of.push(cells);
                }
                if filled.send(Ok(rows)).is_err() {
                    return Ok(chunks);
                }
                in_flight.push_back(cells_of);
            }
            let Ok(rows) = mapped.recv() else {
                return Ok(chunks);
            };
            let cells_of = in_flight.pop_front().unwrap_or_default();
            let mut at = 0;
            for (range, cells) in ranges[groups[built].clone()].iter().zip(&cells_of) {
                chunks.push(self.chunk_of_rows(&rows[at..at + range.len()], cells)?);
                at += range.len();
            }
            spare.push(rows);
        }
        Ok(chunks)
    }

    /// The Arrow columns of a chunk of output rows; an output column equal to the input's
    /// column of the same name shares the input array.
    pub(crate) fn chunk_of_rows(&self, rows: &[Row], cells: &[Cells]) -> Result<Chunk> {
        static NULL: Value = Value::Null;
        let Some(first) = rows.first() else {
            return Ok(Chunk {
                rows: 0,
                columns: Vec::new(),
            });
        };
        let same_keys = rows
            .iter()
            .all(|r| r.len() == first.len() && r.keys().zip(first.keys()).all(|(a, b)| a == b));
        let mut names: Vec<String> = first.keys().cloned().collect();
        let mut values: Vec<Vec<&Value>> = Vec::new();
        if same_keys {
            values = names
                .iter()
                .map(|_| Vec::with_capacity(rows.len()))
                .collect();
            for r in rows {
                for (col, v) in values.iter_mut().zip(r.values()) {
                    col.push(v);
                }
            }
        } else {
            for r in rows {
                for k in r.keys() {
                    if !names.contains(k) {
                        names.push(k.clone());
                    }
                }
            }
            for name in &names {
                values.push(rows.iter().map(|r| r.get(name).unwrap_or(&NULL)).collect());
            }
        }
        let mut columns = Vec::with_capacity(names.len());
        for (name, vals) in names.into_iter().zip(values) {
            if let Ok(c) = self.column_index(&name)
                && !self.inner.json[c]
                && vals.iter().enumerate().all(|(k, v)| cells[c].same(k, v))
            {
                columns.push((name, Part::reused(cells[c].array(), false)));
                continue;
            }
            let kind = kind_of_refs(&vals);
            let (array, json) = from_refs(&vals, &kind);
            columns.push((
                name,
                Part {
                    array,
                    json,
                    kind: Some(kind),
                },
            ));
        }
        Ok(Chunk {
            rows: rows.len(),
            columns,
        })
    }
}
