//! The ring of one reactor: what each token has in the kernel (a receive, a
//! send, an accept), the turn's submission and wait, and the completions
//! handed to the reactor's objects.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::buffers::{self, Buffers};
use super::ops::{Kind, Op};
use super::outgoing::Outgoing;
use super::RingEvent;
use crate::runtime::reactor::Reactor;

/// Submission queue entries (a full queue is submitted early).
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries (the kernel keeps overflowing ones, as NODROP).
const CQ_ENTRIES: u32 = 8192;
/// IORING_RECVSEND_POLL_FIRST: wait for the socket before the first try.
const RECVSEND_POLL_FIRST: u16 = 1;
/// Token of the epoll instance's poll.
const EPOLL_TOKEN: u32 = u32::MAX;

/// A token's receive or accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Armed {
    #[default]
    No,
    Yes,
    /// Cancelled; its last completion has not come yet.
    Cancelling,
}

/// What a token has on the ring.
#[derive(Default)]
struct Slot {
    generation: u32,
    open: bool,
    fd: RawFd,
    listener: bool,
    armed: Armed,
    sending: Option<Box<Outgoing>>,
    /// The submission count when an entry naming `fd` was last queued: if no
    /// submission happened since, it must go before the fd is closed.
    queued_at: u32,
}

pub(crate) struct Driver {
    /// Dropped first: the kernel lets go of the buffers with the ring.
    ring: RefCell<IoUring>,
    /// Dropped by hand, once the kernel let go of them (see `drop`).
    buffers: ManuallyDrop<Buffers>,
    slots: RefCell<Vec<Slot>>,
    /// Sends of closed connections, owned until their completion (keyed by
    /// their user data).
    orphans: RefCell<Vec<(u64, Box<Outgoing>)>>,
    /// The completions being handled, taken one at a time: those a
    /// handler's panic left are handled first at the next turn.
    batch: RefCell<VecDeque<(u64, i32, u32)>>,
    epoll_fd: RawFd,
    epoll_armed: Cell<bool>,
    /// Submissions so far (wrapping).
    submits: Cell<u32>,
    /// Operations whose last completion has not come.
    in_kernel: Cell<usize>,
}

/// Whether the running kernel has what the driver uses: multishot receive
/// (6.0). Buffer rings, the wait's timeout and the opcodes are checked on
/// the ring itself.
fn kernel_is_recent() -> bool {
    // SAFETY: uname fills the struct it is given.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::uname(&mut name) } != 0 {
        return false;
    }
    // "6.18.0-…": the digits before the first dot.
    let major = name
        .release
        .iter()
        .map(|&c| c as u8)
        .take_while(u8::is_ascii_digit)
        .fold(0u32, |n, d| n.saturating_mul(10).saturating_add(u32::from(d - b'0')));
    major >= 6
}

