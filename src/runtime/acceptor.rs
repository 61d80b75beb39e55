//! A listening socket on a reactor that hands each accepted socket to the program.

#![allow(non_camel_case_types)] // callback types carry their C names

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::IntoRawFd;

use mio::net::TcpListener;
use mio::{Interest, Token};

use crate::proto::error::{Error, Result};
use crate::runtime::reactor::Reactor;

/// Called with each accepted socket (non-blocking, TCP_NODELAY). Return a
/// negative value to have it closed; otherwise the socket belongs to the program
/// (typically given to a `wsconn_t` with `wsconn_set_fd`).
pub type wsconn_accept_func = Option<extern "C" fn(fd: c_int, arg: *mut c_void) -> c_int>;

pub struct Acceptor {
    reactor: Cell<*const Reactor>,
    token: Cell<Option<Token>>,
    listener: RefCell<Option<TcpListener>>,
    accept_func: Cell<(wsconn_accept_func, *mut c_void)>,
    released: Cell<bool>,
    reuse_port: Cell<bool>,
}

impl Acceptor {
    pub fn new(reactor: *const Reactor) -> Acceptor {
        Acceptor {
            reactor: Cell::new(reactor),
            token: Cell::new(None),
            listener: RefCell::new(None),
            accept_func: Cell::new((None, std::ptr::null_mut())),
            released: Cell::new(false),
            reuse_port: Cell::new(false),
        }
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

    pub fn set_accept_func(&self, func: wsconn_accept_func, arg: *mut c_void) {
        self.accept_func.set((func, arg));
    }

    /// Listens on `ip:port` (port 0: any free port) and accepts on the reactor.
    pub fn start(&self, this: *const Acceptor, ip: &str, port: i32) -> Result<()> {
        let ip: IpAddr = ip.parse().map_err(|_| Error::InvalidArgument)?;
        let port = u16::try_from(port).map_err(|_| Error::InvalidArgument)?;
        let reactor = self.reactor().ok_or(Error::State)?;
        if self.listener.borrow().is_some() {
            return Err(Error::State);
        }
        let mut listener = self.bind(SocketAddr::new(ip, port)).map_err(|_| Error::Io)?;
        let token = reactor.add_acceptor(this);
        if reactor
            .registry()
            .register(&mut listener, token, Interest::READABLE)
            .is_err()
        {
            reactor.remove(token);
            return Err(Error::Io);
        }
        self.token.set(Some(token));
        *self.listener.borrow_mut() = Some(listener);
        Ok(())
    }

    /// The port listened on.
    pub fn port(&self) -> Result<u16> {
        let listener = self.listener.borrow();
        let listener = listener.as_ref().ok_or(Error::State)?;
        listener.local_addr().map(|a| a.port()).map_err(|_| Error::Io)
    }

    /// Accepts every pending connection (the poll is edge-triggered).
    pub fn on_readable(&self) {
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
                    let (func, arg) = self.accept_func.get();
                    let keep = func.is_some_and(|f| f(fd, arg) >= 0);
                    if !keep {
                        // SAFETY: the program refused the socket: it is still ours.
                        unsafe { libc::close(fd) };
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // WouldBlock: all accepted. Anything else (EMFILE…): try again on
                // the next connection attempt rather than spin.
                Err(_) => return,
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

    /// The reactor is going away: stop and forget it.
    pub fn detach(&self) {
        let _ = self.stop();
        self.reactor.set(std::ptr::null());
    }

    /// Frees the acceptor now, or when the running dispatch ends if called from a
    /// callback.
    ///
    /// # Safety
    /// `this` came from `Box::into_raw` and is not used by the caller afterwards.
    pub unsafe fn release(this: *mut Acceptor) {
        // SAFETY: live per the caller.
        let acceptor = unsafe { &*this };
        acceptor.released.set(true);
        let _ = acceptor.stop();
        match acceptor.reactor() {
            Some(reactor) if reactor.is_dispatching() => reactor.bury_acceptor(this),
            // SAFETY: from Box::into_raw; no dispatch can be using it.
            _ => drop(unsafe { Box::from_raw(this) }),
        }
    }
}
