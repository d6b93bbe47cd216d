//! `mpirun -n N massivetext tokenize`: the input split across the ranks by byte ranges, and
//! the very folder one process writes (the same ids in the same shard files, the same
//! manifest, byte for byte).
//!
//! The files are read as one stream of bytes cut into N equal ranges; a document (a line)
//! belongs to the rank whose range holds its first byte, so every line is read by exactly one
//! rank and the ranks' documents, in rank order, are the documents of one process in its order.
//! Each rank tokenizes its lines into a part file of its own (`.rank-R.ids` in the build's
//! temporary folder); the ranks then all-gather their token counts, which places each rank's
//! ids in the global stream, and each rank writes its ids into the shard files at those
//! positions (`pwrite`: the ranks write disjoint byte ranges, a shard shared by two ranks
//! included). Rank 0 writes the manifest last, after every rank said its part is written, and
//! renames the folder into place: a rank that dies (MPI ends the others) leaves only the
//! temporary `.NAME.partial-PID` folder, no manifest, which the next build removes.
//!
//! Every step that can fail on one rank ends in [`agree`]: the ranks exchange whether they
//! succeeded, and all of them stop together with the failing rank's message, rather than some
//! waiting for the others in a collective.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::dist::Communicator;
use crate::io::write_error;
use crate::tokenizer::shards::{
    BatchEncoder, FORMAT, ShardEntry, begin_build, finish_build, lock, reusable_build,
    source_entries,
};
use crate::tokenizer::{Dtype, ShardBuildOptions, ShardManifest, Tokenizer};
use crate::{Error, Result};

/// What a distributed build did (rank 0's view): the manifest, the bytes of text over all
/// ranks, the seconds it took, whether an existing build was kept.
pub struct RanksReport {
    pub manifest: ShardManifest,
    pub bytes: u64,
    pub seconds: f64,
    pub reused: bool,
}

/// `result` on every rank when every rank succeeded; otherwise an error on every rank: the
/// rank's own where it failed, elsewhere one naming the ranks that failed with their messages.
/// The messages travel to every rank because a launcher that aborts the job when the first
/// process exits may drop the output a failing rank has not yet had forwarded.
pub fn agree<T>(comm: &dyn Communicator, what: &str, result: Result<T>) -> Result<T> {
    let failed: Vec<usize> = (comm.all_gather_u64(u64::from(result.is_err()))?)
        .iter()
        .enumerate()
        .filter_map(|(r, &f)| (f != 0).then_some(r))
        .collect();
    let mut messages = Vec::with_capacity(failed.len());
    for &r in &failed {
        let mut buf = match (&result, r == comm.rank()) {
            (Err(e), true) => e.to_string().into_bytes(),
            _ => Vec::new(),
        };
        comm.broadcast_bytes(&mut buf, r)?;
        messages.push(format!("rank {r}: {}", String::from_utf8_lossy(&buf)));
    }
    if failed.is_empty() || result.is_err() {
        return result;
    }
    let ranks: Vec<String> = failed.iter().map(usize::to_string).collect();
    Err(Error::InvalidArgument(format!(
        "{what}: rank(s) {} of {} failed; nothing was written\n{}",
        ranks.join(", "),
        comm.world_size(),
        messages.join("\n")
    )))
}

/// The byte range `[start, end)` of the concatenated input that rank `rank` of `world` reads
/// lines from (the lines whose first byte lies in it).
pub fn byte_range(total: u64, rank: usize, world: usize) -> (u64, u64) {
    let at = |r: usize| ((total as u128 * r as u128) / world as u128) as u64;
    (at(rank), at(rank + 1))
}

