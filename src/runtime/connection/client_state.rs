//! What a client connection keeps (in its rarely-used `Extra`): the URL it
//! was given and where redirects led, the route of the current attempt, what
//! the server and the proxy answered, and its reconnection's state.

use std::net::IpAddr;

use crate::proto::handshake::headers::HeaderBlock;
use crate::runtime::client::dialogue::Dialogue;
use crate::runtime::client::proxy_url::ProxyUrl;
use crate::runtime::connection::Connection;
use crate::runtime::handler::ConnHandler;
use crate::runtime::tls::Stream;
use crate::runtime::url::WsUrl;

pub(crate) struct ClientState {
    /// The URL the program connected to: every reconnection starts from it.
    pub origin: WsUrl,
    /// Where this hop goes: the origin, or where redirects led.
    pub target: WsUrl,
    /// The URLs that answered this attempt with a redirect, in order.
    pub visited: Vec<String>,
    /// Where the redirect just received leads (followed once the hop ends).
    pub redirect: Option<WsUrl>,
    /// The proxy this hop goes through.
    pub proxy: Option<ProxyUrl>,
    /// The name resolution waited for.
    pub resolve_request: u32,
    /// The hop's TLS streams are made once the resolution (and the reading
    /// of the system's trust store with it) is done.
    pub tls_later: bool,
    /// SOCKS5 with names resolved here: the target's address, once known
    /// (while it is being resolved, the proxy's name waits).
    pub target_address: Option<IpAddr>,
    /// TLS with the server, begun once the proxy's tunnel is open.
    pub target_tls: Option<Box<Stream>>,
    /// The proxy dialogue under way.
    pub dialogue: Option<Dialogue>,
    /// The server's answer to the last upgrade request (0: none yet) and its
    /// header lines.
    pub status: u16,
    pub response: Option<HeaderBlock>,
    /// The proxy's refusal in this attempt (0: none).
    pub proxy_status: u16,
    /// Reconnection: consecutive attempts that failed or did not last.
    pub failures: u32,
    /// When (reactor ms) the current connection opened.
    pub opened_ms: Option<u64>,
    /// When (reactor ms) the next attempt starts, if one follows.
    pub retry_at: Option<u64>,
    /// The program closed the connection: no attempt follows.
    pub closed: bool,
    /// Closed by the program before it opened: the close callbacks owed
    /// (at the next turn), with its code and reason.
    pub owed_close: Option<(u16, String)>,
}

impl ClientState {
    pub fn new(origin: WsUrl) -> ClientState {
        ClientState {
            target: origin.clone(),
            origin,
            visited: Vec::new(),
            redirect: None,
            proxy: None,
            resolve_request: 0,
            tls_later: false,
            target_address: None,
            target_tls: None,
            dialogue: None,
            status: 0,
            response: None,
            proxy_status: 0,
            failures: 0,
            opened_ms: None,
            retry_at: None,
            closed: false,
            owed_close: None,
        }
    }

    /// A new attempt, from the origin: what the last one learnt goes.
    pub fn restart(&mut self) {
        self.target = self.origin.clone();
        self.visited.clear();
        self.redirect = None;
        self.retry_at = None;
        self.status = 0;
        self.response = None;
        self.proxy_status = 0;
    }
}

impl<H: ConnHandler> Connection<H> {
    /// Runs `f` on the client state (`None` for a server connection).
    pub(super) fn with_client<R>(&self, f: impl FnOnce(&mut ClientState) -> R) -> Option<R> {
        let mut extra = self.extra.borrow_mut();
        extra.as_mut().and_then(|e| e.client.as_deref_mut()).map(f)
    }

    pub(super) fn set_client(&self, state: ClientState) {
        self.extra().client = Some(Box::new(state));
    }

    pub(super) fn is_client(&self) -> bool {
        self.with_client(|_| ()).is_some()
    }

    /// Client role: the HTTP status the server answered the last upgrade
    /// request with (101 when it opened; 0 before any answer, or for a server
    /// connection).
    pub fn handshake_status(&self) -> u16 {
        self.with_client(|c| c.status).unwrap_or(0)
    }

    /// Client role: the proxy's refusal in the last attempt: its HTTP status
    /// (407, 403, 502…) or SOCKS5 reply (1-8; 255: no acceptable method; the
    /// RFC 1929 status after refused credentials); 0 when it refused nothing.
    pub fn proxy_status(&self) -> u16 {
        self.with_client(|c| c.proxy_status).unwrap_or(0)
    }

    /// Client role: runs `f` on the header lines of the server's last answer
    /// (the 101, or a refusal), kept until the next attempt.
    pub fn with_response<R>(&self, f: impl FnOnce(Option<&HeaderBlock>) -> R) -> R {
        let extra = self.extra.borrow();
        f(extra
            .as_ref()
            .and_then(|e| e.client.as_ref())
            .and_then(|c| c.response.as_ref()))
    }
}
