//! The sans-IO protocol core: RFC 6455 without sockets, timers or C types.
//! Received bytes go in, events come out; sends go in, bytes to write come out.
//!
//! [`session::Session`] owns a connection's protocol state: its receiving part
//! (`receiver`: handshake and frame parsing, reassembly, UTF-8 checks) and its
//! sending part (`sender`: framing into one output buffer), joined around one
//! [`state::State`]. The other modules are the pieces they are made of.

pub mod close_code;
pub mod config;
pub mod deflate;
pub mod error;
pub mod event;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod proxy_header;
pub mod random;
pub(crate) mod receiver;
pub mod role;
pub(crate) mod sender;
pub mod session;
mod short_utf8;
pub mod state;
pub mod utf8;

pub use sender::DIRECT_SEND_MIN;
