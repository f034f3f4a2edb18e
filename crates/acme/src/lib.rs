//! Certificates with no second tool: an ACME client (RFC 8555) that
//! obtains and renews a certificate for every served domain and the
//! subdomains its services live on (`upload.`, `conference.`, `pubsub.`),
//! as ejabberd's `ejabberd_acme` does, where Prosody needs certbot.
//!
//! - **What is ordered** ([`plan`]): one certificate per served domain,
//!   naming the domain and its services' subdomains; `acme.domains`
//!   replaces that list. Names with a certificate of their own in `[tls]`
//!   keep it and are not ordered, unless `acme.domains` lists them.
//! - **How** (`worker.rs`): the `acme` worker under `root` checks at start
//!   and then twice a day; a certificate missing, not naming every name,
//!   or with fewer than `acme.renew_days` left is ordered with the HTTP-01
//!   challenge, whose key authorizations the `http` listeners serve from
//!   `C2sContext::acme_challenges`. A failed order is logged and retried
//!   with a growing delay; it never stops the server.
//! - **Where** ([`cert_path`]): `<data_dir>/acme/account.json` (the
//!   account key) and `<data_dir>/acme/certs/<name>.pem` (the chain, then
//!   its key), both readable by the owner only, each replaced by a rename
//!   so that a reader never sees half a file.
//! - **Serving** ([`installed`]): the server's TLS setup adds every
//!   certificate found there by the names it carries, at start and each
//!   time the worker has a new one (then swapped into every listener by
//!   SNI, for connections opened from then on, without a restart).

mod worker;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chorus_c2s::tls::{CertFacts, CertSource};
use chorus_config::Config;

pub use worker::{child_spec, AcmeActor, AcmeArgs, AcmeMsg, InstallFn};

/// Why an order, or the account it needs, failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("{0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("cannot read or write {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("trusted CA certificates: {0}")]
    Roots(String),
    #[error("the stored ACME account {0} is unusable: {1}")]
    Account(PathBuf, String),
    #[error("the CA offers no http-01 challenge for {0}")]
    NoHttp01(String),
    #[error("authorization for {0} failed: {1}")]
    Authorization(String, String),
    #[error("the order for {0} ended {1}")]
    Order(String, String),
    #[error("cannot install the certificates: {0}")]
    Install(String),
}

/// `<data_dir>/acme`: the account and the certificates.
pub fn acme_dir(config: &Config) -> PathBuf {
    config.server.data_dir.join("acme")
}

fn certs_dir(config: &Config) -> PathBuf {
    acme_dir(config).join("certs")
}

/// Where the certificate whose first name is `primary` is kept: the PEM
/// chain, leaf first, then its private key.
pub fn cert_path(config: &Config, primary: &str) -> PathBuf {
    certs_dir(config).join(format!("{primary}.pem"))
}

/// A name an HTTP-01 order can carry and a file can be named after: a
/// plain DNS name (no wildcard, nothing that could leave the directory).
fn orderable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Names the operator gave a certificate of their own in `[tls]`: the
/// `[[tls.sni]]` domains and the names `tls.cert` carries.
fn configured_names(config: &Config) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = config
        .tls
        .sni
        .iter()
        .map(|s| s.domain.to_ascii_lowercase())
        .collect();
    if !config.tls.cert.as_os_str().is_empty() {
        if let Ok(facts) = std::fs::read(&config.tls.cert).map(|p| CertFacts::from_pem(&p)) {
            names.extend(facts.map(|f| f.dns_names).unwrap_or_default());
        }
    }
    names
}

/// Names the operator chose ACME for, explicitly.
fn chosen(config: &Config) -> BTreeSet<String> {
    config
        .acme
        .domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect()
}

