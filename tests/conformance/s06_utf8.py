"""6. UTF-8 handling (Autobahn 6.x; RFC 6455 §5.6, §8.1): text messages must
be valid UTF-8, checked across fragment and read boundaries, failing with
1007 as soon as the bytes received so far cannot start valid UTF-8.

Every sequence is sent (a) whole in one frame, (b) as two fragments split at
every byte boundary k = 0..n (one write each), and (c) as one frame whose bytes are cut into
two TCP writes at every payload boundary k = 0..n.

Valid sequences must be echoed byte-exact each time (one connection per
sequence). Invalid ones get a connection per variant: when the first part
already contains an impossible byte, the close 1007 must arrive before the
rest is sent (fail fast); when the first part is only a truncated but
possible prefix, the rest is sent and then the close 1007 is required."""

from registry import add
from utf8data import VALID, INVALID, first_impossible
from wsclient import Fail, TEXT, CONT, frame

GROUPS = {
    1: "valid text",
    2: "valid boundary code points",
    3: "valid noncharacters",
    4: "overlong encodings",
    5: "single surrogates",
    6: "paired surrogates",
    7: "code points above U+10FFFF and bytes F5..FF",
    8: "unexpected continuation bytes",
    9: "lonely start bytes",
    10: "sequences truncated at the end of the message",
    11: "impossible truncated sequences",
}


def hexdump(seq):
    if len(seq) <= 16:
        return seq.hex(" ")
    return "%s ... %s, %d bytes" % (seq[:8].hex(" "), seq[-4:].hex(" "), len(seq))


def valid_case(seq):
    def run(ctx):
        c = ctx.client()
        c.send_frame(TEXT, seq)
        c.expect_message(TEXT, seq, what="the echo of the whole message")
        for k in range(len(seq) + 1):
            c.send_raw(frame(TEXT, seq[:k], fin=False))
            c.send_raw(frame(CONT, seq[k:]))
            c.expect_message(TEXT, seq, what="the echo of the message in 2 fragments split at byte %d" % k)
        for k in range(len(seq) + 1):
            f = frame(TEXT, seq)
            cut = len(f) - len(seq) + k
            c.send_raw(f[:cut])
            c.send_raw(f[cut:])
            c.expect_message(TEXT, seq, what="the echo of the frame cut into 2 writes at payload byte %d" % k)
        c.close_handshake()
    return run


def invalid_case(seq):
    bad_at = first_impossible(seq)

    def variant(ctx, first, rest, fail_fast, what):
        """Sends `first`; if the text is already impossible after it, the
        close 1007 must come before `rest` is sent; else sends `rest` and
        requires the close 1007."""
        c = ctx.client()
        c.send_raw(first)
        if fail_fast:
            try:
                c.expect_close(1007, what="a close 1007 as soon as the invalid byte arrived, before "
                                          "the rest of the message is sent")
            except Fail as e:
                raise Fail("%s: %s" % (what, e))
            return
        c.send_raw(rest)
        try:
            c.expect_close(1007, what="a close 1007 once the whole message arrived")
        except Fail as e:
            raise Fail("%s: %s" % (what, e))

    def run(ctx):
        failures = []

        def attempt(*args):
            try:
                variant(ctx, *args)
            except Fail as e:
                failures.append(str(e))
            finally:
                ctx.close_all()
                ctx.clients.clear()

        attempt(frame(TEXT, seq), b"", False, "whole message in one frame")
        for k in range(len(seq) + 1):
            fast = bad_at is not None and bad_at <= k
            attempt(frame(TEXT, seq[:k], fin=False), frame(CONT, seq[k:]), fast,
                    "2 fragments split at byte %d (%s)" % (k, "fail fast" if fast else "possible prefix"))
        for k in range(len(seq) + 1):
            fast = bad_at is not None and bad_at <= k
            f = frame(TEXT, seq)
            cut = len(f) - len(seq) + k
            attempt(f[:cut], f[cut:], fast,
                    "one frame cut into 2 writes after payload byte %d (%s)"
                    % (k, "fail fast" if fast else "possible prefix"))
        if failures:
            total = 1 + 2 * (len(seq) + 1)
            raise Fail("%d of %d variants failed; %s" % (
                len(failures), total, "; ".join(failures[:4]) + (" ..." if len(failures) > 4 else "")))
    return run


def register():
    numbers = {}
    for group, desc, seq in VALID:
        numbers[group] = numbers.get(group, 0) + 1
        add("6.%d.%d" % (group, numbers[group]),
            "%s: %s [%s] → echoed; also split at every byte into 2 fragments and into 2 writes"
            % (GROUPS[group], desc, hexdump(seq)),
            valid_case(seq), cost=1 + len(seq) / 10)
    for group, desc, seq in INVALID:
        numbers[group] = numbers.get(group, 0) + 1
        bad_at = first_impossible(seq)
        when = ("fail fast from byte %d" % bad_at) if bad_at else "1007 only at the end"
        add("6.%d.%d" % (group, numbers[group]),
            "%s: %s [%s] → close 1007; also split at every byte into 2 fragments and into 2 writes "
            "(%s)" % (GROUPS[group], desc, hexdump(seq), when),
            invalid_case(seq), cost=1 + len(seq) / 2)
