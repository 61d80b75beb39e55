//! Name resolution off the reactor's thread: `getaddrinfo` blocks, so a few
//! worker threads (started on first need, shared by every reactor of the
//! process) resolve, and hand each result back to the reactor that asked
//! through its thread-safe job queue.

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
