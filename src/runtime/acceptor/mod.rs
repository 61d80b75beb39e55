//! A listening socket on a reactor that hands each accepted socket to the
//! program, through one pipeline: accept → limits (total, per address) →
//! PROXY header (when expected) → the program's accept callback, where a
//! connection started on the socket gets the acceptor's TLS, the client's
//! address and its place in the limits (`accepted`).

pub mod accepted;
mod handed_over;
pub mod limits;
mod proxy;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{IntoRawFd, RawFd};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Token};

use accepted::{Accepted, AcceptedParts, Outcome};
use limits::Limits;

use crate::runtime::error::{Error, Result};
use crate::runtime::log::LogEvent;
use crate::runtime::reactor::{Reactor, Source};
use crate::runtime::refusal::Refusal;
use crate::runtime::stats::Bump;
use crate::runtime::tls::ServerTls;
use crate::runtime::transport::Socket;

/// Called with the reactor and each accepted socket (non-blocking,
/// TCP_NODELAY). Returns true when the program keeps the socket; false has it
/// closed, unless a connection took it meanwhile (`Connection::set_fd` on it,
/// or `accepted::take`): from then on the connection owns it, whatever is
/// returned.
pub type AcceptFn = Box<dyn FnMut(&Reactor, RawFd) -> bool>;

/// What the acceptor shares with the sockets still waiting for their PROXY
/// header (which may outlive it).
pub(crate) struct Core {
    /// Taken out while it runs (it may replace itself).
    on_accept: Cell<Option<AcceptFn>>,
    released: Cell<bool>,
    /// Served to each connection accepted from now on (swapped by a reload).
    tls: RefCell<Option<ServerTls>>,
    /// TLS handshakes refused by the connections it accepted.
    tls_refused: Arc<AtomicU64>,
    limits: RefCell<Option<Arc<Limits>>>,
    proxy_protocol: Cell<bool>,
}

impl Core {
    /// Runs the program's accept callback on a socket past the limits and the
    /// PROXY header. Whatever the callback leaves unclaimed is the program's
    /// bare fd (kept) or closed (refused).
    fn hand_over(&self, reactor: &Reactor, accepted: Accepted) {
        let (fd, mut parts) = accepted.into_parts();
        parts.tls = self.tls.borrow().clone();
        let accepted = Accepted::new(fd, parts);
        let Some(mut on_accept) = self.on_accept.take().filter(|_| !self.released.get()) else {
            return drop(accepted);
        };
        let (keep, outcome) = accepted::while_accepting(accepted, |fd| on_accept(reactor, fd));
        // Unless it set another one meanwhile.
        let replaced = self.on_accept.take();
        self.on_accept.set(replaced.or(Some(on_accept)));
        if let Outcome::Unclaimed(accepted) = outcome {
            if keep {
                // The program keeps the bare socket: it owns it now.
                let _ = accepted.into_parts();
            }
        }
    }
}

pub struct Acceptor {
    reactor: Cell<*const Reactor>,
    token: Cell<Option<Token>>,
    listener: RefCell<Option<TcpListener>>,
    reuse_port: Cell<bool>,
    core: Rc<Core>,
}

impl Acceptor {
    /// An acceptor on `reactor` (which must outlive it), owned by the program:
    /// free it with [`Acceptor::release`].
    pub fn create(reactor: &Reactor) -> NonNull<Acceptor> {
        NonNull::from(Box::leak(Box::new(Acceptor {
            reactor: Cell::new(reactor),
            token: Cell::new(None),
            listener: RefCell::new(None),
            reuse_port: Cell::new(false),
            core: Rc::new(Core {
                on_accept: Cell::new(None),
                released: Cell::new(false),
                tls: RefCell::new(None),
                tls_refused: Arc::default(),
                limits: RefCell::new(None),
                proxy_protocol: Cell::new(false),
            }),
        })))
    }

    fn listening(&self) -> Result<()> {
        if self.listener.borrow().is_some() {
            return Err(Error::State);
        }
        Ok(())
    }

    /// SO_REUSEPORT: several acceptors (one per reactor and thread) listen on the
    /// same port and the kernel spreads the connections among them.
    pub fn set_reuse_port(&self, on: bool) -> Result<()> {
        self.listening()?;
        self.reuse_port.set(on);
        Ok(())
    }

