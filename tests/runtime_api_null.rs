//! `tests/c/api_null.c`: every function of `include/wsconn.h` called from C
//! with NULL pointers and invalid arguments, plus the sans-IO behaviours
//! (free inside a callback, re-entrant feed, a FULL send queues nothing);
//! run plain and with ASan + UBSan (leaks are errors). Also: the header
//! compiles as C++11 and links (`tests/c/header_cpp.cpp`).

use std::process::Command;
use std::time::Duration;
use wsconn_testkit::{build_test_programs, root, run, test_program};

const TIMEOUT: Duration = Duration::from_secs(120);

fn build() {
    build_test_programs(&["api_null", "api_null_asan", "header_cpp"]);
}

/// Runs tests/c/<name>, requiring exit 0, "N passed, 0 failed" with N >= 300
/// and no sanitizer report.
fn run_checks(name: &str) {
    build();
    wsconn_testkit::run_checks(name, &[], 300, TIMEOUT);
}

#[test]
fn api_null() {
    run_checks("api_null");
}

#[test]
fn api_null_asan() {
    run_checks("api_null_asan");
}

/// The names of the functions the header declares (not the callback typedefs).
fn header_functions() -> Vec<String> {
    let header = std::fs::read_to_string(root().join("include").join("wsconn.h")).expect("read include/wsconn.h");
    let mut names = Vec::new();
    for line in header.lines() {
        // Declarations start at column 0 with their return type; comments,
        // preprocessor lines, typedefs and struct members do not.
        let first = line.chars().next();
        if !matches!(first, Some(c) if c.is_ascii_alphabetic()) || line.starts_with("typedef") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("wsconn_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let prefix_ok = i == 0 || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            if prefix_ok && tail[end..].starts_with('(') && !rest[..i].ends_with("(*") {
                names.push(tail[..end].to_owned());
            }
            rest = &tail[end..];
        }
    }
    names.sort();
    names.dedup();
    names
}

/// api_null.c must call every function the header declares, so that a new
/// function cannot be added without its NULL/invalid-argument checks.
#[test]
fn api_null_calls_every_header_function() {
    let functions = header_functions();
    assert!(
        functions.len() >= 25,
        "found only {} functions in include/wsconn.h: {functions:?}",
        functions.len()
    );
    for f in [
        "wsconn_session_feed",
        "wsconn_config_new",
        "wsconn_strerror",
        "wsconn_version",
    ] {
        assert!(
            functions.iter().any(|n| n == f),
            "{f} not found in the header: {functions:?}"
        );
    }
    let source = std::fs::read_to_string(root().join("tests").join("c").join("api_null.c")).expect("read api_null.c");
    let missing: Vec<&String> = functions
        .iter()
        .filter(|f| !source.contains(&format!("{f}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "tests/c/api_null.c does not call {} header function(s): {missing:?}",
        missing.len()
    );
}

/// The header compiles as C++11 with -Wall -Wextra -Werror and links
/// against the static library.
#[test]
fn header_compiles_as_cpp() {
    build();
    let done = run(Command::new(test_program("header_cpp")), TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(done.status.success(), "header_cpp failed: {}", done.report());
    assert!(
        done.stdout.contains("from C++"),
        "header_cpp printed nothing: {}",
        done.report()
    );
}
