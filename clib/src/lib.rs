//! The C libraries, `libwsconn.so` and `libwsconn.a`: the `wsconn` crate's C
//! API (`wsconn::ffi`, declared in include/wsconn.h), linked with LTO. No code
//! of its own; see the workspace note in the root Cargo.toml.

pub use wsconn_core::ffi::*;
