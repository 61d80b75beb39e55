"""A deliberately low-level WebSocket client for the conformance suite.

Standard library only: raw sockets, frames built and parsed by hand, so that
the suite can send anything (bad opcodes, RSV bits, unmasked frames, lengths
that lie, bytes cut at any point) and check every byte the server sends back.

Every blocking call has a deadline; every failure raises `Fail` with a
description of what was sent, what came back and what was expected.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODE_NAMES = {CONT: "continuation", TEXT: "text", BINARY: "binary",
                CLOSE: "close", PING: "ping", PONG: "pong"}

# How long the server may take to answer something it received, to send its
# close frame after a violation, or to close TCP after the closing handshake.
# Set by run.py (--prompt).
PROMPT = 2.0
# Deadline for operations that move a lot of data (16 MiB echoes).
BULK = 60.0


class Fail(Exception):
    """A case failed; the message says what was expected and what happened."""


def opname(op):
    return OPCODE_NAMES.get(op, "opcode %d" % op)


def show(data, limit=48):
    """A short printable form of some bytes for failure messages."""
    data = bytes(data)
    if len(data) <= limit:
        return "%d bytes %s" % (len(data), data.hex(" ") if data else "(empty)")
    return "%d bytes %s ... %s" % (len(data), data[:limit // 2].hex(" "), data[-8:].hex(" "))


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def mask_bytes(payload, key):
    """XOR `payload` with the 4-byte `key` repeated (fast for megabytes: one
    big-integer XOR instead of a Python loop)."""
    n = len(payload)
    if n == 0:
        return b""
    keystream = (key * (n // 4 + 1))[:n]
    x = int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")
    return x.to_bytes(n, "big")


def header(opcode, length, fin=True, rsv=0, mask_key=None):
    """A frame header with the minimal length encoding (`length` may lie about
    the payload that follows)."""
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask_key is not None else 0
    if length <= 125:
        h = struct.pack("!BB", b0, mbit | length)
    elif length <= 0xFFFF:
        h = struct.pack("!BBH", b0, mbit | 126, length)
    else:
        h = struct.pack("!BBQ", b0, mbit | 127, length)
    return h + (mask_key or b"")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None):
    """A complete client frame: masked with a random key unless mask=False."""
    payload = bytes(payload)
    if not mask:
        return header(opcode, len(payload), fin, rsv) + payload
    key = key if key is not None else os.urandom(4)
    return header(opcode, len(payload), fin, rsv, key) + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


def fragment_list(opcode, payload, size):
    """`payload` as a message in frames of at most `size` bytes (one frame
    when it fits), as a list of frames."""
    payload = bytes(payload)
    if len(payload) <= size:
        return [frame(opcode, payload)]
    parts = []
    n = len(payload)
    for start in range(0, n, size):
        op = opcode if start == 0 else CONT
        parts.append(frame(op, payload[start:start + size], fin=start + size >= n))
    return parts


def fragments(opcode, payload, size):
    """fragment_list() joined into one bytes object."""
    return b"".join(fragment_list(opcode, payload, size))


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def describe(self):
        extra = ""
        if self.opcode == CLOSE and len(self.payload) >= 2:
            code = struct.unpack("!H", self.payload[:2])[0]
            extra = " (code %d, reason %r)" % (code, bytes(self.payload[2:]))
        return "%s frame%s%s, payload %s" % (
            opname(self.opcode), "" if self.fin else " (FIN=0)", extra, show(self.payload))


def request(port, key="dGhlIHNhbXBsZSBub25jZQ==", path="/conformance", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n%s\r\n" % (path, port, key, extra)).encode()


# An ssl.SSLContext when the suite runs over TLS (run.py --tls-ca FILE).
TLS = None

# What a read or write may raise when the server drops the connection: over
# TLS, an abrupt end is an SSL error rather than a reset.
DROPPED = (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


class Client:
    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if TLS is not None:
            self.sock = TLS.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.buf = bytearray()
        self.pos = 0          # parse position in buf
        self.eof = False      # the server closed (FIN or RST)
        self.reset = False    # ... with an RST
        self.send_error = None  # the first error a send got (peer gone)
        self.allow_rsv1 = False  # permessage-deflate agreed: RSV1 on data frames

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ------------------------------------------------------------- sending

    def send_raw(self, data, chop=None, delay=0.0):
        """Sends `data` in one write, or cut into writes of `chop` bytes (an
        int, or a list of sizes used in turn), with `delay` seconds between
        writes. A send that fails because the server closed is remembered
        (`send_error`) and stops the sending; reading then shows why."""
        data = memoryview(bytes(data))
        if self.send_error is not None:
            return
        self.sock.settimeout(BULK)
        try:
            if not chop:
                self.sock.sendall(data)
                return
            sizes = chop if isinstance(chop, (list, tuple)) else [chop]
            pos, i = 0, 0
            while pos < len(data):
                n = sizes[i % len(sizes)]
                i += 1
                self.sock.sendall(data[pos:pos + n])
                pos += n
                if delay and pos < len(data):
                    time.sleep(delay)
        except (BrokenPipeError,) + DROPPED as e:
            self.send_error = e
        except socket.timeout:
            raise Fail("sending %d bytes timed out after %.0f s (the server stopped reading)"
                       % (len(data), BULK))

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, chop=None, delay=0.0):
        self.send_raw(frame(opcode, payload, fin, rsv, mask), chop, delay)

    def send_close(self, code=None, reason=b""):
        self.send_frame(CLOSE, close_payload(code, reason))

    # ------------------------------------------------------------- receiving

    def _fill(self, deadline, want):
        """Reads until `want` bytes are buffered after pos. Returns False on
        EOF/reset before that; raises Fail on timeout."""
        while len(self.buf) - self.pos < want:
            if self.eof:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout()
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(min(max(1 << 16, want - (len(self.buf) - self.pos)), 1 << 22))
            except DROPPED:
                self.eof = self.reset = True
                return False
            if not chunk:
                self.eof = True
                return False
            if self.pos > (1 << 20) and self.pos > len(self.buf) // 2:
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += chunk
        return True

    def _take(self, n):
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data

    def pending(self):
        return bytes(self.buf[self.pos:])

    def recv_frame(self, timeout=None, what="a frame"):
        """The next frame from the server. Raises Fail on timeout, EOF, or a
        frame no server may send (masked, RSV bits, bad opcode, bad control)."""
        deadline = time.monotonic() + (PROMPT if timeout is None else timeout)
        try:
            if not self._fill(deadline, 2):
                raise Fail("expected %s; the server closed TCP%s instead%s" % (
                    what, " with a reset" if self.reset else "", self._leftover()))
            b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
            n = b1 & 0x7F
            hlen = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if b1 & 0x80 else 0)
            if not self._fill(deadline, hlen):
                raise Fail("expected %s; TCP closed inside a frame header%s" % (what, self._leftover()))
            head = self._take(hlen)
            if n == 126:
                n = struct.unpack("!H", head[2:4])[0]
            elif n == 127:
                n = struct.unpack("!Q", head[2:10])[0]
            fin, rsv, op = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
            if b1 & 0x80:
                raise Fail("the server sent a masked frame (header %s)" % show(head))
            if rsv and not (rsv == 4 and self.allow_rsv1 and op in (TEXT, BINARY)):
                raise Fail("the server sent RSV bits %d (header %s)" % (rsv, show(head)))
            if op not in OPCODE_NAMES:
                raise Fail("the server sent reserved opcode %d (header %s)" % (op, show(head)))
            if op >= 8 and (not fin or n > 125):
                raise Fail("the server sent a bad control frame (header %s)" % show(head))
            if n > (1 << 26):
                raise Fail("the server sent a %d-byte frame (header %s)" % (n, show(head)))
            if not self._fill(deadline, n):
                raise Fail("expected %s; TCP closed inside a %s frame's payload" % (what, opname(op)))
            return Frame(fin, rsv, op, self._take(n))
        except socket.timeout:
            got = len(self.buf) - self.pos
            raise Fail("expected %s; nothing (complete) arrived within %.1f s%s" % (
                what, PROMPT if timeout is None else timeout,
                " (%d bytes of a frame arrived)" % got if got else ""))

    def _leftover(self):
        rest = self.pending()
        return " (unparsed bytes: %s)" % show(rest) if rest else ""

    def recv_message(self, timeout=None, what="a message"):
        """The next data message (reassembled if fragmented), as (opcode,
        payload). Pongs, pings and closes in between are failures here."""
        first = self.recv_frame(timeout, what)
        if first.opcode not in (TEXT, BINARY):
            raise Fail("expected %s; got a %s" % (what, first.describe()))
        parts = [first.payload]
        f = first
        while not f.fin:
            f = self.recv_frame(timeout, "the continuation of " + what)
            if f.opcode != CONT:
                raise Fail("expected a continuation of %s; got a %s" % (what, f.describe()))
            parts.append(f.payload)
        return first.opcode, b"".join(parts)

    # ------------------------------------------------------------- expectations

    def expect_message(self, opcode, payload, timeout=None, what=None):
        what = what or "the echo of a %s message (%s)" % (opname(opcode), show(payload, 16))
        op, got = self.recv_message(timeout, what)
        if op != opcode or got != payload:
            diff = ""
            if got != payload:
                i = next((i for i, (a, b) in enumerate(zip(got, payload)) if a != b),
                         min(len(got), len(payload)))
                diff = "; first difference at byte %d" % i
            raise Fail("expected %s: %s %s; got %s %s%s" % (
                what, opname(opcode), show(payload), opname(op), show(got), diff))

    def expect_pong(self, payload, timeout=None):
        f = self.recv_frame(timeout, "a pong with payload %s" % show(payload))
        if f.opcode != PONG or f.payload != payload:
            raise Fail("expected a pong with payload %s; got a %s" % (show(payload), f.describe()))

    def expect_close(self, codes, timeout=None, what=None):
        """The next frame must be a close with one of `codes` (an int, a
        collection, or None for "no status code"); then TCP must close within
        PROMPT seconds with nothing after the close frame. Returns the frame."""
        if isinstance(codes, int) or codes is None:
            codes = (codes,)
        want = " or ".join("no status" if c is None else str(c) for c in codes)
        what = what or "a close frame with code %s" % want
        f = self.recv_frame(timeout, what)
        if f.opcode != CLOSE:
            raise Fail("expected %s; got a %s" % (what, f.describe()))
        p = f.payload
        code = None
        if len(p) == 1:
            raise Fail("the server sent a close frame with a 1-byte payload")
        if len(p) >= 2:
            code = struct.unpack("!H", p[:2])[0]
            try:
                p[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise Fail("the server's close reason is not UTF-8: %s" % show(p[2:]))
        if code not in codes:
            raise Fail("expected %s; got a %s" % (what, f.describe()))
        self.expect_tcp_close("after its close frame")
        return f

    def expect_tcp_close(self, when, timeout=None):
        """The server closes TCP within `timeout` (PROMPT) with no more bytes."""
        timeout = PROMPT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        rest = self.pending()
        if rest:
            raise Fail("the server sent more bytes %s: %s" % (when, show(rest)))
        try:
            if self._fill(deadline, 1):
                raise Fail("the server sent more bytes %s: %s" % (when, show(self.pending())))
        except socket.timeout:
            raise Fail("the server did not close TCP within %.1f s %s" % (timeout, when))

    def close_handshake(self, code=1000, reason=b""):
        """Closes cleanly: sends close `code`, requires the same code back
        (first thing to arrive: nothing unexpected was sent before it), then
        TCP closed by the server."""
        self.send_close(code, reason)
        self.expect_close(code, what="the server's reply to close %s (its first frame after "
                                     "the expected traffic)" % code)

    def echo(self, opcode, payload, chop=None, timeout=None):
        """Sends one message in one frame and requires the same message back."""
        self.send_frame(opcode, payload, chop=chop)
        self.expect_message(opcode, payload, timeout)

    # ------------------------------------------------------------- handshake

    def handshake(self, key="dGhlIHNhbXBsZSBub25jZQ==", extra_headers="", then=b"", chop=None):
        """Sends the upgrade request (plus `then`, in the same write) and
        requires 101 with the right Sec-WebSocket-Accept. Bytes after the
        response head stay buffered as frames. Returns the response head."""
        self.send_raw(request(self.port, key, extra=extra_headers) + then, chop)
        status, headers, head = self.read_http_head()
        if status != 101:
            raise Fail("handshake: expected 101, got %r" % head)
        if headers.get("sec-websocket-accept") != accept_key(key):
            raise Fail("handshake: Sec-WebSocket-Accept %r, expected %r" % (
                headers.get("sec-websocket-accept"), accept_key(key)))
        if headers.get("upgrade", "").lower() != "websocket":
            raise Fail("handshake: Upgrade header %r" % headers.get("upgrade"))
        if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
            raise Fail("handshake: Connection header %r" % headers.get("connection"))
        return head

    def read_http_head(self, timeout=None):
        """Reads an HTTP response head: (status, {lowercase name: value}, text)."""
        deadline = time.monotonic() + (PROMPT if timeout is None else timeout)
        while True:
            end = self.buf.find(b"\r\n\r\n", self.pos)
            if end >= 0:
                break
            if len(self.buf) - self.pos > 65536:
                raise Fail("no end of the HTTP response head in 64 KiB")
            try:
                if not self._fill(deadline, len(self.buf) - self.pos + 1):
                    raise Fail("expected an HTTP response; TCP closed after %s" % show(self.pending()))
            except socket.timeout:
                raise Fail("expected an HTTP response; got %s within %.1f s" % (
                    show(self.pending()), PROMPT if timeout is None else timeout))
        head = self._take(end + 4 - self.pos).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.1") or not parts[1].isdigit():
            raise Fail("bad HTTP status line %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return int(parts[1]), headers, head

    def read_http_body(self, headers, timeout=None):
        n = int(headers.get("content-length", "0"))
        deadline = time.monotonic() + (PROMPT if timeout is None else timeout)
        try:
            if not self._fill(deadline, n):
                raise Fail("HTTP body cut: %d of %d bytes" % (len(self.pending()), n))
        except socket.timeout:
            raise Fail("HTTP body incomplete after %.1f s" % (PROMPT if timeout is None else timeout))
        return self._take(n)