/// The certificates to keep, each a list of names whose first names its
/// file: `acme.domains`, or the served domains and `hosted` (the services'
/// domains) less those with a certificate in `[tls]`; every name goes
/// with the shortest other name it is a subdomain of.
pub fn plan(config: &Config, hosted: &[String]) -> Vec<Vec<String>> {
    let names: Vec<String> = if config.acme.domains.is_empty() {
        let configured = configured_names(config);
        config
            .server
            .domains
            .iter()
            .chain(hosted)
            .map(|d| d.to_ascii_lowercase())
            .filter(|d| !configured.contains(d))
            .collect()
    } else {
        chosen(config).into_iter().collect()
    };
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| {
            let ok = orderable(n);
            if !ok {
                tracing::warn!(name = %n, "ACME: not a name an http-01 order can carry; skipped");
            }
            ok
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Parents before their subdomains.
    names.sort_by_key(|n| n.matches('.').count());
    let mut groups: Vec<Vec<String>> = Vec::new();
    for name in names {
        match groups
            .iter_mut()
            .find(|g| name.ends_with(&format!(".{}", g[0])))
        {
            Some(g) => g.push(name),
            None => groups.push(vec![name]),
        }
    }
    groups
}

/// The ACME certificates on disk, as the TLS setup takes them: one SNI
/// source per name each carries (less the names `[tls]` keeps), and the
/// one naming the first served domain, to serve by default when `[tls]`
/// has no default certificate. Empty unless `acme.enabled`. A file that
/// does not parse is skipped with a warning: the worker orders it again.
pub fn installed(config: &Config) -> (Vec<CertSource>, Option<CertSource>) {
    let mut sni = Vec::new();
    let mut default = None;
    if !config.acme.enabled {
        return (sni, default);
    }
    let dir = certs_dir(config);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (sni, default);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    files.sort();
    let configured = configured_names(config);
    let chosen = chosen(config);
    let first = config
        .server
        .domains
        .first()
        .map(|d| d.to_ascii_lowercase());
    for path in files {
        let facts = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|p| CertFacts::from_pem(&p))
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ACME: unusable certificate file skipped");
                continue;
            }
        };
        for name in &facts.dns_names {
            if configured.contains(name) && !chosen.contains(name) {
                continue;
            }
            if first.as_deref() == Some(name.as_str()) {
                default = Some(source(None, &path));
            }
            sni.push(source(Some(name.clone()), &path));
        }
    }
    (sni, default)
}

fn source(domain: Option<String>, path: &Path) -> CertSource {
    CertSource {
        domain,
        cert: path.to_owned(),
        key: path.to_owned(),
    }
}

/// Why the certificate at `path` must be ordered (again), or None while it
/// names every one of `names` and has more than `renew_days` left.
pub fn renewal_reason(path: &Path, names: &[String], renew_days: u32) -> Option<String> {
    let pem = match std::fs::read(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some("no certificate yet".to_owned())
        }
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    let facts = match CertFacts::from_pem(&pem) {
        Ok(f) => f,
        Err(e) => return Some(e),
    };
    if let Some(missing) = names.iter().find(|n| !facts.dns_names.contains(n)) {
        return Some(format!("it does not name {missing}"));
    }
    let left = facts
        .not_after
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let days = left.as_secs() / 86_400;
    (days < u64::from(renew_days)).then(|| format!("{days} days left"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml(toml).unwrap()
    }

    #[test]
    fn plan_groups_each_served_domain_with_its_services() {
        let c = config("[server]\ndomains = ['example.org', 'Chat.Example.NET']\n");
        let hosted = [
            "upload.example.org".to_owned(),
            "conference.example.org".to_owned(),
            "conference.chat.example.net".to_owned(),
        ];
        assert_eq!(
            plan(&c, &hosted),
            [
                vec![
                    "example.org",
                    "conference.example.org",
                    "upload.example.org"
                ],
                vec!["chat.example.net", "conference.chat.example.net"],
            ]
        );
    }

    #[test]
    fn plan_leaves_names_configured_in_tls_unless_chosen() {
        let c = config(
            "[server]\ndomains = ['example.org']\n\
             [[tls.sni]]\ndomain = 'upload.example.org'\ncert = 'c'\nkey = 'k'\n",
        );
        let hosted = ["upload.example.org".to_owned()];
        assert_eq!(plan(&c, &hosted), [vec!["example.org"]]);
        let c = config(
            "[server]\ndomains = ['example.org']\n\
             [acme]\ndomains = ['upload.example.org', 'example.org', '*.example.org', '../x']\n\
             [[tls.sni]]\ndomain = 'upload.example.org'\ncert = 'c'\nkey = 'k'\n",
        );
        assert_eq!(
            plan(&c, &hosted),
            [vec!["example.org", "upload.example.org"]]
        );
    }

    #[test]
    fn a_missing_or_unreadable_certificate_is_ordered() {
        let dir = std::env::temp_dir().join(format!("chorus-acme-{}", std::process::id()));
        let path = dir.join("nothing.pem");
        assert_eq!(
            renewal_reason(&path, &["a".to_owned()], 30).as_deref(),
            Some("no certificate yet")
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, "garbage").unwrap();
        assert!(renewal_reason(&path, &["a".to_owned()], 30).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
