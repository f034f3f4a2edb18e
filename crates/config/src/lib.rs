//! Chorus configuration: `config/chorus.toml`, overridden by `CHORUS_`
//! environment variables (`CHORUS_SERVER__DATA_DIR=/var/lib/chorus`: a double
//! underscore separates nesting levels, and only variables with one are
//! configuration), loaded with figment.
//!
//! Strict like ejabberd's econf: every struct denies unknown keys, and the
//! error names the key and suggests the closest valid one. Safety limits have
//! floors, checked in [`Config::validate`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub listeners: Vec<ListenerConfig>,
    pub limits: LimitsConfig,
    pub c2s: C2sConfig,
    pub admin: AdminConfig,
    pub supervision: SupervisionConfig,
    pub tls: TlsConfig,
    pub sasl: SaslConfig,
    pub storage: StorageConfig,
    pub offline: OfflineConfig,
    pub metrics: MetricsConfig,
    pub register: RegisterConfig,
    pub mam: MamConfig,
}

/// XEP-0077 in-band registration. Off by default: open registration
/// invites spam accounts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegisterConfig {
    /// Let clients create accounts themselves.
    pub enabled: bool,
    /// Domains that allow it; empty means every domain in server.domains.
    pub domains: Vec<String>,
    /// Registrations one IP address may make in a burst...
    pub burst: u32,
    /// ...and the seconds it takes to earn one more (a token bucket).
    pub refill_secs: u64,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig {
            enabled: false,
            domains: Vec::new(),
            burst: 3,
            refill_secs: 3600,
        }
    }
}

/// XEP-0313 message archives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MamConfig {
    /// Archived messages older than this many days are deleted (at start
    /// and hourly); 0 keeps them forever.
    pub retention_days: u64,
    /// What an account that set no preferences (XEP-0441) archives.
    pub default_pref: MamDefault,
    /// Most results one query returns; a client asking for more gets this
    /// many per page. At most half of `limits.max_outbound_stanzas`, since
    /// a page is queued for the client at once.
    pub max_page_size: u32,
}

/// Which messages an account archives by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MamDefault {
    /// Every message with a body.
    Always,
    /// None, unless the user asks.
    Never,
    /// Only messages with contacts in the user's roster.
    Roster,
}

impl Default for MamConfig {
    fn default() -> Self {
        MamConfig {
            retention_days: 0,
            default_pref: MamDefault::Always,
            max_page_size: 100,
        }
    }
}

impl MamConfig {
    /// How long messages are kept; `None` for forever.
    pub fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0).then(|| Duration::from_secs(self.retention_days * 86_400))
    }
}

/// The loopback monitoring endpoint: /metrics, /healthz, /readyz.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` to listen on; empty turns the endpoint off.
    pub address: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            address: "127.0.0.1:5290".to_owned(),
        }
    }
}

/// XEP-0160 offline messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Messages kept per account; senders get `service-unavailable` past it.
    pub quota: u32,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig { quota: 1000 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The XMPP domains this server hosts.
    pub domains: Vec<String>,
    /// Where the database, the admin socket and the dev certificate live.
    pub data_dir: PathBuf,
    /// On SIGTERM every stream gets `system-shutdown`; the server then waits
    /// up to this many seconds for the connections to close.
    pub shutdown_grace_secs: u64,
}

/// The kind of a listening port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerKind {
    /// Client-to-server with STARTTLS (RFC 6120 §5).
    #[serde(rename = "c2s")]
    C2s,
    /// Client-to-server with direct TLS (XEP-0368).
    #[serde(rename = "c2s-tls")]
    C2sTls,
}

impl ListenerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::C2s => "c2s",
            ListenerKind::C2sTls => "c2s-tls",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub kind: ListenerKind,
    pub address: SocketAddr,
}

impl ListenerConfig {
    /// The port actor's id in the supervision tree: `port:c2s@127.0.0.1:5222`.
    pub fn actor_id(&self) -> String {
        format!("port:{}@{}", self.kind.as_str(), self.address)
    }
}

