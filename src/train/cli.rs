//! `massivetext train`: trains a small character-level GPT on the embedded corpus.
/// Runs the `train` command with its arguments (after the subcommand name).
pub fn run_train_cli(_args: &[String]) -> crate::Result<String> {
    Err(crate::Error::InvalidArgument("not yet".into()))
}
