//! The `massivetext` command-line program.
use massivetext::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args[0] == "--help" {
        println!("usage: massivetext dataset-info FILE...");
        return;
    }
    match load_dataset("text", &args[1..]) {
        Ok(dd) => println!("train: {} rows", dd["train"].num_rows()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
