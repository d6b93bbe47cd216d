//! Reading Arrow IPC files (the stream format that `datasets` and `save_to_disk` write, or the
//! file format) memory-mapped, and checked so that no file content can make a later read go out
//! of bounds or hand out invalid UTF-8: a damaged or hostile file is an error naming it.
//!
//! The stream is decoded message by message over the mapping. Each record batch's arrays are
//! slices of the mapped file (no copy) and are validated in full by Arrow before use
//! (`ArrayData::validate_full`: buffer lengths, offsets increasing and in bounds, text valid
//! UTF-8 cut at char boundaries); when the caller asks, the bytes are also hashed (xxh3-64) so a
//! checksum recorded by our writer can catch changes validation cannot see (a letter turned
//! into another). Once a message is checked its pages are released from the process
//! (`MADV_DONTNEED`): validating a gigabyte keeps about one batch (~16 MB) resident instead of
//! the whole file, and the pages come back from the page cache when a row is read.
//!
//! Arrow's decoder asserts on some malformed inputs (a buffer that points past the message);
//! those descriptors are checked here first, and a panic that still escapes the decoder is
//! turned into the same error.
use super::Dataset;
use crate::{Error, Result};
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use std::hash::Hasher;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use twox_hash::XxHash3_64 as Xxh3;

/// The start of the `_fingerprint` our writer records: the checksum of the shards' bytes.
pub(crate) const CHECKSUM_PREFIX: &str = "xxh3-";

/// The hasher of [`CHECKSUM_PREFIX`] checksums.
pub(crate) fn checksum_hasher() -> Xxh3 {
    Xxh3::with_seed(0)
}

/// Opens Arrow IPC files as one dataset; the files must share their columns. With `hash`, every
/// byte of the files, in order, is fed to it.
pub(crate) fn read_arrow_files(paths: &[PathBuf], mut hash: Option<&mut Xxh3>) -> Result<Dataset> {
    let mut schema: Option<SchemaRef> = None;
    let mut batches = Vec::new();
    for path in paths {
        let (s, b) = read_arrow(path, hash.as_deref_mut())?;
        match &schema {
            None => schema = Some(s),
            Some(first) if first.fields() != s.fields() => {
                return Err(Error::InvalidArgument(format!(
                    "{} has columns {} but the first file has {}; all files of a dataset need the same columns and types",
                    path.display(),
                    describe(&s),
                    describe(first)
                )));
            }
            Some(_) => {}
        }
        batches.extend(b);
    }
    let schema = schema.unwrap_or_else(|| Arc::new(Schema::empty()));
    Dataset::from_record_batches(schema, batches).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", paths[0].display())),
        other => other,
    })
}

/// `name: type, ...` of a schema, for messages.
fn describe(schema: &Schema) -> String {
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("[{}]", cols.join(", "))
}

/// Memory-maps one Arrow IPC file and decodes its batches in place, validated.
fn read_arrow(path: &Path, hash: Option<&mut Xxh3>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    if file.metadata().map_err(io_error)?.is_dir() {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a folder, not an Arrow file; give the .arrow files inside it, or open a save_to_disk folder with load_from_disk",
        )));
    }
    // SAFETY: the map is read-only and shared; as with `datasets`' memory-mapped tables, a file
    // changed in place while it is open is not supported (our writers replace files by rename,
    // never in place), and every byte read from it is validated below before use.
    let mmap = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(io_error)?);
    let bad = |e: ArrowError| {
        Error::InvalidArgument(format!(
            "{}: not a readable Arrow IPC file ({e}); expected a file written by save_to_disk or pyarrow",
            path.display()
        ))
    };
    if mmap.is_empty() {
        return Err(bad(ArrowError::IpcError("the file is empty".into())));
    }
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&mmap, hash)))
        .unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("malformed data");
            Err(ArrowError::IpcError(format!("the decoder failed: {why}")))
        });
    decoded.map_err(bad)
}

