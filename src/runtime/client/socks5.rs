//! The SOCKS5 dialogue (RFC 1928), with user and password (RFC 1929): the
//! methods offered, the credentials if the proxy picks them, then CONNECT to
//! an address (`socks5://`: resolved here) or a name (`socks5h://`).

use std::net::IpAddr;

use crate::runtime::error::{Error, Result};
use crate::runtime::url::Credentials;

/// Where the tunnel leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Address(IpAddr, u16),
    /// At most 255 bytes (checked by [`Socks5::new`]).
    Name(String, u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The greeting was sent: the method chosen comes next.
    Method,
    /// The credentials were sent: their verdict comes next.
    Auth,
    /// CONNECT was sent: the reply comes next.
    Reply,
}

/// One SOCKS5 dialogue.
#[derive(Debug)]
pub struct Socks5 {
    stage: Stage,
    target: Target,
    credentials: Option<Credentials>,
}

/// What an answer leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send these bytes; another answer follows.
    Send(Vec<u8>),
    /// The tunnel is open.
    Open,
}

fn garbage() -> Error {
    Error::ProxyProtocol("the proxy's answer is not SOCKS5")
}

impl Socks5 {
    /// The dialogue and its first message (the methods offered: none, and
    /// user/password when there are credentials).
    pub fn new(target: Target, credentials: Option<Credentials>) -> Result<(Socks5, Vec<u8>)> {
        if matches!(&target, Target::Name(name, _) if name.len() > 255 || name.is_empty()) {
            return Err(Error::InvalidArgument("a host name too long for SOCKS5"));
        }
        let greeting = match credentials {
            Some(_) => vec![5, 2, 0, 2],
            None => vec![5, 1, 0],
        };
        let socks = Socks5 {
            stage: Stage::Method,
            target,
            credentials,
        };
        Ok((socks, greeting))
    }

    /// Reads the answer at the start of `input`: `Ok(None)` while incomplete,
    /// else the bytes it took and what follows.
    pub fn on_answer(&mut self, input: &[u8]) -> Result<Option<(usize, Next)>> {
        match self.stage {
            Stage::Method => {
                let [version, method, ..] = *input else { return Ok(None) };
                if version != 5 {
                    return Err(garbage());
                }
                let next = match (method, &self.credentials) {
                    (0, _) => self.connect(),
                    (2, Some(c)) => {
                        self.stage = Stage::Auth;
                        let mut auth = vec![1, c.user.len() as u8];
                        auth.extend_from_slice(c.user.as_bytes());
                        auth.push(c.password.len() as u8);
                        auth.extend_from_slice(c.password.as_bytes());
                        auth
                    }
                    (0xFF, _) => return Err(Error::ProxyAuth(0xFF)),
                    _ => return Err(Error::ProxyProtocol("the proxy chose a method not offered")),
                };
                Ok(Some((2, Next::Send(next))))
            }
            Stage::Auth => {
                let [version, status, ..] = *input else { return Ok(None) };
                if version != 1 {
                    return Err(garbage());
                }
                if status != 0 {
                    return Err(Error::ProxyAuth(status as u16));
                }
                Ok(Some((2, Next::Send(self.connect()))))
            }
            Stage::Reply => {
                let [version, reply, ..] = *input else { return Ok(None) };
                if version != 5 {
                    return Err(garbage());
                }
                if reply != 0 {
                    return Err(Error::ProxyRefused(reply as u16));
                }
                let len = match input.get(3..5) {
                    None => return Ok(None),
                    Some([1, _]) => 4 + 4 + 2,
                    Some([4, _]) => 4 + 16 + 2,
                    Some([3, name_len]) => 4 + 1 + *name_len as usize + 2,
                    Some(_) => return Err(garbage()),
                };
                if input[2] != 0 {
                    return Err(garbage());
                }
                Ok((input.len() >= len).then_some((len, Next::Open)))
            }
        }
    }

    /// The CONNECT request; the reply is awaited next.
    fn connect(&mut self) -> Vec<u8> {
        self.stage = Stage::Reply;
        let mut out = vec![5, 1, 0];
        let port = match &self.target {
            Target::Address(IpAddr::V4(ip), port) => {
                out.push(1);
                out.extend_from_slice(&ip.octets());
                *port
            }
            Target::Address(IpAddr::V6(ip), port) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
                *port
            }
            Target::Name(name, port) => {
                out.push(3);
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                *port
            }
        };
        out.extend_from_slice(&port.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Option<Credentials> {
        Some(Credentials {
            user: "user".into(),
            password: "pw".into(),
        })
    }

    #[test]
    fn with_credentials_by_name() {
        let (mut s, greeting) = Socks5::new(Target::Name("example.test".into(), 443), creds()).unwrap();
        assert_eq!(greeting, [5, 2, 0, 2]);
        assert_eq!(s.on_answer(&[5]), Ok(None));
        let Ok(Some((2, Next::Send(auth)))) = s.on_answer(&[5, 2]) else {
            panic!()
        };
        assert_eq!(auth, b"\x01\x04user\x02pw");
        let Ok(Some((2, Next::Send(connect)))) = s.on_answer(&[1, 0]) else {
            panic!()
        };
        assert_eq!(connect, b"\x05\x01\x00\x03\x0cexample.test\x01\xbb");
        let reply = [5, 0, 0, 3, 3, b'a', b'b', b'c', 0, 80];
        for cut in 0..reply.len() {
            assert_eq!(s.on_answer(&reply[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(s.on_answer(&reply), Ok(Some((reply.len(), Next::Open))));
    }

    #[test]
    fn without_credentials_by_address() {
        let target = Target::Address("::1".parse().unwrap(), 9);
        let (mut s, greeting) = Socks5::new(target, None).unwrap();
        assert_eq!(greeting, [5, 1, 0]);
        let Ok(Some((2, Next::Send(connect)))) = s.on_answer(&[5, 0]) else {
            panic!()
        };
        assert_eq!(connect.len(), 4 + 16 + 2);
        assert_eq!(connect[3], 4);
        let reply = [5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
        assert_eq!(s.on_answer(&reply), Ok(Some((10, Next::Open))));
        let (mut s, _) = Socks5::new(Target::Address("10.0.0.1".parse().unwrap(), 80), None).unwrap();
        s.on_answer(&[5, 0]).unwrap();
        assert_eq!(
            s.on_answer(&[5, 5, 0, 1]),
            Err(Error::ProxyRefused(5)),
            "connection refused"
        );
    }

    #[test]
    fn refusals_and_garbage() {
        let name = || Target::Name("h".into(), 1);
        let (mut s, _) = Socks5::new(name(), None).unwrap();
        assert_eq!(s.on_answer(&[5, 0xFF]), Err(Error::ProxyAuth(0xFF)));
        let (mut s, _) = Socks5::new(name(), creds()).unwrap();
        s.on_answer(&[5, 2]).unwrap();
        assert_eq!(s.on_answer(&[1, 1]), Err(Error::ProxyAuth(1)));
        let (mut s, _) = Socks5::new(name(), None).unwrap();
        assert_eq!(s.on_answer(b"HTTP/1.1 400"), Err(garbage()));
        let (mut s, _) = Socks5::new(name(), None).unwrap();
        assert!(s.on_answer(&[5, 2]).is_err(), "a method not offered");
        let (mut s, _) = Socks5::new(name(), None).unwrap();
        s.on_answer(&[5, 0]).unwrap();
        assert_eq!(s.on_answer(&[5, 0, 0, 9, 0]), Err(garbage()), "unknown address type");
        assert!(Socks5::new(Target::Name("x".repeat(256), 1), None).is_err());
    }
}
