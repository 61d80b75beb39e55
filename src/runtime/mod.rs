//! The runtime: an event loop with timers, and the connections, acceptors and
//! connectors that run the protocol core over sockets. Programs plug in
//! through Rust traits and closures ([`handler::ConnHandler`],
//! [`acceptor::AcceptFn`]); nothing here knows C.

pub mod acceptor;
pub(crate) mod budget;
pub mod client;
pub mod config;
pub mod connection;
pub mod drain;
pub mod error;
pub mod handler;
pub mod listen_fds;
pub mod log;
pub mod metrics;
mod observe;
pub mod reactor;
pub mod refusal;
pub mod resolver;
pub mod stats;
pub(crate) mod timers;
pub mod tls;
pub mod topics;
pub mod transport;
pub mod uring;
pub mod url;
pub mod user_timer;
pub mod watch;
