//! TLS for client streams: rustls server configurations for STARTTLS
//! (RFC 6120 §5) and direct TLS (XEP-0368), certificates by SNI, the dev
//! certificate generated on first start, and the channel-binding data SCRAM
//! -PLUS needs.
//!
//! TLS 1.2 and 1.3 only (rustls supports nothing older). Direct TLS
//! advertises ALPN `xmpp-client` (XEP-0368 §3).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sha2::Digest;

/// Direct TLS (XEP-0368) as a declaration: the `c2s-tls` listener kind.
pub struct DirectTls;

static DIRECT_TLS_INFO: chorus_modules::ModuleInfo = chorus_modules::ModuleInfo {
    name: "direct-tls",
    file: file!(),
    xeps: &[chorus_modules::Xep {
        number: 368,
        name: "SRV records for XMPP over TLS",
        version: "1.1.0",
        support: chorus_modules::Support::Complete,
        note: "The c2s-tls listener kind, with ALPN xmpp-client; SRV records are the operator's.",
    }],
    ..chorus_modules::ModuleInfo::EMPTY
};

impl chorus_modules::Module for DirectTls {
    fn info(&self) -> &'static chorus_modules::ModuleInfo {
        &DIRECT_TLS_INFO
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, String),
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("invalid private key in {0}: {1}")]
    Key(PathBuf, String),
    #[error("cannot generate the development certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// One certificate with its precomputed `tls-server-end-point` binding.
struct Served {
    key: Arc<CertifiedKey>,
    end_point: Vec<u8>,
}

/// Certificates by SNI name, with a default.
struct SniResolver {
    by_name: HashMap<String, Arc<Served>>,
    default: Arc<Served>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver")
            .field("names", &self.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SniResolver {
    fn served(&self, sni: Option<&str>) -> &Arc<Served> {
        sni.and_then(|n| self.by_name.get(&n.to_ascii_lowercase()))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.served(hello.server_name()).key.clone())
    }
}

/// Channel-binding data of one established TLS connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// RFC 9266 `tls-exporter`; only for TLS 1.3, where it is safe without
    /// extended master secret.
    pub tls_exporter: Option<Vec<u8>>,
    /// RFC 5929 `tls-server-end-point`: hash of the certificate we served.
    pub tls_server_end_point: Option<Vec<u8>>,
}

/// Everything a listener needs to run TLS.
#[derive(Clone)]
pub struct TlsSetup {
    pub starttls: Arc<ServerConfig>,
    pub direct: Arc<ServerConfig>,
    resolver: Arc<SniResolver>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("resolver", &self.resolver)
            .finish()
    }
}

/// A certificate source: configured PEM files, by optional SNI name.
pub struct CertSource {
    pub domain: Option<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read(path.to_owned(), e.to_string()))
}

fn load_served(cert: &Path, key: &Path) -> Result<Served, TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read(cert.to_owned(), e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| TlsError::NoCertificate(cert.to_owned()))?;
    let end_point = server_end_point(leaf.as_ref());
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::Key(key.to_owned(), e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::Key(key.to_owned(), e.to_string()))?;
    Ok(Served {
        key: Arc::new(CertifiedKey::new(chain, signing)),
        end_point,
    })
}

/// RFC 5929 §4.1: hash the certificate with its signature's hash function,
/// SHA-256 when that is MD5 or SHA-1. We recognise SHA-384 and SHA-512
/// signatures by their algorithm OIDs and use SHA-256 otherwise.
fn server_end_point(der: &[u8]) -> Vec<u8> {
    const SHA384_OIDS: [&[u8]; 2] = [
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C],
        &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03],
    ];
    const SHA512_OIDS: [&[u8]; 2] = [
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D],
        &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04],
    ];
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    if SHA512_OIDS.iter().any(|o| has(o)) {
        sha2::Sha512::digest(der).to_vec()
    } else if SHA384_OIDS.iter().any(|o| has(o)) {
        sha2::Sha384::digest(der).to_vec()
    } else {
        sha2::Sha256::digest(der).to_vec()
    }
}

/// Generates (or reuses) the self-signed development certificate for
/// `domains` in `data_dir`: `dev-cert.pem` and `dev-key.pem`.
pub fn dev_certificate(
    data_dir: &Path,
    domains: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = data_dir.join("dev-cert.pem");
    let key = data_dir.join("dev-key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let generated = rcgen::generate_simple_self_signed(domains.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| TlsError::Read(data_dir.to_owned(), e.to_string()))?;
    std::fs::write(&cert, generated.cert.pem())
        .map_err(|e| TlsError::Read(cert.clone(), e.to_string()))?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
    tracing::warn!(
        cert = %cert.display(),
        "generated a self-signed development certificate; configure tls.cert and tls.key for production"
    );
    Ok((cert, key))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TlsError::Read(path.to_owned(), e.to_string()))?;
    f.write_all(data)
        .map_err(|e| TlsError::Read(path.to_owned(), e.to_string()))
}

impl TlsSetup {
    /// Builds both server configurations from a default certificate and
    /// further SNI certificates.
    pub fn new(default: &CertSource, sni: &[CertSource]) -> Result<TlsSetup, TlsError> {
        let default = Arc::new(load_served(&default.cert, &default.key)?);
        let mut by_name = HashMap::new();
        for s in sni {
            if let Some(d) = &s.domain {
                by_name.insert(
                    d.to_ascii_lowercase(),
                    Arc::new(load_served(&s.cert, &s.key)?),
                );
            }
        }
        let resolver = Arc::new(SniResolver { by_name, default });
        let build = |alpn: Vec<Vec<u8>>| -> Result<Arc<ServerConfig>, TlsError> {
            let mut cfg = ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
            cfg.alpn_protocols = alpn;
            Ok(Arc::new(cfg))
        };
        Ok(TlsSetup {
            starttls: build(Vec::new())?,
            direct: build(vec![b"xmpp-client".to_vec()])?,
            resolver,
        })
    }

    /// The channel bindings of an established server connection.
    pub fn bindings(&self, conn: &rustls::ServerConnection) -> ChannelBindings {
        let tls_exporter = if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            let mut out = vec![0u8; 32];
            let ok = conn
                .export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None)
                .is_ok();
            ok.then_some(out)
        } else {
            None
        };
        ChannelBindings {
            tls_exporter,
            tls_server_end_point: Some(self.resolver.served(conn.server_name()).end_point.clone()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificate_is_generated_once_and_loads() {
        let dir = std::env::temp_dir().join(format!("chorus-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (cert, key) = dev_certificate(&dir, &["localhost".into()]).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let (cert2, _) = dev_certificate(&dir, &["localhost".into()]).unwrap();
        assert_eq!(
            first,
            std::fs::read(cert2).unwrap(),
            "reused, not regenerated"
        );
        let setup = TlsSetup::new(
            &CertSource {
                domain: None,
                cert,
                key: key.clone(),
            },
            &[],
        )
        .unwrap();
        assert_eq!(setup.direct.alpn_protocols, vec![b"xmpp-client".to_vec()]);
        assert!(setup.starttls.alpn_protocols.is_empty());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
