#!/usr/bin/env python3
"""A stand-in for the Autobahn Testsuite's fuzzing server (wstest -m
fuzzingserver), for testing a WebSocket *client* with no third-party code.

It speaks the fuzzing server's side of the testee-client protocol:

  /getCaseCount                 sends the number of cases as a text message
  /runCase?case=I&agent=A       runs case I (1-based) against the client,
                                which is expected to echo every message
  /updateReports?agent=A        closes with 1000, prints the results table and
                                "N passed, M failed", and exits (status 0 only
                                if every case ran and passed)

With --deflate it runs the compression cases instead (Autobahn's 12.x and
13.x in the client role, RFC 7692): each answers the client's
permessage-deflate offer its own way (as offered, a smaller window for either
side, client_no_context_takeover imposed, declined), sends compressed
messages in one frame or many, and requires every echo to inflate with
exactly the agreed window and context; then the rules: invalid compressed
data, RSV1 on a continuation, text checked after inflating, a bomb.
With --tls-cert/--tls-key it speaks wss://.

Frames are written by hand, unmasked (except where a case breaks that rule on
purpose).  Every frame the client sends is checked: masked, no RSV bits,
control frames short and unfragmented, valid close payloads, nothing after
its close frame.  The client may fragment its echoes however it likes: they
are reassembled before comparing.

Usage: server.py [--port PORT] [--agent NAME] [--timeout SECONDS] [--deflate]
                 [--tls-cert FILE --tls-key FILE]
  --port 0 picks a free port; the server prints
  "autobahn_standin listening on 127.0.0.1:PORT" once it accepts connections.

Python 3.8+, standard library only.  Every wait has a timeout.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import random
import ssl
import struct
import sys
import time
import urllib.parse
import zlib

import deflate

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 10.0  # seconds, for one frame from the client
QUIET = 0.3  # seconds the client must stay silent after its close frame
MAX_HEAD = 8192
MIB = 1024 * 1024

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
OP_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


class CaseFailed(Exception):
    pass


class PeerClosed(Exception):
    """The client sent a close frame where a message was expected."""

    def __init__(self, code, reason):
        super().__init__(f"client sent close {code} {reason!r}")
        self.code = code
        self.reason = reason


# --- frames ------------------------------------------------------------------


def xor_mask(data, key):
    """data XOR the repeated 4-byte key (fast for 16 MiB: one big-int XOR)."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=None):
    """One frame; unmasked unless `mask` (4 bytes) is given."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        return head + mask + xor_mask(payload, mask)
    return head + payload


def close_frame(code=None, reason=b""):
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return frame(OP_CLOSE, payload)


def valid_close_code(code):
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011) or 3000 <= code <= 4999


def describe(data, limit=40):
    r = repr(bytes(data[:limit]))
    return f"[{len(data)}] {r}{'...' if len(data) > limit else ''}"


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload


# --- one connection ----------------------------------------------------------


class Conn:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.problems = []  # rule violations by the client, in any case
        self.frames_received = 0
        self.pongs = []
        self.close_sent = False
        self.deflate = None  # a deflate.Agreement when the extension was agreed
        self.offer = None  # the client's permessage-deflate offer, if any

    def problem(self, what):
        if what not in self.problems:
            self.problems.append(what)

    async def send(self, data):
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT * 6)

    async def send_close(self, code=None, reason=b""):
        self.close_sent = True
        await self.send(close_frame(code, reason))

    async def _read(self, n, timeout, what):
        try:
            return await asyncio.wait_for(self.reader.readexactly(n), timeout)
        except asyncio.TimeoutError:
            raise CaseFailed(f"nothing from the client within {timeout:g} s (waiting for {what})")
        except asyncio.IncompleteReadError as e:
            raise CaseFailed(
                f"client closed TCP while the server waited for {what} "
                f"({len(e.partial)} bytes of a frame read)"
            )
        except (ConnectionError, ssl.SSLError) as e:
            raise CaseFailed(f"connection error while waiting for {what}: {e}")

    async def read_frame(self, what, timeout=TIMEOUT):
        """Reads one frame, unmasks it and checks the rules for client frames."""
        b0, b1 = await self._read(2, timeout, what)
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
        masked, n = bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self._read(2, timeout, what))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self._read(8, timeout, what))
            if n > 256 * MIB:
                raise CaseFailed(f"client frame claims {n} bytes")
        key = await self._read(4, timeout, what) if masked else None
        payload = await self._read(n, max(timeout, n / MIB), what) if n else b""
        if key:
            payload = xor_mask(payload, key)
        self.frames_received += 1
        name = OP_NAMES.get(opcode, f"opcode {opcode}")
        if not masked:
            self.problem(f"unmasked {name} frame from the client")
        compressible = self.deflate is not None and opcode in (OP_TEXT, OP_BINARY)
        if rsv and not (rsv == 4 and compressible):
            self.problem(f"{name} frame with RSV bits {rsv:03b}")
        if opcode not in OP_NAMES:
            self.problem(f"client sent reserved opcode {opcode}")
        if opcode >= 8 and (n > 125 or not fin):
            self.problem(f"bad control frame from the client ({name}, {n} bytes, fin={fin})")
        return Frame(fin, rsv, opcode, payload)

    def parse_close(self, payload):
        if len(payload) == 0:
            return None, ""
        if len(payload) == 1:
            self.problem("close frame with a 1-byte payload")
            return -1, ""
        (code,) = struct.unpack("!H", payload[:2])
        if not valid_close_code(code):
            self.problem(f"close code {code} is not allowed on the wire")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            self.problem("close reason is not UTF-8")
            reason = repr(payload[2:])
        return code, reason

    async def recv_message(self, what="an echo", timeout=TIMEOUT):
        """The next data message, reassembled and inflated: (opcode, payload).
        Pings are answered, pongs kept in self.pongs; a close frame raises
        PeerClosed."""
        parts, opcode, compressed = None, None, False
        while True:
            f = await self.read_frame(what, timeout)
            if f.opcode == OP_PONG:
                self.pongs.append(f.payload)
            elif f.opcode == OP_PING:
                await self.send(frame(OP_PONG, f.payload))
            elif f.opcode == OP_CLOSE:
                raise PeerClosed(*self.parse_close(f.payload))
            elif f.opcode == OP_CONT:
                if parts is None:
                    raise CaseFailed("continuation frame without a message to continue")
                parts.append(f.payload)
            elif f.opcode in (OP_TEXT, OP_BINARY):
                if parts is not None:
                    raise CaseFailed("new data frame inside an unfinished fragmented message")
                parts, opcode, compressed = [f.payload], f.opcode, bool(f.rsv & 4)
            else:
                raise CaseFailed(f"reserved opcode {f.opcode} from the client")
            if parts is not None and f.fin:
                data = b"".join(parts)
                if compressed and self.deflate is not None:
                    try:
                        data = self.deflate.inflate(data)
                    except deflate.BadData as e:
                        raise CaseFailed(f"the client's compressed {OP_NAMES[opcode]} message {e}")
                return opcode, data

    async def send_message(self, opcode, payload, compressed=True, frame_size=None):
        """A data message, compressed as agreed (RSV1 on its first frame only),
        in one frame or in frames of `frame_size` bytes."""
        data = self.deflate.compress(payload) if compressed else payload
        rsv = 4 if compressed else 0
        if frame_size is None or len(data) <= frame_size:
            await self.send(frame(opcode, data, rsv=rsv))
            return
        wire = b""
        for start in range(0, len(data), frame_size):
            first = start == 0
            wire += frame(opcode if first else OP_CONT, data[start:start + frame_size],
                          fin=start + frame_size >= len(data), rsv=rsv if first else 0)
        await self.send(wire)

    async def expect_echo(self, opcode, payload, timeout=TIMEOUT):
        name = OP_NAMES[opcode]
        try:
            got_op, got = await self.recv_message(f"the echo of a {name} message {describe(payload)}", timeout)
        except PeerClosed as e:
            raise CaseFailed(f"expected the echo of a {name} message {describe(payload)}, got close {e.code} {e.reason!r}")
        if got_op != opcode:
            raise CaseFailed(f"sent a {name} message, the echo is {OP_NAMES[got_op]} {describe(got)}")
        if got != payload:
            i = next((i for i, (a, b) in enumerate(zip(got, payload)) if a != b), min(len(got), len(payload)))
            raise CaseFailed(
                f"echo differs: sent {len(payload)} bytes, got {len(got)} (first difference at {i}): {describe(got)}"
            )

    async def expect_pong(self, payload, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while payload not in self.pongs:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CaseFailed(f"no pong with payload {describe(payload)} (pongs: {self.pongs!r})")
            f = await self.read_frame(f"a pong with payload {describe(payload)}", left)
            if f.opcode == OP_PONG:
                self.pongs.append(f.payload)
            elif f.opcode == OP_CLOSE:
                code, reason = self.parse_close(f.payload)
                raise CaseFailed(f"expected a pong, got close {code} {reason!r}")
            else:
                raise CaseFailed(f"expected a pong, got a {OP_NAMES.get(f.opcode, f.opcode)} frame {describe(f.payload)}")
        self.pongs.remove(payload)

    async def await_client_close(self, what):
        """Reads until the client's close frame, which must come before any
        data message; returns (code, reason)."""
        while True:
            f = await self.read_frame(what)
            if f.opcode == OP_CLOSE:
                return self.parse_close(f.payload)
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_PING:
                await self.send(frame(OP_PONG, f.payload))
                continue
            raise CaseFailed(
                f"expected {what}, got a {OP_NAMES.get(f.opcode, f'opcode {f.opcode}')} frame {describe(f.payload)}"
            )

    async def check_quiet(self, tcp_close_allowed):
        """After the client's close frame: nothing more may come; unless
        `tcp_close_allowed`, the client must also leave closing TCP to us."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), QUIET)
        except asyncio.TimeoutError:
            return
        except (ConnectionError, ssl.SSLError) as e:
            if not tcp_close_allowed:
                self.problem(f"connection error after the client's close frame: {e}")
            return
        if data:
            self.problem(f"client sent {describe(data)} after its close frame")
        elif not tcp_close_allowed:
            self.problem("client closed TCP before the server did (the server closes first)")

    async def server_close(self, code=1000, reason=b"done"):
        """The normal end of a case: the server closes with `code`; the client
        must answer with the same code, then send nothing and wait for the
        server to close TCP."""
        await self.send_close(code, reason)
        got, got_reason = await self.await_client_close(f"the client's close frame answering close {code}")
        if got != code:
            raise CaseFailed(f"server closed with {code}, the client answered {got} {got_reason!r}")
        await self.check_quiet(tcp_close_allowed=False)

    async def expect_failure(self, code, what):
        """The client must fail the connection with close `code` (no echo);
        `code` may be a tuple of the codes allowed."""
        codes = code if isinstance(code, tuple) else (code,)
        got, reason = await self.await_client_close(f"a close {code} ({what})")
        if got not in codes:
            raise CaseFailed(f"{what}: expected close {code}, the client sent close {got} {reason!r}")
        if not self.close_sent:
            try:
                await self.send_close(got)
            except (ConnectionError, ssl.SSLError):
                return  # the client failed the connection and closed TCP: allowed
        await self.check_quiet(tcp_close_allowed=True)


