//! A client `Session` on a valid 101 response followed by arbitrary bytes (see
//! [`crate::session`]).

pub fn check(data: &[u8]) {
    crate::session::check(wsconn::Role::Client, data)
}
