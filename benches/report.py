#!/usr/bin/env python3
"""Summarises benches/run.sh's runs: the table, results JSON and chart.

  report.py --raw RUNS.jsonl [--json OUT.json] [--png OUT.png] [--codec CODEC.json]
            [--alloc ALLOC.txt] [--meta key=value ...]
  report.py --brief 'JSON LINE'      one-line summary of one wsbench run

Each run is one JSON line (wsbench's output plus server, workload, rep and the
server's CPU use). For each workload and server the median over the repetitions
is kept; ratios are wsconn's echo_server divided by the server: for messages/s
and connections/s higher is better (>= 1.0: echo_server ahead), for latency and
bytes per idle connection lower is better (<= 1.0: echo_server ahead). In the
permessage-deflate tables (workloads z*) the ratio on a uWebSockets.js row is
the echo_server of the same compression mode divided by it; in the TLS tables
(workloads tls*, wss://) the ratio on the libwebsockets_tls row is
echo_server_tls divided by it.

The table needs only the standard library; the chart needs matplotlib (run.sh
makes a venv with it).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys

BASE = "echo_server"
SERVER_ORDER = ["echo_server", "echo_server_uring", "echo_server_busy", "echo_server_base", "echo_server_t2", "epoll_echo",
                "tokio_tungstenite", "fastwebsockets", "libwebsockets", "uwebsockets", "uwebsockets_js",
                "echo_server_z", "echo_server_z_uring", "echo_server_z_base", "uwebsockets_js_z",
                "echo_server_zd15", "uwebsockets_js_zd15", "echo_server_zd9", "uwebsockets_js_zd9",
                "echo_server_tls", "echo_server_tls_uring", "echo_server_tls_base", "libwebsockets_tls"]
WORKLOADS = [
    ("1x1x32B", "1 conn x 1 in flight x 32 B (latency)"),
    ("100x16x32B", "100 conns x 16 in flight x 32 B"),
    ("100x4x16KiB", "100 conns x 4 in flight x 16 KiB"),
    ("10x1x1MiB", "10 conns x 1 in flight x 1 MiB"),
    ("connect", "connect rate: handshake + close, 8 concurrent clients"),
    ("idle", "idle connections: server RSS growth per connection"),
    ("z100x16x1KiB", "permessage-deflate: 100 conns x 16 in flight x 1 KiB JSON-like text"),
    ("z100x4x16KiB", "permessage-deflate: 100 conns x 4 in flight x 16 KiB JSON-like text"),
    ("zidle", "permessage-deflate: idle connections, server RSS growth per connection (after echo: "
              "after one compressed 1 KiB echo each)"),
    ("tls100x16x32B", "TLS (wss://): 100 conns x 16 in flight x 32 B"),
    ("tls100x4x16KiB", "TLS (wss://): 100 conns x 4 in flight x 16 KiB"),
    ("tlsconnect", "TLS handshake rate: TCP connect, full TLS handshake, upgrade, close; 16 concurrent clients"),
    ("tlsidle", "TLS idle connections: server RSS growth per connection"),
]
# permessage-deflate rows: the uWebSockets.js server of each mode and the
# echo_server it is compared with (shared: no context takeover; dedicated:
# context takeover with 15- or 9-bit windows).
DEFLATE_BASE = {"uwebsockets_js_z": "echo_server_z", "uwebsockets_js_zd15": "echo_server_zd15",
                "uwebsockets_js_zd9": "echo_server_zd9", "echo_server_z_uring": "echo_server_z",
                "echo_server_z_base": "echo_server_z"}
# TLS rows: libwebsockets on OpenSSL against echo_server on rustls.
TLS_BASE = {"libwebsockets_tls": "echo_server_tls", "echo_server_tls_base": "echo_server_tls",
            "echo_server_tls_uring": "echo_server_tls"}
# (key, column title, format, higher_is_better)
ECHO_COLS = [("msgs_per_s", "msgs/s", "{:,.0f}", True), ("mb_per_s", "MB/s", "{:,.1f}", True),
             ("p50_us", "p50 us", "{:,.1f}", False), ("p99_us", "p99 us", "{:,.1f}", False),
             ("p999_us", "p99.9 us", "{:,.1f}", False)]
CONNECT_COLS = [("connects_per_s", "conn/s", "{:,.0f}", True), ("cycle_p50_us", "p50 us", "{:,.1f}", False),
                ("cycle_p99_us", "p99 us", "{:,.1f}", False)]
IDLE_COLS = [("rss_per_conn_b", "B/conn", "{:,.0f}", False),
             ("rss_per_conn_after_echo_b", "B/conn after echo", "{:,.0f}", False)]
# The goals against fastwebsockets (ratio echo_server / fastwebsockets).
FWS_GOALS = [("100x16x32B", "msgs_per_s", 14.6), ("100x4x16KiB", "msgs_per_s", 1.25),
             ("10x1x1MiB", "msgs_per_s", 1.0)]
IDLE_GOAL_BYTES = 273
OWN_VARIANTS = {"echo_server_t2", "echo_server_uring", "echo_server_busy", "echo_server_z_uring",
                "echo_server_tls_uring"}
# Issue 22's goals against native uWebSockets (ratio echo_server / uwebsockets).
UWS_GOALS = [("100x16x32B", "msgs_per_s", 1.1), ("100x4x16KiB", "msgs_per_s", 1.1)]


def cols_for(workload):
    if workload in ("connect", "tlsconnect"):
        return CONNECT_COLS
    if workload in ("idle", "zidle", "tlsidle"):
        return IDLE_COLS
    return ECHO_COLS


def base_of(workload, server):
    """The wsconn server a row is compared with (None: no ratio)."""
    if workload.startswith("z"):
        return DEFLATE_BASE.get(server)
    if workload.startswith("tls"):
        return TLS_BASE.get(server)
    return BASE


def brief(line):
    try:
        r = json.loads(line)
    except ValueError:
        return "unparsable: " + line[:200]
    if not r.get("ok"):
        return "FAILED: " + str(r.get("error", "?"))
    util = f" (server CPU {r.get('server_cpu_util', 0):.0%}, generator {r.get('client_cpu_util', 0):.0%})"
    if "echoes_compressed" in r:
        util += f", {r['echoes_compressed']:,} echoes compressed"
    if r.get("mode") == "echo":
        return (f"{r['msgs_per_s']:,.0f} msgs/s, {r['mb_per_s']:,.1f} MB/s, p50 {r['p50_us']:.1f} us, "
                f"p99 {r['p99_us']:.1f} us" + util)
    if r.get("mode") == "connect":
        return f"{r['connects_per_s']:,.0f} connections/s, p99 {r['cycle_p99_us']:.0f} us" + util
    if r.get("mode") == "idle":
        return (f"{r['rss_per_conn_b']:,.0f} B/conn open, {r['rss_per_conn_after_echo_b']:,.0f} B/conn after "
                f"echo, {r['echoed']} echoed")
    return line


def machine():
    info = {"kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def summarise(runs):
    """{workload: {server: {"n": ok runs, "failed": n, metric: median, ...}}}"""
    out = {}
    for r in runs:
        w, s = r.get("workload"), r.get("server")
        if not w or not s:
            continue
        cell = out.setdefault(w, {}).setdefault(s, {"runs": [], "failed": 0, "errors": []})
        if r.get("ok"):
            cell["runs"].append(r)
        else:
            cell["failed"] += 1
            cell["errors"].append(r.get("error", "?"))
    for w, servers in out.items():
        keys = [c[0] for c in cols_for(w)] + ["server_cpu_util", "client_cpu_util"]
        for s, cell in servers.items():
            good = cell.pop("runs")
            cell["n"] = len(good)
            for k in keys:
                vals = [r[k] for r in good if isinstance(r.get(k), (int, float))]
                if vals:
                    cell[k] = statistics.median(vals)
    for w, servers in out.items():
        for s, cell in servers.items():
            base = servers.get(base_of(w, s), {})
            ratios = {}
            for k, _, _, _ in cols_for(w):
                if k in cell and k in base and cell[k]:
                    ratios[k] = base[k] / cell[k]
            cell["ratio_echo_server"] = ratios
    return out


def goals(summary):
    met, missed = [], []
    fws = {w: summary.get(w, {}).get("fastwebsockets", {}) for w, _ in WORKLOADS}
    for w, k, bar in FWS_GOALS:
        if not summary.get(w):
            continue
        r = fws[w].get("ratio_echo_server", {}).get(k)
        if r is None:
            missed.append(f"{w}: no echo_server/fastwebsockets figure")
        else:
            (met if r >= bar else missed).append(f"{w}: echo_server = {r:.2f}x fastwebsockets (goal >= {bar})")
    for w, k, bar in UWS_GOALS:
        r = summary.get(w, {}).get("uwebsockets", {}).get("ratio_echo_server", {}).get(k)
        if r is not None:
            (met if r >= bar else missed).append(f"{w}: echo_server = {r:.2f}x uwebsockets (goal >= {bar})")
    idle = summary.get("idle", {}).get(BASE, {})
    if "rss_per_conn_b" in idle:
        b = idle["rss_per_conn_b"]
        (met if b <= IDLE_GOAL_BYTES else missed).append(
            f"idle: echo_server {b:,.0f} B per connection (goal <= {IDLE_GOAL_BYTES})")
    for w, _ in WORKLOADS:
        for s, cell in summary.get(w, {}).items():
            # Our own variants (threads, transport, busy polling) are rows to
            # read, not peers to beat; the baseline rows stay: behind one of
            # them is a regression.
            if s in OWN_VARIANTS or s == BASE or base_of(w, s) is None:
                continue
            for k, title, _, higher in cols_for(w):
                r = cell.get("ratio_echo_server", {}).get(k)
                # Compressed idle connections: what counts is after their echo
                # (the compression state is made then).
                skip = ("mb_per_s", "p50_us", "p999_us", "cycle_p50_us",
                        "rss_per_conn_b" if w == "zidle" else "rss_per_conn_after_echo_b")
                if r is None or k in skip:
                    continue
                ahead = r >= 1.0 if higher else r <= 1.0
                if not ahead:
                    missed.append(f"{w}: {base_of(w, s)} behind {s} in {title} (ratio {r:.2f})")
    return met, missed


def ratio_cols(workload):
    """The columns whose ratio the table shows."""
    cols = cols_for(workload)
    keep = ("p99_us", "cycle_p99_us", "rss_per_conn_after_echo_b" if workload == "zidle" else "")
    return cols[:1] + [c for c in cols if c[0] in keep]


def print_table(summary, meta):
    print("wsconn benchmark: each server's median over %s repetition(s); ratio = echo_server / server" %
          meta.get("reps", "?"))
    print("(throughput: >= 1 means echo_server is ahead; latency, memory: <= 1 means echo_server is ahead)")
    print(f"messages: {meta.get('kind', 'text')}; {meta.get('pinning', '')}; machine busy without us: "
          f"{meta.get('busy_start_pct', '?')}% before, {meta.get('busy_end_pct', '?')}% after "
          f"(load average {meta.get('loadavg_start', '?')} / {meta.get('loadavg_end', '?')})")
    try:
        busy = max(int(meta.get("busy_start_pct", "0")), int(meta.get("busy_end_pct", "0")))
    except ValueError:
        busy = 0
    if busy > 15:
        print("NOTE: other processes were using the CPUs: they compete with the servers and the generator; a "
              "server CPU column well below 100% on a throughput workload shows it. Compare ratios, not figures.")
    if meta.get("t2"):
        print(meta["t2"])
    if meta.get("uws"):
        print(meta["uws"])
    if meta.get("tls"):
        print(meta["tls"])
    for w, title in WORKLOADS:
        servers = summary.get(w)
        if not servers:
            continue
        cols = cols_for(w)
        print()
        print(f"{w}: {title}")
        if w.startswith("z"):
            print("  (ratio on a uwebsockets_js row: the echo_server row of the same mode / it)")
        if w.startswith("tls"):
            print("  (ratio on the libwebsockets_tls row: echo_server_tls / it)")
        head = f"  {'server':<20}" + "".join(f"{c[1]:>18}" for c in cols)
        widths = [max(20, len("ratio " + c[1]) + 2) for c in ratio_cols(w)]
        head += "".join(f"{'ratio ' + c[1]:>{n}}" for c, n in zip(ratio_cols(w), widths))
        head += f"{'srv CPU':>9}{'gen CPU':>9}"
        print(head)
        order = [s for s in SERVER_ORDER if s in servers] + sorted(s for s in servers if s not in SERVER_ORDER)
        for s in order:
            cell = servers[s]
            line = f"  {s:<20}"
            for k, _, fmt, _ in cols:
                line += f"{fmt.format(cell[k]) if k in cell else '-':>18}"
            for (k, _, _, _), n in zip(ratio_cols(w), widths):
                r = cell.get("ratio_echo_server", {}).get(k)
                line += f"{'-' if r is None else f'{r:.2f}':>{n}}"
            for k in ("server_cpu_util", "client_cpu_util"):
                line += f"{'-' if k not in cell else f'{cell[k]:.0%}':>9}"
            if cell.get("failed"):
                line += f"   {cell['failed']} run(s) FAILED: {cell['errors'][0]}"
            print(line)


def chart(summary, path, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no matplotlib: {path} not written)")
        return False
    panels = [("1x1x32B", "p99_us", "p99 latency, us (lower is better)"),
              ("1x1x32B", "msgs_per_s", "msgs/s, 1x1x32 B"),
              ("100x16x32B", "msgs_per_s", "msgs/s, 100x16x32 B"),
              ("100x4x16KiB", "msgs_per_s", "msgs/s, 100x4x16 KiB"),
              ("10x1x1MiB", "mb_per_s", "MB/s, 10x1x1 MiB"),
              ("connect", "connects_per_s", "connections/s (handshake + close)"),
              ("idle", "rss_per_conn_b", "server RSS per idle connection, bytes (lower is better)"),
              ("z100x16x1KiB", "msgs_per_s", "permessage-deflate msgs/s, 100x16x1 KiB"),
              ("z100x4x16KiB", "msgs_per_s", "permessage-deflate msgs/s, 100x4x16 KiB"),
              ("zidle", "rss_per_conn_after_echo_b",
               "permessage-deflate: RSS per connection after a compressed echo, bytes"),
              ("tls100x16x32B", "msgs_per_s", "TLS msgs/s, 100x16x32 B"),
              ("tls100x4x16KiB", "msgs_per_s", "TLS msgs/s, 100x4x16 KiB"),
              ("tlsconnect", "connects_per_s", "TLS handshakes/s (connect, handshake, upgrade, close)"),
              ("tlsidle", "rss_per_conn_b", "TLS: server RSS per idle connection, bytes (lower is better)")]
    panels = [p for p in panels if summary.get(p[0])]
    if not panels:
        return False
    ncols = 2
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(13, 3.2 * nrows), squeeze=False)
    palette = {"echo_server": "#d62728", "echo_server_t2": "#ff9896", "epoll_echo": "#ff7f0e",
               "tokio_tungstenite": "#1f77b4", "fastwebsockets": "#2ca02c", "libwebsockets": "#9467bd",
               "uwebsockets_js": "#8c564b", "echo_server_z": "#d62728", "echo_server_zd15": "#e7969c",
               "echo_server_zd9": "#ff9896", "uwebsockets_js_z": "#8c564b", "uwebsockets_js_zd15": "#c49c94",
               "uwebsockets_js_zd9": "#d9b8b0", "echo_server_tls": "#d62728", "libwebsockets_tls": "#9467bd"}
    for ax, (w, k, title) in zip(axes.flat, panels):
        servers = summary[w]
        names = [s for s in SERVER_ORDER if s in servers and k in servers[s]]
        vals = [servers[s][k] for s in names]
        bars = ax.barh(names[::-1], vals[::-1], color=[palette.get(s, "#7f7f7f") for s in names[::-1]])
        for b, v in zip(bars, vals[::-1]):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:,.0f}" if v >= 100 else f" {v:,.1f}",
                    va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        if w in ("idle", "zidle", "tlsidle") and vals and min(vals) > 0 and max(vals) / min(vals) > 50:
            ax.set_xscale("log")
        ax.tick_params(labelsize=8)
        ax.margins(x=0.18)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"wsconn benchmarks ({meta.get('date', '')}, {meta.get('kind', 'text')} messages, "
                 f"median of {meta.get('reps', '?')})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brief")
    ap.add_argument("--raw")
    ap.add_argument("--json")
    ap.add_argument("--png")
    ap.add_argument("--codec")
    ap.add_argument("--alloc")
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()
    if a.brief is not None:
        print(brief(a.brief))
        return
    if not a.raw:
        ap.error("--raw or --brief is needed")
    runs = []
    with open(a.raw) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    runs.append(json.loads(line))
                except ValueError:
                    runs.append({"ok": False, "error": "unparsable line: " + line[:200]})
    meta = dict(m.split("=", 1) for m in a.meta if "=" in m)
    meta["date"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    summary = summarise(runs)
    print_table(summary, meta)
    met, missed = goals(summary)
    print()
    print("Goals met:")
    for g in met:
        print("  " + g)
    print("Goals not met:")
    for g in missed or ["(none)"]:
        print("  " + g)
    failed = [r for r in runs if not r.get("ok")]
    if failed:
        print(f"\n{len(failed)} run(s) failed; first: {failed[0].get('server')} {failed[0].get('workload')}: "
              f"{failed[0].get('error')}")
    result = {"meta": meta, "machine": machine(), "summary": summary,
              "goals": {"met": met, "not_met": missed}, "runs": runs}
    if a.codec and os.path.exists(a.codec):
        with open(a.codec) as f:
            result["codec"] = json.load(f)
    if a.alloc and os.path.exists(a.alloc):
        with open(a.alloc) as f:
            result["alloc_count"] = f.read()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    if a.png:
        if chart(summary, a.png, meta):
            print(f"\nchart: {a.png}")
    sys.exit(0)


if __name__ == "__main__":
    main()
