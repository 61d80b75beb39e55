//! The sans-IO protocol core: RFC 6455 without sockets, timers or C types.
//! Received bytes go in, events come out; sends go in, bytes to write come out.

pub mod close_code;
pub mod config;
pub mod error;
pub mod event;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod random;
pub mod receiver;
pub mod role;
pub mod sender;
pub mod session;
pub mod utf8;
