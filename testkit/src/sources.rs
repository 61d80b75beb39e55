//! Reading the crate's own sources, for the tests that check rules in them
//! (`tests/layers.rs`, `tests/header_is_current.rs`).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively, sorted. Panics if there is none:
/// a rule checked on no file would pass for nothing.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                collect(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    collect(dir, &mut files);
    assert!(!files.is_empty(), "no .rs files under {}", dir.display());
    files.sort();
    files
}
