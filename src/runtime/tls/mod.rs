//! TLS between a connection's socket and its session (cargo feature `tls`:
//! rustls with the ring provider). The session never sees TLS: reads go
//! socket → rustls → plaintext → session, and the session's output goes
//! session → rustls → records → socket (`connection/{input,output}.rs`).
//!
//! Without the feature the same names exist, every constructor fails with
//! [`TlsError::NotBuilt`], and a TLS stream cannot exist (an empty enum), so
//! the connection code has no `cfg` of its own.

mod error;

pub use error::TlsError;

#[cfg(feature = "tls")]
mod client;
#[cfg(feature = "tls")]
mod pem;
#[cfg(feature = "tls")]
mod server;
#[cfg(feature = "tls")]
mod stream;
#[cfg(feature = "tls")]
mod verifier;

#[cfg(not(feature = "tls"))]
mod disabled;

#[cfg(feature = "tls")]
pub(crate) use client::load_system_store;
#[cfg(feature = "tls")]
pub use client::ClientTls;
#[cfg(feature = "tls")]
pub use server::ServerTls;
#[cfg(feature = "tls")]
pub(crate) use stream::Stream;

#[cfg(not(feature = "tls"))]
pub(crate) use disabled::{load_system_store, Stream};
#[cfg(not(feature = "tls"))]
pub use disabled::{ClientTls, ServerTls};

/// Whether this build has TLS (the `tls` feature).
pub const BUILT_IN: bool = cfg!(feature = "tls");

/// What a failed read of TLS records means: the socket's errors carry an
/// errno; one without is the TLS layer refusing to buffer more of what the
/// peer sent (a handshake message over its 64 KiB), which is the peer's doing.
pub(crate) fn read_refusal(error: &std::io::Error) -> Option<TlsError> {
    error.raw_os_error().is_none().then_some(TlsError::BufferFull)
}