/// XML limits, applied by the receiver through `chorus-xml` while bytes arrive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_stanza_bytes_preauth: usize,
    pub max_stanza_bytes: usize,
    pub max_depth: usize,
    pub max_attrs: usize,
    pub max_ns_decls: usize,
    pub max_name_len: usize,
    /// Outbound queue per connection: stanzas waiting for a slow reader.
    pub max_outbound_stanzas: usize,
    pub max_outbound_bytes: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C2sConfig {
    /// Seconds a new connection may take to send its stream header and
    /// authenticate, counted from accept and never reset by input (RFC 6120
    /// §4.9.3.4 `connection-timeout`; ejabberd's `negotiation_timeout`).
    pub header_timeout_secs: u64,
    /// Seconds one write to a client may stall (a peer that stopped reading)
    /// before its connection is dropped.
    pub write_timeout_secs: u64,
    /// STARTTLS is required before anything else. FOR BENCHMARKS AND TESTS
    /// ONLY may this be false (STARTTLS is then offered, not required).
    pub require_encryption: bool,
    /// Resources one account may bind at once (`resource-constraint` past it).
    pub max_resources: usize,
    /// XEP-0199 keepalive: after this many seconds without a stanza from a
    /// bound client, the server pings it.
    pub ping_interval_secs: u64,
    /// Seconds to wait for the answer before closing the session with
    /// `connection-timeout`.
    pub ping_timeout_secs: u64,
    /// XEP-0198 stream management: seconds a session with resumption
    /// enabled waits, detached, for its client to resume after the
    /// connection drops, when the client asks for no other value.
    pub sm_resume_timeout_secs: u64,
    /// The longest resume timeout a client may ask for (`max`).
    pub sm_max_resume_timeout_secs: u64,
    /// Stanzas sent and not yet acknowledged that one session may hold;
    /// past it the stream ends with `resource-constraint`.
    pub sm_max_unacked: usize,
}

/// TLS certificates. Without `cert`/`key`, a self-signed development
/// certificate for every configured domain is generated in `data_dir` on
/// first start (never for production: clients will warn).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain served by default.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// Further certificates chosen by SNI, one per domain.
    pub sni: Vec<SniCert>,
    /// Seconds a TLS handshake may take before the connection is dropped.
    pub handshake_timeout_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCert {
    pub domain: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaslConfig {
    /// PBKDF2 iterations for newly stored SCRAM credentials (RFC 7677 asks >= 4096).
    pub iterations: u32,
    /// Failed authentications allowed per stream before it is closed.
    pub max_attempts: u32,
    /// FOR BENCHMARKS AND TESTS ONLY: offer PLAIN on unencrypted streams.
    pub allow_plain_without_tls: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://path` or `postgres://...`; empty = `sqlite://<data_dir>/chorus.db`.
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Unix socket of the admin API; empty means `<data_dir>/chorus.sock`.
    pub socket: PathBuf,
    /// Allow `chorusctl chaos` (killing random actors on a schedule). Off
    /// by default: it is for test and staging servers.
    pub chaos: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// OTP restart intensity: restarts allowed per `period_ms` before a
    /// supervisor gives up and escalates to its parent.
    pub intensity: u32,
    pub period_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            listeners: vec![ListenerConfig {
                kind: ListenerKind::C2s,
                address: SocketAddr::from(([127, 0, 0, 1], 5222)),
            }],
            limits: LimitsConfig::default(),
            c2s: C2sConfig::default(),
            admin: AdminConfig::default(),
            supervision: SupervisionConfig::default(),
            tls: TlsConfig::default(),
            sasl: SaslConfig::default(),
            storage: StorageConfig::default(),
            offline: OfflineConfig::default(),
            metrics: MetricsConfig::default(),
            register: RegisterConfig::default(),
            mam: MamConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            sni: Vec::new(),
            handshake_timeout_secs: 10,
        }
    }
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            iterations: 4096,
            max_attempts: 5,
            allow_plain_without_tls: false,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            domains: vec!["localhost".to_owned()],
            data_dir: PathBuf::from("data"),
            shutdown_grace_secs: 10,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let x = chorus_xml::Limits::default();
        LimitsConfig {
            max_stanza_bytes_preauth: x.max_stanza_bytes_preauth,
            max_stanza_bytes: x.max_stanza_bytes,
            max_depth: x.max_depth,
            max_attrs: x.max_attrs,
            max_ns_decls: x.max_ns_decls,
            max_name_len: x.max_name_len,
            max_outbound_stanzas: 1000,
            max_outbound_bytes: 1024 * 1024,
        }
    }
}

