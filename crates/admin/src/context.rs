//! What admin commands need from the running server: [`AdminContext`].
//!
//! It lives apart from the HTTP server (`server.rs`) because it is the one
//! argument every handler takes, whatever front end called it: the unix
//! socket API and the XEP-0133 ad-hoc commands (`adhoc.rs`).

use std::sync::Arc;
use std::time::Instant;

use chorus_router::{Router, SessionTable};
use chorus_storage::Storage;
use chorus_supervisor::Registry;

/// What commands need from the running server.
pub struct AdminContext {
    pub registry: Registry,
    pub started: Instant,
    /// The root path of the tree (`root`).
    pub root: String,
    pub storage: Arc<Storage>,
    pub sessions: Arc<SessionTable>,
    /// For the feature modules' hooks (an account removed).
    pub router: Arc<Router>,
    /// Domains served, lowercase.
    pub domains: Vec<String>,
    /// PBKDF2 iterations for new credentials.
    pub sasl_iterations: u32,
    /// Where each listener bound, by port actor id.
    pub listeners: Arc<dashmap::DashMap<String, std::net::SocketAddr>>,
    /// A fingerprint of the effective configuration, to tell configs apart.
    pub config_hash: String,
    pub metrics: Arc<chorus_metrics::Metrics>,
    /// `admin.chaos`: whether `chaos` may run.
    pub chaos_allowed: bool,
    /// `config reload`: rereads the file and applies what it can.
    pub reload: ReloadFn,
    /// The group chat rooms, when `muc.enabled`.
    pub muc: Option<chorus_modules::MucRooms>,
    /// `cert list`: the certificates the TLS listeners serve now.
    pub certificates: CertificatesFn,
    /// `s2s list` and `s2s close`: federation.
    pub s2s: Arc<dyn S2sControl>,
}

/// What the admin commands see of federation.
pub trait S2sControl: Send + Sync {
    /// Every stream, incoming and outgoing.
    fn streams(&self) -> Vec<S2sStream>;
    /// Closes every stream with `domain`; how many there were.
    fn close(&self, domain: &str) -> usize;
}

/// One server-to-server stream.
#[derive(Debug, Clone)]
pub struct S2sStream {
    /// `in` or `out`.
    pub direction: &'static str,
    pub local: String,
    pub remote: String,
    /// `external`, `dialback`, or empty while negotiating.
    pub auth: String,
    pub tls: String,
    pub queued: usize,
    pub path: String,
}

/// The certificates served now, read from the live TLS setup.
pub type CertificatesFn = Arc<dyn Fn() -> Vec<CertificateInfo> + Send + Sync>;

/// One certificate a TLS listener serves.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// `configured` (`[tls]`), `acme` or `dev` (the generated one).
    pub source: &'static str,
    pub path: std::path::PathBuf,
    /// The SNI names it is served for.
    pub sni: Vec<String>,
    /// Served when no SNI name matches.
    pub default: bool,
    /// The DNS names it carries.
    pub names: Vec<String>,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// None when the certificate does not parse.
    pub not_after: Option<std::time::SystemTime>,
}

/// Reloads the configuration, returning a summary or the error.
pub type ReloadFn = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>
        + Send
        + Sync,
>;
