#!/usr/bin/env python3
"""The figures of issue 21's memory items, taken from outside the servers.

Runs c-examples/echo_server (and chat_server) as processes, talks to them over
raw sockets (the handshake, masking and raw deflate written here, with
Python's zlib), and reads their RSS from /proc and, with -v, what their
reactor reports holding. Std library only; 127.0.0.1 only.

    python3 benches/budget_figures.py [--examples DIR] [SCENARIO...]

SCENARIO is one or more of:
  pinned    (item 1) 8 clients with context takeover each send a small
            compressed message, then 16 MiB uncompressed, then go quiet:
            the server's RSS and what it reports holding, 2.5 s later.
  streams   (item 1) 300 clients (--clients) with context takeover each send
            a small compressed message every 0.5 s for 8 s to a server with a
            32 MiB budget (--budget-mib): peak RSS, what it reports holding,
            the echoes that came.
  pubsub    (item 2) 300 members of a chat_server room that stop reading
            while 2 messages of 1 MiB are published: how many each gets.
  bomb      (item 6) a client sends 1 MiB of zeros compressed to about
            1 KiB, 200 times, to echo_server -z: what the server inflated,
            its CPU time, and how the connection ended.
--examples DIR runs the example binaries found there (default: c-examples),
e.g. those of another build, to compare.
"""

