//! A quote that a CSV file never closes is an error, as pandas makes it ("EOF inside string
//! starting at row N"): the csv reader would take the rest of the file as one field, and hold
//! all of it in memory. [`QuoteScanner`] finds it in one pass over the bytes with constant
//! memory, for the whole-file loader and the stream alike (one message for both);
//! [`QuoteCheckedReader`] runs it under the stream's csv reader and, once a quoted field grows
//! past [`LOOKAHEAD`], reads ahead in the file (without keeping what it reads) to tell a long
//! field from a quote that never closes, so a stream stops early instead of reading to the end.
use crate::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A quoted field longer than this makes the stream look ahead for its closing quote.
pub(crate) const LOOKAHEAD: u64 = 1 << 20;

#[derive(Clone, Copy, PartialEq, Debug)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// RFC 4180 quoting, byte by byte. Rows count from 0 with the header as row 0 and blank lines
/// not counted, as pandas counts them; lines from 1, columns in characters from 1.
#[derive(Clone, Debug)]
pub(crate) struct QuoteScanner {
    delimiter: u8,
    state: State,
    /// Bytes fed so far.
    pos: u64,
    row: usize,
    line: u64,
    column: u64,
    /// Row, line, column and byte offset of the quote that opened the current quoted field.
    opened: (usize, u64, u64, u64),
    row_has_text: bool,
    /// No byte but a byte-order mark's has been fed yet.
    bom: bool,
}

impl QuoteScanner {
    pub(crate) fn new(delimiter: u8) -> Self {
        QuoteScanner {
            delimiter,
            state: State::FieldStart,
            pos: 0,
            row: 0,
            line: 1,
            column: 0,
            opened: (0, 0, 0, 0),
            row_has_text: false,
            bom: true,
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            // A UTF-8 byte-order mark is not text (the csv reader drops it too).
            if self.pos < 3 && self.bom && b == [0xEF, 0xBB, 0xBF][self.pos as usize] {
                self.pos += 1;
                continue;
            }
            self.bom = false;
            self.pos += 1;
            // Continuation bytes belong to the character before.
            if b & 0xC0 != 0x80 {
                self.column += 1;
            }
            let delim = b == self.delimiter;
            self.state = match self.state {
                State::FieldStart | State::Unquoted if b == b'\n' => State::FieldStart,
                State::FieldStart if b == b'"' => {
                    self.opened = (self.row, self.line, self.column, self.pos - 1);
                    State::Quoted
                }
                State::FieldStart | State::Unquoted if delim => State::FieldStart,
                State::FieldStart | State::Unquoted => State::Unquoted,
                State::Quoted if b == b'"' => State::QuoteInQuoted,
                State::Quoted => State::Quoted,
                State::QuoteInQuoted if b == b'"' => State::Quoted,
                State::QuoteInQuoted if delim || b == b'\n' => State::FieldStart,
                State::QuoteInQuoted => State::Unquoted,
            };
            if b == b'\n' {
                if self.state == State::FieldStart {
                    // a record ended (blank lines are not rows, as pandas skips them)
                    if self.row_has_text {
                        self.row += 1;
                    }
                    self.row_has_text = false;
                }
                self.line += 1;
                self.column = 0;
            } else if b != b'\r' {
                self.row_has_text = true;
            }
        }
    }

    /// Inside a quoted field (not just after a quote that may close it).
    fn in_quotes(&self) -> bool {
        self.state == State::Quoted
    }

    /// In a quoted field, or just after a quote that may close it or be doubled.
    fn field_open(&self) -> bool {
        matches!(self.state, State::Quoted | State::QuoteInQuoted)
    }

    /// Bytes since the current quoted field opened.
    fn quoted_bytes(&self) -> u64 {
        self.pos - self.opened.3
    }

    /// The error for a quote still open at the end of the file, if it is.
    pub(crate) fn finish(&self, path: &Path) -> Result<()> {
        if !self.in_quotes() {
            return Ok(());
        }
        let (row, line, column, _) = self.opened;
        Err(Error::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: format!(
                "EOF inside string starting at row {row}: the quote opened here is never closed; close it, or write a quote inside a quoted field as \"\""
            ),
        })
    }
}