    /// Limits the connections it feeds at once: in all, and per client
    /// address (IPv6 by /64); 0 is no limit. Over either, a socket is closed
    /// at accept (with the PROXY protocol, once its header told the address),
    /// before TLS or any read, and noted as [`Refusal::Limits`]. A place is
    /// held by a connection started on the socket (or the socket taken with
    /// `accepted::take`) until it ends. Only before `start`.
    pub fn set_limits(&self, max_total: u32, max_per_address: u32) -> Result<()> {
        self.listening()?;
        *self.core.limits.borrow_mut() =
            (max_total > 0 || max_per_address > 0).then(|| Limits::new(max_total, max_per_address));
        Ok(())
    }

    /// Connections counted by the limits now: in all, and from `ip`'s address
    /// (or block). `None` without limits.
    pub fn limit_counts(&self, ip: Option<IpAddr>) -> Option<(u32, u32)> {
        self.core.limits.borrow().as_ref().map(|l| l.count(ip))
    }

    /// Expects a PROXY protocol header (v1 or v2) first on every socket: its
    /// client address is the connection's peer for the limits and
    /// `Connection::peer_addr`; a socket without a valid one within the
    /// handshake timeout is closed. Only for sockets from a trusted balancer
    /// (anyone can write a header). Only before `start`.
    pub fn set_proxy_protocol(&self, on: bool) -> Result<()> {
        self.listening()?;
        self.core.proxy_protocol.set(on);
        Ok(())
    }

    /// Serves TLS (`Some`) or plain (`None`) to the connections accepted from
    /// now on; those already running keep what they started with. Called again
    /// with a new certificate, this is the reload: build the `ServerTls` first,
    /// so that a bad file leaves the one in place untouched.
    pub fn set_tls(&self, tls: Option<ServerTls>) {
        *self.core.tls.borrow_mut() = tls.map(|t| t.counting_refusals_in(&self.core.tls_refused));
    }

    /// TLS handshakes that the connections it accepted refused (a plain HTTP
    /// request or garbage on the TLS port, no protocol or cipher in common, a
    /// bad record), whatever certificate was served then.
    pub fn tls_refused(&self) -> u64 {
        self.core.tls_refused.load(Ordering::Relaxed)
    }

    /// Whether accepted connections are served TLS.
    pub fn serves_tls(&self) -> bool {
        self.core.tls.borrow().is_some()
    }

    /// The TLS served now (to derive another from, e.g. with one more name).
    pub fn tls(&self) -> Option<ServerTls> {
        self.core.tls.borrow().clone()
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
        // SAFETY: the reactor is pinned (it never moves), outlives the objects
        // made on it (documented), and detaches them (setting this pointer to
        // NULL) when it is released first.
        unsafe { self.reactor.get().as_ref() }
    }

    /// Sets what is done with each accepted socket (without it, they are closed).
    pub fn set_on_accept(&self, on_accept: Option<AcceptFn>) {
        self.core.on_accept.set(on_accept);
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

    /// The reactor, if the acceptor may start listening (not yet listening,
    /// the reactor there and not draining).
    fn ready_to_start(&self) -> Result<&Reactor> {
        let reactor = self.reactor().ok_or(Error::State)?;
        self.listening()?;
        if reactor.is_draining() {
            return Err(Error::State);
        }
        Ok(reactor)
    }

    /// Accepts from `listener` on the reactor; gives it back if it cannot.
    fn listen_on(&self, reactor: &Reactor, mut listener: TcpListener) -> std::result::Result<(), (TcpListener, Error)> {
        // Accepted sockets inherit TCP_NODELAY from the listening one on
        // Linux: one call here instead of one per connection.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if socket2::SockRef::from(&listener).set_nodelay(true).is_err() {
            return Err((listener, Error::Io("setting TCP_NODELAY")));
        }
        let token = reactor.add(NonNull::from(self as &dyn Source));
        if let Some(ring) = reactor.ring() {
            // A multishot accept on the ring (see `runtime::uring`).
            use std::os::fd::AsRawFd;
            ring.listen(token.0 as u32, listener.as_raw_fd());
        } else if reactor
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
            if self.core.released.get() {
                return;
            }
            let accepted = match self.listener.borrow().as_ref() {
                Some(listener) => listener.accept(),
                None => return,
            };
            let Some(reactor) = self.reactor() else { return };
            match accepted {
                Ok((stream, addr)) => {
                    // Non-blocking and close-on-exec from accept4; TCP_NODELAY
                    // from the listening socket where it is inherited.
                    #[cfg(not(any(target_os = "linux", target_os = "android")))]
                    let _ = stream.set_nodelay(true);
                    let fd = stream.into_raw_fd();
                    self.admit(reactor, fd, Some(addr));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                // Anything else (EMFILE…): try again on the next connection
                // attempt rather than spin.
                Err(e) => {
                    reactor.counters().accept_failures.add(1);
                    reactor.log(LogEvent::AcceptFailed, None, || None, || format!("accept failed: {e}"));
                    return;
                }
            }
        }
    }

