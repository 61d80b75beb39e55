//! Echo server on fastwebsockets, a peer for wsbench.
//!
//! Usage: fastwebsockets_echo PORT   (binds 127.0.0.1; 0 picks a free port)
//!
//! One thread: tokio's current_thread runtime, one task per connection, as in
//! fastwebsockets' own examples/echo_server.rs (FragmentCollector, read_frame,
//! write_frame of every text and binary frame, `unconstrained` tasks), except
//! for the opening handshake: instead of hyper's upgrade machinery, a minimal
//! one (read the request head, answer 101), which only makes the peer faster.

use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket, WebSocketError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsconn_bench::upgrade_response;

/// Reads the request head and answers 101; Err for anything else.
async fn handshake(stream: &mut TcpStream) -> Result<(), String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("EOF in the handshake".into());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if head.len() > 8192 {
            return Err("handshake too large".into());
        }
    };
    if end != head.len() {
        // A client does not send frames before the 101; this server keeps it simple.
        return Err("bytes after the handshake request".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&head).map_err(|e| e.to_string())?;
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err("not a websocket upgrade".into());
    }
    let key = header("sec-websocket-key").ok_or("no Sec-WebSocket-Key")?;
    stream
        .write_all(&upgrade_response(key.trim()))
        .await
        .map_err(|e| e.to_string())
}

async fn serve(mut stream: TcpStream) -> Result<(), WebSocketError> {
    if handshake(&mut stream).await.is_err() {
        return Ok(());
    }
    let mut ws = WebSocket::after_handshake(stream, Role::Server);
    ws.set_max_message_size(64 << 20);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

fn main() {
    wsconn_bench::run_peer("fastwebsockets_echo", |stream| {
        tokio::task::unconstrained(async move {
            let _ = serve(stream).await;
        })
    });
}
