//! The Arrow cache of `load_dataset`: the first load of text, CSV or JSON files writes the
//! parsed dataset in the `save_to_disk` layout under a key made of the loader, its options and
//! each file's path, size and modification time (as `datasets` fingerprints data files); the
//! next load with the same key memory-maps it instead of parsing again.
//!
//! The cache folder is `$MASSIVETEXT_DATASETS_CACHE` (like `HF_DATASETS_CACHE`), else
//! `$XDG_CACHE_HOME/massivetext/datasets`, else `~/.cache/massivetext/datasets`. Setting the
//! variable to `off` (or an empty string) disables it, as `LoadOptions::keep_in_memory` does.
//!
//! Like `datasets`, the key does not read the files, so an edit that keeps a file's size and
//! puts its modification time back (`touch -r`, some sync tools, a restored backup) is not
//! seen: the old rows come back. `MASSIVETEXT_DATASETS_CACHE_HASH=1` adds a hash of the
//! contents of every file up to [`HASH_MAX_BYTES`] to the key (reading them on each load, about
//! 0.1 s for 64 MB); `keep_in_memory` or `MASSIVETEXT_DATASETS_CACHE=off` skips the cache.
//!
//! An entry is validated and checked against its checksum as it is opened (see `disk`): a
//! damaged one is reported on stderr, removed and built again from the files.
use super::Dataset;
use super::disk::Fnv;
use crate::Result;
use std::hash::Hasher;
use std::path::{Path, PathBuf};

/// With `MASSIVETEXT_DATASETS_CACHE_HASH` on, files up to this size are hashed into the key.
pub(crate) const HASH_MAX_BYTES: u64 = 64 << 20;

/// The cache folder, or `None` when caching is turned off or there is no home folder.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("MASSIVETEXT_DATASETS_CACHE") {
        Some(v) if v.is_empty() || v == "off" || v == "0" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|c| c.join("massivetext").join("datasets")),
    }
}

/// Whether `MASSIVETEXT_DATASETS_CACHE_HASH` asks for the contents in the key.
fn hash_contents() -> bool {
    std::env::var("MASSIVETEXT_DATASETS_CACHE_HASH")
        .is_ok_and(|v| !matches!(v.trim(), "" | "0" | "off" | "false" | "no"))
}

