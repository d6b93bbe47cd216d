//! The corpora the tests read from `shared/data` beside the repository (CI lays `shared/` next
//! to its clone). A test whose corpus is not there fails and says where it looked.
use std::path::{Path, PathBuf};

pub fn data(rel: &str) -> PathBuf {
    let p = Path::new("../shared/data").join(rel);
    assert!(
        p.exists(),
        "{} is missing: the tests read their corpora from shared/data next to the repository \
         (the folder CI lays beside its clone)",
        p.display()
    );
    p
}
