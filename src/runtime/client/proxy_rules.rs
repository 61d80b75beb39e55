//! Which proxy, if any, a client goes through: one set by the program, or
//! those of the environment read with curl's rules, and the hosts reached
//! directly (`no_proxy`).
//!
//! curl's rules for WebSocket URLs: `ws://` uses `ws_proxy`, `WS_PROXY`, then
//! `http_proxy` (never `HTTP_PROXY`: a CGI program's environment can set it
//! from a request header); `wss://` uses `wss_proxy`, `WSS_PROXY`,
//! `https_proxy`, then `HTTPS_PROXY`; both fall back to `all_proxy` and
//! `ALL_PROXY`. `no_proxy` (or `NO_PROXY`) lists the hosts reached directly.
//! An empty variable counts as unset.

use crate::runtime::client::no_proxy::NoProxy;
use crate::runtime::client::proxy_url::ProxyUrl;
use crate::runtime::error::Result;
use crate::runtime::url::WsUrl;

/// The proxies of a client config (the default: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyRules {
    /// For `ws://` targets.
    plain: Option<ProxyUrl>,
    /// For `wss://` targets.
    secure: Option<ProxyUrl>,
    no_proxy: NoProxy,
}

impl ProxyRules {
    /// Every target through `proxy` (`None`: directly), but the hosts of
    /// `no_proxy`.
    pub fn fixed(proxy: Option<ProxyUrl>, no_proxy: NoProxy) -> ProxyRules {
        ProxyRules {
            plain: proxy.clone(),
            secure: proxy,
            no_proxy,
        }
    }

    /// The rules of the environment, as `var` reads it (an invalid proxy URL
    /// in a variable that would be used is an error).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<ProxyRules> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let first = |names: &[&str]| names.iter().find_map(|n| var(n));
        let plain = first(&["ws_proxy", "WS_PROXY", "http_proxy", "all_proxy", "ALL_PROXY"]);
        let secure = first(&[
            "wss_proxy",
            "WSS_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]);
        let no_proxy = first(&["no_proxy", "NO_PROXY"]).unwrap_or_default();
        Ok(ProxyRules {
            plain: plain.map(|u| ProxyUrl::parse(u.trim())).transpose()?,
            secure: secure.map(|u| ProxyUrl::parse(u.trim())).transpose()?,
            no_proxy: NoProxy::new(&no_proxy),
        })
    }

    /// The rules of this process's environment.
    pub fn from_process_env() -> Result<ProxyRules> {
        ProxyRules::from_env(|name| std::env::var(name).ok())
    }

    /// The hosts reached directly.
    pub fn no_proxy(&self) -> &NoProxy {
        &self.no_proxy
    }

    /// The hosts reached directly, replacing those set before.
    pub fn set_no_proxy(&mut self, no_proxy: NoProxy) {
        self.no_proxy = no_proxy;
    }

    /// The proxy to reach `target` through, or `None` for a direct connection.
    pub fn route(&self, target: &WsUrl) -> Option<&ProxyUrl> {
        let proxy = if target.secure { &self.secure } else { &self.plain };
        proxy.as_ref().filter(|_| !self.no_proxy.matches(&target.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::client::proxy_url::ProxyKind;

    fn rules(vars: &[(&str, &str)]) -> ProxyRules {
        ProxyRules::from_env(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())).unwrap()
    }

    fn via(rules: &ProxyRules, url: &str) -> Option<String> {
        let proxy = rules.route(&WsUrl::parse(url).unwrap())?;
        Some(format!("{}:{}", proxy.host, proxy.port))
    }

    #[test]
    fn curl_order_of_variables() {
        let r = rules(&[("http_proxy", "h:1"), ("HTTPS_PROXY", "s:2"), ("all_proxy", "a:3")]);
        assert_eq!(via(&r, "ws://x/").as_deref(), Some("h:1"));
        assert_eq!(via(&r, "wss://x/").as_deref(), Some("s:2"));
        // HTTP_PROXY (upper case) is never read; all_proxy is the fallback.
        let r = rules(&[("HTTP_PROXY", "H:1"), ("all_proxy", "a:3")]);
        assert_eq!(via(&r, "ws://x/").as_deref(), Some("a:3"));
        assert_eq!(via(&r, "wss://x/").as_deref(), Some("a:3"));
        // https_proxy before HTTPS_PROXY; ws_proxy/wss_proxy before both.
        let r = rules(&[
            ("https_proxy", "s:1"),
            ("HTTPS_PROXY", "S:2"),
            ("ws_proxy", "w:4"),
            ("ALL_PROXY", "A:5"),
        ]);
        assert_eq!(via(&r, "wss://x/").as_deref(), Some("s:1"));
        assert_eq!(via(&r, "ws://x/").as_deref(), Some("w:4"));
        let r = rules(&[("WSS_PROXY", "W:6"), ("https_proxy", "s:1")]);
        assert_eq!(via(&r, "wss://x/").as_deref(), Some("W:6"));
        assert_eq!(via(&r, "ws://x/"), None);
        // Empty counts as unset; no variable: directly.
        let r = rules(&[("http_proxy", ""), ("ALL_PROXY", "socks5h://A:5")]);
        assert_eq!(via(&r, "ws://x/").as_deref(), Some("A:5"));
        assert_eq!(
            r.route(&WsUrl::parse("ws://x/").unwrap()).unwrap().kind,
            ProxyKind::Socks5h
        );
        assert_eq!(via(&rules(&[]), "ws://x/"), None);
    }

    #[test]
    fn no_proxy_from_either_case() {
        let r = rules(&[("all_proxy", "p:1"), ("NO_PROXY", "internal.test,10.0.0.0/8")]);
        assert_eq!(via(&r, "ws://a.internal.test/"), None);
        assert_eq!(via(&r, "wss://10.2.3.4/"), None);
        assert_eq!(via(&r, "ws://internal.test.example/").as_deref(), Some("p:1"));
        let r = rules(&[("all_proxy", "p:1"), ("no_proxy", "a.test"), ("NO_PROXY", "b.test")]);
        assert_eq!(via(&r, "ws://a.test/"), None);
        assert_eq!(
            via(&r, "ws://b.test/").as_deref(),
            Some("p:1"),
            "no_proxy wins over NO_PROXY"
        );
        let r = rules(&[("all_proxy", "p:1"), ("no_proxy", "*")]);
        assert_eq!(via(&r, "ws://anything/"), None);
    }

    #[test]
    fn a_bad_proxy_url_is_an_error() {
        assert!(ProxyRules::from_env(|n| (n == "https_proxy").then(|| "socks4://x".to_owned())).is_err());
    }

    #[test]
    fn a_fixed_proxy_keeps_its_exceptions() {
        let r = ProxyRules::fixed(Some(ProxyUrl::parse("p:8080").unwrap()), NoProxy::new("localhost"));
        assert_eq!(via(&r, "ws://localhost:1/"), None);
        assert_eq!(via(&r, "wss://example.test/").as_deref(), Some("p:8080"));
        assert_eq!(via(&ProxyRules::default(), "ws://x/"), None);
    }
}
