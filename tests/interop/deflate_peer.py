#!/usr/bin/env python3
"""permessage-deflate interop with the `websockets` library, in both roles.

Usage:
  deflate_peer.py client ws://127.0.0.1:PORT/echo SET...
  deflate_peer.py interleaved ws://127.0.0.1:PORT/echo N
  deflate_peer.py idle ws://127.0.0.1:PORT/echo PAUSE_MS
  deflate_peer.py server SET

client: for each SET (see CLIENT_SETS), connects offering permessage-deflate
with those parameters, prints "SET extensions: HEADER" (the server's
Sec-WebSocket-Extensions), then echoes text and binary messages of 0, 16 B,
1 KiB, 64 KiB and 1 MiB, one at a time, printing "SET ok KIND SIZE wire N"
(N: bytes of the echo on the wire) or "SET FAIL ...", then a 64 KiB text
sent in 4 frames ("SET ok fragmented text 65536 ..."), and closes with 1000.
A compressible echo of 1 KiB or more must have come compressed (RSV1) and
take less than 3/4 of its size on the wire (8-bit windows leave Huffman
coding alone: about 0.56). The client is websockets'
sans-I/O protocol over a plain socket, so the wire bytes are in plain sight.
The last line is "N passed, M failed"; exit status 0 only if none failed.

interleaved: N connections with the default offer each send the first half
of a compressed 64 KiB text (a frame without FIN), then each the second half,
in the reverse order, and check their echoes: a server must keep each
connection's inflation apart. Prints "interleaved ok N" or "interleaved FAIL
...", and "N passed, M failed".

idle: with the default offer (context takeover both ways), sends a 200-byte
text, then the same text again after each of three pauses of PAUSE_MS (longer
than the server's compression idle time, so that the server trims its streams
in between). The client's compressor keeps its context, so the repeats go as
back-references into the window the server kept across its trim: each must
take under a quarter of its size on the wire and come back equal. Prints
"idle ok 3" or "idle FAIL ...", and "N passed, M failed".

server: serves on 127.0.0.1 (a free port) with the server parameters of SET
(see SERVER_SETS), echoing every message (from 64 KiB on, in 4 frames); prints "deflate_peer listening on
127.0.0.1:PORT", then "extensions: HEADER" per connection (its answer),
"message text|binary LENGTH compressed|plain" per message and
"close CODE". Exits 0 on SIGTERM.
"""

import asyncio
import signal
import socket
import sys
import time

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

TIMEOUT = 30.0
SIZES = [0, 16, 1024, 64 * 1024, 1024 * 1024]

CLIENT_SETS = {
    "default": {},
    "server_no_context_takeover": {"server_no_context_takeover": True},
    "client_no_context_takeover": {"client_no_context_takeover": True},
    "windows_10_9": {"server_max_window_bits": 10, "client_max_window_bits": 9},
    "server_window_8": {"server_max_window_bits": 8},
    # client_max_window_bits not offered: the server cannot narrow it.
    "no_client_window": {"client_max_window_bits": None},
}

# The server echoes messages of this size or more in 4 frames.
FRAGMENTED_ECHO = 64 * 1024

SERVER_SETS = {
    "default": {},
    "server_no_context_takeover": {"server_no_context_takeover": True},
    "client_no_context_takeover": {"client_no_context_takeover": True},
    "server_window_9": {"server_max_window_bits": 9},
    "client_window_10": {"client_max_window_bits": 10},
}


def json_like(size, seed):
    """`size` bytes of JSON-ish ASCII text: compressible, not trivially."""
    parts = []
    total = 0
    i = seed
    while total < size:
        item = '{"id":%d,"user":"user-%d","tags":["alpha","beta"],"score":%d},' % (
            i,
            i * 7919 % 10007,
            i * 31 % 1000,
        )
        parts.append(item)
        total += len(item)
        i += 1
    return "".join(parts)[:size]


def messages():
    """(kind, data, fragments) of each message sent."""
    for size in SIZES:
        yield "text", json_like(size, 1).encode(), 1
        # Binary: the text with every byte flipped, so not valid UTF-8.
        yield "binary", bytes(b ^ 0xA5 for b in json_like(size, 2).encode()), 1
    # One compressed message in 4 frames (RSV1 on the first only).
    yield "text", json_like(64 * 1024, 3).encode(), 4


