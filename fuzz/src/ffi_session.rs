//! The C API's sans-IO session (`wsconn_session_*`, the `unsafe` code in
//! `src/ffi/`) driven from Rust like a C program would: callbacks that echo,
//! output drained in pieces, optionally the session freed from inside a callback.
//! Its events and output must match a Rust [`wsconn::Session`] fed the same bytes.
//!
//! Input: one byte of options, then a session input as for `session_server`
//! (see [`crate::session::Params::parse`]). Options: bit 0 client role (a valid
//! 101 is put before the stream); bit 1 free the session from inside the callback
//! of event number `1 + (options >> 2) & 7`; bit 5 drain half the output after each
//! feed (else output is drained at the end only, so that backpressure matches the
//! reference, which never drains).
//!
//! Also checked: `wsconn_session_state` inside every callback, feeding from a
//! callback refused with `WSCONN_ERR_REENTRANT`, an echo of changed (invalid)
//! text refused with `WSCONN_ERR_INVALID_ARGUMENT`, zero limits refused by the
//! config setters without changing the value set before; and
//! `wsconn_session_trim_compression` after every other feed, changing no event.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;

use wsconn::ffi::*;
use wsconn::{Config, Error, Event, MessageKind, Role, Session};

use crate::session::{Ev, Params, CLIENT_PATH};
use crate::{chunk_ranges, Reader};

/// What the callbacks see, reached through `arg`.
struct Recorder {
    events: Vec<Ev>,
    free_at: Option<usize>,
    freed: bool,
    echo_fragments: bool,
    /// The error of an `on_error` callback during the current call.
    call_error: Option<c_int>,
}

/// # Safety
/// `arg` is the `Recorder` given at creation, not otherwise borrowed.
unsafe fn recorder<'a>(arg: *mut c_void) -> &'a mut Recorder {
    // SAFETY: per the caller.
    unsafe { &mut *arg.cast::<Recorder>() }
}

/// The C code of a result.
fn rc(result: wsconn_result) -> c_int {
    result as c_int
}

/// `wsconn_session_state` is `expected` inside a callback of `s` (which must
/// not come after the session was freed).
fn check_state(s: *mut wsconn_session_t, rec: &Recorder, expected: wsconn_state, at: &str) {
    assert!(!rec.freed, "{at} after the session was freed");
    // SAFETY: `s` is live during its callbacks (a free from a callback is deferred).
    let state = unsafe { wsconn_session_state(s) };
    assert_eq!(state, expected as c_int, "wsconn_session_state in {at}");
}

/// Records `ev`, and frees the session if this is the event to free it at.
fn record(s: *mut wsconn_session_t, rec: &mut Recorder, ev: Ev) {
    assert!(!rec.freed, "a callback after the session was freed: {ev:?}");
    rec.events.push(ev);
    if rec.free_at == Some(rec.events.len()) {
        rec.freed = true;
        // SAFETY: `s` is live; the library defers the free to the end of the feed.
        unsafe { wsconn_session_free(s) };
    }
}

fn text(p: *const c_char) -> Option<String> {
    // SAFETY: the library passes NUL-terminated strings or NULL.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().expect("UTF-8").to_owned())
}

fn bytes<'a>(data: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    assert!(!data.is_null());
    // SAFETY: the library passes `len` readable bytes valid for the callback.
    unsafe { std::slice::from_raw_parts(data, len) }
}

extern "C" fn on_open(s: *mut wsconn_session_t, arg: *mut c_void, path: *const c_char, protocol: *const c_char) {
    // SAFETY: `arg` is our recorder.
    let rec = unsafe { recorder(arg) };
    let path = text(path).expect("a path");
    check_state(s, rec, wsconn_state::WSCONN_STATE_OPEN, "on_open");
    record(s, rec, Ev::Open(path, text(protocol)));
}

