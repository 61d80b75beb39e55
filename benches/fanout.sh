#!/usr/bin/env bash
# benches/fanout.sh: publish/subscribe benchmarks (`make bench` runs it after
# run.sh).
#
#   benches/fanout.sh            full run: 3 repetitions of 3 s per row
#   benches/fanout.sh --quick    1 repetition of 1 s
# Options: --reps N, --seconds T, --no-build, --no-redis
#
# Fan-out: 1 publisher and 1,000 or 10,000 subscribers in one room, 32 B and
# 1 KiB text messages, at most 8 messages not yet delivered to everyone
# (benches/src/bin/fanout.rs, every delivery checked), against
# c-examples/chat_server (wsconn_publish) and uWebSockets.js (app.publish,
# benches/peers/uws/pubsub.mjs), servers round-robin within each repetition,
# server on CPU 0 and generator on CPU 1; median of the repetitions. Reported:
# deliveries per second (messages received by subscribers) and the
# subscriber-side delay (publisher's send to subscriber's receipt), p50 and p99.
#
# Redis relay: two chat_server nodes and redis-server (all on CPU 0); 1,000
# subscribers on node B, the publisher on node A (crossing Redis) or on node B
# (local): deliveries per second and the delay the relay adds.
#
# Output: a table on stdout, benches/results/fanout-latest.json (every run).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
RESULTS="$HERE/results"
TARGET="$HERE/target"
UWS_DIR="$TARGET/peers/uws"

