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

/// Runs the built test program `tests/c/NAME ARGS` (an `_asan` one with the
/// sanitizers' settings) and requires exit 0, no sanitizer report and a last
/// summary line "N passed, 0 failed" with N at least `min_passed`. Returns
/// its standard output.
pub fn run_checks(name: &str, args: &[&str], min_passed: u32, timeout: std::time::Duration) -> String {
    let mut cmd = Command::new(test_program(name));
    cmd.args(args);
    crate::sanitizer_env(&mut cmd);
    let done = crate::run(cmd, timeout).unwrap_or_else(|e| panic!("{e}"));
    let report = done.report();
    assert!(done.status.success(), "{name} {args:?} failed: {report}");
    if let Some(line) = crate::sanitizer_report(&done.stderr) {
        panic!("{name}: sanitizer report: {line}\n{report}");
    }
    let summary = done
        .stdout
        .lines()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or_else(|| panic!("{name} printed no summary: {report}"));
    let words: Vec<&str> = summary.split_whitespace().collect();
    assert_eq!(words.len(), 4, "summary {summary:?}");
    let passed: u32 = words[0].parse().expect("passed count");
    let failed: u32 = words[2].parse().expect("failed count");
    assert_eq!(failed, 0, "{name}: {report}");
    assert!(passed >= min_passed, "{name} checked only {passed} things: {report}");
    println!("{name}: {summary}");
    done.stdout
}
