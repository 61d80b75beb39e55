"""12-13. permessage-deflate (RFC 7692; Autobahn 12.x and 13.x), run with
--deflate against a server that has compression on.

12: under each offer (parameter set), messages of 16 bytes to 128 KiB are
sent compressed as the agreement lets the client (its window, its context
takeover), in frames of several sizes; each echo must come back, compressed
or not, and a compressed echo must inflate with a decompressor of exactly
the server's agreed window, fresh for each message when the server agreed
to no context takeover.

13: the rules: which offers are accepted and how they are answered, RSV1
only on the first frame of a data message, invalid compressed data, text
validated after inflating, a decompression bomb, empty messages."""

import zlib

from registry import add, check, KiB, MiB
from wsclient import TEXT, BINARY, CONT, PING, CLOSE, Fail, frame, close_payload

TAIL = b"\x00\x00\xff\xff"

OFFERS = [
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=8; client_max_window_bits",
    "permessage-deflate; client_no_context_takeover; server_max_window_bits=12",
]
SIZES = [16, 64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 128 * KiB]
FRAME_SIZES = [None, 64 * KiB, 4 * KiB, 256, 7]


def parse_response(value, offer):
    """The agreed parameters of a `Sec-WebSocket-Extensions` answer to `offer`."""
    if value is None:
        raise Fail("the server did not accept %r (no Sec-WebSocket-Extensions)" % offer)
    items = [p.strip() for p in value.split(";")]
    check(items[0] == "permessage-deflate" and "," not in value,
          "the server answered %r to %r" % (value, offer))
    offered = {p.strip().split("=")[0]: p.strip() for p in offer.split(";")[1:]}
    agreed = {"server_no_context_takeover": False, "client_no_context_takeover": False,
              "server_max_window_bits": 15, "client_max_window_bits": 15}
    for p in items[1:]:
        name, _, val = p.partition("=")
        check(name in agreed, "unknown parameter %r in %r" % (name, value))
        if name.endswith("takeover"):
            check(val == "", "%r has a value in %r" % (name, value))
            agreed[name] = True
        else:
            check(val.isdigit() and 8 <= int(val) <= 15 and not val.startswith("0"),
                  "bad %r in %r" % (p, value))
            agreed[name] = int(val)
    if "server_no_context_takeover" in offered:
        check(agreed["server_no_context_takeover"], "server_no_context_takeover dropped in %r" % value)
    if "server_max_window_bits" in offered:
        want = int(offered["server_max_window_bits"].split("=")[1])
        check("server_max_window_bits" in value and agreed["server_max_window_bits"] <= want,
              "server_max_window_bits=%d not honoured in %r" % (want, value))
    if "client_max_window_bits" in value:
        check("client_max_window_bits" in offered, "client_max_window_bits not offered: %r" % value)
    return agreed


