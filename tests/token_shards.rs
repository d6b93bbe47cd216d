//! Token shards: build, reopen, windows, interrupted builds, manifest mismatch, CLI.
use massivetext::cli::run_from;
use massivetext::prelude::*;
use massivetext::tokenizer::{Dtype, ShardBuildOptions, TokenShards};
use std::path::{Path, PathBuf};

#[path = "common/shared.rs"]
mod shared;
use shared::data;

fn fixture_tok(name: &str) -> Tokenizer {
    Tokenizer::from_pretrained(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tokenizers")
            .join(name),
    )
    .unwrap()
}

/// What the shards must hold: each non-empty line's ids, then EOS.
fn reference_ids(tok: &Tokenizer, files: &[PathBuf]) -> (Vec<u32>, u64) {
    let eos = tok.eos_token_id().or(tok.sep_token_id()).unwrap();
    let mut ids = Vec::new();
    let mut docs = 0;
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if line.is_empty() {
                continue;
            }
            ids.extend(tok.encode_plain(line).unwrap());
            ids.push(eos);
            docs += 1;
        }
    }
    (ids, docs)
}

fn small_opts() -> ShardBuildOptions {
    ShardBuildOptions {
        shard_tokens: 50_000,
        batch_bytes: 64 << 10,
        ..Default::default()
    }
}

