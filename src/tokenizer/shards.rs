//! Token shards: a corpus larger than memory, tokenized once into flat files of ids.
//!
//! A shard folder holds `shard_00000.bin`, `shard_00001.bin`, ... (little-endian `u16` ids when
//! the vocabulary fits in 16 bits, `u32` otherwise; documents joined by EOS, the layout of
//! nanoGPT's `train.bin`) and a `manifest.json` that names the tokenizer (a fingerprint of its
//! `tokenizer.json`), the counts and the dtype. The folder is built under a temporary name with
//! the manifest written last, then renamed: an interrupted build leaves nothing that looks
//! complete, and running the build again starts over cleanly.
//!
//! ```
//! use massivetext::prelude::*;
//! let texts = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"];
//! let tok = Tokenizer::train(TokenizerKind::Bpe, texts.iter(), &TrainOptions::new(300)).unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let docs = texts.iter().map(|s| s.to_string());
//! TokenShards::build_from_texts(&tok, docs, dir.path().join("shards"), &Default::default()).unwrap();
//! let shards = TokenShards::open(dir.path().join("shards"), &tok).unwrap();
//! assert_eq!(shards.num_documents(), 3);
//! // the ids start with the first document's, as the tokenizer encodes it
//! let first = tok.encode_plain(texts[0]).unwrap();
//! let mut head = vec![0u32; first.len()];
//! shards.read_tokens(0, &mut head).unwrap();
//! assert_eq!(head, first);
//! let mut sampler = shards.sampler(8, 1234).unwrap();
//! let mut window = vec![0u32; 9]; // block_size + 1: inputs and shifted targets
//! sampler.next_window(&mut window).unwrap();
//! assert!(window.iter().all(|&id| (id as usize) < tok.vocab_size()));
//! ```
use super::Tokenizer;
use super::encode::WordCache;
use super::pretrained::io_err;
use crate::io::{DirLock, write_error};
use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use memmap2::Mmap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const MANIFEST: &str = "manifest.json";
pub(crate) const FORMAT: &str = "massivetext-token-shards";

/// Element type of the shard files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    U16,
    U32,
}

impl Dtype {
    /// Bytes per id.
    pub fn width(self) -> usize {
        match self {
            Dtype::U16 => 2,
            Dtype::U32 => 4,
        }
    }
    /// The smallest type that holds every id of a vocabulary of `vocab_size`.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            Dtype::U16
        } else {
            Dtype::U32
        }
    }
}

/// One shard file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub file: String,
    pub num_tokens: u64,
}

/// One input file, recorded so that a rerun over the same files can be recognised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub path: String,
    pub bytes: u64,
}

/// `manifest.json`: what the shards hold and which tokenizer wrote them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub format: String,
    pub version: u32,
    /// FNV-1a 64 of the tokenizer's `tokenizer.json` ([`Tokenizer::fingerprint`]).
    pub tokenizer_fingerprint: String,
    pub vocab_size: usize,
    /// The id written after every document.
    pub eos_id: u32,
    pub dtype: Dtype,
    pub num_tokens: u64,
    pub num_documents: u64,
    pub shards: Vec<ShardEntry>,
    pub sources: Vec<SourceEntry>,
}

/// Options of a shard build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardBuildOptions {
    /// Ids per shard file (the last one holds the rest).
    pub shard_tokens: u64,
    /// Bytes of text tokenized per parallel batch: memory stays a few times this, whatever the
    /// corpus size.
    pub batch_bytes: usize,
    /// Progress bar (bytes/s, ETA) on stderr, drawn only when stderr is a terminal.
    pub show_progress: bool,
    /// Rebuild even when the folder already holds a complete build of the same files with the
    /// same tokenizer, and replace a build of other files or another tokenizer (refused
    /// without it, so that no build is replaced by mistake).
    pub force: bool,
}

impl Default for ShardBuildOptions {
    fn default() -> Self {
        ShardBuildOptions {
            shard_tokens: 1 << 27,
            batch_bytes: 4 << 20,
            show_progress: false,
            force: false,
        }
    }
}

