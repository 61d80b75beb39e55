//! What only clients need, apart from sockets: the proxies to go through and
//! the dialogues that open their tunnels, the redirects to follow, and the
//! backoff of reconnections. The connection drives them
//! (`connection/{connector,tunnel,reconnect}.rs`).

pub mod backoff;
pub mod dialogue;
pub mod http_connect;
pub mod no_proxy;
pub mod proxy_rules;
pub mod proxy_url;
pub mod redirect;
pub mod socks5;

use backoff::Backoff;
use proxy_rules::ProxyRules;

/// The client options of a connection config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// The proxies (none by default).
    pub proxies: ProxyRules,
    /// Redirects followed in one attempt (0, the default: none, as curl).
    pub max_redirects: u8,
    /// Connect again after an end the program did not ask for (off by default).
    pub reconnect: Option<Backoff>,
}
