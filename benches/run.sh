#!/usr/bin/env bash
# benches/run.sh: wsconn's benchmark suite (`make bench` runs it).
#
#   benches/run.sh            full run (~10 minutes on 2 cores, builds not counted)
#   benches/run.sh --quick    smoke run (~1.5 minutes): 1 repetition, 1 s runs,
#                             1,000 idle connections, short codec benchmarks
# Options:
#   --reps N          repetitions of each server measurement (default 3; median kept)
#   --seconds T       measured seconds of each echo / connect run (default 3)
#   --idle-conns N    connections of the idle workload (default 10000)
#   --binary          echo binary messages (default: text, UTF-8 validated by every server)
#   --servers LIST    comma-separated subset of: echo_server,echo_server_uring (the same
#                     binary with WSCONN_IO=uring: the io_uring transport),echo_server_busy (with
#                     --busy-poll 50: 50 us of polling before the thread sleeps),echo_server_t2,epoll_echo,
#                     tokio_tungstenite,fastwebsockets,libwebsockets,uwebsockets (native, C++),
#                     uwebsockets_js, echo_server_base (with --baseline)
#   --baseline REV    also measure wsconn at REV (a commit, tag or branch), built in a
#                     worktree under benches/target/baseline: rows echo_server_base,
#                     echo_server_z_base and echo_server_tls_base, each compared with
#                     the row of this checkout in the same run (the A/B before a merge)
#   --pin MODE        split (default: server on CPU 0, generator on CPU 1), same (both
#                     on CPU 0) or none (no taskset)
#   --no-codec        skip the criterion codec benchmarks and the allocation count
#   --no-build        use what is built
#   --no-deflate      skip the permessage-deflate rows
#   --deflate-only    only the permessage-deflate rows (no codec benchmarks either)
#   --no-tls          skip the TLS (wss://) rows
#   --tls-only        only the TLS rows (no codec benchmarks either)
#
# What it does: builds the library and C examples (make -C c-examples), the
# benchmark package (cargo build --release in benches/: wsbench, the Rust peers,
# alloc_count, the codec benchmark), the libwebsockets peer (benches/peers/lws_echo.c,
# Debian's libwebsockets-dev), the uWebSockets.js peer (benches/peers/uws, npm), the
# native uWebSockets peer (benches/peers/uws_native: its C++ sources from the crates
# registry, compiled with g++);
# missing Debian packages are installed first (apt-get, sudo when not root); runs the codec benchmarks (criterion) and the allocation
# count; then runs every server in turn, pinned to CPU 0, with the load
# generator (wsbench) pinned to CPU 1, on six workloads: 1x1x32 B (latency),
# 100x16x32 B, 100x4x16 KiB, 10x1x1 MiB (connections x messages in flight x
# size), connect rate, idle connections. Each measurement is repeated and the
# median reported. Servers run round-robin within each repetition, so that the
# machine's slow moments spread over all of them.
# Then the permessage-deflate rows (RFC 7692; wsbench --deflate, JSON-like text):
# 100x16x1KiB, 100x4x16KiB and idle connections after one compressed 1 KiB echo
# each (measured 1.5 s after the echo: idle, so past wsconn's default 1 s idle
# trim of dedicated compression streams), for echo_server -z (shared), echo_server --deflate-dedicated 15 and 9,
# and uWebSockets.js with SHARED_COMPRESSOR, DEDICATED_COMPRESSOR (15-bit
# windows) and DEDICATED_COMPRESSOR_3KB (9 bits); ratios against the uWS row
# of the same mode.
# Then the TLS rows (wss://; wsbench --tls CA, rustls, a full handshake per
# connection): 100x16x32B, 100x4x16KiB, handshake rate (16 clients looping over
# TCP connect, TLS handshake, upgrade, close) and idle TLS connections, for
# echo_server --tls-cert/--tls-key (rustls) and the libwebsockets peer with the
# same certificate (OpenSSL); ratios echo_server / libwebsockets. The ECDSA
# P-256 test CA and server certificate (127.0.0.1, localhost) are made with
# the openssl CLI into benches/target/tls (benches/tls_certs.sh).
#
# Output: one table on stdout (each server's figures and wsconn's echo_server
# ratio to it), benches/results/latest.json (everything, raw runs included) and
# benches/results/latest.png (a chart; matplotlib in a venv, target/bench-venv);
# --deflate-only / --tls-only write latest-deflate.* / latest-tls.* instead
# (latest-deflate-tls.* with both sections and no plain rows).
# Only 127.0.0.1 is used; every server and generator run has a time limit.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
RESULTS="$HERE/results"
TARGET="$HERE/target"
VENV="$ROOT/target/bench-venv"

