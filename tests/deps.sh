#!/usr/bin/env bash
# Installs what wsconn's tests (or one example) need and are missing, on Debian:
# packages with apt-get, Rust components with rustup, cargo tools with cargo.
# Idempotent, and quiet when everything is there. `make test` runs it first
# (`make deps`); `make run EXAMPLE=chat_server` runs it for hiredis only.
#
#   bash tests/deps.sh          everything `make test` needs
#   bash tests/deps.sh hiredis  only what c-examples/chat_server links with
#
# Packages need root: as root they are installed, otherwise through `sudo -n`
# when sudo needs no password. Failing both, it stops at once with the list
# of missing packages and the one command that installs them (exit 2).
# Non-interactive: works with CI=true and no stdin.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
set_name="${1:-test}"

packages=()
# need PACKAGE TEST...: PACKAGE is missing unless the test command succeeds.
need() {
    local package=$1
    shift
    "$@" >/dev/null 2>&1 || packages+=("$package")
}
has() { command -v "$1" || [ -x "/usr/sbin/$1" ]; }
file() { [ -s "$1" ]; }

hiredis() {
    need libhiredis-dev file /usr/include/hiredis/hiredis.h
}

venv_works() {
    local probe
    probe=$(mktemp -d)
    python3 -m venv "$probe/venv" >/dev/null 2>&1
    local ok=$?
    rm -rf "$probe"
    return $ok
}

all_packages() {
    need make has make
    need gcc has cc
    need libc6-dev file /usr/include/stdio.h
    need g++ has g++
    need pkg-config has pkg-config
    # wss:// clients verify against the system's trust store (tests/runtime_tls.rs).
    need ca-certificates file /etc/ssl/certs/ca-certificates.crt
    need openssl has openssl
    # Interop peers: Python websockets (in target/venv), Node's ws, nginx, Chromium.
    need python3 has python3
    need python3-venv venv_works
    need nodejs has node
    need npm has npm
    need nginx has nginx
    need chromium has chromium
    # tests/install.rs builds a program against the installed library with both.
    need cmake has cmake
    # chat_server links hiredis; tests/chat_relay.rs runs redis-server.
    hiredis
    need redis-server has redis-server
    # PROXY protocol in front of a server; HTTP and SOCKS5 proxies for clients.
    need haproxy has haproxy
    need tinyproxy-bin has tinyproxy
    need microsocks has microsocks
    # Metrics: a real scrape and `promtool check metrics`.
    need prometheus has prometheus
    need prometheus has promtool
    # Operations: the socket hand-over through systemd's own tool, and the
    # packaged units checked with systemd-analyze.
    need systemd has systemd-socket-activate
    need systemd has systemd-analyze
}

case "$set_name" in
    test) all_packages ;;
    hiredis) hiredis ;;
    *)
        echo "tests/deps.sh: unknown set '$set_name' (test, hiredis)" >&2
        exit 64
        ;;
esac

# Each package once, in order.
if [ "${#packages[@]}" -gt 0 ]; then
    mapfile -t packages < <(printf '%s\n' "${packages[@]}" | awk '!seen[$0]++')
fi

if [ "${#packages[@]}" -gt 0 ]; then
    command=(apt-get install -y -q --no-install-recommends "${packages[@]}")
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "tests/deps.sh: missing Debian packages: ${packages[*]}" >&2
        echo "tests/deps.sh: this user cannot install them (not root, no password-less sudo); run:" >&2
        echo "  sudo apt-get update && sudo ${command[*]}" >&2
        exit 2
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "tests/deps.sh: missing: ${packages[*]}; no apt-get here: install them with this system's package manager" >&2
        exit 2
    fi
    echo "tests/deps.sh: installing ${packages[*]}"
    log=$(mktemp)
    if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" "${command[@]}"; } </dev/null >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "tests/deps.sh: apt-get failed (above)" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    # A package's service may start on install; the tests start their own on
    # other ports, so none is left running.
    for service in nginx redis-server haproxy tinyproxy prometheus; do
        "${sudo[@]}" service "$service" stop >/dev/null 2>&1 || true
    done
fi

[ "$set_name" = test ] || exit 0

# Rust: components for fmt and clippy, cargo-fuzz (runs on stable with
# RUSTC_BOOTSTRAP=1) and nightly Miri. None needs root.
components=()
cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
if [ "${#components[@]}" -gt 0 ]; then
    echo "tests/deps.sh: rustup component add ${components[*]}"
    rustup component add "${components[@]}" </dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "tests/deps.sh: cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked -q </dev/null
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "tests/deps.sh: installing nightly Miri"
    rustup toolchain install nightly --profile minimal --component miri,rust-src </dev/null ||
        rustup component add --toolchain nightly miri rust-src </dev/null
fi
