//! Files on disk, in one place: writes that are atomic and durable, JSON, and safetensors.
//!
//! Every file the crate writes goes through [`write_atomic`] (or [`write_atomic_with`] for a
//! streamed file): a temporary file beside the target, flushed to disk, renamed over the target,
//! then the folder itself flushed, so after a crash or kill the target holds either the old
//! contents or the new ones, never half of either. Safetensors are memory-mapped for reading.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The temporary name `write_atomic` uses for `path`: `path` + `.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Flushes a folder's entries to disk (so a rename inside it survives a power cut). A no-op
/// where folders cannot be opened as files.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes the file through `fill`: into `path.tmp`, fsync, rename over `path`, fsync of the
/// folder. On any error the temporary file is removed and the error names the file and the cause.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        fill(&mut w)?;
        w.flush()?;
        injected_failure()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

thread_local! {
    /// Writes left before the injected failure on this thread (see [`inject_write_failure`]).
    static FAIL_IN: std::cell::Cell<Option<usize>> = std::cell::Cell::new(
        std::env::var("MASSIVETEXT_FAIL_WRITE").ok().and_then(|v| v.trim().parse().ok()),
    );
}

/// Fault injection, for tests: the `nth` (1 = the next) atomic write on this thread fails with
/// "No space left on device" after its temporary file was written, as a full disk would make it
/// fail; `None` turns it off. A process started with `MASSIVETEXT_FAIL_WRITE=N` fails its main
/// thread's Nth write the same way. Each write counts once; later writes succeed again.
pub fn inject_write_failure(nth: Option<usize>) {
    FAIL_IN.with(|c| c.set(nth.filter(|&n| n > 0)));
}

fn injected_failure() -> std::io::Result<()> {
    FAIL_IN.with(|c| match c.get() {
        Some(1) => {
            c.set(None);
            #[cfg(unix)]
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            #[cfg(not(unix))]
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "No space left on device",
            ));
        }
        Some(n) => {
            c.set(Some(n - 1));
            Ok(())
        }
        None => Ok(()),
    })
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Creates `dir` and its parents, with an error naming it.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| {
        check_no_file_in_the_way(dir).err().unwrap_or(Error::Write {
            path: dir.to_path_buf(),
            source,
        })
    })
}

/// An error when `dir` or one of its parents is a file, so that a folder cannot be made there:
/// the OS says only "File exists" or "Not a directory", naming neither the file nor the way
/// out. Called before work that would end by writing into `dir`.
pub fn check_no_file_in_the_way(dir: &Path) -> Result<()> {
    match dir.ancestors().find(|p| p.is_file()) {
        Some(file) => Err(Error::Write {
            path: dir.to_path_buf(),
            source: std::io::Error::other(format!(
                "{} is a file, not a folder; choose another folder or move the file away",
                file.display()
            )),
        }),
        None => Ok(()),
    }
}

/// The `Error::Write` for `path`.
pub fn write_error(path: &Path, source: std::io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Renames `from` to `to` (and flushes the folder), with an `Error::Write` naming `to`.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|source| write_error(to, source))?;
    sync_dir(to.parent().unwrap_or(Path::new("."))).map_err(|source| write_error(to, source))
}

/// Removes the folder `dir` so that no folder of its name is ever half deleted: it is renamed
/// to `.deleting-NAME` first (one atomic step), then removed. A kill in between leaves only a
/// `.deleting-*` folder, which [`sweep_deleting`] removes later.
pub fn remove_dir_atomic(dir: &Path) -> Result<()> {
    let Some(name) = dir.file_name() else {
        return Err(Error::InvalidArgument(format!(
            "{}: not a folder name",
            dir.display()
        )));
    };
    let mut aside = std::ffi::OsString::from(".deleting-");
    aside.push(name);
    let aside = dir.with_file_name(aside);
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(|source| write_error(&aside, source))?;
    }
    rename(dir, &aside)?;
    std::fs::remove_dir_all(&aside).map_err(|source| write_error(&aside, source))
}

