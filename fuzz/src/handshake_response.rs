//! The client's response parser (`parse_response`) on arbitrary bytes, for the key
//! of RFC 6455 §1.3.

use wsconn::proto::handshake::{accept_key, client};
use wsconn::Error;
use wsconn_testkit::KEY;

use crate::handshake_request::config_from;
use crate::{contains, Reader};

const OTHER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAA==";

pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let config = config_from(&mut r);
    let buf = r.rest();
    let max = config.max_handshake_size();
    match client::parse_response(buf, KEY, &config) {
        Ok(None) => {
            assert!(
                buf.len() < max,
                "incomplete head of {} bytes, cap {max}: not refused",
                buf.len()
            );
        }
        Ok(Some(resp)) => {
            let head_len = resp.head_len;
            assert!(
                head_len <= buf.len(),
                "head_len {head_len} > input length {}",
                buf.len()
            );
            assert!(head_len <= max, "head_len {head_len} > max_handshake_size {max}");
            let head = &buf[..head_len];
            assert!(head.ends_with(b"\n"), "head does not end a line");
            assert!(contains(head, b"101"), "accepted a response without 101");
            assert!(
                contains(head, accept_key(KEY.as_bytes()).as_bytes()),
                "accepted without the right Sec-WebSocket-Accept"
            );
            if let Some(p) = resp.subprotocol {
                assert!(
                    config.subprotocols().iter().any(|s| s == p),
                    "subprotocol {p:?} was not offered"
                );
                assert!(contains(head, p.as_bytes()));
            }
            assert_eq!(
                client::parse_response(head, KEY, &config),
                Ok(Some(client::Response { ..resp })),
                "the head alone parses differently"
            );
            assert_eq!(
                client::parse_response(&head[..head_len - 1], KEY, &config),
                Ok(None),
                "a prefix of an accepted head is not incomplete"
            );
            assert_eq!(
                client::parse_response(buf, OTHER_KEY, &config),
                Err(Error::Handshake("wrong Sec-WebSocket-Accept")),
                "the same response accepted for another key"
            );
        }
        Err(e) => {
            assert!(
                matches!(e, Error::Handshake(_) | Error::HandshakeTooLarge | Error::Refused(_)),
                "unexpected error {e:?}"
            );
            if let Error::Refused(status) = e {
                assert!(status != 101 && !(100..200).contains(&status), "refused with {status}");
            }
        }
    }
}
