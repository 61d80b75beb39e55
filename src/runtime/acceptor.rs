//! A listening socket on a reactor that hands each accepted socket to the program.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Token};

use crate::runtime::error::{Error, Result};
use crate::runtime::log::LogEvent;
use crate::runtime::reactor::{Reactor, Source};
use crate::runtime::stats::Bump;
use crate::runtime::tls::{self, ServerTls};
use crate::runtime::transport::Socket;

/// Called with the reactor and each accepted socket (non-blocking,
/// TCP_NODELAY). Returns true when the program keeps the socket (typically for
/// a connection to start on, e.g. `Connection::serve`); false has it closed.
pub type AcceptFn = Box<dyn FnMut(&Reactor, RawFd) -> bool>;

pub struct Acceptor {
    reactor: Cell<*const Reactor>,
    token: Cell<Option<Token>>,
    listener: RefCell<Option<TcpListener>>,
    /// Taken out while it runs (it may replace itself).
    on_accept: Cell<Option<AcceptFn>>,
    released: Cell<bool>,
    reuse_port: Cell<bool>,
    /// Served to each connection accepted from now on (swapped by a reload).
    tls: RefCell<Option<ServerTls>>,
    /// TLS handshakes refused by the connections it accepted.
    tls_refused: Arc<AtomicU64>,
}

impl Acceptor {
    /// An acceptor on `reactor` (which must outlive it), owned by the program:
    /// free it with [`Acceptor::release`].
    pub fn create(reactor: &Reactor) -> NonNull<Acceptor> {
        NonNull::from(Box::leak(Box::new(Acceptor {
            reactor: Cell::new(reactor),
            token: Cell::new(None),
            listener: RefCell::new(None),
            on_accept: Cell::new(None),
            released: Cell::new(false),
            reuse_port: Cell::new(false),
            tls: RefCell::new(None),
            tls_refused: Arc::default(),
        })))
    }

    /// SO_REUSEPORT: several acceptors (one per reactor and thread) listen on the
    /// same port and the kernel spreads the connections among them.
    pub fn set_reuse_port(&self, on: bool) -> Result<()> {
        if self.listener.borrow().is_some() {
            return Err(Error::State);
        }
        self.reuse_port.set(on);
        Ok(())
    }

    /// Serves TLS (`Some`) or plain (`None`) to the connections accepted from
    /// now on; those already running keep what they started with. Called again
    /// with a new certificate, this is the reload: build the `ServerTls` first,
    /// so that a bad file leaves the one in place untouched.
    pub fn set_tls(&self, tls: Option<ServerTls>) {
        *self.tls.borrow_mut() = tls.map(|t| t.counting_refusals_in(&self.tls_refused));
    }

    /// TLS handshakes that the connections it accepted refused (a plain HTTP
    /// request or garbage on the TLS port, no protocol or cipher in common, a
    /// bad record), whatever certificate was served then.
    pub fn tls_refused(&self) -> u64 {
        self.tls_refused.load(Ordering::Relaxed)
    }

