//! wsconn: a WebSocket (RFC 6455) library for C and Rust programs.
//!
//! The protocol core ([`Session`], [`Receiver`], [`Sender`] and the modules below)
//! does no I/O: it turns received bytes into events and sends into bytes to
//! write. The `ffi` module is the C API over it (see `include/wsconn.h`).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod acceptor;
pub mod callbacks;
pub mod close_code;
pub mod config;
pub mod conn;
pub mod error;
pub mod event;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod random;
pub mod reactor;
pub mod receiver;
pub mod role;
pub mod sender;
pub mod session;
pub mod transport;
pub mod url;
pub mod utf8;

pub mod ffi;

pub use close_code::CloseCode;
pub use config::Config;
pub use error::{Error, Result};
pub use event::{Event, MessageKind};
pub use receiver::{Handler, Receiver};
pub use role::Role;
pub use sender::Sender;
pub use session::{Session, State};
