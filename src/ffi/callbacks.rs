//! The C callbacks of reactor connections: their typedefs, the table of them a
//! connection points to, and `CCallbacks`, the runtime handler that calls them
//! (with gbase's read-callback semantics).
//!
//! Connections set up alike share one interned table, so a connection carries
//! one pointer and one `arg`, not nine pairs; when its callbacks' args differ,
//! or it keeps a read tail or a subprotocol, the `arg` points to a `CExtra`
//! instead (the table says which).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::{Mutex, OnceLock};

use crate::ffi::kind_code;
use crate::ffi::request::{lending_request, upgrade_decision};
use crate::proto::close_code::CloseCode;
use crate::proto::event::{Message, MessageKind};
use crate::proto::handshake::request::UpgradeRequest;
use crate::runtime::connection::Connection;
use crate::runtime::handler::{ConnHandler, Ending, UpgradeDecision};

/// gbase's read callback: a complete message (`buffer` is not NUL-terminated,
/// read-only). Returns the bytes consumed: bytes left unconsumed are delivered
/// again in front of the next message, as gbase's buffer did, up to the max
/// message size (`wsconn_config_set_max_message_size`): when what was left
/// and the next message would pass it, the connection is closed with 1009
/// instead; a negative value closes the connection (close code 1011).
pub type wsconn_read_func =
    Option<extern "C" fn(fd: c_int, arg: *mut c_void, buffer: *const c_char, buflen: c_int) -> c_int>;
