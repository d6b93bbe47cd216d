//! [`MapOptions`]: the keyword arguments of `datasets`' `map` and `filter` that apply here.

/// Options of the `_with` transforms ([`map_with`](super::Dataset::map_with),
/// [`filter_with`](super::Dataset::filter_with), their batched and column forms), named as
/// the keyword arguments of `datasets.Dataset.map` / `filter`:
///
/// ```
/// # use massivetext::prelude::*;
/// # let ds = Dataset::from_rows([json!({"text": "a b"}).as_object().unwrap().clone()]);
/// let opts = MapOptions { num_proc: 2, new_fingerprint: Some("add-n-v1".into()), ..Default::default() };
/// let with_n = ds.map_column_with("text", "n", |s: &str| s.len(), &opts)?;
/// # assert_eq!(with_n.column("n")?[0], json!(3));
/// # Ok::<(), massivetext::Error>(())
/// ```
///
/// A Rust closure cannot be hashed as `datasets` hashes a Python function, so a transform is
/// cached only when it is given a name: `new_fingerprint`. Change the name when the closure
/// changes (`"add-n-v2"`), or the old results come back.
#[derive(Clone, Debug, PartialEq)]
pub struct MapOptions {
    /// Rows per batch given to the batched forms (`datasets`' default, 1000).
    pub batch_size: usize,
    /// Worker threads (`datasets`' `num_proc`, which starts processes). The rows are cut into
    /// chunks that the workers take in turn; the result is in the input's order and the same
    /// for any `num_proc`. The closure must be `Send + Sync`. 1 (the default) runs on the
    /// calling thread.
    pub num_proc: usize,
    /// Rows per output chunk of the row forms (`datasets`' `writer_batch_size`, 1000): a
    /// worker holds at most this many rows as JSON at a time.
    pub writer_batch_size: usize,
    /// The transform's name, part of the cache key with the input's
    /// [`fingerprint`](super::Dataset::fingerprint) and these options (not `num_proc`, which
    /// does not change the result). `None` (the default): not cached.
    pub new_fingerprint: Option<String>,
    /// Use a cached result when there is one (`true`, the default); `false` computes it again
    /// and replaces the entry.
    pub load_from_cache_file: bool,
    /// Keep the result in memory and use no cache at all, even with a `new_fingerprint`.
    pub keep_in_memory: bool,
    /// Input columns to drop from the result (they are still given to the closure). A name the
    /// dataset lacks is an error.
    pub remove_columns: Vec<String>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            batch_size: 1000,
            num_proc: 1,
            writer_batch_size: 1000,
            new_fingerprint: None,
            load_from_cache_file: true,
            keep_in_memory: false,
            remove_columns: Vec::new(),
        }
    }
}
