#!/usr/bin/env bash
# Runs wsconn's code under Miri (undefined-behaviour checks for the `unsafe` code):
#  1. the library's unit tests (mask, frame, utf8, sender, handshake, ffi::result, ...);
#  2. this fuzz crate's tests: the C API session (src/ffi/session.rs, config.rs)
#     driven through its extern "C" functions with callbacks that send and free
#     the session, on the ffi_session seeds; and a sample of every committed
#     corpus through every check.
# The reactor, connections and acceptor (mio, sockets, threads) are not run here.
#
# Needs the nightly toolchain with the miri and rust-src components:
#   rustup toolchain install nightly --component miri,rust-src
#   (or: rustup component add --toolchain nightly miri rust-src)
#   cargo +nightly miri setup
# MIRI_ALL=1 replays every corpus file instead of a sample (slow: hours).
set -euo pipefail

cd "$(dirname "$0")"
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: 'cargo +nightly miri' is not available; install it with:" >&2
    echo "  rustup component add --toolchain nightly miri rust-src && cargo +nightly miri setup" >&2
    exit 1
fi
cargo +nightly miri setup >/dev/null
echo "miri: $(cargo +nightly miri --version)"
start=$(date +%s)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

# The library's unit tests. Its handshake tests leak a Config on purpose (Box::leak
# to borrow it for 'static), hence -Zmiri-ignore-leaks there.
# (-p wsconn: the workspace's other package, clib/, has no code of its own.)
(cd .. && MIRIFLAGS="-Zmiri-ignore-leaks" cargo +nightly miri test -p wsconn --lib)
echo "miri: library unit tests done after $(($(date +%s) - start)) s"

# The fuzz crate's tests read the corpus from disk: isolation off.
if [ -n "${MIRI_ALL:-}" ]; then export WSCONN_FUZZ_MIRI_ALL=1; fi
MIRIFLAGS="-Zmiri-disable-isolation" cargo +nightly miri test --no-default-features
echo "miri: all done after $(($(date +%s) - start)) s"