/// Tokenizes `files` into `out` as one process would, this rank doing its share.
pub fn build_on_ranks(
    comm: &dyn Communicator,
    tok: &Tokenizer,
    files: &[PathBuf],
    out: &Path,
    opts: &ShardBuildOptions,
) -> Result<RanksReport> {
    let started = Instant::now();
    let rank = comm.rank();
    let encoder = agree(comm, "tokenize", BatchEncoder::new(tok))?;
    let sources = agree(comm, "tokenize", source_entries(files))?;
    // Rank 0 takes the lock, checks the folder and makes the temporary one; the others learn
    // its path (or that an existing build is kept, or rank 0's error).
    let mut held = None;
    let prepared = if rank == 0 {
        (|| {
            held = Some(lock(out)?);
            if let Some(m) = reusable_build(tok, out, &sources, opts)? {
                return Ok(Err(m));
            }
            Ok(Ok(begin_build(tok, out, opts, &sources)?))
        })()
    } else {
        Ok(Ok(PathBuf::new()))
    };
    let prepared = agree(comm, "tokenize", prepared)?;
    let mut msg = match &prepared {
        Ok(tmp) => tmp.to_string_lossy().into_owned().into_bytes(),
        Err(_) => Vec::new(),
    };
    comm.broadcast_bytes(&mut msg, 0)?;
    if msg.is_empty() {
        let manifest = match prepared {
            Err(m) => m,
            Ok(_) => crate::tokenizer::shards::TokenShards::open(out, tok)?
                .manifest()
                .clone(),
        };
        return Ok(RanksReport {
            manifest,
            bytes: 0,
            seconds: 0.0,
            reused: true,
        });
    }
    let tmp = PathBuf::from(String::from_utf8_lossy(&msg).into_owned());
    let result = write_parts(comm, &encoder, tok, files, &sources, &tmp, opts);
    // every rank's part is in the shards (write_parts ends in agree): now the manifest
    let result = result.and_then(|(manifest, bytes)| {
        if rank == 0 {
            finish_build(&tmp, out, &manifest)?;
        }
        Ok((manifest, bytes))
    });
    let result = agree(comm, "tokenize", result);
    if result.is_err() && rank == 0 {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    drop(held);
    let (manifest, bytes) = result?;
    Ok(RanksReport {
        manifest,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        reused: false,
    })
}

/// This rank's lines tokenized into its part file, then its ids written into the shard files
/// at their global positions; the manifest every rank computes from the gathered counts.
fn write_parts(
    comm: &dyn Communicator,
    encoder: &BatchEncoder,
    tok: &Tokenizer,
    files: &[PathBuf],
    sources: &[crate::tokenizer::shards::SourceEntry],
    tmp: &Path,
    opts: &ShardBuildOptions,
) -> Result<(ShardManifest, u64)> {
    let (rank, world) = (comm.rank(), comm.world_size());
    let dtype = Dtype::for_vocab(tok.vocab_size());
    let part = tmp.join(format!(".rank-{rank:05}.ids"));
    let counted = tokenize_my_lines(encoder, files, rank, world, dtype, &part, opts.batch_bytes);
    let (tokens, documents, bytes) = agree(comm, "tokenize", counted)?;
    let all_tokens = comm.all_gather_u64(tokens)?;
    let num_documents: u64 = comm.all_gather_u64(documents)?.iter().sum();
    let bytes_total: u64 = comm.all_gather_u64(bytes)?.iter().sum();
    let num_tokens: u64 = all_tokens.iter().sum();
    if num_documents == 0 {
        let _ = std::fs::remove_file(&part);
        let what = sources
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::EmptyCorpus { what });
    }
    let first: u64 = all_tokens[..rank].iter().sum();
    let placed = place_part(&part, tmp, first, tokens, dtype, opts.shard_tokens);
    let _ = std::fs::remove_file(&part);
    agree(comm, "tokenize", placed)?;
    let shards = (0..num_tokens.div_ceil(opts.shard_tokens))
        .map(|i| ShardEntry {
            file: shard_name(i),
            num_tokens: (num_tokens - i * opts.shard_tokens).min(opts.shard_tokens),
        })
        .collect();
    let manifest = ShardManifest {
        format: FORMAT.into(),
        version: 1,
        tokenizer_fingerprint: tok.fingerprint()?,
        vocab_size: tok.vocab_size(),
        eos_id: encoder.eos,
        dtype,
        num_tokens,
        num_documents,
        shards,
        sources: sources.to_vec(),
    };
    Ok((manifest, bytes_total))
}

fn shard_name(i: u64) -> String {
    format!("shard_{i:05}.bin")
}