# --- the cases ---------------------------------------------------------------

BASIC_CASES = []  # (name, coroutine function, timeout in seconds, deflate policy)
DEFLATE_CASES = []  # the same, with --deflate
CASES = BASIC_CASES  # the ones this run serves (see main)


def case(timeout=30, policy=None):
    """A case; with a `policy` (from deflate.py), a compression case that
    answers the client's permessage-deflate offer by it."""
    def register(fn):
        cases = BASIC_CASES if policy is None else DEFLATE_CASES
        cases.append((fn.__name__[len("case_"):], fn, timeout, policy))
        return fn

    return register


async def echo(c, opcode, payload):
    await c.send(frame(opcode, payload))
    await c.expect_echo(opcode, payload)


@case()
async def case_text_echo(c):
    await echo(c, OP_TEXT, "Hello, wsconn! h\u00e9llo \u2713 \U0001f600".encode())
    await c.server_close()


@case()
async def case_binary_echo(c):
    await echo(c, OP_BINARY, bytes(range(256)) * 4)
    await c.server_close()


@case()
async def case_empty_text(c):
    await echo(c, OP_TEXT, b"")
    await c.server_close()


@case()
async def case_empty_binary(c):
    await echo(c, OP_BINARY, b"")
    await c.server_close()


@case()
async def case_length_boundaries(c):
    # 7-bit, 16-bit and 64-bit payload lengths around their limits.
    rng = random.Random(6455)
    for n in (125, 126, 65535):
        await echo(c, OP_BINARY, bytes(rng.getrandbits(8) for _ in range(n)))
    await c.server_close()