REPS=3 SECS=3 BUILD=1 REDIS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) REPS=1 SECS=1 ;;
        --reps) REPS=$2; shift ;;
        --seconds) SECS=$2; shift ;;
        --no-build) BUILD=0 ;;
        --no-redis) REDIS=0 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "fanout.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[fanout %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'fanout.sh: %s\n' "$*" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
    packages=()
    [ -f /usr/include/hiredis/hiredis.h ] || packages+=(libhiredis-dev)
    command -v redis-server >/dev/null || packages+=(redis-server)
    command -v node >/dev/null || packages+=(nodejs)
    command -v npm >/dev/null || packages+=(npm)
    command -v taskset >/dev/null || packages+=(util-linux)
    if [ ${#packages[@]} -gt 0 ]; then
        SUDO=
        [ "$(id -u)" -ne 0 ] && SUDO=sudo
        log "installing Debian packages: ${packages[*]}"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -q </dev/null >&2 &&
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
                "${packages[@]}" </dev/null >&2 || die "could not install ${packages[*]}"
    fi
    log "building chat_server and the fan-out generator"
    make -s -C "$ROOT/c-examples" chat_server >&2
    (cd "$HERE" && cargo build --release --bin fanout >&2)
    if ! [ -d "$UWS_DIR/node_modules/uws-pack" ]; then
        log "installing the uWebSockets.js peer (npm ci)"
        mkdir -p "$UWS_DIR"
        cp "$HERE/peers/uws/package.json" "$HERE/peers/uws/package-lock.json" "$UWS_DIR/"
        (cd "$UWS_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null >&2) ||
            die "npm ci failed in $UWS_DIR"
    fi
    cp "$HERE/peers/uws/pubsub.mjs" "$UWS_DIR/"
fi
FANOUT="$TARGET/release/fanout"
CHAT="$ROOT/c-examples/chat_server"
[ -x "$FANOUT" ] && [ -x "$CHAT" ] || die "not built (run without --no-build)"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 10200 ] || die "10,200 open files needed (ulimit -n)"
SERVER_CPU=0 CLIENT_CPU=1
[ "$(nproc)" -ge 2 ] || CLIENT_CPU=0

SERVERS=("wsconn|$CHAT PORT")
if (cd "$UWS_DIR" && node -e 'import("uws-pack").then(() => process.exit(0), () => process.exit(1))') 2>/dev/null; then
    SERVERS+=("uwebsockets_js|node $UWS_DIR/pubsub.mjs PORT")
else
    log "uwebsockets_js left out: uws-pack does not load on node $(node --version 2>/dev/null || echo '(none)')"
fi

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    local i
    for i in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# start CMD CPUS: starts a server on a free port; sets PORT and SPID.
start() {
    PORT=$(free_port)
    # shellcheck disable=SC2086
    taskset -c "$2" ${1//PORT/$PORT} >>"$RESULTS/fanout-servers.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    wait_port "$PORT" || die "server $1 did not start (see $RESULTS/fanout-servers.log)"
}

stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

mkdir -p "$RESULTS"
RAW="$RESULTS/fanout-latest.jsonl"
: >"$RAW"
: >"$RESULTS/fanout-servers.log"

ROWS=("1000|32" "1000|1024" "10000|32" "10000|1024")
for rep in $(seq "$REPS"); do
    for row in "${ROWS[@]}"; do
        subs=${row%%|*} size=${row#*|}
        for def in "${SERVERS[@]}"; do
            name=${def%%|*} cmd=${def#*|}
            start "$cmd" "$SERVER_CPU"
            line=$(timeout $((SECS + 120)) taskset -c "$CLIENT_CPU" "$FANOUT" --port "$PORT" --subs "$subs" \
                --size "$size" --seconds "$SECS" --pid "$SPID" --label "$name" || true)
            stop "$SPID"
            [ -n "$line" ] || line="{\"ok\":false,\"label\":\"$name\",\"subs\":$subs,\"size\":$size}"
            echo "{\"row\":\"${subs}x${size}B\",\"rep\":$rep,${line#\{}" >>"$RAW"
            log "rep $rep ${subs} subscribers x ${size} B, $name: $line"
        done
    done
done

if [ "$REDIS" = 1 ]; then
    RPORT=$(free_port)
    taskset -c "$SERVER_CPU" redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
        >>"$RESULTS/fanout-servers.log" 2>&1 &
    RPID=$!
    PIDS+=("$RPID")
    wait_port "$RPORT" || die "redis-server did not start"
    start "$CHAT --redis 127.0.0.1:$RPORT PORT" "$SERVER_CPU"
    PORT_A=$PORT PID_A=$SPID
    start "$CHAT --redis 127.0.0.1:$RPORT PORT" "$SERVER_CPU"
    PORT_B=$PORT PID_B=$SPID
    sleep 0.5 # both subscribed to Redis
    for rep in $(seq "$REPS"); do
        for where in local relayed; do
            pub=$PORT_B
            [ "$where" = relayed ] && pub=$PORT_A
            line=$(timeout $((SECS + 120)) taskset -c "$CLIENT_CPU" "$FANOUT" --port "$PORT_B" --pub-port "$pub" \
                --subs 1000 --size 32 --seconds "$SECS" --pid "$PID_B" --path "/room/bench$rep$where" \
                --label "redis_$where" || true)
            [ -n "$line" ] || line="{\"ok\":false,\"label\":\"redis_$where\"}"
            echo "{\"row\":\"redis 1000x32B\",\"rep\":$rep,${line#\{}" >>"$RAW"
            log "rep $rep redis relay, publisher $where: $line"
        done
    done
    stop "$PID_A"
    stop "$PID_B"
    stop "$RPID"
fi

python3 - "$RAW" "$RESULTS/fanout-latest.json" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(runs, open(sys.argv[2], "w"), indent=1)
rows = {}
for r in runs:
    rows.setdefault(r["row"], {}).setdefault(r.get("label", "?"), []).append(r)
def med(rs, key):
    vals = [r[key] for r in rs if r.get("ok") and key in r]
    return statistics.median(vals) if vals else None
def fmt(v, unit=""):
    return "-" if v is None else (f"{v/1e6:.2f} M" if v >= 1e6 else f"{v/1e3:.0f} k" if v >= 1e3 else f"{v:.0f}") + unit
print("\nFan-out (median of runs; deliveries/s = messages received by subscribers)")
print(f"{'row':<18} {'server':<16} {'deliveries/s':>13} {'p50 delay':>10} {'p99 delay':>10} {'lost':>6}  ratio wsconn/peer (deliveries, p99)")
for row, by in rows.items():
    w = by.get("wsconn")
    for name, rs in by.items():
        d, p50, p99 = med(rs, "deliveries_per_s"), med(rs, "p50_us"), med(rs, "p99_us")
        lost = sum(r.get("lost", 0) for r in rs)
        ratio = ""
        if w and name not in ("wsconn",) and not name.startswith("redis"):
            wd, wp = med(w, "deliveries_per_s"), med(w, "p99_us")
            if wd and d and wp and p99:
                ratio = f"{wd / d:.2f}x, {p99 / wp:.2f}x lower" if wp else ""
        p50s = "-" if p50 is None else f"{p50/1000:.1f} ms"
        p99s = "-" if p99 is None else f"{p99/1000:.1f} ms"
        print(f"{row:<18} {name:<16} {fmt(d):>13} {p50s:>10} {p99s:>10} {lost:>6}  {ratio}")
loc, rel = rows.get("redis 1000x32B", {}).get("redis_local"), rows.get("redis 1000x32B", {}).get("redis_relayed")
if loc and rel:
    a, b = med(loc, "p50_us"), med(rel, "p50_us")
    if a is not None and b is not None:
        print(f"\nRedis relay: {fmt(med(rel, 'deliveries_per_s'))} deliveries/s across nodes "
              f"(local: {fmt(med(loc, 'deliveries_per_s'))}); added delay p50 {(b - a)/1000:.2f} ms")
PY
log "every run: $RAW; $RESULTS/fanout-latest.json"
