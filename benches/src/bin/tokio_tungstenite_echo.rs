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
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => {
            eprintln!("usage: tokio_tungstenite_echo PORT");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|e| {
            eprintln!("tokio_tungstenite_echo: bind 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        });
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        println!("tokio_tungstenite_echo listening on 127.0.0.1:{port}");
        let config = WebSocketConfig::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin.
                    eprintln!("tokio_tungstenite_echo: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
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
    });
}
