// uWebSockets.js echo server, a peer of wsconn's benchmarks:
// `node echo.mjs PORT [COMPRESSION]`.
// Echoes every message with the same type; listens on 127.0.0.1 only. The
// limits match the other peers: 16 MiB messages, no idle timeout, and enough
// backpressure room that uWS never drops a client (its default closes
// connections whose output passes 64 KiB).
// COMPRESSION (permessage-deflate; default off, as for the other peers):
//   shared        SHARED_COMPRESSOR | SHARED_DECOMPRESSOR (no context takeover)
//   dedicated     DEDICATED_COMPRESSOR | DEDICATED_DECOMPRESSOR (256 KiB
//                 compressor and 32 KiB decompressor a connection: 15-bit windows)
//   dedicated-9   DEDICATED_COMPRESSOR_3KB | DEDICATED_DECOMPRESSOR_512B
//                 (9-bit windows)
// With compression on, every echo is sent compressed (uWS sends it as it is
// when that is no smaller).
import * as uWS from 'uws-pack';

const COMPRESSION = {
  off: uWS.DISABLED,
  shared: uWS.SHARED_COMPRESSOR | uWS.SHARED_DECOMPRESSOR,
  dedicated: uWS.DEDICATED_COMPRESSOR | uWS.DEDICATED_DECOMPRESSOR,
  'dedicated-9': uWS.DEDICATED_COMPRESSOR_3KB | uWS.DEDICATED_DECOMPRESSOR_512B,
};

const port = Number(process.argv[2]);
const mode = process.argv[3] ?? 'off';
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !(mode in COMPRESSION)) {
  console.error(`usage: node echo.mjs PORT [${Object.keys(COMPRESSION).join('|')}]`);
  process.exit(2);
}
const compress = mode !== 'off';

uWS.App()
  .ws('/*', {
    compression: COMPRESSION[mode],
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 0,
    maxBackpressure: 256 * 1024 * 1024,
    closeOnBackpressureLimit: false,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary, compress);
    },
  })
  .listen('127.0.0.1', port, (listenSocket) => {
    if (!listenSocket) {
      console.error(`uws echo: cannot listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
  });
