"""1. Framing (Autobahn 1.x; RFC 6455 §5.2, §5.3): payload lengths at every
boundary of the 7/16/64-bit length encodings, sent in one write and cut
into many writes; masking rules; pipelined messages."""

import struct

from registry import add, size_name, payload_for, kind_name, MiB, violation_case
from wsclient import TEXT, BINARY, PING, CLOSE, Fail, frame, mask_bytes, close_payload

SIZES = [0, 125, 126, 127, 128, 65535, 65536, 1 * MiB, 16 * MiB]
# Write sizes for messages too big for 1-byte writes, used in turn.
BIG_CHOP = [1, 13, 997, 65537]


def echo_case(opcode, size, chop):
    def run(ctx):
        c = ctx.client()
        payload = payload_for(opcode, size)
        c.echo(opcode, payload, chop=chop, timeout=60 if size > 65536 else None)
        c.close_handshake()
    return run


def register():
    for sub, opcode in ((1, TEXT), (2, BINARY)):
        n = 0
        for size in SIZES:
            big = size > 65536
            n += 1
            add("1.%d.%d" % (sub, n), "%s message of %s in one frame, one write"
                % (kind_name(opcode), size_name(size, exact=True)),
                echo_case(opcode, size, None), cost=1 + size / MiB)
            n += 1
            if big:
                how = "writes of %s bytes in turn" % "/".join(map(str, BIG_CHOP))
                chop = BIG_CHOP
            else:
                how = "1-byte writes"
                chop = 1
            add("1.%d.%d" % (sub, n), "%s message of %s in one frame, sent in %s"
                % (kind_name(opcode), size_name(size, exact=True), how),
                echo_case(opcode, size, chop), cost=1 + size / 4096 / 10 + size / MiB * 2)

    # 1.3: masking and length encoding.
    add("1.3.1", "unmasked text frame from the client → close 1002",
        violation_case(frame(TEXT, b"unmasked", mask=False), 1002))
    add("1.3.2", "unmasked ping from the client → close 1002, no pong",
        violation_case(frame(PING, b"unmasked", mask=False), 1002))
    add("1.3.3", "unmasked close from the client → close 1002",
        violation_case(frame(CLOSE, close_payload(1000), mask=False), 1002))
    add("1.3.4", "unmasked empty binary frame → close 1002",
        violation_case(frame(BINARY, b"", mask=False), 1002))

    def top_bit(ctx):
        c = ctx.client()
        # 64-bit length with the most significant bit set (RFC 6455 §5.2:
        # "the most significant bit MUST be 0"); no payload follows.
        c.send_raw(frame(TEXT, b"Hello") + struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + b"\x01\x02\x03\x04")
        c.expect_message(TEXT, b"Hello")
        c.expect_close(1002, what="a close 1002 for a 64-bit length with the top bit set")
    add("1.3.5", "64-bit payload length with the most significant bit set → close 1002 "
        "(at once, no payload sent)", top_bit)

    def zero_key(ctx):
        c = ctx.client()
        c.send_raw(frame(TEXT, b"all-zero masking key", key=b"\0\0\0\0"))
        c.expect_message(TEXT, b"all-zero masking key")
        c.close_handshake()
    add("1.3.6", "masked frame with an all-zero masking key is echoed", zero_key)

    def pipelined(chop):
        def run(ctx):
            c = ctx.client()
            msgs = []
            for i in range(100):
                op = TEXT if i % 2 == 0 else BINARY
                msgs.append((op, payload_for(op, (i * 37) % 300)))
            c.send_raw(b"".join(frame(op, p) for op, p in msgs), chop=chop)
            for i, (op, p) in enumerate(msgs):
                c.expect_message(op, p, what="echo %d of 100 pipelined messages (%s, %d bytes)"
                                 % (i + 1, kind_name(op), len(p)))
            c.close_handshake()
        return run
    add("1.4.1", "100 text and binary messages (0–299 bytes) in one write → 100 echoes in order",
        pipelined(None))
    add("1.4.2", "the same 100 messages sent in writes of 7 bytes → 100 echoes in order",
        pipelined(7), cost=2)

    def non_minimal(ctx):
        # A 5-byte payload with a 16-bit length field. RFC 6455 §5.2 says
        # the minimal number of bytes MUST be used, but it gives no rule
        # that a receiver must reject it; most servers (and Autobahn)
        # accept it. Required here: either an echo or a close 1002.
        c = ctx.client()
        key = b"\x11\x22\x33\x44"
        c.send_raw(struct.pack("!BBH", 0x81, 0x80 | 126, 5) + key + mask_bytes(b"short", key))
        f = c.recv_frame(what="an echo of \"short\" or a close 1002")
        if f.opcode == CLOSE:
            code = struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else None
            if code != 1002:
                raise Fail("non-minimal length: got %s" % f.describe())
            c.expect_tcp_close("after its close frame")
        else:
            if f.opcode != TEXT or f.payload != b"short" or not f.fin:
                raise Fail("non-minimal length: expected the echo of \"short\", got %s" % f.describe())
            c.close_handshake()
    add("1.5.1", "5-byte text payload with a non-minimal 16-bit length → echoed or close 1002",
        non_minimal)