class Deflated:
    """A connection with permessage-deflate agreed, from the client's side."""

    def __init__(self, ctx, offer):
        self.c = ctx.connect()
        head = self.c.handshake(extra_headers="Sec-WebSocket-Extensions: %s\r\n" % offer)
        value = None
        for line in head.split("\r\n")[1:]:
            name, _, v = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                check(value is None, "two Sec-WebSocket-Extensions lines in the response")
                value = v.strip()
        self.agreed = parse_response(value, offer)
        self.c.allow_rsv1 = True
        self.compressor = None
        self.decompressor = None

    def compress(self, payload):
        a = self.agreed
        if self.compressor is None or a["client_no_context_takeover"]:
            # zlib cannot compress with an 8-bit raw window; 9 is still
            # within any larger agreement, and for 8 the message is sent
            # as stored blocks (level 0: no back-reference at all).
            bits = max(a["client_max_window_bits"], 9)
            level = 0 if a["client_max_window_bits"] == 8 else 6
            self.compressor = zlib.compressobj(level, zlib.DEFLATED, -bits)
        data = self.compressor.compress(payload) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        check(data.endswith(TAIL), "zlib output without the tail")
        return data[:-4]

    def send(self, opcode, payload, frame_size=None, compressed=True):
        data = self.compress(payload) if compressed else payload
        rsv = 4 if compressed else 0
        if frame_size is None or len(data) <= frame_size:
            self.c.send_raw(frame(opcode, data, rsv=rsv))
            return
        parts = []
        for start in range(0, len(data), frame_size):
            first = start == 0
            parts.append(frame(opcode if first else CONT, data[start:start + frame_size],
                               fin=start + frame_size >= len(data), rsv=rsv if first else 0))
        self.c.send_raw(b"".join(parts))

    def recv(self, what):
        """The next data message, inflated as agreed: (opcode, payload)."""
        first = self.c.recv_frame(None, what)
        if first.opcode not in (TEXT, BINARY):
            raise Fail("expected %s; got a %s" % (what, first.describe()))
        parts, f = [first.payload], first
        while not f.fin:
            f = self.c.recv_frame(None, "the continuation of " + what)
            check(f.opcode == CONT, "expected a continuation; got a %s" % f.describe())
            check(f.rsv == 0, "RSV1 on a continuation frame from the server")
            parts.append(f.payload)
        data = b"".join(parts)
        if first.rsv & 4:
            a = self.agreed
            if self.decompressor is None or a["server_no_context_takeover"]:
                self.decompressor = zlib.decompressobj(-a["server_max_window_bits"])
            try:
                data = self.decompressor.decompress(data + TAIL)
            except zlib.error as e:
                raise Fail("%s does not inflate within the agreed %d-bit window%s: %s" % (
                    what, a["server_max_window_bits"],
                    "" if a["server_no_context_takeover"] else " and context", e))
        return first.opcode, data

    def expect(self, opcode, payload, what):
        op, got = self.recv(what)
        check(op == opcode and got == payload, "%s: got %d bytes of opcode %d, expected %d of %d" % (
            what, len(got), op, len(payload), opcode))


def json_text(size, seed):
    out, i = [], seed
    total = 0
    while total < size:
        item = '{"id":%d,"name":"user%d","tags":["a","b"],"ok":true},' % (i, i % 97)
        out.append(item)
        total += len(item)
        i += 1
    return "".join(out)[:size].encode()


def echo_case(offer, size, frame_size):
    def run(ctx):
        d = Deflated(ctx, offer)
        for i in range(10):
            opcode = TEXT if i % 2 == 0 else BINARY
            payload = json_text(size, i)
            d.send(opcode, payload, frame_size)
            d.expect(opcode, payload, "the echo of compressed message %d (%d bytes)" % (i, size))
        d.c.close_handshake()
    return run


def violation(offer, make, code):
    """After a compressed message (echoed), `make(d)` bytes must close with `code`."""
    def run(ctx):
        d = Deflated(ctx, offer)
        d.send(TEXT, b"valid first, compressed valid first")
        d.expect(TEXT, b"valid first, compressed valid first", "the echo of the valid message")
        d.c.send_raw(make(d) + frame(PING, b"not answered"))
        d.c.expect_close(code)
    return run


def rsv1_on_continuation(d):
    data = d.compress(b"split across two frames, RSV1 on both")
    return frame(TEXT, data[:5], fin=False, rsv=4) + frame(CONT, data[5:], rsv=4)


def invalid_utf8(d):
    return frame(TEXT, d.compress(b"valid up to here \xff then not"), rsv=4)


def bomb(d):
    # 64 MiB of zeros: 64 KiB on the wire, four times the server's limit.
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    data = b"".join(z.compress(zeros) for _ in range(64)) + z.flush(zlib.Z_SYNC_FLUSH)
    return frame(BINARY, data[:-4], rsv=4)


def declined(offer):
    """An offer the server must decline: no extension, and the connection works."""
    def run(ctx):
        c = ctx.connect()
        head = c.handshake(extra_headers="Sec-WebSocket-Extensions: %s\r\n" % offer)
        check("sec-websocket-extensions" not in head.lower(),
              "the server accepted the invalid offer %r: %r" % (offer, head))
        c.echo(TEXT, b"plain after a declined offer")
        c.close_handshake()
    return run


def first_valid_wins(ctx):
    d = Deflated(ctx, "permessage-deflate; server_max_window_bits=16, "
                      "permessage-deflate; server_max_window_bits=10")
    check(d.agreed["server_max_window_bits"] <= 10, "the second offer's window was not honoured")
    payload = json_text(50 * KiB, 3)
    d.send(TEXT, payload)
    d.expect(TEXT, payload, "the echo under the second offer")