extern "C" fn on_message(s: *mut wsconn_session_t, arg: *mut c_void, kind: c_int, data: *const u8, len: usize) {
    // SAFETY: `arg` is our recorder.
    let rec = unsafe { recorder(arg) };
    let data = bytes(data, len).to_vec();
    let kind_enum = match kind {
        1 => MessageKind::Text,
        2 => MessageKind::Binary,
        _ => panic!("on_message with type {kind}"),
    };
    // Echo first (the Rust reference does too), unless the session is freed.
    if !rec.freed {
        check_state(s, rec, wsconn_state::WSCONN_STATE_OPEN, "on_message");
        // SAFETY: `s` is live during its callback; `data` is ours.
        unsafe {
            if kind_enum == MessageKind::Text {
                // The delivered text changed (here: a copy made invalid) is
                // checked again when sent, and refused without queuing anything.
                let mut changed = data.clone();
                changed.push(0xFF);
                let before = wsconn_session_buffered_amount(s);
                assert_eq!(
                    wsconn_session_send(s, kind, changed.as_ptr(), changed.len()),
                    rc(wsconn_result::WSCONN_ERR_INVALID_ARGUMENT),
                    "an echo of invalid text"
                );
                assert_eq!(
                    wsconn_session_buffered_amount(s),
                    before,
                    "a refused send queued output"
                );
            }
            if rec.echo_fragments {
                let mid = if kind_enum == MessageKind::Text {
                    let t = std::str::from_utf8(&data).expect("text is UTF-8");
                    (0..=data.len() / 2).rev().find(|&i| t.is_char_boundary(i)).unwrap_or(0)
                } else {
                    data.len() / 2
                };
                if wsconn_session_send_fragment(s, kind, data.as_ptr(), mid, 0) == 0 {
                    wsconn_session_send_fragment(s, kind, data[mid..].as_ptr(), data.len() - mid, 1);
                }
            } else {
                wsconn_session_send(s, kind, data.as_ptr(), data.len());
            }
            // Not allowed from a callback: must fail cleanly.
            let mut byte = 0u8;
            assert_eq!(
                wsconn_session_feed(s, &mut byte, 1),
                rc(wsconn_result::WSCONN_ERR_REENTRANT)
            );
            assert_eq!(wsconn_session_feed_eof(s), rc(wsconn_result::WSCONN_ERR_REENTRANT));
        }
    }
    record(s, rec, Ev::Message(kind_enum, data));
}

extern "C" fn on_ping(s: *mut wsconn_session_t, arg: *mut c_void, data: *const u8, len: usize) {
    // SAFETY: `arg` is our recorder.
    let rec = unsafe { recorder(arg) };
    check_state(s, rec, wsconn_state::WSCONN_STATE_OPEN, "on_ping");
    record(s, rec, Ev::Ping(bytes(data, len).to_vec()));
}

extern "C" fn on_pong(s: *mut wsconn_session_t, arg: *mut c_void, data: *const u8, len: usize) {
    // SAFETY: `arg` is our recorder.
    let rec = unsafe { recorder(arg) };
    check_state(s, rec, wsconn_state::WSCONN_STATE_OPEN, "on_pong");
    record(s, rec, Ev::Pong(bytes(data, len).to_vec()));
}

extern "C" fn on_close(s: *mut wsconn_session_t, arg: *mut c_void, code: c_int, reason: *const c_char, len: usize) {
    // SAFETY: `arg` is our recorder.
    let rec = unsafe { recorder(arg) };
    let reason_bytes = bytes(reason.cast(), len + 1);
    assert_eq!(reason_bytes[len], 0, "close reason not NUL-terminated");
    let reason = std::str::from_utf8(&reason_bytes[..len])
        .expect("UTF-8 reason")
        .to_owned();
    // Server: closed; client: awaiting the server's EOF, also CLOSED in C.
    check_state(s, rec, wsconn_state::WSCONN_STATE_CLOSED, "on_close");
    record(s, rec, Ev::Close(code as u16, reason));
}

