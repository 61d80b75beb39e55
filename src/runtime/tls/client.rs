//! The client side: whom to trust (the system's store by default, or a CA
//! file), an optional client certificate (mutual TLS), and — for tests only —
//! no verification at all. Each setter rebuilds the rustls config, so a bad
//! file is reported when it is set, not at connect time.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::pem;
use super::verifier::Verifier;
use super::TlsError;

/// A client's TLS settings. The default verifies servers against the system's
/// trust store. Cheap to clone.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// Trusted authorities in place of the system's.
    roots: Option<Arc<CaFile>>,
    /// Certificate chain and key shown to servers that ask (mutual TLS).
    identity: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
    insecure: bool,
    /// Built from the above by each setter; `None`: the default's, shared.
    config: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("own_roots", &self.roots.is_some())
            .field("client_certificate", &self.identity.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// The authorities of a CA file, and its certificates as they are in it (one
/// of them may be a server's own: see `verifier.rs`).
struct CaFile {
    roots: Arc<RootCertStore>,
    certificates: Vec<CertificateDer<'static>>,
}

/// Equal when built from the same settings (the same shared parts).
impl PartialEq for ClientTls {
    fn eq(&self, other: &ClientTls) -> bool {
        fn same<T>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        same(&self.roots, &other.roots) && same(&self.identity, &other.identity) && self.insecure == other.insecure
    }
}

impl Eq for ClientTls {}

/// The system's trust store (the files OpenSSL reads: on Debian
/// /etc/ssl/certs/ca-certificates.crt; `SSL_CERT_FILE` overrides), kept once
/// read: a failed read is tried again by the next caller.
fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(Arc::clone(roots));
    }
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if store.is_empty() {
        return Err(TlsError::TrustStore);
    }
    Ok(Arc::clone(ROOTS.get_or_init(|| Arc::new(store))))
}

/// The default config (system store, no client certificate), once built.
static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

fn default_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    if let Some(config) = DEFAULT.get() {
        return Ok(Arc::clone(config));
    }
    let built = ClientTls::default().build()?;
    Ok(Arc::clone(DEFAULT.get_or_init(|| built)))
}

/// Reads the system's trust store if it was not read yet: blocking file
/// reads, for a worker thread (see [`ClientTls::waits_for_system_store`]).
pub(crate) fn load_system_store() -> Result<(), TlsError> {
    default_config().map(drop)
}

impl ClientTls {
    /// Trusts the authorities of a PEM file's certificates instead of the system's.
    pub fn set_ca_pem(&mut self, pem_data: &[u8]) -> Result<(), TlsError> {
        let ca_file = CaFile {
            roots: Arc::new(pem::roots(pem_data)?),
            certificates: pem::certificates(pem_data)?,
        };
        self.rebuild(|t| t.roots = Some(Arc::new(ca_file)))
    }

    pub fn set_ca_file(&mut self, path: &str) -> Result<(), TlsError> {
        self.set_ca_pem(&pem::read(path)?)
    }

    /// Shows this certificate chain and key to servers asking for one.
    pub fn set_client_cert_pem(&mut self, chain: &[u8], key: &[u8]) -> Result<(), TlsError> {
        let identity = (pem::certificates(chain)?, pem::private_key(key)?);
        self.rebuild(|t| t.identity = Some(Arc::new(identity)))
    }

    pub fn set_client_cert_files(&mut self, chain_path: &str, key_path: &str) -> Result<(), TlsError> {
        self.set_client_cert_pem(&pem::read(chain_path)?, &pem::read(key_path)?)
    }

    /// INSECURE, for tests only: accepts any server certificate, for any name.
    /// Anyone on the path can then read and change the traffic.
    pub fn set_insecure(&mut self, on: bool) -> Result<(), TlsError> {
        self.rebuild(|t| t.insecure = on)
    }

    /// Applies `change` if the config it gives can be built; else changes nothing.
    fn rebuild(&mut self, change: impl FnOnce(&mut ClientTls)) -> Result<(), TlsError> {
        let mut next = self.clone();
        change(&mut next);
        next.config = Some(next.build()?);
        *self = next;
        Ok(())
    }

    fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = pem::provider();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(pem::VERSIONS)
            .map_err(|_| TlsError::Protocol)?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            let (roots, certificates) = match &self.roots {
                Some(file) => (Arc::clone(&file.roots), file.certificates.clone()),
                None => (system_roots()?, Vec::new()),
            };
            let verifier = Verifier::new(roots, certificates, provider).map_err(|_| TlsError::Credentials)?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        };
        let mut config = match &self.identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.0.clone(), identity.1.clone_key())
                .map_err(|_| TlsError::Credentials)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = pem::alpn();
        Ok(Arc::new(config))
    }

    /// Whether connecting with these settings needs the system's trust store
    /// read first (the default settings, before a read succeeded): a
    /// connection has it read off the reactor's thread, by
    /// [`load_system_store`]. (A setter reads it where it is called.)
    pub(crate) fn waits_for_system_store(&self) -> bool {
        self.config.is_none() && DEFAULT.get().is_none()
    }

    /// The rustls config to connect with.
    pub(super) fn config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        match &self.config {
            Some(config) => Ok(Arc::clone(config)),
            None => default_config(),
        }
    }
}

/// Accepts every certificate (`set_insecure`); signatures are still checked,
/// so that the handshake itself stays sound.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
