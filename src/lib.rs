//! wsconn: a WebSocket (RFC 6455) library for C and Rust programs, in three layers
//! that depend on each other in one direction only:
//!
//! - [`proto`]: the sans-IO protocol core. Bytes in, events out; sends in, bytes
//!   out. No sockets, no timers, no C types. [`Session`] is its entry point.
//! - [`runtime`]: the event loop ([`runtime::reactor::Reactor`], over mio) with its
//!   timers, and the connections, acceptors and connectors that run sessions
//!   over sockets. Programs plug in through Rust traits
//!   ([`runtime::handler::ConnHandler`]). Uses `proto`; no C types.
//! - [`ffi`]: the C API (`include/wsconn.h`): every `extern "C"` item, every C
//!   type and callback table, the C result codes and the panic boundary. It
//!   converts and delegates to the two layers below; it decides nothing.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod proto;
pub mod runtime;

pub mod ffi;

pub use proto::close_code::CloseCode;
pub use proto::config::Config;
pub use proto::deflate::{Compress, DeflateConfig};
pub use proto::error::{Error, Result};
pub use proto::event::{Event, Message, MessageKind};
pub use proto::role::Role;
pub use proto::session::{EventHandler, Session};
pub use proto::state::State;