/// Decodes a mapped file: the stream format message by message, validated and released page
/// by page; the file format and streams with dictionaries (neither of which our writer
/// produces) through Arrow's own readers, which validate too.
fn decode(
    mmap: &Arc<memmap2::Mmap>,
    mut hash: Option<&mut Xxh3>,
) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let mut checked = |range: Range<usize>| {
        if let Some(h) = hash.as_deref_mut() {
            h.write(&mmap[range.clone()]);
        }
        release(mmap, range);
    };
    if mmap.starts_with(b"ARROW1") {
        let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(&mmap[..]), None)?;
        let schema = reader.schema();
        check_types(&schema)?;
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        checked(0..mmap.len());
        return Ok((schema, batches));
    }
    let len = mmap.len();
    let Some(ptr) = NonNull::new(mmap.as_ptr().cast_mut()) else {
        return Err(ArrowError::IpcError("the file could not be mapped".into()));
    };
    // SAFETY: `ptr..ptr + len` is the whole read-only mapping, which the buffer keeps alive
    // through its owner (a clone of the `Arc`); nothing writes through it.
    let buffer = unsafe { Buffer::from_custom_allocation(ptr, len, mmap.clone()) };
    match decode_stream(&buffer, &mut checked)? {
        Stream::Decoded(schema, batches) => Ok((schema, batches)),
        Stream::Dictionaries { checked: done } => {
            let mut decoder = arrow_ipc::reader::StreamDecoder::new();
            let mut rest = buffer;
            let mut batches = Vec::new();
            while !rest.is_empty() {
                if let Some(b) = decoder.decode(&mut rest)? {
                    batches.push(b);
                }
            }
            decoder.finish()?;
            let schema = decoder
                .schema()
                .ok_or_else(|| ArrowError::IpcError("no schema".into()))?;
            checked(done..len);
            Ok((schema, batches))
        }
    }
}

/// Drops the pages of `range` from this process's resident set; they are read again from the
/// page cache (or the file) on the next access.
fn release(mmap: &memmap2::Mmap, range: Range<usize>) {
    #[cfg(all(unix, not(miri)))]
    if !range.is_empty() {
        // SAFETY: `MADV_DONTNEED` on a read-only *shared* file mapping (what `Mmap::map`
        // makes) only unmaps the pages: the next access faults them in again from the file,
        // with the same bytes (the file is not changed while mapped, see `read_arrow`). No
        // byte that a live `&[u8]` or Arrow buffer points at changes, so none is invalidated.
        // The range lies inside the mapping (memmap2 widens it to whole pages).
        let _ = unsafe {
            mmap.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                range.len(),
            )
        };
    }
    #[cfg(not(all(unix, not(miri))))]
    let _ = (mmap, range);
}

/// What [`decode_stream`] found.
enum Stream {
    /// The schema and the validated batches.
    Decoded(SchemaRef, Vec<RecordBatch>),
    /// The stream holds dictionaries; bytes up to `checked` were passed to `checked`.
    Dictionaries { checked: usize },
}

