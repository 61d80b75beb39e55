//! Publish/subscribe: a reactor's topics (which connections subscribe to what),
//! the frame a publish encodes once for all of them, and the group of reactors
//! (one per thread) whose subscribers a publish reaches.
//!
//! A publish frames the message once; every subscriber's output queue holds a
//! reference to those bytes, not a copy (see `connection/published.rs`), and
//! the reactor's memory budget is charged for them once, while any of its
//! subscribers holds them. A subscriber whose output is over its limit is
//! slow: the topic's policy skips it for that message or closes it with 1008.
//! Subscriptions are kept by connection token and end when the connection
//! leaves the reactor; a topic's policy is forgotten with its last subscriber.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::proto::event::{Message, MessageKind};
use crate::proto::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::runtime::error::Result;
use crate::runtime::log::LogEvent;
use crate::runtime::reactor::{Reactor, Remote};
use crate::runtime::stats::Bump;

/// A message framed once for every subscriber: an unmasked, uncompressed
/// server frame (valid whatever extensions a connection negotiated).
#[derive(Debug)]
pub struct Published {
    frame: Box<[u8]>,
    header_len: usize,
    kind: MessageKind,
}

impl Published {
    /// Frames `message` (its text already checked by its type).
    pub fn new(message: Message<'_>) -> Arc<Published> {
        let (kind, payload) = match message {
            Message::Text(text) => (MessageKind::Text, text.as_bytes()),
            Message::Binary(bytes) => (MessageKind::Binary, bytes),
        };
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: match kind {
                MessageKind::Text => OpCode::Text,
                MessageKind::Binary => OpCode::Binary,
            },
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let header_len = header.encode(&mut head);
        let mut frame = Vec::with_capacity(header_len + payload.len());
        frame.extend_from_slice(&head[..header_len]);
        frame.extend_from_slice(payload);
        Arc::new(Published {
            frame: frame.into_boxed_slice(),
            header_len,
            kind,
        })
    }

    /// The whole frame, as written to a plain server connection.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// The message, for connections that cannot take the shared frame (client
    /// role: masked; TLS: encrypted) and send a copy.
    pub fn message(&self) -> Message<'_> {
        let payload = &self.frame[self.header_len..];
        match self.kind {
            // SAFETY: the payload of a text frame came from a `&str` in `new`.
            MessageKind::Text => Message::Text(unsafe { std::str::from_utf8_unchecked(payload) }),
            MessageKind::Binary => Message::Binary(payload),
        }
    }
}

/// A published frame as the subscribers of one reactor hold it (one
/// reference each): the reactor's budget is charged for it once, when it is
/// queued, and given it back when the last of them lets it go
/// (`Connection::let_go`).
#[derive(Debug)]
pub(crate) struct HeldFrame(Arc<Published>);

impl std::ops::Deref for HeldFrame {
    type Target = Published;

    fn deref(&self) -> &Published {
        &self.0
    }
}

/// What happens to a subscriber whose output is over its limit (the
/// connection's max output) when a message is published to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowPolicy {
    /// It does not get this message; later ones reach it once it has room.
    #[default]
    Skip,
    /// It is closed with 1008 (policy violation).
    Close,
}

/// How a delivery to one subscriber went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for the socket.
    Queued,
    /// Not open (handshake not done, or closing): nothing queued, no policy.
    NotOpen,
    /// Output over its limit: nothing queued, the topic's policy applies.
    Full,
}

/// The subscribers of one topic on one reactor, by connection token.
#[derive(Debug, Default)]
struct Topic {
    members: Vec<u32>,
    /// Where each member sits in `members` (removal in constant time).
    index: HashMap<u32, usize>,
}

/// A reactor's topics.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    topics: RefCell<HashMap<Rc<str>, Topic>>,
    policies: RefCell<HashMap<Box<str>, SlowPolicy>>,
}

impl Topics {
    /// Adds `token` to `topic`. Returns the topic's name to keep (for
    /// `unsubscribe`) when it was not subscribed yet.
    pub fn subscribe(&self, topic: &str, token: u32) -> Option<Rc<str>> {
        let mut topics = self.topics.borrow_mut();
        let name = match topics.get_key_value(topic) {
            Some((name, _)) => Rc::clone(name),
            None => Rc::from(topic),
        };
        let entry = topics.entry(Rc::clone(&name)).or_default();
        if entry.index.contains_key(&token) {
            return None;
        }
        entry.index.insert(token, entry.members.len());
        entry.members.push(token);
        Some(name)
    }

