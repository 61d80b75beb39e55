//! A subscriber's side of publish/subscribe: its topics, and the published
//! frames waiting for its socket. A frame is shared by every subscriber (one
//! reference each, no copy) and written from where it lies, gathered with the
//! session's own output in one `sendmsg`, in the order things were sent.
//!
//! Order: each queued frame records how many bytes of session output were
//! queued before it (counted from the previous frame), so replies, pings and
//! closes interleave with published frames exactly as they were sent. A frame
//! published while the program sends a fragmented message waits for its last
//! fragment (a data frame cannot go in between); if the message is abandoned
//! (a close), such frames are dropped.
//!
//! TLS connections take the shared bytes too: they are encrypted from where
//! they lie, a record at a time, as the socket takes them (`secure.rs`).
//! Client-role connections cannot (each frame is masked with its own key):
//! they get a copy through their session, made only while the reactor is
//! under its memory budget and charged to it at once, so that a publish
//! makes no more copies than the budget holds.
//!
//! Memory: a shared frame is charged to the reactor's budget once, while any
//! subscriber of the reactor holds it (`Reactor::deliver_published`); the
//! last one to let it go gives the charge back. Backpressure: a subscriber
//! whose output (session output plus published frames) would pass its max
//! output is slow. The budget does not make subscribers of shared frames
//! slow: what they hold is bounded by their max output, and uploads filling
//! the budget must not silence rooms.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};
use std::rc::Rc;

use crate::proto::close_code::CloseCode;
use crate::proto::error::Error as SessionError;
use crate::proto::event::Message;
use crate::proto::role::Role;
use crate::proto::state::State;
use crate::runtime::connection::{Connection, Extra, Flags, Lifecycle};
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::ConnHandler;
use crate::runtime::reactor::Reactor;
use crate::runtime::stats::Bump;
use crate::runtime::topics::{Delivery, HeldFrame};
use crate::runtime::uring::{Outgoing, MAX_PIECES};

/// Buffers gathered into one `sendmsg`.
const MAX_GATHER: usize = 64;

/// A frame waiting for the socket.
#[derive(Debug)]
struct Queued {
    frame: Rc<HeldFrame>,
    written: usize,
    /// Session output bytes to write before it (after the frame ahead of it);
    /// `None`: all session output up to the end of the fragmented message
    /// being sent.
    after: Option<usize>,
}

/// A connection's subscriptions and published frames.
#[derive(Debug, Default)]
pub(super) struct Subscriber {
    topics: Vec<Rc<str>>,
    frames: VecDeque<Queued>,
    /// Frame bytes not yet written (counted in the output, against max output).
    bytes: usize,
    /// Sum of the `after` of the frames queued.
    session_ahead: usize,
    /// The program is sending a fragmented message.
    fragmenting: bool,
}

/// What a pass of writing published frames came to.
pub(super) enum PublishedFlush {
    /// Every frame is written (session output may remain).
    Done,
    /// The socket is full.
    Blocked,
    /// The connection ended.
    Failed,
}

impl<H: ConnHandler> Connection<H> {
    // ------------------------------------------------------------ subscriptions

