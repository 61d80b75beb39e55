#!/usr/bin/env python3
"""A wss:// echo server (Python `websockets` over the ssl module), for the
wss:// client tests.

Usage: wss_echo_server.py CERT.pem KEY.pem [CLIENT_CA.pem]

With CLIENT_CA.pem, clients must show a certificate it signed (mutual TLS).

Listens on 127.0.0.1, on a free port, printed as
"wss_echo_server listening on 127.0.0.1:PORT";
echoes every message until killed.
"""

import asyncio
import ssl
import sys

try:  # websockets >= 13: the new asyncio implementation
    from websockets.asyncio.server import serve
except ImportError:  # websockets 12: the legacy implementation
    from websockets.server import serve


async def echo(ws, *_path):
    async for message in ws:
        await ws.send(message)


async def main(cert, key, client_ca=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    async with serve(echo, "127.0.0.1", 0, ssl=context) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"wss_echo_server listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
