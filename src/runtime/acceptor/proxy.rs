//! PROXY protocol on an acceptor: each accepted socket is watched until its
//! header has come (peeked, then exactly its bytes read, so what follows is
//! left for TLS or the session), within the handshake timeout and
//! `MAX_HEADER_LEN`; then it goes on to the limits and the program with the
//! client's address. A socket without a valid header in time is closed.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::rc::Rc;

use mio::{Interest, Token};

use super::accepted::{Accepted, AcceptedParts};
use super::limits::Ticket;
use super::Core;
use crate::proto::proxy_header::{self, ProxyHeader, MAX_HEADER_LEN};
use crate::runtime::reactor::{Reactor, Source};
use crate::runtime::refusal::Refusal;
use crate::runtime::timers::TimerLinks;
use crate::runtime::transport::{Socket, Transport};

/// A socket waiting for its PROXY header (owned by the reactor).
pub(super) struct ProxyWait {
    reactor: Cell<*const Reactor>,
    core: Rc<Core>,
    fd: Cell<RawFd>,
    token: Cell<Option<Token>>,
    timer: TimerLinks,
    ticket: RefCell<Option<Ticket>>,
}

impl ProxyWait {
    /// Watches `fd` for its header.
    pub(super) fn start(reactor: &Reactor, core: Rc<Core>, fd: RawFd, ticket: Option<Ticket>) {
        let wait = NonNull::from(Box::leak(Box::new(ProxyWait {
            reactor: Cell::new(reactor),
            core,
            fd: Cell::new(fd),
            token: Cell::new(None),
            timer: TimerLinks::default(),
            ticket: RefCell::new(ticket),
        })));
        // SAFETY: just leaked; owned by the reactor from now on (buried when done).
        let this = unsafe { wait.as_ref() };
        let token = reactor.add(wait as NonNull<dyn Source>);
        this.token.set(Some(token));
        let registered = reactor
            .registry()
            .register(&mut mio::unix::SourceFd(&fd), token, Interest::READABLE);
        if registered.is_err() {
            return this.fail(Refusal::ProxyHeader, "the socket could not be watched");
        }
        let timeout = reactor.config().timeouts.handshake_ms() as u64;
        reactor.arm_timer(token, reactor.now_ms() + timeout);
        // The header may be there already.
        this.read();
    }

    fn reactor(&self) -> Option<&Reactor> {
        // SAFETY: the reactor outlives what is registered on it, and detaches
        // it (closing the socket) when it goes first.
        unsafe { self.reactor.get().as_ref() }
    }

    fn read(&self) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let socket = Socket(self.fd.get());
        let peeked = match socket.peek(&mut buf) {
            Ok(0) => return self.fail(Refusal::ProxyHeader, "the socket ended before its PROXY header"),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return self.read(),
            Err(_) => return self.fail(Refusal::ProxyHeader, "reading the PROXY header failed"),
        };
        match proxy_header::parse(&buf[..peeked]) {
            ProxyHeader::Incomplete => {}
            ProxyHeader::Invalid => self.fail(Refusal::ProxyHeader, "not a valid PROXY header"),
            ProxyHeader::Complete { len, source } => {
                // The header's bytes only: what follows belongs to TLS or HTTP.
                if !matches!(socket.read(&mut buf[..len]), Ok(n) if n == len) {
                    return self.fail(Refusal::ProxyHeader, "reading the PROXY header failed");
                }
                let Some(reactor) = self.reactor() else { return };
                let fd = self.end();
                let mut ticket = self.ticket.take();
                let peer = source.map(|a| std::net::SocketAddr::new(a.ip().to_canonical(), a.port()));
                let client = peer.or_else(|| Socket(fd).peer_addr());
                if let (Some(ticket), Some(client)) = (ticket.as_mut(), client) {
                    if !ticket.attach(client.ip()) {
                        Socket(fd).close();
                        return reactor.note_refusal(
                            Refusal::Limits,
                            None,
                            || Some(client),
                            || format!("over the acceptor's limits from {}", client.ip()),
                        );
                    }
                }
                let parts = AcceptedParts {
                    tls: None,
                    peer,
                    ticket,
                };
                self.core.hand_over(reactor, Accepted::new(fd, parts));
            }
        }
    }

    /// Stops watching; returns the socket (now the caller's).
    fn end(&self) -> RawFd {
        let fd = self.fd.replace(-1);
        if let (Some(reactor), Some(token)) = (self.reactor(), self.token.take()) {
            reactor.disarm_timer(token);
            if fd >= 0 {
                let _ = reactor.registry().deregister(&mut mio::unix::SourceFd(&fd));
            }
            reactor.remove(token);
            // SAFETY: leaked in `start`, deregistered just now; freed once the
            // dispatch running this is over.
            unsafe { reactor.bury(NonNull::from(self as &dyn Source)) };
        }
        fd
    }

    /// Closes the socket, refused for `reason` (the address logged is the
    /// socket's: the balancer's).
    fn fail(&self, reason: Refusal, detail: &str) {
        let fd = self.end();
        let peer = (fd >= 0).then(|| Socket(fd).peer_addr()).flatten();
        if fd >= 0 {
            Socket(fd).close();
        }
        self.ticket.take();
        if let Some(reactor) = self.reactor() {
            reactor.note_refusal(reason, None, || peer, || format!("PROXY protocol: {detail}"));
        }
    }
}

impl Source for ProxyWait {
    fn on_event(&self, _readable: bool, _writable: bool, _peer_closed: bool) {
        if self.fd.get() >= 0 {
            self.read();
        }
    }

    fn on_timer(&self) {
        if self.fd.get() >= 0 {
            self.fail(Refusal::Timeout, "no PROXY header within the handshake timeout");
        }
    }

    fn timer_links(&self) -> Option<&TimerLinks> {
        Some(&self.timer)
    }

    fn detach(&self) -> bool {
        let fd = self.fd.replace(-1);
        if fd >= 0 {
            Socket(fd).close();
        }
        self.token.set(None);
        self.reactor.set(std::ptr::null());
        true
    }
}
