//! The program's own file descriptors on the reactor: a database's or a
//! broker client's socket lives on the same loop as the connections. The
//! program says which events it wants on an fd; its callback runs while the fd
//! is ready for them (level-triggered, like poll(2): the reactor re-arms the
//! fd after each callback, so a callback that leaves data unread is called
//! again on the next turn).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::rc::Rc;

use mio::{Interest, Token};

use crate::runtime::error::{Error, Result};
use crate::runtime::reactor::{Reactor, Source};
use crate::runtime::timers::NO_TOKEN;

/// The fd is readable (or the peer hung up, or an error is pending).
pub const READABLE: u32 = 1;
/// The fd is writable (or an error is pending).
pub const WRITABLE: u32 = 2;

/// Called with the fd and the events it is ready for (`READABLE`, `WRITABLE`).
pub type WatchFn = Rc<dyn Fn(&Reactor, RawFd, u32)>;

/// One watched fd.
struct Watch {
    reactor: *const Reactor,
    fd: RawFd,
    token: Cell<u32>,
    /// The events wanted (0: none, the fd is then not in the poll).
    events: Cell<u32>,
    /// Whether the fd is in the poll.
    polled: Cell<bool>,
    /// Replaced, not mutated, so a callback may change its own watch.
    callback: RefCell<WatchFn>,
    removed: Cell<bool>,
}

