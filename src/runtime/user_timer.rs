//! The program's own timers on the reactor's timer wheel: one-shot or
//! periodic, for work such as reconnecting a broker client with backoff. The
//! wheel ticks every 8 ms: a timer fires at or up to one tick after its time.

use std::cell::Cell;
use std::ptr::NonNull;

use mio::Token;

use crate::runtime::error::{Error, Result};
use crate::runtime::reactor::{Reactor, Source};
use crate::runtime::timers::{TimerLinks, NO_TOKEN};

/// A program's timer, owned by the program (`create` … `release`).
pub struct UserTimer {
    reactor: Cell<*const Reactor>,
    token: Cell<u32>,
    links: TimerLinks,
    /// 0: one-shot.
    interval_ms: Cell<u64>,
    callback: Box<dyn Fn(&UserTimer)>,
}

impl UserTimer {
    /// A stopped timer on `reactor` (which must outlive it, or detaches it when
    /// it goes first); free it with [`UserTimer::release`].
    pub fn create(reactor: &Reactor, callback: Box<dyn Fn(&UserTimer)>) -> NonNull<UserTimer> {
        let timer = NonNull::from(Box::leak(Box::new(UserTimer {
            reactor: Cell::new(reactor),
            token: Cell::new(NO_TOKEN),
            links: TimerLinks::default(),
            interval_ms: Cell::new(0),
            callback,
        })));
        let token = reactor.add(timer);
        // SAFETY: just made.
        unsafe { timer.as_ref() }.token.set(token.0 as u32);
        timer
    }

    fn registered(&self) -> Option<(&Reactor, Token)> {
        // SAFETY: the reactor is pinned (it never moves) and outlives its timers
        // or sets this pointer to NULL.
        let reactor = unsafe { self.reactor.get().as_ref() }?;
        Some((reactor, Token(self.token.get() as usize)))
    }

    /// Fires in `delay_ms`, then every `interval_ms` (0: once). Starting a
    /// running timer moves it.
    pub fn start(&self, delay_ms: u64, interval_ms: u64) -> Result<()> {
        let (reactor, token) = self.registered().ok_or(Error::State)?;
        self.interval_ms.set(interval_ms);
        reactor.arm_timer(token, reactor.current_ms().saturating_add(delay_ms));
        Ok(())
    }

    /// Whether it will fire.
    pub fn is_running(&self) -> bool {
        self.links.deadline().is_some()
    }

    pub fn stop(&self) {
        if let Some((reactor, token)) = self.registered() {
            reactor.disarm_timer(token);
        }
    }

    /// Stops and frees the timer (safe inside its own callback: then freed when
    /// the dispatch ends).
    ///
    /// # Safety
    /// `this` came from [`UserTimer::create`] and is not used afterwards.
    pub unsafe fn release(this: *mut UserTimer) {
        // SAFETY: live per the caller.
        let timer = unsafe { &*this };
        if let Some((reactor, token)) = timer.registered() {
            reactor.disarm_timer(token);
            reactor.remove(token);
            timer.reactor.set(std::ptr::null());
            if reactor.is_dispatching() {
                // SAFETY: from Box::leak in `create`; not registered anymore.
                unsafe { reactor.bury(NonNull::new_unchecked(this)) };
                return;
            }
        }
        // SAFETY: from Box::leak in `create`; nothing refers to it anymore.
        drop(unsafe { Box::from_raw(this) });
    }
}

impl Source for UserTimer {
    fn on_event(&self, _readable: bool, _writable: bool, _peer_closed: bool) {}

    fn on_timer(&self) {
        let interval = self.interval_ms.get();
        if interval > 0 {
            if let Some((reactor, token)) = self.registered() {
                reactor.arm_timer(token, reactor.now_ms().saturating_add(interval));
            }
        }
        (self.callback)(self);
    }

    fn timer_links(&self) -> Option<&TimerLinks> {
        Some(&self.links)
    }