    /// Removes `token` from `topic`; a topic left without subscribers goes.
    /// Returns whether it was subscribed.
    pub fn unsubscribe(&self, topic: &str, token: u32) -> bool {
        let mut topics = self.topics.borrow_mut();
        let Some(entry) = topics.get_mut(topic) else {
            return false;
        };
        let Some(at) = entry.index.remove(&token) else {
            return false;
        };
        entry.members.swap_remove(at);
        if let Some(&moved) = entry.members.get(at) {
            entry.index.insert(moved, at);
        }
        if entry.members.is_empty() {
            topics.remove(topic);
            self.policies.borrow_mut().remove(topic);
        }
        true
    }

    /// Subscribers of `topic` on this reactor.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.topics.borrow().get(topic).map_or(0, |t| t.members.len())
    }

    /// Topics with at least one subscriber on this reactor.
    pub fn count(&self) -> usize {
        self.topics.borrow().len()
    }

    pub fn policy(&self, topic: &str) -> SlowPolicy {
        self.policies.borrow().get(topic).copied().unwrap_or_default()
    }

    /// Kept while the topic has subscribers (and from now until it has had
    /// some): a policy set per topic, for topics named by peers, cannot pile
    /// up.
    pub fn set_policy(&self, topic: &str, policy: SlowPolicy) {
        let mut policies = self.policies.borrow_mut();
        match policy {
            SlowPolicy::Skip => {
                policies.remove(topic);
            }
            other => {
                policies.insert(topic.into(), other);
            }
        }
    }

    /// Runs `deliver` on each subscriber of `topic` but `except`; returns the
    /// tokens for which it answered `Full`, and how many got the message.
    /// `deliver` must not change the topics.
    pub fn each_subscriber(
        &self,
        topic: &str,
        except: Option<u32>,
        mut deliver: impl FnMut(u32) -> Delivery,
    ) -> (usize, Vec<u32>) {
        let topics = self.topics.borrow();
        let Some(entry) = topics.get(topic) else {
            return (0, Vec::new());
        };
        let mut queued = 0;
        let mut full = Vec::new();
        for &token in &entry.members {
            if Some(token) == except {
                continue;
            }
            match deliver(token) {
                Delivery::Queued => queued += 1,
                Delivery::Full => full.push(token),
                Delivery::NotOpen => {}
            }
        }
        (queued, full)
    }
}

/// Reactors (one per thread) that publish to each other's subscribers: a
/// publish on one is delivered by the others on their own threads, through
/// their job queues (in the order published).
#[derive(Default)]
pub(crate) struct TopicGroup {
    members: Mutex<Vec<Remote>>,
}

impl TopicGroup {
    pub fn join(&self, remote: Remote) {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if !members.iter().any(|m| m.same_reactor(&remote)) {
            members.push(remote);
        }
    }

    pub fn leave(&self, remote: &Remote) {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.retain(|m| !m.same_reactor(remote));
    }

    /// The members, but `except` (the reactor publishing on its own thread).
    pub fn others(&self, except: Option<&Remote>) -> Vec<Remote> {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .iter()
            .filter(|m| !except.is_some_and(|e| m.same_reactor(e)))
            .cloned()
            .collect()
    }
}

impl Reactor {
    /// Publishes `message` to `topic`, on the reactor's thread: framed once,
    /// queued now for this reactor's subscribers (but the connection at
    /// `except`), and for the other reactors of its group through their job
    /// queues. Returns how many subscribers of this reactor got it.
    pub fn publish(&self, topic: &str, message: Message<'_>, except: Option<u32>) -> usize {
        self.counters().publishes.add(1);
        let frame = Published::new(message);
        let remote = self.remote();
        let others = remote.group().others(Some(&remote));
        if !others.is_empty() {
            let topic: Arc<str> = Arc::from(topic);
            for other in others {
                let (topic, frame) = (Arc::clone(&topic), Arc::clone(&frame));
                // A reactor that stopped taking jobs has left the group:
                // nothing to reach. One whose queue is full misses the
                // message, as a slow subscriber does.
                let len = frame.frame().len();
                let _ = other.defer_publish(
                    Box::new(move |r| {
                        r.deliver_published(&topic, &frame, None);
                    }),
                    len,
                );
            }
        }
        self.deliver_published(topic, &frame, except)
    }

    /// Shares topics with `other` (a handle to another reactor, maybe on
    /// another thread): the groups of both merge, so from now on a publish on
    /// any of their reactors reaches the subscribers of all of them.
    pub fn share_topics_with(&self, other: &Remote) {
        self.remote().join_group_of(other);
    }

