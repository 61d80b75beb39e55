//! The output side of a session: frames are encoded straight into one output
//! buffer that the program drains (`pending` / `consume`). The session decides
//! what may be sent (see `Session`); this part only encodes and keeps the bytes.

use crate::proto::close_code::CloseCode;
use crate::proto::deflate::deflater::Deflater;
use crate::proto::deflate::{Agreed, DeflateConfig};
use crate::proto::error::{Error, Result};
use crate::proto::event::MessageKind;
use crate::proto::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::proto::mask::extend_masked;
use crate::proto::role::Role;
use crate::proto::utf8::Utf8Validator;

/// Output buffers larger than this are given back to the allocator once drained,
/// so a burst does not pin memory on an idle connection.
const KEEP_CAPACITY: usize = 64 << 10;
/// A drained buffer up to this size stays with its sender (or the program's
/// pool, see `Sender::take_drained`) for the next output.
pub const SPARE_CAPACITY: usize = 4 << 20;
/// Server messages from this size on are written straight from the caller's
/// buffer when the socket takes them (see `Sender::send_direct`); smaller ones
/// are batched with the rest of the turn's output.
pub const DIRECT_SEND_MIN: usize = 64 << 10;

thread_local! {
    /// Where a message is compressed before it is framed (its length goes
    /// in the header first).
    static COMPRESSED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// RSV1: the message is compressed (permessage-deflate).
const RSV1: u8 = 0b100;

/// A fragmented message being sent.
#[derive(Debug)]
struct OutgoingFragments {
    kind: MessageKind,
    utf8: Utf8Validator,
}

/// What few senders hold, boxed so that the others pay one pointer for it.
#[derive(Debug, Default)]
struct Rare {
    /// A fragmented message being sent.
    fragments: Option<OutgoingFragments>,
    /// permessage-deflate with context takeover: this side's compressor,
    /// made at the first compressed message (and again after a trim).
    deflater: Option<Box<Deflater>>,
    /// Server: what the answer to an upgrade request waiting for the
    /// program's decision needs (kept here, where a decision taken inside
    /// the request's own event can reach it).
    answering: Option<Box<Answering>>,
}

/// What the 101 to a request being decided needs, and what was chosen.
#[derive(Debug, Default)]
pub(crate) struct Answering {
    /// The client's `Sec-WebSocket-Key`.
    pub key: Vec<u8>,
    pub deflate: Option<Agreed>,
    /// The first configured subprotocol the client offered.
    pub default_subprotocol: Option<String>,
    /// Every subprotocol the client offered.
    pub offered: Vec<String>,
    /// The subprotocol the 101 named, once accepted.
    pub chosen: Option<String>,
}

impl Answering {
    fn memory(&self) -> usize {
        std::mem::size_of::<Self>() + self.key.len() + self.offered.iter().map(|o| o.len() + 24).sum::<usize>()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Sender {
    out: Vec<u8>,
    /// 32 bits (a longer consumed head is dropped), so that `in_flight` fits
    /// beside it and the session does not grow.
    out_pos: u32,
    /// Bytes taken out with `take_output` and not yet written: still held,
    /// and counted against the output limit (saturating at 4 GiB, past any
    /// sane output limit).
    in_flight: u32,
    rare: Option<Box<Rare>>,
}

impl Sender {
    /// Bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.out[self.out_pos as usize..]
    }

    /// Number of bytes waiting to be written.
    #[inline]
    pub fn buffered(&self) -> usize {
        self.out.len() - self.out_pos as usize
    }

    /// Bytes taken out to be written and not written yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight as usize
    }

    /// Takes the output buffer whole, for a writer that needs the bytes to
    /// stay where they are until written (io_uring): the pending bytes are
    /// `buffer[start..]`. They count as in flight until `written_out`.
    pub fn take_output(&mut self) -> Option<(Vec<u8>, usize)> {
        if self.buffered() == 0 {
            return None;
        }
        self.in_flight = self
            .in_flight
            .saturating_add(u32::try_from(self.buffered()).unwrap_or(u32::MAX));
        let start = std::mem::take(&mut self.out_pos) as usize;
        Some((std::mem::take(&mut self.out), start))
    }

    /// Puts `bytes`, taken with `take_output` and not to be written yet,
    /// back in front of the output.
    pub fn give_back_output(&mut self, bytes: &[u8]) {
        self.written_out(bytes.len());
        let pos = self.out_pos as usize;
        self.buffer().splice(pos..pos, bytes.iter().copied());
    }

    /// `n` bytes taken with `take_output` were written (or will never be).
    pub fn written_out(&mut self, n: usize) {
        self.in_flight = self.in_flight.saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Bytes held: the output buffer (its capacity: what is held, not what
    /// is in use), output taken out and not yet written, a fragmented
    /// send's state, a compressor.
    pub fn memory(&self) -> usize {
        self.out.capacity()
            + self.in_flight as usize
            + self.rare.as_deref().map_or(0, |rare| {
                std::mem::size_of::<Rare>()
                    + rare.deflater.as_ref().map_or(0, |d| d.memory())
                    + rare.answering.as_ref().map_or(0, |a| a.memory())
            })
    }

    /// Whether output waits: in the buffer, or taken out and not yet written.
    pub fn holds_output(&self) -> bool {
        self.buffered() > 0 || self.in_flight > 0
    }

    /// Takes the output buffer if it is drained and worth keeping, for the
    /// program's pool (a reactor keeps one for all its connections): a
    /// sender then holds no buffer between its busy turns.
    pub fn take_drained(&mut self) -> Option<Vec<u8>> {
        if self.out.capacity() == 0 || self.buffered() > 0 {
            return None;
        }
        self.out_pos = 0;
        self.out.clear();
        Some(std::mem::take(&mut self.out))
    }

    /// Gives the sender an empty buffer for its next output, if it holds none
    /// (else `buffer` is given back).
    pub fn lend_buffer(&mut self, buffer: Vec<u8>) -> Option<Vec<u8>> {
        if self.out.capacity() > 0 {
            return Some(buffer);
        }
        self.out = buffer;
        self.out.clear();
        self.out_pos = 0;
        None
    }

    /// Whether a fragmented message is being sent (its last fragment not yet).
    pub fn sending_fragments(&self) -> bool {
        self.fragments().is_some()
    }

    #[inline(always)]
    fn fragments(&self) -> Option<&OutgoingFragments> {
        self.rare.as_deref()?.fragments.as_ref()
    }

    /// Sets the fragmented send in progress, dropping the box once it holds nothing.
    fn set_fragments(&mut self, fragments: Option<OutgoingFragments>) {
        if fragments.is_none() && self.rare.is_none() {
            return;
        }
        self.rare.get_or_insert_with(Box::default).fragments = fragments;
        self.drop_rare_if_empty();
    }

    /// The rare part goes once it holds nothing.
    fn drop_rare_if_empty(&mut self) {
        if self
            .rare
            .as_deref()
            .is_some_and(|r| r.fragments.is_none() && r.deflater.is_none() && r.answering.is_none())
        {
            self.rare = None;
        }
    }

    /// Server: the context of the answer to an upgrade request being decided.
    pub(crate) fn set_answering(&mut self, answering: Option<Box<Answering>>) {
        if answering.is_none() && self.rare.is_none() {
            return;
        }
        self.rare.get_or_insert_with(Box::default).answering = answering;
        self.drop_rare_if_empty();
    }

    pub(crate) fn answering(&mut self) -> Option<&mut Answering> {
        self.rare.as_deref_mut()?.answering.as_deref_mut()
    }

    /// Takes the answering context away (the decision was announced).
    pub(crate) fn take_answering(&mut self) -> Option<Box<Answering>> {
        let answering = self.rare.as_deref_mut()?.answering.take();
        self.drop_rare_if_empty();
        answering
    }

    /// Whether a compressor is held.
    pub fn holds_deflater(&self) -> bool {
        self.rare.as_ref().is_some_and(|rare| rare.deflater.is_some())
    }

    /// Drops the compressor: a sender may always stop referring to earlier
    /// messages (RFC 7692 §7.2.1), so the next compressed message simply
    /// starts a new stream, which any peer decodes. Fragmented messages are
    /// sent uncompressed, so none is ever cut by this.
    pub fn trim_compression(&mut self) {
        if let Some(rare) = self.rare.as_deref_mut() {
            rare.deflater = None;
            self.drop_rare_if_empty();
        }
    }

    /// Marks `n` pending bytes as written.
    pub fn consume(&mut self, n: usize) -> Result<()> {
        if n > self.buffered() {
            return Err(Error::InvalidArgument);
        }
        let pos = self.out_pos as usize + n;
        self.out_pos = pos as u32;
        if pos == self.out.len() {
            // Drained: the buffer stays for the next output (or for the
            // program's pool, `take_drained`), unless a burst made it large.
            self.out_pos = 0;
            if self.out.capacity() > SPARE_CAPACITY {
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
        } else if (pos >= KEEP_CAPACITY && pos * 2 >= self.out.len()) || pos > u32::MAX as usize {
            self.out.drain(..pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Whether output reached the high-water mark, half the limit: the program
    /// should stop reading, so that the other half can take the replies to what
    /// it already read and no send of those replies fails.
    #[inline]
    pub fn is_full(&self, max_output: usize) -> bool {
        self.buffered() + self.in_flight() >= max_output / 2
    }

    /// Whether a whole message may be queued: no fragmented message in
    /// progress, room in the output.
    #[inline(always)]
    pub fn check_message(&self, data: &[u8], max_output: usize) -> Result<()> {
        if self.fragments().is_some() {
            return Err(Error::InvalidArgument);
        }
        self.check_room(data.len(), max_output)
    }

    /// Queues a whole message checked with `check_message`.
    #[inline(always)]
    pub fn write_message(&mut self, role: Role, kind: MessageKind, data: &[u8]) {
        match role {
            Role::Server => self.write_unmasked(0x80 | opcode_of(kind) as u8, data),
            Role::Client => self.write_frame(role, true, 0, opcode_of(kind), data),
        }
    }

    /// Queues a whole message checked with `check_message`, compressed as
    /// agreed. Without context takeover a message that would not shrink is
    /// sent as it is; with it, the peer's window must see every compressed byte.
    /// Returns whether it went compressed.
    pub fn write_compressed(
        &mut self,
        role: Role,
        kind: MessageKind,
        data: &[u8],
        agreed: &Agreed,
        config: &DeflateConfig,
    ) -> bool {
        let bits = agreed.window_bits(role);
        let (level, mem_level) = (config.level(), config.mem_level());
        let mut packed = COMPRESSED.with(|c| std::mem::take(&mut *c.borrow_mut()));
        packed.clear();
        let mut compressed = true;
        if agreed.no_context_takeover(role) {
            Deflater::compress_alone(bits, level, mem_level, data, &mut packed);
            if packed.len() >= data.len() {
                self.write_message(role, kind, data);
                compressed = false;
            } else {
                self.write_frame(role, true, RSV1, opcode_of(kind), &packed);
            }
        } else {
            self.rare
                .get_or_insert_with(Box::default)
                .deflater
                .get_or_insert_with(|| Deflater::new(bits, level, mem_level))
                .compress(data, &mut packed);
            self.write_frame(role, true, RSV1, opcode_of(kind), &packed);
        }
        if packed.capacity() <= SPARE_CAPACITY {
            COMPRESSED.with(|c| *c.borrow_mut() = packed);
        }
        compressed
    }

    /// Queues a large server message checked with `check_message`, offering it
    /// to `write` straight from `data` first: `write(pending, data)` writes what
    /// output waits and then the message (one gathered write; `pending` ends
    /// with the frame's header) and returns how many bytes it took. Only what it
    /// did not take is copied into the output buffer. A failed write takes
    /// nothing: the output stays queued for the next write, which reports the
    /// failure.
    pub fn write_direct(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        write: impl FnOnce(&[u8], &[u8]) -> std::io::Result<usize>,
    ) {
        // Server role: no mask.
        self.write_header(Role::Server, true, 0, opcode_of(kind), data.len(), 0);
        let total = self.buffered() + data.len();
        let written = write(self.pending(), data).unwrap_or(0).min(total);
        let from_out = written.min(self.buffered());
        self.consume(from_out).expect("at most what is buffered");
        let rest = &data[written - from_out..];
        if !rest.is_empty() {
            self.buffer().extend_from_slice(rest);
        }
    }

    /// Queues one fragment of a message; the first fragment's `kind` is the
    /// message's, later ones must repeat it. `fin` ends the message. Text is
    /// validated across fragments; an invalid fragment is refused and queues nothing.
    pub fn send_fragment(
        &mut self,
        role: Role,
        kind: MessageKind,
        data: &[u8],
        fin: bool,
        max_output: usize,
    ) -> Result<()> {
        let continuing = match self.fragments() {
            Some(f) if f.kind != kind => return Err(Error::InvalidArgument),
            Some(_) => true,
            None => false,
        };
        let mut utf8 = self.fragments().map(|f| f.utf8.clone()).unwrap_or_default();
        if kind == MessageKind::Text {
            utf8.feed(data).map_err(|_| Error::InvalidArgument)?;
            if fin {
                utf8.finish().map_err(|_| Error::InvalidArgument)?;
            }
        }
        self.check_room(data.len(), max_output)?;
        self.set_fragments((!fin).then_some(OutgoingFragments { kind, utf8 }));
        let opcode = if continuing {
            OpCode::Continuation
        } else {
            opcode_of(kind)
        };
        self.write_frame(role, fin, 0, opcode, data);
        Ok(())
    }

    /// Queues a ping or pong.
    pub fn send_control(&mut self, role: Role, opcode: OpCode, data: &[u8], max_output: usize) -> Result<()> {
        if data.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::InvalidArgument);
        }
        self.check_room(data.len(), max_output)?;
        self.write_frame(role, true, 0, opcode, data);
        Ok(())
    }

    /// Answers a ping. Dropped when output is full: a peer that pings faster than
    /// it reads gets a pong for the latest pings only (RFC 6455 §5.5.3 allows it).
    pub fn auto_pong(&mut self, role: Role, data: &[u8], max_output: usize) {
        if self.check_room(data.len(), max_output).is_ok() {
            self.write_frame(role, true, 0, OpCode::Pong, data);
        }
    }

    /// Whether `close(code, reason)` may be sent: `code` valid on the wire, or
    /// 1005 for a close frame without a status; `reason` at most 123 bytes
    /// (and only with a code).
    pub fn check_close(code: u16, reason: &str) -> Result<CloseCode> {
        let code = CloseCode(code);
        let no_status = code == CloseCode::NO_STATUS;
        if !(no_status || code.is_valid_on_wire())
            || reason.len() > MAX_CONTROL_PAYLOAD - 2
            || (no_status && !reason.is_empty())
        {
            return Err(Error::InvalidArgument);
        }
        Ok(code)
    }

    /// Queues a close frame (1005: none); a fragmented message in progress is
    /// abandoned.
    pub fn queue_close(&mut self, role: Role, code: CloseCode, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = if code == CloseCode::NO_STATUS {
            0
        } else {
            payload[..2].copy_from_slice(&code.0.to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        };
        self.write_frame(role, true, 0, OpCode::Close, &payload[..len]);
        self.set_fragments(None);
    }

    /// Nothing more will be sent: what is held for sending goes.
    pub fn end(&mut self) {
        self.rare = None;
    }

    /// A send is refused when output is waiting and this frame would take it over
    /// the limit; a frame larger than the limit is still accepted into an empty buffer.
    #[inline(always)]
    pub fn check_room(&self, payload_len: usize, max_output: usize) -> Result<()> {
        let buffered = self.buffered() + self.in_flight();
        let frame_len = payload_len.saturating_add(MAX_HEADER_LEN);
        if buffered > 0 && buffered.saturating_add(frame_len) > max_output {
            return Err(Error::Full);
        }
        Ok(())
    }

    fn write_frame(&mut self, role: Role, fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) {
        if role == Role::Server {
            let first = (fin as u8) << 7 | (rsv & 0x7) << 4 | opcode as u8;
            return self.write_unmasked(first, payload);
        }
        let mask = self.write_header(role, fin, rsv, opcode, payload.len(), payload.len());
        match mask {
            Some(key) => extend_masked(&mut self.out, payload, key),
            None => self.out.extend_from_slice(payload),
        }
    }

    /// Queues an unmasked frame (server role) whose header starts with
    /// `first`: one reservation, the header's bytes stored directly.
    #[inline(always)]
    fn write_unmasked(&mut self, first: u8, payload: &[u8]) {
        let len = payload.len();
        let out = self.buffer();
        out.reserve(MAX_HEADER_LEN + len);
        // Bytes pushed one by one: a copy of a few bytes through
        // `extend_from_slice` is a call (and one to `memcpy`).
        out.push(first);
        if len < 126 {
            out.push(len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            let [hi, lo] = len.to_be_bytes();
            out.push(126);
            out.push(hi);
            out.push(lo);
        } else {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        // The payload: one `memcpy` (`extend_from_slice` adds a call around it).
        let start = out.len();
        // SAFETY: `reserve` made room for the header and `len` more bytes,
        // so `start + len` is within the capacity; the copy initializes those
        // bytes (from a slice that cannot overlap the buffer: it is borrowed
        // while the buffer is borrowed mutably) before `set_len` counts them.
        unsafe {
            std::ptr::copy_nonoverlapping(payload.as_ptr(), out.as_mut_ptr().add(start), len);
            out.set_len(start + len);
        }
    }

    /// Queues a frame header (masked with a fresh key in the client role),
    /// with room reserved for `room` more bytes; returns the key.
    fn write_header(
        &mut self,
        role: Role,
        fin: bool,
        rsv: u8,
        opcode: OpCode,
        payload_len: usize,
        room: usize,
    ) -> Option<[u8; 4]> {
        let mask = match role {
            Role::Client => Some(crate::proto::random::mask_key()),
            Role::Server => None,
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: payload_len as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        let out = self.buffer();
        out.reserve(MAX_HEADER_LEN + room);
        // All 14 bytes, cut back to the header's length: a copy of known
        // size (two stores) instead of a call to copy a few bytes.
        let start = out.len();
        out.extend_from_slice(&head);
        out.truncate(start + head_len);
        mask
    }

    /// The output buffer (for handshake and HTTP bytes).
    #[inline(always)]
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.out
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

    /// Output taken out to be written (io_uring) still counts: against the
    /// limit, as memory, and not as pending; what is given back goes first.
    #[test]
    fn output_in_flight_counts_until_written() {
        let mut tx = Sender::default();
        tx.write_message(Role::Server, MessageKind::Binary, &[7; 100]);
        tx.consume(2).unwrap();
        let (buffer, start) = tx.take_output().expect("pending output");
        assert_eq!((buffer.len() - start, start), (100, 2));
        assert_eq!((tx.buffered(), tx.in_flight(), tx.memory()), (0, 100, 100));
        assert!(tx.take_output().is_none(), "nothing pending");
        // 100 in flight: a 400-byte limit is half full; room is checked with them.
        assert!(tx.is_full(200) && !tx.is_full(202));
        tx.write_message(Role::Server, MessageKind::Binary, b"next");
        assert_eq!(tx.check_room(200, 300), Err(Error::Full));
        // The last 10 bytes taken are not sent now: they go back in front.
        tx.give_back_output(&buffer[buffer.len() - 10..]);
        assert_eq!((tx.in_flight(), tx.buffered()), (90, 16));
        assert_eq!(&tx.pending()[..10], &buffer[buffer.len() - 10..]);
        assert_eq!(&tx.pending()[10..12], &[0x82, 4]);
        tx.written_out(90);
        assert_eq!(tx.in_flight(), 0);
        // Only the buffer is held now: its capacity, at least the 16 bytes.
        assert!((16..100).contains(&tx.memory()), "{}", tx.memory());
        assert!(tx.take_drained().is_none(), "16 bytes wait");
        tx.consume(16).unwrap();
        let kept = tx.take_drained().expect("a drained buffer");
        assert_eq!((kept.len(), tx.memory(), tx.holds_output()), (0, 0, false));
        assert_eq!(tx.lend_buffer(buffer), None, "it held none");
        assert!(tx.lend_buffer(kept).is_some(), "it holds one");
    }
}
