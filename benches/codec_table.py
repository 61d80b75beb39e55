#!/usr/bin/env python3
"""Prints the codec benchmark table from criterion's output and writes it as JSON.

Reads TARGET/criterion/<group>/<function>/<size>/new/{benchmark,estimates}.json as
written by `cargo bench --bench codec` (group = decode_text, decode_ascii, decode_binary,
encode_text, encode_binary), takes each median time, and prints GB/s (10^9 bytes
of payload per second) with the ratios the issue's goals are about:

  session pairs: wsconn_session / tungstenite, wsconn_session / fastwebsockets
                 (each library's whole path from bytes to a message, or back)
  core pairs:    wsconn_core / fastws_core (decode: unmask + UTF-8, in place),
                 wsconn_core / fastwebsockets (encode)
  wsconn_core / memcpy (goal: >= 0.5 for 64 KiB decode)

Usage: codec_table.py [--target DIR] [--json OUT]   (stdlib only)
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
IMPLS = ["memcpy", "wsconn_core", "wsconn_session", "tungstenite", "fastws_core", "fastwebsockets"]
GROUPS = ["decode_text", "decode_ascii", "decode_binary", "encode_text", "encode_binary"]


def size_label(n):
    if n >= 1 << 20:
        return f"{n >> 20} MiB"
    if n >= 1 << 10:
        return f"{n >> 10} KiB"
    return f"{n} B"


def load(target):
    root = os.path.join(target, "criterion")
    if not os.path.isdir(root):
        sys.exit(f"codec_table: no criterion output under {root}; run `cargo bench --bench codec` in benches/ first")
    rows = {}
    for group in GROUPS:
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        for impl in os.listdir(gdir):
            idir = os.path.join(gdir, impl)
            if not os.path.isdir(idir) or impl == "report":
                continue
            for size in os.listdir(idir):
                new = os.path.join(idir, size, "new")
                try:
                    with open(os.path.join(new, "estimates.json")) as f:
                        est = json.load(f)
                    with open(os.path.join(new, "benchmark.json")) as f:
                        bench = json.load(f)
                except (OSError, ValueError):
                    continue
                nbytes = (bench.get("throughput") or {}).get("Bytes") or int(size)
                ns = est["median"]["point_estimate"]
                rows.setdefault((group, int(size)), {})[impl] = {"ns": ns, "gbps": nbytes / ns}
    if not rows:
        sys.exit(f"codec_table: no codec results under {root}")
    return rows


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "target")))
    ap.add_argument("--json", help="also write the table here as JSON")
    args = ap.parse_args()
    rows = load(args.target)

    out = []
    head = ["case", "size"] + IMPLS + ["S/tung", "S/fws", "C/fwsC", "C/memcpy"]
    widths = [14, 7] + [max(8, len(i)) for i in IMPLS] + [7, 7, 7, 8]
    print("Codec throughput, GB/s of payload (median); ratios: S = wsconn_session, C = wsconn_core,")
    print("tung = tungstenite, fws = fastwebsockets (whole path), fwsC = fastws_core (decode) or")
    print("fastwebsockets (encode)")
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    goals = []
    for group in GROUPS:
        for size in sorted({s for (g, s) in rows if g == group}):
            r = rows[(group, size)]
            g = {i: r[i]["gbps"] if i in r else None for i in IMPLS}
            peer_core = "fastws_core" if group.startswith("decode") else "fastwebsockets"
            ratios = {
                "session_vs_tungstenite": ratio(g["wsconn_session"], g["tungstenite"]),
                "session_vs_fastwebsockets": ratio(g["wsconn_session"], g["fastwebsockets"]),
                "core_vs_fastws_core": ratio(g["wsconn_core"], g[peer_core]),
                "core_vs_memcpy": ratio(g["wsconn_core"], g["memcpy"]),
            }
            cells = [group, size_label(size)]
            cells += ["-" if g[i] is None else f"{g[i]:.2f}" for i in IMPLS]
            cells += ["-" if v is None else f"{v:.2f}" for v in ratios.values()]
            print("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
            out.append({"case": group, "size": size, "gbps": g, "ratios": ratios,
                        "ns": {i: r[i]["ns"] for i in r}})
            s_t, s_f = ratios["session_vs_tungstenite"], ratios["session_vs_fastwebsockets"]
            if s_t is not None and s_t < 2.0:
                goals.append(f"{group} {size_label(size)}: wsconn_session is {s_t:.2f}x tungstenite (goal >= 2)")
            if s_f is not None and s_f < 1.0:
                goals.append(f"{group} {size_label(size)}: wsconn_session is {s_f:.2f}x fastwebsockets (goal >= 1)")
            if group.startswith("decode") and size == 64 << 10 and ratios["core_vs_memcpy"] is not None \
                    and ratios["core_vs_memcpy"] < 0.5:
                goals.append(f"{group} 64 KiB: wsconn_core at {ratios['core_vs_memcpy']:.2f} of memcpy (goal >= 0.5)")
    print()
    if goals:
        print("Codec goals not met:")
        for line in goals:
            print("  " + line)
    else:
        print("Codec goals met: wsconn_session >= 2x tungstenite and >= 1x fastwebsockets at every size; "
              "64 KiB decode >= 0.5x memcpy")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"rows": out, "goals_not_met": goals}, f, indent=1)


if __name__ == "__main__":
    main()
