//! The callbacks of reactor connections: their C types, and the table of them a
//! connection points to. Connections set up alike share one table (interned by
//! the reactor), so a connection carries one pointer and one `arg`, not nine pairs.
#![allow(non_camel_case_types)] // callback types carry their C names

use std::ffi::{c_char, c_int, c_void};

use crate::runtime::connection::Conn;

/// gbase's read callback: a complete message (`buffer` is not NUL-terminated).
/// Returns the bytes consumed: bytes left unconsumed are delivered again in front
/// of the next message, as gbase's buffer did; a negative value closes the
/// connection (close code 1011).
pub type wsconn_read_func =
    Option<extern "C" fn(fd: c_int, arg: *mut c_void, buffer: *const c_char, buflen: c_int) -> c_int>;
/// gbase's build callback: the opening handshake completed.
pub type wsconn_build_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void)>;
/// gbase's close callback: the connection closed; called once, with the socket
/// still open (it is closed when the callback returns). The connection may be
/// released inside.
pub type wsconn_close_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void)>;
/// A complete message with its type (`WSCONN_MSG_TEXT`: valid UTF-8, or
/// `WSCONN_MSG_BINARY`). When set, it is called instead of the read callback.
pub type wsconn_message_func =
    Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, r#type: c_int, data: *const u8, len: usize)>;
/// Streaming receive: each piece of a message as it arrives, `fin` nonzero on the
/// last. When set, no message is reassembled and neither the message nor the
/// read callback is called.
pub type wsconn_fragment_func =
    Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, r#type: c_int, data: *const u8, len: usize, fin: c_int)>;
/// The connection closed. `code`: the peer's close code (1005 if its close frame
/// had none); or the one sent to it when it broke the protocol (1002, 1007,
/// 1009…); 1000 after a plain HTTP exchange; 1006 when TCP dropped, an I/O error
/// or a timeout ended it without a closing handshake. `reason` is NUL-terminated.
/// Called before the close callback, with the socket still open.
pub type wsconn_close_ex_func =
    Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, code: c_int, reason: *const c_char, reason_len: usize)>;
/// Output fell to a quarter of the max output after a send failed with
/// `WSCONN_ERR_FULL` or left output at half of it or more: sending may resume.
pub type wsconn_drain_func = Option<extern "C" fn(con: *mut Conn, arg: *mut c_void)>;
/// A pong arrived.
pub type wsconn_pong_func = Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, data: *const u8, len: usize)>;
/// A plain HTTP request (no WebSocket upgrade). Answer it with
/// `wsconn_http_respond` inside the callback, or the library answers 404. The
/// connection closes after the response. The return value is ignored.
pub type wsconn_http_func =
    Option<extern "C" fn(con: *mut Conn, arg: *mut c_void, method: *const c_char, path: *const c_char) -> c_int>;

/// The functions of a connection's callbacks.
#[derive(Clone, Copy, Default)]
pub struct CallbackFns {
    pub read: wsconn_read_func,
    pub build: wsconn_build_func,
    pub close: wsconn_close_func,
    pub message: wsconn_message_func,
    pub fragment: wsconn_fragment_func,
    pub close_ex: wsconn_close_ex_func,
    pub drain: wsconn_drain_func,
    pub pong: wsconn_pong_func,
    pub http: wsconn_http_func,
}

impl CallbackFns {
    /// The functions' addresses: the key under which a reactor shares tables.
    /// (Two functions merged by the linker share a table harmlessly: they do the same.)
    pub fn key(&self) -> [usize; CALLBACKS] {
        let address = |f: Option<usize>| f.unwrap_or(0);
        [
            address(self.read.map(|f| f as usize)),
            address(self.build.map(|f| f as usize)),
            address(self.close.map(|f| f as usize)),
            address(self.message.map(|f| f as usize)),
            address(self.fragment.map(|f| f as usize)),
            address(self.close_ex.map(|f| f as usize)),
            address(self.drain.map(|f| f as usize)),
            address(self.pong.map(|f| f as usize)),
            address(self.http.map(|f| f as usize)),
        ]
    }
}

/// The table of a connection with no callbacks.
pub static NO_CALLBACKS: CallbackFns = CallbackFns {
    read: None,
    build: None,
    close: None,
    message: None,
    fragment: None,
    close_ex: None,
    drain: None,
    pong: None,
    http: None,
};

/// Which callback a setter sets (also its index among a connection's args).
#[derive(Clone, Copy)]
pub enum Callback {
    Read(wsconn_read_func),
    Build(wsconn_build_func),
    Close(wsconn_close_func),
    Message(wsconn_message_func),
    Fragment(wsconn_fragment_func),
    CloseEx(wsconn_close_ex_func),
    Drain(wsconn_drain_func),
    Pong(wsconn_pong_func),
    Http(wsconn_http_func),
}

/// Number of callbacks, for per-callback args.
pub const CALLBACKS: usize = 9;

impl Callback {
    /// This callback's index among a connection's args.
    pub fn index(self) -> usize {
        match self {
            Callback::Read(_) => 0,
            Callback::Build(_) => 1,
            Callback::Close(_) => 2,
            Callback::Message(_) => 3,
            Callback::Fragment(_) => 4,
            Callback::CloseEx(_) => 5,
            Callback::Drain(_) => 6,
            Callback::Pong(_) => 7,
            Callback::Http(_) => 8,
        }
    }

    /// `fns` with this callback's function set.
    pub fn apply(self, mut fns: CallbackFns) -> CallbackFns {
        match self {
            Callback::Read(f) => fns.read = f,
            Callback::Build(f) => fns.build = f,
            Callback::Close(f) => fns.close = f,
            Callback::Message(f) => fns.message = f,
            Callback::Fragment(f) => fns.fragment = f,
            Callback::CloseEx(f) => fns.close_ex = f,
            Callback::Drain(f) => fns.drain = f,
            Callback::Pong(f) => fns.pong = f,
            Callback::Http(f) => fns.http = f,
        }
        fns
    }
}

/// Index of each callback among a connection's args (same order as `Callback`).
pub mod slot {
    pub const READ: usize = 0;
    pub const BUILD: usize = 1;
    pub const CLOSE: usize = 2;
    pub const MESSAGE: usize = 3;
    pub const FRAGMENT: usize = 4;
    pub const CLOSE_EX: usize = 5;
    pub const DRAIN: usize = 6;
    pub const PONG: usize = 7;
    pub const HTTP: usize = 8;
}
