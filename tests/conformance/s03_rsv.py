"""3. Reserved bits (Autobahn 3.x; RFC 6455 §5.2): with no extension
negotiated, a frame with any of RSV1/RSV2/RSV3 set fails the connection with
1002. Each case sends a valid message first (it must be echoed), then the
bad frame, then a ping that must not be answered."""

from registry import add, violation_case
from wsclient import TEXT, BINARY, CONT, PING, PONG, CLOSE, frame, close_payload

KINDS = [
    (1, "text", lambda rsv: frame(TEXT, b"reserved bits", rsv=rsv)),
    (2, "binary", lambda rsv: frame(BINARY, b"\x00\xffreserved", rsv=rsv)),
    (3, "ping", lambda rsv: frame(PING, b"reserved bits", rsv=rsv)),
    (4, "pong", lambda rsv: frame(PONG, b"reserved bits", rsv=rsv)),
    (5, "close (1000)", lambda rsv: frame(CLOSE, close_payload(1000), rsv=rsv)),
    (6, "continuation (of a valid first text fragment)",
     lambda rsv: frame(TEXT, b"first ", fin=False) + frame(CONT, b"second", rsv=rsv)),
    (7, "empty text", lambda rsv: frame(TEXT, b"", rsv=rsv)),
]


def register():
    for sub, name, make in KINDS:
        for rsv in range(1, 8):
            bits = "+".join("RSV%d" % (i + 1) for i in range(3) if rsv & (4 >> i))
            add("3.%d.%d" % (sub, rsv), "%s frame with %s set (RSV=%d) → close 1002" % (name, bits, rsv),
                violation_case(make(rsv), 1002))
    add("3.8.1", "text frame with RSV1 set, sent in 1-byte writes → close 1002",
        violation_case(frame(TEXT, b"chopped", rsv=4), 1002, chop=1))
    add("3.8.2", "binary frame with RSV3 set, sent in 1-byte writes → close 1002",
        violation_case(frame(BINARY, b"chopped", rsv=1), 1002, chop=1))
