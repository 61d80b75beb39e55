//! A client asking its proxy for a tunnel: the dialogue's bytes moved over
//! the socket (or over TLS with an `https://` proxy) without blocking, until
//! the tunnel opens; then TLS with the server starts inside it (or the
//! session's request goes as it is). A refusal ends the connection with the
//! proxy's status; the handshake timeout covers it all.

use std::io::ErrorKind;
use std::net::IpAddr;

use crate::proto::close_code::CloseCode;
use crate::runtime::client::dialogue::{Dialogue, Step};
use crate::runtime::client::http_connect;
use crate::runtime::client::proxy_url::ProxyKind;
use crate::runtime::client::socks5::{Socks5, Target};
use crate::runtime::connection::{Connection, Lifecycle};
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::ConnHandler;
use crate::runtime::tls::{Stream, TlsError};
use crate::runtime::transport::Transport;
use crate::runtime::url::host_port;

/// Bytes read from the proxy at a time (its answers are short).
const READ_SIZE: usize = 2048;

impl<H: ConnHandler> Connection<H> {
    /// Connected to the proxy: the dialogue begins.
    pub(super) fn start_tunnel(&self) {
        let limit = self.config().protocol.max_handshake_size();
        let dialogue = self.with_client(|c| -> Result<Dialogue> {
            let proxy = c.proxy.as_ref().ok_or(Error::State)?;
            let credentials = proxy.credentials.clone();
            Ok(match proxy.kind {
                ProxyKind::Http | ProxyKind::Https => {
                    let authority = host_port(&c.target.host, c.target.port);
                    Dialogue::http(http_connect::request(&authority, credentials.as_ref()), limit)
                }
                ProxyKind::Socks5 | ProxyKind::Socks5h => {
                    let port = c.target.port;
                    let target = match (c.target.host.parse::<IpAddr>(), c.target_address) {
                        (Ok(ip), _) | (Err(_), Some(ip)) => Target::Address(ip, port),
                        (Err(_), None) => Target::Name(c.target.host.clone(), port),
                    };
                    let (socks, greeting) = Socks5::new(target, credentials)?;
                    Dialogue::socks5(socks, greeting)
                }
            })
        });
        match dialogue {
            Some(Ok(dialogue)) => {
                self.with_client(|c| c.dialogue = Some(dialogue));
                self.lifecycle.set(Lifecycle::Tunneling);
                self.tunnel_write();
            }
            Some(Err(e)) => self.fail_tunnel(e),
            None => {}
        }
    }

    /// Readiness while the dialogue runs.
    pub(super) fn tunnel_event(&self, readable: bool, writable: bool) {
        if writable && !self.tunnel_write() {
            return;
        }
        if readable {
            self.tunnel_read();
        }
    }

    /// Sends what the dialogue (and TLS with the proxy) has to send. `false`:
    /// the connection ended.
    fn tunnel_write(&self) -> bool {
        let socket = self.socket();
        loop {
            let output = self
                .with_client(|c| c.dialogue.as_ref().map(|d| d.output().to_vec()))
                .flatten()
                .unwrap_or_default();
            let written = if self.is_tls() {
                if !output.is_empty() {
                    let taken = self.with_tls(|t| t.write_plaintext(&output)).unwrap_or(0);
                    self.dialogue_sent(taken);
                }
                if !self.with_tls(|t| t.wants_write()).unwrap_or(false) {
                    return true;
                }
                self.with_tls(|t| t.write_records(socket)).unwrap_or(Ok(0))
            } else {
                if output.is_empty() {
                    return true;
                }
                let written = socket.write(&output);
                if let Ok(n) = written {
                    self.dialogue_sent(n);
                }
                written
            };
            match written {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => {
                    self.finish(
                        CloseCode::ABNORMAL.0,
                        "writing to the proxy failed",
                        Some(Error::Io("write")),
                    );
                    return false;
                }
            }
        }
    }

    fn dialogue_sent(&self, n: usize) {
        self.with_client(|c| c.dialogue.as_mut().map(|d| d.consume(n)));
    }

    /// Reads the proxy's answers until the socket is drained or the tunnel
    /// opens.
    fn tunnel_read(&self) {
        let socket = self.socket();
        let mut buf = [0u8; READ_SIZE];
        loop {
            let read = match self.is_tls() {
                true => self.with_tls(|t| t.read_records(socket)).unwrap_or(Ok(0)),
                false => socket.read(&mut buf),
            };
            let n = match read {
                Ok(0) => {
                    let error = self
                        .with_client(|c| c.dialogue.as_ref().map(Dialogue::closed))
                        .flatten();
                    let error = error.unwrap_or(Error::ProxyProtocol("closed"));
                    return self.finish(CloseCode::ABNORMAL.0, "the proxy closed the connection", Some(error));
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    return self.finish(
                        CloseCode::ABNORMAL.0,
                        "reading from the proxy failed",
                        Some(Error::Io("read")),
                    )
                }
            };
            let step = if self.is_tls() {
                if let Some(Err(kind)) = self.with_tls(Stream::process) {
                    return self.fail_proxy_tls(kind);
                }
                self.feed_tls_plaintext(&mut buf)
            } else {
                self.feed_dialogue(&buf[..n])
            };
            match step {
                Ok(Step::More) => {
                    if !self.tunnel_write() {
                        return;
                    }
                }
                Ok(Step::Open) => return self.tunnel_open(),
                Err(e) => return self.fail_tunnel(e),
            }
        }
    }

    /// Feeds the dialogue everything TLS with the proxy decrypted.
    fn feed_tls_plaintext(&self, buf: &mut [u8]) -> Result<Step> {
        loop {
            let n = self.with_tls(|t| t.read_plaintext(buf)).unwrap_or(0);
            if n == 0 {
                return Ok(Step::More);
            }
            if self.feed_dialogue(&buf[..n])? == Step::Open {
                return Ok(Step::Open);
            }
        }
    }

    fn feed_dialogue(&self, bytes: &[u8]) -> Result<Step> {
        self.with_client(|c| c.dialogue.as_mut().map(|d| d.feed(bytes)))
            .flatten()
            .unwrap_or(Err(Error::State))
    }

    /// The tunnel is open: TLS with the server starts inside it (within TLS
    /// with an `https://` proxy), then the session's request.
    fn tunnel_open(&self) {
        let inner = self.with_client(|c| {
            c.dialogue = None;
            c.target_tls.take()
        });
        if let Some(inner) = inner.flatten() {
            let mut extra = self.extra();
            extra.tls = Stream::within(inner, extra.tls.take());
        }
        self.lifecycle.set(Lifecycle::Running);
        self.schedule_flush();
    }

    /// The proxy refused, or broke off the dialogue.
    fn fail_tunnel(&self, error: Error) {
        if let Error::ProxyRefused(status) | Error::ProxyAuth(status) = error {
            self.with_client(|c| c.proxy_status = status);
        }
        let reason = error.to_string();
        self.finish(CloseCode::ABNORMAL.0, &reason, Some(error));
    }

    /// TLS with the proxy failed: the alert goes, then the connection ends.
    fn fail_proxy_tls(&self, kind: TlsError) {
        let socket = self.socket();
        self.with_tls(|t| t.write_records(socket));
        self.finish(
            CloseCode::ABNORMAL.0,
            "TLS with the proxy failed",
            Some(Error::Tls(kind)),
        );
    }
}