impl Driver {
    /// A ring for a reactor whose epoll instance is `epoll_fd`, or why not
    /// (the reactor then uses epoll alone).
    pub(crate) fn new(epoll_fd: RawFd) -> io::Result<Driver> {
        if !kernel_is_recent() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "kernel older than 6.0"));
        }
        let ring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(SQ_ENTRIES)
            .or_else(|_| IoUring::builder().setup_cqsize(CQ_ENTRIES).build(SQ_ENTRIES))?;
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without EXT_ARG or NODROP",
            ));
        }
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        let needed = [
            opcode::RecvMulti::CODE,
            opcode::Send::CODE,
            opcode::SendMsg::CODE,
            opcode::AcceptMulti::CODE,
            opcode::PollAdd::CODE,
            opcode::AsyncCancel::CODE,
        ];
        if !needed.iter().all(|&code| probe.is_supported(code)) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring opcodes missing"));
        }
        let buffers = Buffers::register(&ring)?;
        Ok(Driver {
            ring: RefCell::new(ring),
            buffers: ManuallyDrop::new(buffers),
            slots: RefCell::new(Vec::new()),
            orphans: RefCell::new(Vec::new()),
            batch: RefCell::new(VecDeque::new()),
            epoll_fd,
            epoll_armed: Cell::new(false),
            submits: Cell::new(0),
            in_kernel: Cell::new(0),
        })
    }

    // ------------------------------------------------------------ entries

    /// Queues `entry` (submitting the queue first when it is full).
    fn push(&self, entry: &squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        loop {
            // SAFETY: every entry names memory that lives until its
            // completion: the buffers of an `Outgoing` kept in a slot or
            // among the orphans, the msghdr in its box, the buffer ring.
            if unsafe { ring.submission().push(entry) }.is_ok() {
                self.in_kernel.set(self.in_kernel.get() + 1);
                return;
            }
            // Full: what is queued goes now.
            if ring.submit().is_ok() {
                self.submits.set(self.submits.get().wrapping_add(1));
            }
        }
    }

    fn with_slot<R>(&self, token: u32, f: impl FnOnce(&mut Slot) -> R) -> R {
        let mut slots = self.slots.borrow_mut();
        let index = token as usize;
        if slots.len() <= index {
            slots.resize_with(index + 1, Slot::default);
        }
        f(&mut slots[index])
    }

    /// Queues an entry of `token`'s fd.
    fn push_for(&self, token: u32, entry: squeue::Entry) {
        self.with_slot(token, |s| s.queued_at = self.submits.get());
        self.push(&entry);
    }

    fn op(&self, kind: Kind, token: u32) -> Op {
        Op::new(kind, token, self.with_slot(token, |s| s.generation))
    }

    // ------------------------------------------------------------ objects

    /// `token` is a connection on socket `fd` from now on.
    pub(crate) fn open(&self, token: u32, fd: RawFd) {
        self.with_slot(token, |s| {
            debug_assert!(!s.open, "a token opened twice");
            s.open = true;
            s.fd = fd;
            s.listener = false;
            s.armed = Armed::No;
        });
    }

    /// `token` is a listener on `fd`: accepts from now on.
    pub(crate) fn listen(&self, token: u32, fd: RawFd) {
        self.open(token, fd);
        self.with_slot(token, |s| s.listener = true);
        self.arm(token, false);
    }

    /// Arms the multishot receive (or accept) of `token` unless it is.
    /// Returns false while a cancelled one has not ended yet. `once`: a
    /// receive of one buffer only (armed again after it), so that a
    /// connection the memory budget may stop takes at most that much.
    pub(crate) fn arm(&self, token: u32, once: bool) -> bool {
        let (fd, listener) = match self.with_slot(token, |s| (s.open && s.armed == Armed::No, s.fd, s.listener)) {
            (true, fd, listener) => (fd, listener),
            _ => return self.with_slot(token, |s| s.armed == Armed::Yes),
        };
        let entry = if listener {
            opcode::AcceptMulti::new(types::Fd(fd))
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build()
                .user_data(self.op(Kind::Accept, token).user_data())
        } else {
            let user_data = self.op(Kind::Receive, token).user_data();
            match once {
                // Waiting for data first: a single receive on a socket with
                // none would fail with EAGAIN (multishot ones always wait).
                true => opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), buffers::SIZE as u32)
                    .buf_group(buffers::GROUP)
                    .ioprio(RECVSEND_POLL_FIRST)
                    .build()
                    .flags(squeue::Flags::BUFFER_SELECT)
                    .user_data(user_data),
                false => opcode::RecvMulti::new(types::Fd(fd), buffers::GROUP)
                    .build()
                    .user_data(user_data),
            }
        };
        self.with_slot(token, |s| s.armed = Armed::Yes);
        self.push_for(token, entry);
        true
    }

    /// Cancels the receive (or accept) of `token`, if armed.
    pub(crate) fn disarm(&self, token: u32) {
        if self.with_slot(token, |s| s.armed != Armed::Yes) {
            return;
        }
        let kind = if self.with_slot(token, |s| s.listener) {
            Kind::Accept
        } else {
            Kind::Receive
        };
        let target = self.op(kind, token).user_data();
        self.with_slot(token, |s| s.armed = Armed::Cancelling);
        self.push(
            &opcode::AsyncCancel::new(target)
                .build()
                .user_data(self.op(Kind::Cancel, token).user_data()),
        );
    }

    /// Whether `token` is open on the ring.
    pub(crate) fn is_open(&self, token: u32) -> bool {
        self.slots.borrow().get(token as usize).is_some_and(|s| s.open)
    }

    /// Whether output of `token` is being written.
    pub(crate) fn is_sending(&self, token: u32) -> bool {
        self.with_slot(token, |s| s.sending.is_some())
    }

    /// Hands `output` to the ring for `token` (one send at a time).
    pub(crate) fn send(&self, token: u32, mut output: Box<Outgoing>) {
        output.seal();
        let fd = self.with_slot(token, |s| s.fd);
        let entry = output
            .entry(fd, false)
            .user_data(self.op(Kind::Send, token).user_data());
        self.with_slot(token, |s| {
            debug_assert!(s.sending.is_none(), "one send at a time");
            s.sending = Some(output);
        });
        self.push_for(token, entry);
    }

    /// `token` is closing its fd: its receive is cancelled, a send in flight
    /// is kept until it completes, and completions still to come are not
    /// delivered (a new generation). Entries naming the fd that were not
    /// submitted yet are submitted now, before the fd can be closed (and its
    /// number reused); so is everything when `now` (outside a dispatch, or a
    /// listener whose port must close at once). Returns the TLS record bytes
    /// of a send left in flight (their charge to the budget goes back now).
    pub(crate) fn close(&self, token: u32, now: bool) -> usize {
        if !self.with_slot(token, |s| s.open) {
            return 0;
        }
        self.disarm(token);
        let send_data = self.op(Kind::Send, token).user_data();
        let (sending, unsubmitted) = self.with_slot(token, |s| {
            s.open = false;
            s.generation = s.generation.wrapping_add(1);
            let unsubmitted = s.queued_at == self.submits.get();
            s.armed = Armed::No;
            (s.sending.take(), unsubmitted)
        });
        let records = sending.as_ref().map_or(0, |s| s.records);
        if let Some(sending) = sending {
            self.orphans.borrow_mut().push((send_data, sending));
        }
        if unsubmitted || now {
            self.submit();
        }
        records
    }

    // ------------------------------------------------------------ the turn

    /// Submits what the turn queued (at the end of a dispatch: output leaves
    /// before `dispatch` returns).
    pub(crate) fn submit(&self) {
        let mut ring = self.ring.borrow_mut();
        if ring.submission().is_empty() {
            return;
        }
        // An error leaves the entries queued: the next turn submits them.
        if ring.submit().is_ok() {
            self.submits.set(self.submits.get().wrapping_add(1));
        }
    }

    /// One turn of the ring: submits what is queued and waits at most
    /// `timeout` (`None`: without limit) for completions, unless some are
    /// there already; then hands them out. Returns how many it handled.
    pub(crate) fn turn(&self, reactor: &Reactor, timeout: Option<Duration>) -> io::Result<usize> {
        if !self.epoll_armed.replace(true) {
            let entry = opcode::PollAdd::new(types::Fd(self.epoll_fd), libc::POLLIN as u32)
                .build()
                .user_data(Op::new(Kind::Epoll, EPOLL_TOKEN, 0).user_data());
            self.push(&entry);
        }
        self.wait(timeout)?;
        reactor.update_now();
        {
            let mut ring = self.ring.borrow_mut();
            self.batch.borrow_mut().extend(
                ring.completion()
                    .map(|c: cqueue::Entry| (c.user_data(), c.result(), c.flags())),
            );
        }
        // Events as epoll would count them: completions delivered to an
        // object (not cancellations, nor those of closed objects).
        let mut count = 0;
        let mut epoll_ready = false;
        loop {
            let next = self.batch.borrow_mut().pop_front();
            let Some((data, result, flags)) = next else { break };
            match Op::from_user_data(data) {
                Some(op) if op.kind == Kind::Epoll => {
                    self.done();
                    self.epoll_armed.set(false);
                    epoll_ready = true;
                }
                Some(op) => count += usize::from(self.complete(reactor, op, result, flags)),
                None => {}
            }
        }
        let mut handled = count;
        if epoll_ready {
            // An error here shows again at the next turn's poll.
            handled += reactor.poll_epoll(Some(Duration::ZERO)).unwrap_or(0);
        }
        Ok(handled)
    }

    fn wait(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        let ready = !ring.completion().is_empty() || !self.batch.borrow().is_empty();
        if ready && ring.submission().is_empty() {
            return Ok(());
        }
        let waited = if ready || timeout == Some(Duration::ZERO) {
            ring.submit()
        } else {
            match timeout {
                None => ring.submit_and_wait(1),
                Some(limit) => {
                    let limit = types::Timespec::from(limit);
                    ring.submitter()
                        .submit_with_args(1, &types::SubmitArgs::new().timespec(&limit))
                }
            }
        };
        self.submits.set(self.submits.get().wrapping_add(1));
        match waited {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// An operation's last completion came.
    fn done(&self) {
        self.in_kernel.set(self.in_kernel.get().saturating_sub(1));
    }

    /// Whether `op` is of the object that holds its token now.
    fn is_current(&self, op: Op) -> bool {
        self.with_slot(op.token, |s| {
            s.open && s.generation & super::ops::GENERATION_MASK == op.generation
        })
    }

    /// Hands a completion to its object; returns whether it was one of a
    /// live object's (an event).
    fn complete(&self, reactor: &Reactor, op: Op, result: i32, flags: u32) -> bool {
        let more = cqueue::more(flags);
        if !more {
            self.done();
        }
        let current = self.is_current(op);
        match op.kind {
            Kind::Receive => {
                if !more && current {
                    self.with_slot(op.token, |s| s.armed = Armed::No);
                }
                if !more && current && result > 0 {
                    // A data completion can be the last one too: it stopped
                    // for want of room and is armed again. Told before the
                    // data, so that a handler's panic unwinding through the
                    // data's delivery cannot leave the receive unarmed.
                    deliver(reactor, op.token, RingEvent::ReceiveEnded(-libc::ENOBUFS));
                }
                if let Some(id) = cqueue::buffer_select(flags) {
                    let len = result.max(0) as usize;
                    // Handed back also when a handler's panic unwinds.
                    let handed = Handed {
                        buffers: &self.buffers,
                        id,
                        len,
                        flags,
                    };
                    if len > 0 && current && self.is_current(op) {
                        // SAFETY: the kernel handed these bytes over with this
                        // completion; they go back only when `handed` drops.
                        let data = unsafe { handed.buffers.received(id, len) };
                        deliver(reactor, op.token, RingEvent::Received(data));
                    }
                    drop(handed);
                }
                if !more && current && result <= 0 && self.is_current(op) {
                    deliver(reactor, op.token, RingEvent::ReceiveEnded(result));
                }
            }
            Kind::Send => self.sent(reactor, op, result),
            Kind::Cancel | Kind::Epoll => return false,
            Kind::Accept => {
                if current && result != -libc::ECANCELED {
                    deliver(reactor, op.token, RingEvent::Accepted(result));
                } else if result >= 0 {
                    // SAFETY: a socket accepted for a listener that closed: ours to close.
                    unsafe { libc::close(result) };
                }
                if !more && self.is_current(op) {
                    self.with_slot(op.token, |s| s.armed = Armed::No);
                    // Accepting goes on (after EMFILE too: new connections
                    // wait in the backlog meanwhile).
                    self.arm(op.token, false);
                }
            }
        }
        current
    }

    fn sent(&self, reactor: &Reactor, op: Op, result: i32) {
        let data = op.user_data();
        if !self.is_current(op) {
            // A closed connection's send: its bytes may go now, and the
            // charge of frames it held last goes back to the budget.
            let orphan = {
                let mut orphans = self.orphans.borrow_mut();
                let found = orphans.iter().position(|(d, _)| *d == data);
                found.map(|i| orphans.swap_remove(i).1)
            };
            if let Some(mut orphan) = orphan {
                if reactor.budget().charge(-(orphan.let_go_frames() as isize)) {
                    reactor.wake_waiting();
                }
            }
            return;
        }
        let Some(mut output) = self.with_slot(op.token, |s| s.sending.take()) else {
            return;
        };
        let again = match result {
            n if n >= 0 => !output.advance(n as usize),
            e if e == -libc::EINTR => true,
            e if e == -libc::EAGAIN => {
                // The socket was full: the kernel waits for room this time.
                let fd = self.with_slot(op.token, |s| s.fd);
                let entry = output.entry(fd, true).user_data(data);
                self.with_slot(op.token, |s| s.sending = Some(output));
                return self.push_for(op.token, entry);
            }
            e => return deliver(reactor, op.token, RingEvent::Sent(Err(e))),
        };
        if again {
            let fd = self.with_slot(op.token, |s| s.fd);
            let entry = output.entry(fd, false).user_data(data);
            self.with_slot(op.token, |s| s.sending = Some(output));
            return self.push_for(op.token, entry);
        }
        deliver(reactor, op.token, RingEvent::Sent(Ok(output)));
    }
}

/// A completion's bytes in a provided buffer, handed back to the ring when
/// dropped (also when a handler's panic unwinds through their delivery).
struct Handed<'a> {
    buffers: &'a Buffers,
    id: u16,
    len: usize,
    flags: u32,
}

