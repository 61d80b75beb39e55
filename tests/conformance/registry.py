"""The case registry and helpers shared by the section modules."""

import os
import random

from wsclient import Client, Fail, TEXT, PING, frame

SECTIONS = {
    1: "Framing",
    2: "Pings and pongs",
    3: "Reserved bits",
    4: "Opcodes",
    5: "Fragmentation",
    6: "UTF-8 handling",
    7: "Close handling",
    9: "Limits and big messages",
    10: "Miscellaneous",
    11: "Opening handshake",
    12: "Compressed messages (--deflate)",
    13: "Compression rules (--deflate)",
}

KiB = 1024
MiB = 1024 * 1024
# The library's default max frame and max message size.
MAX_MESSAGE = 16 * MiB


class Case:
    def __init__(self, cid, description, func, cost, tcp_only):
        self.id = cid
        self.description = description
        self.func = func
        self.cost = cost  # rough relative run time, to start slow cases first
        # It acts on TCP under the WebSocket bytes (a half-close): over TLS
        # the same act is a TLS-level one, so the case is not run there.
        self.tcp_only = tcp_only
        self.section = int(cid.split(".")[0])

    def sort_key(self):
        return tuple(int(p) for p in self.id.split("."))


CASES = []


def add(cid, description, func, cost=1, tcp_only=False):
    if any(c.id == cid for c in CASES):
        raise ValueError("duplicate case id " + cid)
    CASES.append(Case(cid, description, func, cost, tcp_only))


class Context:
    """What a case gets: the port and a factory of clients, all closed when
    the case ends."""

    def __init__(self, port):
        self.port = port
        self.clients = []

    def connect(self):
        c = Client(self.port)
        self.clients.append(c)
        return c

    def client(self):
        """A connected client that completed the opening handshake."""
        c = self.connect()
        c.handshake()
        return c

    def close_all(self):
        for c in self.clients:
            c.close()


def size_name(n, exact=False):
    """A size as text: 64 KiB, 125 bytes; with `exact`, 64 KiB (65536 bytes)."""
    if n >= MiB and n % MiB == 0:
        name = "%d MiB" % (n // MiB)
    elif n >= KiB and n % KiB == 0:
        name = "%d KiB" % (n // KiB)
    else:
        return "%d bytes" % n
    return "%s (%d bytes)" % (name, n) if exact else name


_TEXT_UNIT = "wsconn echo ✓ κόσμε – 𝄞 €100 — ".encode("utf-8")
_text_cache = {}


def text_payload(n):
    """Exactly `n` bytes of valid UTF-8 mixing 1- to 4-byte characters."""
    if n not in _text_cache:
        data = (_TEXT_UNIT * (n // len(_TEXT_UNIT) + 1))[:n]
        # Cut an incomplete last character and pad with ASCII.
        cut = n
        j = n - 1
        while j > 0 and n - j < 4 and (data[j] & 0xC0) == 0x80:
            j -= 1
        if n and data[j] >= 0xC0:
            length = 2 if data[j] < 0xE0 else 3 if data[j] < 0xF0 else 4
            if j + length > n:
                cut = j
        data = data[:cut] + b"x" * (n - cut)
        data.decode("utf-8")  # must be valid
        _text_cache[n] = data
    return _text_cache[n]


def binary_payload(n, seed=None):
    """`n` bytes covering every byte value (random, or seeded)."""
    if seed is None:
        return os.urandom(n)
    return random.Random(seed).randbytes(n)


def payload_for(opcode, n):
    return text_payload(n) if opcode == TEXT else binary_payload(n)


def kind_name(opcode):
    return "text" if opcode == TEXT else "binary"


def violation_case(bad_frames, code, chop=None, echoes=()):
    """A case function: a valid text message, then `bad_frames` (bytes), then
    a ping, all in one write (or chopped). The echo must come back (and the
    `echoes`, (opcode, payload) pairs of valid messages at the start of
    `bad_frames`), then a close with `code` and nothing else (the ping is not
    answered), then TCP closes."""
    def run(ctx):
        c = ctx.client()
        c.send_raw(frame(TEXT, b"Hello") + bad_frames + frame(PING, b"not answered"), chop=chop)
        c.expect_message(TEXT, b"Hello", what="the echo of the valid message sent before the violation")
        for op, payload in echoes:
            c.expect_message(op, payload, what="the echo of the valid message %r sent before the violation"
                             % payload)
        c.expect_close(code, what="a close with code %d right after the echo" % code)
    return run


def check(cond, message):
    if not cond:
        raise Fail(message)
