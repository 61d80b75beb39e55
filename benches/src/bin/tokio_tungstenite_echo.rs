//! Echo server on tokio-tungstenite, a peer for wsbench.
//!
//! Usage: tokio_tungstenite_echo PORT   (binds 127.0.0.1; 0 picks a free port)
//!
//! One thread: tokio's current_thread runtime, one task per connection. Each
//! task forwards the text and binary messages it reads back to the client with
//! `StreamExt::forward`, which feeds the sink while messages are ready and
//! flushes when the stream would wait (so a batch of messages read together is
//! written together). tungstenite answers pings and the closing handshake.

use futures_util::{future, StreamExt, TryStreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn main() {
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    wsconn_bench::run_peer("tokio_tungstenite_echo", move |stream| async move {
        let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
            return;
        };
        let (tx, rx) = ws.split();
        let _ = rx
            .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
            .forward(tx)
            .await;
    });
}