/// What a build did.
#[derive(Clone, Debug)]
pub struct BuildReport {
    pub manifest: ShardManifest,
    /// Bytes of text read.
    pub bytes: u64,
    pub seconds: f64,
    /// True when an identical complete build was found and kept.
    pub reused: bool,
}

/// Memory-mapped token shards, cheap to clone; see the module docs.
#[derive(Clone)]
pub struct TokenShards {
    dir: PathBuf,
    manifest: ShardManifest,
    maps: Arc<Vec<Mmap>>,
    /// `starts[i]` = global index of the first token of shard `i`; last entry = total.
    starts: Arc<Vec<u64>>,
}

impl std::fmt::Debug for TokenShards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenShards")
            .field("dir", &self.dir)
            .field("num_tokens", &self.manifest.num_tokens)
            .field("num_documents", &self.manifest.num_documents)
            .field("dtype", &self.manifest.dtype)
            .field("shards", &self.manifest.shards.len())
            .finish()
    }
}

fn fmt_err(path: &Path, message: impl Into<String>) -> Error {
    Error::ShardFormat {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes ids into consecutive shard files.
struct ShardWriter {
    dir: PathBuf,
    dtype: Dtype,
    shard_tokens: u64,
    current: Option<(BufWriter<File>, PathBuf)>,
    shards: Vec<ShardEntry>,
    num_tokens: u64,
    num_documents: u64,
    bytes: Vec<u8>,
}

impl ShardWriter {
    fn write_ids(&mut self, mut ids: &[u32]) -> Result<()> {
        while !ids.is_empty() {
            let (w, path) = match &mut self.current {
                Some(open) => open,
                None => {
                    let name = format!("shard_{:05}.bin", self.shards.len());
                    let path = self.dir.join(&name);
                    let f = File::create(&path).map_err(|e| write_error(&path, e))?;
                    self.shards.push(ShardEntry {
                        file: name,
                        num_tokens: 0,
                    });
                    self.current
                        .insert((BufWriter::with_capacity(1 << 20, f), path))
                }
            };
            // the open shard is the last entry: pushed with it above
            let Some(entry) = self.shards.last_mut() else {
                return Err(Error::InvalidArgument(format!(
                    "{}: a shard is open without its manifest entry; this is a bug in massivetext, please report it",
                    path.display()
                )));
            };
            let room = (self.shard_tokens - entry.num_tokens) as usize;
            let (now, rest) = ids.split_at(room.min(ids.len()));
            self.bytes.clear();
            match self.dtype {
                Dtype::U16 => now
                    .iter()
                    .for_each(|&id| self.bytes.extend_from_slice(&(id as u16).to_le_bytes())),
                Dtype::U32 => now
                    .iter()
                    .for_each(|&id| self.bytes.extend_from_slice(&id.to_le_bytes())),
            }
            w.write_all(&self.bytes).map_err(|e| write_error(path, e))?;
            entry.num_tokens += now.len() as u64;
            self.num_tokens += now.len() as u64;
            if entry.num_tokens == self.shard_tokens {
                self.close_current()?;
            }
            ids = rest;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some((w, path)) = self.current.take() {
            let f = w
                .into_inner()
                .map_err(|e| write_error(&path, e.into_error()))?;
            f.sync_all().map_err(|e| write_error(&path, e))?;
        }
        Ok(())
    }
}

/// Reads documents (lines; empty lines skipped) from files, `batch_bytes` at a time.
struct LineBatches {
    files: Vec<PathBuf>,
    file_idx: usize,
    reader: Option<(BufReader<File>, u64)>,
    batch_bytes: usize,
}

impl LineBatches {
    fn next_batch(&mut self, progress: &ProgressBar) -> Result<Option<Vec<String>>> {
        let mut batch = Vec::new();
        let mut size = 0usize;
        while size < self.batch_bytes {
            let Some(path) = self.files.get(self.file_idx) else {
                break;
            };
            let (r, offset) = match &mut self.reader {
                Some(open) => open,
                None => {
                    let f = File::open(path).map_err(|e| io_err(path, e))?;
                    self.reader
                        .insert((BufReader::with_capacity(1 << 20, f), 0))
                }
            };
            let mut line = String::new();
            let n = r.read_line(&mut line).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    Error::InvalidUtf8 {
                        path: path.clone(),
                        offset: *offset as usize,
                    }
                } else {
                    io_err(path, e)
                }
            })?;
            if n == 0 {
                self.reader = None;
                self.file_idx += 1;
                continue;
            }
            *offset += n as u64;
            progress.inc(n as u64);
            size += n;
            let trimmed = line.trim_end_matches(['\n', '\r']).len();
            line.truncate(trimmed);
            if !line.is_empty() {
                batch.push(line);
            }
        }
        Ok(if batch.is_empty() && size == 0 {
            None
        } else {
            Some(batch)
        })
    }
}

