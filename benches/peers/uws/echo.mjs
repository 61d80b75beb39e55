// uWebSockets.js echo server, a peer of wsconn's benchmarks: `node echo.mjs PORT`.
// Echoes every message with the same type; listens on 127.0.0.1 only. The
// limits match the other peers: 16 MiB messages, no idle timeout, no
// compression, and enough backpressure room that uWS never drops a client
// (its default closes connections whose output passes 64 KiB).
import { App } from 'uws-pack';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node echo.mjs PORT');
  process.exit(2);
}

App()
  .ws('/*', {
    compression: 0,
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 0,
    maxBackpressure: 256 * 1024 * 1024,
    closeOnBackpressureLimit: false,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary);
    },
  })
  .listen('127.0.0.1', port, (listenSocket) => {
    if (!listenSocket) {
      console.error(`uws echo: cannot listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
  });