impl Default for C2sConfig {
    fn default() -> Self {
        C2sConfig {
            header_timeout_secs: 30,
            write_timeout_secs: 30,
            require_encryption: true,
            max_resources: 10,
            ping_interval_secs: 300,
            ping_timeout_secs: 60,
            sm_resume_timeout_secs: 300,
            sm_max_resume_timeout_secs: 600,
            sm_max_unacked: 10000,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            socket: PathBuf::new(),
            chaos: false,
        }
    }
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            intensity: 10,
            period_ms: 1000,
        }
    }
}

impl LimitsConfig {
    pub fn xml(&self) -> chorus_xml::Limits {
        chorus_xml::Limits {
            max_stanza_bytes_preauth: self.max_stanza_bytes_preauth,
            max_stanza_bytes: self.max_stanza_bytes,
            max_depth: self.max_depth,
            max_attrs: self.max_attrs,
            max_ns_decls: self.max_ns_decls,
            max_name_len: self.max_name_len,
        }
    }
}

impl C2sConfig {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs)
    }

    pub fn ping_timeout(&self) -> Duration {
        Duration::from_secs(self.ping_timeout_secs)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }

    pub fn sm_resume_timeout(&self) -> Duration {
        Duration::from_secs(self.sm_resume_timeout_secs)
    }

    pub fn sm_max_resume_timeout(&self) -> Duration {
        Duration::from_secs(self.sm_max_resume_timeout_secs)
    }
}

impl SupervisionConfig {
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms)
    }
}

