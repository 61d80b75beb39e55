#!/usr/bin/env python3
"""Interop checks for a WebSocket echo server, using the `websockets` library.

Usage: echo_client.py ws://127.0.0.1:9001/echo

Every check prints "ok NAME" or "FAIL NAME: why"; the last line is
"N passed, M failed".  The exit status is 0 only if every check passed.
Every network wait has a timeout, so a broken server cannot hang the run.
"""

import asyncio
import os
import random
import sys

try:  # websockets >= 13: the new asyncio implementation
    from websockets.asyncio.client import connect
except ImportError:  # websockets 12: the legacy implementation
    from websockets.client import connect

TIMEOUT = 10.0  # seconds, for every single network wait
MAX_SIZE = 32 * 1024 * 1024
MIB = 1024 * 1024


class CheckFailed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise CheckFailed(why)


def describe(value, limit=60):
    """Short description of a message for failure output."""
    r = repr(value)
    if len(r) > limit:
        r = r[:limit] + "..."
    return f"{type(value).__name__}[{len(value)}] {r}"


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def same_message(got, sent):
    """Raise unless `got` is the echo of `sent` (same type, same content)."""
    expect(
        type(got) is type(sent),
        f"sent {type(sent).__name__}, got {describe(got)}",
    )
    if got != sent:
        i = first_difference(got, sent)
        raise CheckFailed(
            f"content differs: sent {len(sent)}, got {len(got)} "
            f"(first difference at index {i}): got {describe(got)}"
        )


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def send(ws, message):
    await asyncio.wait_for(ws.send(message), TIMEOUT)


async def echo(ws, message):
    await send(ws, message)
    same_message(await recv(ws), message)


def random_text(nbytes):
    """Random valid text of exactly `nbytes` UTF-8 bytes, with 1- to 4-byte
    characters."""
    alphabet = "aZ09 ~\u00e9\u00fc\u00df\u0416\u20ac\u2713\u6f22\U0001f600\U00010348"
    rng = random.Random(6455)
    text = "".join(rng.choices(alphabet, k=nbytes // 4))
    pad = nbytes - len(text.encode("utf-8"))
    return text + "x" * pad


# --- the checks: each gets an open connection -----------------------------


async def check_text(ws):
    await echo(ws, "Hello")


async def check_text_non_ascii(ws):
    await echo(ws, "h\u00e9llo w\u00f6rld \u2713 \U0001f600")


async def check_binary(ws):
    await echo(ws, bytes([0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF]) + b"binary")


async def check_empty_text(ws):
    await echo(ws, "")


async def check_empty_binary(ws):
    await echo(ws, b"")


async def check_binary_1mib(ws):
    await echo(ws, os.urandom(MIB))


async def check_text_1mib(ws):
    text = random_text(MIB)
    assert len(text.encode("utf-8")) == MIB
    await echo(ws, text)


async def check_fragmented_text(ws):
    fragments = ["Frag", "mented ", "t\u00e9xt ", "", "\u2713 message"]
    await send(ws, fragments)  # an iterable is sent as one fragmented message
    same_message(await recv(ws), "".join(fragments))


async def check_fragmented_binary(ws):
    fragments = [b"\x00\x01", os.urandom(70000), b"", b"\xff" * 3]
    await send(ws, fragments)
    same_message(await recv(ws), b"".join(fragments))


async def check_ping(ws):
    # The pong waiter resolves only when a pong with this payload arrives.
    waiter = await asyncio.wait_for(ws.ping(b"ping \x00\xff payload"), TIMEOUT)
    try:
        await asyncio.wait_for(waiter, TIMEOUT)
    except asyncio.TimeoutError:
        raise CheckFailed(f"no pong with the ping's payload within {TIMEOUT:g} s")
    # The connection still echoes afterwards.
    await echo(ws, "after ping")


async def check_pipelined_100(ws):
    messages = [
        f"message {i} \u2713" if i % 2 == 0 else f"binary {i}".encode() * (i + 1)
        for i in range(100)
    ]
    for m in messages:
        await send(ws, m)
    for i, m in enumerate(messages):
        try:
            same_message(await recv(ws), m)
        except CheckFailed as e:
            raise CheckFailed(f"echo {i} of 100: {e}")


def close_frame_received(ws):
    """(code, reason) of the close frame received from the server, or None."""
    rcvd = getattr(ws, "close_rcvd", None)  # legacy implementation
    if rcvd is None:
        protocol = getattr(ws, "protocol", None)  # new implementation
        rcvd = getattr(protocol, "close_rcvd", None)
    if rcvd is not None:
        return rcvd.code, rcvd.reason
    code = getattr(ws, "close_code", None)
    return None if code is None else (code, getattr(ws, "close_reason", ""))


async def check_close(ws):
    # close() sends the close frame, waits for the server's, then for TCP.
    await asyncio.wait_for(ws.close(code=1000, reason="bye"), TIMEOUT + 5)
    received = close_frame_received(ws)
    expect(received is not None, "no close frame received from the server")
    code, reason = received
    expect(code == 1000, f"server closed with code {code} reason {reason!r}, expected 1000")


CHECKS = [
    ("text", check_text),
    ("text_non_ascii", check_text_non_ascii),
    ("binary", check_binary),
    ("empty_text", check_empty_text),
    ("empty_binary", check_empty_binary),
    ("binary_1mib", check_binary_1mib),
    ("text_1mib", check_text_1mib),
    ("fragmented_text", check_fragmented_text),
    ("fragmented_binary", check_fragmented_binary),
    ("ping_pong", check_ping),
    ("pipelined_100", check_pipelined_100),
    ("close_1000", check_close),
]


async def open_connection(url):
    return await asyncio.wait_for(
        connect(
            url,
            max_size=MAX_SIZE,
            ping_interval=None,  # no keepalive pings of its own to confuse checks
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        ),
        TIMEOUT + 5,
    )


async def discard(ws):
    """Drop a connection in an unknown state without waiting for anything."""
    if ws is None:
        return
    transport = getattr(ws, "transport", None)
    if transport is not None:
        transport.abort()
    try:
        await asyncio.wait_for(ws.close(), 2)
    except Exception:
        pass


async def main(url):
    passed = failed = 0
    ws = None
    for name, check in CHECKS:
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
            # Whatever went wrong may have left replies in flight: start the
            # next check on a fresh connection.
            await discard(ws)
            ws = None
        else:
            passed += 1
            print(f"ok {name}", flush=True)
    await discard(ws)
    print(f"{passed} passed, {failed} failed", flush=True)
    return failed == 0 and passed > 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} ws://HOST:PORT/PATH", file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if asyncio.run(main(sys.argv[1])) else 1)
