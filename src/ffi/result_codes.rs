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
    /// Output is over the configured limit: nothing was queued; write the pending
    /// output and retry.
    WSCONN_ERR_FULL = -4, "output buffer full: nothing was queued, retry once output drains", [Session(S::Full)];
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
}