impl Drop for Handed<'_> {
    fn drop(&mut self) {
        self.buffers.done(self.id, self.len, self.flags);
    }
}

/// Hands `event` to the object at `token`.
fn deliver(reactor: &Reactor, token: u32, event: RingEvent<'_>) {
    if let Some(source) = reactor.source(token as usize) {
        source.on_ring(event);
    }
}

impl Drop for Driver {
    /// Nothing the kernel may still write or read is freed before it lets
    /// go: every operation is cancelled and its last completion awaited (a
    /// second at most; what is still out then is leaked, not freed).
    fn drop(&mut self) {
        let ring = self.ring.get_mut();
        let _ = ring.submit();
        let second = types::Timespec::from(Duration::from_secs(1));
        let _ = ring
            .submitter()
            .register_sync_cancel(Some(second), types::CancelBuilder::any().all());
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while self.in_kernel.get() > 0 && std::time::Instant::now() < deadline {
            let limit = types::Timespec::from(Duration::from_millis(10));
            let _ = ring
                .submitter()
                .submit_with_args(1, &types::SubmitArgs::new().timespec(&limit));
            for c in ring.completion() {
                if !cqueue::more(c.flags()) {
                    self.in_kernel.set(self.in_kernel.get().saturating_sub(1));
                }
            }
        }
        if self.in_kernel.get() > 0 {
            std::mem::forget(std::mem::take(self.orphans.get_mut()));
            for slot in self.slots.get_mut().drain(..) {
                std::mem::forget(slot.sending);
            }
            return;
        }
        let _ = ring.submitter().unregister_buf_ring(buffers::GROUP);
        // SAFETY: dropped once, here; nothing in the kernel refers to them.
        unsafe { ManuallyDrop::drop(&mut self.buffers) };
    }
}