/// Decodes an IPC stream message by message, each batch validated; `checked` is called with
/// each byte range once what it holds has been validated, in order, covering the whole buffer.
/// A stream with dictionaries is left to Arrow's stream decoder.
fn decode_stream(
    buffer: &Buffer,
    checked: &mut impl FnMut(Range<usize>),
) -> std::result::Result<Stream, ArrowError> {
    let err = |m: &str| ArrowError::IpcError(m.to_string());
    let dictionaries = std::collections::HashMap::new();
    let mut schema: Option<SchemaRef> = None;
    let mut batches = Vec::new();
    let mut at = 0usize;
    let mut done = 0usize;
    let word = |at: usize| -> std::result::Result<u32, ArrowError> {
        let b = buffer
            .get(at..at.saturating_add(4))
            .ok_or_else(|| err("truncated stream"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    while at + 4 <= buffer.len() {
        let mut len = word(at)?;
        at += 4;
        if len == 0xFFFF_FFFF {
            len = word(at)?;
            at += 4;
        }
        if len == 0 {
            break;
        }
        let meta_end = at
            .checked_add(len as usize)
            .filter(|&end| end <= buffer.len())
            .ok_or_else(|| err("truncated message"))?;
        let message = arrow_ipc::root_as_message(&buffer[at..meta_end])
            .map_err(|e| ArrowError::ParseError(format!("bad message: {e}")))?;
        at = meta_end;
        let body_len = usize::try_from(message.bodyLength())
            .map_err(|_| err("negative message body length"))?;
        let body_end = at
            .checked_add(body_len)
            .filter(|&end| end <= buffer.len())
            .ok_or_else(|| err("truncated body"))?;
        // The format pads metadata so that bodies and their buffers start 8-byte aligned;
        // Arrow's typed views of a buffer assert on anything else.
        if !(buffer.as_ptr() as usize + at).is_multiple_of(8) {
            return Err(err("a message body is not 8-byte aligned"));
        }
        let body = buffer.slice_with_length(at, body_len);
        at = body_end;
        match message.header_type() {
            arrow_ipc::MessageHeader::Schema => {
                let s = message
                    .header_as_schema()
                    .ok_or_else(|| err("bad schema message"))?;
                let s = Arc::new(arrow_ipc::convert::try_fb_to_schema(s)?);
                check_types(&s)?;
                schema = Some(s);
            }
            arrow_ipc::MessageHeader::RecordBatch => {
                let b = message
                    .header_as_record_batch()
                    .ok_or_else(|| err("bad record batch message"))?;
                let s = schema
                    .clone()
                    .ok_or_else(|| err("record batch before schema"))?;
                let mut widths = Vec::new();
                for f in s.fields() {
                    buffer_widths(f.data_type(), &mut widths);
                }
                for (k, desc) in b.buffers().into_iter().flatten().enumerate() {
                    // Arrow views a fixed-width buffer as a whole slice of its type and
                    // asserts that none is left over.
                    let whole = match widths.get(k) {
                        Some(&Some(w)) => usize::try_from(desc.length()).is_ok_and(|l| l % w == 0),
                        _ => true,
                    };
                    if !whole {
                        return Err(err("a buffer's length is not a whole number of values"));
                    }
                    let in_body = usize::try_from(desc.offset())
                        .ok()
                        .filter(|o| o % 8 == 0)
                        .zip(usize::try_from(desc.length()).ok())
                        .and_then(|(o, l)| o.checked_add(l))
                        .is_some_and(|end| end <= body_len);
                    if !in_body {
                        return Err(err(
                            "a buffer lies outside its message or is not 8-byte aligned",
                        ));
                    }
                }
                let version = message.version();
                let batch = arrow_ipc::reader::RecordBatchDecoder::try_new(
                    &body,
                    b,
                    s,
                    &dictionaries,
                    &version,
                )?
                .read_record_batch()?;
                batches.push(batch);
            }
            arrow_ipc::MessageHeader::DictionaryBatch => {
                return Ok(Stream::Dictionaries { checked: done });
            }
            _ => return Err(err("unexpected message type in an IPC stream")),
        }
        checked(done..at);
        done = at;
    }
    checked(done..buffer.len());
    let schema = schema.ok_or_else(|| err("no schema"))?;
    Ok(Stream::Decoded(schema, batches))
}

/// The element width of each buffer of a column of type `t`, in IPC order (validity bitmap,
/// then offsets or values, then the children's), `None` where any length will do. The types
/// are those [`check_types`] lets through (dictionaries go to Arrow's stream decoder).
fn buffer_widths(t: &DataType, out: &mut Vec<Option<usize>>) {
    use DataType::*;
    if matches!(t, Null) {
        return;
    }
    out.push(None); // validity
    match t {
        Utf8 | Binary => out.extend([Some(4), None]),
        LargeUtf8 | LargeBinary => out.extend([Some(8), None]),
        List(f) => {
            out.push(Some(4));
            buffer_widths(f.data_type(), out);
        }
        LargeList(f) => {
            out.push(Some(8));
            buffer_widths(f.data_type(), out);
        }
        FixedSizeList(f, _) => buffer_widths(f.data_type(), out),
        Struct(fields) => fields
            .iter()
            .for_each(|f| buffer_widths(f.data_type(), out)),
        Boolean | FixedSizeBinary(_) => out.push(None),
        t => out.push(t.primitive_width()),
    }
}

/// Only the column types `datasets` and this crate write are read: Arrow's decoder has
/// unfinished corners (it asserts on some types it does not decode).
fn check_types(schema: &Schema) -> std::result::Result<(), ArrowError> {
    fn ok(t: &DataType) -> bool {
        use DataType::*;
        match t {
            List(f) | LargeList(f) | FixedSizeList(f, _) => ok(f.data_type()),
            Struct(fields) => fields.iter().all(|f| ok(f.data_type())),
            Null | Boolean | Utf8 | LargeUtf8 | Binary | LargeBinary | FixedSizeBinary(_) => true,
            Dictionary(k, v) => ok(k) && ok(v),
            t => t.is_primitive(),
        }
    }
    match schema.fields().iter().find(|f| !ok(f.data_type())) {
        None => Ok(()),
        Some(f) => Err(ArrowError::SchemaError(format!(
            "column `{}` has type {}, which massivetext does not read",
            f.name(),
            f.data_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::Field;

    /// A stream of two small batches (text with multi-byte characters, integers with a null).
    fn stream() -> (SchemaRef, Vec<RecordBatch>, Vec<u8>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("text", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = |t: &[&str], n: &[Option<i64>]| {
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(t.to_vec())),
                Arc::new(Int64Array::from(n.to_vec())),
            ];
            RecordBatch::try_new(schema.clone(), cols).unwrap()
        };
        let batches = vec![
            batch(&["alpha", "béta", "🙂"], &[Some(1), None, Some(3)]),
            batch(&["", "last"], &[Some(-4), Some(5)]),
        ];
        let mut bytes = Vec::new();
        super::super::disk::write_stream(&mut bytes, &schema, &batches).unwrap();
        (schema, batches, bytes)
    }

    /// Decodes from a 64-byte aligned copy, as a mapping is page aligned (a `Vec<u8>` need
    /// not be 8-byte aligned, and under Miri it is not).
    fn decode_bytes(bytes: &[u8]) -> std::result::Result<Stream, ArrowError> {
        let mut covered = 0;
        let out = decode_stream(&Buffer::from_slice_ref(bytes), &mut |r: Range<usize>| {
            assert_eq!(r.start, covered, "ranges are passed in order, without gaps");
            covered = r.end;
        });
        if let Ok(Stream::Decoded(..)) = out {
            assert_eq!(covered, bytes.len(), "every byte was passed to `checked`");
        }
        out
    }

    #[test]
    fn a_stream_decodes_to_the_batches_written() {
        let (schema, batches, bytes) = stream();
        match decode_bytes(&bytes).unwrap() {
            Stream::Decoded(s, b) => {
                assert_eq!(s.fields(), schema.fields());
                // the writer may join small batches: the rows are what must survive
                let rows =
                    |b: &[RecordBatch]| arrow_select::concat::concat_batches(&schema, b).unwrap();
                assert_eq!(rows(&b), rows(&batches));
            }
            Stream::Dictionaries { .. } => panic!("no dictionaries were written"),
        }
    }

    #[test]
    fn bad_offsets_and_bad_utf8_are_errors() {
        let (_, _, bytes) = stream();
        // the first batch's text offsets 0, 5, 10, 14 (little-endian i32)
        let offsets: Vec<u8> = [0i32, 5, 10, 14]
            .iter()
            .flat_map(|o| o.to_le_bytes())
            .collect();
        let at = bytes.windows(16).position(|w| w == offsets).unwrap();
        let mut bad = bytes.clone();
        bad[at + 12..at + 16].copy_from_slice(&1_000_000i32.to_le_bytes());
        assert!(decode_bytes(&bad).is_err());
        let mut bad = bytes.clone();
        let at = bytes
            .windows(5)
            .position(|w| w == "béta".as_bytes())
            .unwrap();
        bad[at + 1] = 0xFF;
        let e = decode_bytes(&bad).err().unwrap().to_string();
        assert!(e.contains("UTF"), "{e}");
        assert!(decode_bytes(&bytes[..bytes.len() / 2]).is_err());
    }

    /// Every single-byte change of a small stream: decoded or refused, never a panic (and,
    /// under Miri, never undefined behaviour).
    #[test]
    fn any_changed_byte_is_decoded_or_refused() {
        let (_, _, bytes) = stream();
        let step = if cfg!(miri) { 37 } else { 1 };
        for at in (0..bytes.len()).step_by(step) {
            for mask in [0x01u8, 0x80, 0xFF] {
                let mut bad = bytes.clone();
                bad[at] ^= mask;
                let decoded = std::panic::catch_unwind(|| decode_bytes(&bad).map(|_| ()));
                assert!(
                    decoded.is_ok(),
                    "byte {at} ^ {mask:#x}: the decoder panicked"
                );
            }
        }
    }

    #[test]
    fn only_the_types_we_read_pass() {
        let ok = Schema::new(vec![Field::new("t", DataType::LargeUtf8, true)]);
        assert!(check_types(&ok).is_ok());
        let view = Schema::new(vec![Field::new("v", DataType::Utf8View, true)]);
        let e = check_types(&view).unwrap_err().to_string();
        assert!(e.contains("`v`"), "{e}");
    }
}
