//! Server certificate checks done once per certificate. The first handshake
//! with a certificate checks its chain against the CA and the server's
//! handshake signature (webpki, ring); later handshakes presenting the same
//! bytes are taken as checked. A full client check costs two ECDSA
//! verifications, more than the server's one signature, so on two cores a
//! checking generator would be the limit of the handshake rows instead of
//! the server.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

#[derive(Debug)]
pub(super) struct VerifyOnce {
    inner: Arc<WebPkiServerVerifier>,
    /// Chains (leaf first) checked against the CA.
    chains: Mutex<Vec<Vec<CertificateDer<'static>>>>,
    /// Certificates whose handshake signature was checked.
    signers: Mutex<Vec<CertificateDer<'static>>>,
}

impl VerifyOnce {
    pub(super) fn new(roots: Arc<RootCertStore>, provider: Arc<CryptoProvider>) -> Result<VerifyOnce, String> {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(VerifyOnce {
            inner,
            chains: Mutex::new(Vec::new()),
            signers: Mutex::new(Vec::new()),
        })
    }

    /// Runs `check` unless `key` is in `seen`; remembers it when it passes.
    fn once<K: PartialEq, T>(
        seen: &Mutex<Vec<K>>,
        key: impl Fn() -> K,
        check: impl FnOnce() -> Result<T, rustls::Error>,
        assume: T,
    ) -> Result<T, rustls::Error> {
        let mut seen = seen.lock().unwrap();
        let k = key();
        if seen.contains(&k) {
            return Ok(assume);
        }
        let checked = check()?;
        seen.push(k);
        Ok(checked)
    }

    /// The server's handshake signature, checked once per certificate.
    fn signature(
        &self,
        cert: &CertificateDer<'_>,
        check: impl FnOnce() -> Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let key = || cert.clone().into_owned();
        VerifyOnce::once(&self.signers, key, check, HandshakeSignatureValid::assertion())
    }
}

impl ServerCertVerifier for VerifyOnce {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = || {
            std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect()
        };
        let check = || {
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        };
        VerifyOnce::once(&self.chains, chain, check, ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(cert, || self.inner.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(cert, || self.inner.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
