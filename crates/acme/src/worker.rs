//! The `acme` worker: checks every planned certificate at start and every
//! [`CHECK_EVERY`], orders those that need it (RFC 8555 §7.4 with the
//! HTTP-01 challenge of §8.3), stores them and asks the server to swap
//! them in. One message at a time, so two orders never race; a failure
//! schedules the next check sooner, with a delay that doubles up to
//! [`MAX_BACKOFF`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chorus_config::{Config, ListenerKind};
use chorus_supervisor::{ChildSpec, Restart, StartCtx};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, HttpClient, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::{acme_dir, cert_path, plan, renewal_reason, AcmeError};

/// How often certificates are checked once all are fine.
pub const CHECK_EVERY: Duration = Duration::from_secs(12 * 3600);
/// The first retry after a failed check; it doubles with each failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(60);
/// The longest wait between failed checks.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// How long the CA may take to validate, and then to issue.
const POLL_FOR: Duration = Duration::from_secs(120);

/// Rebuilds the server's TLS setup from disk and swaps it into every
/// listener.
pub type InstallFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What the worker needs from the server.
pub struct AcmeArgs {
    pub config: Config,
    /// The services' domains (`upload.<domain>`...), from the route table.
    pub hosted: Vec<String>,
    /// Key authorizations the `http` listeners serve, by token.
    pub challenges: Arc<dashmap::DashMap<String, String>>,
    pub install: InstallFn,
}

/// The supervised `acme` worker, a child of `root`. Killed at shutdown:
/// an order in flight is abandoned and made again at the next start.
pub fn child_spec(args: Arc<AcmeArgs>) -> ChildSpec {
    ChildSpec::worker("acme", Restart::Permanent, move |c: StartCtx| {
        let args = args.clone();
        Box::pin(async move {
            let (a, _) = Actor::spawn_linked(None, AcmeActor, args, c.supervisor).await?;
            Ok(a.get_cell())
        })
    })
    .shutdown(Duration::ZERO)
}

pub struct AcmeActor;

pub enum AcmeMsg {
    /// Check every certificate, ordering those that need it.
    Check,
}

pub struct AcmeState {
    args: Arc<AcmeArgs>,
    /// Made on the first order, then reused.
    account: Option<Account>,
    /// Failed checks in a row.
    failures: u32,
}

impl Actor for AcmeActor {
    type Msg = AcmeMsg;
    type State = AcmeState;
    type Arguments = Arc<AcmeArgs>;

    async fn pre_start(
        &self,
        myself: ActorRef<AcmeMsg>,
        args: Arc<AcmeArgs>,
    ) -> Result<AcmeState, ActorProcessingErr> {
        explain_port_80(&args.config);
        myself.cast(AcmeMsg::Check)?;
        Ok(AcmeState {
            args,
            account: None,
            failures: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<AcmeMsg>,
        msg: AcmeMsg,
        state: &mut AcmeState,
    ) -> Result<(), ActorProcessingErr> {
        let AcmeMsg::Check = msg;
        let next = match check(state).await {
            Ok(()) => {
                state.failures = 0;
                CHECK_EVERY
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let delay = backoff(state.failures);
                tracing::warn!(
                    error = %e,
                    failures = state.failures,
                    retry_in_secs = delay.as_secs(),
                    "ACME: certificate check failed"
                );
                delay
            }
        };
        myself.send_after(next, || AcmeMsg::Check);
        Ok(())
    }
}

/// The wait after `failures` failed checks in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// Says what HTTP-01 needs when the configuration may not provide it: the
/// CA connects to port 80 of each name.
fn explain_port_80(config: &Config) {
    let http: Vec<_> = config
        .listeners
        .iter()
        .filter(|l| l.kind == ListenerKind::Http)
        .map(|l| l.address)
        .collect();
    if http.is_empty() {
        tracing::warn!(
            "ACME is enabled but no `http` listener is configured: the CA validates each name \
             by fetching http://<name>/.well-known/acme-challenge/ on port 80; add a \
             [[listeners]] entry with kind = \"http\" on port 80 (or forward port 80 to one)"
        );
    } else if !http.iter().any(|a| a.port() == 80) {
        tracing::warn!(
            listeners = ?http,
            "ACME: no `http` listener on port 80; the CA fetches \
             http://<name>/.well-known/acme-challenge/ on port 80, so forward port 80 to one \
             of these (or proxy that path to it)"
        );
    }
}

/// Checks every planned certificate, orders those that need it, then
/// installs what changed. One failing certificate does not keep the
/// others from being ordered; the first error is returned.
async fn check(state: &mut AcmeState) -> Result<(), AcmeError> {
    let args = state.args.clone();
    let config = &args.config;
    let mut first_error = None;
    let mut obtained = 0;
    for names in plan(config, &args.hosted) {
        let path = cert_path(config, &names[0]);
        let Some(reason) = renewal_reason(&path, &names, config.acme.renew_days) else {
            tracing::debug!(names = ?names, "ACME: certificate is current");
            continue;
        };
        tracing::info!(names = ?names, %reason, "ACME: ordering a certificate");
        match order(state, &names, &path).await {
            Ok(()) => {
                obtained += 1;
                tracing::info!(names = ?names, file = %path.display(), "ACME: certificate obtained");
            }
            Err(e) => {
                tracing::warn!(names = ?names, error = %e, "ACME: order failed");
                first_error.get_or_insert(e);
            }
        }
    }
    if obtained > 0 {
        (args.install)().await.map_err(AcmeError::Install)?;
        tracing::info!(
            obtained,
            "ACME: certificates swapped into the TLS listeners"
        );
    }
    first_error.map_or(Ok(()), Err)
}

/// Removes the challenges an order put up, however it ends.
struct Posted<'a> {
    map: &'a dashmap::DashMap<String, String>,
    tokens: Vec<String>,
}

impl Drop for Posted<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.map.remove(t);
        }
    }
}

