//! Rewrites the golden folders that our own code writes and the Python scripts then read:
//! tests/fixtures/arrow/ours_{dataset,dict} (`save_to_disk`) and
//! tests/fixtures/api/saved/{bert,gpt2,roberta} (`Tokenizer::save_pretrained`).
//!
//!     cargo run --example write_fixtures
//!     "$(.ci/reference)" tests/fixtures/make_api.py     # AutoTokenizer's ids on the new folders
//!
//! The tests compare what the code writes now with these folders and never rewrite them: run
//! this only when a change of the written bytes is intended, and commit the result.
#[path = "../tests/common/written.rs"]
mod written;

fn main() -> massivetext::Result<()> {
    let arrow = written::fixtures().join("arrow");
    for name in ["ours_dataset", "ours_dict"] {
        let _ = std::fs::remove_dir_all(arrow.join(name));
    }
    written::our_dataset().save_to_disk(arrow.join("ours_dataset"))?;
    written::our_dict().save_to_disk(arrow.join("ours_dict"))?;
    println!("wrote {}/ours_dataset and ours_dict", arrow.display());
    let saved = written::fixtures().join("api/saved");
    for (name, tok) in written::round_trip_tokenizers() {
        tok.save_pretrained(saved.join(name))?;
    }
    println!("wrote {}/{{bert,gpt2,roberta}}", saved.display());
    Ok(())
}
