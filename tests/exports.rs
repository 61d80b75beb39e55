//! The shared library exports exactly the functions the header declares:
//! `nm -D --defined-only` on target/release/libwsconn.so lists the `wsconn_*`
//! functions of include/wsconn.h and nothing else (Rust's own symbols stay
//! hidden), and libwsconn.a defines the same `wsconn_*` functions. An export
//! that appears or disappears without the header changing fails here.
//!
//! Nothing here skips: a missing `nm` (binutils) fails the test.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use wsconn_testkit::{declared_functions, root, run_ok};

/// `cargo build --release` (with the features `make test` builds with,
/// `CARGO_FEATURES`), so that the libraries match the sources.
fn build_release() {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.current_dir(root()).args(["build", "--release"]);
    if let Some(features) = std::env::var("CARGO_FEATURES").ok().filter(|f| !f.is_empty()) {
        cargo.args(["--features", &features]);
    }
    if let Err(e) = run_ok(cargo, Duration::from_secs(900)) {
        panic!("cargo build --release failed: {e}");
    }
}

/// `nm ARGS… LIBRARY`'s output (library under target/release).
fn nm(args: &[&str], library: &str) -> String {
    let mut cmd = Command::new("nm");
    cmd.args(args).arg(root().join("target").join("release").join(library));
    match run_ok(cmd, Duration::from_secs(60)) {
        Ok(done) => done.stdout,
        Err(e) => panic!("nm (binutils) failed: {e}"),
    }
}

/// The names of `nm`'s symbol lines ("ADDRESS TYPE NAME") whose type is in `types`.
fn symbols(listing: &str, types: &[&str]) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            [_, kind, name] if types.contains(&kind) => Some(name.to_string()),
            _ => None,
        })
        .collect()
}

/// Fails listing both differences between what the library has and the header declares.
fn assert_same(library: &str, exported: &BTreeSet<String>, declared: &BTreeSet<String>) {
    let extra: Vec<_> = exported.difference(declared).collect();
    let missing: Vec<_> = declared.difference(exported).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{library} and include/wsconn.h disagree:\n  exported, not declared: {extra:?}\n  \
         declared, not exported: {missing:?}"
    );
}

#[test]
fn shared_library_exports_exactly_the_header_s_functions() {
    build_release();
    let declared = declared_functions();
    assert!(
        declared.len() >= 72,
        "only {} functions read from the header",
        declared.len()
    );
    let exported = symbols(
        &nm(&["-D", "--defined-only"], "libwsconn.so"),
        &["T", "W", "D", "B", "R", "V", "i"],
    );
    let foreign: Vec<_> = exported.iter().filter(|s| !s.starts_with("wsconn_")).collect();
    assert!(
        foreign.is_empty(),
        "libwsconn.so exports symbols other than wsconn_*: {foreign:?}"
    );
    assert_same("libwsconn.so", &exported, &declared);
}

#[test]
fn static_library_defines_the_header_s_functions() {
    build_release();
    let defined = symbols(&nm(&["-g", "--defined-only"], "libwsconn.a"), &["T"]);
    let ours = defined.into_iter().filter(|s| s.starts_with("wsconn_")).collect();
    assert_same("libwsconn.a", &ours, &declared_functions());
}
