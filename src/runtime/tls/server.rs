//! The server side: certificate chains and keys made into a shared rustls
//! config — a default one, and others chosen by the name the client asks for
//! (SNI). An acceptor holds one and may swap it (reload) at any time: each
//! connection keeps the config it started with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use super::pem;
use super::TlsError;

/// A server's TLS identities and settings (TLS 1.2 and 1.3, ALPN
/// `http/1.1`). Cheap to clone; changes make a new one.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub(super) config: Arc<rustls::ServerConfig>,
    certificates: Arc<ByName>,
    /// Authorities a client certificate must be signed by (mutual TLS);
    /// `None`: no client certificate asked for.
    client_roots: Option<Arc<RootCertStore>>,
    /// Handshakes refused (not TLS, bad records, nothing in common), shared
    /// by the configs an acceptor serves in turn (see `counting_refusals_in`).
    pub(super) refused: Arc<AtomicU64>,
}

/// The certificate for each name, and the one for any other (or no) name.
#[derive(Debug, Default, Clone)]
struct ByName {
    default: Option<Arc<CertifiedKey>>,
    names: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello
            .server_name()
            .and_then(|name| self.names.get(&name.to_ascii_lowercase()));
        named.or(self.default.as_ref()).cloned()
    }
}

/// A PEM chain and key checked to belong together.
fn certified(chain: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let (chain, key) = (pem::certificates(chain)?, pem::private_key(key)?);
    CertifiedKey::from_der(chain, key, &pem::provider())
        .map(Arc::new)
        .map_err(|_| TlsError::Credentials)
}

impl ServerTls {
    /// From a PEM certificate chain (leaf first) and a PEM private key, served
    /// whatever name the client asks for.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<ServerTls, TlsError> {
        let certificates = ByName {
            default: Some(certified(chain, key)?),
            names: HashMap::new(),
        };
        ServerTls::build(certificates, None)
    }

    /// From the paths of a PEM certificate chain and a PEM private key.
    pub fn from_files(chain_path: &str, key_path: &str) -> Result<ServerTls, TlsError> {
        ServerTls::from_pem(&pem::read(chain_path)?, &pem::read(key_path)?)
    }

    /// The same, plus this chain and key for clients asking for `name` (SNI,
    /// case-insensitive; replaces an earlier one for the name).
    pub fn with_name_pem(&self, name: &str, chain: &[u8], key: &[u8]) -> Result<ServerTls, TlsError> {
        let mut certificates = ByName::clone(&self.certificates);
        certificates
            .names
            .insert(name.to_ascii_lowercase(), certified(chain, key)?);
        ServerTls::build(certificates, self.client_roots.clone())
    }

    /// The same names, with this chain and key for the others: a reload of
    /// the default certificate that keeps the certificates chosen by name.
    pub fn with_default_pem(&self, chain: &[u8], key: &[u8]) -> Result<ServerTls, TlsError> {
        let mut certificates = ByName::clone(&self.certificates);
        certificates.default = Some(certified(chain, key)?);
        ServerTls::build(certificates, self.client_roots.clone())
    }

    pub fn with_default_files(&self, chain_path: &str, key_path: &str) -> Result<ServerTls, TlsError> {
        self.with_default_pem(&pem::read(chain_path)?, &pem::read(key_path)?)
    }

    pub fn with_name_files(&self, name: &str, chain_path: &str, key_path: &str) -> Result<ServerTls, TlsError> {
        self.with_name_pem(name, &pem::read(chain_path)?, &pem::read(key_path)?)
    }

    /// The same certificates, requiring from each client a certificate signed
    /// by one of the authorities in `ca_pem` (mutual TLS); `None`: no client
    /// certificate asked for.
    pub fn with_client_ca_pem(&self, ca_pem: Option<&[u8]>) -> Result<ServerTls, TlsError> {
        let roots = ca_pem.map(pem::roots).transpose()?.map(Arc::new);
        ServerTls::build(ByName::clone(&self.certificates), roots)
    }

    pub fn with_client_ca_file(&self, ca_path: Option<&str>) -> Result<ServerTls, TlsError> {
        match ca_path {
            Some(path) => self.with_client_ca_pem(Some(&pem::read(path)?)),
            None => self.with_client_ca_pem(None),
        }
    }

    /// Whether clients must show a certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.client_roots.is_some()
    }

    fn build(certificates: ByName, client_roots: Option<Arc<RootCertStore>>) -> Result<ServerTls, TlsError> {
        let certificates = Arc::new(certificates);
        let builder = rustls::ServerConfig::builder_with_provider(pem::provider())
            .with_protocol_versions(pem::VERSIONS)
            .map_err(|_| TlsError::Protocol)?;
        let builder = match &client_roots {
            Some(roots) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), pem::provider())
                    .build()
                    .map_err(|_| TlsError::Credentials)?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&certificates) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = pem::alpn();
        Ok(ServerTls {
            config: Arc::new(config),
            certificates,
            client_roots,
            refused: Arc::default(),
        })
    }

    /// The same, counting its refused handshakes in `counter` (an acceptor's
    /// count, kept across reloads).
    pub(crate) fn counting_refusals_in(mut self, counter: &Arc<AtomicU64>) -> ServerTls {
        self.refused = Arc::clone(counter);
        self
    }

    /// Handshakes refused so far by connections started with this config.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}
