//! Building the C programs with their Makefiles, once per test process.

use std::sync::Mutex;
use std::time::Duration;

use crate::paths::root;
use crate::process::run_ok;

/// `make -C DIR TARGETS...` (DIR relative to the repository), once per test
/// process for each directory and target list; a failure is remembered and
/// fails every caller. Builds are serialized: the tests of a file run in
/// parallel and must not link the same programs at the same time.
pub fn make_once(dir: &str, targets: &[&str]) {
    /// Each `make` run so far: its directory and targets, and its outcome.
    type Builds = Vec<(String, Result<(), String>)>;
    static DONE: Mutex<Builds> = Mutex::new(Vec::new());
    // Held during the build: one make at a time.
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{dir} {}", targets.join(" "));
    let result = match done.iter().find(|(k, _)| *k == key) {
        Some((_, r)) => r.clone(),
        None => {
            let mut make = std::process::Command::new("make");
            make.arg("-C").arg(root().join(dir)).args(targets);
            let r = run_ok(make, Duration::from_secs(900)).map(|_| ());
            done.push((key, r.clone()));
            r
        }
    };
    if let Err(e) = result {
        panic!("make -C {dir} {} failed: {e}", targets.join(" "));
    }
}

/// `make -C c-examples`: every example, linked against the .so and the .a.
pub fn build_examples() {
    make_once("c-examples", &[]);
}

/// `make -C c-examples asan`: the NAME_asan builds (ASan + UBSan).
pub fn build_asan_examples() {
    make_once("c-examples", &["asan"]);
}

/// `make -C tests/c TARGETS...` (e.g. `["timeout_server", "timeout_server_asan"]`).
/// The Makefile runs `cargo build --release` first.
pub fn build_test_programs(targets: &[&str]) {
    make_once("tests/c", targets);
}
