//! wss:// for the load generator: a rustls client (ring provider) that trusts
//! one CA file, and the transport a connection writes and reads through.
//! Resumption is off, so that every connection makes a full handshake (what
//! the handshake rows measure).

mod transport;
mod verify;

pub use transport::Transport;

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use verify::VerifyOnce;

/// The client settings every connection shares.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    /// Trusts the certificates of the PEM file `ca`; checks the server's
    /// certificate against `host` (an address: its IP SAN).
    pub fn new(ca: &str, host: IpAddr) -> Result<TlsClient, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
            roots
                .add(cert.map_err(|e| format!("{ca}: {e}"))?)
                .map_err(|e| format!("{ca}: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = VerifyOnce::new(Arc::new(roots), Arc::clone(&provider))?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Ok(TlsClient {
            config: Arc::new(config),
            name: ServerName::IpAddress(host.into()),
        })
    }
}
