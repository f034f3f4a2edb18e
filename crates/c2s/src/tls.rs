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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        note: "The c2s-tls and s2s-tls listener kinds (ALPN xmpp-client, xmpp-server); outgoing server streams try _xmpps-server records first. SRV records are the operator's.",
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
    /// The file it came from, for `chorusctl cert list`.
    path: PathBuf,
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
    /// The chain the peer presented, leaf first: server-to-server peers
    /// present their domain's certificate (XEP-0178); clients none.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

/// Everything a listener needs to run TLS.
#[derive(Clone)]
pub struct TlsSetup {
    pub starttls: Arc<ServerConfig>,
    pub direct: Arc<ServerConfig>,
    /// `https` listeners: ALPN `http/1.1` only (no HTTP/2 yet).
    pub https: Arc<ServerConfig>,
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
        path: cert.to_owned(),
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

/// How long a generated development certificate is valid.
pub const DEV_CERT_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// A development certificate this close to its end is made anew at start
/// rather than served until clients refuse it.
const DEV_CERT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// Generates (or reuses) the self-signed development certificate for
/// `domains` in `data_dir`: `dev-cert.pem` and `dev-key.pem`.
///
/// The certificate names the served domains, the first as its common name
/// and each as a DNS subject alternative name (what clients check), and is
/// valid for [`DEV_CERT_VALIDITY`] from its creation (an hour earlier, for
/// clients whose clock runs a little behind). One already there is reused
/// while it names every domain and has more than 30 days left; otherwise it
/// is made anew, and the log says why.
pub fn dev_certificate(
    data_dir: &Path,
    domains: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = data_dir.join("dev-cert.pem");
    let key = data_dir.join("dev-key.pem");
    let domains: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    if cert.exists() && key.exists() {
        match stale_reason(&cert, &domains) {
            None => return Ok((cert, key)),
            Some(why) => tracing::info!(
                cert = %cert.display(),
                reason = %why,
                "regenerating the self-signed development certificate"
            ),
        }
    }
    let (cert_pem, key_pem) = generate_dev_certificate(&domains, SystemTime::now())?;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| TlsError::Read(data_dir.to_owned(), e.to_string()))?;
    std::fs::write(&cert, cert_pem).map_err(|e| TlsError::Read(cert.clone(), e.to_string()))?;
    write_private(&key, key_pem.as_bytes())?;
    tracing::warn!(
        cert = %cert.display(),
        domains = ?domains,
        "generated a self-signed development certificate; configure tls.cert and tls.key for production"
    );
    Ok((cert, key))
}

/// A self-signed certificate and its key, PEM, for `domains` (at least
/// one), valid from an hour before `now` until [`DEV_CERT_VALIDITY`] after.
fn generate_dev_certificate(
    domains: &[String],
    now: SystemTime,
) -> Result<(String, String), TlsError> {
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let first = domains
        .first()
        .ok_or_else(|| TlsError::Generate("no domain to name".to_owned()))?;
    let mut params = rcgen::CertificateParams::new(domains.to_vec()).map_err(generate)?;
    // rcgen's default subject is "rcgen self signed cert".
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, first.as_str());
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::from(now);
    params.not_before = now - time::Duration::HOUR;
    params.not_after = now + DEV_CERT_VALIDITY;
    let key = rcgen::KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Why the development certificate at `path` cannot serve `domains` any