    /// Subscribers of `topic` on this reactor.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.topics().subscribers(topic)
    }

    /// Topics with subscribers on this reactor.
    pub fn topic_count(&self) -> usize {
        self.topics().count()
    }

    /// What happens to slow subscribers of `topic` on this reactor.
    pub fn set_topic_policy(&self, topic: &str, policy: SlowPolicy) {
        self.topics().set_policy(topic, policy);
    }

    /// Queues `frame` for the subscribers of `topic` (but `except`), applying
    /// the topic's policy to those with no room. Returns how many got it.
    pub(crate) fn deliver_published(&self, topic: &str, frame: &Arc<Published>, except: Option<u32>) -> usize {
        let held = Rc::new(HeldFrame(Arc::clone(frame)));
        let (queued, full) = self.topics().each_subscriber(topic, except, |token| {
            self.source(token as usize)
                .map_or(Delivery::NotOpen, |s| s.deliver(&held))
        });
        // Charged once, if any subscriber keeps it (none lets go before
        // the end of the turn: queued frames are written at the flush).
        if Rc::strong_count(&held) > 1 {
            self.budget().charge(held.frame().len() as isize);
        }
        if full.is_empty() {
            return queued;
        }
        if self.topics().policy(topic) == SlowPolicy::Close {
            self.counters().slow_closed.add(full.len() as u64);
            for token in full {
                if let Some(source) = self.source(token as usize) {
                    source.close_slow();
                }
            }
        } else {
            self.counters().slow_skipped.add(full.len() as u64);
            self.log(
                LogEvent::SlowSkipped,
                None,
                || None,
                || format!("{} slow subscribers of {topic:?} skipped a message", full.len()),
            );
        }
        queued
    }
}

/// Held while reactors change groups: two merges racing (or a merge and a
/// reactor leaving) could otherwise move a reactor into a group another
/// merge is emptying, or back into one it has left.
fn group_change() -> std::sync::MutexGuard<'static, ()> {
    static CHANGING: Mutex<()> = Mutex::new(());
    CHANGING.lock().unwrap_or_else(|e| e.into_inner())
}

impl Remote {
    /// THREAD-SAFE: this reactor's group and `other`'s merge into one: every
    /// reactor that shared with either reaches all of them from now on.
    pub fn join_group_of(&self, other: &Remote) {
        let _changing = group_change();
        let (mine, theirs) = (self.group(), other.group());
        if Arc::ptr_eq(&mine, &theirs) {
            return;
        }
        for member in mine.others(None) {
            member.set_group(Arc::clone(&theirs));
        }
    }

    /// THREAD-SAFE: the reactor leaves its group (it is going away).
    pub(crate) fn leave_group(&self) {
        let _changing = group_change();
        self.group().leave(self);
    }

