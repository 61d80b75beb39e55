// permessage-deflate interop for a WebSocket echo server, with Node's `ws`
// client.
//
// Usage: node deflate_client.mjs ws://127.0.0.1:PORT/echo SET...
//
// For each SET (see SETS), connects offering permessage-deflate with those
// parameters, prints "SET extensions: HEADER" (the server's
// Sec-WebSocket-Extensions), then echoes text and binary messages of 0, 16 B,
// 1 KiB, 64 KiB and 1 MiB, one at a time, printing "SET ok KIND SIZE wire N"
// (N: bytes of the echo on the wire) or "SET FAIL ...", then a 64 KiB text
// sent in 4 frames ("SET ok fragmented text 65536 ..."), and closes with 1000.
// A compressible echo of 1 KiB or more must take less than 3/4 of its size
// on the wire (8-bit windows leave Huffman coding alone: about 0.56).  The
// last line is "N passed, M failed"; the exit status is 0 only if none
// failed.

import WebSocket from 'ws';

const TIMEOUT_MS = 30000;
const SIZES = [0, 16, 1024, 64 * 1024, 1024 * 1024];

const SETS = {
  default: {},
  server_no_context_takeover: { serverNoContextTakeover: true },
  client_no_context_takeover: { clientNoContextTakeover: true },
  windows_10_9: { serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
  server_window_8: { serverMaxWindowBits: 8 },
  // client_max_window_bits not offered: the server cannot narrow it.
  no_client_window: { clientMaxWindowBits: false },
  // zlib has no 8-bit raw deflate: ws compresses with 9 bits even so.
  client_window_8: { clientMaxWindowBits: 8 },
};

// `size` bytes of JSON-ish ASCII text: compressible, not trivially.
function jsonLike(size, seed) {
  const parts = [];
  let total = 0;
  for (let i = seed; total < size; i++) {
    const item = `{"id":${i},"user":"user-${(i * 7919) % 10007}","tags":["alpha","beta"],"score":${(i * 31) % 1000}},`;
    parts.push(item);
    total += item.length;
  }
  return Buffer.from(parts.join('').slice(0, size));
}

function* messages() {
  for (const size of SIZES) {
    yield { kind: 'text', data: jsonLike(size, 1) };
    // Binary: the text with every byte flipped, so not valid UTF-8.
    yield { kind: 'binary', data: jsonLike(size, 2).map((b) => b ^ 0xa5) };
  }
  // One compressed message in 4 frames (RSV1 on the first only).
  yield { kind: 'text', data: jsonLike(64 * 1024, 3), fragments: 4 };
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Opens a connection; resolves to { ws, extensions } once open.
function open(url, params) {
  return withTimeout(new Promise((resolve, reject) => {
    let extensions = '';
    const ws = new WebSocket(url, {
      perMessageDeflate: { ...params, threshold: 0 },
      maxPayload: 64 * 1024 * 1024,
    });
    ws.on('upgrade', (res) => {
      extensions = res.headers['sec-websocket-extensions'] ?? '';
    });
    ws.on('open', () => resolve({ ws, extensions }));
    ws.on('error', reject);
    ws.on('close', (code) => reject(new Error(`closed during the handshake (${code})`)));
  }), 'open');
}

function echo(ws, { kind, data, fragments = 1 }) {
  return withTimeout(new Promise((resolve, reject) => {
    const onMessage = (got, isBinary) => {
      cleanup();
      resolve({ got: Buffer.from(got), kind: isBinary ? 'binary' : 'text' });
    };
    const onClose = (code) => {
      cleanup();
      reject(new Error(`closed by the server (${code})`));
    };
    const cleanup = () => {
      ws.off('message', onMessage);
      ws.off('close', onClose);
    };
    ws.on('message', onMessage);
    ws.on('close', onClose);
    const step = Math.ceil(data.length / fragments);
    for (let at = 0; at < data.length || at === 0; at += step) {
      const fin = at + step >= data.length;
      ws.send(data.subarray(at, at + step), { binary: kind === 'binary', compress: true, fin });
      if (fin) break;
    }
  }), `echo of ${kind} ${data.length}`);
}

function close(ws) {
  return withTimeout(new Promise((resolve) => {
    ws.on('close', (code) => resolve(code));
    ws.close(1000);
  }), 'close');
}

let passed = 0;
let failed = 0;
function report(ok, line) {
  console.log(line);
  if (ok) passed++;
  else failed++;
}

const [url, ...sets] = process.argv.slice(2);
if (!url || sets.length === 0 || !sets.every((s) => s in SETS)) {
  console.error(`usage: node deflate_client.mjs URL SET...  (SET: ${Object.keys(SETS).join(', ')})`);
  process.exit(2);
}

for (const name of sets) {
  let conn;
  try {
    conn = await open(url, SETS[name]);
  } catch (e) {
    report(false, `${name} FAIL handshake: ${e.message}`);
    continue;
  }
  console.log(`${name} extensions: ${conn.extensions}`);
  const { ws } = conn;
  try {
    for (const m of messages()) {
      const what = `${m.fragments ? 'fragmented ' : ''}${m.kind} ${m.data.length}`;
      const before = ws._socket.bytesRead;
      const { got, kind } = await echo(ws, m);
      const wire = ws._socket.bytesRead - before;
      if (kind !== m.kind || !got.equals(m.data)) {
        report(false, `${name} FAIL ${what}: echo differs (${kind}, ${got.length} bytes)`);
      } else if (m.data.length >= 1024 && wire * 4 >= m.data.length * 3) {
        report(false, `${name} FAIL ${what}: echo took ${wire} bytes on the wire`);
      } else {
        report(true, `${name} ok ${what} wire ${wire}`);
      }
    }
    const code = await close(ws);
    report(code === 1000, `${name} ${code === 1000 ? 'ok' : 'FAIL'} close ${code}`);
  } catch (e) {
    report(false, `${name} FAIL: ${e.message}`);
    ws.terminate();
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
