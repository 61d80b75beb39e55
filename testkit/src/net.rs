//! Loopback ports.

use std::net::TcpListener;

/// A port that nothing listens on (at the time of the call).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}
