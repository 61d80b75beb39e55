#!/usr/bin/env python3
"""Compares two benchmark results files of the same machine and flags every
row where wsconn got worse by more than a threshold (5 % by default).

    python3 benches/compare.py BASELINE.json CURRENT.json [--threshold 5]
                               [--servers echo_server,epoll_echo] [--all-servers]

Both files are what `make bench` writes: benches/results/latest*.json
(run.sh: a "summary" of median figures per workload and server) or
benches/results/fanout-latest.json (fanout.sh: a list of repetitions, medians
taken here). Save a baseline before a change (`cp benches/results/latest.json
/tmp/base.json`), run `make bench` again after it, then compare. Not a test:
benchmark machines are shared and noisy, so read a flag as "measure again",
and compare only files made on the same machine.

What is compared, per workload and server present in both files:
  higher is better: msgs_per_s, mb_per_s, connects_per_s, deliveries_per_s
  lower is better:  rss_per_conn_b, rss_per_conn_after_echo_b, p99_us
Latency percentiles vary most from run to run: p99_us is compared only with
--latency. Exit status: 0 when nothing got worse past the threshold, 1 when
something did, 2 on bad input.
"""

import argparse
import json
import statistics
import sys

HIGHER = ("msgs_per_s", "mb_per_s", "connects_per_s", "deliveries_per_s")
LOWER = ("rss_per_conn_b", "rss_per_conn_after_echo_b")
LATENCY = ("p99_us",)
# wsconn's own servers in run.sh's tables (peers are measured only as anchors).
WSCONN_SERVERS = ("echo_server", "epoll_echo", "echo_server_t2", "echo_server_tls",
                  "echo_server_z", "echo_server_dedicated", "echo_server_dedicated_9",
                  "echo_server_uring", "wsconn")


def load(path):
    """{(workload, server): {metric: value}} from a results file."""
    with open(path) as f:
        data = json.load(f)
    rows = {}
    if isinstance(data, dict) and "summary" in data:
        for workload, servers in data["summary"].items():
            for server, figures in servers.items():
                if isinstance(figures, dict) and not figures.get("failed"):
                    rows[(workload, server)] = figures
        return rows
    if isinstance(data, list):
        # fanout.sh: one entry per repetition; the median of the good ones.
        reps = {}
        for run in data:
            if run.get("ok"):
                reps.setdefault((run["row"], run["label"]), []).append(run)
        for key, runs in reps.items():
            rows[key] = {m: statistics.median(r[m] for r in runs)
                         for m in HIGHER + LOWER + LATENCY
                         if all(isinstance(r.get(m), (int, float)) for r in runs)}
        return rows
    raise ValueError(f"{path}: neither run.sh's nor fanout.sh's results")


def compare(base, current, servers, metrics_higher, metrics_lower, threshold):
    """Rows (workload, server, metric, before, after, change %, worse?)."""
    out = []
    for key in sorted(base.keys() & current.keys()):
        workload, server = key
        if servers is not None and server not in servers:
            continue
        for metric in metrics_higher + metrics_lower:
            before, after = base[key].get(metric), current[key].get(metric)
            if not isinstance(before, (int, float)) or not isinstance(after, (int, float)) or before <= 0:
                continue
            change = (after - before) / before * 100
            worse = -change if metric in metrics_higher else change
            out.append((workload, server, metric, before, after, change, worse > threshold))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline")
    parser.add_argument("current")
    parser.add_argument("--threshold", type=float, default=5.0, help="percent (default 5)")
    parser.add_argument("--servers", help="comma list (default: wsconn's own servers)")
    parser.add_argument("--all-servers", action="store_true", help="peers too")
    parser.add_argument("--latency", action="store_true", help="also compare p99 latency")
    args = parser.parse_args()
    try:
        base, current = load(args.baseline), load(args.current)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    servers = None if args.all_servers else set(
        args.servers.split(",") if args.servers else WSCONN_SERVERS)
    lower = LOWER + (LATENCY if args.latency else ())
    rows = compare(base, current, servers, HIGHER, lower, args.threshold)
    if not rows:
        print("compare: no row is in both files", file=sys.stderr)
        return 2
    width = max(len(f"{w} {s}") for w, s, *_ in rows)
    flagged = 0
    for workload, server, metric, before, after, change, worse in rows:
        mark = "SLOWER" if worse else ""
        flagged += worse
        print(f"{workload + ' ' + server:<{width}}  {metric:<26} {before:>14.6g} -> {after:<14.6g} {change:+7.1f} %  {mark}")
    print(f"{flagged} of {len(rows)} figures worse by more than {args.threshold:g} %")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
