//! Where a session stands: the one state both of its directions read and change.

use crate::proto::error::{Error, Result};

/// The state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The opening handshake is under way: only handshake bytes flow.
    Handshake,
    /// Server: a valid upgrade request waits for the program's decision
    /// (accept or reject); bytes the client sends meanwhile are kept.
    Deciding,
    /// Server: a plain HTTP request is being handled; one response may be queued,
    /// then the session closes.
    HttpRequest,
    /// Messages flow both ways.
    Open,
    /// A close frame was sent; frames are still received until the peer's close.
    CloseSent,
    /// Client: the closing handshake is done; the server closes TCP first (§7.1.1),
    /// so input is still read, until its end.
    AwaitingEof,
    /// Nothing more is received or sent but the pending output.
    Closed,
}

impl State {
    /// Whether frames from the peer are parsed.
    pub fn receives_frames(self) -> bool {
        matches!(self, State::Open | State::CloseSent)
    }

    /// Whether more input is expected.
    pub fn wants_input(self) -> bool {
        !matches!(self, State::HttpRequest | State::Closed)
    }

    /// Whether the session is on its way out: a close was sent or received, the
    /// session failed, or it is answering a plain HTTP request.
    pub fn is_ending(self) -> bool {
        !matches!(self, State::Handshake | State::Deciding | State::Open)
    }

    /// Whether data and control frames may be sent now.
    pub fn check_send(self) -> Result<()> {
        match self {
            State::Handshake | State::Deciding | State::HttpRequest => Err(Error::NotOpen),
            State::Open => Ok(()),
            State::CloseSent | State::AwaitingEof | State::Closed => Err(Error::Closed),
        }
    }
}