/// One order for `names`, stored at `path`.
async fn order(state: &mut AcmeState, names: &[String], path: &Path) -> Result<(), AcmeError> {
    let account = account(state).await?;
    let args = state.args.clone();
    let ids: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    let mut posted = Posted {
        map: &args.challenges,
        tokens: Vec::new(),
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        let name = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(AcmeError::Authorization(name, format!("{other:?}"))),
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::NoHttp01(name.clone()))?;
        // Up before the CA is told to look.
        args.challenges.insert(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_owned(),
        );
        posted.tokens.push(challenge.token.clone());
        challenge.set_ready().await?;
    }
    let poll = RetryPolicy::new().timeout(POLL_FOR);
    let status = order.poll_ready(&poll).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(
            names.join(", "),
            format!("{status:?}: {}", why_invalid(&mut order).await),
        ));
    }
    drop(posted);
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&poll).await?;
    // The chain first: `CertFacts::from_pem` reads the first block.
    let mut pem = chain_pem;
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem.push_str(&key_pem);
    write_private(path, pem.as_bytes())
}

/// What the CA said about the challenges of a failed order.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut why = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for c in &authz.challenges {
            if let Some(e) = &c.error {
                why.push(format!("{}: {e}", authz.identifier()));
            }
        }
    }
    if why.is_empty() {
        "the CA gave no reason".to_owned()
    } else {
        why.join("; ")
    }
}

/// What `account.json` holds: the credentials (with the account's private
/// key) and the directory they belong to.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// The ACME account: the one in memory, the one stored for this directory,
/// or a new one, stored.
async fn account(state: &mut AcmeState) -> Result<Account, AcmeError> {
    if let Some(a) = &state.account {
        return Ok(a.clone());
    }
    let config = &state.args.config;
    let directory = config.acme.directory.clone();
    let path = acme_dir(config).join("account.json");
    let stored = match std::fs::read(&path) {
        Ok(bytes) => Some(
            serde_json::from_slice::<StoredAccount>(&bytes)
                .map_err(|e| AcmeError::Account(path.clone(), e.to_string()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(AcmeError::Io(path, e)),
    };
    let builder = Account::builder_with_http(http_client(&config.acme.ca_file)?);
    let account = match stored {
        // An account belongs to one CA: another directory gets a new one.
        Some(s) if s.directory == directory => builder.from_credentials(s.credentials).await?,
        _ => {
            let mailto = format!("mailto:{}", config.acme.contact);
            let contact: Vec<&str> = if config.acme.contact.is_empty() {
                Vec::new()
            } else {
                vec![mailto.as_str()]
            };
            let (account, credentials) = builder
                .create(
                    &NewAccount {
                        contact: &contact,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    directory.clone(),
                    None,
                )
                .await?;
            let json = serde_json::to_vec_pretty(&StoredAccount {
                directory,
                credentials,
            })
            .map_err(|e| AcmeError::Account(path.clone(), e.to_string()))?;
            write_private(&path, &json)?;
            tracing::info!(id = account.id(), file = %path.display(), "ACME: account created");
            account
        }
    };
    state.account = Some(account.clone());
    Ok(account)
}

/// The HTTPS client for the CA: the system's roots plus `ca_file`'s.
fn http_client(ca_file: &Path) -> Result<Box<dyn HttpClient>, AcmeError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "ACME: a system CA certificate could not be loaded");
    }
    roots.add_parsable_certificates(native.certs);
    if !ca_file.as_os_str().is_empty() {
        let pem = std::fs::read(ca_file).map_err(|e| AcmeError::Io(ca_file.to_owned(), e))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| AcmeError::Roots(format!("{}: {e}", ca_file.display())))?;
            roots
                .add(cert)
                .map_err(|e| AcmeError::Roots(format!("{}: {e}", ca_file.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(AcmeError::Roots(
            "none: no system CA certificates and no acme.ca_file".to_owned(),
        ));
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| AcmeError::Roots(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, instant_acme::BodyWrapper<bytes::Bytes>>(connector);
    Ok(Box::new(client))
}

/// Writes `data` to `path` readable by the owner only, through a
/// temporary file and a rename, creating the directories (owner only).
fn write_private(path: &Path, data: &[u8]) -> Result<(), AcmeError> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| AcmeError::Io(dir.to_owned(), e))?;
    }
    let tmp: PathBuf = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    chorus_c2s::tls::write_private(&tmp, data)
        .map_err(|e| AcmeError::Io(tmp.clone(), std::io::Error::other(e.to_string())))?;
    std::fs::rename(&tmp, path).map_err(|e| AcmeError::Io(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_up_to_six_hours() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(4), Duration::from_secs(480));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
