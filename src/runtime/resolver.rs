//! Name resolution off the reactor's thread: `getaddrinfo` blocks, so a few
//! worker threads (started on first need, shared by every reactor of the
//! process) resolve, and hand each result back to the reactor that asked
//! through its thread-safe job queue. A connection that stops waiting (its
//! handshake timed out, it was stopped or released) takes its request out
//! of the queue: the queue holds only requests someone still waits for.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use mio::Token;

use crate::runtime::reactor::Remote;

/// How names are resolved: the system's resolver by default; a program (or a
/// test) may plug in its own.
pub type ResolveFn = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The system's resolver (`getaddrinfo`).
pub fn system_resolver() -> ResolveFn {
    Arc::new(|host: &str, port: u16| Ok((host, port).to_socket_addrs()?.collect()))
}

/// Most worker threads: resolutions beyond this many at once wait their turn.
const MAX_WORKERS: usize = 4;

struct Request {
    host: String,
    port: u16,
    resolve: ResolveFn,
    remote: Remote,
    token: Token,
    id: u32,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Request>,
    workers: usize,
    idle: usize,
}

struct Pool {
    queue: Mutex<Queue>,
    wake: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
    })
}

/// A fresh request number: a connection accepts only the answer to the
/// request it waits for (a stopped and restarted one ignores older answers).
pub(crate) fn next_request_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Resolves `host:port` on a worker thread; the answer reaches the object at
/// `token` of the reactor behind `remote` (`Source::on_resolved`) as request `id`.
pub(crate) fn resolve(host: &str, port: u16, resolve: ResolveFn, remote: Remote, token: Token, id: u32) {
    let pool = pool();
    let mut queue = pool.queue.lock().unwrap_or_else(|e| e.into_inner());
    queue.waiting.push_back(Request {
        host: host.to_owned(),
        port,
        resolve,
        remote,
        token,
        id,
    });
    if queue.idle == 0 && queue.workers < MAX_WORKERS {
        let spawned = std::thread::Builder::new().name("wsconn-resolver".into()).spawn(work);
        if spawned.is_ok() {
            queue.workers += 1;
        }
    }
    drop(queue);
    pool.wake.notify_one();
}

/// Request `id` is no longer waited for: taken out of the queue if no
/// worker has started it (one under way finishes, and its answer is ignored).
pub(crate) fn cancel(id: u32) {
    let mut queue = pool().queue.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(at) = queue.waiting.iter().position(|r| r.id == id) {
        queue.waiting.remove(at);
    }
}

/// Requests waiting for a worker.
#[cfg(test)]
fn waiting() -> Vec<String> {
    let queue = pool().queue.lock().unwrap_or_else(|e| e.into_inner());
    queue.waiting.iter().map(|r| r.host.clone()).collect()
}

fn work() {
    let pool = pool();
    loop {
        let request = {
            let mut queue = pool.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(request) = queue.waiting.pop_front() {
                    break request;
                }
                queue.idle += 1;
                queue = pool.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                queue.idle -= 1;
            }
        };
        let Request {
            host,
            port,
            resolve,
            remote,
            token,
            id,
        } = request;
        let addrs = resolve(&host, port);
        // A reactor released meanwhile takes no more jobs: nothing to tell.
        let _ = remote.defer(Box::new(move |reactor| reactor.deliver_resolved(token, id, addrs)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::ConnConfig;
    use crate::runtime::connection::{Connection, Lifecycle};
    use crate::runtime::handler::ConnHandler;
    use crate::runtime::reactor::Reactor;
    use std::time::{Duration, Instant};

    struct Nothing;
    impl ConnHandler for Nothing {}

    #[test]
    #[cfg_attr(miri, ignore = "epoll and sockets: not run under Miri")]
    fn requests_of_connections_that_stopped_waiting_leave_the_queue() {
        // Names starting with "block" hold a worker until the gate opens.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let started = Arc::new(Mutex::new(0));
        let resolve: ResolveFn = {
            let (gate, started) = (Arc::clone(&gate), Arc::clone(&started));
            Arc::new(move |host: &str, _| {
                if host.starts_with("block") {
                    *started.lock().unwrap() += 1;
                    let (open, wake) = &*gate;
                    let mut open = open.lock().unwrap();
                    while !*open {
                        open = wake.wait(open).unwrap();
                    }
                }
                Err(io::Error::other("not resolved"))
            })
        };
        let reactor = Reactor::new().unwrap();
        reactor.set_resolver(resolve);
        let mut config = ConnConfig::default();
        config.timeouts.set_handshake_ms(50).unwrap();
        reactor.set_config(Arc::new(config));
        let connect = |host: String| {
            let conn = Connection::create(&reactor, Nothing);
            // SAFETY: just created; released below.
            unsafe { conn.as_ref() }.connect(&format!("ws://{host}/")).unwrap();
            conn
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let blockers: Vec<_> = (0..MAX_WORKERS).map(|i| connect(format!("block-{i}"))).collect();
        while *started.lock().unwrap() < MAX_WORKERS {
            assert!(Instant::now() < deadline, "the workers did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Every worker is busy: these wait in the queue, and time out there.
        let queued: Vec<_> = (0..20).map(|i| connect(format!("queued-{i}"))).collect();
        // SAFETY: live until released below.
        let all_closed = || {
            queued
                .iter()
                .all(|c| unsafe { c.as_ref() }.lifecycle() == Lifecycle::Closed)
        };
        while !all_closed() {
            assert!(Instant::now() < deadline, "the handshake timeouts did not fire");
            reactor.dispatch(10).unwrap();
        }
        let left: Vec<String> = waiting().into_iter().filter(|h| h.starts_with("queued")).collect();
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        for conn in blockers.into_iter().chain(queued) {
            // SAFETY: from `create`, not used afterwards.
            unsafe { Connection::release(conn.as_ptr()) };
        }
        assert!(left.is_empty(), "still queued after their connections ended: {left:?}");
    }
}