/// gbase's build callback: the opening handshake completed.
pub type wsconn_build_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void)>;
/// gbase's close callback: the connection closed; called once, with the socket
/// still open (it is closed when the callback returns). The connection may be
/// released inside.
pub type wsconn_close_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void)>;
/// A complete message with its type (`WSCONN_MSG_TEXT`: valid UTF-8, or
/// `WSCONN_MSG_BINARY`). `data` points into the library's own buffers: it is
/// read-only, valid during the call. When set, it is called instead of the
/// read callback.
pub type wsconn_message_func = Option<
    extern "C" fn(con: *mut Connection<CCallbacks>, arg: *mut c_void, r#type: c_int, data: *const u8, len: usize),
>;
/// Streaming receive: each piece of a message as it arrives, `fin` nonzero on the
/// last. When set, no message is reassembled and neither the message nor the
/// read callback is called.
pub type wsconn_fragment_func = Option<
    extern "C" fn(
        con: *mut Connection<CCallbacks>,
        arg: *mut c_void,
        r#type: c_int,
        data: *const u8,
        len: usize,
        fin: c_int,
    ),
>;
/// The connection closed. `code`: the peer's close code (1005 if its close frame
/// had none); or the one sent to it when it broke the protocol (1002, 1007,
/// 1009…); 1000 after a plain HTTP exchange; 1006 when TCP dropped, an I/O error
/// or a timeout ended it without a closing handshake (`wsconn_close_error`
/// tells which). `reason` is NUL-terminated. Called before the close callback,
/// with the socket still open. The connection may be released inside: the
/// close callback still follows, with the socket (open until it returns).
pub type wsconn_close_ex_func = Option<
    extern "C" fn(
        con: *mut Connection<CCallbacks>,
        arg: *mut c_void,
        code: c_int,
        reason: *const c_char,
        reason_len: usize,
    ),
>;
/// Output fell to a quarter of the max output after a send failed with
/// `WSCONN_ERR_FULL` or left output at half of it or more: sending may resume.
pub type wsconn_drain_func = Option<extern "C" fn(con: *mut Connection<CCallbacks>, arg: *mut c_void)>;
/// A pong arrived.
pub type wsconn_pong_func =
    Option<extern "C" fn(con: *mut Connection<CCallbacks>, arg: *mut c_void, data: *const u8, len: usize)>;
/// A plain HTTP request (no WebSocket upgrade). Answer it with
/// `wsconn_http_respond` inside the callback, or the library answers 404. The
/// connection closes after the response. The return value is ignored.
pub type wsconn_http_func = Option<
    extern "C" fn(
        con: *mut Connection<CCallbacks>,
        arg: *mut c_void,
        method: *const c_char,
        path: *const c_char,
    ) -> c_int,
>;

/// The upgrade callback (server role): a valid WebSocket upgrade request
/// was parsed (its `Origin` allowed by the config) and no byte of the
/// response is written yet. Read the request with `wsconn_request_method`,
/// `wsconn_request_target`, `wsconn_request_header`, `wsconn_peer_address`,
/// `wsconn_tls_server_name`, …; decide inside with `wsconn_upgrade_accept` or
/// `wsconn_upgrade_reject` (the return value is then ignored), or return a
/// `wsconn_upgrade`: `WSCONN_UPGRADE_ACCEPT` (accept with the defaults),
/// `WSCONN_UPGRADE_PENDING` (decide later, on the reactor's thread, before
/// the handshake timeout), `WSCONN_UPGRADE_REJECT` (or any other value:
/// refuse with 403 Forbidden).
pub type wsconn_upgrade_func = Option<extern "C" fn(con: *mut Connection<CCallbacks>, arg: *mut c_void) -> c_int>;

/// Defines the callback table from the one list of a connection's callbacks:
/// its fields, the empty table, and a slot per callback for its `arg`.
macro_rules! callback_table {
    ($($slot:ident: $field:ident: $type:ty,)*) => {
        /// The functions of a connection's callbacks.
        // Compared only to share tables: one function seen at two addresses
        // makes two tables, two functions merged by the linker share one (they
        // do the same); both are harmless.
        #[allow(unpredictable_function_pointer_comparisons)]
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct CallbackTable {
            $(pub $field: $type,)*
            /// The connection's `arg` points to its `CExtra`.
            uses_extra: bool,
        }

        /// Which callback (also the index of its arg in `CExtra`).
        #[derive(Clone, Copy)]
        pub enum Slot {
            $($slot,)*
        }

        impl CallbackTable {
            const EMPTY: CallbackTable = CallbackTable {
                $($field: None,)*
                uses_extra: false,
            };

            /// Whether no callback is set.
            fn is_empty(&self) -> bool {
                true $(&& self.$field.is_none())*
            }
        }

        /// Number of callbacks.
        const SLOTS: usize = [$(Slot::$slot),*].len();
    };
}

callback_table! {
    Read: read: wsconn_read_func,
    Build: build: wsconn_build_func,
    Close: close: wsconn_close_func,
    Message: message: wsconn_message_func,
    Fragment: fragment: wsconn_fragment_func,
    CloseEx: close_ex: wsconn_close_ex_func,
    Drain: drain: wsconn_drain_func,
    Pong: pong: wsconn_pong_func,
    Http: http: wsconn_http_func,
    Upgrade: upgrade: wsconn_upgrade_func,
}

/// The one copy of each table in use (tables are few: one per combination of
/// callback functions a program sets, so they are kept for good).
fn intern(table: CallbackTable) -> &'static CallbackTable {
    if table == CallbackTable::EMPTY {
        return &CallbackTable::EMPTY;
    }
    static TABLES: OnceLock<Mutex<HashSet<&'static CallbackTable>>> = OnceLock::new();
    let mut tables = TABLES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match tables.get(&table) {
        Some(interned) => interned,
        None => {
            let interned: &'static CallbackTable = Box::leak(Box::new(table));
            tables.insert(interned);
            interned
        }
    }
}

/// What few connections need: per-callback args, gbase's read tail, the
/// subprotocol as a C string.
struct CExtra {
    args: [Cell<*mut c_void>; SLOTS],
    /// Bytes the gbase read callback did not consume.
    read_tail: RefCell<Vec<u8>>,
    subprotocol: RefCell<Option<CString>>,
    /// The TLS server name (SNI) as a C string, made on first ask.
    server_name: RefCell<Option<CString>>,
}

/// The runtime handler of a C connection: calls its C callbacks.
pub struct CCallbacks {
    table: Cell<&'static CallbackTable>,
    /// The arg of every callback; or, when the table `uses_extra`, a `CExtra`
    /// from `Box::into_raw`.
    arg: Cell<*mut c_void>,
}

impl Default for CCallbacks {
    fn default() -> Self {
        CCallbacks {
            table: Cell::new(&CallbackTable::EMPTY),
            arg: Cell::new(std::ptr::null_mut()),
        }
    }
}

