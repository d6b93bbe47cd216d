//! Writing a dataset back out as JSON Lines or CSV, atomically (temporary name, then rename).
use super::Dataset;
use crate::{Error, Result};
use serde_json::Value;
use std::io::Write;
use std::path::Path;

impl Dataset {
    /// Writes one JSON object per line (HF's `to_json(lines=True)`).
    pub fn to_json(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), |w| {
            for row in self.iter() {
                serde_json::to_writer(&mut *w, &row).map_err(std::io::Error::other)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })
    }

    /// Writes a CSV file with a header row; nested values are written as JSON text.
    pub fn to_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), |w| {
            let mut out = csv::Writer::from_writer(w);
            out.write_record(self.column_names())?;
            for i in 0..self.num_rows() {
                out.write_record(self.columns().iter().map(|c| cell(&c.values[i])))?;
            }
            out.flush()?;
            Ok(())
        })
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes through `fill` into `path.tmp`, then renames it over `path`, so a crash or an error
/// never leaves a half-written file under the final name.
pub(crate) fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let result = (|| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        fill(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}
