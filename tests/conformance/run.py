#!/usr/bin/env python3
"""WebSocket server conformance suite (RFC 6455), grouped like the Autobahn
Testsuite (sections 1-7, 9, 10) plus the opening handshake (11).

Standard library only; every frame is built and parsed by hand over raw
sockets. Run it against an echo server listening on 127.0.0.1:

    python3 tests/conformance/run.py --port 9001 [--filter 6.4] [--verbose]
    python3 tests/conformance/run.py --list-markdown

Exit status: 0 when every selected case passed, 1 when one failed, 2 when
the server cannot be reached or the arguments are wrong. The last line of
the output is "N passed, M failed".
"""

import argparse
import concurrent.futures
import os
import socket
import ssl
import sys
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import registry  # noqa: E402
import wsclient  # noqa: E402
import s01_framing  # noqa: E402
import s02_pingpong  # noqa: E402
import s03_rsv  # noqa: E402
import s04_opcodes  # noqa: E402
import s05_fragmentation  # noqa: E402
import s06_utf8  # noqa: E402
import s07_close  # noqa: E402
import s09_limits  # noqa: E402
import s10_misc  # noqa: E402
import s11_handshake  # noqa: E402
import s12_compression  # noqa: E402
import utf8data  # noqa: E402

MODULES = [s01_framing, s02_pingpong, s03_rsv, s04_opcodes, s05_fragmentation, s06_utf8,
           s07_close, s09_limits, s10_misc, s11_handshake]

# Cases at least this costly (multi-MiB messages) run in a pool of their own
# of BIG_JOBS threads, to bound the suite's memory (each holds several copies
# of up to 16 MiB) without holding up the many small cases.
BIG_COST = 8
BIG_JOBS = 2


def load_cases(deflate=False):
    if not registry.CASES:
        utf8data._selfcheck()
        for m in MODULES + ([s12_compression] if deflate else []):
            m.register()
    return sorted(registry.CASES, key=lambda c: c.sort_key())


def selected(cases, filters):
    if not filters:
        return cases
    out = []
    for c in cases:
        if any(c.id == f or c.id.startswith(f.rstrip(".") + ".") for f in filters):
            out.append(c)
    return out


def list_markdown(cases):
    lines = []
    current = None
    for c in cases:
        if c.section != current:
            current = c.section
            n = sum(1 for x in cases if x.section == current)
            if lines:
                lines.append("")
            lines.append("### %d. %s (%d cases)" % (current, registry.SECTIONS[current], n))
            lines.append("")
            lines.append("| id | case |")
            lines.append("|---|---|")
        lines.append("| %s | %s |" % (c.id, c.description.replace("|", "\\|")))
    print("\n".join(lines))


class Result:
    def __init__(self, case, ok, detail, seconds):
        self.case, self.ok, self.detail, self.seconds = case, ok, detail, seconds


def run_case(case, port):
    start = time.monotonic()
    ctx = registry.Context(port)
    try:
        case.func(ctx)
        return Result(case, True, "", time.monotonic() - start)
    except wsclient.Fail as e:
        return Result(case, False, str(e), time.monotonic() - start)
    except Exception as e:  # a socket error the case did not expect, or a bug
        detail = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=4))
        return Result(case, False, detail, time.monotonic() - start)
    finally:
        ctx.close_all()