/// more: unreadable, a domain it does not name, expired or about to.
fn stale_reason(path: &Path, domains: &[String]) -> Option<String> {
    let pem = match std::fs::read(path) {
        Ok(p) => p,
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    let facts = match CertFacts::from_pem(&pem) {
        Ok(f) => f,
        Err(e) => return Some(e),
    };
    if let Some(missing) = domains.iter().find(|d| !facts.dns_names.contains(d)) {
        return Some(format!("it does not name {missing}"));
    }
    let renew_after = SystemTime::now() + DEV_CERT_RENEW_BEFORE;
    if facts.not_after <= renew_after {
        return Some(if facts.not_after <= SystemTime::now() {
            "it has expired".to_owned()
        } else {
            "it expires within 30 days".to_owned()
        });
    }
    None
}

/// What a certificate says about itself, as far as the development
/// certificate's checks need it.
#[derive(Debug)]
pub struct CertFacts {
    /// The subject's common name.
    pub common_name: Option<String>,
    /// The DNS names among the subject alternative names, lowercased.
    pub dns_names: Vec<String>,
    /// The issuer's distinguished name, as RFC 4514 text.
    pub issuer: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CertFacts {
    /// Reads the first certificate of a PEM file.
    pub fn from_pem(pem: &[u8]) -> Result<CertFacts, String> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem)
            .map_err(|e| format!("it is not a PEM certificate: {e}"))?;
        Self::from_der(&block.contents)
    }

    /// Reads one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertFacts, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("it is not an X.509 certificate: {e}"))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(format!("its subject alternative names do not parse: {e}")),
        };
        // Out of SystemTime's range counts as the epoch: long expired.
        let at = |t: x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            let shifted = match u64::try_from(secs) {
                Ok(s) => UNIX_EPOCH.checked_add(Duration::from_secs(s)),
                Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
            };
            shifted.unwrap_or(UNIX_EPOCH)
        };
        let validity = cert.validity();
        Ok(CertFacts {
            common_name,
            dns_names,
            issuer: cert.issuer().to_string(),
            not_before: at(validity.not_before),
            not_after: at(validity.not_after),
        })
    }
}

/// One certificate a [`TlsSetup`] serves.
#[derive(Debug)]
pub struct ServedCert {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The SNI names it is chosen for, sorted.
    pub sni: Vec<String>,
    /// Served when no SNI name matches.
    pub default: bool,
    /// The leaf certificate, DER.
    pub leaf: Vec<u8>,
}

impl TlsSetup {
    /// Every certificate served, once each (several names may share one).
    pub fn certificates(&self) -> Vec<ServedCert> {
        let mut out: Vec<(Arc<Served>, ServedCert)> = Vec::new();
        let all = std::iter::once((None, &self.resolver.default)).chain(
            self.resolver
                .by_name
                .iter()
                .map(|(name, served)| (Some(name), served)),
        );
        for (name, served) in all {
            let i = match out.iter().position(|(s, _)| Arc::ptr_eq(s, served)) {
                Some(i) => i,
                None => {
                    out.push((
                        served.clone(),
                        ServedCert {
                            path: served.path.clone(),
                            sni: Vec::new(),
                            default: false,
                            leaf: served
                                .key
                                .cert
                                .first()
                                .map(|c| c.as_ref().to_vec())
                                .unwrap_or_default(),
                        },
                    ));
                    out.len() - 1
                }
            };
            match name {
                Some(n) => out[i].1.sni.push(n.clone()),
                None => out[i].1.default = true,
            }
        }
        out.into_iter()
            .map(|(_, mut c)| {
                c.sni.sort();
                c
            })
            .collect()
    }
}

/// Writes a file only its owner may read (private keys).
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
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
        // A file named for several domains (an ACME certificate carries
        // every subdomain) is loaded once and shared.
        let mut loaded: HashMap<(PathBuf, PathBuf), Arc<Served>> = HashMap::new();
        let mut load = |s: &CertSource| -> Result<Arc<Served>, TlsError> {
            if let Some(served) = loaded.get(&(s.cert.clone(), s.key.clone())) {
                return Ok(served.clone());
            }
            let served = Arc::new(load_served(&s.cert, &s.key)?);
            loaded.insert((s.cert.clone(), s.key.clone()), served.clone());
            Ok(served)
        };
        let default = load(default)?;
        let mut by_name = HashMap::new();
        for s in sni {
            if let Some(d) = &s.domain {
                by_name.insert(d.to_ascii_lowercase(), load(s)?);
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
            https: build(vec![b"http/1.1".to_vec()])?,
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
            peer_certificates: conn
                .peer_certificates()
                .map(|c| c.to_vec())
                .unwrap_or_default(),
        }
    }

    /// The certificate and key served for `name` (the default one when no
    /// SNI certificate names it): what an outgoing server-to-server stream
    /// presents as its client certificate (XEP-0178).
    pub fn certified_key(&self, name: &str) -> Arc<CertifiedKey> {
        self.resolver.served(Some(name)).key.clone()
    }

    /// The same certificates for server-to-server listeners: the peer is
    /// asked for its certificate, which any chain passes during the
    /// handshake; the stream checks it afterwards against the domain the
    /// peer claims, as a server certificate (XEP-0178, RFC 6125), and falls
    /// back to dialback when it does not verify. Direct TLS advertises ALPN
    /// `xmpp-server` (XEP-0368).
    pub fn for_s2s(&self) -> Result<TlsSetup, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let build = |alpn: Vec<Vec<u8>>| -> Result<Arc<ServerConfig>, TlsError> {
            let mut cfg = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| TlsError::Config(e.to_string()))?
                .with_client_cert_verifier(Arc::new(AnyPeerCert(provider.clone())))
                .with_cert_resolver(self.resolver.clone());
            cfg.alpn_protocols = alpn;
            Ok(Arc::new(cfg))
        };
        Ok(TlsSetup {
            starttls: build(Vec::new())?,
            direct: build(vec![b"xmpp-server".to_vec()])?,
            https: self.https.clone(),
            resolver: self.resolver.clone(),
        })
    }
}

