"""9. Limits and big messages (Autobahn 9.x): messages up to the default
maximum (16 MiB per frame and per message) are echoed byte-exact whether
sent as one frame, as many frames, or in many writes; a frame header or a
fragment sum over the limit fails with 1009 as soon as the header arrives,
before any of that payload is sent."""

from registry import add, size_name, payload_for, kind_name, KiB, MiB, MAX_MESSAGE
from wsclient import TEXT, BINARY, CONT, BULK, frame, fragments, header

SIZES = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB]
FRAME_SIZES = [64, 4 * KiB, 64 * KiB]
# Skipped: more than 65536 frames per message (16 MiB in 64-byte frames),
# and one frame (covered by 9.1/9.2).
MAX_FRAMES = 65536
WRITE_SIZES = [64, 4 * KiB, 64 * KiB]


def big_echo(opcode, size, frame_size=None, chop=None):
    def run(ctx):
        c = ctx.client()
        payload = payload_for(opcode, size)
        if frame_size is None:
            data = frame(opcode, payload)
        else:
            data = fragments(opcode, payload, frame_size)
        c.send_raw(data, chop=chop)
        c.expect_message(opcode, payload, timeout=BULK)
        c.close_handshake()
    return run


def register():
    # 9.1 / 9.2: one frame.
    for sub, opcode in ((1, TEXT), (2, BINARY)):
        for i, size in enumerate(SIZES, 1):
            add("9.%d.%d" % (sub, i), "%s message of %s in one frame → echoed byte-exact"
                % (kind_name(opcode), size_name(size)), big_echo(opcode, size), cost=1 + size / MiB * 2)
    # 9.3 / 9.4: in frames of 64 B, 4 KiB, 64 KiB.
    for sub, opcode in ((3, TEXT), (4, BINARY)):
        n = 0
        for size in SIZES:
            for fs in FRAME_SIZES:
                if size // fs > MAX_FRAMES or fs >= size:
                    continue
                n += 1
                add("9.%d.%d" % (sub, n), "%s message of %s in %d frames of %s → echoed byte-exact"
                    % (kind_name(opcode), size_name(size), size // fs, size_name(fs)),
                    big_echo(opcode, size, frame_size=fs), cost=1 + size / MiB * 2 + size / fs / 5000)
    # 9.5 / 9.6: one 1 MiB frame in writes of 64 B, 4 KiB, 64 KiB.
    for sub, opcode in ((5, TEXT), (6, BINARY)):
        for i, ws in enumerate(WRITE_SIZES, 1):
            add("9.%d.%d" % (sub, i), "%s message of 1 MiB in one frame sent in writes of %s → echoed"
                % (kind_name(opcode), size_name(ws)),
                big_echo(opcode, 1 * MiB, chop=ws), cost=1 + MiB / ws / 2000)

    # 9.7: one frame header over the limit: 1009 before the payload is sent.
    def header_too_big(opcode, length, fin=True, prefix=b""):
        def run(ctx):
            c = ctx.client()
            c.send_raw(prefix + header(opcode, length, fin=fin, mask_key=b"\x01\x02\x03\x04"))
            c.expect_close(1009, what="a close 1009 right after a frame header claiming %d bytes "
                                      "(no payload sent)" % length)
        return run
    add("9.7.1", "text frame header claiming 16 MiB + 1 bytes → close 1009 at once, before the payload",
        header_too_big(TEXT, MAX_MESSAGE + 1), cost=1)
    add("9.7.2", "binary frame header claiming 16 MiB + 1 bytes → close 1009 at once",
        header_too_big(BINARY, MAX_MESSAGE + 1))
    add("9.7.3", "binary frame header claiming 2^63 - 1 bytes → close 1009 at once (nothing allocated)",
        header_too_big(BINARY, (1 << 63) - 1))
    add("9.7.4", "first text fragment (FIN=0) claiming 16 MiB + 1 bytes → close 1009 at once",
        header_too_big(TEXT, MAX_MESSAGE + 1, fin=False))
    add("9.7.5", "continuation claiming 16 MiB + 1 bytes after a 5-byte first fragment → close 1009",
        header_too_big(CONT, MAX_MESSAGE + 1, prefix=frame(TEXT, b"first", fin=False)))

    # 9.8: fragments that add up past the limit.
    def sum_too_big(opcode, first, parts_mib):
        def run(ctx):
            c = ctx.client()
            payload = payload_for(opcode, first * MiB)
            c.send_frame(opcode, payload, fin=False)
            for _ in range(parts_mib):
                c.send_frame(CONT, payload_for(opcode, MiB)[:MiB], fin=False)
            so_far = (first + parts_mib) * MiB
            extra = MAX_MESSAGE - so_far + 1
            # The header of the fragment that goes over: 1009 before its payload.
            c.send_raw(header(CONT, extra, fin=True, mask_key=b"\x05\x06\x07\x08"))
            c.expect_close(1009, timeout=BULK,
                           what="a close 1009 when the fragment taking the message to 16 MiB + 1 "
                                "is announced (before its payload)")
        return run
    add("9.8.1", "text fragments of 8 MiB + 8 × 1 MiB, then a 1-byte fragment header (16 MiB + 1 "
        "in total) → close 1009 before its payload", sum_too_big(TEXT, 8, 8), cost=40)
    add("9.8.2", "binary fragments of 15 MiB, then a 1 MiB + 1 fragment header → close 1009",
        sum_too_big(BINARY, 15, 0), cost=35)

    def exactly_max(ctx):
        c = ctx.client()
        payload = payload_for(BINARY, MAX_MESSAGE)
        half = MAX_MESSAGE // 2
        c.send_frame(BINARY, payload[:half], fin=False)
        c.send_frame(CONT, payload[half:], fin=True)
        c.expect_message(BINARY, payload, timeout=BULK)
        c.close_handshake()
    add("9.8.3", "binary message of exactly 16 MiB in 2 fragments of 8 MiB → echoed", exactly_max, cost=33)

    def exactly_max_text(ctx):
        c = ctx.client()
        payload = payload_for(TEXT, MAX_MESSAGE)
        c.send_raw(fragments(TEXT, payload, 4 * MiB))
        c.expect_message(TEXT, payload, timeout=BULK)
        c.close_handshake()
    add("9.8.4", "text message of exactly 16 MiB in 4 fragments of 4 MiB → echoed", exactly_max_text, cost=33)