impl Drop for CCallbacks {
    fn drop(&mut self) {
        if self.table.get().uses_extra {
            // SAFETY: with `uses_extra`, `arg` came from Box::into_raw (see `extra`).
            drop(unsafe { Box::from_raw(self.arg.get().cast::<CExtra>()) });
        }
    }
}

thread_local! {
    /// The text message this thread lends to a message callback right now
    /// (address, length): library memory, validated, read-only for the program.
    /// Sending exactly it back (an echo) needs no second check.
    static LENT_TEXT: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Runs `call` while `text` is lent to the program.
fn lending<R>(text: &str, call: impl FnOnce() -> R) -> R {
    /// Restores the previous loan even if `call` unwinds.
    struct Restore((usize, usize));
    impl Drop for Restore {
        fn drop(&mut self) {
            LENT_TEXT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LENT_TEXT.with(|l| l.replace((text.as_ptr() as usize, text.len()))));
    call()
}

thread_local! {
    /// The request path of the connection whose build callback runs.
    static OPEN_PATH: RefCell<Option<(usize, CString)>> = const { RefCell::new(None) };
}

/// Runs `f` on the request path of `conn` if its build callback is running.
pub(crate) fn with_open_path<R>(conn: *const Connection<CCallbacks>, f: impl FnOnce(Option<&CString>) -> R) -> R {
    OPEN_PATH.with(|p| {
        let path = p.borrow();
        f(path.as_ref().filter(|(c, _)| *c == conn as usize).map(|(_, path)| path))
    })
}

/// The message a send function was given: the text lent to the running
/// message callback is known valid; other text is checked.
pub(crate) fn message_arg(kind: MessageKind, data: &[u8]) -> Result<Message<'_>, crate::proto::error::Error> {
    let lent = LENT_TEXT.with(Cell::get);
    if kind == MessageKind::Text && !data.is_empty() && lent == (data.as_ptr() as usize, data.len()) {
        // SAFETY: these are the bytes of the text message lent to the running
        // callback: validated by the session, in the library's read or
        // reassembly buffer, and read-only for the program (documented).
        return Ok(Message::Text(unsafe { std::str::from_utf8_unchecked(data) }));
    }
    Message::new(kind, data)
}

impl CCallbacks {
    fn extra(&self) -> Option<&CExtra> {
        let table = self.table.get();
        // SAFETY: with `uses_extra`, `arg` is a live CExtra owned by self (freed
        // in Drop only); it is only ever used through shared references.
        table.uses_extra.then(|| unsafe { &*self.arg.get().cast::<CExtra>() })
    }

    /// The extra part, made on first need.
    fn ensure_extra(&self) -> &CExtra {
        if !self.table.get().uses_extra {
            let common = self.arg.get();
            let extra = Box::new(CExtra {
                args: std::array::from_fn(|_| Cell::new(common)),
                read_tail: RefCell::new(Vec::new()),
                subprotocol: RefCell::new(None),
                server_name: RefCell::new(None),
            });
            self.arg.set(Box::into_raw(extra).cast());
            let table = CallbackTable {
                uses_extra: true,
                ..*self.table.get()
            };
            self.table.set(intern(table));
        }
        self.extra().expect("made above")
    }

    fn arg_of(&self, slot: Slot) -> *mut c_void {
        match self.extra() {
            Some(extra) => extra.args[slot as usize].get(),
            None => self.arg.get(),
        }
    }

    /// Sets one callback (`change` writes its function into the table) and its arg.
    pub(crate) fn set(&self, slot: Slot, change: impl FnOnce(&mut CallbackTable), arg: *mut c_void) {
        let old = *self.table.get();
        if !old.uses_extra && (old.is_empty() || arg == self.arg.get()) {
            self.arg.set(arg);
        } else {
            self.ensure_extra().args[slot as usize].set(arg);
        }
        let mut table = *self.table.get();
        change(&mut table);
        self.table.set(intern(table));
    }

    pub(crate) fn table(&self) -> &CallbackTable {
        self.table.get()
    }

    /// The subprotocol selected in the handshake, as a C string (or NULL).
    pub(crate) fn subprotocol(&self) -> *const c_char {
        self.extra()
            .and_then(|e| e.subprotocol.borrow().as_ref().map(|p| p.as_ptr()))
            .unwrap_or(std::ptr::null())
    }

    /// The TLS server name (SNI), kept as a C string for the connection's life.
    pub(crate) fn server_name(&self, name: &str) -> *const c_char {
        let extra = self.ensure_extra();
        let mut kept = extra.server_name.borrow_mut();
        if kept.as_ref().map(|k| k.as_bytes()) != Some(name.as_bytes()) {
            *kept = CString::new(name).ok();
        }
        kept.as_ref().map_or(std::ptr::null(), |k| k.as_ptr())
    }

    /// gbase's read callback: bytes it leaves unconsumed come back in front of
    /// the next message, up to the max message size (they are held for the
    /// program, outside any buffer the budget sees: this is their bound).
    fn deliver_gbase(&self, conn: &Connection<CCallbacks>, f: ReadFn, message: Message<'_>) {
        let data = message.as_bytes();
        let mut tail = self.extra().map(|e| e.read_tail.take()).unwrap_or_default();
        if !tail.is_empty() && tail.len() + data.len() > conn.config().protocol.max_message_size() {
            let _ = conn.close(
                CloseCode::MESSAGE_TOO_BIG.0,
                "too much left unconsumed by the read callback",
            );
            return;
        }
        let bytes: &[u8] = if tail.is_empty() {
            data
        } else {
            tail.extend_from_slice(data);
            &tail
        };
        let Ok(len) = c_int::try_from(bytes.len()) else {
            let _ = conn.close(CloseCode::MESSAGE_TOO_BIG.0, "message too big for the read callback");
            return;
        };
        let arg = self.arg_of(Slot::Read);
        let call = || f(conn.fd(), arg, bytes.as_ptr().cast(), len);
        let consumed = match message {
            Message::Text(text) if tail.is_empty() => lending(text, call),
            _ => call(),
        };
        if consumed < 0 {
            let _ = conn.close(CloseCode::INTERNAL_ERROR.0, "");
            return;
        }
        let consumed = (consumed as usize).min(bytes.len());
        if consumed < bytes.len() {
            *self.ensure_extra().read_tail.borrow_mut() = bytes[consumed..].to_vec();
        }
    }
}

type ReadFn = extern "C" fn(c_int, *mut c_void, *const c_char, c_int) -> c_int;

/// The connection as C sees it.
fn con_ptr(conn: &Connection<CCallbacks>) -> *mut Connection<CCallbacks> {
    conn as *const Connection<CCallbacks> as *mut Connection<CCallbacks>
}

impl ConnHandler for CCallbacks {
    fn decides_upgrades(&self) -> bool {
        self.table.get().upgrade.is_some()
    }

    fn on_upgrade(&self, conn: &Connection<CCallbacks>, request: &UpgradeRequest) -> UpgradeDecision {
        let Some(f) = self.table.get().upgrade else {
            return UpgradeDecision::Accept;
        };
        let answer = lending_request(con_ptr(conn) as usize, request, || {
            f(con_ptr(conn), self.arg_of(Slot::Upgrade))
        });
        upgrade_decision(answer)
    }

    fn on_open(&self, conn: &Connection<CCallbacks>, path: &str, subprotocol: Option<&str>) {
        if let Some(name) = subprotocol.and_then(|p| CString::new(p).ok()) {
            *self.ensure_extra().subprotocol.borrow_mut() = Some(name);
        }
        if let Some(f) = self.table.get().build {
            // The path is lent for the callback only: kept, it would cost every
            // connection memory.
            let lent = CString::new(path).ok().map(|p| (con_ptr(conn) as usize, p));
            let previous = OPEN_PATH.with(|p| p.replace(lent));
            f(conn.fd(), self.arg_of(Slot::Build));
            OPEN_PATH.with(|p| p.replace(previous));
        }
    }

    fn on_message(&self, conn: &Connection<CCallbacks>, message: Message<'_>) {
        let table = self.table.get();
        if let Some(f) = table.message {
            let data = message.as_bytes();
            let arg = self.arg_of(Slot::Message);
            let call = || f(con_ptr(conn), arg, kind_code(message.kind()), data.as_ptr(), data.len());
            match message {
                Message::Text(text) => lending(text, call),
                Message::Binary(_) => call(),
            }
        } else if let Some(f) = table.read {
            self.deliver_gbase(conn, f, message);
        }
    }

    fn on_fragment(&self, conn: &Connection<CCallbacks>, kind: MessageKind, data: &[u8], fin: bool) {
        if let Some(f) = self.table.get().fragment {
            let arg = self.arg_of(Slot::Fragment);
            f(
                con_ptr(conn),
                arg,
                kind_code(kind),
                data.as_ptr(),
                data.len(),
                fin as c_int,
            );
        }
    }

    fn on_pong(&self, conn: &Connection<CCallbacks>, data: &[u8]) {
        if let Some(f) = self.table.get().pong {
            f(con_ptr(conn), self.arg_of(Slot::Pong), data.as_ptr(), data.len());
        }
    }

    fn on_http(&self, conn: &Connection<CCallbacks>, method: &str, path: &str) {
        if let Some(f) = self.table.get().http {
            let method = CString::new(method).unwrap_or_default();
            let path = CString::new(path).unwrap_or_default();
            f(con_ptr(conn), self.arg_of(Slot::Http), method.as_ptr(), path.as_ptr());
        }
    }

    fn on_drain(&self, conn: &Connection<CCallbacks>) {
        if let Some(f) = self.table.get().drain {
            f(con_ptr(conn), self.arg_of(Slot::Drain));
        }
    }

    fn on_close(&self, conn: &Connection<CCallbacks>, ending: &Ending<'_>) {
        let table = *self.table.get();
        if let Some(f) = table.close_ex {
            let reason = CString::new(ending.reason).unwrap_or_default();
            let len = reason.as_bytes().len();
            f(
                con_ptr(conn),
                self.arg_of(Slot::CloseEx),
                ending.code as c_int,
                reason.as_ptr(),
                len,
            );
        }
        if let Some(f) = table.close {
            f(conn.fd(), self.arg_of(Slot::Close));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::config::Config;
    use crate::runtime::acceptor::Acceptor;
    use crate::runtime::config::ConnConfig;
    use crate::runtime::reactor::Reactor;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use wsconn_testkit::{WsClient, OP_CLOSE};

    /// Consumes nothing, and notes the most it was handed at once.
    extern "C" fn consume_nothing(_fd: c_int, arg: *mut c_void, _buffer: *const c_char, len: c_int) -> c_int {
        // SAFETY: `arg` is the test's `Cell`, alive while its reactor runs.
        let most = unsafe { &*arg.cast::<Cell<c_int>>() };
        most.set(most.get().max(len));
        0
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn what_the_read_callback_leaves_unconsumed_is_bounded_by_the_max_message_size() {
        const MAX: usize = 4096;
        let reactor = Reactor::new().unwrap();
        let mut protocol = Config::default();
        protocol.set_max_message_size(MAX).unwrap();
        reactor.set_config(Arc::new(ConnConfig {
            protocol: Arc::new(protocol),
            ..ConnConfig::default()
        }));
        let most: &'static Cell<c_int> = Box::leak(Box::new(Cell::new(0)));
        let acceptor = Acceptor::create(&reactor);
        // SAFETY: just created; released at the end.
        let a = unsafe { acceptor.as_ref() };
        a.set_on_accept(Some(Box::new(move |reactor, fd| {
            let callbacks = CCallbacks::default();
            let arg = (most as *const Cell<c_int>).cast_mut().cast();
            callbacks.set(Slot::Read, |t| t.read = Some(consume_nothing), arg);
            Connection::serve(reactor, fd, callbacks).is_ok()
        })));
        a.start("127.0.0.1", 0).unwrap();
        let port = a.port().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = WsClient::open(port, "/");
            let deadline = Instant::now() + Duration::from_secs(10);
            for _ in 0..20 {
                if s.send_text(&"x".repeat(1000)).is_err() {
                    break;
                }
            }
            loop {
                match s.read_frame(deadline) {
                    Ok(f) if f.opcode == OP_CLOSE => return Some(u16::from_be_bytes([f.payload[0], f.payload[1]])),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !client.is_finished() {
            assert!(Instant::now() < deadline, "the client did not finish");
            reactor.dispatch(10).unwrap();
        }
        assert_eq!(client.join().unwrap(), Some(1009));
        assert!(most.get() as usize <= MAX, "{} bytes handed at once", most.get());
        // SAFETY: from `create`, not used afterwards.
        unsafe { Acceptor::release(acceptor.as_ptr()) };
    }
}
