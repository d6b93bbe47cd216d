//! `cargo run --release --example train_stories -- [--max-steps N] [--output-dir DIR] ...`:
//! the `massivetext train` job (see `massivetext::train::cli`).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match massivetext::train::cli::run_train_cli(&args) {
        Ok(s) => println!("{s}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