QUICK=0 REPS=3 SECS=3 IDLE_CONNS=10000 BINARY=0 CODEC=1 BUILD=1 SERVERS="" PIN=split DEFLATE=1 PLAIN=1 TLS=1
BASELINE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --reps) REPS=$2; shift ;;
        --seconds) SECS=$2; shift ;;
        --idle-conns) IDLE_CONNS=$2; shift ;;
        --binary) BINARY=1 ;;
        --servers) SERVERS=$2; shift ;;
        --baseline) BASELINE=$2; shift ;;
        --pin) PIN=$2; shift ;;
        --no-codec) CODEC=0 ;;
        --no-build) BUILD=0 ;;
        --no-deflate) DEFLATE=0 ;;
        --deflate-only) PLAIN=0 CODEC=0 TLS=0 ;;
        --no-tls) TLS=0 ;;
        --tls-only) PLAIN=0 CODEC=0 DEFLATE=0 ;;
        -h|--help) sed -n '2,53p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    REPS=1 SECS=1 IDLE_CONNS=1000
fi
if [ "$DEFLATE" = 0 ] && [ "$PLAIN" = 0 ] && [ "$TLS" = 0 ]; then
    echo "run.sh: these options leave nothing to run (--deflate-only, --tls-only, --no-deflate, --no-tls)" >&2
    exit 2
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is needed"

