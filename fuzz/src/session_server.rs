//! A server `Session` on arbitrary bytes (see [`crate::session`]).

pub fn check(data: &[u8]) {
    crate::session::check(wsconn::Role::Server, data)
}