/// The first error a [`QuoteCheckedReader`] found, for the csv reader's owner to report (the
/// csv reader itself only sees an I/O error).
pub(crate) type Found = Arc<Mutex<Option<Error>>>;

/// Passes a CSV file through, failing (and recording the error in [`Found`]) at the first
/// quote the file never closes; memory stays bounded by [`LOOKAHEAD`].
pub(crate) struct QuoteCheckedReader<R> {
    inner: R,
    path: PathBuf,
    scanner: QuoteScanner,
    /// The current quoted field is known to close before this byte offset.
    closes_before: u64,
    found: Found,
}

impl<R: Read> QuoteCheckedReader<R> {
    pub(crate) fn new(inner: R, path: PathBuf, delimiter: u8) -> (Self, Found) {
        let found = Found::default();
        let reader = QuoteCheckedReader {
            inner,
            path,
            scanner: QuoteScanner::new(delimiter),
            closes_before: 0,
            found: found.clone(),
        };
        (reader, found)
    }

    fn fail(&self, e: Error) -> std::io::Error {
        let message = e.to_string();
        if let Ok(mut slot) = self.found.lock() {
            slot.get_or_insert(e);
        }
        std::io::Error::new(std::io::ErrorKind::InvalidData, message)
    }

    /// Reads on from the current offset with a copy of the scanner until the quoted field
    /// ends (the offset where it did) or the file ends inside it (the error).
    fn look_ahead(&self) -> Result<u64> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(self.scanner.pos)).map_err(io)?;
        let mut scanner = self.scanner.clone();
        let mut block = vec![0u8; 1 << 16];
        loop {
            let n = match file.read(&mut block) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            if n == 0 {
                scanner.finish(&self.path)?;
                return Ok(scanner.pos);
            }
            for chunk in block[..n].chunks(256) {
                scanner.feed(chunk);
                if !scanner.field_open() {
                    return Ok(scanner.pos);
                }
            }
        }
    }
}

impl<R: Read> Read for QuoteCheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Err(e) = self.scanner.finish(&self.path) {
                return Err(self.fail(e));
            }
            return Ok(0);
        }
        self.scanner.feed(&buf[..n]);
        if self.scanner.in_quotes()
            && self.scanner.quoted_bytes() > LOOKAHEAD
            && self.scanner.pos >= self.closes_before
        {
            match self.look_ahead() {
                Ok(at) => self.closes_before = at,
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> Result<()> {
        let mut s = QuoteScanner::new(b',');
        s.feed(text.as_bytes());
        s.finish(Path::new("t.csv"))
    }

    #[test]
    fn closed_quotes_pass_and_an_open_one_names_its_row_line_and_column() {
        assert!(scan("a,b\n\"x,\"\"y\"\"\",2\n\"multi\nline\",3\n").is_ok());
        let e = scan("a,b\n1,2\n\n3,\"open\n4,5\n").unwrap_err().to_string();
        assert!(e.contains("t.csv:4:3:"), "{e}");
        assert!(e.contains("starting at row 2"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_not_text_and_columns_count_characters() {
        let e = scan("\u{feff}\"a\nb").unwrap_err().to_string();
        assert!(e.contains("t.csv:1:1:"), "{e}");
        let e = scan("é,\"a").unwrap_err().to_string();
        assert!(e.contains("t.csv:1:3:"), "{e}");
    }

    #[test]
    fn feeding_in_pieces_gives_the_same_answer() {
        let text = "h1,h2\n\"a\"\"b\",c\n1,\"never closed\n more\n";
        for cut in 0..text.len() {
            let mut s = QuoteScanner::new(b',');
            s.feed(&text.as_bytes()[..cut]);
            s.feed(&text.as_bytes()[cut..]);
            let e = s.finish(Path::new("t.csv")).unwrap_err().to_string();
            assert!(
                e.contains("t.csv:3:3:") && e.contains("row 2"),
                "{cut}: {e}"
            );
        }
    }
}
