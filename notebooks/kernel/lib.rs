//! massivetext for notebooks: everything of the crate, from one dynamic library shared by all
//! cells (see Cargo.toml for why).
pub use massivetext::*;
