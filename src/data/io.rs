//! Writing a dataset back out as JSON Lines or CSV, atomically (temporary name, then rename).
use super::Dataset;
use crate::Result;
use crate::io::write_atomic_with as write_atomic;
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
                out.write_record((0..self.num_columns()).map(|c| cell(&self.cell(i, c))))?;
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
