//! A whole sans-IO session: a [`Receiver`] and a [`Sender`] joined, for Rust
//! programs. (The C API joins the same two parts its own way, so that callbacks
//! can send while input is being processed.)

use std::sync::Arc;

use crate::proto::config::Config;
use crate::proto::error::Result;
use crate::proto::event::Event;
use crate::proto::handshake::client;
use crate::proto::receiver::{Handler, Receiver};
use crate::proto::role::Role;
use crate::proto::sender::Sender;

/// Where a session stands, as the C API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum State {
    /// The opening handshake is under way.
    Connecting = 0,
    /// Messages flow both ways.
    Open = 1,
    /// A close frame was sent or received; the handshake is not finished.
    Closing = 2,
    /// Nothing more will be received or sent but the pending output.
    Closed = 3,
}

/// The state of a session made of `rx` and `tx`.
pub fn state_of(rx: &Receiver, tx: &Sender) -> State {
    if rx.is_handshaking() && !tx.is_closed() {
        State::Connecting
    } else if tx.is_closed() && (rx.is_closed() || rx.close_received()) {
        State::Closed
    } else if tx.is_closed() || rx.close_received() {
        State::Closing
    } else {
        State::Open
    }
}

/// Whether the program should read from the socket: more input is expected and
/// output is not over its limit (a peer that does not read is not read either).
pub fn wants_read(rx: &Receiver, tx: &Sender) -> bool {
    rx.wants_input() && !tx.is_full()
}

/// Whether output is waiting to be written.
pub fn wants_write(tx: &Sender) -> bool {
    tx.buffered() > 0
}

/// Makes the client side of a session: the upgrade request is queued at once.
pub fn client_parts(config: Arc<Config>, host: &str, path: &str) -> Result<(Receiver, Sender)> {
    let key = client::new_key();
    let mut tx = Sender::new(Role::Client, config.max_output);
    let mut request = Vec::new();
    client::write_request(&mut request, host, path, &key, &config.subprotocols)?;
    tx.queue_raw(&request);
    Ok((Receiver::client(config, key, path.to_owned()), tx))
}

/// A session for Rust programs.
///
/// ```
/// use std::sync::Arc;
/// use wsconn::{Config, Event, MessageKind, Session};
///
/// let mut server = Session::server(Arc::new(Config::default()));
/// let mut client = Session::client(Arc::new(Config::default()), "localhost", "/").unwrap();
/// let mut request = client.sender().pending().to_vec();
/// client.sender().consume(request.len()).unwrap();
/// server.feed(&mut request, |_, _| {}).unwrap();
/// let mut response = server.sender().pending().to_vec();
/// client.feed(&mut response, |tx, event| {
///     if let Event::Open { .. } = event {
///         tx.send(MessageKind::Text, b"hello").unwrap();
///     }
/// }).unwrap();
/// assert!(client.sender().buffered() > 0);
/// ```
#[derive(Debug)]
pub struct Session {
    rx: Receiver,
    tx: Sender,
}

struct Join<'a, F> {
    tx: &'a mut Sender,
    on_event: F,
}

impl<F: FnMut(&mut Sender, Event<'_>)> Handler for Join<'_, F> {
    fn with_sender<R>(&mut self, f: impl FnOnce(&mut Sender) -> R) -> R {
        f(self.tx)
    }

    fn on_event(&mut self, event: Event<'_>) {
        (self.on_event)(self.tx, event)
    }
}

impl Session {
    pub fn server(config: Arc<Config>) -> Self {
        let tx = Sender::new(Role::Server, config.max_output);
        Session {
            rx: Receiver::server(config),
            tx,
        }
    }

    pub fn client(config: Arc<Config>, host: &str, path: &str) -> Result<Self> {
        let (rx, tx) = client_parts(config, host, path)?;
        Ok(Session { rx, tx })
    }

    /// Processes received bytes (unmasked in place). `on_event` gets each event
    /// with the sender, to answer from inside.
    pub fn feed(&mut self, data: &mut [u8], on_event: impl FnMut(&mut Sender, Event<'_>)) -> Result<()> {
        self.rx
            .feed(
                data,
                &mut Join {
                    tx: &mut self.tx,
                    on_event,
                },
            )
            .map(|_| ())
    }

    /// The peer closed the TCP connection.
    pub fn feed_eof(&mut self, on_event: impl FnMut(&mut Sender, Event<'_>)) -> Result<()> {
        self.rx.feed_eof(&mut Join {
            tx: &mut self.tx,
            on_event,
        })
    }

    pub fn sender(&mut self) -> &mut Sender {
        &mut self.tx
    }

    pub fn state(&self) -> State {
        state_of(&self.rx, &self.tx)
    }

    pub fn wants_read(&self) -> bool {
        wants_read(&self.rx, &self.tx)
    }

    pub fn wants_write(&self) -> bool {
        wants_write(&self.tx)
    }
}