import argparse
import base64
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An example server on a free port, its stderr kept in a file."""

    def __init__(self, binary, args):
        self.port = free_port()
        self.log_path = f"/tmp/budget_figures_{os.getpid()}_{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, *args, str(self.port)], stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{binary} did not listen")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def hwm_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reported(self):
        """The last 'bytes buffered' echo_server -v logged (summed over reactors)."""
        self.log.flush()
        last = {}
        with open(self.log_path, errors="replace") as f:
            for line in f:
                m = re.search(r"reactor (\d+) memory: (\d+) bytes buffered, (\d+) connections waiting", line)
                if m:
                    last[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        return sum(b for b, _ in last.values()), sum(w for _, w in last.values())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        os.unlink(self.log_path)


class Client:
    """A WebSocket client over a raw socket (frames masked, as a client's)."""

    def __init__(self, port, path="/", deflate=None):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        ext = f"Sec-WebSocket-Extensions: {deflate}\r\n" if deflate else ""
        self.sock.sendall(
            (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(head.decode(errors="replace"))
        self.agreed = ""
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("sec-websocket-extensions:"):
                self.agreed = line.split(":", 1)[1].strip()
        self.deflater = zlib.compressobj(1, zlib.DEFLATED, -15)

    def send(self, opcode, payload, rsv1=False, fin=True):
        first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", first, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if n < 4096 else _mask(payload, mask)
        self.sock.sendall(head + mask + masked)

    def send_compressed(self, text):
        """A text message compressed with this client's context (kept unless
        the server asked for client_no_context_takeover)."""
        if "client_no_context_takeover" in self.agreed:
            self.deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
        packed = self.deflater.compress(text) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.send(0x1, packed[:-4], rsv1=True)

    def read_frame(self, timeout=30):
        """(opcode, payload, rsv1), or None if the server closed TCP."""
        deadline = time.time() + timeout
        while True:
            frame = _parse(self.buf)
            if frame:
                opcode, payload, rsv1, used = frame
                self.buf = self.buf[used:]
                return opcode, payload, rsv1
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no frame")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, socket.timeout):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def close(self):
        self.sock.close()


def _mask(payload, mask):
    n = len(payload)
    key = int.from_bytes((mask * ((n + 3) // 4))[:n], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")


def _parse(buf):
    if len(buf) < 2:
        return None
    first, second = buf[0], buf[1]
    n, at = second & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < at + n:
        return None
    return first & 0x0F, buf[at:at + n], bool(first & 0x40), at + n


def example(args, name):
    path = os.path.join(args.examples, name)
    if not os.path.exists(path):
        sys.exit(f"{path} not found: build it (make -C c-examples)")
    return path


TAKEOVER = "permessage-deflate; client_max_window_bits"
SMALL = b'{"user":"someone","text":"a small message, compressed with context takeover"}' * 4


def pinned(args):
    held_pinned(args, ["--deflate-dedicated", "15"], "with context takeover")
    held_pinned(args, [], "plain, for the allocator's share")


def held_pinned(args, mode, what):
    server = Server(example(args, "echo_server"), ["-v", *mode])
    deflate = TAKEOVER if mode else None
    try:
        clients = [Client(server.port, deflate=deflate) for _ in range(8)]
        time.sleep(1.5)
        before = server.rss_kib()
        big = bytes([7]) * (16 * MIB)
        for c in clients:
            if deflate:
                c.send_compressed(SMALL)
            else:
                c.send(0x1, SMALL)
            assert c.read_frame()[0] == 0x1
            c.send(0x2, big)
            assert c.read_frame()[0] == 0x2
        time.sleep(2.5)
        rss = server.rss_kib()
        reported, _ = server.reported()
        print(f"pinned ({what}): 8 connections, one small and one 16 MiB message each, then quiet 2.5 s:"
              f" RSS +{(rss - before) // 1024} MiB (peak {server.hwm_kib() // 1024} MiB),"
              f" reported holding {reported // 1024} KiB")
    finally:
        server.stop()


def streams(args):
    count, seconds, budget = args.clients, 8, args.budget_mib
    server = Server(example(args, "echo_server"), ["-v", "-m", str(budget), "--deflate-dedicated", "15"])
    try:
        base = server.rss_kib()
        clients = [Client(server.port, deflate=TAKEOVER) for _ in range(count)]
        agreed = sum("server_no_context_takeover" not in c.agreed for c in clients)
        sent = echoed = 0
        peak_reported = 0
        end = time.time() + seconds
        by_sock = {c.sock: c for c in clients}
        next_round = time.time()
        while time.time() < end:
            if time.time() >= next_round:
                for c in clients:
                    c.send_compressed(SMALL)
                    sent += 1
                next_round += 0.5
            ready, _, _ = select.select(list(by_sock), [], [], 0.05)
            for s in ready:
                c = by_sock[s]
                chunk = s.recv(1 << 16)
                if not chunk:
                    del by_sock[s]
                    continue
                c.buf += chunk
                while _parse(c.buf):
                    _, _, _, used = _parse(c.buf)
                    c.buf = c.buf[used:]
                    echoed += 1
            peak_reported = max(peak_reported, server.reported()[0])
        rss = server.rss_kib()
        print(f"streams: {count} connections with context takeover ({agreed} agreed on it), a message each"
              f" every 0.5 s for {seconds} s, {budget} MiB budget: RSS +{(rss - base) // 1024} MiB"
              f" (peak {server.hwm_kib() // 1024} MiB), reported holding at most {peak_reported >> 20} MiB,"
              f" {echoed} of {sent} messages echoed")
    finally:
        server.stop()


def pubsub(args):
    members, size = 300, MIB
    server = Server(example(args, "chat_server"), [])
    try:
        clients = [Client(server.port, path="/room/r") for _ in range(members)]
        time.sleep(1)
        publisher = Client(server.port, path="/room/r")
        time.sleep(0.5)
        text = b"x" * size
        # The members do not read meanwhile: both messages wait for them.
        publisher.send(0x1, text)
        publisher.send(0x1, text)
        time.sleep(1.5)
        # Then they read, for 3 s all together.
        got = {c.sock: 0 for c in clients}
        by_sock = {c.sock: c for c in clients}
        end = time.time() + 3
        while by_sock and time.time() < end:
            ready, _, _ = select.select(list(by_sock), [], [], 0.1)
            for s in ready:
                c = by_sock[s]
                chunk = s.recv(1 << 20)
                if not chunk:
                    del by_sock[s]
                    continue
                c.buf += chunk
                while _parse(c.buf):
                    opcode, payload, _, used = _parse(c.buf)
                    c.buf = c.buf[used:]
                    got[s] += opcode == 0x1 and len(payload) == size
        got = list(got.values())
        print(f"pubsub: 2 messages of 1 MiB published to {members} members not reading meanwhile:"
              f" {sum(n == 2 for n in got)} members got both, {sum(n == 1 for n in got)} one,"
              f" {sum(n == 0 for n in got)} none")
    finally:
        server.stop()


def bomb(args):
    server = Server(example(args, "echo_server"), ["-z"])
    try:
        c = Client(server.port, deflate="permessage-deflate")
        packed = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
        payload = packed.compress(bytes(MIB)) + packed.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-4]
        cpu = server.cpu_seconds()
        sent = 0
        for _ in range(200):
            try:
                c.send(0x2, payload, rsv1=True)
                sent += 1
            except OSError:
                break
        echoed, code = 0, None
        while True:
            try:
                f = c.read_frame(timeout=20)
            except TimeoutError:
                break
            if f is None:
                break
            if f[0] == 0x8:
                code = struct.unpack("!H", f[1][:2])[0]
                break
            echoed += 1
        used = server.cpu_seconds() - cpu
        print(f"bomb: {sent} messages of 1 MiB of zeros, {len(payload)} bytes each on the wire"
              f" ({sent * (len(payload) + 14) >> 10} KiB in all): {echoed} inflated and echoed"
              f" ({echoed} MiB inflated), closed with {code}, server CPU {used:.2f} s")
    finally:
        server.stop()


SCENARIOS = {"pinned": pinned, "streams": streams, "pubsub": pubsub, "bomb": bomb}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", default=os.path.join(ROOT, "c-examples"))
    parser.add_argument("--clients", type=int, default=300, help="streams: how many clients (300)")
    parser.add_argument("--budget-mib", type=int, default=32, help="streams: the server's budget (32)")
    parser.add_argument("scenario", nargs="*", help=" ".join(SCENARIOS))
    args = parser.parse_args()
    for name in args.scenario:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name}")
    for name in args.scenario or list(SCENARIOS):
        SCENARIOS[name](args)


if __name__ == "__main__":
    main()