@case()
async def case_message_64kib(c):
    await echo(c, OP_BINARY, os.urandom(64 * 1024))
    await echo(c, OP_TEXT, b"\xe2\x9c\x93" * 21845 + b"!")  # 65536 bytes of text
    await c.server_close()


@case(timeout=180)
async def case_message_16mib(c):
    payload = os.urandom(16 * MIB)
    await c.send(frame(OP_BINARY, payload))
    await c.expect_echo(OP_BINARY, payload, timeout=120)
    await c.server_close()


@case()
async def case_fragmented_text(c):
    # Three fragments; the check mark (e2 9c 93) is split across two of them.
    parts = [b"Fragm", b"ented \xe2\x9c", b"\x93 text"]
    await c.send(frame(OP_TEXT, parts[0], fin=False))
    await c.send(frame(OP_CONT, parts[1], fin=False))
    await c.send(frame(OP_CONT, parts[2], fin=True))
    await c.expect_echo(OP_TEXT, b"".join(parts))
    await c.server_close()


@case()
async def case_fragmented_binary_empty_parts(c):
    parts = [b"", b"\x00\x01\x02", b"", b"\xff"]
    await c.send(frame(OP_BINARY, parts[0], fin=False))
    for i, p in enumerate(parts[1:], 1):
        await c.send(frame(OP_CONT, p, fin=i == len(parts) - 1))
    await c.expect_echo(OP_BINARY, b"".join(parts))
    await c.server_close()


