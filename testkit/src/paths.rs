//! Where things are: the repository, and programs on PATH.

use std::path::{Path, PathBuf};

/// The repository root (the parent of this crate's directory).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ lies in the repository")
}

/// The first file called `name` in a directory of PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