    /// The pipeline's first steps: the limits (by the socket's address, or
    /// in all only until a PROXY header tells the client's), then the header.
    /// `addr`: the peer's, when the accept told it.
    fn admit(&self, reactor: &Reactor, fd: RawFd, addr: Option<SocketAddr>) {
        let proxied = self.core.proxy_protocol.get();
        let limits = self.core.limits.borrow().clone();
        // The ring's accept does not tell the address: asked only if needed.
        let peer = || {
            addr.or_else(|| Socket(fd).peer_addr())
                .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
        };
        let ticket = match limits {
            Some(limits) => match limits.admit((!proxied).then(peer).flatten().map(|a| a.ip())) {
                Some(ticket) => Some(ticket),
                None => {
                    let peer = peer();
                    Socket(fd).close();
                    let from = peer.map_or_else(|| "an unknown address".to_owned(), |p| p.ip().to_string());
                    return reactor.note_refusal(
                        Refusal::Limits,
                        None,
                        || peer,
                        || format!("over the acceptor's limits (in all, or from {from})"),
                    );
                }
            },
            None => None,
        };
        if proxied {
            return proxy::ProxyWait::start(reactor, Rc::clone(&self.core), fd, ticket);
        }
        let parts = AcceptedParts {
            tls: None,
            peer: None,
            ticket,
        };
        self.core.hand_over(reactor, Accepted::new(fd, parts));
    }

    /// Stops listening (the port is closed).
    pub fn stop(&self) -> Result<()> {
        let listener = self.listener.borrow_mut().take();
        let Some(mut listener) = listener else {
            return Err(Error::State);
        };
        if let (Some(reactor), Some(token)) = (self.reactor(), self.token.take()) {
            match reactor.ring() {
                // The accept is cancelled at once: the port closes with the listener.
                Some(ring) => drop(ring.close(token.0 as u32, true)),
                None => drop(reactor.registry().deregister(&mut listener)),
            }
            reactor.remove(token);
        }
        Ok(())
    }

    /// Frees the acceptor now, or when the running dispatch ends if called from a
    /// callback. Sockets still waiting for their PROXY header are closed when
    /// it comes.
    ///
    /// # Safety
    /// `this` came from [`Acceptor::create`] and is not used by the caller afterwards.
    pub unsafe fn release(this: *mut Acceptor) {
        // SAFETY: live per the caller.
        let acceptor = unsafe { &*this };
        acceptor.core.released.set(true);
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

    /// A socket the ring accepted (non-blocking, close-on-exec).
    fn on_ring(&self, event: crate::runtime::uring::RingEvent<'_>) {
        let crate::runtime::uring::RingEvent::Accepted(fd) = event else {
            return;
        };
        match self.reactor() {
            Some(reactor) if fd >= 0 && !self.core.released.get() => {
                // TCP_NODELAY inherited from the listening socket (`listen_on`).
                self.admit(reactor, fd, None);
            }
            _ if fd >= 0 => Socket(fd).close(),
            Some(reactor) => {
                // Accepting goes on (the ring arms it again), as on epoll.
                let e = std::io::Error::from_raw_os_error(-fd);
                reactor.counters().accept_failures.add(1);
                reactor.log(LogEvent::AcceptFailed, None, || None, || format!("accept failed: {e}"));
            }
            None => {}
        }
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