fn interest(events: u32) -> Option<Interest> {
    match (events & READABLE != 0, events & WRITABLE != 0) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

impl Watch {
    fn reactor(&self) -> &Reactor {
        // SAFETY: a watch lives in its reactor's slots and map; the reactor is
        // pinned (it never moves) and frees it (or detaches it) before going away.
        unsafe { &*self.reactor }
    }

    /// Puts the fd in the poll with the wanted events (again: re-arming an
    /// edge-triggered registration makes it report readiness that remains).
    fn arm(&self) -> Result<()> {
        let registry = self.reactor().registry();
        let mut source = mio::unix::SourceFd(&self.fd);
        let token = Token(self.token.get() as usize);
        let done = match (interest(self.events.get()), self.polled.get()) {
            (Some(i), true) => registry.reregister(&mut source, token, i),
            (Some(i), false) => registry.register(&mut source, token, i),
            (None, true) => registry.deregister(&mut source),
            (None, false) => Ok(()),
        };
        done.map_err(|_| Error::Io("watching the file descriptor"))?;
        self.polled.set(self.events.get() != 0);
        Ok(())
    }

    fn disarm(&self) {
        if self.polled.replace(false) {
            let _ = self.reactor().registry().deregister(&mut mio::unix::SourceFd(&self.fd));
        }
    }
}

impl Source for Watch {
    fn on_event(&self, readable: bool, writable: bool, peer_closed: bool) {
        let wanted = self.events.get();
        let mut ready = 0;
        if readable || peer_closed {
            ready |= READABLE;
        }
        if writable || peer_closed {
            ready |= WRITABLE;
        }
        ready &= wanted;
        if ready != 0 {
            let callback = Rc::clone(&self.callback.borrow());
            callback(self.reactor(), self.fd, ready);
        }
        if !self.removed.get() && self.polled.get() {
            let _ = self.arm();
        }
    }

    fn detach(&self) -> bool {
        self.removed.set(true);
        self.disarm();
        true
    }
}

/// The fds a reactor watches.
#[derive(Default)]
pub(crate) struct Watches {
    by_fd: RefCell<HashMap<RawFd, NonNull<Watch>>>,
}

impl Watches {
    fn get(&self, fd: RawFd) -> Option<&Watch> {
        let watch = *self.by_fd.borrow().get(&fd)?;
        // SAFETY: the map holds live watches: removed ones leave it first.
        Some(unsafe { watch.as_ref() })
    }

    /// The reactor is going away: its slots free the watches.
    pub fn forget_all(&self) {
        self.by_fd.borrow_mut().clear();
    }

    pub fn len(&self) -> usize {
        self.by_fd.borrow().len()
    }
}

impl Reactor {
    /// Watches `fd` (not taken over: the program closes it, after `unwatch`)
    /// for `events` (`READABLE | WRITABLE`; 0 keeps the watch but asks for
    /// nothing). On an fd already watched, changes its events and callback.
    pub fn watch(&self, fd: RawFd, events: u32, callback: WatchFn) -> Result<()> {
        if fd < 0 || events & !(READABLE | WRITABLE) != 0 {
            return Err(Error::InvalidArgument("file descriptor or events"));
        }
        if let Some(watch) = self.watches().get(fd) {
            *watch.callback.borrow_mut() = callback;
            let before = watch.events.replace(events);
            if before != events {
                if let Err(e) = watch.arm() {
                    watch.events.set(before);
                    return Err(e);
                }
            }
            return Ok(());
        }
        let watch = NonNull::from(Box::leak(Box::new(Watch {
            reactor: self,
            fd,
            token: Cell::new(NO_TOKEN),
            events: Cell::new(events),
            polled: Cell::new(false),
            callback: RefCell::new(callback),
            removed: Cell::new(false),
        })));
        let token = self.add(watch);
        // SAFETY: just made; owned by the reactor from here on.
        let w = unsafe { watch.as_ref() };
        w.token.set(token.0 as u32);
        if let Err(e) = w.arm() {
            self.remove(token);
            // SAFETY: from Box::leak above; not registered anymore.
            drop(unsafe { Box::from_raw(watch.as_ptr()) });
            return Err(e);
        }
        self.watches().by_fd.borrow_mut().insert(fd, watch);
        Ok(())
    }

    /// Stops watching `fd` (safe inside its own callback). `State` if it was
    /// not watched.
    pub fn unwatch(&self, fd: RawFd) -> Result<()> {
        let watch = self.watches().by_fd.borrow_mut().remove(&fd).ok_or(Error::State)?;
        // SAFETY: was in the map, so live.
        let w = unsafe { watch.as_ref() };
        w.removed.set(true);
        w.disarm();
        self.remove(Token(w.token.get() as usize));
        if self.is_dispatching() {
            // SAFETY: from Box::leak in `watch`; not registered anymore.
            unsafe { self.bury(watch) };
        } else {
            // SAFETY: from Box::leak in `watch`; no dispatch runs its callback.
            drop(unsafe { Box::from_raw(watch.as_ptr()) });
        }
        Ok(())
    }

    /// How many fds the program has the reactor watch.
    pub fn watched(&self) -> usize {
        self.watches().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn a_watched_fd_is_reported_while_ready_and_not_after_unwatch() {
        let reactor = Reactor::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let fd = b.as_raw_fd();
        let calls = Rc::new(Cell::new(0));
        let seen = Rc::clone(&calls);
        reactor
            .watch(
                fd,
                READABLE,
                Rc::new(move |_, _, events| {
                    assert_eq!(events, READABLE);
                    seen.set(seen.get() + 1);
                }),
            )
            .unwrap();
        reactor.dispatch(0).unwrap();
        assert_eq!(calls.get(), 0, "nothing to read yet");
        a.write_all(b"x").unwrap();
        reactor.dispatch(1000).unwrap();
        assert_eq!(calls.get(), 1);
        // Not read: level-triggered, reported again.
        reactor.dispatch(1000).unwrap();
        assert_eq!(calls.get(), 2);
        let mut byte = [0u8; 1];
        (&b).read_exact(&mut byte).unwrap();
        reactor.watch(fd, 0, Rc::new(|_, _, _| {})).unwrap();
        a.write_all(b"y").unwrap();
        reactor.dispatch(50).unwrap();
        assert_eq!(calls.get(), 2, "events 0: nothing reported");
        assert_eq!(reactor.watched(), 1);
        reactor.unwatch(fd).unwrap();
        assert_eq!(reactor.unwatch(fd), Err(Error::State));
        assert_eq!(reactor.watched(), 0);
    }

    /// A panic out of a callback unwinds out of `dispatch`; a program that
    /// catches it goes on dispatching, and the reactor still polls.
    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn a_caught_panic_in_a_callback_leaves_the_reactor_usable() {
        let reactor = Reactor::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let calls = Rc::new(Cell::new(0));
        let seen = Rc::clone(&calls);
        let callback: WatchFn = Rc::new(move |_, fd, _| {
            seen.set(seen.get() + 1);
            let mut buf = [0u8; 16];
            // SAFETY: fd is the open socket b, buf is writable.
            unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if seen.get() == 1 {
                panic!("a handler's bug");
            }
        });
        reactor.watch(b.as_raw_fd(), READABLE, callback).unwrap();
        a.write_all(b"x").unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reactor.dispatch(1000)));
        assert!(caught.is_err(), "the panic reaches the program");
        assert!(!reactor.is_dispatching());
        a.write_all(b"y").unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while calls.get() < 2 && std::time::Instant::now() < end {
            assert!(reactor.dispatch(100).is_ok(), "dispatch after a caught panic");
        }
        assert_eq!(calls.get(), 2, "new input is still reported");
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn a_callback_may_unwatch_its_own_fd() {
        let reactor = Reactor::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let fd = b.as_raw_fd();
        a.write_all(b"x").unwrap();
        reactor
            .watch(fd, READABLE | WRITABLE, Rc::new(|r, fd, _| r.unwatch(fd).unwrap()))
            .unwrap();
        reactor.dispatch(1000).unwrap();
        assert_eq!(reactor.watched(), 0);
    }
}