    /// Subscribes to `topic` on this connection's reactor. Returns false if it
    /// was subscribed already. `State` when the connection is not running.
    pub fn subscribe(&self, topic: &str) -> Result<bool> {
        let (reactor, token) = self.registered().ok_or(Error::State)?;
        if self.lifecycle.get() != Lifecycle::Running {
            return Err(Error::State);
        }
        match reactor.topics().subscribe(topic, token.0 as u32) {
            Some(name) => {
                self.extra().subscriber.topics.push(name);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Returns whether it was subscribed.
    pub fn unsubscribe(&self, topic: &str) -> bool {
        let Some((reactor, token)) = self.registered() else {
            return false;
        };
        let removed = reactor.topics().unsubscribe(topic, token.0 as u32);
        if removed {
            self.extra().subscriber.topics.retain(|t| &**t != topic);
        }
        removed
    }

    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.with_extra(|e| e.subscriber.topics.iter().any(|t| &**t == topic))
            .unwrap_or(false)
    }

    /// How many topics it subscribes to.
    pub fn subscriptions(&self) -> usize {
        self.with_extra(|e| e.subscriber.topics.len()).unwrap_or(0)
    }

    /// Leaving the reactor: every subscription ends.
    pub(super) fn leave_topics(&self, reactor: &Reactor, token: u32) {
        let topics = match self.extra.borrow_mut().as_mut() {
            Some(extra) => std::mem::take(&mut extra.subscriber.topics),
            None => return,
        };
        for topic in topics {
            reactor.topics().unsubscribe(&topic, token);
        }
    }

    /// Publishes to `topic` on this connection's reactor (and its group), to
    /// every subscriber but this connection. Returns how many subscribers of
    /// this reactor got it.
    pub fn publish_to_others(&self, topic: &str, message: Message<'_>) -> Result<usize> {
        let (reactor, token) = self.registered().ok_or(Error::State)?;
        Ok(reactor.publish(topic, message, Some(token.0 as u32)))
    }

    // ------------------------------------------------------------ delivery

    /// Queues a published frame, or says why not.
    pub(super) fn deliver_published(&self, frame: &Rc<HeldFrame>) -> Delivery {
        if self.has(Flags::RELEASED) || self.established().is_err() {
            return Delivery::NotOpen;
        }
        let (role, buffered, max_output) = match self.session() {
            Some(s) => (s.role(), s.buffered(), s.config().max_output()),
            None => return Delivery::NotOpen,
        };
        if role == Role::Client {
            return self.deliver_copy(frame);
        }
        let len = frame.frame().len();
        let total = buffered + self.published_bytes();
        if total > 0 && total.saturating_add(len) > max_output {
            self.set(Flags::DRAIN_WANTED);
            return Delivery::Full;
        }
        {
            let mut extra = self.extra();
            let s = &mut extra.subscriber;
            let after = if s.fragmenting {
                None
            } else {
                let after = buffered.saturating_sub(s.session_ahead);
                s.session_ahead += after;
                Some(after)
            };
            s.frames.push_back(Queued {
                frame: Rc::clone(frame),
                written: 0,
                after,
            });
            s.bytes += len;
        }
        self.schedule_flush();
        if let Some(c) = self.counters() {
            c.published_deliveries.add(1);
            c.messages_out.add(1);
            c.payload_bytes_out.add(frame.message().as_bytes().len() as u64);
        }
        Delivery::Queued
    }

    /// A copy of the message through the session (masked with this
    /// connection's key), made only under the memory budget and charged at
    /// once: a publish cannot make more copies than the budget holds.
    fn deliver_copy(&self, frame: &HeldFrame) -> Delivery {
        if self.reactor().is_some_and(|r| r.budget().exceeded()) {
            self.set(Flags::DRAIN_WANTED);
            return Delivery::Full;
        }
        match self.send_message(frame.message()) {
            Ok(()) => {
                self.account();
                if let Some(c) = self.counters() {
                    c.published_deliveries.add(1);
                }
                Delivery::Queued
            }
            Err(Error::Session(SessionError::Full)) => Delivery::Full,
            Err(_) => Delivery::NotOpen,
        }
    }

    /// Lets go of a queued frame: the last subscriber of the reactor to hold
    /// it gives back the charge. Returns the bytes to give back.
    fn let_go(queued: Queued) -> usize {
        if Rc::strong_count(&queued.frame) == 1 {
            queued.frame.frame().len()
        } else {
            0
        }
    }

    /// Published bytes waiting for the socket.
    pub(super) fn published_bytes(&self) -> usize {
        self.with_extra(|e| e.subscriber.bytes).unwrap_or(0)
    }

    pub(super) fn has_published(&self) -> bool {
        self.with_extra(|e| !e.subscriber.frames.is_empty()).unwrap_or(false)
    }

    /// The program sent a fragment: frames published meanwhile wait for the
    /// last one, then go after it.
    pub(super) fn fragment_sent(&self, fin: bool) {
        let buffered = self.session().map_or(0, |s| s.buffered());
        let mut extra = self.extra.borrow_mut();
        let s = match extra.as_mut() {
            Some(extra) => &mut extra.subscriber,
            None if fin => return,
            None => &mut extra.get_or_insert_with(Box::default).subscriber,
        };
        s.fragmenting = !fin;
        if fin {
            for queued in s.frames.iter_mut().filter(|q| q.after.is_none()) {
                let after = buffered.saturating_sub(s.session_ahead);
                s.session_ahead += after;
                queued.after = Some(after);
            }
        }
    }

    /// A close is under way: frames waiting for the end of an abandoned
    /// fragmented message will never be sent.
    pub(super) fn drop_waiting_frames(&self) {
        let released = match self.extra.borrow_mut().as_mut() {
            Some(extra) => {
                let s = &mut extra.subscriber;
                s.fragmenting = false;
                let (kept, dropped): (VecDeque<Queued>, VecDeque<Queued>) = std::mem::take(&mut s.frames)
                    .into_iter()
                    .partition(|q| q.after.is_some());
                s.frames = kept;
                s.bytes = s.frames.iter().map(|q| q.frame.frame().len() - q.written).sum();
                dropped.into_iter().map(Self::let_go).sum::<usize>()
            }
            None => return,
        };
        self.charge(-(released as isize));
    }

    /// The socket is gone: the frames are dropped and their charge given back.
    pub(super) fn clear_published(&self) {
        let released = match self.extra.borrow_mut().as_mut() {
            Some(extra) => {
                let s = &mut extra.subscriber;
                s.session_ahead = 0;
                s.fragmenting = false;
                s.bytes = 0;
                std::mem::take(&mut s.frames)
                    .into_iter()
                    .map(Self::let_go)
                    .sum::<usize>()
            }
            None => return,
        };
        self.charge(-(released as isize));
    }

    // ------------------------------------------------------------ writing

    /// Writes the frames, with the session output around them, in order, until
    /// none is left or the socket is full.
    pub(super) fn flush_published(&self) -> PublishedFlush {
        self.drop_frames_if_closing();
        while self.has_published() {
            let written = {
                let Some(session) = self.session() else {
                    return PublishedFlush::Done;
                };
                let pending = session.pending();
                let extra = self.extra.borrow();
                let Some(extra) = extra.as_ref() else {
                    return PublishedFlush::Done;
                };
                let mut gather: [IoSlice<'_>; MAX_GATHER] = [IoSlice::new(&[]); MAX_GATHER];
                let count = gather_output(&pending, &extra.subscriber.frames, &mut gather);
                if count == 0 {
                    return PublishedFlush::Done;
                }
                self.socket().write_vectored(&gather[..count])
            };
            match written {
                Ok(n) => {
                    if let Some(c) = self.counters() {
                        c.wire_bytes_out.add(n as u64);
                    }
                    self.consume_output(n)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return PublishedFlush::Blocked,
                Err(_) => {
                    self.finish(CloseCode::ABNORMAL.0, "write failed", Some(Error::Io("write")));
                    return PublishedFlush::Failed;
                }
            }
        }
        PublishedFlush::Done
    }

    /// Once a close is under way, frames that wait for the end of a
    /// fragmented message will never go.
    pub(super) fn drop_frames_if_closing(&self) {
        if !self.state().is_some_and(|s| s == State::Open) || self.has(Flags::CLOSING) {
            self.drop_waiting_frames();
        }
    }

    /// TLS: hands the session output and the frames, in order, to the TLS
    /// stream, which encrypts what it takes (up to its buffer limit: one
    /// turn's records at most); what it took counts as written. Returns how
    /// many bytes it took.
    pub(super) fn encrypt_published(&self) -> usize {
        let taken = {
            let Some(session) = self.session() else { return 0 };
            let pending = session.pending();
            let mut extra = self.extra.borrow_mut();
            let Some(extra) = extra.as_deref_mut() else { return 0 };
            let Extra { tls, subscriber, .. } = extra;
            let Some(tls) = tls.as_deref_mut() else { return 0 };
            let mut gather: [IoSlice<'_>; MAX_GATHER] = [IoSlice::new(&[]); MAX_GATHER];
            let count = gather_output(&pending, &subscriber.frames, &mut gather);
            let mut taken = 0;
            for slice in &gather[..count] {
                let n = tls.write_plaintext(slice);
                taken += n;
                if n < slice.len() {
                    break;
                }
            }
            taken
        };
        self.consume_output(taken);
        taken
    }

    /// `n` bytes of gathered output were written: session bytes and frames, in
    /// the order `gather_output` laid them out.
    fn consume_output(&self, mut n: usize) {
        let mut released = 0;
        {
            let Some(session) = self.session() else { return };
            let mut extra = self.extra.borrow_mut();
            let Some(extra) = extra.as_mut() else { return };
            let s = &mut extra.subscriber;
            while n > 0 {
                let ahead = match s.frames.front() {
                    Some(Queued { after: Some(a), .. }) => *a,
                    _ => usize::MAX,
                };
                let from_session = n.min(ahead).min(session.buffered());
                if from_session > 0 {
                    session.consume_keeping(from_session).expect("at most what is pending");
                    n -= from_session;
                    if let Some(Queued { after: Some(a), .. }) = s.frames.front_mut() {
                        *a -= from_session;
                        s.session_ahead -= from_session;
                    }
                }
                let Some(front) = s.frames.front_mut() else { break };
                if n == 0 || front.after != Some(0) {
                    break;
                }
                let len = front.frame.frame().len();
                let from_frame = n.min(len - front.written);
                front.written += from_frame;
                n -= from_frame;
                s.bytes -= from_frame;
                if front.written == len {
                    released += s.frames.pop_front().map_or(0, Self::let_go);
                }
            }
        }
        self.charge(-(released as isize));
    }
}

/// Lays out, in order, the session output and the frames after it: session
/// bytes up to the first frame, the frame, the session bytes up to the next…
/// Returns how many buffers it filled.
fn gather_output<'a>(pending: &'a [u8], frames: &'a VecDeque<Queued>, gather: &mut [IoSlice<'a>]) -> usize {
    let capacity = gather.len();
    let mut count = 0;
    let mut push = |slice: &'a [u8]| {
        if !slice.is_empty() {
            gather[count] = IoSlice::new(slice);
            count += 1;
        }
        count
    };
    let mut used = 0;
    let mut pos = 0;
    let mut all_frames = true;
    for queued in frames {
        if used + 2 > capacity {
            all_frames = false;
            break;
        }
        let Some(after) = queued.after else {
            // Everything the session holds goes before it.
            break;
        };
        let end = (pos + after).min(pending.len());
        push(&pending[pos..end]);
        pos = end;
        used = push(&queued.frame.frame()[queued.written..]);
    }
    if all_frames && used < capacity {
        used = push(&pending[pos..]);
    }
    used
}

impl<H: ConnHandler> Connection<H> {
    /// The io_uring transport: moves the session's output and the frames due
    /// with it into one send, laid out as `gather_output` does. Frames waiting
    /// for the end of a fragmented message stay queued; so do frames past
    /// the send's limit of pieces, with the session bytes due before them
    /// (given back to the session).
    pub(super) fn take_output_with_frames(&self) -> Option<Outgoing> {
        if !self.state().is_some_and(|s| s == State::Open) || self.has(Flags::CLOSING) {
            self.drop_waiting_frames();
        }
        let session = self.session()?;
        let (buffer, start) = session.take_output().ok()?.unwrap_or_default();
        let len = buffer.len();
        let mut output = Outgoing::new(buffer);
        let mut pos = start;
        let mut all_due = true;
        {
            let mut extra = self.extra.borrow_mut();
            let s = &mut extra.as_mut()?.subscriber;
            while let Some(Queued { after: Some(after), .. }) = s.frames.front() {
                if output.pieces() + 2 > MAX_PIECES {
                    all_due = false;
                    break;
                }
                let end = (pos + after).min(len);
                output.add_buffer(pos, end);
                pos = end;
                s.session_ahead -= after;
                let queued = s.frames.pop_front().expect("a front frame");
                output.add_frame(queued.frame, queued.written);
            }
        }
        if all_due {
            output.add_buffer(pos, len);
            pos = len;
        }
        let rest = output.buffer_from(pos);
        if !rest.is_empty() {
            let _ = session.give_back_output(rest);
        }
        output.session_bytes = pos - start;
        (!output.is_empty()).then_some(output)
    }

    /// The ring wrote `output`: its published bytes are no longer waiting,
    /// and its frames are let go (the last holder gives back the charge).
    #[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
    pub(super) fn published_written(&self, output: &mut Outgoing) {
        if output.published_bytes == 0 {
            return;
        }
        if let Some(extra) = self.extra.borrow_mut().as_mut() {
            extra.subscriber.bytes -= output.published_bytes.min(extra.subscriber.bytes);
        }
        self.charge(-(output.let_go_frames() as isize));
    }
}
