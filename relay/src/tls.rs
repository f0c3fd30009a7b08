//! TLS for QUIC: the relay's self-signed key and certificate, its key pin, and the server
//! configuration (TLS 1.3 only, ALPN `postern/1`, 0-RTT and session tickets off). The
//! client half, which accepts exactly the pinned key, is `postern-transport`'s.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use postern_protocol::ALPN;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// TLS set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Key or certificate generation failed.
    #[error("could not generate the relay key and certificate: {0}")]
    Generate(String),
    /// The certificate file does not hold a usable certificate.
    #[error("the relay certificate is not a valid X.509 certificate")]
    BadCertificate,
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

/// The ring crypto provider, the only one this project uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A relay's key pair and self-signed certificate, as DER.
pub struct RelayIdentity {
    /// The certificate (self-signed, P-256).
    pub cert_der: Vec<u8>,
    /// The private key (PKCS#8). Kept only in the relay's data directory, mode 0600.
    pub key_der: Vec<u8>,
}

impl fmt::Debug for RelayIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayIdentity")
            .field("cert_der", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

impl RelayIdentity {
    /// A fresh P-256 key and self-signed certificate.
    pub fn generate() -> Result<Self, TlsError> {
        let ck = rcgen::generate_simple_self_signed(vec!["postern-relay".to_owned()])
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        Ok(Self {
            cert_der: ck.cert.der().to_vec(),
            key_der: ck.signing_key.serialize_der(),
        })
    }

    /// The key pin: SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub fn pin(&self) -> Result<[u8; 32], TlsError> {
        spki_pin(&self.cert_der)
    }
}

/// SHA-256 of the SubjectPublicKeyInfo (DER) of an X.509 certificate.
pub fn spki_pin(cert_der: &[u8]) -> Result<[u8; 32], TlsError> {
    let der = CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| TlsError::BadCertificate)?;
    let spki = cert.subject_public_key_info();
    Ok(Sha256::digest(spki.as_ref()).into())
}

/// The relay's rustls server configuration.
pub fn server_config(identity: &RelayIdentity) -> Result<rustls::ServerConfig, TlsError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(identity.cert_der.clone())], key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT stays off (max_early_data_size 0, the default): early data can be replayed.
    config.max_early_data_size = 0;
    // No resumption tickets: every connection does a full handshake, so nothing about a
    // member's past sessions is kept on either side.
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename) with mode 0600.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
