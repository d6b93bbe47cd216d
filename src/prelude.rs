//! Everything a notebook needs: `use massivetext::prelude::*;`.
pub use crate::data::{Dataset, DatasetDict, load_dataset};
pub use crate::{Error, Result};
