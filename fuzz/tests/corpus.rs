//! Replays the committed corpus and the hand-made seeds through every check, on
//! stable Rust (`cargo test --no-default-features`) and under Miri. Under Miri
//! only a sample of each corpus runs (the interpreter is slow): set
//! `WSCONN_FUZZ_MIRI_ALL=1` for all of it.

use std::path::Path;

type Check = fn(&[u8]);

fn check_of(target: &str) -> Check {
    match target {
        "handshake_request" => wsconn_fuzz::handshake_request::check,
        "handshake_response" => wsconn_fuzz::handshake_response::check,
        "frame_decode" => wsconn_fuzz::frame_decode::check,
        "utf8" => wsconn_fuzz::utf8::check,
        "session_server" => wsconn_fuzz::session_server::check,
        "session_client" => wsconn_fuzz::session_client::check,
        "ffi_session" => wsconn_fuzz::ffi_session::check,
        "inflate" => wsconn_fuzz::inflate::check,
        "proxy_header" => wsconn_fuzz::proxy_header::check,
        _ => panic!("unknown target {target}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `check` on every input, reporting each one that panics by name and hex.
fn replay(target: &str, inputs: Vec<(String, Vec<u8>)>) {
    assert!(!inputs.is_empty(), "{target}: no inputs");
    let check = check_of(target);
    let mut failures = Vec::new();
    for (name, bytes) in &inputs {
        if std::panic::catch_unwind(|| check(bytes)).is_err() {
            failures.push(format!("{target}/{name}: {}", hex(bytes)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Under Miri, seeds larger than this are left out: the inflate target's
/// bomb and plain-message seeds take minutes there (the natively run tests
/// and the fuzzer run them all; the smaller seeds reach the same code).
const MIRI_MAX_SEED: usize = 4096;

#[test]
fn seeds_pass_every_check() {
    for target in wsconn_fuzz::seeds::TARGETS {
        let mut seeds = wsconn_fuzz::seeds::seeds(target);
        if cfg!(miri) {
            seeds.retain(|(_, bytes)| bytes.len() <= MIRI_MAX_SEED);
        }
        replay(target, seeds);
    }
}

#[test]
fn committed_seeds_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in wsconn_fuzz::seeds::TARGETS {
        for (name, bytes) in wsconn_fuzz::seeds::seeds(target) {
            let path = root.join(target).join(&name);
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run `cargo run --example make_seeds`)", path.display()));
            assert_eq!(
                committed,
                bytes,
                "{} is stale (run `cargo run --example make_seeds`)",
                path.display()
            );
        }
    }
}

#[test]
fn committed_corpus_passes_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let sample = cfg!(miri) && std::env::var_os("WSCONN_FUZZ_MIRI_ALL").is_none();
    for target in wsconn_fuzz::seeds::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.expect("directory entry").path();
                let name = path.file_name().expect("file name").to_string_lossy().into_owned();
                (name, std::fs::read(&path).expect("readable corpus file"))
            })
            .collect();
        inputs.sort();
        if sample {
            // Every 8th file, the smallest first, five per target: each path
            // is exercised, in minutes (the whole corpus runs natively).
            inputs.sort_by_key(|(_, b)| b.len());
            inputs = inputs.into_iter().step_by(8).take(5).collect();
        }
        replay(target, inputs);
    }
}
