//! A small WebSocket client over a blocking `TcpStream`, written without
//! wsconn: it masks what it sends with the key of RFC 6455 §5.7, checks the
//! server's frames (unmasked, no RSV bit) and reads against deadlines.

mod reading;

pub use reading::{is_closed_kind, read_some, wait_closed, ReadError};

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::frame::{client_frame, first_byte, OP_CLOSE, OP_TEXT};
use crate::rfc6455::{upgrade_request, ACCEPT};

/// Why an opening handshake did not succeed.
#[derive(Debug)]
pub enum OpenError {
    /// The TCP connect failed (e.g. refused).
    Connect(io::Error),
    /// Writing the request failed.
    Write(io::Error),
    /// Reading the answer failed (with what came of it).
    Read(ReadError, String),
    /// The answer is not a valid 101 (the head received).
    Refused(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Connect(e) => write!(f, "connect: {e}"),
            OpenError::Write(e) => write!(f, "write the handshake: {e}"),
            OpenError::Read(e, got) => write!(f, "handshake response: {e:?}; got {got:?}"),
            OpenError::Refused(head) => write!(f, "not a 101 response with the right Upgrade and Accept: {head:?}"),
        }
    }
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

pub struct WsClient {
    pub stream: TcpStream,
    /// Received bytes not parsed yet.
    buf: VecDeque<u8>,
    /// Read buffer.
    chunk: Vec<u8>,
}

impl WsClient {
    /// Connects to 127.0.0.1:port and completes the opening handshake for `/`.
    pub fn connect(port: u16) -> WsClient {
        WsClient::open(port, "/")
    }

    /// Connects to 127.0.0.1:port and completes the opening handshake for `path`.
    pub fn open(port: u16, path: &str) -> WsClient {
        WsClient::open_with(port, path, "").0
    }

    /// The same with `extra_headers` (lines ending in CRLF) in the request;
    /// also returns the response head.
    pub fn open_with(port: u16, path: &str, extra_headers: &str) -> (WsClient, String) {
        let mut client = WsClient::connect_tcp(port).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
        let head = client.handshake_with(path, extra_headers);
        (client, head)
    }

    /// Connects to 127.0.0.1:port and tries the opening handshake for `path`,
    /// without panicking: the connect's error, or a head that is not a valid
    /// 101 (`Refused`, with the head), or the read that failed.
    pub fn try_open(port: u16, path: &str) -> Result<WsClient, OpenError> {
        let mut client = WsClient::connect_tcp(port).map_err(OpenError::Connect)?;
        client.try_handshake(path, "")?;
        Ok(client)
    }

    fn connect_tcp(port: u16) -> io::Result<WsClient> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(WsClient {
            stream,
            buf: VecDeque::new(),
            chunk: vec![0u8; 256 * 1024],
        })
    }

    /// Sends the request for `path`, reads the response head and checks it.
    pub fn handshake(&mut self, path: &str) {
        self.handshake_with(path, "");
    }

    /// The same with `extra_headers` (lines ending in CRLF) in the request;
    /// returns the response head.
    pub fn handshake_with(&mut self, path: &str, extra_headers: &str) -> String {
        match self.try_handshake(path, extra_headers) {
            Ok(head) => head,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_handshake(&mut self, path: &str, extra_headers: &str) -> Result<String, OpenError> {
        let mut request = upgrade_request("127.0.0.1", path);
        // Before the empty line that ends the head.
        request.truncate(request.len() - 2);
        request.extend_from_slice(extra_headers.as_bytes());
        request.extend_from_slice(b"\r\n");
        self.stream.write_all(&request).map_err(OpenError::Write)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match read_some(&mut self.stream, &mut chunk, deadline) {
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(OpenError::Read(e, String::from_utf8_lossy(&head).into_owned())),
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).into_owned();
        let lower = text.to_ascii_lowercase();
        if !text.starts_with("HTTP/1.1 101")
            || !lower.contains("\r\nupgrade: websocket\r\n")
            || !text.contains(&format!(": {ACCEPT}\r\n"))
        {
            return Err(OpenError::Refused(text));
        }
        self.buf.extend(&head[end..]);
        Ok(text)
    }

    /// Writes a masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&client_frame(first_byte(fin, opcode), payload))
    }

    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send_frame(true, OP_TEXT, text.as_bytes())
    }

    /// A close frame with `code` and no reason.
    pub fn send_close(&mut self, code: u16) -> io::Result<()> {
        self.send_frame(true, OP_CLOSE, &code.to_be_bytes())
    }

    /// Parses one frame from the buffer, if it holds a complete one.
    fn parse(&mut self) -> Result<Option<Frame>, ReadError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (b[0], b[1]);
        if b1 & 0x80 != 0 {
            return Err(ReadError::Other("the server masked a frame".into()));
        }
        if b0 & 0x70 != 0 {
            return Err(ReadError::Other(format!("RSV bits set: {b0:#04x}")));
        }
        let (len, header) = match b1 & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                for (i, x) in n.iter_mut().enumerate() {
                    *x = b[2 + i];
                }
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        if len > (1 << 30) {
            return Err(ReadError::Other(format!("frame length {len}")));
        }
        let total = header + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.buf.drain(..header);
        // One copy out of the contiguous buffer (large echoes stay cheap).
        let payload = self.buf.make_contiguous()[..len as usize].to_vec();
        self.buf.drain(..len as usize);
        Ok(Some(Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload,
        }))
    }

    /// Reads the next frame (control frames included), waiting until `deadline`.
    pub fn read_frame(&mut self, deadline: Instant) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(frame);
            }
            let n = read_some(&mut self.stream, &mut self.chunk, deadline)?;
            self.buf.extend(&self.chunk[..n]);
        }
    }

    /// Bytes received and not parsed.
    pub fn unparsed(&self) -> usize {
        self.buf.len()
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