/// Removes the `.deleting-*` folders that [`remove_dir_atomic`] left in `dir` when killed.
pub fn sweep_deleting(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(removed);
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with(".deleting-") {
            std::fs::remove_dir_all(&p).map_err(|source| write_error(&p, source))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

/// A lock on a folder that one process at a time may write: the file `path` created with
/// `create_new`, holding the process id; removed when dropped. A lock left by a process that is
/// no longer running (checked through `/proc/PID` on Linux) is taken over, with a message on
/// stderr.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock `.NAME.lock` beside the folder `dir` (in its parent, created if needed):
    /// outside the folder, so that the lock is none of the folder's files (a folder holding only
    /// a lock is still empty) and a folder that does not exist yet can be locked before it is
    /// made. `what` names the folder in the loser's error.
    pub fn beside(dir: &Path, what: &str) -> Result<Self> {
        let absolute;
        let dir = if dir.file_name().is_none() {
            // `.` or `..`: the folder's own name is needed for the lock's
            absolute = std::fs::canonicalize(dir).map_err(|source| read_error(dir, source))?;
            absolute.as_path()
        } else {
            dir
        };
        let name = dir.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: not a folder name", dir.display()))
        })?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_dir_all(&parent)?;
        let mut lock = std::ffi::OsString::from(".");
        lock.push(name);
        lock.push(".lock");
        Self::acquire(&parent.join(lock), what)
    }

    /// Takes the lock `path` for `what` (e.g. "the shard folder out/"), or an error saying which
    /// process holds it.
    pub fn acquire(path: &Path, what: &str) -> Result<Self> {
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let pid = std::process::id().to_string();
                    f.write_all(pid.as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(|source| write_error(path, source))?;
                    return Ok(DirLock {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    let pid: Option<u32> = text.trim().parse().ok();
                    let alive = match pid {
                        Some(pid) if Path::new("/proc/self").exists() => {
                            Path::new(&format!("/proc/{pid}")).exists()
                        }
                        // Without /proc (or an unreadable lock) the holder cannot be checked.
                        _ => true,
                    };
                    if alive {
                        return Err(Error::InvalidArgument(format!(
                            "{what} is being written by another process ({}; lock file {}); wait for it to finish, or remove the lock file if no such process is running",
                            pid.map_or("process id unknown".to_string(), |p| format!("pid {p}")),
                            path.display()
                        )));
                    }
                    eprintln!(
                        "massivetext: taking over the stale lock {} of process {} (no longer running)",
                        path.display(),
                        pid.unwrap_or(0)
                    );
                    std::fs::remove_file(path).map_err(|source| write_error(path, source))?;
                }
                Err(source) => return Err(write_error(path, source)),
            }
        }
        Err(Error::InvalidArgument(format!(
            "cannot take the lock {} for {what}: another process keeps taking it; try again",
            path.display()
        )))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The `Error::Io` for a failed read of `path`.
pub fn read_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a whole text file, with an error naming it.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| read_error(path, source))
}

/// Reads a whole file as UTF-8 text; errors name the file, and the byte offset where the text
/// stops being UTF-8.
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| read_error(path, source))?;
    String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// Reads JSON into `T`; a syntax or shape error names the file, line and column.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: e.line() as u64,
        column: e.column() as u64,
        message: e.to_string(),
    })
}

/// A safetensors file mapped into memory (no copy of the file is read up front).
fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // SAFETY: the map is read-only and dropped before this function's caller returns; a file
    // truncated underneath by another process is the one hazard, as for every mmap reader.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What a safetensors file holds: its tensors (floating-point ones as f32 on the CPU; integer
/// buffers such as GPT-2's old `attn.bias` masks are reported by name, not loaded) and its
/// metadata header.
pub struct SafetensorsFile {
    pub tensors: HashMap<String, Tensor>,
    /// Tensors that are not floating point (skipped): name and dtype (e.g. `I32`).
    pub skipped: Vec<(String, String)>,
    pub metadata: HashMap<String, String>,
}

/// Reads every tensor of a safetensors file through a memory map, with a clear error for a
/// corrupt file.
pub fn read_safetensors(path: &Path) -> Result<SafetensorsFile> {
    let map = map_file(path)?;
    let corrupt = |message: String| Error::CorruptWeights {
        path: path.to_path_buf(),
        message,
    };
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&map).map_err(|e| corrupt(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&map).map_err(|e| corrupt(e.to_string()))?;
    let mut tensors = HashMap::new();
    let mut skipped = Vec::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            safetensors::Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            safetensors::Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                })
                .collect(),
            other => {
                skipped.push((name, format!("{other:?}")));
                continue;
            }
        };
        tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
    }
    Ok(SafetensorsFile {
        tensors,
        skipped,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
}

/// Writes `tensors` (as f32, sorted by name) with `metadata` (transformers checks for
/// `{"format": "pt"}`) as a safetensors file, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buffers = Vec::with_capacity(sorted.len());
    for (name, t) in &sorted {
        let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        buffers.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = buffers
        .iter()
        .map(|(n, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::CorruptWeights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| Error::CorruptWeights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}
