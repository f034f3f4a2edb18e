//! Whether a peer's certificate proves a domain (RFC 6125 through
//! webpki, XEP-0178), and the TLS client configuration of outgoing
//! streams.
//!
//! Both directions take any chain during the handshake and decide
//! afterwards, against the domain at stake, as for a server certificate:
//! a chain that does not verify leaves Server Dialback (XEP-0220) over the
//! same encrypted stream, which is what servers with self-signed
//! certificates federate by.

use std::path::Path;
use std::sync::Arc;

use chorus_c2s::tls::AnyPeerCert;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

/// Checks certificate chains against the system's roots and `s2s.ca_file`.
pub struct Verifier {
    /// None when no trust anchor could be loaded: nothing verifies.
    inner: Option<Arc<WebPkiServerVerifier>>,
}

impl Verifier {
    /// Loads the system's roots and the PEM certificates of `ca_file`
    /// (empty: none). A file that cannot be read is logged and skipped.
    pub fn new(ca_file: &Path) -> Verifier {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        let mut extra = 0;
        if !ca_file.as_os_str().is_empty() {
            match std::fs::read(ca_file) {
                Ok(pem) => {
                    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                        .filter_map(Result::ok)
                        .collect();
                    extra = roots.add_parsable_certificates(certs).0;
                }
                Err(e) => {
                    tracing::error!(file = %ca_file.display(), error = %e, "s2s.ca_file unreadable")
                }
            }
        }
        tracing::debug!(system = added, extra, "s2s trust anchors loaded");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tracing::warn!(error = %e, "no trust anchors: no certificate will verify"))
            .ok();
        Verifier { inner }
    }

    /// Whether `chain` (leaf first) is a valid certificate for `domain`.
    pub fn verifies(&self, chain: &[CertificateDer<'static>], domain: &str) -> bool {
        let (Some(inner), Some((leaf, rest))) = (&self.inner, chain.split_first()) else {
            return false;
        };
        let Ok(name) = ServerName::try_from(domain.to_owned()) else {
            return false;
        };
        inner
            .verify_server_cert(leaf, rest, &name, &[], UnixTime::now())
            .is_ok()
    }
}

/// Presents our certificate for the local domain as the client
/// certificate, so the peer can offer SASL EXTERNAL (XEP-0178 §3).
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The TLS client configuration of one outgoing stream: any server chain
/// passes the handshake (checked afterwards, see the module docs), and
/// `cert` is ours for the local domain. `direct`: ALPN `xmpp-server`
/// (XEP-0368).
pub fn client_config(cert: Option<Arc<CertifiedKey>>, direct: bool) -> Option<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyPeerCert(provider)));
    let mut cfg = match cert {
        Some(cert) => builder.with_client_cert_resolver(Arc::new(ClientCert(cert))),
        None => builder.with_no_client_auth(),
    };
    if direct {
        cfg.alpn_protocols = vec![b"xmpp-server".to_vec()];
    }
    Some(Arc::new(cfg))
}
