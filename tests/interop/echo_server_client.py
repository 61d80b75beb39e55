#!/usr/bin/env python3
"""Interop checks for c-examples/echo_server, using the `websockets` library.

Usage: echo_server_client.py ws://127.0.0.1:9998/echo [CHECK...]

With CHECK names, only those checks run (see CHECKS below).

Runs every check of echo_client.py (text, binary, empty, 1 MiB, fragmented,
ping, pipelined) and these:

  binary_16mib             a 16 MiB message (the server's default limit)
  ping_in_fragmented_send  a ping (and its pong) between the fragments of a
                           message being sent
  backpressure_*           many/huge messages sent while not reading the
                           echoes for a while: none may be lost or reordered
  concurrent_200           200 connections at once, each echoing a few
                           messages and closing with 1000
  close_CODE               the client closes with CODE (1000, 1001, 3000,
                           4999, with and without a reason): the server's
                           close frame carries the same code

Every check prints "ok NAME" or "FAIL NAME: why"; the last line is
"N passed, M failed".  The exit status is 0 only if every check passed.
Every network wait has a timeout, so a broken server cannot hang the run.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo_client as base  # noqa: E402  (the shared checks and helpers)
from echo_client import connect  # noqa: E402
from echo_client import (  # noqa: E402
    MIB,
    TIMEOUT,
    CheckFailed,
    close_frame_received,
    discard,
    echo,
    expect,
    open_connection,
    recv,
    same_message,
    send,
)

CONCURRENT_CONNECTIONS = 200


async def check_binary_16mib(ws):
    await echo(ws, os.urandom(16 * MIB))


async def check_ping_in_fragmented_send(ws):
    pong_ok = []

    async def fragments():
        yield "first "
        yield "second "
        # Between two fragments of the message: ping, and wait for the pong.
        waiter = await asyncio.wait_for(ws.ping(b"mid-message"), TIMEOUT)
        try:
            await asyncio.wait_for(waiter, TIMEOUT)
            pong_ok.append(True)
        except asyncio.TimeoutError:
            pass
        yield "third \u2713"

    await asyncio.wait_for(ws.send(fragments()), 2 * TIMEOUT)
    expect(pong_ok, f"no pong within {TIMEOUT:g} s for a ping sent mid-message")
    same_message(await recv(ws), "first second third \u2713")
    await echo(ws, "after the fragmented message")


async def unread_echoes(ws, messages, pause=1.0):
    """Sends `messages` while not reading for `pause` seconds (the server's
    output fills up and it must stop reading, not drop echoes), then checks
    every echo, in order."""
    async def sender():
        for m in messages:
            await asyncio.wait_for(ws.send(m), 6 * TIMEOUT)

    task = asyncio.ensure_future(sender())
    try:
        await asyncio.sleep(pause)
        for i, m in enumerate(messages):
            try:
                same_message(await recv(ws), m)
            except CheckFailed as e:
                raise CheckFailed(f"echo {i} of {len(messages)}: {e}")
            except asyncio.TimeoutError:
                raise CheckFailed(
                    f"echo {i} of {len(messages)} did not arrive within {TIMEOUT:g} s"
                )
        await asyncio.wait_for(task, TIMEOUT)
    finally:
        task.cancel()


async def open_slow_reader(url):
    """A connection whose client stops reading from TCP as soon as one
    message is waiting to be received (max_queue=1), so echoes that are not
    received pile up in the server."""
    return await asyncio.wait_for(
        connect(
            url,
            max_size=base.MAX_SIZE,
            max_queue=1,
            ping_interval=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        ),
        TIMEOUT + 5,
    )


async def check_backpressure_many(_ws):
    # 48 x 1 MiB: three times the server's 16 MiB output limit.
    ws = await open_slow_reader(_ws_url)
    try:
        await unread_echoes(ws, [os.urandom(MIB) for _ in range(48)])
    finally:
        await discard(ws)


async def check_backpressure_huge(_ws):
    # Messages near the output limit: an echo finds the output too full to
    # take it (WSCONN_ERR_FULL) and must be retried later, not lost.
    ws = await open_slow_reader(_ws_url)
    try:
        # Each huge message is followed by a small one, so that the pause
        # that a full output causes leaves input read but not yet delivered.
        msgs = []
        for i in range(6):
            msgs += [bytes([i]) * (14 * MIB), f"small text {i} after a huge message"]
        await unread_echoes(ws, msgs)
    finally:
        await discard(ws)


async def check_concurrent(_ws):
    url = _ws_url

    async def one(i):
        ws = await open_connection(url)
        try:
            for m in (f"conn {i} text \u00e9", f"conn {i} binary".encode() * 50, "x" * i):
                await echo(ws, m)
            await asyncio.wait_for(ws.close(code=1000), TIMEOUT + 5)
            got = close_frame_received(ws)
            expect(got is not None and got[0] == 1000, f"close frame {got}")
        except BaseException:
            await discard(ws)
            raise

    results = await asyncio.gather(
        *(one(i) for i in range(CONCURRENT_CONNECTIONS)), return_exceptions=True
    )
    errors = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    if errors:
        i, e = errors[0]
        why = str(e) or type(e).__name__
        raise CheckFailed(
            f"{len(errors)} of {CONCURRENT_CONNECTIONS} connections failed; "
            f"first (connection {i}): {type(e).__name__}: {why}"
        )


def close_check(code, reason):
    async def check(ws):
        await echo(ws, f"before close {code}")
        await asyncio.wait_for(ws.close(code=code, reason=reason), TIMEOUT + 5)
        received = close_frame_received(ws)
        expect(received is not None, "no close frame received from the server")
        got_code, got_reason = received
        expect(
            got_code == code,
            f"sent close {code} {reason!r}, server answered {got_code} {got_reason!r}",
        )

    return check


# Checks that take a connection and leave it open (None after a close check:
# the next check opens a new connection).
CHECKS = [(name, check) for name, check in base.CHECKS if not name.startswith("close")]
CHECKS += [
    ("binary_16mib", check_binary_16mib),
    ("ping_in_fragmented_send", check_ping_in_fragmented_send),
    ("backpressure_many", check_backpressure_many),
    ("backpressure_huge", check_backpressure_huge),
    ("concurrent_200", check_concurrent),
    ("close_1000", close_check(1000, "")),
    ("close_1000_reason", close_check(1000, "bye \u00e9\u2713")),
    ("close_1001", close_check(1001, "going away")),
    ("close_3000", close_check(3000, "registered")),
    ("close_4999", close_check(4999, "private use")),
]
CLOSING = {name for name, _ in CHECKS if name.startswith("close")}

_ws_url = None


async def main(url, only):
    global _ws_url
    _ws_url = url
    passed = failed = 0
    ws = None
    unknown = set(only) - {name for name, _ in CHECKS}
    if unknown:
        print(f"unknown checks: {sorted(unknown)}", file=sys.stderr)
        return False
    for name, check in CHECKS:
        if only and name not in only:
            continue
        try:
            if ws is None:
                ws = await open_connection(url)
            await check(ws)
        except Exception as e:
            failed += 1
            why = str(e) if isinstance(e, CheckFailed) else f"{type(e).__name__}: {e}"
            if isinstance(e, asyncio.TimeoutError):
                why = f"timed out after {TIMEOUT:g} s"
            print(f"FAIL {name}: {why}", flush=True)
            await discard(ws)
            ws = None
        else:
            passed += 1
            print(f"ok {name}", flush=True)
            if name in CLOSING:
                ws = None
    await discard(ws)
    print(f"{passed} passed, {failed} failed", flush=True)
    return failed == 0 and passed > 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} ws://HOST:PORT/PATH [CHECK...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if asyncio.run(main(sys.argv[1], sys.argv[2:])) else 1)
