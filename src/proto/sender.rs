//! The output side of a session: frames are encoded straight into one output
//! buffer that the program drains with `pending` / `consume`.

use crate::proto::close_code::CloseCode;
use crate::proto::error::{Error, Result};
use crate::proto::event::MessageKind;
use crate::proto::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::proto::mask::extend_masked;
use crate::proto::role::Role;
use crate::proto::utf8::Utf8Validator;

/// Output buffers larger than this are given back to the allocator once drained,
/// so a burst does not pin memory on an idle connection.
const KEEP_CAPACITY: usize = 64 << 10;
/// A drained buffer up to this size is kept for the next sender of the thread.
const SPARE_CAPACITY: usize = 4 << 20;
/// Server messages from this size on are written straight from the caller's
/// buffer when the socket takes them (see `Sender::send_direct`); smaller ones
/// are batched with the rest of the turn's output.
pub const DIRECT_SEND_MIN: usize = 64 << 10;

thread_local! {
    /// One emptied output buffer per thread: a drained sender gives its buffer
    /// back here and holds none, and the next one to write takes it (a reactor
    /// and its connections share a thread). Output thus costs an idle connection
    /// nothing and a busy one no allocation.
    static SPARE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Takes the thread's spare output buffer (empty, maybe with capacity).
fn take_spare() -> Vec<u8> {
    SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Keeps an emptied buffer for reuse if it beats the one kept.
fn give_spare(mut buffer: Vec<u8>) {
    if buffer.capacity() == 0 || buffer.capacity() > SPARE_CAPACITY {
        return;
    }
    SPARE.with(|s| {
        let mut spare = s.borrow_mut();
        if buffer.capacity() > spare.capacity() {
            buffer.clear();
            *spare = buffer;
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    /// Before the handshake completes only handshake bytes may be queued.
    Handshake,
    /// A plain HTTP request is being handled: one response may be queued.
    HttpRequest,
    Open,
    /// A close frame was queued (or the session failed): nothing more is sent.
    Closed,
}

/// A fragmented message being sent.
#[derive(Debug)]
struct OutgoingFragments {
    kind: MessageKind,
    utf8: Utf8Validator,
}

#[derive(Debug)]
pub struct Sender {
    role: Role,
    state: TxState,
    out: Vec<u8>,
    out_pos: usize,
    max_output: usize,
    fragments: Option<Box<OutgoingFragments>>,
}

impl Sender {
    pub fn new(role: Role, max_output: usize) -> Self {
        Sender {
            role,
            state: TxState::Handshake,
            out: Vec::new(),
            out_pos: 0,
            max_output,
            fragments: None,
        }
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Number of bytes waiting to be written.
    pub fn buffered(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Marks `n` pending bytes as written.
    pub fn consume(&mut self, n: usize) -> Result<()> {
        if n > self.buffered() {
            return Err(Error::InvalidArgument);
        }
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out_pos = 0;
            give_spare(std::mem::take(&mut self.out));
        } else if self.out_pos >= KEEP_CAPACITY && self.out_pos * 2 >= self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Whether output reached the high-water mark, half the limit: the program
    /// should stop reading, so that the other half can take the replies to what
    /// it already read and no send of those replies fails.
    pub fn is_full(&self) -> bool {
        self.buffered() >= self.max_output / 2
    }

    pub fn is_open(&self) -> bool {
        self.state == TxState::Open
    }

    /// Whether a close frame was queued or the session failed.
    pub fn is_closed(&self) -> bool {
        self.state == TxState::Closed
    }

    /// Sends a whole message.
    pub fn send(&mut self, kind: MessageKind, data: &[u8]) -> Result<()> {
        self.check_message(kind, data)?;
        self.write_frame(true, opcode_of(kind), data);
        Ok(())
    }

    /// Whether a whole message may be sent now: open, no fragmented message
    /// in progress, text that is UTF-8, room in the output.
    fn check_message(&self, kind: MessageKind, data: &[u8]) -> Result<()> {
        self.check_open()?;
        if self.fragments.is_some() {
            return Err(Error::InvalidArgument);
        }
        // An echo of the text message being delivered was validated on receipt.
        if kind == MessageKind::Text && !crate::proto::utf8::is_being_delivered(data) {
            Utf8Validator::validate_complete(data).map_err(|_| Error::InvalidArgument)?;
        }
        self.check_room(data.len())
    }

    /// Sends a whole message like `send`, but a large one (server role) is
    /// offered to `write` straight from `data`: `write(pending, data)` writes
    /// what output waits and then the message (one gathered write; `pending`
    /// ends with the frame's header) and returns how many bytes it took. Only
    /// what it did not take is copied into the output buffer, so a big echo is
    /// not copied through it. A failed write takes nothing: the output stays
    /// queued for the next write, which reports the failure.
    pub fn send_direct(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        write: impl FnOnce(&[u8], &[u8]) -> std::io::Result<usize>,
    ) -> Result<()> {
        if self.role == Role::Client || data.len() < DIRECT_SEND_MIN {
            // A client's payload is masked, hence copied anyway.
            return self.send(kind, data);
        }
        self.check_message(kind, data)?;
        // Server role: no mask.
        self.write_header(true, opcode_of(kind), data.len(), 0);
        let total = self.buffered() + data.len();
        let written = write(self.pending(), data).unwrap_or(0).min(total);
        let from_out = written.min(self.buffered());
        self.consume(from_out)?;
        let rest = &data[written - from_out..];
        if !rest.is_empty() {
            self.buffer().extend_from_slice(rest);
        }
        Ok(())
    }

    /// Sends one fragment of a message; the first fragment's `kind` is the
    /// message's, later ones must repeat it. `fin` ends the message. Text is
    /// validated across fragments; an invalid fragment is refused and queues nothing.
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], fin: bool) -> Result<()> {
        self.check_open()?;
        let continuing = match &self.fragments {
            Some(f) if f.kind != kind => return Err(Error::InvalidArgument),
            Some(_) => true,
            None => false,
        };
        if kind == MessageKind::Text {
            let mut utf8 = self.fragments.as_ref().map(|f| f.utf8.clone()).unwrap_or_default();
            utf8.feed(data).map_err(|_| Error::InvalidArgument)?;
            if fin {
                utf8.finish().map_err(|_| Error::InvalidArgument)?;
            }
            self.check_room(data.len())?;
            if !fin {
                self.fragments = Some(Box::new(OutgoingFragments { kind, utf8 }));
            }
        } else {
            self.check_room(data.len())?;
            if !fin && !continuing {
                self.fragments = Some(Box::new(OutgoingFragments {
                    kind,
                    utf8: Utf8Validator::new(),
                }));
            }
        }
        let opcode = if continuing {
            OpCode::Continuation
        } else {
            opcode_of(kind)
        };
        self.write_frame(fin, opcode, data);
        if fin {
            self.fragments = None;
        }
        Ok(())
    }

    pub fn ping(&mut self, data: &[u8]) -> Result<()> {
        self.send_control(OpCode::Ping, data)
    }

    pub fn pong(&mut self, data: &[u8]) -> Result<()> {
        self.send_control(OpCode::Pong, data)
    }

    fn send_control(&mut self, opcode: OpCode, data: &[u8]) -> Result<()> {
        self.check_open()?;
        if data.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::InvalidArgument);
        }
        self.check_room(data.len())?;
        self.write_frame(true, opcode, data);
        Ok(())
    }

    /// Starts the closing handshake. `code` must be valid on the wire, or 1005 for
    /// a close frame without a status; `reason` at most 123 bytes (needs a code).
    pub fn close(&mut self, code: u16, reason: &str) -> Result<()> {
        self.check_open()?;
        let code = CloseCode(code);
        let no_status = code == CloseCode::NO_STATUS;
        if !(no_status || code.is_valid_on_wire())
            || reason.len() > MAX_CONTROL_PAYLOAD - 2
            || (no_status && !reason.is_empty())
        {
            return Err(Error::InvalidArgument);
        }
        self.queue_close(code, reason);
        Ok(())
    }

    /// Answers the plain HTTP request being handled (see `Event::HttpRequest`);
    /// the connection closes after the response.
    pub fn http_response(&mut self, status: u16, content_type: &str, body: &[u8]) -> Result<()> {
        if self.state != TxState::HttpRequest {
            return Err(Error::NotOpen);
        }
        let printable = |s: &str| s.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if !(100..=999).contains(&status) || content_type.is_empty() || !printable(content_type) {
            return Err(Error::InvalidArgument);
        }
        crate::proto::handshake::server::write_http_response(self.buffer(), status, content_type, body);
        self.state = TxState::Closed;
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        match self.state {
            TxState::Handshake | TxState::HttpRequest => Err(Error::NotOpen),
            TxState::Open => Ok(()),
            TxState::Closed => Err(Error::Closed),
        }
    }

    /// A send is refused when output is waiting and this frame would take it over
    /// the limit; a frame larger than the limit is still accepted into an empty buffer.
    fn check_room(&self, payload_len: usize) -> Result<()> {
        let buffered = self.buffered();
        let frame_len = payload_len.saturating_add(MAX_HEADER_LEN);
        if buffered > 0 && buffered.saturating_add(frame_len) > self.max_output {
            return Err(Error::Full);
        }
        Ok(())
    }

    fn write_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let mask = self.write_header(fin, opcode, payload.len(), payload.len());
        match mask {
            Some(key) => extend_masked(&mut self.out, payload, key),
            None => self.out.extend_from_slice(payload),
        }
    }

    /// Queues a frame header (masked with a fresh key in the client role),
    /// with room reserved for `room` more bytes; returns the key.
    fn write_header(&mut self, fin: bool, opcode: OpCode, payload_len: usize, room: usize) -> Option<[u8; 4]> {
        let mask = match self.role {
            Role::Client => Some(crate::proto::random::mask_key()),
            Role::Server => None,
        };
        let header = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len: payload_len as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        let out = self.buffer();
        out.reserve(head_len + room);
        out.extend_from_slice(&head[..head_len]);
        mask
    }

    fn queue_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = if code == CloseCode::NO_STATUS {
            0
        } else {
            payload[..2].copy_from_slice(&code.0.to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        };
        self.write_frame(true, OpCode::Close, &payload[..len]);
        self.state = TxState::Closed;
        self.fragments = None;
    }

    // --- used by the receiving side ---

    /// Queues handshake bytes (request or response).
    pub(crate) fn queue_raw(&mut self, bytes: &[u8]) {
        self.buffer().extend_from_slice(bytes);
    }

    /// The configured output limit.
    pub fn max_output(&self) -> usize {
        self.max_output
    }

    pub(crate) fn out_buffer(&mut self) -> &mut Vec<u8> {
        self.buffer()
    }

    /// The output buffer, taking the thread's spare if this sender holds none.
    fn buffer(&mut self) -> &mut Vec<u8> {
        if self.out.capacity() == 0 {
            self.out = take_spare();
        }
        &mut self.out
    }

    /// A plain HTTP request arrived: the program may answer it.
    pub(crate) fn begin_http(&mut self) {
        if self.state == TxState::Handshake {
            self.state = TxState::HttpRequest;
        }
    }

    /// The HTTP request was handled: 404 if the program sent no response.
    pub(crate) fn end_http(&mut self) {
        if self.state == TxState::HttpRequest {
            crate::proto::handshake::server::write_http_response(self.buffer(), 404, "text/plain", b"Not Found\n");
        }
        self.state = TxState::Closed;
    }

    /// The handshake completed: data frames may flow.
    pub(crate) fn open(&mut self) {
        if self.state == TxState::Handshake {
            self.state = TxState::Open;
        }
    }

    /// Answers a ping. Dropped when output is full: a peer that pings faster than
    /// it reads gets a pong for the latest pings only (RFC 6455 §5.5.3 allows it).
    pub(crate) fn auto_pong(&mut self, data: &[u8]) {
        if self.state == TxState::Open && self.check_room(data.len()).is_ok() {
            self.write_frame(true, OpCode::Pong, data);
        }
    }

    /// Answers the peer's close frame by echoing its status code, unless a
    /// close frame was already sent.
    pub(crate) fn reply_close(&mut self, code: CloseCode) {
        if self.state == TxState::Open {
            self.queue_close(code, "");
        }
    }

    /// Ends the session after an error: a close frame with `code` if the session
    /// was open, then nothing more.
    pub(crate) fn fail(&mut self, code: Option<CloseCode>, reason: &str) {
        if let (TxState::Open, Some(code)) = (self.state, code) {
            self.queue_close(code, reason);
        }
        self.state = TxState::Closed;
        self.fragments = None;
    }
}

fn opcode_of(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mask::apply_mask;

    fn open_server() -> Sender {
        let mut tx = Sender::new(Role::Server, 1 << 20);
        tx.open();
        tx
    }

    #[test]
    fn nothing_before_the_handshake() {
        let mut tx = Sender::new(Role::Server, 1 << 20);
        assert_eq!(tx.send(MessageKind::Text, b"hi"), Err(Error::NotOpen));
        assert_eq!(tx.ping(b""), Err(Error::NotOpen));
        assert_eq!(tx.buffered(), 0);
    }

    #[test]
    fn rfc_unmasked_frames() {
        let mut tx = open_server();
        tx.send(MessageKind::Text, b"Hello").unwrap();
        assert_eq!(tx.pending(), &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        tx.consume(7).unwrap();
        tx.ping(b"Hello").unwrap();
        assert_eq!(tx.pending(), &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        tx.consume(7).unwrap();
        tx.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
        tx.send_fragment(MessageKind::Text, b"lo", true).unwrap();
        assert_eq!(tx.pending(), &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
        tx.consume(9).unwrap();
        tx.send(MessageKind::Binary, &[7; 256]).unwrap();
        assert_eq!(&tx.pending()[..4], &[0x82, 0x7E, 0x01, 0x00]);
        tx.consume(260).unwrap();
        tx.send(MessageKind::Binary, &vec![7; 65536]).unwrap();
        assert_eq!(&tx.pending()[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    /// What a normal send of `data` after `before` queues, written or not.
    fn wire_of(before: &[u8], kind: MessageKind, data: &[u8]) -> Vec<u8> {
        let mut tx = open_server();
        if !before.is_empty() {
            tx.send(MessageKind::Binary, before).unwrap();
        }
        tx.send(kind, data).unwrap();
        tx.pending().to_vec()
    }

    #[test]
    fn direct_sends_put_the_same_bytes_on_the_wire_whatever_the_socket_takes() {
        let data: Vec<u8> = (0..DIRECT_SEND_MIN + 1000).map(|i| b'a' + (i % 26) as u8).collect();
        let before = b"queued first";
        let expected = wire_of(before, MessageKind::Text, &data);
        let queued_len = expected.len() - data.len();
        for takes in [
            0,
            1,
            5,
            queued_len - 1,
            queued_len,
            queued_len + 1,
            expected.len() - 1,
            expected.len(),
        ] {
            let mut tx = open_server();
            tx.send(MessageKind::Binary, before).unwrap();
            let mut wire = Vec::new();
            tx.send_direct(MessageKind::Text, &data, |pending, payload| {
                assert!(
                    pending.ends_with(&[0x81, 0x7F, 0, 0, 0, 0, 0, 1, 3, 0xE8]),
                    "header queued last"
                );
                wire.extend_from_slice(pending);
                wire.extend_from_slice(payload);
                wire.truncate(takes);
                Ok(takes)
            })
            .unwrap();
            assert_eq!(tx.buffered(), expected.len() - takes, "takes {takes}");
            wire.extend_from_slice(tx.pending());
            assert_eq!(wire, expected, "takes {takes}");
        }
    }

    #[test]
    fn a_failed_direct_write_keeps_everything_queued() {
        let data = vec![9u8; DIRECT_SEND_MIN];
        let mut tx = open_server();
        tx.send_direct(MessageKind::Binary, &data, |_, _| {
            Err(std::io::ErrorKind::BrokenPipe.into())
        })
        .unwrap();
        assert_eq!(tx.pending(), wire_of(b"", MessageKind::Binary, &data));
    }

    #[test]
    fn direct_sends_keep_the_rules_of_send() {
        let never = |_: &[u8], _: &[u8]| -> std::io::Result<usize> { panic!("nothing may be written") };
        let mut tx = open_server();
        let mut bad = vec![b'x'; DIRECT_SEND_MIN];
        bad[100] = 0xFF;
        assert_eq!(
            tx.send_direct(MessageKind::Text, &bad, never),
            Err(Error::InvalidArgument)
        );
        tx.send_fragment(MessageKind::Binary, b"x", false).unwrap();
        assert_eq!(
            tx.send_direct(MessageKind::Binary, &bad, never),
            Err(Error::InvalidArgument),
            "fragmented message open"
        );
        let mut tx = Sender::new(Role::Server, 1000);
        tx.open();
        tx.send(MessageKind::Binary, b"waiting").unwrap();
        assert_eq!(tx.send_direct(MessageKind::Binary, &bad, never), Err(Error::Full));
        tx.close(1000, "").unwrap();
        assert_eq!(tx.send_direct(MessageKind::Binary, &bad, never), Err(Error::Closed));
        // Small messages and client frames (masked) go through the buffer.
        let mut tx = open_server();
        tx.send_direct(MessageKind::Binary, b"small", never).unwrap();
        assert_eq!(tx.buffered(), 7);
        let mut tx = Sender::new(Role::Client, 1 << 20);
        tx.open();
        tx.send_direct(MessageKind::Binary, &bad, never).unwrap();
        assert_eq!(tx.buffered(), bad.len() + 14);
    }

    #[test]
    fn client_frames_are_masked() {
        let mut tx = Sender::new(Role::Client, 1 << 20);
        tx.open();
        tx.send(MessageKind::Text, b"Hello").unwrap();
        let out = tx.pending().to_vec();
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 5);
        let mut payload = out[6..].to_vec();
        apply_mask(&mut payload, out[2..6].try_into().unwrap(), 0);
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn invalid_sends_queue_nothing() {
        let mut tx = open_server();
        assert_eq!(tx.send(MessageKind::Text, b"\xff"), Err(Error::InvalidArgument));
        assert_eq!(tx.ping(&[0; 126]), Err(Error::InvalidArgument));
        assert_eq!(tx.close(1005, "why"), Err(Error::InvalidArgument));
        for code in [0, 999, 1004, 1006, 1015, 2000, 5000] {
            assert_eq!(tx.close(code, ""), Err(Error::InvalidArgument), "code {code}");
        }
        assert_eq!(tx.close(1000, &"x".repeat(124)), Err(Error::InvalidArgument));
        tx.send_fragment(MessageKind::Text, b"\xe2\x82", false).unwrap();
        let before = tx.buffered();
        assert_eq!(
            tx.send_fragment(MessageKind::Text, b"\x28", true),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            tx.send_fragment(MessageKind::Binary, b"x", true),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            tx.send(MessageKind::Binary, b"x"),
            Err(Error::InvalidArgument),
            "fragmented message open"
        );
        assert_eq!(tx.buffered(), before);
        tx.send_fragment(MessageKind::Text, b"\xac", true).unwrap();
    }

    #[test]
    fn nothing_after_close() {
        let mut tx = open_server();
        tx.close(1000, "bye").unwrap();
        assert_eq!(tx.pending(), &[0x88, 0x05, 0x03, 0xE8, b'b', b'y', b'e']);
        assert_eq!(tx.send(MessageKind::Text, b"late"), Err(Error::Closed));
        assert_eq!(tx.close(1000, ""), Err(Error::Closed));
        tx.auto_pong(b"x");
        assert_eq!(tx.buffered(), 7);
    }

    #[test]
    fn backpressure() {
        let mut tx = Sender::new(Role::Server, 100);
        tx.open();
        tx.send(MessageKind::Binary, &[0; 1000]).unwrap(); // larger than the cap, buffer empty
        assert_eq!(tx.send(MessageKind::Binary, b"x"), Err(Error::Full));
        assert!(tx.is_full());
        tx.consume(tx.buffered()).unwrap();
        tx.send(MessageKind::Binary, &[0; 40]).unwrap();
        tx.send(MessageKind::Binary, &[0; 40]).unwrap();
        assert_eq!(tx.send(MessageKind::Binary, &[0; 40]), Err(Error::Full));
        assert_eq!(tx.buffered(), 84);
        assert_eq!(tx.consume(85), Err(Error::InvalidArgument));
    }
}
