"""11. Opening handshake (RFC 6455 §4.1, §4.2; not an Autobahn section): the
accept key, tolerated header forms, frames sent in the same write as the
request, and the HTTP errors for bad requests (400; 426 with
Sec-WebSocket-Version: 13 for other versions), after which the server closes
TCP."""

from registry import add, check
from wsclient import Fail, TEXT, PING, CLOSE, frame, close_payload, accept_key

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def raw_request(lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def base_lines(port, drop=(), replace=None, add_lines=()):
    """The lines of a valid upgrade request, minus the headers named in
    `drop`, with `replace` {name: full line} and extra lines appended."""
    lines = ["GET /conformance HTTP/1.1", "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: " + RFC_KEY, "Sec-WebSocket-Version: 13"]
    replace = replace or {}
    out = []
    for line in lines:
        name = line.split(":")[0] if ":" in line else "request-line"
        if name in drop:
            continue
        out.append(replace.get(name, line))
    return out + list(add_lines)


def upgrade_ok(make_lines, chop=None):
    def run(ctx):
        c = ctx.connect()
        c.send_raw(raw_request(make_lines(ctx.port)), chop=chop)
        status, headers, head = c.read_http_head()
        check(status == 101, "expected 101; got %r" % head)
        check(headers.get("sec-websocket-accept") == RFC_ACCEPT,
              "Sec-WebSocket-Accept %r, expected %r" % (headers.get("sec-websocket-accept"), RFC_ACCEPT))
        c.echo(TEXT, b"upgraded")
        c.close_handshake()
    return run


def refused(make_lines, statuses, what):
    """The request gets an HTTP error with one of `statuses` (no 101), then the
    server closes TCP."""
    if isinstance(statuses, int):
        statuses = (statuses,)

    def run(ctx):
        c = ctx.connect()
        req = make_lines(ctx.port)
        c.send_raw(req if isinstance(req, bytes) else raw_request(req))
        status, headers, head = c.read_http_head()
        if status not in statuses:
            raise Fail("%s: expected HTTP %s; got %r" % (what, " or ".join(map(str, statuses)), head))
        if status == 426 and headers.get("sec-websocket-version") != "13":
            raise Fail("426 without \"Sec-WebSocket-Version: 13\": %r" % head)
        if "content-length" in headers:
            c.read_http_body(headers)
        c.expect_tcp_close("after the HTTP %d response" % status)
    return run


def register():
    def rfc_key(ctx):
        c = ctx.connect()
        head = c.handshake(key=RFC_KEY)
        check(accept_key(RFC_KEY) == RFC_ACCEPT, "the suite's own accept computation is wrong")
        check("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, "RFC accept value missing from %r" % head)
        check(head.startswith("HTTP/1.1 101"), "status line %r" % head.split("\r\n")[0])
        c.echo(TEXT, b"rfc")
        c.close_handshake()
    add("11.1.1", "the RFC 6455 example key dGhlIHNhbXBsZSBub25jZQ== → 101 with Sec-WebSocket-Accept "
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=, Upgrade: websocket, Connection: Upgrade", rfc_key)

    def random_key(ctx):
        c = ctx.connect()
        c.handshake(key="AQIDBAUGBwgJCgsMDQ4PEA==")
        c.echo(TEXT, b"key")
        c.close_handshake()
    add("11.1.2", "another valid key (bytes 01..10) → the matching Sec-WebSocket-Accept", random_key)

    add("11.1.3", "Connection: keep-alive, Upgrade and Upgrade: WebSocket (mixed case) → 101",
        upgrade_ok(lambda p: base_lines(p, replace={"Connection": "Connection: keep-alive, Upgrade",
                                                    "Upgrade": "Upgrade: WebSocket"})))
    add("11.1.4", "lower-case header names and extra headers (Origin, User-Agent) → 101",
        upgrade_ok(lambda p: ["GET /conformance HTTP/1.1", "host: 127.0.0.1:%d" % p, "upgrade: websocket",
                              "connection: upgrade", "sec-websocket-key: " + RFC_KEY,
                              "sec-websocket-version: 13", "Origin: http://127.0.0.1",
                              "User-Agent: conformance"]))
    add("11.1.5", "request sent in 1-byte writes → 101", upgrade_ok(base_lines, chop=1))
    add("11.1.6", "request with a query string in the path → 101",
        upgrade_ok(lambda p: base_lines(p, replace={"request-line": "GET /conformance?x=1&y=2 HTTP/1.1"})))

    def frames_with_request(ctx):
        c = ctx.connect()
        c.handshake(then=frame(TEXT, b"in the same write"))
        c.expect_message(TEXT, b"in the same write",
                         what="the echo of a text frame sent in the same write as the request")
        c.close_handshake()
    add("11.2.1", "a text frame in the same write as the request → 101, then its echo", frames_with_request)

    def many_with_request(ctx):
        c = ctx.connect()
        c.handshake(then=frame(PING, b"early") + frame(TEXT, b"early text") + frame(CLOSE, close_payload(1000)))
        c.expect_pong(b"early")
        c.expect_message(TEXT, b"early text")
        c.expect_close(1000)
    add("11.2.2", "ping, text and close in the same write as the request → 101, pong, echo, close 1000",
        many_with_request)

    def chopped_with_request(ctx):
        c = ctx.connect()
        c.handshake(then=frame(TEXT, b"chopped"), chop=3)
        c.expect_message(TEXT, b"chopped")
        c.close_handshake()
    add("11.2.3", "request and a text frame sent together in 3-byte writes → 101, then the echo",
        chopped_with_request)

    bad = [
        ("no Sec-WebSocket-Key", lambda p: base_lines(p, drop=("Sec-WebSocket-Key",)), 400),
        ("Sec-WebSocket-Key decoding to 15 bytes",
         lambda p: base_lines(p, replace={"Sec-WebSocket-Key": "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P"}), 400),
        ("Sec-WebSocket-Key that is not base64",
         lambda p: base_lines(p, replace={"Sec-WebSocket-Key": "Sec-WebSocket-Key: not base64 at all!!"}), 400),
        ("two Sec-WebSocket-Key headers",
         lambda p: base_lines(p, add_lines=("Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==",)), 400),
        ("no Host header", lambda p: base_lines(p, drop=("Host",)), 400),
        ("no Connection header", lambda p: base_lines(p, drop=("Connection",)), 400),
        ("Connection: keep-alive (no upgrade token)",
         lambda p: base_lines(p, replace={"Connection": "Connection: keep-alive"}), 400),
        ("method POST", lambda p: base_lines(p, replace={"request-line": "POST /conformance HTTP/1.1"}), 400),
        ("HTTP/1.0", lambda p: base_lines(p, replace={"request-line": "GET /conformance HTTP/1.0"}), 400),
        ("a request line that is not HTTP", lambda p: b"HELLO WORLD\r\n\r\n", 400),
    ]
    for i, (desc, make, status) in enumerate(bad, 1):
        add("11.3.%d" % i, "upgrade request with %s → HTTP %d, then TCP closed" % (desc, status),
            refused(make, status, desc))

    n = len(bad)
    add("11.3.%d" % (n + 1), "upgrade request with Sec-WebSocket-Version: 8 → HTTP 426 with "
        "Sec-WebSocket-Version: 13, then TCP closed",
        refused(lambda p: base_lines(p, replace={"Sec-WebSocket-Version": "Sec-WebSocket-Version: 8"}),
                426, "version 8"))
    add("11.3.%d" % (n + 2), "upgrade request with Sec-WebSocket-Version: 14 → HTTP 426 with "
        "Sec-WebSocket-Version: 13",
        refused(lambda p: base_lines(p, replace={"Sec-WebSocket-Version": "Sec-WebSocket-Version: 14"}),
                426, "version 14"))
    # RFC 6455 §4.2.1/§4.4 allow either answer for a missing version: the
    # request is not a valid handshake (400), or names no version the
    # server speaks (426).
    add("11.3.%d" % (n + 3), "upgrade request without Sec-WebSocket-Version → HTTP 426 (with "
        "Sec-WebSocket-Version: 13) or 400",
        refused(lambda p: base_lines(p, drop=("Sec-WebSocket-Version",)), (426, 400), "no version"))
    # Without Upgrade: websocket it is a plain HTTP request: a server without
    # an HTTP handler refuses it (400); echo_server serves pages (404 here).
    add("11.3.%d" % (n + 4), "request without an Upgrade header → no 101: HTTP 400 (or 404 from a "
        "server that serves plain HTTP), then TCP closed",
        refused(lambda p: base_lines(p, drop=("Upgrade",)), (400, 404), "no Upgrade"))
    add("11.3.%d" % (n + 5), "request head larger than 8 KiB → HTTP 431 (or 400), then TCP closed",
        refused(lambda p: base_lines(p, add_lines=("X-Padding: " + "p" * 9000,)), (431, 400),
                "9 KiB header"))
