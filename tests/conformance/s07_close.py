"""7. Close handling (Autobahn 7.x; RFC 6455 §5.5.1, §7): a close is answered
by a close with the same status code, after which the server sends nothing
and closes TCP first; close payloads are checked (length, code, UTF-8
reason); nothing received after a close is processed; a client that drops
TCP at any point does not disturb the server."""

import socket
import struct
import time

from registry import add, violation_case
from wsclient import Fail, TEXT, BINARY, PING, CLOSE, frame, close_payload

# Codes a close frame may carry (RFC 6455 §7.4.1 and the 3000–4999 ranges of
# §7.4.2). 1012–1014 are registered with IANA since, but this library (see
# include/wsconn.h, wsconn_close) accepts only 1000–1003, 1007–1011 and
# 3000–4999 on the wire.
VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


def register():
    def empty_close(ctx):
        c = ctx.client()
        c.send_frame(CLOSE, b"")
        # RFC 6455 §5.5.1: the reply typically echoes the status code; with
        # none received, an empty close or 1000 are both correct.
        c.expect_close((None, 1000), what="an empty close or a close 1000 in reply to an empty close")
    add("7.1.1", "close without payload → empty close (or 1000) replied, then TCP closed by the server",
        empty_close)

    def after_message(ctx):
        c = ctx.client()
        c.send_raw(frame(TEXT, b"Hello") + frame(CLOSE, close_payload(1000)))
        c.expect_message(TEXT, b"Hello")
        c.expect_close(1000)
    add("7.1.2", "text message then close in one write → echo, close 1000, TCP closed", after_message)

    def data_after_close(ctx):
        c = ctx.client()
        c.send_raw(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"after close")
                   + frame(BINARY, b"after close"))
        c.expect_close(1000, what="the close reply, and no echo of the messages sent after the close")
    add("7.1.3", "close then text and binary messages in one write → only the close reply, no echo",
        data_after_close)

    def ping_after_close(ctx):
        c = ctx.client()
        c.send_raw(frame(CLOSE, close_payload(1000)) + frame(PING, b"after close"))
        c.expect_close(1000, what="the close reply, and no pong for the ping sent after the close")
    add("7.1.4", "close then ping in one write → only the close reply, no pong", ping_after_close)

    def late_data(ctx):
        c = ctx.client()
        c.send_close(1000)
        f = c.recv_frame(what="the close reply")
        if f.opcode != CLOSE:
            raise Fail("expected the close reply; got a %s" % f.describe())
        c.send_frame(TEXT, b"too late")  # may fail: the server may have closed already
        c.expect_tcp_close("after its close reply and a late text message")
    add("7.1.5", "text message sent after the close reply arrived → not echoed, TCP closed", late_data)

    def second_close(ctx):
        c = ctx.client()
        c.send_raw(frame(CLOSE, close_payload(1000)) + frame(CLOSE, close_payload(1001)))
        c.expect_close(1000, what="exactly one close reply (1000) to two closes")
    add("7.1.6", "two closes in one write → one close reply (1000), nothing else", second_close)

    def drop_after_close(ctx):
        c = ctx.client()
        c.send_close(1000)
        # Drop TCP at once, with a reset (SO_LINGER 0), before reading anything.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        time.sleep(0.05)
        c2 = ctx.client()
        c2.echo(TEXT, b"next connection")
        c2.close_handshake()
    add("7.1.7", "close then immediate TCP reset by the client → the server survives; a new "
        "connection echoes", drop_after_close)

    def drop_mid_frame(ctx):
        c = ctx.client()
        c.send_raw(frame(TEXT, b"x" * 1000)[:500])
        c.close()
        c2 = ctx.client()
        c2.echo(TEXT, b"next connection")
        c2.close_handshake()
    add("7.1.8", "TCP closed by the client in the middle of a frame → a new connection echoes",
        drop_mid_frame)

    def half_close(message, corked, echo=None):
        """The client sends `message` (bytes) and half-closes TCP without a
        close frame. With `corked`, the bytes and the FIN leave in one TCP
        segment (TCP_CORK), so the server sees them in one readiness event.
        `echo`: the text message that must be echoed first."""
        def run(ctx):
            c = ctx.client()
            if corked:
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            c.send_raw(message)
            if not corked:
                time.sleep(0.05)
            c.sock.shutdown(socket.SHUT_WR)
            if echo is not None:
                c.expect_message(TEXT, echo)
            # No close frame is due (the peer is gone: 1006, never sent);
            # the server must close its side.
            c.expect_tcp_close("after the client half-closed TCP without a close frame")
        return run
    add("7.1.9", "client half-closes TCP (FIN) in the middle of a frame, in a later segment → "
        "the server closes TCP", half_close(frame(TEXT, b"y" * 1000)[:100], False), tcp_only=True)
    add("7.1.10", "client sends part of a frame and FIN in the same TCP segment → the server "
        "closes TCP (the FIN is not lost after a short read)",
        half_close(frame(TEXT, b"y" * 1000)[:100], True), tcp_only=True)
    add("7.1.11", "client sends a complete text message and FIN in the same TCP segment → echo, "
        "then the server closes TCP", half_close(frame(TEXT, b"complete"), True, echo=b"complete"),
        tcp_only=True)
    add("7.1.12", "client sends FIN alone right after the handshake → the server closes TCP",
        half_close(b"", False), tcp_only=True)

    def server_closes_first(ctx):
        c = ctx.client()
        c.echo(TEXT, b"before close")
        c.send_close(1000, b"bye")
        f = c.recv_frame(what="the close reply")
        if f.opcode != CLOSE or f.payload[:2] != b"\x03\xe8":
            raise Fail("expected a close 1000 reply; got a %s" % f.describe())
        # The client does not close: the server must close TCP (RFC 6455 §7.1.1).
        c.expect_tcp_close("after the closing handshake (the server closes TCP first)")
    add("7.1.13", "after the closing handshake the server closes TCP first (recv returns EOF "
        "within the deadline while the client keeps its socket open)", server_closes_first)

    # 7.3: close payload lengths and reasons.
    add("7.3.1", "close with a 1-byte payload → close 1002",
        violation_case(frame(CLOSE, b"\x03"), 1002))

    def reason_case(reason, codes):
        def run(ctx):
            c = ctx.client()
            c.send_close(1000, reason)
            f = c.expect_close(codes)
            # The reply echoes the status code; a reason in the reply is
            # optional (RFC 6455 §5.5.1), checked to be UTF-8 by expect_close.
            return f
        return run
    add("7.3.2", "close 1000 with an empty reason (2-byte payload) → close 1000", reason_case(b"", 1000))
    add("7.3.3", "close 1000 with a 123-byte reason (125-byte payload, the maximum) → close 1000",
        reason_case(b"r" * 123, 1000))
    add("7.3.4", "close 1000 with a UTF-8 reason \"κόσμε 𝄞\" → close 1000",
        reason_case("κόσμε 𝄞".encode(), 1000))
    add("7.3.5", "close 1000 with a 124-byte reason (126-byte payload) → close 1002",
        violation_case(frame(CLOSE, close_payload(1000, b"r" * 124)), 1002))

    # 7.5: reasons that are not UTF-8.
    bad_reasons = [
        (bytes.fromhex("eda080"), "a surrogate (ED A0 80)"),
        (b"abc" + bytes.fromhex("ff"), "\"abc\" FF"),
        ("κόσμε".encode() + bytes.fromhex("f4 90 80 80"), "\"κόσμε\" + U+110000 (F4 90 80 80)"),
        (b"end" + bytes.fromhex("e2 82"), "a truncated € at the end (E2 82)"),
        (bytes.fromhex("c0 af"), "an overlong '/' (C0 AF)"),
    ]
    for i, (reason, desc) in enumerate(bad_reasons, 1):
        add("7.5.%d" % i, "close 1000 with a reason that is not UTF-8: %s → close 1007" % desc,
            violation_case(frame(CLOSE, close_payload(1000, reason)), 1007))

    # 7.7: every valid code is echoed.
    for i, code in enumerate(VALID_CODES, 1):
        def run(ctx, code=code):
            c = ctx.client()
            c.send_close(code)
            c.expect_close(code, what="a close with the same code %d" % code)
        add("7.7.%d" % i, "close with valid code %d → close %d replied, TCP closed" % (code, code), run)

    # 7.9: invalid codes.
    for i, code in enumerate(INVALID_CODES, 1):
        add("7.9.%d" % i, "close with invalid code %d → close 1002" % code,
            violation_case(frame(CLOSE, close_payload(code)), 1002))
    add("7.9.%d" % (len(INVALID_CODES) + 1), "close with invalid code 1005 and a reason → close 1002",
        violation_case(frame(CLOSE, close_payload(1005, b"no status?")), 1002))
