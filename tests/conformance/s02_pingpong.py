"""2. Pings and pongs (Autobahn 2.x; RFC 6455 §5.5.2, §5.5.3): every ping is
answered by a pong with the same payload, also between the fragments of a
message; control payloads over 125 bytes are protocol errors; unsolicited
pongs are ignored."""

from registry import add, binary_payload, text_payload
from wsclient import TEXT, CONT, PING, PONG, frame


def ping_case(payload, chop=None):
    def run(ctx):
        c = ctx.client()
        c.send_frame(PING, payload, chop=chop)
        c.expect_pong(payload)
        c.close_handshake()
    return run


def register():
    add("2.1", "ping without payload → pong without payload", ping_case(b""))
    add("2.2", "ping with a 13-byte text payload → pong with the same payload",
        ping_case(b"Hello, world!"))
    add("2.3", "ping with a binary payload (bytes 00 ff fe 80 ...) → pong with the same payload",
        ping_case(bytes([0x00, 0xFF, 0xFE, 0x80, 0x7F, 0xC0, 0xED, 0xA0]) + binary_payload(20, 3)))
    add("2.4", "ping with a 125-byte binary payload → pong with the same payload",
        ping_case(binary_payload(125, 4)))

    def every_length(ctx):
        c = ctx.client()
        payloads = [binary_payload(n, n) for n in range(126)]
        for p in payloads:
            c.send_frame(PING, p)
            c.expect_pong(p)
        c.close_handshake()
    add("2.5", "pings with payloads of every length 0..125 (one at a time) → a pong for each, "
        "same payload", every_length, cost=2)

    def too_long(op):
        def run(ctx):
            c = ctx.client()
            c.send_frame(op, binary_payload(126, 5))
            c.expect_close(1002, what="a close 1002 for a %d-byte %s (and no pong)"
                           % (126, "ping" if op == PING else "pong"))
        return run
    add("2.6", "ping with a 126-byte payload → close 1002, no pong", too_long(PING))
    add("2.7", "pong with a 126-byte payload → close 1002", too_long(PONG))
    add("2.8", "ping with a 125-byte payload sent in 1-byte writes → pong",
        ping_case(binary_payload(125, 6), chop=1))

    def unsolicited(payload):
        def run(ctx):
            c = ctx.client()
            c.send_frame(PONG, payload)
            c.echo(TEXT, b"after the pong")  # nothing came before the echo
            c.close_handshake()
        return run
    add("2.9", "unsolicited pong without payload is ignored; an echo still works",
        unsolicited(b""))
    add("2.10", "unsolicited pong with a 125-byte payload is ignored; an echo still works",
        unsolicited(binary_payload(125, 7)))

    def many(one_write):
        def run(ctx):
            c = ctx.client()
            payloads = [("ping-%d" % i).encode() for i in range(10)]
            if one_write:
                c.send_raw(b"".join(frame(PING, p) for p in payloads))
            else:
                for p in payloads:
                    c.send_frame(PING, p)
            for p in payloads:
                c.expect_pong(p)
            c.close_handshake()
        return run
    add("2.11", "10 pings in one write → 10 pongs, in order, same payloads", many(True))
    add("2.12", "10 pings in 10 writes → 10 pongs, in order, same payloads", many(False))

    def between_fragments(ctx):
        c = ctx.client()
        c.send_frame(TEXT, b"fragment one, ", fin=False)
        c.send_frame(PING, b"in the middle")
        # Answered at once, before the message is complete.
        c.expect_pong(b"in the middle")
        c.send_frame(CONT, b"fragment two", fin=True)
        c.expect_message(TEXT, b"fragment one, fragment two")
        c.close_handshake()
    add("2.13", "ping between two text fragments → pong at once (before the last fragment is "
        "sent), then the message echoed whole", between_fragments)

    def unsolicited_then_ping(ctx):
        c = ctx.client()
        c.send_raw(frame(PONG, b"unsolicited") + frame(PING, b"solicited"))
        c.expect_pong(b"solicited")
        c.close_handshake()
    add("2.14", "unsolicited pong then ping in one write → only the pong for the ping",
        unsolicited_then_ping)

    def ping_text(ctx):
        c = ctx.client()
        p = text_payload(125)
        c.send_raw(frame(PING, p) + frame(TEXT, b"msg") + frame(PING, b""))
        c.expect_pong(p)
        c.expect_message(TEXT, b"msg")
        c.expect_pong(b"")
        c.close_handshake()
    add("2.15", "ping, text, ping in one write → pong, echo, pong in that order", ping_text)
