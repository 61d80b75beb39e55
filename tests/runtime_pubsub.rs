//! Publish/subscribe from C (`tests/c/pubsub_test.c`, plain and with ASan +
//! UBSan): 10,000 subscribers each receive every published message exactly
//! once, byte-exact, in order; a slow subscriber is skipped (and never gets a
//! message twice) or closed with 1008 by its topic's policy, while the others
//! get everything, and every byte charged to the memory budget comes back;
//! two reactors on two threads share their topics, with one publisher on a
//! reactor's thread and one on another thread.

use std::process::Command;
use std::time::Duration;
use wsconn_testkit::{build_test_programs, run, sanitizer_env, sanitizer_report, test_program};

const TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `pubsub_test ARGS` (or its ASan build), requiring exit 0, "N passed,
/// 0 failed" and no sanitizer report; returns its output.
fn pubsub(asan: bool, args: &[&str]) -> String {
    let name = if asan { "pubsub_test_asan" } else { "pubsub_test" };
    build_test_programs(&["pubsub_test", "pubsub_test_asan"]);
    let mut cmd = Command::new(test_program(name));
    cmd.args(args);
    sanitizer_env(&mut cmd);
    let done = run(cmd, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let report = done.report();
    assert!(done.status.success(), "{name} {args:?} failed: {report}");
    if let Some(line) = sanitizer_report(&done.stderr) {
        panic!("{name}: sanitizer report: {line}\n{report}");
    }
    assert!(
        done.stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "{name} {args:?}: {report}"
    );
    println!("{name} {args:?}:\n{}", done.stdout);
    done.stdout
}

#[test]
fn publish_reaches_10000_subscribers_once_each() {
    let out = pubsub(false, &["fanout", "10000"]);
    assert!(out.contains("clients n=10000 exact=10000 errors=0 complete=1"), "{out}");
}

#[test]
fn publish_reaches_1000_subscribers_once_each_asan() {
    let out = pubsub(true, &["fanout", "1000"]);
    assert!(out.contains("clients n=1000 exact=1000 errors=0 complete=1"), "{out}");
}

#[test]
fn slow_subscribers_are_skipped_or_closed() {
    pubsub(false, &["slow"]);
}

#[test]
fn slow_subscribers_are_skipped_or_closed_asan() {
    pubsub(true, &["slow"]);
}

#[test]
fn publish_across_reactor_threads() {
    pubsub(false, &["threads"]);
}

#[test]
fn publish_across_reactor_threads_asan() {
    pubsub(true, &["threads"]);
}
