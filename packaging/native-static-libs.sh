#!/bin/sh
# Prints the system libraries that a program linking libwsconn.a needs, as
# rustc reports them for this toolchain and these dependencies (for example
# "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"): wsconn.pc's Libs.private and
# the link libraries of the CMake target wsconn::wsconn_static.
#
# rustc prints the list only while it links a static library, and asking the
# release build would make cargo rebuild it (extra rustc flags change its
# fingerprint). So a debug build of the static library in a target directory
# of its own is asked instead: the list depends on the crates and the target,
# not on the profile. Cargo replays the note while that build is fresh.
set -eu
cd "$(dirname "$0")/.."

log=$(CARGO_PROFILE_DEV_DEBUG=0 "${CARGO:-cargo}" rustc -p wsconn-clib --lib \
    --crate-type staticlib --target-dir target/native-static-libs \
    -- --print native-static-libs 2>&1) || {
    printf '%s\n' "$log" >&2
    exit 1
}
libs=$(printf '%s\n' "$log" | sed -n 's/^note: native-static-libs: //p' | tail -n 1)
if [ -z "$libs" ]; then
    printf '%s\n%s\n' "$0: rustc printed no native-static-libs note:" "$log" >&2
    exit 1
fi
printf '%s\n' "$libs"
