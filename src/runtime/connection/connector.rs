//! The client side of a connection: the URL, the route (directly, or through
//! a proxy), names resolved off the reactor's thread, a non-blocking TCP
//! connect, the proxy's tunnel (`tunnel.rs`), then the opening handshake (the
//! session's first output is its request), and the redirects it answers.
//!
//! A direct connection does what it always did: no proxy dialogue, no
//! second resolution.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::IntoRawFd;
use std::sync::Arc;

use mio::Token;

use crate::proto::close_code::CloseCode;
use crate::proto::handshake::headers::Headers;
use crate::proto::session::Session;
use crate::runtime::client::proxy_url::{ProxyKind, ProxyUrl};
use crate::runtime::client::redirect;
use crate::runtime::config::ConnConfig;
use crate::runtime::connection::client_state::ClientState;
use crate::runtime::connection::{Connection, Flags, Lifecycle};
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::ConnHandler;
use crate::runtime::reactor::Reactor;
use crate::runtime::resolver;
use crate::runtime::resolver::ResolveFn;
use crate::runtime::tls::{self, Stream, TlsError};
use crate::runtime::url::WsUrl;

/// One hop of an attempt, made before anything changes (what can fail at
/// once fails here).
pub(super) struct Hop {
    target: WsUrl,
    session: Session,
    proxy: Option<ProxyUrl>,
    /// TLS from the first byte: with the server, or with an `https://` proxy.
    tls: Option<Stream>,
    /// TLS with the server once a proxy's tunnel is open.
    target_tls: Option<Stream>,
    /// The TLS streams wait for the system's trust store, read with the
    /// resolution (both are made then).
    tls_later: bool,
}

impl<H: ConnHandler> Connection<H> {
    /// Client role: connects to `url` (`ws://[user:password@]host[:port][/path]`,
    /// or `wss://` over TLS, verified as the config's `tls` says), directly
    /// or through the config's proxy. Host names are resolved on a worker
    /// thread, so the reactor never blocks (so is the system's trust store
    /// read, by the first connection that needs it: a failure ends that one
    /// with `TlsError::TrustStore`); then the TCP connect, the proxy's tunnel
    /// and the TLS and opening handshakes run on the reactor. The handler's
    /// `on_open` follows, or `on_close` (1006) if any step fails or the
    /// handshake timeout passes first.
    ///
    /// Allowed on a new or stopped connection, and on one that closed (also
    /// from inside its `on_close`): it starts again.
    pub fn connect(&self, url: &str) -> Result<()> {
        let lifecycle = self.lifecycle.get();
        let restart = lifecycle == Lifecycle::Closed;
        if !(restart || lifecycle == Lifecycle::Idle && self.fd.get() < 0) {
            return Err(Error::State);
        }
        let url = WsUrl::parse(url)?;
        // Once a drain began, nothing new starts.
        let reactor = self.reactor().filter(|r| !r.drain_begun()).ok_or(Error::State)?;
        let config = match self.has(Flags::OWN_CONFIG) {
            true => self.config(),
            false => reactor.config(),
        };
        // Before anything else starts: a setup failure (no TLS built in, no
        // trust store) is this call's error.
        let hop = Self::prepare_hop(&config, url.clone())?;
        if restart {
            self.stop()?;
        }
        self.set_client(ClientState::new(url));
        let token = reactor.add(self.as_source());
        if let Err(e) = self.launch(token, hop, config, true) {
            reactor.remove(token);
            self.token.set(crate::runtime::timers::NO_TOKEN);
            self.lifecycle.set(Lifecycle::Idle);
            return Err(e);
        }
        Ok(())
    }

    /// The session, TLS and route of a hop to `target`.
    pub(super) fn prepare_hop(config: &ConnConfig, target: WsUrl) -> Result<Hop> {
        let proxy = config.client.proxies.route(&target).cloned();
        // The system's trust store is read once, off the reactor's thread
        // (with the resolution); until then the TLS streams wait for it.
        let needs_tls = target.secure || proxy.as_ref().is_some_and(|p| p.kind == ProxyKind::Https);
        let tls_later = needs_tls && config.tls.waits_for_system_store();
        let (tls, target_tls) = match tls_later {
            true => (None, None),
            false => tls_streams(config, &target, proxy.as_ref())?,
        };
        let socks = proxy
            .as_ref()
            .is_some_and(|p| matches!(p.kind, ProxyKind::Socks5 | ProxyKind::Socks5h));
        if socks && target.host.len() > 255 {
            return Err(Error::InvalidArgument("a host name too long for SOCKS5"));
        }
        // The URL's credentials, unless the program set its own Authorization.
        let own = config
            .protocol
            .headers()
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        let extra: Vec<(String, String)> = match &target.credentials {
            Some(c) if !own => vec![("Authorization".to_owned(), c.basic())],
            _ => Vec::new(),
        };
        let session =
            Session::client_with_headers(Arc::clone(&config.protocol), &target.host_header, &target.path, &extra)?;
        Ok(Hop {
            target,
            session,
            proxy,
            tls,
            target_tls,
            tls_later,
        })
    }

