//! The server side: a certificate chain and key made into a shared rustls
//! config. An acceptor holds one and may swap it (reload) at any time: each
//! connection keeps the config it started with.

use std::sync::Arc;

use super::pem;
use super::TlsError;

/// A server's TLS identity and settings (TLS 1.2 and 1.3, ALPN `http/1.1`).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub(super) config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// From a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<ServerTls, TlsError> {
        let chain = pem::certificates(chain)?;
        let key = pem::private_key(key)?;
        let mut config = rustls::ServerConfig::builder_with_provider(pem::provider())
            .with_protocol_versions(pem::VERSIONS)
            .map_err(|_| TlsError::Protocol)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|_| TlsError::Credentials)?;
        config.alpn_protocols = pem::alpn();
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }

    /// From the paths of a PEM certificate chain and a PEM private key.
    pub fn from_files(chain_path: &str, key_path: &str) -> Result<ServerTls, TlsError> {
        ServerTls::from_pem(&pem::read(chain_path)?, &pem::read(key_path)?)
    }
}
