//! The `massivetext` command-line program: parse, run, print; errors go to stderr with exit 1.
use clap::Parser;
use massivetext::cli::{Cli, run};

fn main() {
    match run(Cli::parse()) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
