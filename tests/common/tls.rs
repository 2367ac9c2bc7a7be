// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

//! Certificates for tests of TLS against an internal CA (rcgen): a CA, and
//! a server certificate it issued for `localhost` and 127.0.0.1.

use std::path::{Path, PathBuf};

/// PEM files for a server behind an internal CA.
pub struct Certificates {
    /// The CA's certificate.
    pub ca: PathBuf,
    /// The server's certificate, issued by the CA for `localhost` and
    /// 127.0.0.1.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// Generates a CA and a server certificate it issued, as PEM files in
/// `dir` (`ca.pem`, `relay.pem`, `relay-key.pem`).
pub fn certificates(dir: &Path) -> Certificates {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kpiwatch test CA");
    let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let key = KeyPair::generate().expect("a relay key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("relay certificate parameters");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("the relay certificate");
    let files = Certificates {
        ca: dir.join("ca.pem"),
        cert: dir.join("relay.pem"),
        key: dir.join("relay-key.pem"),
    };
    std::fs::write(&files.ca, ca.pem()).expect("ca.pem written");
    std::fs::write(&files.cert, cert.pem()).expect("relay.pem written");
    std::fs::write(&files.key, key.serialize_pem()).expect("relay-key.pem written");
    files
}
