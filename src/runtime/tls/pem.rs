//! PEM certificate chains and private keys, from memory or files.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Every certificate of a PEM chain (at least one).
pub(super) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Credentials)?;
    if chain.is_empty() {
        return Err(TlsError::Credentials);
    }
    Ok(chain)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(super) fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| TlsError::Credentials)
}

/// The authorities of a PEM file's certificates (at least one usable).
pub(super) fn roots(pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certificates(pem)?);
    if added == 0 {
        return Err(TlsError::Credentials);
    }
    Ok(store)
}

/// A file's bytes; any failure to read it is a credentials error.
pub(super) fn read(path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|_| TlsError::Credentials)
}

/// The crypto provider every config uses: ring.
pub(super) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 and 1.2.
pub(super) const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one application protocol spoken over TLS: HTTP/1.1 (then the upgrade).
pub(super) fn alpn() -> Vec<Vec<u8>> {
    vec![b"http/1.1".to_vec()]
}
