//! The `text` loader, line by line, straight into Arrow string arrays: each file is read in
//! blocks that end at a newline and its lines are appended to one buffer of text and one of
//! offsets, so the peak memory is the text itself plus 4 bytes a line (a `String` per line, as
//! before, cost 24 bytes and an allocation each, and the whole file was held besides).
use super::table::Table;
use crate::{Error, Result};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes read per block.
const BLOCK: usize = 8 << 20;
/// A record batch ends after this much text (Arrow `string` offsets are 32-bit).
const BATCH_TEXT: usize = 1 << 30;
/// The most text one batch can hold: its offsets are `i32`.
const MAX_BATCH_TEXT: usize = i32::MAX as usize;

/// Text and line offsets of the batch being filled.
struct Lines {
    text: Vec<u8>,
    offsets: Vec<i32>,
}

impl Lines {
    fn new(capacity: usize) -> Self {
        let mut text = Vec::new();
        text.reserve_exact(capacity.min(BATCH_TEXT));
        Lines {
            text,
            offsets: vec![0],
        }
    }

    /// Appends a line; `false` (and nothing appended) when it would not fit the batch's
    /// 32-bit offsets, which only a line of 2 GiB or more can cause.
    fn push(&mut self, line: &str) -> bool {
        let Ok(end) = i32::try_from(self.text.len() + line.len()) else {
            return false;
        };
        self.text.extend_from_slice(line.as_bytes());
        self.offsets.push(end);
        true
    }

    fn finish(self) -> ArrayRef {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        // SAFETY: every offset ends a `&str` appended whole (and fits `i32`, see `push`), so
        // the offsets start at 0, increase, are char boundaries of valid UTF-8 and end at the
        // buffer's length.
        Arc::new(unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(self.text), None) })
    }
}

/// Loads text files one row per line (HF's `sample_by="line"`), as one `text` column.
pub(crate) fn load_lines(files: &[PathBuf], keep_linebreaks: bool) -> Result<Table> {
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
    let total: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let mut batches = Vec::new();
    let mut lines = Lines::new(total as usize);
    let mut done = 0usize;
    for path in files {
        read_file(path, keep_linebreaks, |line| {
            if lines.text.len() + line.len() > BATCH_TEXT && lines.offsets.len() > 1 {
                done += lines.text.len();
                let full = std::mem::replace(
                    &mut lines,
                    Lines::new((total as usize).saturating_sub(done)),
                );
                batches.push(full.finish());
            }
            if lines.push(line) {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!(
                    "{}: a line of {} bytes; a text row holds at most {MAX_BATCH_TEXT} bytes (2 GiB): split the file into lines, or load it with sample_by document (one row per file)",
                    path.display(),
                    line.len()
                )))
            }
        })?;
    }
    batches.push(lines.finish());
    let batches = batches
        .into_iter()
        .map(|a| RecordBatch::try_new(schema.clone(), vec![a]))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| super::table::arrow_error("building the text column", e))?;
    Ok(Table::new(schema, batches))
}

/// Calls `each` on every line of one file: blocks cut after their last `\n`, checked as UTF-8
/// (errors give the byte offset in the file), newlines made universal, then split as Python's
/// `str.splitlines` does.
fn read_file(
    path: &Path,
    keep_linebreaks: bool,
    mut each: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let mut pending: Vec<u8> = Vec::with_capacity(BLOCK);
    let mut file_offset = 0usize; // offset of pending[0] in the file
    let mut first = true;
    let mut eof = false;
    let mut lines = Vec::new();
    while !eof {
        let have = pending.len();
        pending.resize(have + BLOCK, 0);
        let n = file.read(&mut pending[have..]).map_err(io_error)?;
        pending.truncate(have + n);
        eof = n == 0;
        let cut = if eof {
            pending.len()
        } else {
            match pending.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let mut start = 0;
        if first && pending.starts_with(&[0xEF, 0xBB, 0xBF]) {
            start = 3;
        }
        first = false;
        let block = std::str::from_utf8(&pending[start..cut]).map_err(|e| Error::InvalidUtf8 {
            path: path.to_path_buf(),
            offset: file_offset + start + e.valid_up_to(),
        })?;
        let block: std::borrow::Cow<str> = if block.contains('\r') {
            block.replace("\r\n", "\n").replace('\r', "\n").into()
        } else {
            block.into()
        };
        lines.clear();
        splitlines_into(&block, keep_linebreaks, &mut lines);
        for &(s, e) in &lines {
            each(&block[s..e])?;
        }
        pending.drain(..cut);
        file_offset += cut;
    }
    Ok(())
}

/// Reads a text file as one line per element, as line-aligned files (sacrebleu's hypotheses and
/// references, Multi30k's sentence pairs) are read: `\n` or `\r\n` endings, a final newline
/// starts no other line, an empty file has no lines, and the other Unicode line boundaries of
/// the `text` loader's `splitlines` stay inside their line (so line `k` of two files pairs up as
/// those tools pair it). Errors name the file, and the byte offset of invalid UTF-8.
pub fn read_lines(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let text = crate::io::read_utf8(path.as_ref())?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let body = text.strip_suffix('\n').unwrap_or(&text);
    Ok(body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

/// Python's `str.splitlines`, which HF's text builder uses: `\n` and the other Unicode line
/// boundaries (`\x0b`, `\x0c`, `\x1c`-`\x1e`, `\u{85}`, `\u{2028}`, `\u{2029}`) end a line.
/// Pushes each line's byte range (with its end when `keep_ends`).
pub(crate) fn splitlines_into(text: &str, keep_ends: bool, out: &mut Vec<(usize, usize)>) {
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(
            c,
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}'
        ) {
            let end = i + c.len_utf8();
            out.push((start, if keep_ends { end } else { i }));
            start = end;
        }
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    /// What `finish` builds without checking passes Arrow's full validation (the `SAFETY`
    /// claim), for lines with multi-byte characters and empty lines.
    #[test]
    fn finished_lines_are_a_valid_string_array() {
        let mut lines = Lines::new(64);
        for l in ["", "héllo", "🙂🙂", "", "last"] {
            assert!(lines.push(l));
        }
        let array = lines.finish();
        array.to_data().validate_full().unwrap();
        let strings = array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(strings.value(2), "🙂🙂");
        assert_eq!(strings.len(), 5);
    }

    #[test]
    fn splitlines_cuts_at_every_unicode_line_boundary() {
        let mut out = Vec::new();
        let text = "a\nb\u{2028}c\u{85}d";
        splitlines_into(text, false, &mut out);
        let lines: Vec<&str> = out.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(lines, ["a", "b", "c", "d"]);
    }
}