#[test]
fn shards_hold_the_documents_with_eos_and_reopen_memory_mapped() {
    let tok = fixture_tok("gpt2");
    let files = vec![
        data("wikitext-2/test.txt"),
        data("multi30k/test_2016_flickr.en"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shards");
    let report = TokenShards::build_from_files(&tok, &files, &out, &small_opts()).unwrap();
    let (want, docs) = reference_ids(&tok, &files);
    let m = &report.manifest;
    assert_eq!(m.num_tokens, want.len() as u64);
    assert_eq!(m.num_documents, docs);
    assert_eq!(m.dtype, Dtype::U16);
    assert_eq!(m.eos_id, 0);
    assert!(m.shards.len() > 4, "{} shards", m.shards.len());
    assert_eq!(m.tokenizer_fingerprint, tok.fingerprint().unwrap());
    // u16 files: 2 bytes per id.
    let first = std::fs::metadata(out.join(&m.shards[0].file))
        .unwrap()
        .len();
    assert_eq!(first, 2 * 50_000);

    let shards = TokenShards::open(&out, &tok).unwrap();
    let mut all = vec![0u32; want.len()];
    shards.read_tokens(0, &mut all).unwrap();
    assert_eq!(all, want);
    // A read across a shard boundary.
    let mut buf = vec![0u32; 100];
    shards.read_tokens(49_950, &mut buf).unwrap();
    assert_eq!(buf, want[49_950..50_050]);
    assert!(shards.read_tokens(want.len() as u64 - 5, &mut buf).is_err());

    // Rerun over the same files: kept; with force: rebuilt identically.
    let again = TokenShards::build_from_files(&tok, &files, &out, &small_opts()).unwrap();
    assert!(again.reused);
    let forced = ShardBuildOptions {
        force: true,
        ..small_opts()
    };
    let rebuilt = TokenShards::build_from_files(&tok, &files, &out, &forced).unwrap();
    assert!(!rebuilt.reused);
    assert_eq!(rebuilt.manifest, report.manifest);
}

#[test]
fn random_windows_are_seeded_and_sequential_pass_covers_every_target() {
    let tok = fixture_tok("bert");
    let files = vec![data("multi30k/test_2016_flickr.en")];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    TokenShards::build_from_files(&tok, &files, &out, &small_opts()).unwrap();
    let (want, _) = reference_ids(&tok, &files);
    // BERT has no eos: documents are separated by [SEP].
    assert_eq!(*want.last().unwrap(), tok.sep_token_id().unwrap());
    let shards = TokenShards::open(&out, &tok).unwrap();

    let block = 32;
    let mut a = shards.sampler(block, 7).unwrap();
    let mut b = shards.sampler(block, 7).unwrap();
    let mut c = shards.sampler(block, 8).unwrap();
    let (mut wa, mut wb, mut wc) = (vec![0; block + 1], vec![0; block + 1], vec![0; block + 1]);
    let mut differs = false;
    for _ in 0..200 {
        a.next_window(&mut wa).unwrap();
        b.next_window(&mut wb).unwrap();
        c.next_window(&mut wc).unwrap();
        assert_eq!(wa, wb);
        differs |= wa != wc;
        // Every window is a real slice of the token stream.
        let found = want.windows(block + 1).any(|w| w == wa.as_slice());
        assert!(found);
    }
    assert!(differs);
    let mut batch = vec![0u32; 4 * (block + 1)];
    a.fill_batch(&mut batch).unwrap();
    assert!(a.next_window(&mut [0u32; 5]).is_err());

    let mut seq = shards.sequential(block).unwrap();
    let mut n = 0;
    let mut w = vec![0u32; block + 1];
    while seq.next_into(&mut w).unwrap() {
        assert_eq!(w, want[n * block..n * block + block + 1]);
        n += 1;
    }
    assert_eq!(n as u64, seq.len());
    assert_eq!(n, (want.len() - 1) / block);
    assert!(shards.sampler(want.len(), 0).is_err());
}

#[test]
fn error_shards_built_with_another_tokenizer() {
    let gpt2 = fixture_tok("gpt2");
    let roberta = fixture_tok("roberta");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let files = [data("multi30k/test_2016_flickr.en")];
    TokenShards::build_from_files(&gpt2, &files, &out, &small_opts()).unwrap();
    let err = TokenShards::open(&out, &roberta).unwrap_err();
    assert!(matches!(err, Error::ShardTokenizerMismatch { .. }), "{err}");
    assert!(err.to_string().contains("another tokenizer"), "{err}");
    // Rebuilding with the other tokenizer is refused without force (issue 18), then replaces
    // the folder.
    let err = TokenShards::build_from_files(&roberta, &files, &out, &small_opts()).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    let forced = ShardBuildOptions {
        force: true,
        ..small_opts()
    };
    let r = TokenShards::build_from_files(&roberta, &files, &out, &forced).unwrap();
    assert!(!r.reused);
    TokenShards::open(&out, &roberta).unwrap();
}

#[test]
fn interrupted_build_leaves_nothing_complete_and_can_be_rerun() {
    let tok = fixture_tok("gpt2");
    let dir = tempfile::tempdir().unwrap();
    let good = data("multi30k/test_2016_flickr.en");
    // A file that fails half-way (invalid UTF-8 after 200 kB of text).
    let bad = dir.path().join("bad.txt");
    let mut bytes = std::fs::read(data("wikitext-2/test.txt")).unwrap()[..200_000].to_vec();
    bytes.extend_from_slice(b"\nok line\n\xff\xfe broken\n");
    std::fs::write(&bad, bytes).unwrap();
    let out = dir.path().join("s");
    let err =
        TokenShards::build_from_files(&tok, &[good.clone(), bad], &out, &small_opts()).unwrap_err();
    assert!(matches!(err, Error::InvalidUtf8 { .. }), "{err}");
    // Nothing that looks like a build, no temporary folder left behind.
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only bad.txt should remain");
    // A folder without manifest (as a killed build would leave) does not open.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("shard_00000.bin"), [0u8; 10]).unwrap();
    let err = TokenShards::open(&out, &tok).unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    // A stale temporary folder of a dead process is cleaned up by the rerun.
    let stale = dir.path().join(".s.partial-999999999");
    std::fs::create_dir_all(&stale).unwrap();
    TokenShards::build_from_files(&tok, &[good], &out, &small_opts()).unwrap();
    assert!(!stale.exists());
    TokenShards::open(&out, &tok).unwrap();
    // Truncated shard file: detected on open.
    let m = TokenShards::open(&out, &tok).unwrap().manifest().clone();
    let f = out.join(&m.shards[0].file);
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    let err = TokenShards::open(&out, &tok).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn error_empty_corpus_and_foreign_output_folder() {
    let tok = fixture_tok("gpt2");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n\n").unwrap();
    let out = dir.path().join("s");
    let err = TokenShards::build_from_files(&tok, &[&empty], &out, &small_opts()).unwrap_err();
    assert!(matches!(err, Error::EmptyCorpus { .. }), "{err}");
    assert!(!out.exists());
    // Never replace a folder of unrelated files.
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let err = TokenShards::build_from_files(
        &tok,
        &[data("multi30k/test_2016_flickr.en")],
        &mine,
        &small_opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not token shards"), "{err}");
    assert!(mine.join("notes.txt").exists());
}

#[test]
fn build_from_an_iterator_of_documents() {
    let tok = fixture_tok("roberta");
    let docs: Vec<String> = std::fs::read_to_string(data("multi30k/val.en"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let r = TokenShards::build_from_texts(&tok, docs.clone(), &out, &small_opts()).unwrap();
    assert_eq!(r.manifest.num_documents, docs.len() as u64);
    let (want, _) = reference_ids(&tok, &[data("multi30k/val.en")]);
    let shards = TokenShards::open(&out, &tok).unwrap();
    let mut got = vec![0; want.len()];
    shards.read_tokens(0, &mut got).unwrap();
    assert_eq!(got, want);
    assert_eq!(Dtype::for_vocab(65_536), Dtype::U16);
    assert_eq!(Dtype::for_vocab(65_537), Dtype::U32);
}

#[test]
fn cli_train_tokenizer_then_tokenize() {
    let dir = tempfile::tempdir().unwrap();
    let tok_dir = dir.path().join("tok");
    let summary = run_from([
        "massivetext",
        "train-tokenizer",
        "--kind",
        "wordpiece",
        "--vocab-size",
        "1200",
        "--out",
        tok_dir.to_str().unwrap(),
        data("multi30k/val.en").to_str().unwrap(),
    ])
    .unwrap();
    assert!(summary.contains("vocab size 1200"), "{summary}");
    let out = dir.path().join("shards");
    let summary = run_from([
        "massivetext",
        "tokenize",
        "--tokenizer",
        tok_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--shard-tokens=10000",
        data("multi30k/test_2016_flickr.en").to_str().unwrap(),
    ])
    .unwrap();
    assert!(summary.contains("1000 documents"), "{summary}");
    assert!(
        summary.contains("MB/s") && summary.contains("peak memory"),
        "{summary}"
    );
    let tok = Tokenizer::from_pretrained(&tok_dir).unwrap();
    assert_eq!(TokenShards::open(&out, &tok).unwrap().num_documents(), 1000);

    // The parse errors below are clap's now: the missing flag, the possible values, our
    // value parser's message.
    let err = run_from(["massivetext", "tokenize", "--out", "x", "f"]).unwrap_err();
    assert!(err.to_string().contains("--tokenizer"), "{err}");
    let err = run_from(["massivetext", "train-tokenizer", "--kind", "bpx"]).unwrap_err();
    assert!(err.to_string().contains("bpe, wordpiece, unigram"), "{err}");
    let err = run_from([
        "massivetext",
        "train-tokenizer",
        "--kind",
        "bpe",
        "--vocab-size",
        "lots",
    ])
    .unwrap_err();
    assert!(err.to_string().contains("not a valid number"), "{err}");
    let err = run_from([
        "massivetext",
        "tokenize",
        "--tokenizer",
        tok_dir.to_str().unwrap(),
        "--out",
        "x",
        "--shard-tokens",
        "0",
        "f",
    ])
    .unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn bulk_encoding_equals_encode_plain_on_tricky_text() {
    // Shards use a memoised (and, for byte-level BPE, alignment-free) path; it must give the
    // library's ids exactly: unicode, emoji, whitespace runs, contractions, special tokens.
    let mut docs: Vec<String> = [
        "Ünïcödé café naïve — “quotes” 日本語 😀",
        "a <unk> b <s> c </s> d <mask> e [MASK] f [CLS] <|endoftext|> g",
        "tabs\tand  double  spaces   then end   ",
        " leading space, they're we'll I'd 123 4.5e6 $%^&*",
        "\u{00a0}nbsp\u{2009}thin\u{3000}ideographic",
        "   ",
        "x<|endoftext|>y<|endoftext|>",
        "a  \n b\n\nword \t y  \n",
        "\t\tx \u{85}\u{85}y\u{2028}z  \u{3000}w",
        "'S 'll'd'RE ''s don't",
        "٣٤ ² ½ Ⅻ ǅ ʰ ゙ ︎ \u{200b}x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    docs.extend(
        std::fs::read_to_string(data("wikitext-2/test.txt"))
            .unwrap()
            .lines()
            .take(500)
            .map(str::to_string),
    );
    for name in ["gpt2", "roberta", "bert"] {
        let tok = fixture_tok(name);
        let eos = tok.document_separator_id().unwrap();
        let mut want = Vec::new();
        for d in docs.iter().filter(|d| !d.is_empty()) {
            want.extend(tok.encode_plain(d).unwrap());
            want.push(eos);
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s");
        TokenShards::build_from_texts(&tok, docs.clone(), &out, &small_opts()).unwrap();
        let shards = TokenShards::open(&out, &tok).unwrap();
        let mut got = vec![0; shards.num_tokens() as usize];
        shards.read_tokens(0, &mut got).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn bulk_encoding_equals_encode_plain_on_random_ascii() {
    // The ASCII splitter must agree with the library's regex on every arrangement of spaces,
    // contractions, punctuation and digits.
    use rand::{Rng, SeedableRng};
    let alphabet: Vec<char> = " \t\n\r\u{b}\u{c}'''sStTmdlLrev.,!?-09aZ_~\x01\x1f"
        .chars()
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let docs: Vec<String> = (0..3000)
        .map(|_| {
            let len = rng.random_range(1..40);
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        })
        .collect();
    for name in ["gpt2", "roberta"] {
        let tok = fixture_tok(name);
        let eos = tok.document_separator_id().unwrap();
        let mut want = Vec::new();
        for d in &docs {
            want.extend(tok.encode_plain(d).unwrap());
            want.push(eos);
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s");
        TokenShards::build_from_texts(&tok, docs.clone(), &out, &small_opts()).unwrap();
        let shards = TokenShards::open(&out, &tok).unwrap();
        let mut got = vec![0; shards.num_tokens() as usize];
        shards.read_tokens(0, &mut got).unwrap();
        assert_eq!(got, want, "{name}");
    }
}
