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
use crate::runtime::tls::Stream;
use crate::runtime::url::WsUrl;

impl<H: ConnHandler> Connection<H> {
    /// Client role: connects to `url` (`ws://host[:port][/path]`, or
    /// `wss://` over TLS, verified as the config's `tls` says). A host name
    /// is resolved on a worker thread, so the reactor never blocks; then the TCP
    /// connect and the opening handshake run on the reactor. The handler's
    /// `on_open` follows, or `on_close` (1006) if any step fails or the
    /// handshake timeout passes first.
    pub fn connect(&self, url: &str) -> Result<()> {
        if self.lifecycle.get() != Lifecycle::Idle || self.fd.get() >= 0 {
            return Err(Error::State);
        }
        let url = WsUrl::parse(url)?;
        let reactor = self.reactor().filter(|r| !r.drain_begun()).ok_or(Error::State)?;
        let config = self.config();
        // Before anything else starts: a setup failure (no TLS built in, no
        // trust store) is this call's error.
        let stream = match url.secure {
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
        let token = reactor.add(self.as_source());
        match url.host.parse::<IpAddr>() {
            Ok(ip) => {
                // A literal needs no resolution: connect at once.
                let connected = self.connect_to(SocketAddr::new(ip, url.port), token);
                if let Err(e) = connected {
                    reactor.remove(token);
                    return Err(e);
                }
                self.begin(token, Lifecycle::Connecting);
                self.count_begin(true);
            }
            Err(_) => {
                let id = resolver::next_request_id();
                self.extra().resolve_request = id;
                self.begin(token, Lifecycle::Resolving);
                self.count_begin(true);
                resolver::resolve(&url.host, url.port, reactor.resolver(), reactor.remote(), token, id);
            }
        }
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