/// Tokenizes the lines this rank owns into `part` (ids of `dtype`, little-endian); returns
/// (tokens, documents, bytes of the documents with their newlines) as one process counts them.
fn tokenize_my_lines(
    encoder: &BatchEncoder,
    files: &[PathBuf],
    rank: usize,
    world: usize,
    dtype: Dtype,
    part: &Path,
    batch_bytes: usize,
) -> Result<(u64, u64, u64)> {
    let mut lines = RangeLines::new(files, rank, world)?;
    let f = File::create(part).map_err(|e| write_error(part, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let (mut tokens, mut documents, mut bytes) = (0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        let batch = lines.next_batch(batch_bytes.max(1))?;
        if batch.is_empty() {
            break;
        }
        bytes += batch.iter().map(|d| d.len() as u64 + 1).sum::<u64>();
        for ids in encoder.encode(&batch)? {
            buf.clear();
            encode_ids(&ids, dtype, &mut buf);
            w.write_all(&buf).map_err(|e| write_error(part, e))?;
            tokens += ids.len() as u64;
            documents += 1;
        }
    }
    w.into_inner()
        .map_err(|e| write_error(part, e.into_error()))?
        .sync_all()
        .map_err(|e| write_error(part, e))?;
    Ok((tokens, documents, bytes))
}

fn encode_ids(ids: &[u32], dtype: Dtype, out: &mut Vec<u8>) {
    match dtype {
        Dtype::U16 => ids
            .iter()
            .for_each(|&id| out.extend_from_slice(&(id as u16).to_le_bytes())),
        Dtype::U32 => ids
            .iter()
            .for_each(|&id| out.extend_from_slice(&id.to_le_bytes())),
    }
}

/// Copies the `count` ids of `part` into the shard files of `dir` from global token `first`
/// on, at their offsets (files created when missing, never truncated: a neighbour rank may
/// have written the start of the same shard).
fn place_part(
    part: &Path,
    dir: &Path,
    first: u64,
    count: u64,
    dtype: Dtype,
    shard_tokens: u64,
) -> Result<()> {
    let width = dtype.width() as u64;
    let mut src = File::open(part).map_err(|e| crate::io::read_error(part, e))?;
    let (mut at, end) = (first, first + count);
    let mut buf = vec![0u8; 1 << 20];
    while at < end {
        let shard = at / shard_tokens;
        let shard_end = ((shard + 1) * shard_tokens).min(end);
        let path = dir.join(shard_name(shard));
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| write_error(&path, e))?;
        let mut left = (shard_end - at) * width;
        let mut offset = (at - shard * shard_tokens) * width;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            src.read_exact(&mut buf[..n])
                .map_err(|e| crate::io::read_error(part, e))?;
            f.write_all_at(&buf[..n], offset)
                .map_err(|e| write_error(&path, e))?;
            offset += n as u64;
            left -= n as u64;
        }
        f.sync_all().map_err(|e| write_error(&path, e))?;
        at = shard_end;
    }
    Ok(())
}

/// The lines of the concatenated `files` whose first byte lies in this rank's byte range, in
/// order, as the single-process reader gives them (empty lines skipped, `\n` / `\r\n` cut).
struct RangeLines<'a> {
    files: &'a [PathBuf],
    /// (file index, its first byte in the concatenation, its length)
    spans: Vec<(usize, u64, u64)>,
    start: u64,
    end: u64,
    next: usize,
    /// the open file, its reader, and the file offset of its next line
    reader: Option<(usize, BufReader<File>, u64)>,
}

impl<'a> RangeLines<'a> {
    fn new(files: &'a [PathBuf], rank: usize, world: usize) -> Result<Self> {
        let mut spans = Vec::new();
        let mut base = 0u64;
        for (i, f) in files.iter().enumerate() {
            let len = std::fs::metadata(f)
                .map_err(|e| crate::io::read_error(f, e))?
                .len();
            spans.push((i, base, len));
            base += len;
        }
        let (start, end) = byte_range(base, rank, world);
        Ok(RangeLines {
            files,
            spans,
            start,
            end,
            next: 0,
            reader: None,
        })
    }

