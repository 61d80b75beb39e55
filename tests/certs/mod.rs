#![allow(dead_code)]
//! Test certificates made at run time (rcgen): a CA, and leaf certificates it
//! signs. No key is ever committed.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

/// A certificate authority that signs test certificates.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate (the server's or a client's) and its key, in PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A certificate that expired in 2021.
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    /// A certificate for `names` that is itself a CA (CA:TRUE), as an
    /// intermediate mistaken for a server's certificate would be.
    pub fn ca_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained))
    }

    fn leaf_with(&self, names: &[&str], change: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut params = leaf_params(names);
        change(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(n.to_string().try_into().unwrap()),
        })
        .collect();
    params
}

/// A self-signed certificate for `names` marked CA:TRUE, as `openssl req
/// -x509` makes by default (OpenSSL 3); `expired`: it expired in 2021.
pub fn self_signed_ca(names: &[&str], expired: bool) -> Leaf {
    let mut params = leaf_params(names);
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A fresh directory under target/ for a test's certificate files.
pub fn dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("test-certs")
        .join(format!("{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to `dir/name`; returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `echo_server` arguments serving TLS with a certificate for `names` from a
/// new test CA (files under a directory named after `tag`), then "0" (any
/// port); and the CA's file, for the client to trust.
pub fn echo_server_tls_args(tag: &str, names: &[&str]) -> (Vec<String>, String) {
    let dir = dir(tag);
    let ca = TestCa::new("wsconn test CA");
    let leaf = ca.leaf(names);
    let args = vec![
        "--tls-cert".to_string(),
        write(&dir, "cert.pem", &leaf.cert_pem),
        "--tls-key".to_string(),
        write(&dir, "key.pem", &leaf.key_pem),
        "0".to_string(),
    ];
    (args, write(&dir, "ca.pem", &ca.cert_pem))
}
