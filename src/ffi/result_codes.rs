// The C result codes: the one list of them. Each row is a code's doc, its name
// and value, its `wsconn_strerror` message and the Rust errors that map to it.
// `result.rs` turns this list into the `wsconn_result` enum, the messages and
// the mapping; build.rs reads this same file to write the enum into the header.
result_codes! {
    /// Return codes of wsconn functions: `WSCONN_OK` (0) or a negative error.
    /// A call that fails changed nothing (a refused send queued nothing).
    enum wsconn_result;
    /// Success.
    WSCONN_OK = 0, "success";
    /// A required pointer argument was NULL.
    WSCONN_ERR_NULL = -1, "a required pointer argument was NULL", [Null];
    /// An argument has a bad value: unknown message type, close code not allowed on
    /// the wire, control payload over 125 bytes, text that is not UTF-8, a string
    /// that is not UTF-8, a bad URL, IP address or port, or a call out of order
    /// (e.g. a whole message while a fragmented one is being sent).
    WSCONN_ERR_INVALID_ARGUMENT = -2, "invalid argument", [Session(S::InvalidArgument), Runtime(R::InvalidArgument(_))];
    /// An internal panic was caught at the API boundary (a bug in wsconn).
    WSCONN_ERR_PANIC = -3, "internal panic caught at the API boundary", [Panic];
    /// Output is over the configured limit, or a reactor's queue of jobs from
    /// other threads is full (`wsconn_reactor_defer`, `wsconn_publish_async`):
    /// nothing was queued; retry once output drains or the reactor has run.
    WSCONN_ERR_FULL = -4, "output buffer full: nothing was queued, retry once output drains", [Session(S::Full), Runtime(R::QueueFull)];
    /// The opening handshake is not complete yet.
    WSCONN_ERR_NOT_OPEN = -5, "the opening handshake is not complete", [Session(S::NotOpen)];
    /// A close frame was already sent, or the session failed: nothing more is sent.
    WSCONN_ERR_CLOSED = -6, "the connection is closing or closed", [Session(S::Closed)];
    /// The call is not allowed from inside a callback of the same session or
    /// connection (e.g. feeding a session from its own callback, or dispatching
    /// a reactor from inside its dispatch).
    WSCONN_ERR_REENTRANT = -7, "not allowed from inside a callback of the same session", [Session(S::Reentrant), Runtime(R::Reentrant)];
    /// The peer broke RFC 6455; a close frame with 1002 was queued.
    WSCONN_ERR_PROTOCOL = -8, "protocol error: the peer broke RFC 6455 (close 1002 sent)", [Session(S::Protocol(_))];
    /// The peer sent text or a close reason that is not UTF-8; close 1007 was queued.
    WSCONN_ERR_INVALID_UTF8 = -9, "invalid UTF-8 from the peer (close 1007 sent)", [Session(S::InvalidUtf8)];
    /// The peer's frame or message exceeds the configured limit; close 1009 was queued.
    WSCONN_ERR_MESSAGE_TOO_BIG = -10, "frame or message larger than the configured limit (close 1009 sent)", [Session(S::MessageTooBig)];
    /// The opening handshake was invalid (server: an HTTP error response was queued).
    WSCONN_ERR_HANDSHAKE = -11, "bad opening handshake", [Session(S::Handshake(_))];
    /// The opening handshake exceeded the configured size (server: 431 was queued).
    WSCONN_ERR_HANDSHAKE_TOO_LARGE = -12, "opening handshake larger than the configured limit", [Session(S::HandshakeTooLarge)];
    /// The peer closed the TCP connection without a close handshake (1006).
    WSCONN_ERR_EOF = -13, "the peer closed the TCP connection without a close handshake", [Session(S::Eof)];
    /// A socket or system call failed (bind, listen, connect, resolve, read, write).
    WSCONN_ERR_IO = -14, "a socket or system call failed", [Runtime(R::Io(_))];
    /// A handshake, pong or closing-handshake timer expired (see `wsconn_close_error`).
    WSCONN_ERR_TIMEOUT = -15, "timed out", [Runtime(R::Timeout(_))];
    /// The call is not valid in the object's current state (e.g. start twice,
    /// start without an fd, release a reactor from inside its dispatch).
    WSCONN_ERR_STATE = -16, "not valid in the object's current state", [Runtime(R::State)];
    /// TLS was asked for (`wss://`, a TLS acceptor or option) but this build of
    /// the library has no TLS (cargo feature `tls` off).
    WSCONN_ERR_TLS_NOT_BUILT = -17, "TLS is not built into this library", [Runtime(R::Tls(T::NotBuilt))];
    /// A TLS certificate or key file is missing, unreadable or not valid PEM, or
    /// the key does not match the certificate (nothing was changed).
    WSCONN_ERR_TLS_CREDENTIALS = -18, "TLS certificate or key missing, unreadable or invalid", [Runtime(R::Tls(T::Credentials))];
    /// The system's trust store (on Debian /etc/ssl/certs/ca-certificates.crt)
    /// could not be read: install ca-certificates, or set a CA file.
    WSCONN_ERR_TLS_TRUST_STORE = -19, "the system's TLS trust store could not be read", [Runtime(R::Tls(T::TrustStore))];
    /// The peer's certificate is not signed by a trusted authority.
    WSCONN_ERR_TLS_UNKNOWN_CA = -20, "TLS: the peer's certificate is signed by an unknown authority", [Runtime(R::Tls(T::UnknownCa))];
    /// The server's certificate is not valid for the host name of the URL.
    WSCONN_ERR_TLS_NAME_MISMATCH = -21, "TLS: the server's certificate does not match the host name", [Runtime(R::Tls(T::NameMismatch))];
    /// The peer's certificate has expired or is not valid yet.
    WSCONN_ERR_TLS_EXPIRED = -22, "TLS: the peer's certificate has expired or is not yet valid", [Runtime(R::Tls(T::Expired))];
    /// The peer's certificate was refused for another reason (revoked, bad
    /// signature, wrong usage…).
    WSCONN_ERR_TLS_BAD_CERTIFICATE = -23, "TLS: the peer's certificate was refused", [Runtime(R::Tls(T::BadCertificate))];
    /// The peer sent a TLS alert and ended the handshake (e.g. it does not trust
    /// our certificate, or wants a client certificate).
    WSCONN_ERR_TLS_ALERT = -24, "TLS: the peer sent an alert", [Runtime(R::Tls(T::Alert))];
    /// The peer does not speak TLS (a plain server on a `wss://` port, or plain
    /// HTTP or garbage on a TLS port).
    WSCONN_ERR_TLS_NOT_TLS = -25, "TLS: the peer does not speak TLS", [Runtime(R::Tls(T::NotTls))];
    /// Any other TLS failure (no common version or cipher, a corrupt record…).
    WSCONN_ERR_TLS_PROTOCOL = -26, "TLS protocol failure", [Runtime(R::Tls(T::Protocol))];
    /// The server refused the upgrade: its origin is not allowed (403), or
    /// the program rejected it (`wsconn_upgrade_reject`); see `wsconn_close_error`.
    WSCONN_ERR_REFUSED = -27, "the upgrade was refused (origin not allowed, or by the program)", [Session(S::OriginNotAllowed), Session(S::UpgradeRefused(_))];
    /// A permessage-deflate setting was given to a config with compression off
    /// (`wsconn_config_set_deflate` first; nothing was changed).
    WSCONN_ERR_DEFLATE_OFF = -28, "permessage-deflate is off in this config", [Session(S::DeflateOff)];
    /// The peer sent more than the TLS layer buffers at once (a handshake
    /// message over 64 KiB): the connection was ended.
    WSCONN_ERR_TLS_BUFFER_FULL = -29, "TLS: the peer's records overflowed the TLS buffers", [Runtime(R::Tls(T::BufferFull))];
    /// The server's certificate is a CA certificate (CA:TRUE) signed by another
    /// authority: a CA's, not a server's. (A self-signed one, as `openssl req
    /// -x509` makes, is trusted when the CA file holds exactly it; not in the
    /// file, it is `WSCONN_ERR_TLS_UNKNOWN_CA`.)
    WSCONN_ERR_TLS_CA_CERTIFICATE = -30, "TLS: the server's certificate is a CA certificate, not one for a server", [Runtime(R::Tls(T::CaCertificate))];
    /// The server answered the opening handshake with an HTTP status other
    /// than 101 (`wsconn_handshake_status` tells which: 401, 403, 503, or a
    /// redirect not followed…).
    WSCONN_ERR_HANDSHAKE_REFUSED = -31, "the server refused the upgrade (an HTTP status other than 101)", [Session(S::Refused(_))];
    /// A redirect was not followed: more than `max_redirects`, a loop, from
    /// `wss://` to `ws://`, or a `Location` that is missing or not a
    /// WebSocket URL.
    WSCONN_ERR_REDIRECT = -32, "a redirect was not followed (too many, a loop, wss:// to ws://, a bad Location)", [Runtime(R::Redirect(_))];
    /// The proxy refused to open the tunnel: `wsconn_proxy_status` gives its
    /// HTTP status (403, 502…) or SOCKS5 reply (1-8).
    WSCONN_ERR_PROXY_REFUSED = -33, "the proxy refused the tunnel", [Runtime(R::ProxyRefused(_))];
    /// The proxy wants credentials, or refused those given:
    /// `wsconn_proxy_status` gives 407 (or 401, as tinyproxy answers wrong
    /// ones) for HTTP, or SOCKS5's answer (255: no acceptable method; else
    /// the status of RFC 1929).
    WSCONN_ERR_PROXY_AUTH = -34, "the proxy refused the credentials", [Runtime(R::ProxyAuth(_))];
    /// The proxy closed the connection before the tunnel was open, or
    /// answered what is not HTTP or SOCKS5 (or too much of it).
    WSCONN_ERR_PROXY_PROTOCOL = -35, "the proxy broke off the dialogue (closed it, or answered what is not HTTP or SOCKS5)", [Runtime(R::ProxyProtocol(_))];
    /// permessage-deflate: the peer's compressed messages inflated to more
    /// than the configured ratio allows for what it sent
    /// (`wsconn_config_set_deflate_max_ratio`); close 1009 was queued.
    WSCONN_ERR_INFLATE_RATIO = -36, "the peer's compressed messages inflate too much for their size (close 1009 sent)", [Session(S::InflateRatio)];
    /// The reactor drained (`wsconn_reactor_drain`): the connection was cut
    /// at the drain's deadline before its closing handshake completed, was a
    /// server handshake the drain refused with 503, or a client connection
    /// not yet open (or waiting to reconnect) when the drain began
    /// (`wsconn_close_error`).
    WSCONN_ERR_DRAINED = -37, "ended by the reactor's drain", [Runtime(R::Drained)];
}
