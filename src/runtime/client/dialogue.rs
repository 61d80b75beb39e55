//! The dialogue that opens a tunnel through a proxy, sans I/O: the bytes to
//! send, the answers read, and when the tunnel is open. The connection moves
//! the bytes (`connection/tunnel.rs`).

use crate::runtime::client::http_connect;
use crate::runtime::client::socks5::{Next, Socks5};
use crate::runtime::error::{Error, Result};

/// What a feed came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More answers are awaited (there may be bytes to send first).
    More,
    /// The tunnel is open: what follows is the target's.
    Open,
}

#[derive(Debug)]
enum Protocol {
    /// HTTP CONNECT; answers up to this many bytes.
    Http {
        limit: usize,
    },
    Socks5(Socks5),
}

/// One proxy dialogue.
#[derive(Debug)]
pub struct Dialogue {
    protocol: Protocol,
    output: Vec<u8>,
    sent: usize,
    input: Vec<u8>,
}

impl Dialogue {
    /// HTTP CONNECT with this request; answers longer than `limit` are refused.
    pub fn http(request: Vec<u8>, limit: usize) -> Dialogue {
        Dialogue::new(Protocol::Http { limit }, request)
    }

    /// SOCKS5, its greeting first.
    pub fn socks5(socks: Socks5, greeting: Vec<u8>) -> Dialogue {
        Dialogue::new(Protocol::Socks5(socks), greeting)
    }

    fn new(protocol: Protocol, output: Vec<u8>) -> Dialogue {
        Dialogue {
            protocol,
            output,
            sent: 0,
            input: Vec::new(),
        }
    }

    /// The bytes to send now.
    pub fn output(&self) -> &[u8] {
        &self.output[self.sent..]
    }

    /// `n` bytes of the output were sent.
    pub fn consume(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.output.len());
        if self.sent == self.output.len() {
            self.output.clear();
            self.sent = 0;
        }
    }

    /// Bytes read from the proxy. Nothing may follow the answer that opens
    /// the tunnel: the target speaks only once spoken to.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Step> {
        self.input.extend_from_slice(bytes);
        loop {
            let (used, open) = match &mut self.protocol {
                Protocol::Http { limit } => match http_connect::answer(&self.input, *limit)? {
                    None => return Ok(Step::More),
                    Some(len) => (len, true),
                },
                Protocol::Socks5(socks) => match socks.on_answer(&self.input)? {
                    None => return Ok(Step::More),
                    Some((len, Next::Open)) => (len, true),
                    Some((len, Next::Send(message))) => {
                        self.output.extend_from_slice(&message);
                        (len, false)
                    }
                },
            };
            self.input.drain(..used);
            if open {
                return match self.input.is_empty() {
                    true => Ok(Step::Open),
                    false => Err(Error::ProxyProtocol("the proxy sent bytes after its answer")),
                };
            }
        }
    }

    /// The proxy closed the connection before the tunnel was open.
    pub fn closed(&self) -> Error {
        Error::ProxyProtocol("the proxy closed the connection before the tunnel was open")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::client::socks5::Target;

    #[test]
    fn http_answers_in_pieces() {
        let request = b"CONNECT h:1 HTTP/1.1\r\n\r\n";
        let mut d = Dialogue::http(request.to_vec(), 100);
        assert_eq!(d.output(), request);
        d.consume(10);
        assert_eq!(d.output(), &request[10..]);
        d.consume(100);
        assert!(d.output().is_empty());
        assert_eq!(d.feed(b"HTTP/1.1 200 OK\r\n"), Ok(Step::More));
        assert_eq!(d.feed(b"\r\n"), Ok(Step::Open));
        let mut d = Dialogue::http(Vec::new(), 100);
        assert!(d.feed(b"HTTP/1.1 200 OK\r\n\r\nearly").is_err());
    }

    #[test]
    fn socks5_messages_follow_the_answers() {
        let (socks, greeting) = Socks5::new(Target::Name("h".into(), 80), None).unwrap();
        let mut d = Dialogue::socks5(socks, greeting);
        assert_eq!(d.output(), [5, 1, 0]);
        d.consume(3);
        assert_eq!(d.feed(&[5]), Ok(Step::More));
        assert_eq!(d.feed(&[0]), Ok(Step::More));
        assert_eq!(d.output(), b"\x05\x01\x00\x03\x01h\x00\x50");
        d.consume(8);
        assert_eq!(d.feed(&[5, 0, 0, 1, 1, 2, 3, 4, 0]), Ok(Step::More));
        assert_eq!(d.feed(&[80]), Ok(Step::Open));
    }
}
