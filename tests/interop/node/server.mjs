// An echo server on Node's `ws`, for testing WebSocket clients (wsconn's
// c-examples/client): every message is sent back with its type.
//
// Usage: node server.mjs [PORT]      (default 0: a free port)
//
// Prints "node_ws_server listening on 127.0.0.1:PORT" once it accepts
// connections, then one line per event: "open PATH", "message text|binary
// LENGTH", "close CODE REASON", "error MESSAGE".  Exits 0 on SIGTERM/SIGINT.

import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: node server.mjs [PORT]');
  process.exit(2);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });

wss.on('listening', () => {
  console.log(`node_ws_server listening on 127.0.0.1:${wss.address().port}`);
});

wss.on('connection', (ws, req) => {
  console.log(`open ${req.url}`);
  ws.on('message', (data, isBinary) => {
    console.log(`message ${isBinary ? 'binary' : 'text'} ${data.length}`);
    ws.send(data, { binary: isBinary });
  });
  ws.on('ping', (data) => console.log(`ping ${data.length}`));
  ws.on('close', (code, reason) => console.log(`close ${code} ${reason.toString()}`));
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
