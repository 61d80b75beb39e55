#!/usr/bin/env bash
# Builds the fuzz targets and runs each one for a short time (FUZZ_SECONDS, default
# 30) from the committed corpus. Exits non-zero if any target finds a crash or an
# invariant violation; the failing input is printed in hex and saved under
# fuzz/artifacts/TARGET/.
#
#   FUZZ_SECONDS=30          seconds per target
#   FUZZ_TARGETS="a b"       only these targets (default: all of them)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler (the
# libFuzzer runtime is built from source). Runs on stable Rust: RUSTC_BOOTSTRAP=1
# unlocks the -Z flags cargo fuzz passes (sanitizer, coverage instrumentation).
# New inputs go to a temporary directory: the committed corpus is not modified.
set -euo pipefail

cd "$(dirname "$0")"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
ALL_TARGETS="handshake_request handshake_response frame_decode utf8 session_server session_client ffi_session inflate proxy_header"
FUZZ_TARGETS="${FUZZ_TARGETS:-$ALL_TARGETS}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed; install it with: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

start=$(date +%s)
echo "fuzz: $(cargo fuzz --version), $(rustc --version)"
echo "fuzz: building all targets (release, debug assertions, AddressSanitizer)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! cargo fuzz build >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log" >&2
    echo "fuzz: the build failed" >&2
    exit 1
fi
tail -n 1 "$work/build.log"
built=$(date +%s)
echo "fuzz: build took $((built - start)) s"
passed=0
failed=0
failed_names=""
for target in $FUZZ_TARGETS; do
    if [ ! -d "corpus/$target" ]; then
        echo "fuzz: no corpus/$target: unknown target?" >&2
        exit 1
    fi
    mkdir -p "$work/$target" "$work/$target-artifacts"
    seeds=$(find "corpus/$target" -type f | wc -l)
    echo "fuzz: running $target for ${FUZZ_SECONDS} s from $seeds corpus files"
    t0=$(date +%s)
    status=0
    # A hung input is a failure too: -timeout per input, and a hard limit on the run.
    timeout --kill-after=10 $((FUZZ_SECONDS + 120)) \
        cargo fuzz run "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/$target-artifacts/" -print_final_stats=1 \
        >"$work/$target.log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$' || true)
    cov=$(grep -Eo 'cov: [0-9]+' "$work/$target.log" | tail -n 1 || true)
    if [ "$status" -eq 0 ]; then
        passed=$((passed + 1))
        echo "fuzz: $target ok: ${runs:-?} runs, ${cov:-cov: ?}, $(find "$work/$target" -type f | wc -l) new inputs, $(($(date +%s) - t0)) s"
    else
        failed=$((failed + 1))
        failed_names="$failed_names $target"
        echo "fuzz: $target FAILED (exit $status) after $(($(date +%s) - t0)) s; its log (panic message, then the end):" >&2
        grep -E -A8 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer' "$work/$target.log" | head -n 40 >&2 || true
        echo "..." >&2
        tail -n 25 "$work/$target.log" >&2
        mkdir -p "artifacts/$target"
        for f in "$work/$target-artifacts"/*; do
            [ -f "$f" ] || continue
            cp "$f" "artifacts/$target/"
            echo "fuzz: saved artifacts/$target/$(basename "$f") ($(wc -c <"$f") bytes), hex:" >&2
            od -An -v -tx1 "$f" | tr -d ' \n' | head -c 8000 >&2 || true
            echo >&2
        done
    fi
done

echo "fuzz: total $(($(date +%s) - start)) s"
echo "fuzz: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
    echo "fuzz: failing targets:$failed_names (reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET artifacts/TARGET/FILE)" >&2
    exit 1
fi