@case()
async def case_ping_inside_fragmented(c):
    ping = b"ping in the middle"
    await c.send(frame(OP_TEXT, b"Hello, ", fin=False))
    await c.send(frame(OP_PING, ping))
    await c.send(frame(OP_CONT, b"world", fin=True))
    await c.expect_echo(OP_TEXT, b"Hello, world")
    await c.expect_pong(ping)
    await c.server_close()


@case()
async def case_server_ping(c):
    ping = b"\x00\x01ping\xff"
    await c.send(frame(OP_PING, ping))
    await c.expect_pong(ping)
    await echo(c, OP_TEXT, b"still open after the ping")
    await c.server_close()


@case()
async def case_ping_125_bytes(c):
    ping = bytes(range(125))
    await c.send(frame(OP_PING, ping))
    await c.expect_pong(ping)
    await c.server_close()


@case()
async def case_pipelined_100(c):
    msgs = [(OP_TEXT if i % 2 else OP_BINARY, f"message {i} \u2713".encode() * (i + 1)) for i in range(100)]
    await c.send(b"".join(frame(op, p) for op, p in msgs))
    for op, p in msgs:
        await c.expect_echo(op, p)
    await c.server_close()


@case()
async def case_frame_bytewise(c):
    # One frame written a byte at a time: the client must buffer partial frames.
    payload = "byte by byte \u2713".encode()
    for b in frame(OP_TEXT, payload):
        await c.send(bytes([b]))
        await asyncio.sleep(0.002)
    await c.expect_echo(OP_TEXT, payload)
    await c.server_close()


