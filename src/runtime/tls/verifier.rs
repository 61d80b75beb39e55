//! Verifying a server against the authorities a client trusts (a CA file the
//! program gave, or the system's store): rustls' (webpki's) verification,
//! and one case it refuses that programs meet every day. A
//! self-signed certificate made by `openssl req -x509` is marked CA:TRUE
//! (OpenSSL 3 does so by default), and webpki refuses a CA certificate as a
//! server's. When the server's certificate is byte for byte one of the
//! certificates of the CA file, the program trusts exactly it: it is taken
//! after the checks that still mean something for it (validity, name, usage).
//! The handshake's signature, which proves the server holds its key, is
//! checked by rustls as always. Any other refusal of a CA certificate gets
//! its precise reason.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// The marker of a CA certificate refused as a server's (see `TlsError::CaCertificate`).
#[derive(Debug)]
pub(super) struct CaAsServer;

impl std::fmt::Display for CaAsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a CA certificate is not a server's certificate")
    }
}

impl std::error::Error for CaAsServer {}

/// webpki's verification against trusted authorities, and the certificates
/// of the program's CA file themselves as servers' (see the module's comment).
#[derive(Debug)]
pub(super) struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The CA file's certificates, as they are in it (none for the system's store).
    trusted: Vec<CertificateDer<'static>>,
}

impl Verifier {
    pub(super) fn new(
        roots: Arc<RootCertStore>,
        trusted: Vec<CertificateDer<'static>>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Verifier, rustls::client::VerifierBuilderError> {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider).build()?;
        Ok(Verifier { webpki, trusted })
    }

    /// What to answer for a CA certificate webpki refused as a server's.
    fn ca_certificate(
        &self,
        end_entity: &CertificateDer<'_>,
        cert: &X509Certificate<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if !self.trusted.iter().any(|t| t.as_ref() == end_entity.as_ref()) {
            return Err(if cert.subject().as_raw() == cert.issuer().as_raw() {
                // Self-signed, and not the one trusted: its signer is unknown.
                CertificateError::UnknownIssuer.into()
            } else {
                CertificateError::Other(OtherError(Arc::new(CaAsServer))).into()
            });
        }
        let validity = cert.validity();
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < validity.not_before.timestamp() {
            return Err(CertificateError::NotValidYet.into());
        }
        if now > validity.not_after.timestamp() {
            return Err(CertificateError::Expired.into());
        }
        match cert.extended_key_usage() {
            Ok(None) => {}
            Ok(Some(eku)) if eku.value.any || eku.value.server_auth => {}
            _ => return Err(CertificateError::InvalidPurpose.into()),
        }
        rustls::client::verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let refused = match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(verified) => return Ok(verified),
            Err(refused) => refused,
        };
        // webpki's precise refusals (issuer, validity, name) stand; what it
        // says of a CA certificate as a server's is `Other`.
        if !matches!(refused, Error::InvalidCertificate(CertificateError::Other(_))) {
            return Err(refused);
        }
        match X509Certificate::from_der(end_entity.as_ref()) {
            Ok((_, cert)) if cert.is_ca() => self.ca_certificate(end_entity, &cert, server_name, now),
            _ => Err(refused),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};

    /// A self-signed CA:TRUE certificate for 127.0.0.1, valid in 2020-2030.
    fn self_signed(change: impl FnOnce(&mut CertificateParams)) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        change(&mut params);
        params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().clone()
    }

    fn at(year_2020_plus: u64) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            1_577_836_800 + year_2020_plus * 365 * 86_400,
        ))
    }

    /// The checks a trusted self-signed CA certificate still gets, whatever
    /// order webpki checks things in.
    #[test]
    #[cfg_attr(miri, ignore = "ring's assembly: not run under Miri")]
    fn a_trusted_ca_certificate_is_checked_for_validity_name_and_usage() {
        let good = self_signed(|_| {});
        let client_only = self_signed(|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]);
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates([good.clone(), client_only.clone()]);
        let trusted = vec![good.clone(), client_only.clone()];
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Verifier::new(Arc::new(roots), trusted, provider).unwrap();
        let check = |der: &CertificateDer<'_>, name: &str, now: UnixTime| {
            let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
            let name = ServerName::try_from(name.to_owned()).unwrap();
            verifier.ca_certificate(der, &cert, &name, now).map(drop)
        };
        assert_eq!(check(&good, "127.0.0.1", at(5)), Ok(()));
        assert_eq!(check(&good, "127.0.0.1", at(11)), Err(CertificateError::Expired.into()));
        assert_eq!(
            check(
                &good,
                "127.0.0.1",
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(0))
            ),
            Err(CertificateError::NotValidYet.into())
        );
        assert!(matches!(
            check(&good, "127.0.0.2", at(5)),
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForNameContext { .. }
            ))
        ));
        assert_eq!(
            check(&client_only, "127.0.0.1", at(5)),
            Err(CertificateError::InvalidPurpose.into())
        );
        // Through the whole verification too.
        let name = ServerName::try_from("127.0.0.1").unwrap();
        assert!(verifier.verify_server_cert(&good, &[], &name, &[], at(5)).is_ok());
    }
}
