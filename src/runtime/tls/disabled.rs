//! Without the `tls` feature: the same names, every constructor refusing with
//! [`TlsError::NotBuilt`], and no stream that could exist.

use super::TlsError;
use crate::runtime::transport::Socket;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    _none: (),
}

#[derive(Clone, Debug)]
pub struct ServerTls {
    _none: (),
}

impl ServerTls {
    pub fn from_pem(_chain: &[u8], _key: &[u8]) -> Result<ServerTls, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn from_files(_chain_path: &str, _key_path: &str) -> Result<ServerTls, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn with_name_pem(&self, _name: &str, _chain: &[u8], _key: &[u8]) -> Result<ServerTls, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn with_name_files(&self, _name: &str, _chain_path: &str, _key_path: &str) -> Result<ServerTls, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn with_default_pem(&self, _chain: &[u8], _key: &[u8]) -> Result<ServerTls, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn with_client_ca_pem(&self, _ca_pem: Option<&[u8]>) -> Result<ServerTls, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn with_client_ca_file(&self, _ca_path: Option<&str>) -> Result<ServerTls, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn requires_client_certificate(&self) -> bool {
        false
    }

    pub(crate) fn counting_refusals_in(self, _counter: &std::sync::Arc<std::sync::atomic::AtomicU64>) -> ServerTls {
        self
    }

    pub fn refused(&self) -> u64 {
        0
    }

    pub fn with_default_files(&self, _chain_path: &str, _key_path: &str) -> Result<ServerTls, TlsError> {
        Err(TlsError::NotBuilt)
    }
}

impl ClientTls {
    pub fn set_ca_pem(&mut self, _pem: &[u8]) -> Result<(), TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn set_ca_file(&mut self, _path: &str) -> Result<(), TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn set_client_cert_pem(&mut self, _chain: &[u8], _key: &[u8]) -> Result<(), TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn set_client_cert_files(&mut self, _chain_path: &str, _key_path: &str) -> Result<(), TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub fn set_insecure(&mut self, _on: bool) -> Result<(), TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub(crate) fn waits_for_system_store(&self) -> bool {
        false
    }
}

/// No TLS stream can exist in this build.
pub(crate) enum Stream {}

impl Stream {
    pub(crate) fn server(_tls: &ServerTls) -> Result<Stream, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub(crate) fn client(_tls: &ClientTls, _host: &str) -> Result<Stream, TlsError> {
        Err(TlsError::NotBuilt)
    }

    pub(crate) fn within(inner: Box<Stream>, _outer: Option<Box<Stream>>) -> Option<Box<Stream>> {
        Some(inner)
    }

    pub(crate) fn read_records(&mut self, _socket: Socket) -> std::io::Result<usize> {
        match *self {}
    }

    pub(crate) fn read_records_from(&mut self, _records: &[u8]) -> std::io::Result<usize> {
        match *self {}
    }

    pub(crate) fn write_records_into(&mut self, _out: &mut Vec<u8>) -> std::io::Result<usize> {
        match *self {}
    }

    pub(crate) fn process(&mut self) -> Result<(), TlsError> {
        match *self {}
    }

    pub(crate) fn read_plaintext(&mut self, _buf: &mut [u8]) -> usize {
        match *self {}
    }

    pub(crate) fn write_plaintext(&mut self, _data: &[u8]) -> usize {
        match *self {}
    }

    pub(crate) fn wants_write(&self) -> bool {
        match *self {}
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        match *self {}
    }

    pub(crate) fn write_records(&mut self, _socket: Socket) -> std::io::Result<usize> {
        match *self {}
    }

    pub(crate) fn close(&mut self, _socket: Socket) {
        match *self {}
    }

    pub(crate) fn count_refusal(&self) {
        match *self {}
    }

    pub(crate) fn server_name(&self) -> Option<&str> {
        match *self {}
    }

    pub(crate) fn peer_certificate(&self, _index: usize) -> Option<&[u8]> {
        match *self {}
    }
}

pub(crate) fn load_system_store() -> Result<(), TlsError> {
    Err(TlsError::NotBuilt)
}