@case()
async def case_invalid_utf8_text(c):
    # "κόσμε" followed by an encoded surrogate (ed a0 80) and "edited".
    await c.send(frame(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"))
    await c.expect_failure(1007, "a text message that is not UTF-8")


@case()
async def case_invalid_utf8_fail_fast(c):
    # The first fragment is already invalid (0xff never occurs in UTF-8); the
    # rest never comes: the client must fail without waiting for it.
    await c.send(frame(OP_TEXT, b"valid so far \xff", fin=False))
    await c.expect_failure(1007, "an invalid first fragment of a text message")


@case()
async def case_masked_server_frame(c):
    await c.send(frame(OP_TEXT, b"masked by the server", mask=b"\x12\x34\x56\x78"))
    await c.expect_failure(1002, "a masked frame from the server")


@case()
async def case_reserved_opcode(c):
    await c.send(frame(0x3, b"reserved"))
    await c.expect_failure(1002, "reserved data opcode 3")


@case()
async def case_reserved_control_opcode(c):
    await c.send(frame(0xB, b"reserved"))
    await c.expect_failure(1002, "reserved control opcode 11")


@case()
async def case_rsv1_without_extension(c):
    await c.send(frame(OP_TEXT, b"rsv1", rsv=4))
    await c.expect_failure(1002, "RSV1 set without a negotiated extension")


@case()
async def case_continuation_without_start(c):
    await c.send(frame(OP_CONT, b"orphan"))
    await c.expect_failure(1002, "a continuation frame with no message to continue")


@case()
async def case_control_frame_too_long(c):
    await c.send(frame(OP_PING, b"x" * 126))
    await c.expect_failure(1002, "a ping with 126 bytes of payload")


@case()
async def case_close_one_byte_payload(c):
    c.close_sent = True  # a (broken) close frame is out
    await c.send(frame(OP_CLOSE, b"\x03"))
    await c.expect_failure(1002, "a close frame with a 1-byte payload")


@case()
async def case_server_close_1000(c):
    await echo(c, OP_TEXT, b"before the close")
    await c.send_close(1000, b"bye")
    code, reason = await c.await_client_close("the client's answer to close 1000")
    if code != 1000:
        raise CaseFailed(f"server closed with 1000, the client answered {code} {reason!r}")
    # Nothing after its close frame, and TCP is the server's to close.
    await c.check_quiet(tcp_close_allowed=False)


@case()
async def case_server_close_no_status(c):
    await c.send_close()  # empty payload: no status code
    code, reason = await c.await_client_close("the client's answer to an empty close")
    if code not in (None, 1000):
        raise CaseFailed(f"server closed without a status, the client answered {code} {reason!r}")
    await c.check_quiet(tcp_close_allowed=False)


# --- the compression cases (--deflate) -----------------------------------------


def json_text(size, seed):
    """`size` bytes of JSON-like text (compresses well)."""
    out, total, i = [], 0, seed
    while total < size:
        item = '{"id":%d,"name":"user%d","tags":["a","b"],"ok":true},' % (i, i % 97)
        out.append(item)
        total += len(item)
        i += 1
    return "".join(out)[:size].encode()


def repeating(size, period, seed):
    """`size` bytes repeating a random block of `period` bytes: a compressor
    refers back exactly `period` bytes, so a window or a context the client
    was not allowed shows when its echo is inflated."""
    rng = random.Random(seed)
    block = bytes(rng.getrandbits(8) for _ in range(period))
    return (block * (size // period + 1))[:size]


def agreed(c, what=None):
    """The agreement in force; fails the case when there is none (or when
    `what` of it does not hold)."""
    if c.deflate is None:
        raise CaseFailed(f"permessage-deflate was not agreed (the client offered {c.offer!r})")
    if what is not None and not what(c.deflate):
        raise CaseFailed(f"the client's offer {c.offer!r} does not allow this case's answer "
                         f"{c.deflate.response()!r}")
    return c.deflate


async def deflated_echo(c, opcode, payload, frame_size=None, compressed=True):
    await c.send_message(opcode, payload, compressed, frame_size)
    await c.expect_echo(opcode, payload)


@case(policy=deflate.as_offered)
async def case_deflate_text_sizes(c):
    agreed(c)
    for i, size in enumerate((16, 64, 256, 1024, 4096, 16384, 65536, 131072)):
        await deflated_echo(c, OP_TEXT, json_text(size, i))
    await c.server_close()


@case(policy=deflate.as_offered)
async def case_deflate_binary_in_frames(c):
    agreed(c)
    for i, frame_size in enumerate((4096, 256, 7)):
        await deflated_echo(c, OP_BINARY, repeating(20000, 700, i), frame_size)
    await c.server_close()


@case(policy=deflate.as_offered)
async def case_deflate_uncompressed_and_empty(c):
    agreed(c)
    await c.send(frame(OP_TEXT, b"\x00", rsv=4))  # RFC 7692 7.2.3.6: an empty message
    await c.expect_echo(OP_TEXT, b"")
    await c.send(frame(OP_BINARY, b""))
    await c.expect_echo(OP_BINARY, b"")
    for i in range(4):
        await deflated_echo(c, OP_TEXT, json_text(3000, i), compressed=i % 2 == 0)
    await c.server_close()


async def same_message_again(c, size, seed):
    """One random message four times, each echoed: compressors that keep
    their context refer back to the earlier ones."""
    agreed(c)
    message = repeating(size, size, seed)
    for _ in range(4):
        await deflated_echo(c, OP_BINARY, message)
    await c.server_close()


@case(policy=deflate.as_offered)
async def case_deflate_server_context(c):
    # With context takeover (unless the client asked for none), the server's
    # messages refer back to the earlier ones: the client must keep them.
    await same_message_again(c, 2048, 1)


@case(policy=deflate.server_window_9)
async def case_deflate_server_window_9(c):
    agreed(c, lambda a: a.server_bits == 9)
    for i, period in enumerate((300, 700, 5000)):
        await deflated_echo(c, OP_BINARY, repeating(30000, period, i))
    await c.server_close()


@case(policy=deflate.client_window_9)
async def case_deflate_client_window_9(c):
    # Repeats 1 KiB apart: a client compressing with more than a 9-bit window
    # (512 bytes) refers back further, which the server cannot inflate.
    agreed(c, lambda a: a.client_bits == 9)
    for i in range(3):
        await deflated_echo(c, OP_BINARY, repeating(16384, 1024, i))
    await c.server_close()


@case(policy=deflate.client_no_context_takeover)
async def case_deflate_client_no_context_takeover(c):
    # A client keeping its context though told not to would refer back to
    # its earlier echoes, which a fresh decompressor cannot follow.
    await same_message_again(c, 4096, 2)


@case(policy=deflate.as_offered)
async def case_deflate_pings_between_frames(c):
    a = agreed(c)
    payload = json_text(20000, 5)
    data = a.compress(payload)
    starts = list(range(0, len(data), 500))
    wire = b""
    for i, start in enumerate(starts):
        first = start == 0
        wire += frame(OP_TEXT if first else OP_CONT, data[start:start + 500],
                      fin=start + 500 >= len(data), rsv=4 if first else 0)
        wire += frame(OP_PING, b"ping %d" % i)
    await c.send(wire)
    await c.expect_echo(OP_TEXT, payload)
    for i in range(len(starts)):
        await c.expect_pong(b"ping %d" % i)
    await c.server_close()


@case(policy=deflate.as_offered)
async def case_deflate_invalid_data(c):
    agreed(c)
    await deflated_echo(c, OP_TEXT, b"valid first, then not")
    await c.send(frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=4))
    await c.expect_failure((1002, 1007), "compressed data that does not inflate")


@case(policy=deflate.as_offered)
async def case_deflate_rsv1_on_continuation(c):
    a = agreed(c)
    data = a.compress(b"split across two frames, RSV1 on both")
    await c.send(frame(OP_TEXT, data[:5], fin=False, rsv=4) + frame(OP_CONT, data[5:], rsv=4))
    await c.expect_failure(1002, "RSV1 on a continuation frame")


@case(policy=deflate.as_offered)
async def case_deflate_invalid_utf8_inside(c):
    a = agreed(c)
    await c.send(frame(OP_TEXT, a.compress(b"valid up to here \xff then not"), rsv=4))
    await c.expect_failure(1007, "compressed text that inflates to invalid UTF-8")


@case(policy=deflate.as_offered, timeout=60)
async def case_deflate_bomb(c):
    # 80 MiB of zeros, 80 KiB on the wire: over the client's 64 MiB limit.
    agreed(c)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MIB)
    data = b"".join(z.compress(zeros) for _ in range(80)) + z.flush(zlib.Z_SYNC_FLUSH)
    await c.send(frame(OP_BINARY, data[:-4], rsv=4))
    await c.expect_failure(1009, "a message inflating past the client's limit")


@case(policy=deflate.declined)
async def case_deflate_declined(c):
    # No extension: the client goes on without it (RSV1 would be a problem).
    if c.deflate is not None:
        raise CaseFailed("the offer was to be declined")
    await echo(c, OP_TEXT, json_text(5000, 7))
    await c.server_close()


# --- the server --------------------------------------------------------------


class Results:
    def __init__(self, expected_agent):
        self.expected_agent = expected_agent
        self.agents = set()
        self.cases = {}  # number -> (ok, detail, seconds)
        self.meta = {}  # "getCaseCount" / "updateReports" -> (ok, detail, seconds)
        self.finished = asyncio.Event()

    def record(self, key, ok, detail, seconds):
        table = self.cases if isinstance(key, int) else self.meta
        if key in table:
            ok, detail = False, f"run more than once (again: {detail})"
        table[key] = (ok, detail, seconds)
        print(f"{'pass' if ok else 'FAIL'} {key}: {detail}", flush=True)

    def check_agent(self, agent):
        if not agent:
            return "no agent parameter"
        self.agents.add(agent)
        if self.expected_agent and agent != self.expected_agent:
            return f"agent {agent!r}, expected {self.expected_agent!r}"
        if len(self.agents) > 1:
            return f"more than one agent name: {sorted(self.agents)}"
        return None

    def report(self):
        rows = [("-", "getCaseCount", self.meta.get("getCaseCount"))]
        rows += [(str(i), CASES[i - 1][0], self.cases.get(i)) for i in range(1, len(CASES) + 1)]
        rows.append(("-", "updateReports", self.meta.get("updateReports")))
        passed = failed = 0
        print(f"{'case':>4}  {'name':<34} {'result':<6} {'time':>8}  detail")
        for num, name, res in rows:
            if res is None:
                ok, detail, secs = False, "not run", None
            else:
                ok, detail, secs = res
            passed += ok
            failed += not ok
            t = "" if secs is None else f"{secs:.3f}s"
            print(f"{num:>4}  {name:<34} {'pass' if ok else 'FAIL':<6} {t:>8}  {detail}")
        print(f"{passed} passed, {failed} failed", flush=True)
        return failed == 0


async def read_request(reader):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(reader.read(MAX_HEAD), TIMEOUT)
        if not chunk:
            raise CaseFailed("client closed TCP during the opening handshake")
        head += chunk
        if len(head) > MAX_HEAD:
            raise CaseFailed("opening handshake over 8 KiB")
    head, rest = head.split(b"\r\n\r\n", 1)
    if rest:
        raise CaseFailed("client sent frames before the handshake response")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        raise CaseFailed(f"bad request line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep:
            raise CaseFailed(f"bad header line {line!r}")
        headers[k.strip().lower()] = v.strip()
    return parts[1], headers


def check_upgrade(headers):
    """The accept key for a valid client handshake; raises CaseFailed otherwise."""
    if headers.get("upgrade", "").lower() != "websocket":
        raise CaseFailed(f"Upgrade header {headers.get('upgrade')!r}")
    if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
        raise CaseFailed(f"Connection header {headers.get('connection')!r}")
    if headers.get("sec-websocket-version") != "13":
        raise CaseFailed(f"Sec-WebSocket-Version {headers.get('sec-websocket-version')!r}")
    if "host" not in headers:
        raise CaseFailed("no Host header")
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise CaseFailed(f"Sec-WebSocket-Key {key!r} is not 16 bytes in base64")
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


async def handle(reader, writer, results):
    t0 = time.monotonic()
    key_name = None
    try:
        try:
            target, headers = await read_request(reader)
        except (CaseFailed, asyncio.TimeoutError, ConnectionError, UnicodeDecodeError) as e:
            print(f"bad request: {e!r}", flush=True)
            return
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        agent = query.get("agent", [""])[0]
        if url.path == "/getCaseCount":
            key_name = "getCaseCount"
        elif url.path == "/updateReports":
            key_name = "updateReports"
        elif url.path == "/runCase":
            try:
                key_name = int(query.get("case", [""])[0])
            except ValueError:
                key_name = None
            if key_name is not None and not 1 <= key_name <= len(CASES):
                key_name = None
        if key_name is None:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            print(f"404 for {target!r}", flush=True)
            return
        if key_name == "getCaseCount":
            timeout, fn = 30, None
        elif key_name == "updateReports":
            timeout, fn = 30, None
        else:
            _, fn, timeout, policy = CASES[key_name - 1]
        try:
            accept = check_upgrade(headers)
        except CaseFailed as e:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            results.record(key_name, False, f"bad opening handshake: {e}", time.monotonic() - t0)
            return
        # Only compression cases accept the extension, each by its policy.
        offer = deflate.parse_offer(headers.get("sec-websocket-extensions"))
        agreement = policy(offer) if isinstance(key_name, int) and policy and offer is not None else None
        extension = b""
        if agreement is not None:
            extension = b"Sec-WebSocket-Extensions: " + agreement.response().encode() + b"\r\n"
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n" + extension + b"\r\n"
        )
        c = Conn(reader, writer)
        c.deflate = agreement
        c.offer = offer
        agent_problem = None if key_name == "getCaseCount" else results.check_agent(agent)
        try:
            if key_name == "getCaseCount":
                coro = count_then_close(c)
            elif key_name == "updateReports":
                coro = c.server_close(1000, b"reports updated")
            else:
                coro = fn(c)
            await asyncio.wait_for(coro, timeout)
            if agent_problem:
                c.problem(agent_problem)
            ok = not c.problems
            detail = "; ".join(c.problems) if c.problems else f"ok ({c.frames_received} frames, all masked)"
        except CaseFailed as e:
            ok, detail = False, "; ".join([str(e)] + c.problems)
        except PeerClosed as e:
            ok, detail = False, "; ".join([f"unexpected close {e.code} {e.reason!r}"] + c.problems)
        except asyncio.TimeoutError:
            ok, detail = False, "; ".join([f"case not finished within {timeout} s"] + c.problems)
        except ConnectionError as e:
            ok, detail = False, "; ".join([f"connection error: {e}"] + c.problems)
        results.record(key_name, ok, detail, time.monotonic() - t0)
    finally:
        try:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 2)
        except Exception:
            pass
        if key_name == "updateReports":
            results.finished.set()


async def count_then_close(c):
    await c.send(frame(OP_TEXT, str(len(CASES)).encode()))
    await c.server_close(1000, b"")


async def main(args):
    global CASES
    CASES = DEFLATE_CASES if args.deflate else BASIC_CASES
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    results = Results(args.agent)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, results), "127.0.0.1", args.port, ssl=tls
    )
    port = server.sockets[0].getsockname()[1]
    print(f"autobahn_standin: {len(CASES)} cases", flush=True)
    print(f"autobahn_standin listening on 127.0.0.1:{port}", flush=True)
    try:
        await asyncio.wait_for(results.finished.wait(), args.timeout)
    except asyncio.TimeoutError:
        print(f"autobahn_standin: no /updateReports within {args.timeout} s", flush=True)
    server.close()
    all_passed = results.report()
    return 0 if all_passed and results.finished.is_set() else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=9001, help="port on 127.0.0.1 (0: a free one)")
    p.add_argument("--agent", default=None, help="the agent name the client must use")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for /updateReports")
    p.add_argument("--deflate", action="store_true", help="run the compression cases instead")
    p.add_argument("--tls-cert", metavar="FILE", help="serve wss:// with this certificate chain (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="and this key (PEM)")
    sys.exit(asyncio.run(main(p.parse_args())))
