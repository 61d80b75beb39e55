//! Counts heap allocations per echoed message in the steady state.
//!
//! A counting global allocator wraps the system one. Each scenario echoes
//! messages through wsconn (a masked client frame in, the echo out, the output
//! consumed), first for a warm-up, then counts the allocations (alloc, zeroed
//! alloc, realloc) over the measured messages. The goal is 0 per message.
//!
//! Scenarios, for 16 B, 1 KiB, 64 KiB and 1 MiB, text and binary:
//!   session          wsconn::Session (Rust), one frame per feed, echo with
//!                    send_message (the message as delivered)
//!   session_batch16  the same, 16 frames per feed (pipelined client)
//!   session_split2   the same, each frame cut in two feeds (a partial read)
//!   c_session        the C sans-IO API (what c-examples/epoll_echo uses):
//!                    wsconn_session_feed, on_message -> wsconn_session_send,
//!                    wsconn_session_output / consume
//!   c_reactor        the C reactor API (what c-examples/echo_server uses) over a
//!                    loopback TCP connection: acceptor, wsconn_t with a message
//!                    callback that echoes with wsconn_send_text / _binary
//!
//! Every echo is checked byte for byte. Prints one line per case and a summary;
//! exits 1 if any case allocated in the steady state (2 on a broken echo).
//!
//! Usage: alloc_count [--quick]
//! With ALLOC_COUNT_TRACE=1 in the environment, the first allocation of each
//! measured part prints its backtrace on stderr.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsconn::{Config, Event, Session};
use wsconn_bench::payload;
use wsconn_testkit::{frame, upgrade_request, FIN, OP_BINARY, OP_TEXT};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
/// With ALLOC_COUNT_TRACE set: print where the first allocation of each
/// measured part comes from (armed by `measure`).
static TRACE_ARMED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