def watch_rsv1(extension, seen):
    """Wraps the extension's decode to record each data frame's RSV1."""
    decode = extension.decode

    def recording(frame, *, max_size=None):
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            seen.append(frame.rsv1)
        return decode(frame, max_size=max_size)

    extension.decode = recording


class RecordingClientFactory(ClientPerMessageDeflateFactory):
    def __init__(self, seen, **params):
        super().__init__(**params)
        self.seen = seen

    def process_response_params(self, params, accepted_extensions):
        extension = super().process_response_params(params, accepted_extensions)
        watch_rsv1(extension, self.seen)
        return extension


class Client:
    """websockets' sans-I/O client protocol over a blocking socket."""

    def __init__(self, url, factory):
        uri = parse_uri(url)
        self.protocol = ClientProtocol(uri, extensions=[factory], max_size=None)
        self.sock = socket.create_connection((uri.host, uri.port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.wire_in = 0
        self.wire_out = 0
        self.events = []
        self.protocol.send_request(self.protocol.connect())
        self.flush()

    def flush(self):
        for data in self.protocol.data_to_send():
            if data:
                self.wire_out += len(data)
                self.sock.sendall(data)

    def next_event(self):
        deadline = time.monotonic() + TIMEOUT
        while not self.events:
            if time.monotonic() > deadline:
                raise TimeoutError("no event within %s s" % TIMEOUT)
            data = self.sock.recv(1 << 20)
            self.wire_in += len(data)
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            self.events.extend(self.protocol.events_received())
            self.flush()  # pongs, the close answer
            if not data and not self.events:
                raise ConnectionError("connection closed")
        return self.events.pop(0)

    def handshake(self):
        event = self.next_event()
        if not isinstance(event, Response):
            raise RuntimeError("expected the handshake response, got %r" % event)
        if self.protocol.handshake_exc is not None:
            raise RuntimeError("handshake failed: %r" % self.protocol.handshake_exc)
        return event.headers.get("Sec-WebSocket-Extensions", "")

    def send(self, kind, data, fragments):
        step = max(1, -(-len(data) // fragments))
        parts = [data[i : i + step] for i in range(0, len(data), step)] or [data]
        first = self.protocol.send_text if kind == "text" else self.protocol.send_binary
        first(parts[0], fin=len(parts) == 1)
        for i, part in enumerate(parts[1:], 2):
            self.protocol.send_continuation(part, fin=i == len(parts))
        self.flush()

    def receive(self):
        """One whole message: (kind, bytes)."""
        kind, parts = None, []
        while True:
            frame = self.next_event()
            if frame.opcode in (Opcode.PING, Opcode.PONG):
                continue
            if frame.opcode is Opcode.CLOSE:
                raise ConnectionError("closed by the server: %r" % frame)
            if kind is None:
                kind = "text" if frame.opcode is Opcode.TEXT else "binary"
            parts.append(frame.data)
            if frame.fin:
                return kind, b"".join(parts)

    def close(self):
        self.protocol.send_close(1000)
        self.flush()
        while self.protocol.state is not State.CLOSED:
            try:
                self.next_event()
            except ConnectionError:
                break
        self.sock.close()
        return self.protocol.close_code


def run_client(url, sets):
    passed = failed = 0
    for name in sets:
        seen = []
        try:
            client = Client(url, RecordingClientFactory(seen, **CLIENT_SETS[name]))
            print("%s extensions: %s" % (name, client.handshake()), flush=True)
        except Exception as e:  # noqa: BLE001  (reported, then the next set)
            print("%s FAIL handshake: %r" % (name, e), flush=True)
            failed += 1
            continue
        try:
            for kind, data, fragments in messages():
                what = "%s %d" % (kind, len(data))
                if fragments > 1:
                    what = "fragmented " + what
                before, frames_before = client.wire_in, len(seen)
                client.send(kind, data, fragments)
                got_kind, got = client.receive()
                wire = client.wire_in - before
                if (got_kind, got) != (kind, data):
                    print("%s FAIL %s: echo differs (%s, %d bytes)" % (name, what, got_kind, len(got)), flush=True)
                    failed += 1
                elif len(data) >= 1024 and not (seen[frames_before:] and all(seen[frames_before:])):
                    print("%s FAIL %s: the echo was not compressed" % (name, what), flush=True)
                    failed += 1
                elif len(data) >= 1024 and wire * 4 >= len(data) * 3:
                    print("%s FAIL %s: echo took %d bytes on the wire" % (name, what, wire), flush=True)
                    failed += 1
                else:
                    print("%s ok %s wire %d" % (name, what, wire), flush=True)
                    passed += 1
            code = client.close()
            if code == 1000:
                print("%s ok close 1000" % name, flush=True)
                passed += 1
            else:
                print("%s FAIL close: code %r" % (name, code), flush=True)
                failed += 1
        except Exception as e:  # noqa: BLE001
            print("%s FAIL: %r" % (name, e), flush=True)
            failed += 1
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


def report(name, check):
    """Runs `check` (which returns the count it checked, or raises) and prints
    "NAME ok COUNT" or "NAME FAIL ...", then the tally; returns the exit status."""
    try:
        count = check()
    except Exception as e:  # noqa: BLE001
        print("%s FAIL %r" % (name, e), flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1
    print("%s ok %d" % (name, count), flush=True)
    print("1 passed, 0 failed", flush=True)
    return 0


def interleaved(url, n):
    clients = [Client(url, ClientPerMessageDeflateFactory()) for _ in range(n)]
    answers = {c.handshake() for c in clients}
    if not all(a.startswith("permessage-deflate") for a in answers):
        raise RuntimeError("answers %r" % answers)
    texts = [json_like(64 * 1024, 10 + i).encode() for i in range(n)]
    for c, t in zip(clients, texts):
        c.protocol.send_text(t[: len(t) // 2], fin=False)
        c.flush()
    for c, t in reversed(list(zip(clients, texts))):
        c.protocol.send_continuation(t[len(t) // 2 :], fin=True)
        c.flush()
    for i, (c, t) in enumerate(zip(clients, texts)):
        if c.receive() != ("text", t):
            raise RuntimeError("connection %d: the echo differs" % i)
    codes = [c.close() for c in clients]
    if set(codes) != {1000}:
        raise RuntimeError("close codes %r" % codes)
    return n


def idle(url, pause_ms):
    rounds = 3
    client = Client(url, ClientPerMessageDeflateFactory())
    client.handshake()
    text = json_like(200, 7).encode()
    for i in range(rounds + 1):
        if i > 0:
            time.sleep(pause_ms / 1000)
        before = client.wire_out
        client.send("text", text, 1)
        if client.receive() != ("text", text):
            raise RuntimeError("message %d: the echo differs" % i)
        wire = client.wire_out - before
        if i > 0 and wire * 4 >= len(text):
            raise RuntimeError("message %d took %d bytes on the wire: no back-reference" % (i, wire))
    if client.close() != 1000:
        raise RuntimeError("close code %r" % client.protocol.close_code)
    return rounds


class RecordingServerFactory(ServerPerMessageDeflateFactory):
    def __init__(self, seen, **params):
        super().__init__(**params)
        self.seen = seen

    def process_request_params(self, params, accepted_extensions):
        response, extension = super().process_request_params(params, accepted_extensions)
        watch_rsv1(extension, self.seen)
        return response, extension


async def run_server(name):
    from websockets.asyncio.server import serve

    seen = []

    async def echo(ws):
        print("extensions: %s" % ws.response.headers.get("Sec-WebSocket-Extensions", ""), flush=True)
        async for message in ws:
            data = message.encode() if isinstance(message, str) else message
            kind = "text" if isinstance(message, str) else "binary"
            how = "compressed" if seen and seen[-1] else "plain"
            print("message %s %d %s" % (kind, len(data), how), flush=True)
            if len(message) >= FRAGMENTED_ECHO:
                # One compressed message in 4 frames, for the client to inflate.
                step = -(-len(message) // 4)
                await ws.send([message[i : i + step] for i in range(0, len(message), step)])
            else:
                await ws.send(message)
        print("close %s" % ws.close_code, flush=True)

    factory = RecordingServerFactory(seen, **SERVER_SETS[name])
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(echo, "127.0.0.1", 0, extensions=[factory], compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("deflate_peer listening on 127.0.0.1:%d" % port, flush=True)
        await stop
    return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "client" and all(s in CLIENT_SETS for s in argv[3:]):
        return run_client(argv[2], argv[3:])
    if len(argv) == 4 and argv[1] == "interleaved" and argv[3].isdigit():
        return report("interleaved", lambda: interleaved(argv[2], int(argv[3])))
    if len(argv) == 4 and argv[1] == "idle" and argv[3].isdigit():
        return report("idle", lambda: idle(argv[2], int(argv[3])))
    if len(argv) == 3 and argv[1] == "server" and argv[2] in SERVER_SETS:
        return asyncio.run(run_server(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