def table(results, cases, name, port, seconds):
    lines = ["Conformance results for %s (127.0.0.1:%d): %d cases in %.1f s"
             % (name, port, len(cases), seconds), ""]
    lines.append("  %-32s %6s %7s %7s" % ("section", "cases", "passed", "failed"))
    sections = sorted({c.section for c in cases})
    for s in sections:
        rs = [r for r in results if r.case.section == s]
        total = sum(1 for c in cases if c.section == s)
        passed = sum(1 for r in rs if r.ok)
        lines.append("  %2d %-29s %6d %7d %7d" % (s, registry.SECTIONS[s], total, passed, total - passed))
    passed = sum(1 for r in results if r.ok)
    lines.append("     %-29s %6d %7d %7d" % ("total", len(cases), passed, len(cases) - passed))
    return "\n".join(lines), passed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, help="the echo server's port on 127.0.0.1")
    ap.add_argument("--filter", action="append", default=[],
                    help="run only cases whose id is PREFIX or starts with PREFIX. (repeatable; "
                         "comma-separated lists too)")
    ap.add_argument("--deflate", action="store_true",
                    help="add sections 12-13 (permessage-deflate; the server must have it on)")
    ap.add_argument("--tls-ca", metavar="FILE",
                    help="connect over TLS, trusting the CA certificates of FILE (PEM)")
    ap.add_argument("--list-markdown", action="store_true", help="print the case list as Markdown")
    ap.add_argument("--list", action="store_true", help="print the case ids and descriptions")
    ap.add_argument("--jobs", type=int, default=8, help="cases run concurrently (default 8)")
    ap.add_argument("--prompt", type=float, default=2.0,
                    help="seconds the server gets to answer, close after a violation, or close TCP "
                         "after the closing handshake (default 2)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds for the whole run; unfinished cases fail (default 300)")
    ap.add_argument("--name", default="server", help="server name for the results table")
    ap.add_argument("--verbose", action="store_true", help="print every case's result")
    args = ap.parse_args()

    filters = [f.strip() for spec in args.filter for f in spec.split(",") if f.strip()]
    cases = selected(load_cases(args.deflate), filters)
    if args.list_markdown:
        list_markdown(cases)
        return 0
    if args.list:
        for c in cases:
            print("%-8s %s" % (c.id, c.description))
        return 0
    if args.port is None:
        ap.error("--port is required (or --list / --list-markdown)")
    if not cases:
        ap.error("no case matches %s" % filters)
    wsclient.PROMPT = args.prompt
    if args.tls_ca:
        wsclient.TLS = ssl.create_default_context(cafile=args.tls_ca)
        skipped = [c.id for c in cases if c.tcp_only]
        cases = [c for c in cases if not c.tcp_only]
        if skipped:
            print("not run over TLS (they half-close TCP under the TLS stream): %s" % ", ".join(skipped))

    try:
        socket.create_connection(("127.0.0.1", args.port), timeout=5).close()
    except OSError as e:
        print("cannot connect to 127.0.0.1:%d: %s" % (args.port, e))
        print("0 passed, %d failed" % len(cases))
        return 2

    start = time.monotonic()
    jobs = max(2, args.jobs)
    pools = [concurrent.futures.ThreadPoolExecutor(max_workers=min(BIG_JOBS, jobs - 1)),
             concurrent.futures.ThreadPoolExecutor(max_workers=jobs - min(BIG_JOBS, jobs - 1))]
    # Slowest first, so that the long cases overlap with the many short ones.
    order = sorted(cases, key=lambda c: -c.cost)
    futures = {pools[0 if c.cost >= BIG_COST else 1].submit(run_case, c, args.port): c for c in order}
    done, not_done = concurrent.futures.wait(futures, timeout=args.timeout)
    results = [f.result() for f in done]
    for f in not_done:
        c = futures[f]
        f.cancel()
        results.append(Result(c, False, "did not finish within the run's %.0f s (--timeout)" % args.timeout,
                              args.timeout))
    elapsed = time.monotonic() - start
    results.sort(key=lambda r: r.case.sort_key())

    for r in results:
        if args.verbose or not r.ok:
            print("%s %-8s %s (%.2f s)" % ("ok  " if r.ok else "FAIL", r.case.id, r.case.description, r.seconds))
            if not r.ok:
                for line in r.detail.rstrip().split("\n"):
                    print("         " + line)
    if any(not r.ok for r in results) or args.verbose:
        print()
    text, passed = table(results, cases, args.name, args.port, elapsed)
    print(text)
    print("%d passed, %d failed" % (passed, len(cases) - passed))
    sys.stdout.flush()
    if not_done:
        os._exit(1)  # worker threads are still blocked in their (bounded) socket calls
    for pool in pools:
        pool.shutdown(wait=True)
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
