//! A connection's output while the ring writes it: the bytes must not move
//! until the send completes, so the send owns them: the session's output
//! buffer (moved out whole, the session going on with a spare one) or TLS
//! records, and the published frames gathered between its bytes (one
//! reference each, no copy). A partial send leaves the rest to be sent
//! first, from where it stopped.

use std::rc::Rc;

#[cfg(feature = "io-uring")]
use io_uring::{opcode, squeue, types};

use crate::runtime::topics::HeldFrame;

#[cfg(feature = "io-uring")]
/// A peer that went away must yield EPIPE, not kill the program with SIGPIPE.
const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL;
#[cfg(feature = "io-uring")]
/// IORING_RECVSEND_POLL_FIRST: wait for room before the first attempt.
const RECVSEND_POLL_FIRST: u16 = 1;
/// iovecs in one gathered send (the kernel's UIO_MAXIOV is 1024).
pub(crate) const MAX_PIECES: usize = 512;

/// Where a piece of the output lies.
enum Piece {
    /// `buffer[start..end]`.
    Buffer(usize, usize),
    /// `frames[index]`'s frame from `start`.
    Frame(usize, usize),
}

/// Output handed to the ring, owned until its send completes.
pub(crate) struct Outgoing {
    buffer: Vec<u8>,
    frames: Vec<Rc<HeldFrame>>,
    pieces: Vec<Piece>,
    /// Made from `pieces` once complete (the memory they point to is owned
    /// here and does not move).
    iov: Vec<libc::iovec>,
    #[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
    msg: Box<libc::msghdr>,
    /// The first iovec not completely sent.
    first: usize,
    total: usize,
    sent: usize,
    /// Bytes of it that came from the session's output (in flight there).
    pub session_bytes: usize,
    /// Bytes of published frames in it.
    pub published_bytes: usize,
    /// Bytes of TLS records in it, charged to the memory budget while the
    /// send owns them.
    pub records: usize,
}

impl Outgoing {
    /// Output made of pieces of `buffer` (added with `add_buffer`) and frames.
    pub(crate) fn new(buffer: Vec<u8>) -> Outgoing {
        Outgoing {
            buffer,
            frames: Vec::new(),
            pieces: Vec::new(),
            iov: Vec::new(),
            // SAFETY: an all-zero msghdr is valid (no address, no control data).
            msg: Box::new(unsafe { std::mem::zeroed() }),
            first: 0,
            total: 0,
            sent: 0,
            session_bytes: 0,
            published_bytes: 0,
            records: 0,
        }
    }

    /// Adds `buffer[start..end]` (nothing if empty).
    pub(crate) fn add_buffer(&mut self, start: usize, end: usize) {
        if start < end {
            self.pieces.push(Piece::Buffer(start, end));
            self.total += end - start;
        }
    }

    /// Adds a published frame from byte `start`.
    pub(crate) fn add_frame(&mut self, frame: Rc<HeldFrame>, start: usize) {
        let len = frame.frame().len().saturating_sub(start);
        if len > 0 {
            self.pieces.push(Piece::Frame(self.frames.len(), start));
            self.frames.push(frame);
            self.total += len;
            self.published_bytes += len;
        }
    }

    pub(crate) fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// Bytes in it.
    pub(crate) fn len(&self) -> usize {
        self.total
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Lets go of its frames once written (or abandoned): returns the bytes
    /// of those it held last, whose charge to the budget goes back (see
    /// `HeldFrame`).
    pub(crate) fn let_go_frames(&mut self) -> usize {
        std::mem::take(&mut self.frames)
            .into_iter()
            .filter(|f| Rc::strong_count(f) == 1)
            .map(|f| f.frame().len())
            .sum()
    }

    /// The buffer's bytes from `start`.
    pub(crate) fn buffer_from(&self, start: usize) -> &[u8] {
        &self.buffer[start.min(self.buffer.len())..]
    }

    /// The buffer, once sent (to be reused).
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buffer
    }

    /// Points the iovecs at the pieces (called once, before the first send).
    #[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
    pub(super) fn seal(&mut self) {
        let iov: Vec<libc::iovec> = self
            .pieces
            .iter()
            .map(|piece| {
                let bytes: &[u8] = match *piece {
                    Piece::Buffer(start, end) => &self.buffer[start..end],
                    Piece::Frame(index, start) => &self.frames[index].frame()[start..],
                };
                libc::iovec {
                    iov_base: bytes.as_ptr().cast_mut().cast(),
                    iov_len: bytes.len(),
                }
            })
            .collect();
        self.iov = iov;
    }

    /// `n` more bytes were sent; returns whether all are.
    #[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
    pub(super) fn advance(&mut self, mut n: usize) -> bool {
        self.sent += n;
        while n > 0 && self.first < self.iov.len() {
            let iov = &mut self.iov[self.first];
            let step = n.min(iov.iov_len);
            // SAFETY: moves within the same piece (step <= its length).
            iov.iov_base = unsafe { iov.iov_base.cast::<u8>().add(step) }.cast();
            iov.iov_len -= step;
            n -= step;
            if iov.iov_len == 0 {
                self.first += 1;
            }
        }
        self.sent >= self.total
    }

    #[cfg(feature = "io-uring")]
    /// The send of what remains, on `fd`: one buffer with SEND, several
    /// gathered with SENDMSG. `poll_first`: the last attempt found the
    /// socket full, so the kernel waits for room before trying.
    pub(super) fn entry(&mut self, fd: i32, poll_first: bool) -> squeue::Entry {
        let rest = &self.iov[self.first..];
        let ioprio = if poll_first { RECVSEND_POLL_FIRST } else { 0 };
        if rest.len() == 1 {
            return opcode::Send::new(types::Fd(fd), rest[0].iov_base.cast(), rest[0].iov_len as u32)
                .flags(SEND_FLAGS)
                .ioprio(ioprio)
                .build();
        }
        self.msg.msg_iov = rest.as_ptr().cast_mut();
        self.msg.msg_iovlen = rest.len() as _;
        opcode::SendMsg::new(types::Fd(fd), &*self.msg)
            .flags(SEND_FLAGS as u32)
            .ioprio(ioprio)
            .build()
    }
}
