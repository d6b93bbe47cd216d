//! A tiny parallel corpus in Multi30k's layout (`{split}.{lang}`) for the tests that run
//! `translate-train` (tests/runs_safety.rs, tests/writer_faults.rs): "German" is each English
//! sentence upper-cased.
use std::path::Path;

/// `train` training pairs, 10 validation and 12 test pairs in `dir`.
pub fn toy_multi30k(dir: &Path, train: usize) {
    let words = [
        "a", "man", "woman", "dog", "runs", "sits", "on", "the", "grass", "street", "red", "blue",
    ];
    let sentence = |i: usize| -> String {
        (0..4 + i % 5)
            .map(|k| words[(i * 7 + k * 13 + k * k) % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    std::fs::create_dir_all(dir).unwrap();
    for (split, range) in [
        ("train", 0..train),
        ("val", 1000..1010),
        ("test_2016_flickr", 2000..2012),
    ] {
        let en: Vec<String> = range.map(sentence).collect();
        let de: Vec<String> = en.iter().map(|s| s.to_uppercase()).collect();
        std::fs::write(dir.join(format!("{split}.en")), en.join("\n") + "\n").unwrap();
        std::fs::write(dir.join(format!("{split}.de")), de.join("\n") + "\n").unwrap();
    }
}