extern "C" fn on_error(s: *mut wsconn_session_t, arg: *mut c_void, error: c_int) {
    // SAFETY: `arg` is our recorder.
    let rec = unsafe { recorder(arg) };
    rec.call_error = Some(error);
    use wsconn_result::*;
    let ev = match wsconn_result::from_code(error) {
        Some(WSCONN_ERR_HANDSHAKE | WSCONN_ERR_HANDSHAKE_TOO_LARGE) => Ev::HandshakeError,
        Some(WSCONN_ERR_PROTOCOL) => Ev::Error(Error::Protocol("")),
        Some(WSCONN_ERR_INVALID_UTF8) => Ev::Error(Error::InvalidUtf8),
        Some(WSCONN_ERR_MESSAGE_TOO_BIG) => Ev::Error(Error::MessageTooBig),
        Some(WSCONN_ERR_EOF) => Ev::Error(Error::Eof),
        e => panic!("on_error with {error} ({e:?})"),
    };
    check_state(s, rec, wsconn_state::WSCONN_STATE_CLOSED, "on_error");
    record(s, rec, ev);
}

const CALLBACKS: wsconn_session_callbacks_t = wsconn_session_callbacks_t {
    on_open: Some(on_open),
    on_message: Some(on_message),
    on_ping: Some(on_ping),
    on_pong: Some(on_pong),
    on_close: Some(on_close),
    on_error: Some(on_error),
};

/// Protocol error messages are not visible through the C API: compare kinds.
fn erase_messages(events: &[Ev]) -> Vec<Ev> {
    events
        .iter()
        .map(|e| match e {
            Ev::Error(Error::Protocol(_)) => Ev::Error(Error::Protocol("")),
            e => e.clone(),
        })
        .collect()
}

/// A C config with `p`'s limits and subprotocols. Every limit is set, then 0 is
/// tried and must be refused: the session must still behave as with the value
/// (the comparison with the Rust reference, made with `p.config`, checks it).
fn c_config(p: &Params) -> *mut wsconn_config_t {
    let config = wsconn_config_new();
    assert!(!config.is_null());
    type Setter = unsafe extern "C" fn(*mut wsconn_config_t, usize) -> i32;
    let set = |setter: Setter, value: usize| {
        // SAFETY: `config` is live.
        let (set, zero) = unsafe { (setter(config, value), setter(config, 0)) };
        assert_eq!(set, 0, "limit {value} refused");
        assert_eq!(
            zero,
            rc(wsconn_result::WSCONN_ERR_INVALID_ARGUMENT),
            "a zero limit accepted"
        );
    };
    set(wsconn_config_set_max_frame_size, p.config.max_frame_size());
    set(wsconn_config_set_max_message_size, p.config.max_message_size());
    set(wsconn_config_set_max_output, p.config.max_output());
    set(wsconn_config_set_max_handshake_size, p.config.max_handshake_size());
    // SAFETY: `config` is live.
    unsafe {
        for name in p.config.subprotocols() {
            let c = CString::new(name.as_str()).expect("no NUL");
            assert_eq!(wsconn_config_add_subprotocol(config, c.as_ptr()), 0);
        }
    }
    config
}

/// Drains the session's output into `out`: all of it, or half when `half`.
///
/// # Safety
/// `s` is a live session.
unsafe fn drain(s: *mut wsconn_session_t, out: &mut Vec<u8>, half: bool) {
    let mut data: *const u8 = ptr::null();
    // SAFETY: `s` is live per the caller; `data` is writable.
    let len = unsafe { wsconn_session_output(s, &mut data) };
    // SAFETY: the library's count never exceeds its buffered amount.
    assert_eq!(len, unsafe { wsconn_session_buffered_amount(s) });
    let n = if half { len / 2 } else { len };
    out.extend_from_slice(bytes(data, n));
    // SAFETY: `s` is live.
    assert_eq!(unsafe { wsconn_session_consume(s, n) }, 0);
}

