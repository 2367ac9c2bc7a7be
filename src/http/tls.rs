//! TLS for the listener: the certificate chain and private key that
//! `[service] cert_file` and `key_file` name. They are read and checked
//! with the configuration ([`read_chain`], [`read_key`], then
//! [`TlsIdentity::new`] builds the rustls server configuration once, which
//! refuses a key that does not match the certificate), so a wrong path or
//! file is a config error at file:line:column, and `kpiwatch check` finds
//! it. The service then serves https with [`TlsIdentity::server_config`]
//! (rustls with ring, like the rest of kpiwatch's TLS). A renewed
//! certificate is read at the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The listener's certificate chain and private key, checked and ready
/// for rustls. Its `Debug` shows the paths, never the key.
#[derive(Clone)]
pub struct TlsIdentity {
    cert_file: PathBuf,
    key_file: PathBuf,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// Reads `cert_file`: PEM certificates, the server's first, then the
/// intermediates. The error says what to give instead.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read cert_file {}: {e}; give the path of the server's certificate chain in PEM (relative to the working directory)",
            path.display()
        )
    })?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cert_file {} is not valid PEM ({e})", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "cert_file {} holds no certificate; it needs the server's \"-----BEGIN CERTIFICATE-----\" block, then any intermediates",
            path.display()
        ));
    }
    Ok(chain)
}

/// Reads `key_file`: one PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read key_file {}: {e}; give the path of the certificate's private key in PEM",
            path.display()
        )
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!(
            "key_file {} holds no usable private key ({e}); it needs a \"-----BEGIN PRIVATE KEY-----\" (or RSA / EC PRIVATE KEY) block, unencrypted",
            path.display()
        )
    })
}

impl TlsIdentity {
    /// The identity of `chain` and `key`; refuses a key rustls cannot use
    /// or one that is not the certificate's.
    pub fn new(
        cert_file: &Path,
        chain: Vec<CertificateDer<'static>>,
        key_file: &Path,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                format!(
                    "key_file {} does not go with cert_file {} ({e}); give the private key of the certificate's public key",
                    key_file.display(),
                    cert_file.display()
                )
            })?;
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            config: Arc::new(config),
        })
    }

    /// The rustls configuration the listener serves with.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}
