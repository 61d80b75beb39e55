//! The client, from Rust, against real servers and proxies: the opening
//! handshake (headers sent, the answer's status and headers, hostile
//! answers, a restart from the close callback), redirects, reconnection,
//! and proxies (tinyproxy, microsocks, haproxy's TLS; environment rules).
//! One test binary: its tests run in parallel.
#![cfg(feature = "tls")]

#[path = "../certs/mod.rs"]
mod certs;
#[path = "../rust_echo/mod.rs"]
mod rust_echo;

mod handshake;
mod proxies;
mod real_proxies;
mod reconnect;
mod redirects;
mod support;