pub fn check(data: &[u8]) {
    run(data);
}

/// Runs and checks the input; returns the C API's events and whether the session
/// was freed from a callback.
pub fn run(data: &[u8]) -> (Vec<Ev>, bool) {
    let mut r = Reader::new(data);
    let options = r.byte();
    let role = if options & 1 != 0 { Role::Client } else { Role::Server };
    let p = Params::parse(role, r.rest());
    let config = c_config(&p);
    let mut rec = Box::new(Recorder {
        events: Vec::new(),
        free_at: (options & 2 != 0).then_some(((options >> 2) & 7) as usize + 1),
        freed: false,
        echo_fragments: p.echo_fragments,
        call_error: None,
    });
    let arg: *mut c_void = ptr::addr_of_mut!(*rec).cast();
    let drain_each = options & 0x20 != 0;
    let mut output = Vec::new();
    let mut stream = Vec::new();
    // SAFETY: every pointer passed is live; the session is not used once freed.
    unsafe {
        let s = match role {
            Role::Server => wsconn_session_server_new(config, &CALLBACKS, arg),
            Role::Client => {
                let host = CString::new("localhost").expect("no NUL");
                let path = CString::new(CLIENT_PATH).expect("no NUL");
                let s = wsconn_session_client_new(config, host.as_ptr(), path.as_ptr(), &CALLBACKS, arg);
                assert!(!s.is_null());
                let mut request = Vec::new();
                drain(s, &mut request, false);
                let text = String::from_utf8(request).expect("ASCII request");
                let key = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                    .expect("a key");
                if !p.raw_response {
                    stream.extend_from_slice(&crate::response_101(key));
                }
                s
            }
        };
        assert!(!s.is_null());
        // The session copied the config: freeing it now changes nothing.
        wsconn_config_free(config);
        stream.extend_from_slice(&p.stream);
        let mut live = true;
        for (i, range) in chunk_ranges(stream.len(), &p.lengths).into_iter().enumerate() {
            let mut chunk = stream[range].to_vec();
            let rc = wsconn_session_feed(s, chunk.as_mut_ptr(), chunk.len());
            let rec = &mut *arg.cast::<Recorder>();
            if rec.freed {
                live = false;
                assert_eq!(rc, 0, "feed that freed the session");
                break;
            }
            assert_eq!(rc, rec.call_error.take().unwrap_or(0), "feed's result and on_error");
            // Trimming the compression streams between feeds changes no event.
            if i % 2 == 1 {
                assert_eq!(wsconn_session_trim_compression(s), 0, "trim between feeds");
            }
            if drain_each {
                drain(s, &mut output, true);
            }
        }
        if live {
            let rc = wsconn_session_feed_eof(s);
            let rec = &mut *arg.cast::<Recorder>();
            if rec.freed {
                assert_eq!(rc, 0);
            } else {
                assert_eq!(rc, rec.call_error.take().unwrap_or(0), "feed_eof's result and on_error");
                assert_eq!(wsconn_session_state(s), 3, "state after feed_eof");
                assert_eq!(wsconn_session_want_read(s), 0);
                drain(s, &mut output, false);
                assert_eq!(wsconn_session_want_write(s), 0);
                wsconn_session_free(s);
            }
        }
    }

    // The same stream in a Rust session: the same events, and (server) the same bytes.
    let reference = reference(&p, p.config.clone(), &stream);
    let got = erase_messages(&rec.events);
    let mut want = erase_messages(&reference.0);
    if rec.freed {
        want.truncate(got.len());
    }
    if got == [Ev::Error(Error::Eof)] && want == [Ev::HandshakeError] {
        // A refusal deferred by a cut head (see `session::check`).
        return (rec.events, rec.freed);
    }
    assert_eq!(got, want, "C API events differ from a Rust Session's");
    // Output matches where backpressure cannot differ (drained at the end, or no
    // limit in reach) and the stream was not refused (see `session::check`).
    let same_backpressure = !drain_each || p.config.max_output() >= 1 << 20;
    let refused = got.contains(&Ev::HandshakeError);
    if role == Role::Server && !rec.freed && same_backpressure && !refused {
        assert_eq!(output, reference.1, "C API output differs from a Rust Session's");
    }
    (rec.events, rec.freed)
}