/// Takes whatever certificate chain the peer presents (or none) during the
/// handshake, checking only its handshake signatures: which domain the
/// chain proves is decided after the handshake, against the domain the
/// peer claims (`chorus-s2s`), since the stream header naming it comes
/// later. A chain that proves nothing leaves dialback.
#[derive(Debug)]
pub struct AnyPeerCert(pub Arc<rustls::crypto::CryptoProvider>);

impl AnyPeerCert {
    /// The handshake signature checks, which both directions keep.
    fn signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
        tls13: bool,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        if tls13 {
            rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
        } else {
            rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
        }
    }
}

impl rustls::server::danger::ClientCertVerifier for AnyPeerCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl rustls::client::danger::ServerCertVerifier for AnyPeerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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

    /// The certificate's subject CN, DNS SANs and validity, read with
    /// x509-parser directly rather than through [`CertFacts`].
    fn parsed(path: &Path) -> (String, Vec<String>, i64, i64) {
        let pem = std::fs::read(path).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = block.parse_x509().unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect();
        let v = cert.validity();
        (cn, sans, v.not_before.timestamp(), v.not_after.timestamp())
    }

    fn now_secs() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chorus-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn dev_certificate_names_the_served_domains_and_lasts_a_year() {
        let dir = temp("names");
        let domains = ["Example.org".to_owned(), "chat.example.org".to_owned()];
        let (cert, _) = dev_certificate(&dir, &domains).unwrap();
        let (cn, sans, not_before, not_after) = parsed(&cert);
        assert_eq!(cn, "example.org");
        assert_eq!(sans, ["example.org", "chat.example.org"]);
        let now = now_secs();
        assert!(
            not_before <= now && not_before >= now - 3600 - 60,
            "{not_before} vs {now}"
        );
        let year = DEV_CERT_VALIDITY.as_secs() as i64;
        assert!(
            (not_after - (now + year)).abs() <= 60,
            "valid for a year from now: {not_after} vs {}",
            now + year
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dev_certificate_is_made_anew_for_a_new_domain_or_when_it_runs_out() {
        let dir = temp("renew");
        let localhost = ["localhost".to_owned()];
        let (cert, key) = dev_certificate(&dir, &localhost).unwrap();
        let first = std::fs::read(&cert).unwrap();

        // A domain added to server.domains.
        let both = ["localhost".to_owned(), "example.org".to_owned()];
        dev_certificate(&dir, &both).unwrap();
        let second = std::fs::read(&cert).unwrap();
        assert_ne!(first, second);
        assert_eq!(parsed(&cert).1, ["localhost", "example.org"]);
        // A domain removed: the certificate still names every served one.
        dev_certificate(&dir, &localhost).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), second, "reused");

        // One that expired (made two years ago), and one with a week left.
        for made in [
            2 * DEV_CERT_VALIDITY,
            DEV_CERT_VALIDITY - Duration::from_secs(7 * 86_400),
        ] {
            let (old_cert, old_key) =
                generate_dev_certificate(&localhost, SystemTime::now() - made).unwrap();
            std::fs::write(&cert, &old_cert).unwrap();
            std::fs::write(&key, &old_key).unwrap();
            assert!(stale_reason(&cert, &localhost).is_some());
            dev_certificate(&dir, &localhost).unwrap();
            let renewed = std::fs::read_to_string(&cert).unwrap();
            assert_ne!(renewed, old_cert);
            assert!(parsed(&cert).3 > now_secs() + 300 * 86_400);
            assert!(stale_reason(&cert, &localhost).is_none());
        }
        // Garbage in the file is replaced too.
        std::fs::write(&cert, "not a certificate").unwrap();
        dev_certificate(&dir, &localhost).unwrap();
        assert_eq!(parsed(&cert).0, "localhost");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
