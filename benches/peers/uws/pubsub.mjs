// uWebSockets.js chat-room server, the peer of wsconn's fan-out benchmark:
// `node pubsub.mjs PORT`. Like c-examples/chat_server: a client of
// /room/NAME subscribes to NAME; each text message it sends is published
// (app.publish: framed once by uWS) to everyone in the room, itself included.
// Listens on 127.0.0.1 only; no compression, no idle timeout, and the same
// backpressure room as wsconn's default max output (16 MiB).
import { App } from 'uws-pack';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node pubsub.mjs PORT');
  process.exit(2);
}

const app = App();
app
  .ws('/room/*', {
    compression: 0,
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 0,
    maxBackpressure: 16 * 1024 * 1024,
    closeOnBackpressureLimit: false,
    upgrade: (res, req, context) => {
      res.upgrade(
        { room: req.getUrl().slice('/room/'.length) },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      ws.subscribe(ws.getUserData().room);
    },
    message: (ws, message, isBinary) => {
      app.publish(ws.getUserData().room, message, isBinary);
    },
  })
  .listen('127.0.0.1', port, (listenSocket) => {
    if (!listenSocket) {
      console.error(`uws pubsub: cannot listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
  });
