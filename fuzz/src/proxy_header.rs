//! The PROXY protocol header parser (`proto::proxy_header`, over `ppp`) on
//! arbitrary bytes: a complete header is a prefix of the input no longer
//! than the cap, found again in that prefix alone; "invalid" is final (more
//! bytes never make it valid); "incomplete" only under the cap.

use wsconn::proto::proxy_header::{parse, ProxyHeader, MAX_HEADER_LEN};

pub fn check(data: &[u8]) {
    match parse(data) {
        ProxyHeader::Complete { len, source } => {
            assert!(len > 0 && len <= data.len() && len <= MAX_HEADER_LEN, "length {len}");
            assert_eq!(
                parse(&data[..len]),
                ProxyHeader::Complete { len, source },
                "the header alone"
            );
        }
        ProxyHeader::Invalid => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n\x00\x11");
            assert_eq!(parse(&more), ProxyHeader::Invalid, "invalid is final");
        }
        ProxyHeader::Incomplete => assert!(data.len() < MAX_HEADER_LEN),
    }
}