    /// Opens the next file that has a line starting in the range, at that line.
    fn open_next(&mut self) -> Result<bool> {
        while let Some(&(i, base, len)) = self.spans.get(self.next) {
            self.next += 1;
            if base + len <= self.start || base >= self.end || len == 0 {
                continue;
            }
            let path = &self.files[i];
            let mut f = File::open(path).map_err(|e| crate::io::read_error(path, e))?;
            let mut at = self.start.saturating_sub(base);
            if at > 0 {
                // a line starts at `at` only if the byte before it ends a line
                f.seek(SeekFrom::Start(at - 1))
                    .map_err(|e| crate::io::read_error(path, e))?;
                let mut r = BufReader::with_capacity(1 << 20, f);
                let mut skipped = Vec::new();
                let n = r
                    .read_until(b'\n', &mut skipped)
                    .map_err(|e| crate::io::read_error(path, e))?;
                at = at - 1 + n as u64;
                if base + at >= self.end || at >= len {
                    continue;
                }
                self.reader = Some((i, r, at));
            } else {
                self.reader = Some((i, BufReader::with_capacity(1 << 20, f), 0));
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Documents of about `batch_bytes` (counting skipped empty lines, as one process does);
    /// empty at the end of the range.
    fn next_batch(&mut self, batch_bytes: usize) -> Result<Vec<String>> {
        let mut batch = Vec::new();
        let mut size = 0usize;
        while size < batch_bytes {
            if self.reader.is_none() && !self.open_next()? {
                break;
            }
            let Some((i, r, offset)) = self.reader.as_mut() else {
                break;
            };
            let (path, base) = (&self.files[*i], self.spans[*i].1);
            if base + *offset >= self.end {
                self.reader = None;
                self.next = self.spans.len();
                break;
            }
            let mut raw = Vec::new();
            let n = r
                .read_until(b'\n', &mut raw)
                .map_err(|e| crate::io::read_error(path, e))?;
            if n == 0 {
                self.reader = None;
                continue;
            }
            let line = String::from_utf8(raw).map_err(|_| Error::InvalidUtf8 {
                path: path.clone(),
                offset: *offset as usize,
            })?;
            *offset += n as u64;
            size += n;
            let doc = line.trim_end_matches(['\n', '\r']);
            if !doc.is_empty() {
                batch.push(doc.to_string());
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(files: &[PathBuf], rank: usize, world: usize) -> Vec<String> {
        let mut r = RangeLines::new(files, rank, world).unwrap();
        let mut out = Vec::new();
        loop {
            let b = r.next_batch(7).unwrap();
            if b.is_empty() {
                return out;
            }
            out.extend(b);
        }
    }

    #[test]
    fn every_line_is_read_by_exactly_one_rank_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        let c = dir.path().join("c.txt");
        std::fs::write(&a, "one\ntwo two\n\nthree\r\nfour").unwrap();
        std::fs::write(&b, "").unwrap();
        std::fs::write(&c, "five\nsix six six six\nseven\n").unwrap();
        let files = vec![a, b, c];
        let all = lines_of(&files, 0, 1);
        assert_eq!(
            all,
            [
                "one",
                "two two",
                "three",
                "four",
                "five",
                "six six six six",
                "seven"
            ]
        );
        for world in 2..=9 {
            let joined: Vec<String> = (0..world)
                .flat_map(|r| lines_of(&files, r, world))
                .collect();
            assert_eq!(joined, all, "{world} ranks");
        }
    }

    #[test]
    fn byte_ranges_cover_the_input() {
        for (total, world) in [(0u64, 3usize), (10, 3), (7, 7), (5, 8)] {
            let mut at = 0;
            for r in 0..world {
                let (s, e) = byte_range(total, r, world);
                assert_eq!(s, at);
                at = e;
            }
            assert_eq!(at, total);
        }
    }

    #[test]
    fn a_part_lands_at_its_place_in_the_shards() {
        let dir = tempfile::tempdir().unwrap();
        // tokens 0..10 in shards of 4, written by two "ranks": 0..6 and 6..10
        for (first, ids) in [(6u64, vec![6u32, 7, 8, 9]), (0, (0..6).collect())] {
            let part = dir.path().join(format!("part-{first}"));
            let mut bytes = Vec::new();
            encode_ids(&ids, Dtype::U16, &mut bytes);
            std::fs::write(&part, bytes).unwrap();
            place_part(&part, dir.path(), first, ids.len() as u64, Dtype::U16, 4).unwrap();
        }
        let read = |name: &str| -> Vec<u16> {
            std::fs::read(dir.path().join(name))
                .unwrap()
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        assert_eq!(read("shard_00000.bin"), [0, 1, 2, 3]);
        assert_eq!(read("shard_00001.bin"), [4, 5, 6, 7]);
        assert_eq!(read("shard_00002.bin"), [8, 9]);
    }
}