/// A Rust session (server: with the stream as is; client: with its own key's 101).
fn reference(p: &Params, config: Config, stream: &[u8]) -> (Vec<Ev>, Vec<u8>) {
    let config = std::sync::Arc::new(config);
    let mut events = Vec::new();
    let s = match p.role {
        Role::Server => Session::server(config),
        Role::Client => Session::client(config, "localhost", CLIENT_PATH).expect("client"),
    };
    let mut data = stream.to_vec();
    if p.role == Role::Client {
        let request = s.pending().to_vec();
        s.consume(request.len()).expect("consume");
        if !p.raw_response {
            let text = String::from_utf8(request).expect("ASCII");
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .expect("a key");
            let head_end = stream.windows(4).position(|w| w == b"\r\n\r\n").expect("our 101") + 4;
            let mut own = crate::response_101(key);
            own.extend_from_slice(&stream[head_end..]);
            data = own;
        }
    }
    let echo_fragments = p.echo_fragments;
    let mut on_event = |s: &Session, ev: Event<'_>| {
        let ev = match ev {
            Event::Open { path, subprotocol, .. } => Ev::Open(path.to_owned(), subprotocol.map(str::to_owned)),
            Event::Message(message) => {
                let (kind, data) = (message.kind(), message.as_bytes());
                if echo_fragments {
                    let mid = match message {
                        wsconn::Message::Text(t) => {
                            (0..=data.len() / 2).rev().find(|&i| t.is_char_boundary(i)).unwrap_or(0)
                        }
                        wsconn::Message::Binary(_) => data.len() / 2,
                    };
                    if s.send_fragment(kind, &data[..mid], false).is_ok() {
                        let _ = s.send_fragment(kind, &data[mid..], true);
                    }
                } else {
                    let _ = s.send_message(message);
                }
                Ev::Message(kind, data.to_vec())
            }
            Event::Ping(d) => Ev::Ping(d.to_vec()),
            Event::Pong(d) => Ev::Pong(d.to_vec()),
            Event::Close { code, reason } => Ev::Close(code, reason.to_owned()),
            Event::Error(Error::Handshake(_) | Error::HandshakeTooLarge) => Ev::HandshakeError,
            Event::Error(e) => Ev::Error(e),
            e => panic!("unexpected {e:?}"),
        };
        events.push(ev);
    };
    let _ = s.feed(&mut data, &mut on_event);
    let _ = s.feed_eof(&mut on_event);
    let output = s.pending().to_vec();
    (events, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> Vec<u8> {
        crate::seeds::seeds("ffi_session")
            .into_iter()
            .find(|(n, _)| n == name)
            .expect("seed")
            .1
    }

    #[test]
    fn seeds_reach_the_callbacks() {
        let (events, freed) = run(&seed("seed-server"));
        assert!(!freed);
        assert_eq!(events.len(), 10, "{events:?}");
        assert_eq!(events[1], Ev::Message(MessageKind::Text, b"Hello".to_vec()));
        let (events, freed) = run(&seed("seed-server-free-at-3"));
        assert!(freed);
        assert_eq!(events.len(), 3, "{events:?}");
        let (events, freed) = run(&seed("seed-client-free-at-close"));
        assert!(freed);
        assert_eq!(events.len(), 8, "{events:?}");
        let (events, _) = run(&seed("seed-server-rejected"));
        assert_eq!(events, [Ev::HandshakeError]);
    }
}
