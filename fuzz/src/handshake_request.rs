//! The server's request parser (`parse_head`, `parse_request`) on arbitrary bytes.

use base64::Engine;
use wsconn::proto::handshake::{client, server};
use wsconn::{Config, Error};

use crate::{contains, Reader};

/// The config an input asks for: `max_handshake_size` from its first two bytes,
/// subprotocols from bit 0 of the third.
pub(crate) fn config_from(r: &mut Reader<'_>) -> Config {
    let n = u16::from_le_bytes([r.byte(), r.byte()]);
    let flags = r.byte();
    let mut config = if flags & 1 != 0 {
        Config::with_subprotocols(&["superchat", "chat"]).expect("valid subprotocols")
    } else {
        Config::default()
    };
    config
        .set_max_handshake_size(1 + n as usize % 9000)
        .expect("a limit of at least 1");
    config
}

pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let config = config_from(&mut r);
    let buf = r.rest();
    let max = config.max_handshake_size();

    let head = server::parse_head(buf, &config);
    let request = server::parse_request(buf, &config);
    match (&head, &request) {
        (Ok(None), Ok(None)) => {
            assert!(
                buf.len() < max,
                "incomplete head of {} bytes, cap {max}: not refused",
                buf.len()
            );
        }
        (Ok(Some(server::Parsed::Upgrade(a))), Ok(Some(b))) => {
            assert_eq!(a, b, "parse_head and parse_request disagree");
            check_upgrade(buf, &config, a);
        }
        (Ok(Some(server::Parsed::Plain { method, path, head_len })), Err(rejection)) => {
            assert_eq!(rejection.status, 400, "plain request refused with {rejection:?}");
            assert!(!method.is_empty() && !path.is_empty());
            check_head_len(buf, *head_len, max);
            assert!(
                matches!(
                    server::parse_head(&buf[..*head_len], &config),
                    Ok(Some(server::Parsed::Plain { .. }))
                ),
                "a plain request is not plain when cut at its head"
            );
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "parse_head and parse_request refuse differently");
            assert!(
                matches!(a.status, 400 | 426 | 431),
                "unexpected status {} for {:?}",
                a.status,
                a.error
            );
            assert_eq!(
                a.status == 431,
                a.error == Error::HandshakeTooLarge,
                "status {} with {:?}",
                a.status,
                a.error
            );
            assert!(matches!(a.error, Error::Handshake(_) | Error::HandshakeTooLarge));
            let mut out = Vec::new();
            server::write_rejection(&mut out, a.status);
            assert!(out.starts_with(format!("HTTP/1.1 {} ", a.status).as_bytes()));
            assert!(out.windows(4).any(|w| w == b"\r\n\r\n"));
        }
        _ => panic!("parse_head {head:?} and parse_request {request:?} disagree"),
    }
}

/// A complete head: its length is within the input and the cap, it ends with the
/// blank line, and every shorter prefix is incomplete.
fn check_head_len(buf: &[u8], head_len: usize, max: usize) {
    assert!(
        head_len <= buf.len(),
        "head_len {head_len} > input length {}",
        buf.len()
    );
    assert!(head_len <= max, "head_len {head_len} > max_handshake_size {max}");
    assert!(
        head_len >= 2 && buf[..head_len].ends_with(b"\n"),
        "head does not end a line"
    );
}

fn check_upgrade(buf: &[u8], config: &Config, req: &server::Request<'_>) {
    check_head_len(buf, req.head_len, config.max_handshake_size());
    let head = &buf[..req.head_len];
    assert_eq!(
        server::parse_request(head, config),
        Ok(Some(server::Request {
            path: req.path,
            key: req.key,
            subprotocol: req.subprotocol,
            deflate: req.deflate,
            head_len: req.head_len,
            copy: None,
        })),
        "the head alone parses differently"
    );
    assert_eq!(
        server::parse_request(&head[..head.len() - 1], config),
        Ok(None),
        "a prefix of an accepted head is not incomplete"
    );
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(req.key)
        .unwrap_or_else(|e| panic!("accepted key {:?} is not base64: {e}", req.key));
    assert_eq!(nonce.len(), 16, "accepted key {:?} is not 16 bytes", req.key);
    assert!(contains(head, req.key));
    assert!(!req.path.is_empty() && contains(head, req.path.as_bytes()));
    if let Some(p) = req.subprotocol {
        assert!(
            config.subprotocols().iter().any(|s| s == p),
            "selected {p:?}, not configured"
        );
        assert!(contains(head, p.as_bytes()), "selected {p:?}, not offered");
    }
    // Our own 101 answer satisfies our own client.
    let mut response = Vec::new();
    server::write_accept(&mut response, req.key, req.subprotocol, req.deflate.as_ref());
    let key = std::str::from_utf8(req.key).expect("a base64 key is ASCII");
    let mut client_config = Config::default();
    for name in config.subprotocols() {
        client_config.add_subprotocol(name).expect("a configured name is valid");
    }
    let parsed = client::parse_response(&response, key, &client_config).unwrap_or_else(|e| {
        panic!(
            "our client refuses our 101 ({e}): {:?}",
            String::from_utf8_lossy(&response)
        )
    });
    let parsed = parsed.expect("the 101 is complete");
    assert_eq!(parsed.head_len, response.len());
    assert_eq!(parsed.subprotocol, req.subprotocol);
}
