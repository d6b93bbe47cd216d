//! The code corpus of `massivetext code`: the Python standard library of the machine's
//! `python3`, split by file into train and held-out.
//!
//! The folder is what `python3 -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])"`
//! prints (`/usr/lib/python3.11` on Debian), or a folder given instead. Its files are every
//! `*.py` below it, less the folders that are not the library's own code: `site-packages` and
//! `dist-packages` (installed packages), `test` and `tests` (CPython's test suite: a third of
//! the files, much of it generated or deliberately broken code) and `__pycache__`; and less the
//! files that are not UTF-8 (a handful of tests of source encodings) or are empty.
//!
//! The split is by file, so no function of a held-out file was seen in training: a file is
//! held out when the xxh3-64 hash of its path relative to the folder (with `/` separators),
//! modulo 100, is below the held-out percentage. The same file lands in the same split on every
//! machine and whatever other files the folder holds.
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result, io};

/// The Python code `stdlib_dir` runs.
const STDLIB_QUERY: &str = "import sysconfig; print(sysconfig.get_paths()['stdlib'])";

/// The standard-library folder of the interpreter `python` (`python3` on the PATH by
/// default), as `sysconfig` reports it; an error that says what to do when the interpreter
/// cannot be run or the folder is not there.
pub fn stdlib_dir(python: &str) -> Result<PathBuf> {
    let out = Command::new(python)
        .args(["-c", STDLIB_QUERY])
        .output()
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "cannot run `{python}` to find the Python standard library ({e}): install Python 3 (the code corpus is its standard library), name another interpreter with --python, or give the folder with --stdlib DIR"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::InvalidArgument(format!(
            "`{python} -c \"{STDLIB_QUERY}\"` failed ({}): {}; give the folder with --stdlib DIR",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "`{python}` reports its standard library at {}, which is not a folder here; give the folder with --stdlib DIR",
            dir.display()
        )));
    }
    Ok(dir)
}

/// One source file of the corpus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path below the corpus folder, `/`-separated.
    pub path: String,
    pub text: String,
}

/// The corpus split by file.
#[derive(Clone, Debug, Default)]
pub struct CodeCorpus {
    pub train: Vec<SourceFile>,
    pub held_out: Vec<SourceFile>,
}

impl CodeCorpus {
    /// Bytes of text in a split.
    pub fn bytes(files: &[SourceFile]) -> usize {
        files.iter().map(|f| f.text.len()).sum()
    }
}

/// Folders below the library that are not its own code.
const SKIPPED_DIRS: &[&str] = &[
    "site-packages",
    "dist-packages",
    "test",
    "tests",
    "__pycache__",
];

/// Every `*.py` path below `dir` (see the module docs for what is skipped), sorted.
fn python_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| {
            Error::InvalidArgument(format!("cannot list the folder {}: {e}", d.display()))
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if kind.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_ref()) {
                    stack.push(path);
                }
            } else if kind.is_file() && name.ends_with(".py") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the file at `relative` is held out, for `held_out_percent` in 0..=100.
pub fn is_held_out(relative: &str, held_out_percent: u64) -> bool {
    twox_hash::XxHash3_64::oneshot(relative.as_bytes()) % 100 < held_out_percent
}

/// The corpus of `dir`, split (see the module docs); at most `max_train` and `max_held_out`
/// files (0: all) in path order, and no file over `max_file_bytes` (0: any size). An error when
/// the folder holds no Python file or either split comes out empty.
pub fn load_corpus(
    dir: &Path,
    held_out_percent: u64,
    max_train: usize,
    max_held_out: usize,
    max_file_bytes: usize,
) -> Result<CodeCorpus> {
    if !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "the code corpus folder {} does not exist; give the Python standard library's folder with --stdlib DIR",
            dir.display()
        )));
    }
    if held_out_percent == 0 || held_out_percent >= 100 {
        return Err(Error::InvalidConfig(format!(
            "held_out_percent must be in 1..=99, got {held_out_percent}"
        )));
    }
    let mut corpus = CodeCorpus::default();
    let limit = |n: usize| if n == 0 { usize::MAX } else { n };
    for path in python_files(dir)? {
        let relative = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let held = is_held_out(&relative, held_out_percent);
        let (split, max) = if held {
            (&mut corpus.held_out, limit(max_held_out))
        } else {
            (&mut corpus.train, limit(max_train))
        };
        if split.len() >= max {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if bytes.is_empty() || (max_file_bytes > 0 && bytes.len() > max_file_bytes) {
            continue;
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        split.push(SourceFile {
            path: relative,
            text,
        });
    }
    if corpus.train.is_empty() || corpus.held_out.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the folder {} gives {} training and {} held-out Python files; the code job needs both: point --stdlib at a Python standard library (a folder of .py files)",
            dir.display(),
            corpus.train.len(),
            corpus.held_out.len()
        )));
    }
    Ok(corpus)
}

/// Writes the split's file list (`train_files.txt`, `held_out_files.txt`) into `dir`, so that
/// a run says which files it saw.
pub fn write_split(corpus: &CodeCorpus, dir: &Path) -> Result<()> {
    for (name, files) in [
        ("train_files.txt", &corpus.train),
        ("held_out_files.txt", &corpus.held_out),
    ] {
        let list: String = files.iter().map(|f| format!("{}\n", f.path)).collect();
        io::write_atomic(&dir.join(name), list.as_bytes())?;
    }
    Ok(())
}