/// The xxh3-64 of a file's bytes, read in blocks; `None` when it cannot be read.
fn content_hash(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut h = super::ipc::checksum_hasher();
    let mut block = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut block) {
            Ok(0) => return Some(h.finish()),
            Ok(n) => h.write(&block[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// The key of one split: loader, options, and every file's absolute path, size and mtime (and,
/// when asked, the contents of small files). `None` when a file's metadata cannot be read (the
/// load then reports the file itself).
fn key(kind: &str, files: &[PathBuf], options: &str) -> Option<String> {
    let mut h = Fnv::default();
    h.update(kind.as_bytes());
    h.update(options.as_bytes());
    let contents = hash_contents();
    if contents {
        h.update(b"contents");
    }
    for f in files {
        let abs = std::fs::canonicalize(f).ok()?;
        let meta = std::fs::metadata(&abs).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        h.update(abs.to_string_lossy().as_bytes());
        h.update(&meta.len().to_le_bytes());
        h.update(&mtime.as_nanos().to_le_bytes());
        if contents && meta.len() <= HASH_MAX_BYTES {
            h.update(&content_hash(&abs)?.to_le_bytes());
        }
    }
    Some(format!("{:016x}", h.finish()))
}

/// The cached dataset for these files, or `build()`'s result, written to the cache first and
/// opened memory-mapped from there. A cache that cannot be written (read-only, full disk) only
/// costs the speed-up: the built dataset is returned as it is.
pub(crate) fn cached(
    kind: &str,
    files: &[PathBuf],
    options: &str,
    build: impl FnOnce() -> Result<Dataset>,
) -> Result<Dataset> {
    let (Some(root), Some(key)) = (cache_dir(), key(kind, files, options)) else {
        return build();
    };
    let dir = root.join(kind).join(&key);
    sweep_stale(&root.join(kind), &key);
    if dir.join("state.json").is_file() {
        match Dataset::load_from_disk(&dir) {
            Ok(ds) => return Ok(ds),
            Err(e) => {
                eprintln!(
                    "warning: the dataset cache entry {} is damaged and is built again from the files ({e})",
                    dir.display()
                );
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    Ok(store(&root.join(kind), &key, build()?))
}

/// Removes what a killed writer of the entry `key` left in `parent`: the `KEY.tmp-PID-…`
/// folder it was writing, or the `KEY.old-PID-…` it was deleting, once process PID is gone (a
/// live one may be writing the same entry right now). Without `/proc` nothing is removed.
fn sweep_stale(parent: &Path, key: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix(".tmp-").or_else(|| r.strip_prefix(".old-")))
        else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(process_gone) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Whether process `pid` has ended (Linux: no `/proc/PID`); `false` when it cannot be told.
fn process_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    pid != std::process::id() && proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Writes `ds` as the entry `parent/key` and opens it memory-mapped from there; a folder with
/// that name is replaced. The entry is written under a temporary name and renamed, so it is
/// whole or absent. A cache that cannot be written (read-only, full disk) only costs the
/// speed-up: `ds` is returned as it is, with a warning that names the entry and the error.
fn store(parent: &Path, key: &str, ds: Dataset) -> Dataset {
    let dir = parent.join(key);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = parent.join(format!("{key}.tmp-{}-{nanos}", std::process::id()));
    if let Err(e) = ds.save_to_disk(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Said once per entry: every later load parses the files again until it is written.
        eprintln!(
            "warning: the cache entry {} could not be written ({e}); the data stays in memory this time and is parsed again next time: free space there, or set MASSIVETEXT_DATASETS_CACHE to another folder",
            dir.display()
        );
        return ds;
    }
    if dir.exists() {
        // replaced (`load_from_cache_file: false`): move the old entry aside first, so the
        // name never points at half of either
        let old = parent.join(format!("{key}.old-{}-{nanos}", std::process::id()));
        if std::fs::rename(&dir, &old).is_ok() {
            let _ = std::fs::remove_dir_all(&old);
        }
    }
    // Another process may have finished the same entry first; either copy is good.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let _ = crate::io::sync_dir(parent);
    Dataset::load_from_disk(&dir).unwrap_or(ds)
}

/// The folder of the transform cache's entry `key`, or `None` when caching is off.
pub(crate) fn transform_entry(key: &str) -> Option<PathBuf> {
    cache_dir().map(|root| root.join("transforms").join(key))
}

/// The transform cache (`datasets`' `cache-<fingerprint>.arrow` files): the entry `key`
/// (made of the input's fingerprint, the transform's name and its options) when it exists
/// and `reuse` allows, else `build()`'s result, written there and opened memory-mapped. An
/// error from `build` (a failing closure) writes nothing.
pub(crate) fn cached_transform(
    key: &str,
    reuse: bool,
    build: impl FnOnce() -> Result<Dataset>,
) -> Result<Dataset> {
    let Some(dir) = transform_entry(key) else {
        return build();
    };
    if let Some(parent) = dir.parent() {
        sweep_stale(parent, key);
    }
    if reuse && dir.join("state.json").is_file() {
        match Dataset::load_from_disk(&dir) {
            Ok(ds) => return Ok(ds),
            Err(e) => {
                eprintln!(
                    "warning: the transform cache entry {} is damaged and is computed again ({e})",
                    dir.display()
                );
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    let ds = build()?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    if crate::io::create_dir_all(parent).is_err() {
        return Ok(ds);
    }
    Ok(store(parent, key, ds))
}
