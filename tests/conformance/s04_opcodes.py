"""4. Opcodes (Autobahn 4.x; RFC 6455 §5.2): reserved data opcodes 3–7 and
reserved control opcodes 11–15 fail the connection with 1002, with or
without a payload. A valid message is sent before (echoed) and a ping after
(not answered)."""

from registry import add, violation_case
from wsclient import TEXT, CONT, frame


def register():
    n = 0
    for op in range(3, 8):
        for payload in (b"", b"reserved opcode"):
            n += 1
            add("4.1.%d" % n, "reserved data opcode %d %s → close 1002"
                % (op, "with a %d-byte payload" % len(payload) if payload else "without payload"),
                violation_case(frame(op, payload), 1002))
    n = 0
    for op in range(11, 16):
        for payload in (b"", b"reserved opcode"):
            n += 1
            add("4.2.%d" % n, "reserved control opcode %d %s → close 1002"
                % (op, "with a %d-byte payload" % len(payload) if payload else "without payload"),
                violation_case(frame(op, payload), 1002))
    add("4.3.1", "reserved data opcode 3 between two text fragments → close 1002",
        violation_case(frame(TEXT, b"first", fin=False) + frame(3, b"x") + frame(CONT, b"last"), 1002))
    add("4.3.2", "reserved control opcode 11 between two text fragments → close 1002",
        violation_case(frame(TEXT, b"first", fin=False) + frame(11, b"x") + frame(CONT, b"last"), 1002))
    add("4.3.3", "reserved data opcode 7 with FIN=0 → close 1002",
        violation_case(frame(7, b"x", fin=False), 1002))
    add("4.3.4", "reserved control opcode 15 sent in 1-byte writes → close 1002",
        violation_case(frame(15, b"payload"), 1002, chop=1))