    /// THREAD-SAFE: publishes `message` to `topic` on every reactor of this
    /// one's group (this one included), each delivering on its own thread,
    /// through its job queue, in the order published. [`Error::QueueFull`]
    /// when this reactor's queue is full (another's misses the message).
    ///
    /// [`Error::QueueFull`]: crate::runtime::error::Error::QueueFull
    pub fn publish(&self, topic: &str, message: Message<'_>) -> Result<()> {
        let frame = Published::new(message);
        let topic: Arc<str> = Arc::from(topic);
        let mut result = Ok(());
        for member in self.group().others(None) {
            let (topic, frame) = (Arc::clone(&topic), Arc::clone(&frame));
            let own = member.same_reactor(self);
            let len = frame.frame().len();
            let deferred = member.defer_publish(
                Box::new(move |r| {
                    if own {
                        r.counters().publishes.add(1);
                    }
                    r.deliver_published(&topic, &frame, None);
                }),
                len,
            );
            if own {
                result = deferred;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_counted_once_and_topics_go_with_their_last_subscriber() {
        let t = Topics::default();
        assert!(t.subscribe("a", 1).is_some());
        assert!(t.subscribe("a", 1).is_none(), "twice is once");
        assert!(t.subscribe("a", 2).is_some());
        assert!(t.subscribe("b", 1).is_some());
        assert_eq!((t.subscribers("a"), t.subscribers("b"), t.count()), (2, 1, 2));
        assert!(t.unsubscribe("a", 1));
        assert!(!t.unsubscribe("a", 1));
        assert!(!t.unsubscribe("zzz", 1));
        assert_eq!(t.subscribers("a"), 1);
        assert!(t.unsubscribe("b", 1));
        assert_eq!(t.count(), 1);
        assert_eq!(t.subscribers("b"), 0);
    }

    #[test]
    fn removal_keeps_every_other_member_reachable() {
        let t = Topics::default();
        for token in 0..100 {
            t.subscribe("x", token);
        }
        for token in (0..100).step_by(3) {
            assert!(t.unsubscribe("x", token));
        }
        let mut seen = Vec::new();
        let (queued, full) = t.each_subscriber("x", Some(1), |token| {
            seen.push(token);
            if token == 2 {
                Delivery::Full
            } else {
                Delivery::Queued
            }
        });
        seen.sort_unstable();
        let expected: Vec<u32> = (0..100).filter(|n| n % 3 != 0 && *n != 1).collect();
        assert_eq!(seen, expected);
        assert_eq!(full, vec![2]);
        assert_eq!(queued, expected.len() - 1);
        for token in expected {
            assert!(t.unsubscribe("x", token));
        }
        assert!(t.unsubscribe("x", 1));
        assert_eq!(t.count(), 0);
    }

    #[test]
    fn policies_default_to_skip() {
        let t = Topics::default();
        assert_eq!(t.policy("a"), SlowPolicy::Skip);
        t.set_policy("a", SlowPolicy::Close);
        assert_eq!(t.policy("a"), SlowPolicy::Close);
        assert_eq!(t.policy("b"), SlowPolicy::Skip);
        t.set_policy("a", SlowPolicy::Skip);
        assert_eq!(t.policy("a"), SlowPolicy::Skip);
    }

    /// The reactors whose publishes `remote`'s reach (itself included).
    fn group_of(remote: &Remote) -> Vec<Remote> {
        remote.group().others(None)
    }

    fn same_members(a: &[Remote], b: &[&Remote]) -> bool {
        a.len() == b.len() && b.iter().all(|r| a.iter().any(|m| m.same_reactor(r)))
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll: not run under Miri")]
    fn sharing_merges_groups_so_that_every_earlier_partner_stays_reached() {
        let mut reactors: Vec<_> = (0..4).map(|_| Reactor::new().unwrap()).collect();
        let r: Vec<Remote> = reactors.iter().map(|x| x.remote()).collect();
        r[1].join_group_of(&r[0]);
        // R0 then shares with R2: R1, which shared with R0, must reach R2 too.
        r[0].join_group_of(&r[2]);
        for member in &r[..3] {
            assert!(same_members(&group_of(member), &[&r[0], &r[1], &r[2]]));
        }
        assert!(same_members(&group_of(&r[3]), &[&r[3]]));
        // Two groups of two merge whichever side asks; sharing again changes nothing.
        r[3].join_group_of(&r[1]);
        r[2].join_group_of(&r[3]);
        for member in &r {
            assert!(same_members(&group_of(member), &[&r[0], &r[1], &r[2], &r[3]]));
        }
        // A released reactor leaves its group; the others stay together.
        drop(reactors.remove(0));
        assert!(same_members(&group_of(&r[1]), &[&r[1], &r[2], &r[3]]));
    }

    #[test]
    #[cfg_attr(miri, ignore = "epoll and threads: not run under Miri")]
    fn merges_from_many_threads_at_once_make_one_group() {
        let reactors: Vec<_> = (0..8).map(|_| Reactor::new().unwrap()).collect();
        let r: Vec<Remote> = reactors.iter().map(|x| x.remote()).collect();
        std::thread::scope(|s| {
            for i in 1..r.len() {
                let (me, other) = (r[i].clone(), r[(i * 5) % r.len()].clone());
                let first = r[0].clone();
                s.spawn(move || {
                    me.join_group_of(&other);
                    first.join_group_of(&me);
                });
            }
        });
        let all: Vec<&Remote> = r.iter().collect();
        for member in &r {
            assert!(same_members(&group_of(member), &all));
        }
    }

    #[test]
    fn a_policy_is_forgotten_with_the_topic_s_last_subscriber() {
        let t = Topics::default();
        // Set before anyone joins: kept until the topic has had subscribers.
        t.set_policy("lobby", SlowPolicy::Close);
        t.subscribe("lobby", 1);
        t.subscribe("lobby", 2);
        t.unsubscribe("lobby", 1);
        assert_eq!(t.policy("lobby"), SlowPolicy::Close);
        t.unsubscribe("lobby", 2);
        assert_eq!(t.policy("lobby"), SlowPolicy::Skip);
        // Rooms named by peers, each with its policy: none stays behind.
        for i in 0..1000 {
            let room = format!("room {i}");
            t.subscribe(&room, 7);
            t.set_policy(&room, SlowPolicy::Close);
            t.unsubscribe(&room, 7);
        }
        assert_eq!((t.count(), t.policies.borrow().len()), (0, 0));
    }

    #[test]
    fn a_message_is_framed_once_unmasked() {
        let p = Published::new(Message::Text("hello"));
        assert_eq!(p.frame(), b"\x81\x05hello");
        assert_eq!(p.message(), Message::Text("hello"));
        let big = vec![7u8; 70_000];
        let p = Published::new(Message::Binary(&big));
        assert_eq!(&p.frame()[..2], &[0x82, 127]);
        assert_eq!(p.frame().len(), 10 + 70_000);
        assert_eq!(p.message(), Message::Binary(&big[..]));
    }
}
