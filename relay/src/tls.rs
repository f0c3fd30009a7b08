//! TLS for QUIC: the relay's key and self-signed certificate, its key pin, and the server
//! configuration (TLS 1.3 only, ALPN `h3`, 0-RTT and session tickets off). The client
//! half, which accepts exactly the pinned key, is `postern-transport`'s.
//!
//! The certificate a client receives is made afresh at each start from the stored key
//! for the relay's public host name, so it names no one but the operator's domain (the
//! pin covers only the key, so it does not change).

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
    /// A fresh P-256 key and a self-signed certificate naming no one.
    pub fn generate() -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
        let cert_der = certificate_for(&key, None)?;
        Ok(Self {
            cert_der,
            key_der: key.serialize_der(),
        })
    }

    /// A self-signed certificate for this key that names `public_host` when it is a DNS
    /// name and nothing otherwise: what the relay shows a client (or a prober).
    pub fn served_certificate(&self, public_host: &str) -> Result<Vec<u8>, TlsError> {
        let key = rcgen::KeyPair::try_from(self.key_der.as_slice())
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let name = public_host
            .parse::<std::net::IpAddr>()
            .is_err()
            .then_some(public_host);
        certificate_for(&key, name)
    }

    /// The key pin: SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub fn pin(&self) -> Result<[u8; 32], TlsError> {
        spki_pin(&self.cert_der)
    }
}

/// How long a served certificate claims to be valid: the longest a public CA issues.
const SERVED_VALIDITY: time::Duration = time::Duration::days(397);

/// A self-signed certificate for `key`, with `name` as its subject and only alternative
/// name, or an empty subject. No field is rcgen's default, which would name rcgen.
fn certificate_for(key: &rcgen::KeyPair, name: Option<&str>) -> Result<Vec<u8>, TlsError> {
    let sans: Vec<String> = name.map(str::to_owned).into_iter().collect();
    let mut params =
        rcgen::CertificateParams::new(sans).map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    if let Some(name) = name {
        dn.push(rcgen::DnType::CommonName, name);
    }
    params.distinguished_name = dn;
    // An ordinary validity window from an hour ago (clock skew), not rcgen's 1975-4096.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + SERVED_VALIDITY;
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok(cert.der().to_vec())
}

/// SHA-256 of the SubjectPublicKeyInfo (DER) of an X.509 certificate.
pub fn spki_pin(cert_der: &[u8]) -> Result<[u8; 32], TlsError> {
    let der = CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| TlsError::BadCertificate)?;
    let spki = cert.subject_public_key_info();
    Ok(Sha256::digest(spki.as_ref()).into())
}

/// The relay's rustls server configuration, showing a certificate for `public_host`.
pub fn server_config(
    identity: &RelayIdentity,
    public_host: &str,
) -> Result<rustls::ServerConfig, TlsError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()));
    let cert = identity.served_certificate(public_host)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert)], key)
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