    /// Client, once the trust store was to be read (see `prepare_hop`): the
    /// hop's TLS streams, or the failure that ends the connection.
    fn make_waiting_tls(&self) -> Result<()> {
        let waiting = self.with_client(|c| std::mem::take(&mut c.tls_later)) == Some(true);
        if !waiting {
            return Ok(());
        }
        let config = self.config();
        if config.tls.waits_for_system_store() {
            // The worker could not read it: not tried again on this thread.
            return Err(TlsError::TrustStore.into());
        }
        let route = self.with_client(|c| (c.target.clone(), c.proxy.clone()));
        let Some((target, proxy)) = route else { return Ok(()) };
        let (tls, target_tls) = tls_streams(&config, &target, proxy.as_ref())?;
        self.set_tls(tls);
        self.with_client(|c| c.target_tls = target_tls.map(Box::new));
        Ok(())
    }

    /// Starts a hop under `token`: resolves or connects to its first stop.
    /// `fresh`: a new attempt (the handshake timeout starts again), not a
    /// redirect.
    pub(super) fn launch(&self, token: Token, hop: Hop, config: Arc<ConnConfig>, fresh: bool) -> Result<()> {
        let reactor = self.reactor().ok_or(Error::State)?;
        self.install_session(hop.session)?;
        self.config.set(Some(config));
        self.set_tls(hop.tls);
        let (host, port) = match &hop.proxy {
            Some(p) => (p.host.clone(), p.port),
            None => (hop.target.host.clone(), hop.target.port),
        };
        // socks5:// sends an address: the server's name is resolved first.
        let resolve_target = hop.proxy.as_ref().is_some_and(|p| p.kind == ProxyKind::Socks5)
            && hop.target.host.parse::<IpAddr>().is_err();
        let target = (hop.target.host.clone(), hop.target.port);
        let tls_later = hop.tls_later;
        self.with_client(|c| {
            c.target = hop.target;
            c.proxy = hop.proxy;
            c.target_tls = hop.target_tls.map(Box::new);
            c.target_address = None;
            c.dialogue = None;
            c.tls_later = tls_later;
        });
        let lifecycle = match (resolve_target, host.parse::<IpAddr>()) {
            (true, _) => {
                self.resolve(reactor, token, &target.0, target.1);
                Lifecycle::Resolving
            }
            // The trust store is read first, on the resolver's thread (an
            // address literal comes back as it is).
            (false, _) if tls_later => {
                self.resolve(reactor, token, &host, port);
                Lifecycle::Resolving
            }
            (false, Ok(ip)) => {
                // A literal needs no resolution: connect at once.
                self.connect_to(SocketAddr::new(ip, port), token)?;
                Lifecycle::Connecting
            }
            (false, Err(_)) => {
                self.resolve(reactor, token, &host, port);
                Lifecycle::Resolving
            }
        };
        let started = self.started_ms.get();
        self.begin(token, lifecycle);
        if fresh {
            self.count_begin(true);
        } else {
            // A redirect: the handshake timeout covers the whole chain (and
            // the count, one attempt).
            self.started_ms.set(started);
            self.arm_timer();
        }
        Ok(())
    }

    /// Resolves `host` on a worker thread; the answer comes to `resolved`.
    /// While the hop's TLS waits for the system's trust store, the worker
    /// reads it first.
    fn resolve(&self, reactor: &Reactor, token: Token, host: &str, port: u16) {
        let id = resolver::next_request_id();
        let tls_later = self.with_client(|c| {
            c.resolve_request = id;
            c.tls_later
        });
        let resolve = match tls_later {
            Some(true) => reading_trust_store_first(reactor.resolver()),
            _ => reactor.resolver(),
        };
        resolver::resolve(host, port, resolve, reactor.remote(), token, id);
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
        let waited = self.with_client(|c| c.resolve_request) == Some(request);
        if self.lifecycle.get() != Lifecycle::Resolving || !waited {
            return;
        }
        self.with_client(|c| c.resolve_request = 0);
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        if let Err(e) = self.make_waiting_tls() {
            return self.finish(CloseCode::ABNORMAL.0, &e.to_string(), Some(e));
        }
        let Some(addr) = addrs.ok().and_then(|a| a.into_iter().next()) else {
            // The proxy's name, unless SOCKS5 asked for the server's first.
            let proxy_named = self
                .with_client(|c| match &c.proxy {
                    Some(p) if p.kind == ProxyKind::Socks5 && c.target.host.parse::<IpAddr>().is_err() => {
                        c.target_address.is_some()
                    }
                    Some(_) => true,
                    None => false,
                })
                .unwrap_or(false);
            let reason = match proxy_named {
                true => "resolving the proxy's name failed",
                false => "name resolution failed",
            };
            return self.finish(CloseCode::ABNORMAL.0, reason, Some(Error::Io("name resolution")));
        };
        // SOCKS5 with local names: that was the server's name; now the proxy's.
        let proxy = self
            .with_client(|c| match (&c.proxy, c.target_address) {
                (Some(p), None) if p.kind == ProxyKind::Socks5 && c.target.host.parse::<IpAddr>().is_err() => {
                    c.target_address = Some(addr.ip());
                    Some((p.host.clone(), p.port))
                }
                _ => None,
            })
            .flatten();
        let connected = match proxy {
            Some((host, port)) => match host.parse::<IpAddr>() {
                Ok(ip) => self.connect_to(SocketAddr::new(ip, port), token),
                Err(_) => return self.resolve(reactor, token, &host, port),
            },
            None => self.connect_to(addr, token),
        };
        match connected {
            Ok(()) => self.lifecycle.set(Lifecycle::Connecting),
            Err(e) => self.finish(CloseCode::ABNORMAL.0, "connection failed", Some(e)),
        }
    }

