//! The C programs the tests run: the examples of `c-examples/` and the test
//! programs of `tests/c/` (built by [`crate::make_once`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::root;

/// `c-examples/NAME`.
pub fn example(name: &str) -> PathBuf {
    root().join("c-examples").join(name)
}

/// A command running `binary` (a C example) with the library it was linked
/// against. `cargo test` puts `target/debug` (and its deps) on
/// LD_LIBRARY_PATH, which takes precedence over the examples' runpath to
/// `target/release`: the shared builds would load the debug `libwsconn.so`
/// of the test build instead, possibly older than the release one `make`
/// linked them against.
pub fn example_command(binary: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// `tests/c/NAME`, which must have been built.
pub fn test_program(name: &str) -> PathBuf {
    let path = root().join("tests").join("c").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}
