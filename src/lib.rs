//! wsconn: a WebSocket (RFC 6455) library for C and Rust programs.
//!
//! The protocol core ([`Session`], [`Receiver`], [`Sender`] and the modules below)
//! does no I/O: it turns received bytes into events and sends into bytes to
//! write. The `ffi` module is the C API over it (see `include/wsconn.h`).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod proto;
pub mod runtime;

pub mod ffi;

pub use proto::close_code::CloseCode;
pub use proto::config::Config;
pub use proto::error::{Error, Result};
pub use proto::event::{Event, MessageKind};
pub use proto::receiver::{Handler, Receiver};
pub use proto::role::Role;
pub use proto::sender::Sender;
pub use proto::session::{Session, State};