    /// The connection no longer waits for its name resolution (it ended, or
    /// was stopped): the request leaves the resolver's queue.
    pub(super) fn forget_resolution(&self) {
        let request = self.with_client(|c| std::mem::take(&mut c.resolve_request));
        if let Some(request @ 1..) = request {
            resolver::cancel(request);
        }
    }

    /// A writable or error event while connecting: connected, or failed.
    pub(super) fn check_connected(&self) {
        match self.socket().connect_status() {
            Ok(true) if self.with_client(|c| c.proxy.is_some()) == Some(true) => self.start_tunnel(),
            Ok(true) => {
                self.lifecycle.set(Lifecycle::Running);
                self.schedule_flush();
            }
            Ok(false) => {}
            Err(_) => {
                let reason = match self.with_client(|c| c.proxy.is_some()) == Some(true) {
                    true => "connecting to the proxy failed",
                    false => "connection failed",
                };
                self.finish(CloseCode::ABNORMAL.0, reason, Some(Error::Io("connect")))
            }
        }
    }

    /// Client role: the server answered the upgrade (`status` 101: opened).
    /// Keeps the answer, and decides whether a redirect is followed.
    pub(super) fn answered(&self, status: u16, headers: &Headers<'_>) {
        let Some(reactor) = self.reactor() else { return };
        let now = reactor.now_ms();
        let max_redirects = self.config().client.max_redirects as usize;
        let refused = self.with_client(|c| {
            c.status = status;
            c.response = Some(headers.to_block());
            if status == 101 {
                c.opened_ms = Some(now);
                return None;
            }
            if !redirect::is_redirect(status) || max_redirects == 0 {
                return None;
            }
            c.visited.push(c.target.without_credentials());
            if c.visited.len() > max_redirects {
                return Some(Error::Redirect("more redirects than allowed"));
            }
            match redirect::next(&c.target, headers.get("location", 0), &c.visited) {
                Ok(next) => {
                    c.redirect = Some(next);
                    None
                }
                Err(e) => Some(e),
            }
        });
        if let Some(error) = refused.flatten() {
            self.extra().close_error.get_or_insert(error);
        }
    }

    /// Ends this hop and starts the next, where the redirect leads (same
    /// token, the handshake timeout still running).
    pub(super) fn follow_redirect(&self, next: WsUrl) {
        let Some((reactor, token)) = self.registered() else {
            return;
        };
        self.drop_hop(reactor);
        let config = self.config();
        let hop = Self::prepare_hop(&config, next);
        if let Err(e) = hop.and_then(|hop| self.launch(token, hop, config, false)) {
            self.finish(CloseCode::ABNORMAL.0, "redirect failed", Some(e));
        }
    }

    /// Closes this hop's socket and drops its session and TLS, keeping the
    /// token (and its timer) for what follows.
    pub(super) fn drop_hop(&self, reactor: &Reactor) {
        let fd = self.fd.get();
        if fd >= 0 {
            let _ = reactor.registry().deregister(&mut mio::unix::SourceFd(&fd));
        }
        self.clear(Flags::WRITE_INTEREST);
        self.drop_socket();
        self.with_client(|c| {
            c.dialogue = None;
            c.target_tls = None;
        });
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

/// The TLS streams of a hop: from the first byte (with the server, or with an
/// `https://` proxy), and with the server inside a proxy's tunnel.
fn tls_streams(
    config: &ConnConfig,
    target: &WsUrl,
    proxy: Option<&ProxyUrl>,
) -> Result<(Option<Stream>, Option<Stream>)> {
    let target_tls = match target.secure {
        true => Some(Stream::client(&config.tls, &target.host)?),
        false => None,
    };
    Ok(match proxy {
        Some(p) if p.kind == ProxyKind::Https => (Some(Stream::client(&config.tls, &p.host)?), target_tls),
        Some(_) => (None, target_tls),
        None => (target_tls, None),
    })
}
