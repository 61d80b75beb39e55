//! An accepted socket with what its acceptor decided for it: the TLS to
//! serve, the client's address from a PROXY header, its place in the limits.
//! While the program's accept callback runs, it waits in a per-thread slot
//! keyed by the fd: a connection given that fd there (`Connection::set_fd`)
//! claims it; or the program takes it ([`take`]) as an object of its own that
//! may travel to another thread and be given to a connection there
//! (`Connection::set_accepted`). That is the one explicit way to start a
//! connection outside the callback with everything the acceptor set up.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use super::limits::Ticket;
use crate::runtime::tls::ServerTls;
use crate::runtime::transport::Socket;

/// What a connection keeps of its acceptor's decisions.
#[derive(Debug, Default)]
pub struct AcceptedParts {
    pub tls: Option<ServerTls>,
    /// The client's address from a PROXY header (else the socket's peer).
    pub peer: Option<SocketAddr>,
    pub ticket: Option<Ticket>,
}

/// An accepted socket and its acceptor's decisions; owns the socket (closed
/// when dropped, unless given to a connection). `Send`: it may be handed to
/// another reactor's thread.
#[derive(Debug)]
pub struct Accepted {
    fd: RawFd,
    parts: AcceptedParts,
}

impl Accepted {
    pub(crate) fn new(fd: RawFd, parts: AcceptedParts) -> Accepted {
        Accepted { fd, parts }
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The client's address: the PROXY header's, or the socket's peer.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.parts.peer.or_else(|| Socket(self.fd).peer_addr())
    }

    /// Gives up the socket and the decisions (to a connection).
    pub(crate) fn into_parts(mut self) -> (RawFd, AcceptedParts) {
        let fd = std::mem::replace(&mut self.fd, -1);
        (fd, std::mem::take(&mut self.parts))
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        if self.fd >= 0 {
            Socket(self.fd).close();
        }
    }
}

thread_local! {
    /// The socket whose accept callback runs on this thread.
    static ACCEPTING: RefCell<Option<Accepted>> = const { RefCell::new(None) };
}

/// What became of a socket after its accept callback.
pub(crate) enum Outcome {
    /// A connection claimed it, or the program took it.
    Claimed,
    /// Still here: the program either keeps the bare fd or refused it.
    Unclaimed(Accepted),
}

/// Runs the accept callback `f` with `accepted` waiting to be claimed.
pub(crate) fn while_accepting<R>(accepted: Accepted, f: impl FnOnce(RawFd) -> R) -> (R, Outcome) {
    let fd = accepted.fd;
    let outer = ACCEPTING.with(|a| a.replace(Some(accepted)));
    let result = f(fd);
    let left = ACCEPTING.with(|a| std::mem::replace(&mut *a.borrow_mut(), outer));
    let outcome = match left {
        Some(accepted) => Outcome::Unclaimed(accepted),
        None => Outcome::Claimed,
    };
    (result, outcome)
}

/// Inside the accept callback of `fd`: takes the accepted socket and its
/// acceptor's decisions, to start a connection on later (on any thread,
/// with `Connection::set_accepted`). `None` outside that callback.
pub fn take(fd: RawFd) -> Option<Accepted> {
    ACCEPTING.with(|a| {
        let mut slot = a.borrow_mut();
        match slot.as_ref() {
            Some(accepted) if accepted.fd == fd => slot.take(),
            _ => None,
        }
    })
}
