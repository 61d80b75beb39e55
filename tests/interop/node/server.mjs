// An echo server on Node's `ws`, for testing WebSocket clients (wsconn's
// c-examples/client): every message is sent back with its type.
//
// Usage: node server.mjs [PORT [DEFLATE]]   (default 0: a free port)
//
// DEFLATE names a set of permessage-deflate parameters (see DEFLATE_SETS),
// and has messages of 64 KiB or more echoed in 4 frames; without it the
// extension is off.
//
// Prints "node_ws_server listening on 127.0.0.1:PORT" once it accepts
// connections, then one line per event: "open PATH", "message text|binary
// LENGTH", "close CODE REASON", "error MESSAGE"; with DEFLATE also
// "extensions: HEADER" (its answer) per connection and, after its close,
// "wire N" (bytes read from the client's socket, handshake included).
// Exits 0 on SIGTERM/SIGINT.

import { WebSocketServer } from 'ws';

const DEFLATE_SETS = {
  default: {},
  server_no_context_takeover: { serverNoContextTakeover: true },
  client_no_context_takeover: { clientNoContextTakeover: true },
  server_window_9: { serverMaxWindowBits: 9 },
  client_window_10: { clientMaxWindowBits: 10 },
  // zlib has no 8-bit raw deflate: ws compresses with 9 bits even so.
  server_window_8: { serverMaxWindowBits: 8 },
};

const port = Number(process.argv[2] ?? 0);
const deflate = process.argv[3];
if (!Number.isInteger(port) || port < 0 || port > 65535 || (deflate !== undefined && !(deflate in DEFLATE_SETS))) {
  console.error(`usage: node server.mjs [PORT [DEFLATE]]  (DEFLATE: ${Object.keys(DEFLATE_SETS).join(', ')})`);
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: deflate === undefined ? false : { ...DEFLATE_SETS[deflate], threshold: 0 },
  maxPayload: 64 * 1024 * 1024,
});

wss.on('listening', () => {
  console.log(`node_ws_server listening on 127.0.0.1:${wss.address().port}`);
});

if (deflate !== undefined) {
  wss.on('headers', (headers) => {
    const line = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions:'));
    console.log(`extensions: ${line ? line.slice(line.indexOf(':') + 1).trim() : ''}`);
  });
}

wss.on('connection', (ws, req) => {
  console.log(`open ${req.url}`);
  ws.on('message', (data, isBinary) => {
    console.log(`message ${isBinary ? 'binary' : 'text'} ${data.length}`);
    if (deflate !== undefined && data.length >= 64 * 1024) {
      // One compressed message in 4 frames, for the client to inflate.
      const step = Math.ceil(data.length / 4);
      for (let at = 0; at < data.length; at += step) {
        ws.send(data.subarray(at, at + step), { binary: isBinary, fin: at + step >= data.length });
      }
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('ping', (data) => console.log(`ping ${data.length}`));
  ws.on('close', (code, reason) => {
    console.log(`close ${code} ${reason.toString()}`);
    if (deflate !== undefined) console.log(`wire ${req.socket.bytesRead}`);
  });
  ws.on('error', (err) => console.log(`error ${err.message}`));
});

wss.on('error', (err) => {
  console.error(`node_ws_server: ${err.message}`);
  process.exit(1);
});

function stop() {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