impl Config {
    /// Loads defaults, then `path` if given, then `CHORUS_*` variables.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            fig = fig.merge(Toml::file(p));
        }
        // Every key lives in a section, so a configuration variable always
        // has a double underscore (CHORUS_SERVER__DATA_DIR). Others sharing
        // the prefix (CHORUS_LOG, test harness variables) are not config.
        fig = fig.merge(
            Env::prefixed("CHORUS_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        Self::extract(fig)
    }

    /// Every effective value with where it came from (`chorusctl config
    /// check`): `default`, `file PATH` or `env VAR`. Loads like
    /// [`Config::load`], so an invalid file gives the same error.
    pub fn explain(path: Option<&Path>) -> Result<Vec<(String, String, String)>, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            fig = fig.merge(Toml::file(p));
        }
        fig = fig.merge(
            Env::prefixed("CHORUS_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let config = Self::extract(fig.clone())?;
        let value =
            serde_json::to_value(&config).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut out = Vec::new();
        fn walk(
            fig: &Figment,
            prefix: &str,
            v: &serde_json::Value,
            out: &mut Vec<(String, String, String)>,
        ) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, child) in map {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(fig, &key, child, out);
                    }
                }
                leaf => {
                    let source = match fig.find_metadata(prefix).and_then(|m| m.source.clone()) {
                        Some(figment::Source::File(p)) => format!("file {}", p.display()),
                        // Serialized::defaults is tagged with our own source line.
                        Some(figment::Source::Code(_)) => "default".to_owned(),
                        Some(figment::Source::Custom(c)) => c,
                        Some(other) => other.to_string(),
                        None => match fig.find_metadata(prefix).map(|m| m.name.to_string()) {
                            Some(n) if n.contains("environment") => {
                                format!("env CHORUS_{}", prefix.replace('.', "__").to_uppercase())
                            }
                            _ => "default".to_owned(),
                        },
                    };
                    out.push((prefix.to_owned(), leaf.to_string(), source));
                }
            }
        }
        walk(&fig, "", &value, &mut out);
        Ok(out)
    }

    /// Parses a TOML string over the defaults (tests and `config check`).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::extract(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)),
        )
    }

    fn extract(fig: Figment) -> Result<Config, ConfigError> {
        let cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Floors on safety limits: a config may tighten them, never disable them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let floor = |name: &str, v: usize, min: usize| {
            if v < min {
                Err(ConfigError::Invalid(format!(
                    "limits.{name} = {v} is below the minimum {min}"
                )))
            } else {
                Ok(())
            }
        };
        floor("max_stanza_bytes_preauth", l.max_stanza_bytes_preauth, 1024)?;
        floor("max_stanza_bytes", l.max_stanza_bytes, 4096)?;
        floor("max_depth", l.max_depth, 4)?;
        floor("max_attrs", l.max_attrs, 8)?;
        floor("max_ns_decls", l.max_ns_decls, 2)?;
        floor("max_name_len", l.max_name_len, 32)?;
        floor("max_outbound_stanzas", l.max_outbound_stanzas, 16)?;
        floor("max_outbound_bytes", l.max_outbound_bytes, 64 * 1024)?;
        if self.server.domains.is_empty() {
            return Err(ConfigError::Invalid(
                "server.domains must name at least one domain".into(),
            ));
        }
        if self.c2s.header_timeout_secs == 0
            || self.c2s.write_timeout_secs == 0
            || self.c2s.ping_interval_secs == 0
            || self.c2s.ping_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "c2s timeouts and intervals must be at least 1 second".into(),
            ));
        }
        if self.c2s.sm_resume_timeout_secs == 0
            || self.c2s.sm_max_resume_timeout_secs < self.c2s.sm_resume_timeout_secs
        {
            return Err(ConfigError::Invalid(
                "c2s.sm_resume_timeout_secs must be at least 1 and at most c2s.sm_max_resume_timeout_secs".into(),
            ));
        }
        if self.c2s.sm_max_unacked < 16 {
            return Err(ConfigError::Invalid(format!(
                "c2s.sm_max_unacked = {} is below the minimum 16",
                self.c2s.sm_max_unacked
            )));
        }
        if !self.metrics.address.is_empty() && self.metrics.address.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "metrics.address '{}' is not host:port (empty turns it off)",
                self.metrics.address
            )));
        }
        if self.register.burst == 0 || self.register.refill_secs == 0 {
            return Err(ConfigError::Invalid(
                "register.burst and register.refill_secs must be positive".into(),
            ));
        }
        if self.sasl.iterations < 4096 {
            return Err(ConfigError::Invalid(
                "sasl.iterations must be at least 4096 (RFC 7677)".into(),
            ));
        }
        if self.sasl.max_attempts == 0 || self.c2s.max_resources == 0 {
            return Err(ConfigError::Invalid(
                "sasl.max_attempts and c2s.max_resources must be positive".into(),
            ));
        }
        if self.tls.cert.as_os_str().is_empty() != self.tls.key.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key go together".into(),
            ));
        }
        if self.supervision.intensity == 0 || self.supervision.period_ms == 0 {
            return Err(ConfigError::Invalid(
                "supervision.intensity and supervision.period_ms must be positive".into(),
            ));
        }
        let half_queue = self.limits.max_outbound_stanzas / 2;
        if self.mam.max_page_size == 0 || self.mam.max_page_size as usize > half_queue {
            return Err(ConfigError::Invalid(format!(
                "mam.max_page_size must be between 1 and {half_queue} \
                 (half of limits.max_outbound_stanzas: a page is queued at once)"
            )));
        }
        if self.mam.retention_days > 1_000_000 {
            return Err(ConfigError::Invalid(
                "mam.retention_days is out of range (0 keeps messages forever)".into(),
            ));
        }
        Ok(())
    }

    /// A short fingerprint of the effective configuration (`chorusctl
    /// status`), so an operator can tell whether a reload took.
    pub fn hash(&self) -> String {
        use std::hash::{Hash, Hasher};
        // Stable across runs of one build: the serialized form, hashed.
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// The storage URL, defaulting to a SQLite file in the data directory.
    pub fn storage_url(&self) -> String {
        if self.storage.url.is_empty() {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("chorus.db").display()
            )
        } else {
            self.storage.url.clone()
        }
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls.handshake_timeout_secs.max(1))
    }

    /// The admin socket path, defaulting into the data directory.
    pub fn admin_socket(&self) -> PathBuf {
        if self.admin.socket.as_os_str().is_empty() {
            self.server.data_dir.join("chorus.sock")
        } else {
            self.admin.socket.clone()
        }
    }
}

