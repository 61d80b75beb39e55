//! The client side of a connection: the URL, the name resolved off the
//! reactor's thread, a non-blocking TCP connect, then the opening handshake
//! (the session's first output is its request).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::IntoRawFd;
use std::sync::Arc;

use crate::proto::close_code::CloseCode;
use crate::proto::session::Session;
use crate::runtime::connection::{Connection, Lifecycle};
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::ConnHandler;
use crate::runtime::resolver;
use crate::runtime::resolver::ResolveFn;
use crate::runtime::tls::{self, Stream, TlsError};
use crate::runtime::url::WsUrl;

impl<H: ConnHandler> Connection<H> {
    /// Client role: connects to `url` (`ws://host[:port][/path]`, or
    /// `wss://` over TLS, verified as the config's `tls` says). A host name
    /// is resolved on a worker thread, so the reactor never blocks (so is the
    /// system's trust store read, by the first connection that needs it: a
    /// failure ends that one with `TlsError::TrustStore`); then the TCP
    /// connect and the opening handshake run on the reactor. The handler's
    /// `on_open` follows, or `on_close` (1006) if any step fails or the
    /// handshake timeout passes first.
    pub fn connect(&self, url: &str) -> Result<()> {
        if self.lifecycle.get() != Lifecycle::Idle || self.fd.get() >= 0 {
            return Err(Error::State);
        }
        let url = WsUrl::parse(url)?;
        let reactor = self.reactor().ok_or(Error::State)?;
        let config = self.config();
        // The system's trust store is read once, off the reactor's thread
        // (with the resolution); until then the TLS stream waits for it.
        let tls_later = url.secure && config.tls.waits_for_system_store();
        // Before anything else starts: a setup failure (no TLS built in) is
        // this call's error.
        let stream = match url.secure && !tls_later {
            true => Some(Stream::client(&config.tls, &url.host)?),
            false => None,
        };
        self.install_session(Session::client(
            Arc::clone(&config.protocol),
            &url.host_header,
            &url.path,
        )?)?;
        self.config.set(Some(config));
        self.set_tls(stream);
        if tls_later || self.extra.borrow().is_some() {
            self.extra().tls_host = tls_later.then(|| url.host.as_str().into());
        }
        let token = reactor.add(self.as_source());
        match url.host.parse::<IpAddr>().ok().filter(|_| !tls_later) {
            Some(ip) => {
                // A literal needs no resolution: connect at once.
                let connected = self.connect_to(SocketAddr::new(ip, url.port), token);
                if let Err(e) = connected {
                    reactor.remove(token);
                    return Err(e);
                }
                self.begin(token, Lifecycle::Connecting);
            }
            None => {
                let id = resolver::next_request_id();
                self.extra().resolve_request = id;
                self.begin(token, Lifecycle::Resolving);
                let resolve = match tls_later {
                    true => reading_trust_store_first(reactor.resolver()),
                    false => reactor.resolver(),
                };
                resolver::resolve(&url.host, url.port, resolve, reactor.remote(), token, id);
            }
        }
        Ok(())
    }

    /// Client, `wss://`, once the trust store was to be read: the TLS stream,
    /// or the failure that ends the connection.
    fn make_waiting_tls(&self) -> Result<()> {
        let Some(host) = self.extra.borrow_mut().as_mut().and_then(|e| e.tls_host.take()) else {
            return Ok(());
        };
        let config = self.config();
        if config.tls.waits_for_system_store() {
            // The worker could not read it: not tried again on this thread.
            return Err(TlsError::TrustStore.into());
        }
        self.set_tls(Some(Stream::client(&config.tls, &host)?));
        Ok(())
    }

    /// Starts the non-blocking connect; the socket is registered under `token`.
    fn connect_to(&self, addr: SocketAddr, token: mio::Token) -> Result<()> {
        let reactor = self.reactor().ok_or(Error::State)?;
        let stream = mio::net::TcpStream::connect(addr).map_err(|_| Error::Io("connect"))?;
        self.fd.set(stream.into_raw_fd());
        self.socket().set_nodelay();
        if let Err(e) = self.register(reactor, token, true) {
            self.socket().close();
            self.fd.set(-1);
            return Err(e);
        }
        Ok(())
    }

    /// The answer to a name resolution.
    pub(super) fn resolved(&self, request: u32, addrs: io::Result<Vec<SocketAddr>>) {
        let waited = self.with_extra(|e| e.resolve_request) == Some(request);
        if self.lifecycle.get() != Lifecycle::Resolving || !waited {
            return;
        }
        let Some((_, token)) = self.registered() else { return };
        if let Err(e) = self.make_waiting_tls() {
            return self.finish(CloseCode::ABNORMAL.0, &e.to_string(), Some(e));
        }
        let addr = match addrs.ok().and_then(|a| a.into_iter().next()) {
            Some(addr) => addr,
            None => {
                let error = Some(Error::Io("name resolution"));
                return self.finish(CloseCode::ABNORMAL.0, "name resolution failed", error);
            }
        };
        match self.connect_to(addr, token) {
            Ok(()) => self.lifecycle.set(Lifecycle::Connecting),
            Err(e) => self.finish(CloseCode::ABNORMAL.0, "connection failed", Some(e)),
        }
    }

    /// A writable or error event while connecting: connected, or failed.
    pub(super) fn check_connected(&self) {
        match self.socket().connect_status() {
            Ok(true) => {
                self.lifecycle.set(Lifecycle::Running);
                self.schedule_flush();
            }
            Ok(false) => {}
            Err(_) => self.finish(CloseCode::ABNORMAL.0, "connection failed", Some(Error::Io("connect"))),
        }
    }
}

/// `resolve`, after reading the system's trust store (both block: they run
/// on a worker thread). An IP address needs no resolving.
fn reading_trust_store_first(resolve: ResolveFn) -> ResolveFn {
    Arc::new(move |host: &str, port: u16| {
        // A failure shows when the connection makes its TLS stream.
        let _ = tls::load_system_store();
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
            Err(_) => resolve(host, port),
        }
    })
}
