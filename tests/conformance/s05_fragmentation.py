"""5. Fragmentation (Autobahn 5.x; RFC 6455 §5.4): every legal sequence is
reassembled and echoed whole (control frames may come between fragments and
are answered at once); continuation frames without a start, new data frames
inside a fragmented message and fragmented control frames fail with 1002."""

import time

from registry import add, payload_for, kind_name, violation_case
from wsclient import TEXT, BINARY, CONT, PING, PONG, CLOSE, frame, close_payload


def frames_of(opcode, parts):
    """A message as frames with the given payloads (one frame per part)."""
    out = []
    for i, p in enumerate(parts):
        out.append(frame(opcode if i == 0 else CONT, p, fin=i == len(parts) - 1))
    return out


def split(payload, n):
    """`payload` cut into `n` parts of roughly equal size (some may be empty)."""
    size = len(payload)
    return [payload[size * i // n: size * (i + 1) // n] for i in range(n)]


def fragmented_echo(opcode, parts, separate=False, delay=0.0, chop=None):
    def run(ctx):
        c = ctx.client()
        fs = frames_of(opcode, parts)
        if separate:
            for i, f in enumerate(fs):
                c.send_raw(f, chop=chop)
                if delay and i < len(fs) - 1:
                    time.sleep(delay)
        else:
            c.send_raw(b"".join(fs), chop=chop)
        c.expect_message(opcode, b"".join(parts),
                         what="the reassembled %s message of %d fragments" % (kind_name(opcode), len(parts)))
        c.close_handshake()
    return run


def register():
    # 5.1 / 5.2: text and binary in N fragments, one write or one write per frame.
    for sub, opcode in ((1, TEXT), (2, BINARY)):
        n = 0
        for count in (2, 3, 4, 5, 10, 100):
            # Text is cut anywhere, also inside multi-byte characters.
            parts = split(payload_for(opcode, 1000), count)
            n += 1
            add("5.%d.%d" % (sub, n), "%s message of 1000 bytes in %d fragments, one write"
                % (kind_name(opcode), count), fragmented_echo(opcode, parts))
            n += 1
            add("5.%d.%d" % (sub, n), "%s message of 1000 bytes in %d fragments, one write per frame"
                % (kind_name(opcode), count), fragmented_echo(opcode, parts, separate=True))
        n += 1
        add("5.%d.%d" % (sub, n), "%s message in 3 fragments, one write per frame, 100 ms apart"
            % kind_name(opcode),
            fragmented_echo(opcode, split(payload_for(opcode, 300), 3), separate=True, delay=0.1))
        n += 1
        add("5.%d.%d" % (sub, n), "%s message in 4 fragments, all sent in 1-byte writes"
            % kind_name(opcode),
            fragmented_echo(opcode, split(payload_for(opcode, 200), 4), chop=1))

    # 5.3: empty fragments.
    cases = [
        (TEXT, [b"", b""], "empty text message as an empty first fragment and an empty last one"),
        (TEXT, [b"", b"abc", b""], "text: empty first fragment, \"abc\", empty last fragment"),
        (TEXT, [b"abc", b"", b"", b"def"], "text: \"abc\", two empty fragments, \"def\""),
        (BINARY, [b""] * 5, "empty binary message in 5 empty fragments"),
        (BINARY, [b"\x00", b"", b"\xff"], "binary: 00, empty fragment, ff"),
    ]
    for i, (op, parts, desc) in enumerate(cases, 1):
        add("5.3.%d" % i, desc + " → echoed whole", fragmented_echo(op, parts))

    # 5.4: control frames between fragments.
    def ping_between(one_write, opcode=TEXT):
        def run(ctx):
            c = ctx.client()
            a, b = payload_for(opcode, 40), payload_for(opcode, 60)
            first, last = frames_of(opcode, [a, b])
            if one_write:
                c.send_raw(first + frame(PING, b"ping!") + last)
                c.expect_pong(b"ping!")
            else:
                c.send_raw(first)
                time.sleep(0.05)
                c.send_frame(PING, b"ping!")
                c.expect_pong(b"ping!")  # answered before the message ends
                time.sleep(0.05)
                c.send_raw(last)
            c.expect_message(opcode, a + b)
            c.close_handshake()
        return run
    add("5.4.1", "ping between two text fragments, one write → pong, then the message echoed",
        ping_between(True))
    add("5.4.2", "ping between two text fragments, separate writes 50 ms apart → pong before "
        "the last fragment is sent, then the message", ping_between(False))
    add("5.4.3", "ping between two binary fragments, separate writes → pong, then the message",
        ping_between(False, BINARY))

    def pong_between(ctx):
        c = ctx.client()
        c.send_raw(frame(TEXT, b"first ", fin=False) + frame(PONG, b"unsolicited")
                   + frame(CONT, b"last"))
        c.expect_message(TEXT, b"first last")
        c.close_handshake()
    add("5.4.4", "unsolicited pong between two text fragments → ignored, message echoed",
        pong_between)

    def many_controls(ctx):
        c = ctx.client()
        c.send_raw(frame(TEXT, b"a", fin=False) + frame(PING, b"1") + frame(CONT, b"b", fin=False)
                   + frame(PONG, b"x") + frame(CONT, b"c", fin=False) + frame(PING, b"2")
                   + frame(PING, b"3") + frame(CONT, b"d"))
        for p in (b"1", b"2", b"3"):
            c.expect_pong(p)
        c.expect_message(TEXT, b"abcd")
        c.close_handshake()
    add("5.4.5", "pings and pongs between 4 text fragments → 3 pongs in order, then \"abcd\"",
        many_controls)

    def close_between(ctx):
        c = ctx.client()
        c.send_raw(frame(TEXT, b"never ", fin=False) + frame(CLOSE, close_payload(1000)))
        c.expect_close(1000, what="the reply to a close sent between fragments (and no echo)")
    add("5.4.6", "close between text fragments → close 1000 replied, the message never echoed, "
        "TCP closed", close_between)

    def several(ctx):
        c = ctx.client()
        c.send_raw(b"".join(frames_of(TEXT, [b"one", b"-two"])) + b"".join(frames_of(BINARY, [b"\x01", b"\x02"]))
                   + frame(TEXT, b"whole"))
        c.expect_message(TEXT, b"one-two")
        c.expect_message(BINARY, b"\x01\x02")
        c.expect_message(TEXT, b"whole")
        c.close_handshake()
    add("5.5.1", "two fragmented messages and a whole one in one write → 3 echoes in order", several)

    def utf8_bytes(ctx):
        c = ctx.client()
        text = "κόσμε 𝄞 €".encode()
        c.send_raw(b"".join(frames_of(TEXT, [bytes([b]) for b in text])))
        c.expect_message(TEXT, text)
        c.close_handshake()
    add("5.5.2", "text \"κόσμε 𝄞 €\" in 1-byte fragments (multi-byte characters cut) → echoed",
        utf8_bytes)

    add("5.5.3", "binary message of 1000 bytes in 1000 1-byte fragments → echoed",
        fragmented_echo(BINARY, split(payload_for(BINARY, 1000), 1000)))

    # 5.6: illegal sequences → 1002.
    bad = [
        (frame(CONT, b"orphan", fin=True), "continuation frame (FIN=1) without a message to continue"),
        (frame(CONT, b"orphan", fin=False), "continuation frame (FIN=0) without a message to continue"),
        (frame(CONT, b"orphan", fin=False) + frame(CONT, b"orphan", fin=True),
         "two continuation frames (FIN=0, FIN=1) without a start"),
        (frame(TEXT, b"frag", fin=False) + frame(CONT, b"mented") + frame(CONT, b"late"),
         "continuation after a complete fragmented text message (which is echoed first)"),
        (frame(TEXT, b"first", fin=False) + frame(TEXT, b"new"),
         "a new text frame (FIN=1) inside a fragmented text message"),
        (frame(TEXT, b"first", fin=False) + frame(TEXT, b"new", fin=False),
         "a new text frame (FIN=0) inside a fragmented text message"),
        (frame(TEXT, b"first", fin=False) + frame(BINARY, b"new"),
         "a binary frame inside a fragmented text message"),
        (frame(BINARY, b"first", fin=False) + frame(TEXT, b"new"),
         "a text frame inside a fragmented binary message"),
        (frame(BINARY, b"first", fin=False) + frame(BINARY, b"new", fin=False),
         "a new binary frame inside a fragmented binary message"),
        (frame(PING, b"frag", fin=False) + frame(CONT, b"ment"), "fragmented ping (FIN=0 + continuation)"),
        (frame(PONG, b"frag", fin=False) + frame(CONT, b"ment"), "fragmented pong (FIN=0 + continuation)"),
        (frame(CLOSE, close_payload(1000), fin=False) + frame(CONT, b""),
         "fragmented close (FIN=0 + continuation)"),
        (frame(PING, b"", fin=False), "empty ping with FIN=0"),
        (frame(TEXT, b"first", fin=False) + frame(PING, b"frag", fin=False) + frame(CONT, b"x"),
         "fragmented ping inside a fragmented text message"),
    ]
    for i, (frames, desc) in enumerate(bad, 1):
        echoes = [(TEXT, b"fragmented")] if "echoed first" in desc else []
        add("5.6.%d" % i, desc + " → close 1002", violation_case(frames, 1002, echoes=echoes))

    def orphan_slow(ctx):
        c = ctx.client()
        c.send_frame(TEXT, b"Hello")
        c.expect_message(TEXT, b"Hello")
        c.send_frame(CONT, b"fragment1", fin=False)
        c.expect_close(1002, what="a close 1002 right after an orphan continuation (before more "
                                  "fragments are sent)")
    add("5.7.1", "orphan continuation (FIN=0) alone in its write → close 1002 at once, without "
        "waiting for more fragments", orphan_slow)

    def orphan_chopped(ctx):
        c = ctx.client()
        c.send_raw(frame(CONT, b"fragment1", fin=False) + frame(CONT, b"fragment2", fin=True), chop=1)
        c.expect_close(1002)
    add("5.7.2", "orphan continuations sent in 1-byte writes → close 1002", orphan_chopped)
