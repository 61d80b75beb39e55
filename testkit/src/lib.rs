//! What wsconn's tests, fuzz seeds and benchmarks share, in one place: frames
//! written by hand, the samples of RFC 6455, running the C programs and the
//! Python peer as processes, and a raw WebSocket client over `TcpStream`.
//!
//! It does not depend on wsconn: the bytes it makes check wsconn with code
//! wsconn did not write, and fuzz/ and benches/ (packages of their own) can
//! use it without a dependency cycle. std only, so Miri runs it too.
//!
//! Nothing here skips: a missing `make`, compiler, `python3` or `websockets`
//! (installed into `target/venv` on first use), `node` or `ws` (installed
//! into `tests/interop/node` on first use) fails the test that needs it.

mod alloc;
mod frame;
mod header;
mod http;
mod make;
mod net;
mod node;
mod paths;
mod process;
mod programs;
mod python;
mod rfc6455;
mod sanitizer;
mod sources;
mod ws_client;

pub use alloc::*;
pub use frame::*;
pub use header::*;
pub use http::*;
pub use make::*;
pub use net::*;
pub use node::*;
pub use paths::*;
pub use process::*;
pub use programs::*;
pub use python::*;
pub use rfc6455::*;
pub use sanitizer::*;
pub use sources::*;
pub use ws_client::*;