/// Turns figment's error into one line per problem, with a did-you-mean for
/// unknown keys.
fn describe(err: figment::Error) -> String {
    let mut lines = Vec::new();
    for e in err {
        let path = e.path.join(".");
        let msg = match &e.kind {
            figment::error::Kind::UnknownField(field, expected) => {
                // figment's path already ends with the offending key.
                let key = if path.is_empty() || path.ends_with(field.as_str()) {
                    if path.is_empty() {
                        field.clone()
                    } else {
                        path.clone()
                    }
                } else {
                    format!("{path}.{field}")
                };
                match suggest(field, expected) {
                    Some(s) => format!("unknown key `{key}`: did you mean `{s}`?"),
                    None => format!(
                        "unknown key `{key}`; valid keys here: {}",
                        expected.join(", ")
                    ),
                }
            }
            _ if path.is_empty() => e.to_string(),
            _ => format!("{path}: {e}"),
        };
        lines.push(msg);
    }
    lines.join("\n")
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.domains, vec!["localhost"]);
        assert_eq!(c.limits.max_stanza_bytes_preauth, 8192);
        assert_eq!(c.admin_socket(), PathBuf::from("data/chorus.sock"));
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let err = Config::from_toml("[server]\ndomian = ['a']\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `server.domian`"), "{err}");
        assert!(err.contains("did you mean `domains`?"), "{err}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let err = Config::from_toml("[limit]\nmax_depth = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `limits`?"), "{err}");
    }

    #[test]
    fn listeners_parse() {
        let c = Config::from_toml(
            "[[listeners]]\nkind = 'c2s'\naddress = '127.0.0.1:5222'\n[[listeners]]\nkind = 'c2s-tls'\naddress = '[::1]:5223'\n",
        )
        .unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[1].kind, ListenerKind::C2sTls);
        assert_eq!(c.listeners[0].actor_id(), "port:c2s@127.0.0.1:5222");
    }

    #[test]
    // figment's Jail closure returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_and_is_strict() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHORUS_SERVER__DOMAINS", "[\"example.org\"]");
            jail.set_env("CHORUS_LOG", "debug");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.server.domains, vec!["example.org"]);
            jail.set_env("CHORUS_SERVER__DOMIAN", "x");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("did you mean `domains`?"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn explain_names_each_source() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[server]\ndomains = ['example.org']\n")?;
            jail.set_env("CHORUS_C2S__MAX_RESOURCES", "3");
            let rows = Config::explain(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            let find = |k: &str| rows.iter().find(|r| r.0 == k).cloned().unwrap();
            assert!(
                find("server.domains").2.starts_with("file "),
                "{:?}",
                find("server.domains")
            );
            assert_eq!(find("server.domains").1, "[\"example.org\"]");
            assert!(
                find("c2s.max_resources").2.starts_with("env"),
                "{:?}",
                find("c2s.max_resources")
            );
            assert_eq!(find("limits.max_depth").2, "default");
            Ok(())
        });
    }

    #[test]
    fn shipped_config_file_is_the_defaults() {
        let shipped = Config::from_toml(include_str!("../../../config/chorus.toml")).unwrap();
        assert_eq!(shipped, Config::default());
    }

    #[test]
    fn mam_section_parses_and_its_page_size_is_bounded() {
        let c = Config::from_toml(
            "[mam]\nretention_days = 30\ndefault_pref = 'roster'\nmax_page_size = 250\n",
        )
        .unwrap();
        assert_eq!(c.mam.default_pref, MamDefault::Roster);
        assert_eq!(c.mam.retention(), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(Config::default().mam.retention(), None);
        for bad in [
            "max_page_size = 0",
            "max_page_size = 501",
            "default_pref = 'sometimes'",
        ] {
            assert!(
                Config::from_toml(&format!("[mam]\n{bad}\n")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_have_floors() {
        let err = Config::from_toml("[limits]\nmax_depth = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_depth"), "{err}");
    }
}