def malformed_header(ctx):
    c = ctx.connect()
    c.send_raw(("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate;;\r\n\r\n").encode())
    status, _, head = c.read_http_head()
    check(status == 400, "expected 400 for a malformed Sec-WebSocket-Extensions; got %r" % head)


def empty_and_uncompressed(ctx):
    d = Deflated(ctx, OFFERS[0])
    d.c.send_raw(frame(TEXT, b"\x00", rsv=4))  # RFC 7692 §7.2.3.6: an empty message
    d.expect(TEXT, b"", "the echo of an empty compressed message")
    d.send(BINARY, b"plain bytes on a compressed connection", compressed=False)
    d.expect(BINARY, b"plain bytes on a compressed connection", "the echo of an uncompressed message")
    d.c.send_raw(frame(TEXT, b"", rsv=0))
    d.expect(TEXT, b"", "the echo of an empty uncompressed message")
    payload = json_text(3000, 9)
    d.send(TEXT, payload)
    d.expect(TEXT, payload, "a compressed message after empty ones")


def with_pings(ctx):
    d = Deflated(ctx, OFFERS[0])
    payload = json_text(20 * KiB, 5)
    data = d.compress(payload)
    wire = b""
    for i, start in enumerate(range(0, len(data), 500)):
        first = start == 0
        wire += frame(TEXT if first else CONT, data[start:start + 500],
                      fin=start + 500 >= len(data), rsv=4 if first else 0)
        wire += frame(PING, b"ping %d" % i)
    d.c.send_raw(wire)
    frames = (len(data) + 499) // 500
    check(frames >= 3, "the message fits in %d frames" % frames)
    for i in range(frames - 1):
        d.c.expect_pong(b"ping %d" % i)
    # The last ping follows the message's last frame: its echo comes first.
    d.expect(TEXT, payload, "the echo of a compressed message sent between pings")
    d.c.expect_pong(b"ping %d" % (frames - 1))


def register():
    for a, offer in enumerate(OFFERS, 1):
        for b, size in enumerate(SIZES, 1):
            frame_size = FRAME_SIZES[(a + b) % len(FRAME_SIZES)]
            cost = 4 if size >= 64 * KiB else 1
            in_frames = "one frame" if frame_size is None else "frames of %d bytes" % frame_size
            add("12.%d.%d" % (a, b), "offer %r: 10 compressed messages of %d bytes in %s, echoed"
                % (offer, size, in_frames), echo_case(offer, size, frame_size), cost)
    offer = OFFERS[0]
    add("13.1.1", "RSV1 on a continuation frame → close 1002", violation(offer, rsv1_on_continuation, 1002))
    add("13.1.2", "RSV1 on a ping → close 1002",
        violation(offer, lambda d: frame(PING, b"x", rsv=4), 1002))
    add("13.1.3", "RSV1 on a close → close 1002",
        violation(offer, lambda d: frame(CLOSE, close_payload(1000), rsv=4), 1002))
    add("13.1.4", "RSV2 on a data frame → close 1002",
        violation(offer, lambda d: frame(TEXT, b"x", rsv=2), 1002))
    add("13.2.1", "invalid compressed data → close 1002",
        violation(offer, lambda d: frame(BINARY, b"\xff\xff\xff\xff", rsv=4), 1002))
    add("13.2.2", "compressed text that inflates to invalid UTF-8 → close 1007",
        violation(offer, invalid_utf8, 1007))
    add("13.2.3", "64 KiB frame inflating to 64 MiB (limit 16 MiB) → close 1009",
        violation(offer, bomb, 1009), 4)
    add("13.3.1", "empty compressed and uncompressed messages", empty_and_uncompressed)
    add("13.3.2", "a compressed message in 500-byte frames with a ping after each", with_pings)
    for i, bad in enumerate([
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; unknown_parameter",
    ], 1):
        add("13.4.%d" % i, "offer %r declined, the connection goes on" % bad, declined(bad))
    add("13.5.1", "the first valid offer of a list is accepted", first_valid_wins)
    add("13.5.2", "a malformed Sec-WebSocket-Extensions header → 400", malformed_header)
