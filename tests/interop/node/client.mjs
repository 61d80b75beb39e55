// Interop checks for a WebSocket echo server, using Node's `ws` client.
//
// Usage: node client.mjs ws://127.0.0.1:PORT/echo
//
// Every check prints "ok NAME" or "FAIL NAME: why"; the last line is
// "N passed, M failed".  The exit status is 0 only if every check passed.
// Every wait has a timeout, so a broken server cannot hang the run.

import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const TIMEOUT_MS = 10000;
const MIB = 1024 * 1024;

class CheckFailed extends Error {}

function expect(cond, why) {
  if (!cond) throw new CheckFailed(why);
}

function describe(buf, limit = 40) {
  const s = JSON.stringify(buf.subarray(0, limit).toString('latin1'));
  return `[${buf.length}] ${s}${buf.length > limit ? '...' : ''}`;
}

// A connection whose incoming messages, pongs and close are queued so that
// checks can await them in order.
class Conn {
  constructor(url) {
    this.url = url;
    this.messages = [];
    this.pongs = [];
    this.closed = null; // { code, reason }
    this.error = null;
    this.waiter = null;
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, { handshakeTimeout: TIMEOUT_MS, perMessageDeflate: false });
      this.ws = ws;
      const timer = setTimeout(() => reject(new CheckFailed(`no connection within ${TIMEOUT_MS} ms`)), TIMEOUT_MS + 1000);
      ws.on('open', () => {
        clearTimeout(timer);
        resolve(this);
      });
      ws.on('message', (data, isBinary) => {
        this.messages.push({ data: Buffer.from(data), isBinary });
        this.wake();
      });
      ws.on('pong', (data) => {
        this.pongs.push(Buffer.from(data));
        this.wake();
      });
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() };
        clearTimeout(timer);
        reject(new CheckFailed(`closed during the opening handshake (${code})`));
        this.wake();
      });
      ws.on('error', (err) => {
        this.error = err;
        clearTimeout(timer);
        reject(err);
        this.wake();
      });
    });
  }

  wake() {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w();
    }
  }

  // Waits until `ready()` returns something other than undefined.
  async until(ready, what) {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const v = ready();
      if (v !== undefined) return v;
      if (this.error) throw new CheckFailed(`error while waiting for ${what}: ${this.error.message}`);
      if (this.closed) throw new CheckFailed(`closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new CheckFailed(`no ${what} within ${TIMEOUT_MS} ms`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  nextMessage(what) {
    return this.until(() => this.messages.shift(), what);
  }

  send(data, options) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, options, (err) => (err ? reject(err) : resolve()));
    });
  }

  // Sends `message` (a string: text; a Buffer: binary) and checks the echo.
  async echo(message) {
    const binary = Buffer.isBuffer(message);
    await this.send(message, { binary });
    await this.expectEcho(binary, binary ? message : Buffer.from(message, 'utf8'));
  }

  async expectEcho(binary, bytes) {
    const kind = binary ? 'binary' : 'text';
    const got = await this.nextMessage(`echo of a ${kind} message ${describe(bytes)}`);
    expect(got.isBinary === binary, `sent ${kind}, got ${got.isBinary ? 'binary' : 'text'} ${describe(got.data)}`);
    if (!got.data.equals(bytes)) {
      let i = 0;
      while (i < Math.min(got.data.length, bytes.length) && got.data[i] === bytes[i]) i++;
      throw new CheckFailed(
        `content differs: sent ${bytes.length}, got ${got.data.length} (first difference at ${i}): ${describe(got.data)}`,
      );
    }
  }

  discard() {
    if (this.ws) this.ws.terminate();
  }
}

function randomText(nbytes) {
  // Valid UTF-8 of exactly nbytes bytes, with 1- to 4-byte characters.
  const alphabet = ['a', 'Z', '0', ' ', '\u00e9', '\u00df', '\u0416', '\u20ac', '\u2713', '\u6f22', '\u{1f600}'];
  let s = '';
  let n = 0;
  let i = 0;
  for (;;) {
    const c = alphabet[(i * 7919) % alphabet.length];
    i++;
    const len = Buffer.byteLength(c);
    if (n + len > nbytes - 4) break;
    s += c;
    n += len;
  }
  return s + 'x'.repeat(nbytes - n);
}

const CHECKS = [
  ['text', (c) => c.echo('Hello from node \u2713 \u{1f600}')],
  ['binary', (c) => c.echo(Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, ...Buffer.from('binary')]))],
  ['empty_text', (c) => c.echo('')],
  ['empty_binary', (c) => c.echo(Buffer.alloc(0))],
  ['binary_1mib', (c) => c.echo(randomBytes(MIB))],
  [
    'text_1mib',
    (c) => {
      const t = randomText(MIB);
      expect(Buffer.byteLength(t) === MIB, 'test bug: text is not 1 MiB');
      return c.echo(t);
    },
  ],
  [
    'fragmented_text',
    async (c) => {
      // ws sends one frame per send() call; fin: false leaves the message open.
      // The check mark (e2 9c 93) is split across two fragments.
      const parts = [Buffer.from('Frag'), Buffer.from('mented \xe2\x9c', 'latin1'), Buffer.from('\x93 text', 'latin1')];
      await c.send(parts[0], { binary: false, fin: false });
      await c.send(parts[1], { binary: false, fin: false });
      await c.send(parts[2], { binary: false, fin: true });
      await c.expectEcho(false, Buffer.concat(parts));
    },
  ],
  [
    'fragmented_binary',
    async (c) => {
      const parts = [Buffer.from([0, 1]), randomBytes(70000), Buffer.alloc(0), Buffer.from([0xff, 0xff, 0xff])];
      for (let i = 0; i < parts.length; i++) await c.send(parts[i], { binary: true, fin: i === parts.length - 1 });
      await c.expectEcho(true, Buffer.concat(parts));
    },
  ],
  [
    'ping_pong',
    async (c) => {
      const payload = Buffer.from('ping \x00\xff payload', 'latin1');
      c.ws.ping(payload);
      const pong = await c.until(() => c.pongs.shift(), 'pong');
      expect(pong.equals(payload), `pong payload ${describe(pong)}, expected ${describe(payload)}`);
      await c.echo('after ping');
    },
  ],
  [
    'pipelined_100',
    async (c) => {
      const msgs = [];
      for (let i = 0; i < 100; i++) msgs.push(i % 2 ? Buffer.from(`binary ${i}`.repeat(i + 1)) : `message ${i} \u2713`);
      await Promise.all(msgs.map((m) => c.send(m, { binary: Buffer.isBuffer(m) })));
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i];
        const binary = Buffer.isBuffer(m);
        try {
          await c.expectEcho(binary, binary ? m : Buffer.from(m, 'utf8'));
        } catch (e) {
          throw new CheckFailed(`echo ${i} of 100: ${e.message}`);
        }
      }
    },
  ],
  [
    'close_1000',
    async (c) => {
      c.ws.close(1000, 'bye');
      // 'close' fires once the server's close frame came and TCP closed; the
      // code is the one in the server's close frame.
      const closed = await new Promise((resolve) => {
        if (c.closed) return resolve(c.closed);
        const t = setTimeout(() => resolve(null), TIMEOUT_MS);
        c.ws.once('close', (code, reason) => {
          clearTimeout(t);
          resolve({ code, reason: reason.toString() });
        });
      });
      expect(closed !== null, `no close within ${TIMEOUT_MS} ms`);
      expect(closed.code === 1000, `server closed with ${closed.code} ${JSON.stringify(closed.reason)}, expected 1000`);
      expect(c.error === null, `error: ${c.error && c.error.message}`);
    },
  ],
];

async function main(url) {
  let passed = 0;
  let failed = 0;
  let conn = null;
  for (const [name, check] of CHECKS) {
    try {
      if (conn === null) conn = await new Conn(url).open();
      await check(conn);
      passed++;
      console.log(`ok ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e instanceof CheckFailed ? e.message : e.stack || e}`);
      if (conn) conn.discard();
      conn = null; // the next check gets a fresh connection
    }
  }
  if (conn) conn.discard();
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0;
}

if (process.argv.length !== 3) {
  console.error('usage: node client.mjs ws://HOST:PORT/PATH');
  process.exit(2);
}
const overall = setTimeout(() => {
  console.log('FAIL overall: did not finish within 120 s');
  process.exit(1);
}, 120000);
main(process.argv[2]).then(
  (ok) => {
    clearTimeout(overall);
    process.exit(ok ? 0 : 1);
  },
  (e) => {
    console.log(`FAIL internal: ${e.stack || e}`);
    process.exit(1);
  },
);
