//! The `massivetext` command-line program: parse, run, print; errors go to stderr with exit 1.
use clap::Parser;
use massivetext::cli::{Cli, run};
use std::io::Write;

fn main() {
    // First, while this is the process's only thread (see the module's docs).
    massivetext::threads::init();
    match run(Cli::parse()) {
        Ok(out) => {
            if !out.is_empty() {
                // A closed pipe (`massivetext ... | head`) is not an error.
                match writeln!(std::io::stdout().lock(), "{out}") {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                        eprintln!("error: cannot write the output: {e}");
                        std::process::exit(1);
                    }
                    _ => {}
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
