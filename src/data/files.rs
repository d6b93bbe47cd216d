//! `data_files`: one path, a list, a glob, or a map from split name to files.
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files to load, by split. Built from a path, a list of paths, or a map split → paths;
/// paths containing `*`, `?` or `[` are globs. A bare list is the `train` split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataFiles {
    pub splits: BTreeMap<String, Vec<PathBuf>>,
}

impl DataFiles {
    /// Files for the `train` split.
    pub fn train<P: AsRef<Path>>(files: impl IntoIterator<Item = P>) -> Self {
        Self::default().split("train", files)
    }

    /// Adds (or replaces) the files of one named split.
    pub fn split<P: AsRef<Path>>(mut self, name: &str, files: impl IntoIterator<Item = P>) -> Self {
        let files = files
            .into_iter()
            .map(|p| p.as_ref().to_path_buf())
            .collect();
        self.splits.insert(name.to_string(), files);
        self
    }

    /// Expands globs and checks that every file exists, so a typo fails before any work is done.
    pub fn resolve(&self) -> Result<BTreeMap<String, Vec<PathBuf>>> {
        let mut out = BTreeMap::new();
        for (split, patterns) in &self.splits {
            if patterns.is_empty() {
                return Err(Error::NoDataFiles {
                    split: split.clone(),
                });
            }
            let mut files = Vec::new();
            for pattern in patterns {
                files.extend(expand(pattern)?);
            }
            out.insert(split.clone(), files);
        }
        Ok(out)
    }
}

fn expand(pattern: &Path) -> Result<Vec<PathBuf>> {
    let text = pattern.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        if !pattern.exists() {
            return Err(Error::Io {
                path: pattern.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
            });
        }
        return Ok(vec![pattern.to_path_buf()]);
    }
    let bad_glob = |message: String| Error::Glob {
        pattern: text.to_string(),
        message,
    };
    let mut files: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| bad_glob(e.to_string()))?
        .filter_map(|entry| entry.ok())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad_glob("it matches no file".into()));
    }
    Ok(files)
}

impl From<&str> for DataFiles {
    fn from(p: &str) -> Self {
        DataFiles::train([p])
    }
}

impl From<String> for DataFiles {
    fn from(p: String) -> Self {
        DataFiles::train([p])
    }
}

impl From<&String> for DataFiles {
    fn from(p: &String) -> Self {
        DataFiles::train([p])
    }
}

impl From<&&str> for DataFiles {
    fn from(p: &&str) -> Self {
        DataFiles::train([p])
    }
}

impl From<std::borrow::Cow<'_, str>> for DataFiles {
    fn from(p: std::borrow::Cow<'_, str>) -> Self {
        DataFiles::train([p.as_ref()])
    }
}

impl From<&std::ffi::OsStr> for DataFiles {
    fn from(p: &std::ffi::OsStr) -> Self {
        DataFiles::train([p])
    }
}

impl From<std::ffi::OsString> for DataFiles {
    fn from(p: std::ffi::OsString) -> Self {
        DataFiles::train([p])
    }
}

impl From<&DataFiles> for DataFiles {
    fn from(d: &DataFiles) -> Self {
        d.clone()
    }
}

impl From<&Path> for DataFiles {
    fn from(p: &Path) -> Self {
        DataFiles::train([p])
    }
}

impl From<PathBuf> for DataFiles {
    fn from(p: PathBuf) -> Self {
        DataFiles::train([p])
    }
}

impl From<&PathBuf> for DataFiles {
    fn from(p: &PathBuf) -> Self {
        DataFiles::train([p])
    }
}

impl<P: AsRef<Path>, const N: usize> From<&[P; N]> for DataFiles {
    fn from(p: &[P; N]) -> Self {
        DataFiles::train(p)
    }
}

impl<P: AsRef<Path>, const N: usize> From<[P; N]> for DataFiles {
    fn from(p: [P; N]) -> Self {
        DataFiles::train(p)
    }
}

impl<P: AsRef<Path>> From<&[P]> for DataFiles {
    fn from(p: &[P]) -> Self {
        DataFiles::train(p)
    }
}

impl<P: AsRef<Path>> From<&Vec<P>> for DataFiles {
    fn from(p: &Vec<P>) -> Self {
        DataFiles::train(p)
    }
}

impl<P: AsRef<Path>> From<Vec<P>> for DataFiles {
    fn from(p: Vec<P>) -> Self {
        DataFiles::train(p)
    }
}

impl<S: AsRef<str>, P: AsRef<Path>> From<BTreeMap<S, Vec<P>>> for DataFiles {
    fn from(map: BTreeMap<S, Vec<P>>) -> Self {
        map.iter().fold(DataFiles::default(), |df, (s, files)| {
            df.split(s.as_ref(), files)
        })
    }
}