    fn detach(&self) -> bool {
        self.reactor.set(std::ptr::null());
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    fn run_for(reactor: &Reactor, ms: u64) {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            reactor.dispatch(5).unwrap();
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn one_shot_fires_once_and_periodic_repeats_until_stopped() {
        let reactor = Reactor::new().unwrap();
        let fired = Rc::new(Cell::new(0));
        let f = Rc::clone(&fired);
        let once = UserTimer::create(&reactor, Box::new(move |_| f.set(f.get() + 1)));
        let ticks = Rc::new(Cell::new(0));
        let t = Rc::clone(&ticks);
        let periodic = UserTimer::create(&reactor, Box::new(move |_| t.set(t.get() + 1)));
        // SAFETY: live until released below.
        let (o, p) = unsafe { (once.as_ref(), periodic.as_ref()) };
        o.start(20, 0).unwrap();
        p.start(10, 20).unwrap();
        assert!(o.is_running());
        run_for(&reactor, 150);
        assert_eq!(fired.get(), 1);
        assert!(!o.is_running());
        let n = ticks.get();
        assert!((3..=9).contains(&n), "{n} ticks in 150 ms every 20 ms");
        p.stop();
        run_for(&reactor, 60);
        assert_eq!(ticks.get(), n);
        // SAFETY: from create; not used afterwards.
        unsafe {
            UserTimer::release(once.as_ptr());
            UserTimer::release(periodic.as_ptr());
        }
    }

    /// Two timers due in the same turn; the first to fire releases the other
    /// and makes a new timer, which takes the freed slot. The new one was not
    /// started: it must not fire in the old one's stead.
    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn a_new_timer_in_a_freed_slot_does_not_fire_for_the_old_one() {
        #[derive(Default)]
        struct Pair {
            timers: Vec<NonNull<UserTimer>>,
            first: Option<*const UserTimer>,
            replacement: Option<NonNull<UserTimer>>,
        }
        let reactor = Reactor::new().unwrap();
        let r: *const Reactor = &*reactor;
        let pair = Rc::new(std::cell::RefCell::new(Pair::default()));
        let replacement_fired = Rc::new(Cell::new(0));
        let pair_timer = || {
            let (pair, fired) = (Rc::clone(&pair), Rc::clone(&replacement_fired));
            Box::new(move |t: &UserTimer| {
                let mut p = pair.borrow_mut();
                if p.first.is_some() {
                    return;
                }
                p.first = Some(t);
                let other = *p.timers.iter().find(|o| !std::ptr::eq(o.as_ptr(), t)).unwrap();
                // SAFETY: the other timer of the pair, not used afterwards.
                unsafe { UserTimer::release(other.as_ptr()) };
                let fired = Rc::clone(&fired);
                // SAFETY: the reactor is pinned and outlives this dispatch.
                let reactor = unsafe { &*r };
                p.replacement = Some(UserTimer::create(
                    reactor,
                    Box::new(move |_| fired.set(fired.get() + 1)),
                ));
            }) as Box<dyn Fn(&UserTimer)>
        };
        let (a, b) = (
            UserTimer::create(&reactor, pair_timer()),
            UserTimer::create(&reactor, pair_timer()),
        );
        pair.borrow_mut().timers = vec![a, b];
        // Started from a callback, both get the same deadline, in the same slot.
        let starter = UserTimer::create(
            &reactor,
            Box::new(move |_| {
                // SAFETY: live until one releases the other, after this.
                unsafe { a.as_ref().start(0, 0).unwrap() };
                // SAFETY: as above.
                unsafe { b.as_ref().start(0, 0).unwrap() };
            }),
        );
        // SAFETY: live until released below.
        unsafe { starter.as_ref() }.start(0, 0).unwrap();
        run_for(&reactor, 100);
        let p = pair.borrow();
        assert!(p.first.is_some(), "the pair fired");
        assert_eq!(replacement_fired.get(), 0, "the new timer fired without being started");
        // SAFETY: the survivors, from create, not used afterwards.
        unsafe {
            UserTimer::release(p.first.unwrap() as *mut UserTimer);
            UserTimer::release(p.replacement.unwrap().as_ptr());
            UserTimer::release(starter.as_ptr());
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn a_timer_may_release_itself_and_outlive_its_reactor() {
        let reactor = Reactor::new().unwrap();
        let timer = UserTimer::create(
            &reactor,
            Box::new(|t| {
                // SAFETY: the callback's own timer, not used afterwards.
                unsafe { UserTimer::release(t as *const UserTimer as *mut UserTimer) }
            }),
        );
        // SAFETY: live until it releases itself.
        unsafe { timer.as_ref() }.start(0, 0).unwrap();
        run_for(&reactor, 40);
        let orphan = UserTimer::create(&reactor, Box::new(|_| {}));
        drop(reactor);
        // SAFETY: detached, still the program's.
        assert_eq!(unsafe { orphan.as_ref() }.start(1, 0), Err(Error::State));
        // SAFETY: from create; not used afterwards.
        unsafe { UserTimer::release(orphan.as_ptr()) };
    }
}