fn progress_bar(show: bool, total: Option<u64>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

impl TokenShards {
    /// Tokenize text files (one document per non-empty line) into shards in `out_dir`.
    ///
    /// Files are streamed `batch_bytes` at a time and each batch is tokenized in parallel
    /// (rayon), so memory does not grow with the corpus. If `out_dir` already holds a complete
    /// build of the same files (paths and sizes) with the same tokenizer, it is kept unless
    /// `opts.force`.
    pub fn build_from_files<P: AsRef<Path>>(
        tok: &Tokenizer,
        files: &[P],
        out_dir: impl AsRef<Path>,
        opts: &ShardBuildOptions,
    ) -> Result<BuildReport> {
        let out = out_dir.as_ref();
        let _lock = lock(out)?;
        let sources = source_entries(files)?;
        if let Some(existing) = reusable_build(tok, out, &sources, opts)? {
            return Ok(BuildReport {
                manifest: existing,
                bytes: 0,
                seconds: 0.0,
                reused: true,
            });
        }
        let total: u64 = sources.iter().map(|s| s.bytes).sum();
        let mut batches = LineBatches {
            files: files.iter().map(|f| f.as_ref().to_path_buf()).collect(),
            file_idx: 0,
            reader: None,
            batch_bytes: opts.batch_bytes.max(1),
        };
        let pb = progress_bar(opts.show_progress, Some(total));
        let what = sources
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let report = build(tok, out, opts, sources, &what, |_| batches.next_batch(&pb));
        pb.finish_and_clear();
        report
    }

    /// Tokenize documents from any iterator (a streaming dataset, a generator) into shards.
    pub fn build_from_texts<I>(
        tok: &Tokenizer,
        docs: I,
        out_dir: impl AsRef<Path>,
        opts: &ShardBuildOptions,
    ) -> Result<BuildReport>
    where
        I: IntoIterator<Item = String>,
    {
        let _lock = lock(out_dir.as_ref())?;
        let mut docs = docs.into_iter();
        let pb = progress_bar(opts.show_progress, None);
        let batch_bytes = opts.batch_bytes.max(1);
        let report = build(
            tok,
            out_dir.as_ref(),
            opts,
            Vec::new(),
            "the documents",
            |_| {
                let mut batch = Vec::new();
                let mut size = 0;
                for d in docs.by_ref() {
                    size += d.len() + 1;
                    pb.inc(d.len() as u64 + 1);
                    if !d.is_empty() {
                        batch.push(d);
                    }
                    if size >= batch_bytes {
                        break;
                    }
                }
                Ok(if size == 0 { None } else { Some(batch) })
            },
        );
        pb.finish_and_clear();
        report
    }

    /// Open a shard folder written with `tok`; a folder written with another tokenizer is an
    /// error ([`Error::ShardTokenizerMismatch`]), since its ids would mean other tokens.
    pub fn open(dir: impl AsRef<Path>, tok: &Tokenizer) -> Result<Self> {
        let shards = Self::open_unchecked(dir)?;
        let expected = tok.fingerprint()?;
        if shards.manifest.tokenizer_fingerprint != expected {
            return Err(Error::ShardTokenizerMismatch {
                dir: shards.dir.clone(),
                expected,
                found: shards.manifest.tokenizer_fingerprint.clone(),
            });
        }
        Ok(shards)
    }

    /// Open without checking which tokenizer wrote the shards.
    pub fn open_unchecked(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = read_manifest(&dir)?;
        let mut maps = Vec::with_capacity(manifest.shards.len());
        let mut starts = vec![0u64];
        let width = manifest.dtype.width() as u64;
        for s in &manifest.shards {
            let path = dir.join(&s.file);
            let f = File::open(&path).map_err(|e| io_err(&path, e))?;
            let len = f.metadata().map_err(|e| io_err(&path, e))?.len();
            if len != s.num_tokens * width {
                return Err(fmt_err(
                    &path,
                    format!(
                        "holds {len} bytes but the manifest says {} ids of {width} bytes; the folder is damaged, rebuild it",
                        s.num_tokens
                    ),
                ));
            }
            // SAFETY: the shard files are immutable once the manifest names them (a rebuild
            // writes new files under a new folder name); the map is read-only.
            let map = unsafe { Mmap::map(&f) }.map_err(|e| io_err(&path, e))?;
            maps.push(map);
            starts.push(starts.last().copied().unwrap_or(0) + s.num_tokens);
        }
        if starts.last().copied() != Some(manifest.num_tokens) {
            return Err(fmt_err(
                &dir.join(MANIFEST),
                "num_tokens differs from the sum over shards; rebuild the folder",
            ));
        }
        Ok(TokenShards {
            dir,
            manifest,
            maps: Arc::new(maps),
            starts: Arc::new(starts),
        })
    }

    pub fn manifest(&self) -> &ShardManifest {
        &self.manifest
    }
    pub fn num_tokens(&self) -> u64 {
        self.manifest.num_tokens
    }
    pub fn num_documents(&self) -> u64 {
        self.manifest.num_documents
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copy the ids `start .. start + buf.len()` (across shard boundaries) into `buf`.
    /// No allocation.
    pub fn read_tokens(&self, start: u64, buf: &mut [u32]) -> Result<()> {
        let end = start + buf.len() as u64;
        if end > self.num_tokens() {
            return Err(Error::InvalidArgument(format!(
                "tokens {start}..{end} are past the end of the shards ({} tokens)",
                self.num_tokens()
            )));
        }
        let width = self.manifest.dtype.width();
        // The shard holding `start`: last i with starts[i] <= start.
        let mut shard = self.starts.partition_point(|&s| s <= start) - 1;
        let mut pos = start;
        let mut filled = 0;
        while filled < buf.len() {
            let local = (pos - self.starts[shard]) as usize;
            let available = (self.starts[shard + 1] - pos) as usize;
            let n = available.min(buf.len() - filled);
            let bytes = &self.maps[shard][local * width..(local + n) * width];
            let dst = &mut buf[filled..filled + n];
            match self.manifest.dtype {
                Dtype::U16 => {
                    for (d, c) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                        *d = u16::from_le_bytes([c[0], c[1]]) as u32;
                    }
                }
                Dtype::U32 => {
                    for (d, c) in dst.iter_mut().zip(bytes.chunks_exact(4)) {
                        *d = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
            }
            filled += n;
            pos += n as u64;
            shard += 1;
        }
        Ok(())
    }

    /// Random `(block_size + 1)`-token windows for causal-LM batches, reproducible from `seed`.
    pub fn sampler(&self, block_size: usize, seed: u64) -> Result<WindowSampler> {
        self.check_block(block_size)?;
        Ok(WindowSampler {
            shards: self.clone(),
            window: block_size + 1,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// Consecutive `(block_size + 1)`-token windows starting every `block_size` tokens, for
    /// evaluation (each token is a target exactly once; the tail that fills no window is left).
    pub fn sequential(&self, block_size: usize) -> Result<SequentialWindows> {
        self.check_block(block_size)?;
        Ok(SequentialWindows {
            shards: self.clone(),
            block_size,
            next: 0,
        })
    }

    fn check_block(&self, block_size: usize) -> Result<()> {
        if block_size == 0 || block_size as u64 + 1 > self.num_tokens() {
            return Err(Error::InvalidArgument(format!(
                "block_size {block_size}: the shards in {} hold {} tokens, need at least block_size + 1 and block_size > 0",
                self.dir.display(),
                self.num_tokens()
            )));
        }
        Ok(())
    }
}

/// Random windows (see [`TokenShards::sampler`]).
#[derive(Clone)]
pub struct WindowSampler {
    shards: TokenShards,
    window: usize,
    rng: ChaCha8Rng,
}

impl WindowSampler {
    /// Fill `buf` (length `block_size + 1`) with a window starting at a uniform random token.
    pub fn next_window(&mut self, buf: &mut [u32]) -> Result<()> {
        if buf.len() != self.window {
            return Err(Error::InvalidArgument(format!(
                "window buffer holds {} ids, expected block_size + 1 = {}",
                buf.len(),
                self.window
            )));
        }
        let last_start = self.shards.num_tokens() - self.window as u64;
        let start = self.rng.random_range(0..=last_start);
        self.shards.read_tokens(start, buf)
    }

    /// Fill `batch` (length `batch_size * (block_size + 1)`) with `batch_size` windows, one after
    /// the other.
    pub fn fill_batch(&mut self, batch: &mut [u32]) -> Result<()> {
        if !batch.len().is_multiple_of(self.window) {
            return Err(Error::InvalidArgument(format!(
                "batch buffer of {} ids is not a multiple of block_size + 1 = {}",
                batch.len(),
                self.window
            )));
        }
        for w in batch.chunks_exact_mut(self.window) {
            self.next_window(w)?;
        }
        Ok(())
    }
}

/// Sequential windows (see [`TokenShards::sequential`]).
#[derive(Clone)]
pub struct SequentialWindows {
    shards: TokenShards,
    block_size: usize,
    next: u64,
}

impl SequentialWindows {
    /// Number of windows in the pass.
    pub fn len(&self) -> u64 {
        (self.shards.num_tokens() - 1) / self.block_size as u64
    }
    /// True when no window fits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fill `buf` (length `block_size + 1`) with the next window; `false` at the end.
    pub fn next_into(&mut self, buf: &mut [u32]) -> Result<bool> {
        if buf.len() != self.block_size + 1 {
            return Err(Error::InvalidArgument(format!(
                "window buffer holds {} ids, expected block_size + 1 = {}",
                buf.len(),
                self.block_size + 1
            )));
        }
        if self.next + buf.len() as u64 > self.shards.num_tokens() {
            return Ok(false);
        }
        self.shards.read_tokens(self.next, buf)?;
        self.next += self.block_size as u64;
        Ok(true)
    }
    /// Start the pass again.
    pub fn reset(&mut self) {
        self.next = 0;
    }
}

fn read_manifest(dir: &Path) -> Result<ShardManifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            fmt_err(
                &path,
                "missing: this is not a token-shard folder, or its build was interrupted; run the build again",
            )
        } else {
            io_err(&path, e)
        }
    })?;
    let m: ShardManifest = serde_json::from_str(&text).map_err(|e| {
        fmt_err(
            &path,
            format!(
                "line {} column {}: {e}; rebuild the folder",
                e.line(),
                e.column()
            ),
        )
    })?;
    if m.format != FORMAT {
        return Err(fmt_err(
            &path,
            format!("format `{}` is not `{FORMAT}`", m.format),
        ));
    }
    Ok(m)
}

/// The input files as the manifest records them (path as given, size).
pub(crate) fn source_entries<P: AsRef<Path>>(files: &[P]) -> Result<Vec<SourceEntry>> {
    files
        .iter()
        .map(|f| {
            let f = f.as_ref();
            let meta = std::fs::metadata(f).map_err(|e| io_err(f, e))?;
            Ok(SourceEntry {
                path: f.to_string_lossy().into_owned(),
                bytes: meta.len(),
            })
        })
        .collect()
}

/// The manifest of a complete build of `sources` with `tok` already in `out`, kept unless
/// `opts.force`.
pub(crate) fn reusable_build(
    tok: &Tokenizer,
    out: &Path,
    sources: &[SourceEntry],
    opts: &ShardBuildOptions,
) -> Result<Option<ShardManifest>> {
    if !opts.force
        && let Ok(existing) = read_manifest(out)
        && existing.sources == sources
        && existing.tokenizer_fingerprint == tok.fingerprint()?
        && TokenShards::open(out, tok).is_ok()
    {
        return Ok(Some(existing));
    }
    Ok(None)
}

/// Words memoised per worker thread (bounded: cleared when full, so memory stays flat).
const WORD_CACHE_ENTRIES: usize = 200_000;
static NEXT_BUILD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
thread_local! {
    static WORD_CACHE: std::cell::RefCell<Option<(u64, WordCache)>> =
        const { std::cell::RefCell::new(None) };
}

/// The build proper: batches come from `next_batch`; written under a temporary folder next to
/// `out`, manifest last, then renamed into place.
fn build(
    tok: &Tokenizer,
    out: &Path,
    opts: &ShardBuildOptions,
    sources: Vec<SourceEntry>,
    what: &str,
    mut next_batch: impl FnMut(()) -> Result<Option<Vec<String>>>,
) -> Result<BuildReport> {
    let started = Instant::now();
    let encoder = BatchEncoder::new(tok)?;
    let tmp = begin_build(tok, out, opts, &sources)?;
    let result = (|| {
        let dtype = Dtype::for_vocab(tok.vocab_size());
        let mut w = ShardWriter {
            dir: tmp.clone(),
            dtype,
            shard_tokens: opts.shard_tokens,
            current: None,
            shards: Vec::new(),
            num_tokens: 0,
            num_documents: 0,
            bytes: Vec::new(),
        };
        let mut bytes = 0u64;
        while let Some(batch) = next_batch(())? {
            bytes += batch.iter().map(|d| d.len() as u64 + 1).sum::<u64>();
            let encoded = encoder.encode(&batch)?;
            drop(batch);
            for ids in &encoded {
                w.write_ids(ids)?;
                w.num_documents += 1;
            }
        }
        w.close_current()?;
        if w.num_documents == 0 {
            return Err(Error::EmptyCorpus {
                what: what.to_string(),
            });
        }
        let manifest = ShardManifest {
            format: FORMAT.into(),
            version: 1,
            tokenizer_fingerprint: tok.fingerprint()?,
            vocab_size: tok.vocab_size(),
            eos_id: encoder.eos,
            dtype,
            num_tokens: w.num_tokens,
            num_documents: w.num_documents,
            shards: w.shards,
            sources,
        };
        Ok((manifest, bytes))
    })();
    let (manifest, bytes) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    finish_build(&tmp, out, &manifest)?;
    Ok(BuildReport {
        manifest,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        reused: false,
    })
}

/// Documents into ids, a batch at a time, in parallel (rayon), each followed by the document
/// separator; words memoised per worker thread.
pub(crate) struct BatchEncoder<'a> {
    tok: &'a Tokenizer,
    fast: Option<super::encode::ByteLevelFast>,
    build_id: u64,
    /// The id written after every document.
    pub eos: u32,
}

impl<'a> BatchEncoder<'a> {
    pub fn new(tok: &'a Tokenizer) -> Result<Self> {
        let eos = tok.document_separator_id().ok_or_else(|| {
            Error::InvalidArgument(
                "the tokenizer has neither an eos nor a sep token to put between documents".into(),
            )
        })?;
        Ok(BatchEncoder {
            tok,
            fast: tok.byte_level_fast(),
            build_id: NEXT_BUILD.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            eos,
        })
    }

    /// Each document's ids, then the separator.
    pub fn encode(&self, batch: &[String]) -> Result<Vec<Vec<u32>>> {
        let (tok, fast, build_id, eos) = (self.tok, self.fast.as_ref(), self.build_id, self.eos);
        batch
            .par_iter()
            .map(|d| {
                WORD_CACHE.with(|cell| {
                    let mut slot = cell.borrow_mut();
                    // One cache per worker thread and build: a later build may use another
                    // tokenizer.
                    let cache = match &mut *slot {
                        Some((id, cache)) if *id == build_id => cache,
                        other => {
                            &mut other
                                .insert((build_id, WordCache::new(WORD_CACHE_ENTRIES)))
                                .1
                        }
                    };
                    let mut ids = Vec::with_capacity(d.len() / 3 + 2);
                    tok.encode_plain_into(d, fast, cache, &mut ids)?;
                    ids.push(eos);
                    Ok(ids)
                })
            })
            .collect()
    }
}

/// The first half of a build into `out`: checks (shard size, a folder that is not ours, a
/// build of other files or another tokenizer without `force`), leftovers of dead builds
/// removed, and the empty temporary folder `.NAME.partial-PID` beside `out` made, returned.
pub(crate) fn begin_build(
    tok: &Tokenizer,
    out: &Path,
    opts: &ShardBuildOptions,
    sources: &[SourceEntry],
) -> Result<PathBuf> {
    if opts.shard_tokens == 0 {
        return Err(Error::InvalidArgument("shard_tokens must be > 0".into()));
    }
    check_replaceable(out)?;
    let name = out
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not a folder name", out.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    crate::io::create_dir_all(&parent)?;
    if !opts.force
        && let Ok(existing) = read_manifest(out)
    {
        let fingerprint = tok.fingerprint()?;
        if sources.is_empty()
            || existing.sources.as_slice() != sources
            || existing.tokenizer_fingerprint != fingerprint
        {
            let built_from = if existing.sources.is_empty() {
                "documents given in code".to_string()
            } else {
                existing
                    .sources
                    .iter()
                    .map(|s| s.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let tokenizer = if existing.tokenizer_fingerprint == fingerprint {
                "this tokenizer"
            } else {
                "another tokenizer"
            };
            return Err(fmt_err(
                out,
                format!(
                    "already holds token shards ({} tokens of {built_from}, with {tokenizer}); pass --force (ShardBuildOptions::force) to replace them, or choose another output folder",
                    existing.num_tokens
                ),
            ));
        }
    }
    remove_stale_partials(&parent, &name);
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    crate::io::create_dir_all(&tmp)?;
    Ok(tmp)
}

/// The second half: `manifest` written last into `tmp`, then `tmp` renamed into place (an old
/// complete build moved aside first, then removed). `tmp` is removed when this fails.
pub(crate) fn finish_build(tmp: &Path, out: &Path, manifest: &ShardManifest) -> Result<()> {
    let written = (|| {
        let text = serde_json::to_string_pretty(manifest).map_err(super::tk_err)?;
        crate::io::write_atomic(&tmp.join(MANIFEST), text.as_bytes())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(tmp);
        return Err(e);
    }
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if out.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        crate::io::rename(out, &old)?;
        crate::io::rename(tmp, out)?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        crate::io::rename(tmp, out)?;
    }
    Ok(())
}

/// `out` may be replaced only if it is absent, empty, or a shard folder (has a manifest, or
/// only shard files): never a folder of someone's other files.
fn check_replaceable(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(fmt_err(
            out,
            "exists and is not a folder; choose another output path",
        ));
    }
    let entries: Vec<String> = std::fs::read_dir(out)
        .map_err(|e| io_err(out, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let ours = |n: &String| {
        n == MANIFEST || (n.starts_with("shard_") && n.ends_with(".bin")) || n.starts_with('.')
    };
    if entries.iter().all(ours) {
        Ok(())
    } else {
        Err(fmt_err(
            out,
            "exists and holds files that are not token shards; choose an empty or new folder",
        ))
    }
}

/// The lock `.NAME.lock` beside the shard folder `out`: one build at a time writes it.
pub(crate) fn lock(out: &Path) -> Result<DirLock> {
    DirLock::beside(out, &format!("the shard folder {}", out.display()))
}

/// Remove `.NAME.partial-PID` / `.NAME.old-PID` folders left by builds that died.
fn remove_stale_partials(parent: &Path, name: &str) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let file = e.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&format!(".{name}.partial-"))
            .or_else(|| file.strip_prefix(&format!(".{name}.old-")));
        if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) {
            let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
            if !alive || !Path::new("/proc").exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
