//! What can go wrong with TLS, one kind per failure a program tells apart.

/// A TLS failure: setting it up, or a handshake or record that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The library was built without the `tls` feature.
    #[error("TLS is not built into this library")]
    NotBuilt,
    /// A certificate or key file is missing, unreadable or not valid PEM, or
    /// the key does not match the certificate.
    #[error("TLS certificate or key missing, unreadable or invalid")]
    Credentials,
    /// The system trust store could not be read (no usable certificate in it).
    #[error("the system's TLS trust store could not be read")]
    TrustStore,
    /// The peer's certificate is not signed by a trusted authority.
    #[error("TLS: the peer's certificate is signed by an unknown authority")]
    UnknownCa,
    /// The server's certificate is not valid for the host name connected to.
    #[error("TLS: the server's certificate does not match the host name")]
    NameMismatch,
    /// The peer's certificate has expired (or is not valid yet).
    #[error("TLS: the peer's certificate has expired or is not yet valid")]
    Expired,
    /// The peer's certificate was refused for another reason (revoked, bad
    /// signature, wrong usage…).
    #[error("TLS: the peer's certificate was refused")]
    BadCertificate,
    /// The peer sent a TLS alert (e.g. it refused our certificate).
    #[error("TLS: the peer sent an alert")]
    Alert,
    /// The peer does not speak TLS (e.g. plain HTTP on a TLS port, or a plain
    /// server answering a `wss://` client).
    #[error("TLS: the peer does not speak TLS")]
    NotTls,
    /// Any other TLS failure (no common version or cipher, a broken record…).
    #[error("TLS protocol failure")]
    Protocol,
    /// The peer sent more than the TLS layer buffers at once (a handshake
    /// message over 64 KiB).
    #[error("TLS: the peer's records overflowed the TLS buffers")]
    BufferFull,
    /// The server's certificate is a CA certificate (CA:TRUE) signed by
    /// another: a server's certificate must not be a CA's, unless it is the
    /// very certificate of the client's CA file.
    #[error("TLS: the server's certificate is a CA certificate, not one for a server")]
    CaCertificate,
}

#[cfg(feature = "tls")]
impl From<&rustls::Error> for TlsError {
    fn from(error: &rustls::Error) -> TlsError {
        use rustls::CertificateError as C;
        match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer => TlsError::UnknownCa,
                C::Other(other) if other.0.downcast_ref::<super::verifier::CaAsServer>().is_some() => {
                    TlsError::CaCertificate
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => TlsError::NameMismatch,
                C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                    TlsError::Expired
                }
                _ => TlsError::BadCertificate,
            },
            rustls::Error::AlertReceived(_) => TlsError::Alert,
            rustls::Error::InvalidMessage(_) => TlsError::NotTls,
            _ => TlsError::Protocol,
        }
    }
}
