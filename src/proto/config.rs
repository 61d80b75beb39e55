//! The protocol limits and options of a session. Every setter checks its value,
//! so a `Config` that exists is a valid one.

use crate::proto::deflate::DeflateConfig;
use crate::proto::error::{Error, Result};

/// Session options. Sessions hold it behind an `Arc`, so one value serves many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    max_frame_size: usize,
    max_message_size: usize,
    max_output: usize,
    max_handshake_size: usize,
    subprotocols: Vec<String>,
    deflate: Option<DeflateConfig>,
    /// Origins a server accepts (normalized, see `handshake::origin`); empty:
    /// any.
    allowed_origins: Vec<String>,
    /// A server refuses requests without `Origin`.
    require_origin: bool,
    /// Client role: header lines added to the upgrade request, in order.
    headers: Vec<(String, String)>,
}

pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;
pub const DEFAULT_MAX_HANDSHAKE_SIZE: usize = 8 << 10;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_output: DEFAULT_MAX_OUTPUT,
            max_handshake_size: DEFAULT_MAX_HANDSHAKE_SIZE,
            subprotocols: Vec::new(),
            deflate: None,
            allowed_origins: Vec::new(),
            require_origin: false,
            headers: Vec::new(),
        }
    }
}

/// A size limit of 0 would refuse everything: it is a mistake, not a setting.
fn positive(bytes: usize) -> Result<usize> {
    if bytes == 0 {
        Err(Error::InvalidArgument)
    } else {
        Ok(bytes)
    }
}

/// An HTTP token (RFC 7230 §3.2.6): what a subprotocol name must be.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Config {
    /// The defaults, with these subprotocols ([`Error::InvalidArgument`] unless
    /// each is an HTTP token).
    pub fn with_subprotocols(names: &[&str]) -> Result<Config> {
        let mut config = Config::default();
        for name in names {
            config.add_subprotocol(name)?;
        }
        Ok(config)
    }

    /// Largest frame payload accepted from the peer (close 1009 above it).
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Largest message accepted from the peer, summed over its fragments (close 1009).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Output bytes a session may hold before sends fail with [`Error::Full`].
    pub fn max_output(&self) -> usize {
        self.max_output
    }

    /// Largest opening handshake (request or response head) accepted.
    pub fn max_handshake_size(&self) -> usize {
        self.max_handshake_size
    }

    /// Subprotocols, in order of preference: a server selects the first of these the
    /// client offered; a client offers all of them.
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// Client role: the header lines added to the upgrade request, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Client role: adds a header line to the upgrade request (after those
    /// added before; a name may repeat). [`Error::InvalidArgument`] unless the
    /// name is an HTTP token the handshake does not write itself (`Host`,
    /// `Upgrade`, `Connection`, `Sec-WebSocket-*`, `Content-Length`,
    /// `Transfer-Encoding`) and the value holds no CR, LF or NUL.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<()> {
        crate::proto::handshake::headers::check_request_header(name, value)?;
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    /// permessage-deflate: offered (client) or accepted (server) with these
    /// settings; `None` (the default): neither.
    pub fn deflate(&self) -> Option<&DeflateConfig> {
        self.deflate.as_ref()
    }

    pub fn set_deflate(&mut self, deflate: Option<DeflateConfig>) {
        self.deflate = deflate;
    }

    /// The deflate settings to change, made (shared mode) if there were none.
    pub fn deflate_mut(&mut self) -> &mut DeflateConfig {
        self.deflate.get_or_insert_with(DeflateConfig::default)
    }

    /// The deflate settings to change; [`Error::DeflateOff`] when compression
    /// is off (a mode's settings do not turn it on).
    pub fn deflate_settings(&mut self) -> Result<&mut DeflateConfig> {
        self.deflate.as_mut().ok_or(Error::DeflateOff)
    }

    /// [`Error::InvalidArgument`] for 0.
    pub fn set_max_frame_size(&mut self, bytes: usize) -> Result<()> {
        self.max_frame_size = positive(bytes)?;
        Ok(())
    }

    /// [`Error::InvalidArgument`] for 0.
    pub fn set_max_message_size(&mut self, bytes: usize) -> Result<()> {
        self.max_message_size = positive(bytes)?;
        Ok(())
    }

    /// [`Error::InvalidArgument`] for 0.
    pub fn set_max_output(&mut self, bytes: usize) -> Result<()> {
        self.max_output = positive(bytes)?;
        Ok(())
    }

    /// [`Error::InvalidArgument`] for 0.
    pub fn set_max_handshake_size(&mut self, bytes: usize) -> Result<()> {
        self.max_handshake_size = positive(bytes)?;
        Ok(())
    }

    /// Server: the origins allowed (normalized); empty, any.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// Server: whether a request must carry `Origin`.
    pub fn requires_origin(&self) -> bool {
        self.require_origin
    }

    /// Server: a request whose `Origin` is not one of those added is refused
    /// with 403 before the program sees it. `origin` is scheme://host[:port]
    /// (scheme and host compared case-insensitively, a default port the same
    /// as none); [`Error::InvalidArgument`] otherwise.
    pub fn add_allowed_origin(&mut self, origin: &str) -> Result<()> {
        let origin = crate::proto::handshake::origin::normalize(origin).ok_or(Error::InvalidArgument)?;
        if !self.allowed_origins.contains(&origin) {
            self.allowed_origins.push(origin);
        }
        Ok(())
    }

    /// Server: refuse (403) requests without `Origin` (browsers always send
    /// one; other clients usually do not).
    pub fn set_require_origin(&mut self, on: bool) {
        self.require_origin = on;
    }

    /// Adds a subprotocol at the end of the list; [`Error::InvalidArgument`]
    /// unless `name` is an HTTP token.
    pub fn add_subprotocol(&mut self, name: &str) -> Result<()> {
        if !is_token(name) {
            return Err(Error::InvalidArgument);
        }
        self.subprotocols.push(name.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_refused_and_change_nothing() {
        let mut c = Config::default();
        assert_eq!(c.set_max_frame_size(0), Err(Error::InvalidArgument));
        assert_eq!(c.set_max_message_size(0), Err(Error::InvalidArgument));
        assert_eq!(c.set_max_output(0), Err(Error::InvalidArgument));
        assert_eq!(c.set_max_handshake_size(0), Err(Error::InvalidArgument));
        for bad in ["", "a b", "a,b", "é", "x\r\n"] {
            assert_eq!(c.add_subprotocol(bad), Err(Error::InvalidArgument), "{bad:?}");
        }
        assert_eq!(c.add_header("Sec-WebSocket-Key", "x"), Err(Error::InvalidArgument));
        assert_eq!(c.add_header("X-A", "1\r\n"), Err(Error::InvalidArgument));
        assert_eq!(c, Config::default());
        c.add_header("X-A", "1").unwrap();
        assert_eq!(c.headers(), &[("X-A".to_owned(), "1".to_owned())]);
        c.add_subprotocol("chat.v2").unwrap();
        c.set_max_frame_size(1).unwrap();
        assert_eq!((c.subprotocols(), c.max_frame_size()), (&["chat.v2".to_owned()][..], 1));
    }
}