    /// Whether accepted connections are served TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls.borrow().is_some()
    }

    /// The TLS served now (to derive another from, e.g. with one more name).
    pub fn tls(&self) -> Option<ServerTls> {
        self.tls.borrow().clone()
    }

    fn bind(&self, addr: SocketAddr) -> std::io::Result<TcpListener> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if self.reuse_port.get() {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(TcpListener::from_std(socket.into()))
    }

    fn reactor(&self) -> Option<&Reactor> {
        // SAFETY: the reactor outlives the objects made on it (documented), and
        // detaches them (setting this pointer to NULL) when it is released first.
        unsafe { self.reactor.get().as_ref() }
    }

    /// Sets what is done with each accepted socket (without it, they are closed).
    pub fn set_on_accept(&self, on_accept: Option<AcceptFn>) {
        self.on_accept.set(on_accept);
    }

    /// Listens on `ip:port` (port 0: any free port) and accepts on the reactor.
    pub fn start(&self, ip: &str, port: i32) -> Result<()> {
        let ip: IpAddr = ip.parse().map_err(|_| Error::InvalidArgument("not an IP address"))?;
        let port = u16::try_from(port).map_err(|_| Error::InvalidArgument("not a port"))?;
        let reactor = self.ready_to_start()?;
        let listener = self
            .bind(SocketAddr::new(ip, port))
            .map_err(|_| Error::Io("bind or listen"))?;
        self.listen_on(reactor, listener).map_err(|(_, e)| e)
    }

    /// Accepts on a listening socket handed over by another process (a
    /// service manager's, or the process this one replaces: see
    /// `listen_fds`), instead of binding one. The acceptor owns `fd` from
    /// then on (closed by `stop`); on failure it stays the caller's.
    /// `InvalidArgument` unless `fd` is a listening TCP socket.
    pub fn start_fd(&self, fd: RawFd) -> Result<()> {
        let reactor = self.ready_to_start()?;
        if !is_listening_stream(fd) {
            return Err(Error::InvalidArgument("not a listening TCP socket"));
        }
        // SAFETY: `fd` is an open socket (checked above) that the caller hands
        // over; it is given back below (into_raw_fd) if it cannot be used.
        let std_listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        if std_listener.set_nonblocking(true).is_err() {
            let _ = std_listener.into_raw_fd();
            return Err(Error::Io("making the socket non-blocking"));
        }
        self.listen_on(reactor, TcpListener::from_std(std_listener))
            .map_err(|(listener, e)| {
                // Not ours after all: the caller keeps it open.
                let _ = listener.into_raw_fd();
                e
            })
    }

    /// The reactor, if the acceptor may start listening.
    fn ready_to_start(&self) -> Result<&Reactor> {
        let reactor = self.reactor().ok_or(Error::State)?;
        if self.listener.borrow().is_some() || reactor.is_draining() {
            return Err(Error::State);
        }
        Ok(reactor)
    }

    /// Accepts from `listener` on the reactor; gives it back if it cannot.
    fn listen_on(&self, reactor: &Reactor, mut listener: TcpListener) -> std::result::Result<(), (TcpListener, Error)> {
        let token = reactor.add(NonNull::from(self as &dyn Source));
        if reactor
            .registry()
            .register(&mut listener, token, Interest::READABLE)
            .is_err()
        {
            reactor.remove(token);
            return Err((listener, Error::Io("registering the listener")));
        }
        self.token.set(Some(token));
        *self.listener.borrow_mut() = Some(listener);
        Ok(())
    }

    /// The port listened on.
    pub fn port(&self) -> Result<u16> {
        let listener = self.listener.borrow();
        let listener = listener.as_ref().ok_or(Error::State)?;
        listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|_| Error::Io("getsockname"))
    }

    /// Accepts every pending connection (the poll is edge-triggered).
    fn accept_all(&self) {
        loop {
            if self.released.get() {
                return;
            }
            let accepted = match self.listener.borrow().as_ref() {
                Some(listener) => listener.accept(),
                None => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let fd = stream.into_raw_fd();
                    let keep = match (self.on_accept.take(), self.reactor()) {
                        (Some(mut on_accept), Some(reactor)) => {
                            // A connection started on `fd` in the callback serves TLS.
                            let served = self.tls.borrow().clone();
                            let keep = tls::while_accepting(fd, served.as_ref(), || on_accept(reactor, fd));
                            // Unless it set another one meanwhile.
                            let replaced = self.on_accept.take();
                            self.on_accept.set(replaced.or(Some(on_accept)));
                            keep
                        }
                        (on_accept, _) => {
                            self.on_accept.set(on_accept);
                            false
                        }
                    };
                    if !keep {
                        // The program refused the socket: it is still ours.
                        Socket(fd).close();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                // Anything else (EMFILE…): try again on the next connection
                // attempt rather than spin.
                Err(e) => {
                    if let Some(reactor) = self.reactor() {
                        reactor.counters().accept_failures.add(1);
                        reactor.log(LogEvent::AcceptFailed, None, || None, || format!("accept failed: {e}"));
                    }
                    return;
                }
            }
        }
    }

    /// Stops listening (the port is closed).
    pub fn stop(&self) -> Result<()> {
        let listener = self.listener.borrow_mut().take();
        let Some(mut listener) = listener else {
            return Err(Error::State);
        };
        if let (Some(reactor), Some(token)) = (self.reactor(), self.token.take()) {
            let _ = reactor.registry().deregister(&mut listener);
            reactor.remove(token);
        }
        Ok(())
    }

    /// Frees the acceptor now, or when the running dispatch ends if called from a
    /// callback.
    ///
    /// # Safety
    /// `this` came from [`Acceptor::create`] and is not used by the caller afterwards.
    pub unsafe fn release(this: *mut Acceptor) {
        // SAFETY: live per the caller.
        let acceptor = unsafe { &*this };
        acceptor.released.set(true);
        let _ = acceptor.stop();
        match acceptor.reactor() {
            // SAFETY: from Box::leak in `create`; deregistered by `stop`.
            Some(reactor) if reactor.is_dispatching() => unsafe {
                reactor.bury(NonNull::from(acceptor as &dyn Source))
            },
            // SAFETY: from Box::leak in `create`; no dispatch can be using it.
            _ => drop(unsafe { Box::from_raw(this) }),
        }
    }
}

impl Source for Acceptor {
    fn on_event(&self, _readable: bool, _writable: bool, _peer_closed: bool) {
        self.accept_all();
    }

    /// The reactor drains: no more connections (the listening socket closes;
    /// one shared with another process keeps serving there).
    fn stop_accepting(&self) {
        let _ = self.stop();
    }

    /// The reactor is going away: stop and forget it.
    fn detach(&self) -> bool {
        let _ = self.stop();
        self.reactor.set(std::ptr::null());
        false
    }
}

/// Whether `fd` is a TCP socket (IPv4 or IPv6) in the listening state.
fn is_listening_stream(fd: RawFd) -> bool {
    if fd < 0 {
        return false;
    }
    let option = |name: i32| {
        let mut value: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`; a bad fd
        // is an error, not undefined behaviour.
        let ok = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut value as *mut i32).cast(), &mut len) };
        (ok == 0).then_some(value)
    };
    // SAFETY: an all-zero sockaddr_storage is valid; getsockname writes at
    // most `len` bytes into it.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as above; the pointer and length describe `addr`.
    let named = unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_storage).cast(), &mut len) } == 0;
    let inet = matches!(i32::from(addr.ss_family), libc::AF_INET | libc::AF_INET6);
    named && inet && option(libc::SO_TYPE) == Some(libc::SOCK_STREAM) && option(libc::SO_ACCEPTCONN) == Some(1)
}