# --- Debian packages the peers and the report need -----------------------------
# A fresh Debian machine has Rust, gcc and Python; the rest is installed here.
if [ "$BUILD" = 1 ]; then
    packages=()
    command -v taskset >/dev/null || packages+=(util-linux)
    [ "$TLS" = 0 ] || command -v openssl >/dev/null || packages+=(openssl)
    command -v pkg-config >/dev/null || packages+=(pkg-config)
    pkg-config --exists libwebsockets 2>/dev/null || packages+=(libwebsockets-dev)
    command -v node >/dev/null || packages+=(nodejs)
    command -v npm >/dev/null || packages+=(npm)
    command -v g++ >/dev/null || packages+=(g++)
    probe=$(mktemp -d)
    python3 -m venv "$probe/venv" >/dev/null 2>&1 || packages+=(python3-venv)
    rm -rf "$probe"
    if [ ${#packages[@]} -gt 0 ]; then
        SUDO=
        [ "$(id -u)" -ne 0 ] && SUDO=sudo
        log "installing Debian packages: ${packages[*]}"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -q </dev/null >&2 &&
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
                "${packages[@]}" </dev/null >&2 ||
            die "could not install ${packages[*]} (apt-get install -y ${packages[*]})"
    fi
fi
command -v python3 >/dev/null || die "python3 is needed (apt-get install python3 python3-venv)"
command -v taskset >/dev/null || die "taskset is needed (apt-get install util-linux)"

# --- build -------------------------------------------------------------------
LWS_BIN="$TARGET/peers/lws_echo"
UWS_DIR="$TARGET/peers/uws"
UWS_NATIVE="$TARGET/peers/uws_native/uws_native_echo"
BASE_DIR=""
[ -z "$BASELINE" ] || BASE_DIR="$TARGET/baseline/$(printf '%s' "$BASELINE" | tr -c 'A-Za-z0-9._-' '_')"
if [ "$BUILD" = 1 ]; then
    log "building the library and the C examples"
    # With the io_uring transport built in (echo_server_uring selects it
    # with WSCONN_IO; the other rows run on epoll, the default).
    CARGO_FEATURES=${CARGO_FEATURES:-io-uring,wsconn-clib/io-uring} \
        make -s -C "$ROOT/c-examples" echo_server epoll_echo >&2
    log "building the benchmark package (benches/)"
    # The codec benchmark is built here too (release profile), and run directly
    # below, so that `cargo bench` does not build everything a second time.
    (cd "$HERE" && cargo build --release --bins --bench codec --message-format=json-render-diagnostics \
        >"$TARGET/build-messages.json")
    python3 - "$TARGET/build-messages.json" >"$TARGET/codec-bench-path" <<'PY'
import json, sys
path = ""
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "codec" and m.get("executable"):
        path = m["executable"]
print(path)
PY
    if ! pkg-config --exists libwebsockets 2>/dev/null; then
        die "libwebsockets-dev is missing: apt-get update && apt-get install -y libwebsockets-dev pkg-config"
    fi
    log "building the libwebsockets peer"
    mkdir -p "$TARGET/peers"
    # shellcheck disable=SC2046
    cc -O2 -g -Wall -Wextra -o "$LWS_BIN" "$HERE/peers/lws_echo.c" $(pkg-config --cflags --libs libwebsockets)
    # uWebSockets.js (native uWS in Node; npm's uws-pack repackages its v20
    # binaries), pinned by benches/peers/uws/package-lock.json.
    log "installing the uWebSockets.js peer (npm ci)"
    rm -rf "$UWS_DIR"
    mkdir -p "$UWS_DIR"
    cp "$HERE/peers/uws/package.json" "$HERE/peers/uws/package-lock.json" "$HERE/peers/uws/echo.mjs" "$UWS_DIR/"
    (cd "$UWS_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null >&2) ||
        die "npm ci failed in $UWS_DIR"
    # Native uWebSockets (v20, C++) and uSockets: the sources the crate
    # libuwebsockets-sys vendors (pinned by benches/peers/uws_native/Cargo.lock),
    # compiled with the flags of uWS's own build (-march=native -O3 -flto for
    # uWS, -O3 -flto for uSockets), without TLS or zlib.
    log "building the native uWebSockets peer"
    UWS_MANIFEST="$HERE/peers/uws_native/Cargo.toml"
    cargo fetch --locked --manifest-path "$UWS_MANIFEST" >&2 || die "cargo fetch failed for $UWS_MANIFEST"
    UWS_SRC=$(cargo metadata --locked --format-version 1 --manifest-path "$UWS_MANIFEST" | python3 -c '
import json, os, sys
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "libuwebsockets-sys"))
')/uWebSockets
    [ -f "$UWS_SRC/src/App.h" ] || die "no uWebSockets sources in $UWS_SRC"
    UWS_OBJ="$TARGET/peers/uws_native/obj"
    rm -rf "$UWS_OBJ" && mkdir -p "$UWS_OBJ"
    (cd "$UWS_OBJ" && cc -O3 -flto -DLIBUS_NO_SSL -I"$UWS_SRC/uSockets/src" -c "$UWS_SRC"/uSockets/src/*.c \
        "$UWS_SRC"/uSockets/src/eventing/*.c "$UWS_SRC"/uSockets/src/crypto/*.c) ||
        die "could not compile uSockets ($UWS_SRC/uSockets)"
    g++ -march=native -O3 -flto -std=c++20 -DLIBUS_NO_SSL -DUWS_NO_ZLIB -I"$UWS_SRC/src" -I"$UWS_SRC/uSockets/src" \
        -o "$UWS_NATIVE" "$HERE/peers/uws_native/echo.cpp" "$UWS_OBJ"/*.o ||
        die "could not build the native uWebSockets peer"
    if [ -n "$BASE_DIR" ]; then
        # The baseline: a worktree at the revision, its library and
        # echo_server built there (its own target directory).
        log "building wsconn at $BASELINE in $BASE_DIR"
        REV=$(git -C "$ROOT" rev-parse --verify "$BASELINE^{commit}") || die "--baseline: no commit $BASELINE"
        if [ -d "$BASE_DIR" ]; then
            git -C "$BASE_DIR" checkout -q -f --detach "$REV" || die "could not check $REV out in $BASE_DIR"
        else
            mkdir -p "$(dirname "$BASE_DIR")"
            git -C "$ROOT" worktree add -q --detach "$BASE_DIR" "$REV" || die "git worktree add $BASE_DIR $REV failed"
        fi
        # Older revisions declare no workspace: cargo would take the checkout
        # for a stray member of this one's (benches/ or the root).
        grep -q '^\[workspace\]' "$BASE_DIR/Cargo.toml" || printf '\n[workspace]\n' >> "$BASE_DIR/Cargo.toml"
        make -s -C "$BASE_DIR/c-examples" echo_server >&2 || die "could not build echo_server at $BASELINE"
    fi
fi
WSBENCH="$TARGET/release/wsbench"
for f in "$WSBENCH" "$ROOT/c-examples/echo_server" "$ROOT/c-examples/epoll_echo" \
    "$TARGET/release/tokio_tungstenite_echo" "$TARGET/release/fastwebsockets_echo" "$LWS_BIN" "$UWS_NATIVE" \
    ${BASE_DIR:+"$BASE_DIR/c-examples/echo_server"}; do
    [ -x "$f" ] || die "$f is not built (run without --no-build)"
done

# --- TLS test certificates ---------------------------------------------------------
TLS_DIR="$TARGET/tls"
if [ "$TLS" = 1 ]; then
    bash "$HERE/tls_certs.sh" "$TLS_DIR" || die "could not make the TLS test certificates in $TLS_DIR"
fi

# --- machine -----------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$IDLE_CONNS" -gt $((NOFILE - 100)) ]; then
    log "RLIMIT_NOFILE is $NOFILE: idle workload lowered to $((NOFILE - 100)) connections"
    IDLE_CONNS=$((NOFILE - 100))
fi
NCPU=$(nproc)
ALL_CPUS="0-$((NCPU - 1))"
case "$PIN" in
    split)
        if [ "$NCPU" -ge 2 ]; then
            SERVER_CPU=0 CLIENT_CPU=1
            PIN_NOTE="server on CPU 0, generator on CPU 1"
        else
            SERVER_CPU=0 CLIENT_CPU=0
            PIN_NOTE="one CPU: server and generator share it"
            log "only one CPU: server and generator share it"
        fi ;;
    same) SERVER_CPU=0 CLIENT_CPU=0 PIN_NOTE="server and generator both on CPU 0" ;;
    none) SERVER_CPU=$ALL_CPUS CLIENT_CPU=$ALL_CPUS PIN_NOTE="no pinning" ;;
    *) die "--pin is split, same or none" ;;
esac

mkdir -p "$RESULTS"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW="$RESULTS/raw-$STAMP.jsonl"
: > "$RAW"

# --- codec benchmarks and allocation count -----------------------------------
CODEC_JSON="" ALLOC_TXT=""
if [ "$CODEC" = 1 ]; then
    log "codec benchmarks (criterion)"
    CRIT_ARGS=()
    [ "$QUICK" = 1 ] && CRIT_ARGS=(--warm-up-time 0.05 --measurement-time 0.1 --sample-size 10 --nresamples 1000)
    CODEC_BIN=$(cat "$TARGET/codec-bench-path" 2>/dev/null || true)
    [ -x "$CODEC_BIN" ] || die "the codec benchmark is not built (run without --no-build)"
    (cd "$HERE" && CRITERION_HOME="$TARGET/criterion" taskset -c "$CLIENT_CPU" "$CODEC_BIN" --bench \
        "${CRIT_ARGS[@]}" >"$RESULTS/codec-$STAMP.log" 2>&1) \
        || die "the codec benchmark failed; see $RESULTS/codec-$STAMP.log"
    CODEC_JSON="$RESULTS/codec-$STAMP.json"
    python3 "$HERE/codec_table.py" --target "$TARGET" --json "$CODEC_JSON"
    echo
    log "allocation count"
    ALLOC_TXT="$RESULTS/alloc-$STAMP.txt"
    ALLOC_ARGS=()
    [ "$QUICK" = 1 ] && ALLOC_ARGS=(--quick)
    set +e
    timeout 300 "$TARGET/release/alloc_count" "${ALLOC_ARGS[@]}" | tee "$ALLOC_TXT"
    ALLOC_RC=${PIPESTATUS[0]}
    set -e
    echo "exit status: $ALLOC_RC" >> "$ALLOC_TXT"
    echo
fi

# --- servers -----------------------------------------------------------------
# name|command line (PORT is replaced)|CPUs
SERVER_DEFS=(
    "echo_server|$ROOT/c-examples/echo_server PORT|$SERVER_CPU"
    "echo_server_uring|env WSCONN_IO=uring $ROOT/c-examples/echo_server PORT|$SERVER_CPU"
    "echo_server_busy|$ROOT/c-examples/echo_server --busy-poll 50 PORT|$SERVER_CPU"
    "epoll_echo|$ROOT/c-examples/epoll_echo PORT|$SERVER_CPU"
    "tokio_tungstenite|$TARGET/release/tokio_tungstenite_echo PORT|$SERVER_CPU"
    "fastwebsockets|$TARGET/release/fastwebsockets_echo PORT|$SERVER_CPU"
    "libwebsockets|$LWS_BIN PORT|$SERVER_CPU"
    "uwebsockets|$UWS_NATIVE PORT|$SERVER_CPU"
)
# uWebSockets.js ships binaries for Node 18-22 only: on another Node it is left
# out, and the table says so.
UWS_NOTE=""
# permessage-deflate rows: wsconn's modes, and uWS's closest ones.
DEFLATE_SERVER_DEFS=(
    "echo_server_z|$ROOT/c-examples/echo_server -z PORT|$SERVER_CPU"
    "echo_server_z_uring|env WSCONN_IO=uring $ROOT/c-examples/echo_server -z PORT|$SERVER_CPU"
    "echo_server_zd15|$ROOT/c-examples/echo_server --deflate-dedicated 15 PORT|$SERVER_CPU"
    "echo_server_zd9|$ROOT/c-examples/echo_server --deflate-dedicated 9 PORT|$SERVER_CPU"
)
# TLS rows: the same certificate for wsconn (rustls) and libwebsockets (OpenSSL).
TLS_FILES="--tls-cert $TLS_DIR/server.pem --tls-key $TLS_DIR/server.key"
TLS_SERVER_DEFS=(
    "echo_server_tls|$ROOT/c-examples/echo_server $TLS_FILES PORT|$SERVER_CPU"
    "echo_server_tls_uring|env WSCONN_IO=uring $ROOT/c-examples/echo_server $TLS_FILES PORT|$SERVER_CPU"
    "libwebsockets_tls|$LWS_BIN $TLS_FILES PORT|$SERVER_CPU"
)
if [ -n "$BASE_DIR" ]; then
    BASE_BIN="$BASE_DIR/c-examples/echo_server"
    SERVER_DEFS+=("echo_server_base|$BASE_BIN PORT|$SERVER_CPU")
    DEFLATE_SERVER_DEFS+=("echo_server_z_base|$BASE_BIN -z PORT|$SERVER_CPU")
    TLS_SERVER_DEFS+=("echo_server_tls_base|$BASE_BIN $TLS_FILES PORT|$SERVER_CPU")
fi
if (cd "$UWS_DIR" && node -e 'import("uws-pack").then(() => process.exit(0), () => process.exit(1))') 2>/dev/null; then
    SERVER_DEFS+=("uwebsockets_js|node $UWS_DIR/echo.mjs PORT|$SERVER_CPU")
    DEFLATE_SERVER_DEFS+=(
        "uwebsockets_js_z|node $UWS_DIR/echo.mjs PORT shared|$SERVER_CPU"
        "uwebsockets_js_zd15|node $UWS_DIR/echo.mjs PORT dedicated|$SERVER_CPU"
        "uwebsockets_js_zd9|node $UWS_DIR/echo.mjs PORT dedicated-9|$SERVER_CPU"
    )
else
    UWS_NOTE="uwebsockets_js not run: uws-pack does not load on node $(node --version 2>/dev/null || echo '(none)')"
    log "$UWS_NOTE"
fi
# echo_server -t N (N reactors, one per thread): an extra row once it is implemented.
ES_HELP=$("$ROOT/c-examples/echo_server" -h 2>&1 || true)
T2_NOTE=""
if printf '%s\n' "$ES_HELP" | grep -q -- '-t N'; then
    if printf '%s\n' "$ES_HELP" | grep -- '-t' | grep -qi 'ignored'; then
        T2_NOTE="echo_server -t 2 not run: its -h says -t is ignored"
    elif [ "$NCPU" -ge 2 ]; then
        SERVER_DEFS+=("echo_server_t2|$ROOT/c-examples/echo_server -t 2 PORT|0,1")
        T2_NOTE="echo_server_t2 (-t 2) runs on CPUs 0,1, so on 2 cores it shares CPU 1 with the generator"
    fi
fi
[ -n "$T2_NOTE" ] && log "$T2_NOTE"
if [ -n "$SERVERS" ]; then
    keep=() keep_z=() keep_tls=()
    for def in "${SERVER_DEFS[@]}"; do
        case ",$SERVERS," in *",${def%%|*},"*) keep+=("$def") ;; esac
    done
    for def in "${DEFLATE_SERVER_DEFS[@]}"; do
        case ",$SERVERS," in *",${def%%|*},"*) keep_z+=("$def") ;; esac
    done
    for def in "${TLS_SERVER_DEFS[@]}"; do
        case ",$SERVERS," in *",${def%%|*},"*) keep_tls+=("$def") ;; esac
    done
    [ $((${#keep[@]} + ${#keep_z[@]} + ${#keep_tls[@]})) -gt 0 ] ||
        die "--servers matched none of: $(printf '%s ' "${SERVER_DEFS[@]%%|*}" "${DEFLATE_SERVER_DEFS[@]%%|*}" \
            "${TLS_SERVER_DEFS[@]%%|*}")"
    SERVER_DEFS=("${keep[@]}") DEFLATE_SERVER_DEFS=("${keep_z[@]}") TLS_SERVER_DEFS=("${keep_tls[@]}")
fi
[ "$PLAIN" = 1 ] || SERVER_DEFS=()
[ "$DEFLATE" = 1 ] || DEFLATE_SERVER_DEFS=()
[ "$TLS" = 1 ] || TLS_SERVER_DEFS=()

KIND_ARGS=()
[ "$BINARY" = 1 ] && KIND_ARGS=(--binary)
# name|wsbench arguments
WORKLOADS=(
    "1x1x32B|echo --conns 1 --inflight 1 --size 32"
    "100x16x32B|echo --conns 100 --inflight 16 --size 32"
    "100x4x16KiB|echo --conns 100 --inflight 4 --size 16384"
    "10x1x1MiB|echo --conns 10 --inflight 1 --size 1048576"
    "connect|connect --conns 8"
    "idle|idle --conns $IDLE_CONNS"
)
# JSON-like text whatever --binary says: random bytes do not compress.
DEFLATE_WORKLOADS=(
    "z100x16x1KiB|echo --deflate --conns 100 --inflight 16 --size 1024"
    "z100x4x16KiB|echo --deflate --conns 100 --inflight 4 --size 16384"
    "zidle|idle --deflate --conns $IDLE_CONNS --size 1024 --settle-ms 1500"
)
# wss://: wsbench trusts the test CA; 16 clients for the handshake rate.
TLS_CA="$TLS_DIR/ca.pem"
TLS_WORKLOADS=(
    "tls100x16x32B|echo --tls $TLS_CA --conns 100 --inflight 16 --size 32"
    "tls100x4x16KiB|echo --tls $TLS_CA --conns 100 --inflight 4 --size 16384"
    "tlsconnect|connect --tls $TLS_CA --conns 16"
    "tlsidle|idle --tls $TLS_CA --conns $IDLE_CONNS"
)
[ "$PLAIN" = 1 ] || WORKLOADS=()
[ "$DEFLATE" = 1 ] || DEFLATE_WORKLOADS=()
[ "$TLS" = 1 ] || TLS_WORKLOADS=()

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        sleep 0.2
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT_BASE=$((20000 + RANDOM % 9000))
PORT_N=0
next_port() {
    local p
    while :; do
        p=$((PORT_BASE + PORT_N))
        PORT_N=$((PORT_N + 1))
        # Skip ports something already listens on.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# Starts a server; sets SERVER_PID and PORT; returns 1 if it does not listen.
start_server() {
    local cmd=$1 cpus=$2 log=$3 i
    PORT=$(next_port)
    # shellcheck disable=SC2086
    taskset -c "$cpus" ${cmd//PORT/$PORT} >"$log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            sleep 0.05
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

stop_server() {
    local i
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 40); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# How busy the machine is without us: CPU use over one second, all CPUs.
busy_pct() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[1] - x[1];
        if (t <= 0) t = 1; printf "%.0f", 100 * (1 - (y[2] - x[2]) / t) }'
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_START=$(busy_pct)
[ "$BUSY_START" -gt 15 ] && log "the machine is ${BUSY_START}% busy before the runs: other processes will compete with the servers"
TOTAL=$((REPS * (${#WORKLOADS[@]} * ${#SERVER_DEFS[@]} + ${#DEFLATE_WORKLOADS[@]} * ${#DEFLATE_SERVER_DEFS[@]} +
    ${#TLS_WORKLOADS[@]} * ${#TLS_SERVER_DEFS[@]})))
N=0
log "servers: ${#SERVER_DEFS[@]} (+${#DEFLATE_SERVER_DEFS[@]} with permessage-deflate, +${#TLS_SERVER_DEFS[@]} with TLS), workloads: ${#WORKLOADS[@]} (+${#DEFLATE_WORKLOADS[@]}, +${#TLS_WORKLOADS[@]}), repetitions: $REPS ($TOTAL runs, $PIN_NOTE)"

# One measurement: run_one SERVER_DEF WORKLOAD REP (appends a line to $RAW).
run_one() {
    local def=$1 wl=$2 rep=$3
    local wname=${wl%%|*} wargs=${wl#*|}
    local sname=${def%%|*} rest=${def#*|}
    local scmd=${rest%|*} scpus=${rest##*|}
    local slog="$RESULTS/server-$STAMP.log" extra line rc alive
    N=$((N + 1))
    echo "=== $sname $wname rep $rep" >>"$slog"
    if ! start_server "$scmd" "$scpus" "$slog.tmp"; then
        cat "$slog.tmp" >>"$slog"
        log "[$N/$TOTAL] $sname $wname: the server did not start (see $slog)"
        printf '{"server":"%s","workload":"%s","rep":%d,"ok":false,"error":"server did not start"}\n' \
            "$sname" "$wname" "$rep" >>"$RAW"
        stop_server
        return 0
    fi
    # --pid: wsbench reads the server's CPU time (and, for idle, its RSS).
    extra=(--pid "$SERVER_PID")
    case "$wname" in
        idle|zidle|tlsidle) ;;
        connect|tlsconnect) extra+=(--seconds "$SECS") ;;
        z*) extra+=(--seconds "$SECS") ;;
        *) extra+=(--seconds "$SECS" "${KIND_ARGS[@]}") ;;
    esac
    set +e
    # shellcheck disable=SC2086
    line=$(timeout $((SECS + 180)) taskset -c "$CLIENT_CPU" "$WSBENCH" $wargs --port "$PORT" \
        --label "$sname" "${extra[@]}" 2>>"$slog")
    rc=$?
    set -e
    alive=1
    kill -0 "$SERVER_PID" 2>/dev/null || alive=0
    stop_server
    cat "$slog.tmp" >>"$slog"
    [ -n "$line" ] || line='{"ok":false,"error":"wsbench printed nothing (exit status '"$rc"')"}'
    line="{\"server\":\"$sname\",\"workload\":\"$wname\",\"rep\":$rep,\"server_alive\":$alive,${line#\{}"
    echo "$line" >>"$RAW"
    log "[$N/$TOTAL] $sname $wname rep $rep: $(python3 "$HERE/report.py" --brief "$line")"
}

for rep in $(seq "$REPS"); do
    for wl in "${WORKLOADS[@]}"; do
        for def in "${SERVER_DEFS[@]}"; do
            run_one "$def" "$wl" "$rep"
        done
    done
    for wl in "${DEFLATE_WORKLOADS[@]}"; do
        for def in "${DEFLATE_SERVER_DEFS[@]}"; do
            run_one "$def" "$wl" "$rep"
        done
    done
    for wl in "${TLS_WORKLOADS[@]}"; do
        for def in "${TLS_SERVER_DEFS[@]}"; do
            run_one "$def" "$wl" "$rep"
        done
    done
done
rm -f "$RESULTS/server-$STAMP.log.tmp"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_END=$(busy_pct)

# --- report ------------------------------------------------------------------
LATEST=latest
if [ "$PLAIN" = 0 ]; then
    [ "$DEFLATE" = 0 ] || LATEST=$LATEST-deflate
    [ "$TLS" = 0 ] || LATEST=$LATEST-tls
fi
REPORT_ARGS=(--raw "$RAW" --json "$RESULTS/$LATEST.json" --png "$RESULTS/$LATEST.png"
    --meta "reps=$REPS" --meta "seconds=$SECS" --meta "idle_conns=$IDLE_CONNS"
    --meta "kind=$([ "$BINARY" = 1 ] && echo binary || echo text)" --meta "pinning=$PIN_NOTE"
    --meta "quick=$QUICK" --meta "loadavg_start=$LOAD_START" --meta "loadavg_end=$LOAD_END"
    --meta "busy_start_pct=$BUSY_START" --meta "busy_end_pct=$BUSY_END"
    --meta "commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)")
[ -n "$T2_NOTE" ] && REPORT_ARGS+=(--meta "t2=$T2_NOTE")
[ -n "$BASE_DIR" ] && REPORT_ARGS+=(--meta "baseline=$BASELINE ($(git -C "$BASE_DIR" describe --always --dirty))")
[ -n "$UWS_NOTE" ] && REPORT_ARGS+=(--meta "uws=$UWS_NOTE")
[ ${#TLS_WORKLOADS[@]} -gt 0 ] && REPORT_ARGS+=(--meta "tls=TLS rows: ECDSA P-256 test certificate; \
wsbench on rustls (ring), its default preferences (TLS 1.3, X25519, AES-256-GCM first), no resumption")
[ -n "$CODEC_JSON" ] && REPORT_ARGS+=(--codec "$CODEC_JSON")
[ -n "$ALLOC_TXT" ] && REPORT_ARGS+=(--alloc "$ALLOC_TXT")

# matplotlib for the chart, in a venv of its own (the table needs only python3).
PY=python3
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    PY="$VENV/bin/python"
else
    log "creating $VENV with matplotlib (for the chart)"
    if python3 -m venv "$VENV" >&2 && "$VENV/bin/pip" install -q matplotlib >&2; then
        PY="$VENV/bin/python"
    else
        log "no matplotlib: the chart is skipped (pip install matplotlib into $VENV)"
    fi
fi
echo
"$PY" "$HERE/report.py" "${REPORT_ARGS[@]}"
cp "$RAW" "$RESULTS/$LATEST-raw.jsonl"
log "raw runs: $RAW; results: $RESULTS/$LATEST.json, $RESULTS/$LATEST.png"
