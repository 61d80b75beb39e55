//! Without the `io-uring` feature: no ring can exist (the types have no
//! values), so the code that would use one compiles and never runs.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::Outgoing;
use crate::runtime::reactor::Reactor;

pub(crate) enum Driver {}

#[allow(dead_code, clippy::boxed_local)] // the feature's API, never called without a ring
impl Driver {
    pub(crate) fn new(_epoll_fd: RawFd) -> io::Result<Driver> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "built without the io-uring feature",
        ))
    }

    pub(crate) fn open(&self, _token: u32, _fd: RawFd) {
        match *self {}
    }

    pub(crate) fn listen(&self, _token: u32, _fd: RawFd) {
        match *self {}
    }

    pub(crate) fn arm(&self, _token: u32, _once: bool) -> bool {
        match *self {}
    }

    pub(crate) fn disarm(&self, _token: u32) {
        match *self {}
    }

    pub(crate) fn is_open(&self, _token: u32) -> bool {
        match *self {}
    }

    pub(crate) fn is_sending(&self, _token: u32) -> bool {
        match *self {}
    }

    pub(crate) fn send(&self, _token: u32, _output: Box<Outgoing>) {
        match *self {}
    }

    pub(crate) fn close(&self, _token: u32, _now: bool) -> usize {
        match *self {}
    }

    pub(crate) fn submit(&self) {
        match *self {}
    }

    pub(crate) fn turn(&self, _reactor: &Reactor, _timeout: Option<Duration>) -> io::Result<usize> {
        match *self {}
    }
}