fn note_alloc(size: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    ALLOC_BYTES.fetch_add(size as u64, Relaxed);
    if TRACE_ARMED.load(Relaxed) && !IN_TRACE.with(Cell::get) {
        IN_TRACE.with(|t| t.set(true));
        TRACE_ARMED.store(false, Relaxed);
        eprintln!(
            "alloc_count: first allocation in the steady state ({size} bytes) from:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        IN_TRACE.with(|t| t.set(false));
    }
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// The C API, declared from include/wsconn.h (the symbols come from the wsconn rlib).
#[repr(C)]
struct SessionCallbacks {
    on_open: Option<extern "C" fn(*mut c_void, *mut c_void, *const c_char, *const c_char)>,
    on_message: Option<extern "C" fn(*mut c_void, *mut c_void, c_int, *const u8, usize)>,
    on_ping: Option<extern "C" fn(*mut c_void, *mut c_void, *const u8, usize)>,
    on_pong: Option<extern "C" fn(*mut c_void, *mut c_void, *const u8, usize)>,
    on_close: Option<extern "C" fn(*mut c_void, *mut c_void, c_int, *const c_char, usize)>,
    on_error: Option<extern "C" fn(*mut c_void, *mut c_void, c_int)>,
}

type MessageFn = extern "C" fn(*mut c_void, *mut c_void, c_int, *const u8, usize);
type AcceptFn = extern "C" fn(c_int, *mut c_void) -> c_int;

extern "C" {
    fn wsconn_session_server_new(
        config: *const c_void,
        callbacks: *const SessionCallbacks,
        arg: *mut c_void,
    ) -> *mut c_void;
    fn wsconn_session_free(session: *mut c_void);
    fn wsconn_session_feed(session: *mut c_void, data: *mut u8, len: usize) -> i32;
    fn wsconn_session_output(session: *const c_void, data: *mut *const u8) -> usize;
    fn wsconn_session_consume(session: *mut c_void, n: usize) -> i32;
    fn wsconn_session_send(session: *mut c_void, r#type: c_int, data: *const u8, len: usize) -> i32;

    fn wsconn_reactor_create() -> *mut c_void;
    fn wsconn_reactor_dispatch(reactor: *mut c_void, timeout_ms: i32) -> i32;
    fn wsconn_reactor_release(reactor: *mut c_void) -> i32;
    fn wsconn_acceptor_create(reactor: *mut c_void) -> *mut c_void;
    fn wsconn_acceptor_set_accept_func(acceptor: *mut c_void, func: Option<AcceptFn>, arg: *mut c_void);
    fn wsconn_acceptor_start(acceptor: *mut c_void, ip: *const c_char, port: i32) -> i32;
    fn wsconn_acceptor_port(acceptor: *const c_void) -> i32;
    fn wsconn_acceptor_release(acceptor: *mut c_void) -> i32;
    fn wsconn_create(reactor: *mut c_void) -> *mut c_void;
    fn wsconn_release(con: *mut c_void) -> i32;
    fn wsconn_set_message_func(con: *mut c_void, func: Option<MessageFn>, arg: *mut c_void);
    fn wsconn_set_fd(con: *mut c_void, fd: c_int);
    fn wsconn_start(con: *mut c_void) -> i32;
    fn wsconn_send_text(con: *mut c_void, data: *const c_char, len: usize) -> i32;
    fn wsconn_send_binary(con: *mut c_void, data: *const c_void, len: usize) -> i32;
}

const WSCONN_MSG_BINARY: c_int = 2;

/// Runs one case; returns (allocations, bytes allocated) in the measured part.
type Scenario<'a> = dyn Fn() -> (u64, u64) + 'a;
const VARIANTS: usize = 4;

/// The frames one case sends and the echoes it expects, per variant.
struct Traffic {
    binary: bool,
    size: usize,
    /// Masked client frames.
    wire: Vec<Vec<u8>>,
    /// The server's unmasked echo frames.
    echo: Vec<Vec<u8>>,
}

impl Traffic {
    fn new(binary: bool, size: usize) -> Self {
        let op = if binary { OP_BINARY } else { OP_TEXT };
        let payloads: Vec<Vec<u8>> = (0..VARIANTS).map(|v| payload(binary, size, v)).collect();
        Traffic {
            binary,
            size,
            wire: payloads
                .iter()
                .enumerate()
                .map(|(v, p)| frame(FIN | op, p, Some([v as u8 + 1, 0x5a, 0xc3, 0x3c])))
                .collect(),
            echo: payloads.iter().map(|p| frame(FIN | op, p, None)).collect(),
        }
    }
}

fn config() -> Arc<Config> {
    let mut config = Config::default();
    config.set_max_frame_size(64 << 20).unwrap();
    config.set_max_message_size(64 << 20).unwrap();
    config.set_max_output(64 << 20).unwrap();
    Arc::new(config)
}

/// Runs `step` `warm` times, then `n` times counting allocations.
fn measure(warm: usize, n: usize, mut step: impl FnMut(usize)) -> (u64, u64) {
    for i in 0..warm {
        step(i);
    }
    let (a0, b0) = (ALLOCS.load(Relaxed), ALLOC_BYTES.load(Relaxed));
    TRACE_ARMED.store(std::env::var_os("ALLOC_COUNT_TRACE").is_some(), Relaxed);
    for i in warm..warm + n {
        step(i);
    }
    TRACE_ARMED.store(false, Relaxed);
    (ALLOCS.load(Relaxed) - a0, ALLOC_BYTES.load(Relaxed) - b0)
}

fn broken(what: &str) -> ! {
    eprintln!("alloc_count: {what}");
    std::process::exit(2);
}

fn open_session() -> Session {
    let s = Session::server(config());
    let mut req = upgrade_request("127.0.0.1", "/");
    let mut opened = false;
    s.feed(&mut req, &mut |_: &Session, ev: Event<'_>| {
        opened |= matches!(ev, Event::Open { .. })
    })
    .unwrap_or_else(|e| broken(&format!("handshake: {e}")));
    if !opened {
        broken("the server session did not open");
    }
    s.consume(s.buffered()).unwrap();
    s
}

/// wsconn::Session: `frames` frames per feed, each frame cut into `pieces` feeds.
fn rust_session(t: &Traffic, frames: usize, pieces: usize, warm: usize, n: usize) -> (u64, u64) {
    let s = open_session();
    // One buffer per variant window: `frames` consecutive frames.
    let windows: Vec<Vec<u8>> = (0..VARIANTS)
        .map(|v| (0..frames).flat_map(|k| t.wire[(v + k) % VARIANTS].clone()).collect())
        .collect();
    let expect: Vec<Vec<u8>> = (0..VARIANTS)
        .map(|v| (0..frames).flat_map(|k| t.echo[(v + k) % VARIANTS].clone()).collect())
        .collect();
    let mut buf = vec![0u8; windows.iter().map(Vec::len).max().unwrap()];
    let mut failed = None;
    let r = measure(warm, n, |i| {
        let v = i % VARIANTS;
        let len = windows[v].len();
        buf[..len].copy_from_slice(&windows[v]);
        let cut = len / pieces;
        let mut start = 0;
        for p in 0..pieces {
            let end = if p + 1 == pieces { len } else { start + cut };
            let res = s.feed(&mut buf[start..end], &mut |s: &Session, ev: Event<'_>| {
                if let Event::Message(message) = ev {
                    if let Err(e) = s.send_message(message) {
                        failed = Some(format!("send: {e}"));
                    }
                }
            });
            match res {
                Ok(used) if used == end - start => {}
                Ok(used) => broken(&format!("feed used {used} of {} bytes", end - start)),
                Err(e) => broken(&format!("feed: {e}")),
            }
            start = end;
        }
        let out = {
            let pending = s.pending();
            if *pending != expect[v][..] {
                broken(&format!(
                    "session echo differs ({} bytes, expected {})",
                    pending.len(),
                    expect[v].len()
                ));
            }
            pending.len()
        };
        s.consume(out).unwrap();
    });
    if let Some(f) = failed {
        broken(&f);
    }
    r
}

extern "C" fn c_on_message(session: *mut c_void, _arg: *mut c_void, ty: c_int, data: *const u8, len: usize) {
    // SAFETY: the session calls back with its own live pointer and a valid message.
    let rc = unsafe { wsconn_session_send(session, ty, data, len) };
    if rc != 0 {
        broken(&format!("wsconn_session_send returned {rc}"));
    }
}

/// The C sans-IO session API, one frame per feed.
fn c_session(t: &Traffic, warm: usize, n: usize) -> (u64, u64) {
    let callbacks = SessionCallbacks {
        on_open: None,
        on_message: Some(c_on_message),
        on_ping: None,
        on_pong: None,
        on_close: None,
        on_error: None,
    };
    // SAFETY: valid callbacks struct; NULL config means defaults.
    let s = unsafe { wsconn_session_server_new(std::ptr::null(), &callbacks, std::ptr::null_mut()) };
    if s.is_null() {
        broken("wsconn_session_server_new returned NULL");
    }
    let drain = |expect: Option<&[u8]>| {
        let mut out: *const u8 = std::ptr::null();
        // SAFETY: live session; `out` receives a pointer valid until consume.
        let len = unsafe { wsconn_session_output(s, &mut out) };
        if let Some(expect) = expect {
            // SAFETY: the library gave `len` readable bytes at `out`.
            let got = unsafe { std::slice::from_raw_parts(out, len) };
            if got != expect {
                broken(&format!(
                    "C session echo differs ({len} bytes, expected {})",
                    expect.len()
                ));
            }
        }
        // SAFETY: live session, n = the output length.
        unsafe { wsconn_session_consume(s, len) };
    };
    let mut req = upgrade_request("127.0.0.1", "/");
    // SAFETY: live session, writable buffer.
    if unsafe { wsconn_session_feed(s, req.as_mut_ptr(), req.len()) } != 0 {
        broken("C session handshake failed");
    }
    drain(None);
    let mut buf = vec![0u8; t.wire.iter().map(Vec::len).max().unwrap()];
    let r = measure(warm, n, |i| {
        let v = i % VARIANTS;
        let len = t.wire[v].len();
        buf[..len].copy_from_slice(&t.wire[v]);
        // SAFETY: live session, writable buffer of `len` bytes.
        let rc = unsafe { wsconn_session_feed(s, buf.as_mut_ptr(), len) };
        if rc != 0 {
            broken(&format!("wsconn_session_feed returned {rc}"));
        }
        drain(Some(&t.echo[v]));
    });
    // SAFETY: live session, not used after.
    unsafe { wsconn_session_free(s) };
    r
}

struct ReactorState {
    reactor: *mut c_void,
    con: *mut c_void,
}

extern "C" fn r_on_message(con: *mut c_void, _arg: *mut c_void, ty: c_int, data: *const u8, len: usize) {
    // SAFETY: live connection and message from the callback.
    let rc = unsafe {
        if ty == WSCONN_MSG_BINARY {
            wsconn_send_binary(con, data.cast(), len)
        } else {
            wsconn_send_text(con, data.cast(), len)
        }
    };
    if rc != 0 {
        broken(&format!("wsconn_send returned {rc}"));
    }
}

extern "C" fn r_on_accept(fd: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the ReactorState given to the acceptor, alive during dispatch.
    let state = unsafe { &mut *(arg as *mut ReactorState) };
    // SAFETY: live reactor; the new connection takes the fd.
    unsafe {
        let con = wsconn_create(state.reactor);
        if con.is_null() {
            return -1;
        }
        wsconn_set_message_func(con, Some(r_on_message), std::ptr::null_mut());
        wsconn_set_fd(con, fd);
        if wsconn_start(con) != 0 {
            wsconn_release(con);
            return 0;
        }
        state.con = con;
    }
    0
}

/// The C reactor API over loopback TCP: the client writes a frame, the reactor
/// is dispatched until the whole echo came back.
fn c_reactor(t: &Traffic, warm: usize, n: usize) -> (u64, u64) {
    // SAFETY: plain constructor.
    let reactor = unsafe { wsconn_reactor_create() };
    if reactor.is_null() {
        broken("wsconn_reactor_create returned NULL");
    }
    let mut state = Box::new(ReactorState {
        reactor,
        con: std::ptr::null_mut(),
    });
    // SAFETY: live reactor; `state` outlives the acceptor.
    let acceptor = unsafe {
        let a = wsconn_acceptor_create(reactor);
        wsconn_acceptor_set_accept_func(a, Some(r_on_accept), &mut *state as *mut ReactorState as *mut c_void);
        if wsconn_acceptor_start(a, c"127.0.0.1".as_ptr(), 0) != 0 {
            broken("wsconn_acceptor_start failed");
        }
        a
    };
    // SAFETY: live acceptor.
    let port = unsafe { wsconn_acceptor_port(acceptor) };
    let mut client =
        TcpStream::connect(("127.0.0.1", port as u16)).unwrap_or_else(|e| broken(&format!("connect: {e}")));
    client.set_nonblocking(true).unwrap();
    client.set_nodelay(true).unwrap();
    let dispatch = || {
        // SAFETY: live reactor, called from its thread.
        unsafe { wsconn_reactor_dispatch(reactor, 0) };
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    // Opening handshake.
    let req = upgrade_request("127.0.0.1", "/");
    let mut written = 0;
    let mut resp = Vec::new();
    let mut chunk = [0u8; 4096];
    while !resp.windows(4).any(|w| w == b"\r\n\r\n") {
        if Instant::now() > deadline {
            broken("reactor handshake timed out");
        }
        if written < req.len() {
            match client.write(&req[written..]) {
                Ok(k) => written += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => broken(&format!("write: {e}")),
            }
        }
        dispatch();
        match client.read(&mut chunk) {
            Ok(0) => broken("server closed during the handshake"),
            Ok(k) => resp.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => broken(&format!("read: {e}")),
        }
    }
    if !resp.starts_with(b"HTTP/1.1 101") {
        broken("reactor handshake refused");
    }
    let mut rbuf = vec![0u8; 256 << 10];
    let r = measure(warm, n, |i| {
        let v = i % VARIANTS;
        let (wire, echo) = (&t.wire[v], &t.echo[v]);
        let (mut sent, mut got) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while got < echo.len() {
            if Instant::now() > deadline {
                broken(&format!("reactor echo timed out ({got} of {} bytes)", echo.len()));
            }
            if sent < wire.len() {
                match client.write(&wire[sent..]) {
                    Ok(k) => sent += k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => broken(&format!("write: {e}")),
                }
            }
            dispatch();
            loop {
                match client.read(&mut rbuf[..(echo.len() - got).min(256 << 10)]) {
                    Ok(0) => broken("server closed the connection"),
                    Ok(k) => {
                        if rbuf[..k] != echo[got..got + k] {
                            broken("reactor echo differs");
                        }
                        got += k;
                        if got == echo.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => broken(&format!("read: {e}")),
                }
            }
        }
    });
    drop(client);
    // SAFETY: live objects, released once, connection first.
    unsafe {
        if !state.con.is_null() {
            wsconn_release(state.con);
        }
        wsconn_acceptor_release(acceptor);
        wsconn_reactor_release(reactor);
    }
    r
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = [16usize, 1 << 10, 64 << 10, 1 << 20];
    println!(
        "{:<16} {:>7} {:>7} {:>8} {:>9} {:>10} {:>12}",
        "scenario", "kind", "size", "warm-up", "messages", "allocs", "allocs/msg"
    );
    let mut bad = Vec::new();
    let mut cases = 0;
    for binary in [false, true] {
        for size in sizes {
            let t = Traffic::new(binary, size);
            let (warm, n) = match (size, quick) {
                (s, false) if s <= 1024 => (1000, 10_000),
                (s, true) if s <= 1024 => (200, 1000),
                (s, _) if s <= 64 << 10 => (100, 500),
                _ => (10, 40),
            };
            let runs: [(&str, &Scenario); 5] = [
                ("session", &|| rust_session(&t, 1, 1, warm, n)),
                ("session_batch16", &|| {
                    rust_session(&t, 16, 1, warm / 16 + 4, n / 16 + 4)
                }),
                ("session_split2", &|| rust_session(&t, 1, 2, warm, n)),
                ("c_session", &|| c_session(&t, warm, n)),
                ("c_reactor", &|| c_reactor(&t, warm, n)),
            ];
            for (name, run) in runs {
                let messages = if name == "session_batch16" {
                    (n / 16 + 4) * 16
                } else {
                    n
                };
                let warm_msgs = if name == "session_batch16" {
                    (warm / 16 + 4) * 16
                } else {
                    warm
                };
                let (allocs, bytes) = run();
                cases += 1;
                let kind = if t.binary { "binary" } else { "text" };
                println!(
                    "{name:<16} {kind:>7} {:>7} {warm_msgs:>8} {messages:>9} {allocs:>10} {:>12.3}",
                    t.size,
                    allocs as f64 / messages as f64
                );
                if allocs > 0 {
                    bad.push(format!(
                        "{name} {kind} {} B: {allocs} allocations ({bytes} bytes)",
                        t.size
                    ));
                }
            }
        }
    }
    if bad.is_empty() {
        println!("alloc_count: 0 allocations per message in all {cases} cases");
    } else {
        println!(
            "alloc_count: {} of {cases} cases allocate in the steady state:",
            bad.len()
        );
        for b in &bad {
            println!("  {b}");
        }
        std::process::exit(1);
    }
}
