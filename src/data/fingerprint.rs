//! A dataset's fingerprint (`datasets`' `_fingerprint`): the key the transform cache files its
//! results under. It must change whenever the rows or the columns' types change; it need not
//! be the same for two datasets built differently with the same rows (a cache miss costs time,
//! never a wrong answer).
//!
//! A table read from a folder our `save_to_disk` wrote (the load cache, the transform cache)
//! already has one, the xxh3-64 checksum of its shards, recorded while they were validated: it
//! costs nothing. Any other table is hashed once, when first asked, as the Arrow IPC stream
//! `save_to_disk` would write (schema and every value, in row order), streamed into xxh3
//! without being kept (about 0.1 s per 100 MB). A dataset with an indices mapping hashes its
//! table's fingerprint with the indices, so `filter`, `select` and `shuffle` of a loaded dataset
//! do not read the data again.
use super::Dataset;
use super::disk::write_stream;
use super::ipc::checksum_hasher;
use super::table::Table;
use std::hash::Hasher;
use std::io::Write;

/// Feeds every byte written to an xxh3 hasher and keeps none of them.
struct HashSink<'a>(&'a mut twox_hash::XxHash3_64);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fingerprint of a table's rows and types (computed once per table and its clones).
pub(crate) fn table_fingerprint(table: &Table) -> u64 {
    *table.fingerprint.get_or_init(|| {
        let mut h = checksum_hasher();
        // The IPC writer only fails on types it cannot write, which a dataset never holds;
        // should it fail, the schema's text and the row count still key the entry.
        if write_stream(&mut HashSink(&mut h), &table.schema, &table.batches).is_err() {
            h.write(format!("{:?}", table.schema).as_bytes());
            h.write(&(table.num_rows() as u64).to_le_bytes());
        }
        h.finish()
    })
}

impl Dataset {
    /// The dataset's fingerprint, as `datasets`' `_fingerprint`: 16 hex digits that change when
    /// the rows or column types change. Transforms given a
    /// [`new_fingerprint`](super::MapOptions::new_fingerprint) file their results in the cache
    /// under it. Free for datasets read from the cache or a `save_to_disk` folder we wrote;
    /// other datasets are hashed once (about 0.1 s per 100 MB).
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", self.fingerprint_u64())
    }

    pub(crate) fn fingerprint_u64(&self) -> u64 {
        let table = table_fingerprint(self.table());
        match self.indices() {
            None => table,
            Some(idx) => {
                let mut h = checksum_hasher();
                h.write(b"indices");
                h.write(&table.to_le_bytes());
                for &i in idx {
                    h.write(&(i as u64).to_le_bytes());
                }
                h.finish()
            }
        }
    }
}
