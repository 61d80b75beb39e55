//! The runtime: an event loop with timers, and the connections, acceptors and
//! connectors that run the protocol core over sockets.

pub mod acceptor;
pub mod callbacks;
pub mod connection;
pub mod reactor;
pub mod transport;
pub mod url;
