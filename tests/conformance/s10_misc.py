"""10. Miscellaneous (Autobahn 10.x): a 64 KiB message auto-fragmented into
1300-byte frames, as a client library with a fragment size would send it."""

from registry import add, payload_for, KiB
from wsclient import TEXT, BINARY, fragment_list


def auto_fragmented(opcode, per_frame_write):
    def run(ctx):
        c = ctx.client()
        payload = payload_for(opcode, 64 * KiB)
        frames = fragment_list(opcode, payload, 1300)
        if per_frame_write:
            for f in frames:
                c.send_raw(f)
        else:
            c.send_raw(b"".join(frames))
        c.expect_message(opcode, payload)
        c.close_handshake()
    return run


def register():
    add("10.1.1", "text message of 64 KiB auto-fragmented into 1300-byte frames (51 frames), one "
        "write → echoed whole", auto_fragmented(TEXT, False))
    add("10.1.2", "binary message of 64 KiB auto-fragmented into 1300-byte frames, one write per "
        "frame → echoed whole", auto_fragmented(BINARY, True))
    add("10.1.3", "text message of 64 KiB auto-fragmented into 1300-byte frames, one write per "
        "frame → echoed whole", auto_fragmented(TEXT, True))
