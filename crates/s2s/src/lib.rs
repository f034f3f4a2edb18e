//! Server-to-server federation (RFC 6120), as ejabberd's `ejabberd_s2s`,
//! `ejabberd_s2s_in` and `ejabberd_s2s_out` split it.
//!
//! - **Outgoing** ([`outgoing`]): one `s2s-out` actor per pair of local
//!   and remote domain, under `root/s2s`, started by the first stanza for
//!   the remote domain. The stanzas wait in the pair's [`Link`], which
//!   outlives the actor: a killed actor is restarted onto the same queue,
//!   and what it had not written yet is written by its successor. A
//!   domain that cannot be reached gets its queue bounced with the RFC's
//!   condition, and stanzas bounce at once for a backoff that doubles per
//!   failure.
//! - **Incoming** ([`incoming`]): the `s2s` listener kind; each accepted
//!   connection is a `conn-<id>` group of socket, receiver (the client
//!   stream's, generic over its owner) and `s2s-in`, which negotiates
//!   STARTTLS, authenticates each (remote, local) domain pair by SASL
//!   EXTERNAL (XEP-0178) or Server Dialback (XEP-0220), checks `from` and
//!   `to` on every stanza (RFC 6120 §8.1) and routes what passes.
//!
//! Remote addresses reach this crate through the route table: the server
//! installs [`Remote`] with `Routes::set_remote`, so every stanza for a
//! domain that is neither local nor a hosted service comes here.

pub mod dialback;
pub mod incoming;
pub mod outgoing;
pub mod resolve;
pub mod verify;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chorus_c2s::C2sContext;
use chorus_proto::{error_reply, StanzaError, StanzaErrorCondition, StanzaKind};
use chorus_router::{Outcome, Router, Service};
use chorus_supervisor::{ChildSpec, Restart, StartCtx, Strategy, SupervisorOptions};
use chorus_xml::Element;
use dashmap::DashMap;
use futures_util::future::BoxFuture;
use ractor::ActorCell;

pub use incoming::S2sConnections;

/// What federation implements, as a declaration for `docs/XEPS.md` and
/// disco (the streams themselves are this crate's, not a feature module's).
pub struct Federation;

static INFO: chorus_modules::ModuleInfo = chorus_modules::ModuleInfo {
    name: "s2s",
    file: file!(),
    xeps: &[
        chorus_modules::Xep {
            number: 178,
            name: "Best Practices for Use of SASL EXTERNAL with Certificates",
            version: "1.2",
            support: chorus_modules::Support::Complete,
            note: "Server-to-server: SASL EXTERNAL when the peer's certificate verifies for its domain (system roots and s2s.ca_file).",
        },
        chorus_modules::Xep {
            number: 185,
            name: "Dialback Key Generation and Validation",
            version: "1.0",
            support: chorus_modules::Support::Complete,
            note: "HMAC-SHA256 keys from a secret kept in <data_dir>/dialback.key.",
        },
        chorus_modules::Xep {
            number: 220,
            name: "Server Dialback",
            version: "1.1.1",
            support: chorus_modules::Support::Complete,
            note: "Both roles, with dialback errors and piggybacking of domain pairs on incoming streams; outgoing streams carry one pair each.",
        },
        chorus_modules::Xep {
            number: 344,
            name: "Impact of TLS and DNSSEC on Dialback",
            version: "1.0.1",
            support: chorus_modules::Support::Partial,
            note: "A dialback key from a peer whose certificate proves its domain is accepted without a callback; no DNSSEC.",
        },
    ],
    ..chorus_modules::ModuleInfo::EMPTY
};

impl chorus_modules::Module for Federation {
    fn info(&self) -> &'static chorus_modules::ModuleInfo {
        &INFO
    }
}
pub use outgoing::Link;

/// What every s2s stream shares, built once by the server.
pub struct S2sContext {
    /// The client side's context: configuration, TLS, limits, router,
    /// registry, metrics and connection ids are the same for servers.
    pub c2s: Arc<C2sContext>,
    pub(crate) secret: dialback::Secret,
    pub(crate) verifier: verify::Verifier,
    pub(crate) resolver: resolve::Resolver,
    /// `s2s.hosts`, parsed.
    pub(crate) hosts: HashMap<String, SocketAddr>,
    /// Outgoing streams by (local, remote) domain.
    links: DashMap<(String, String), Arc<Link>>,
    /// The `root/s2s` supervisor, once started.
    supervisor: Mutex<Option<ActorCell>>,
    /// Incoming streams by connection id, for `chorusctl s2s list`.
    pub(crate) incoming: DashMap<u64, incoming::InInfo>,
    /// Incoming streams per remote address (`s2s.max_streams_per_ip`).
    pub(crate) per_ip: chorus_listener::IpCounts,
    /// The s2s TLS configurations, derived from the c2s ones (which a
    /// reload replaces): (the c2s setup they came from, ours).
    tls: Mutex<
        Option<(
            Arc<chorus_c2s::tls::TlsSetup>,
            Arc<chorus_c2s::tls::TlsSetup>,
        )>,
    >,
}

/// What the authoritative server said about a dialback key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    Valid,
    Invalid,
    /// It could not be asked, or answered with an error: the stanza error
    /// condition to report (XEP-0220 §2.4).
    Failed(&'static str),
}

/// One stream, as `chorusctl s2s list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// "in" or "out".
    pub direction: &'static str,
    pub local: String,
    pub remote: String,
    /// "external" (SASL EXTERNAL), "dialback", or "" while negotiating.
    pub auth: String,
    /// "TLSv1_3", "TLSv1_2" or "none".
    pub tls: String,
    /// Stanzas waiting to go (outgoing only).
    pub queued: usize,
    /// The actor's path in the tree.
    pub path: String,
}

impl S2sContext {
    /// Reads the dialback secret (`<data_dir>/dialback.key`, made on first
    /// start) and the trust anchors.
    pub fn new(c2s: Arc<C2sContext>) -> std::io::Result<Arc<S2sContext>> {
        let cfg = &c2s.config;
        let secret = chorus_sasl::server_key(&cfg.server.data_dir.join("dialback.key"))?;
        let hosts = cfg
            .s2s
            .hosts
            .iter()
            .filter_map(|h| cfg.s2s.host_override(h))
            .collect();
        Ok(Arc::new(S2sContext {
            secret: dialback::Secret::new(secret),
            verifier: verify::Verifier::new(&cfg.s2s.ca_file),
            resolver: resolve::Resolver::default(),
            hosts,
            links: DashMap::new(),
            supervisor: Mutex::new(None),
            incoming: DashMap::new(),
            per_ip: Default::default(),
            tls: Mutex::new(None),
            c2s,
        }))
    }

    pub(crate) fn config(&self) -> &chorus_config::S2sConfig {
        &self.c2s.config.s2s
    }

    pub(crate) fn router(&self) -> &Arc<Router> {
        &self.c2s.router
    }

    /// Whether this server speaks for `domain`: a served domain or a
    /// hosted service.
    pub(crate) fn is_ours(&self, domain: &str) -> bool {
        self.c2s.router.routes.get(domain).is_some()
    }

    /// The TLS setup of incoming streams (asking for the peer's
    /// certificate), following the c2s one through reloads.
    pub(crate) fn server_tls(&self) -> Option<Arc<chorus_c2s::tls::TlsSetup>> {
        let base = self.c2s.tls()?;
        let mut cached = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((from, ours)) = cached.as_ref() {
            if Arc::ptr_eq(from, &base) {
                return Some(ours.clone());
            }
        }
        let ours = Arc::new(base.for_s2s().ok()?);
        *cached = Some((base, ours.clone()));
        Some(ours)
    }

    /// The `root/s2s` supervisor's spec: one_for_one over the `s2s-out`
    /// actors, which it starts on demand. A (re)start takes over the
    /// links whose actors went down with a previous one.
    pub fn supervisor_spec(self: &Arc<Self>) -> ChildSpec {
        let ctx = self.clone();
        ChildSpec::supervisor("s2s", Restart::Permanent, move |c: StartCtx| {
            let ctx = ctx.clone();
            async move {
                let options = SupervisorOptions::new(Strategy::OneForOne)
                    .intensity(100, std::time::Duration::from_secs(10));
                let cell = chorus_supervisor::spawn_supervisor(c, options, Vec::new()).await?;
                *ctx.supervisor.lock().unwrap_or_else(|p| p.into_inner()) = Some(cell.clone());
                let links: Vec<Arc<Link>> = ctx.links.iter().map(|l| l.value().clone()).collect();
                for link in links {
                    link.restart_if_needed(&ctx);
                }
                Ok(cell)
            }
        })
    }

    pub(crate) fn supervisor(&self) -> Option<ActorCell> {
        self.supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The link from `local` to `remote`, made on first use.
    pub(crate) fn link(self: &Arc<Self>, local: &str, remote: &str) -> Arc<Link> {
        let key = (local.to_owned(), remote.to_owned());
        if let Some(l) = self.links.get(&key) {
            return l.clone();
        }
        // Links of domains that failed or went idle are forgotten; sweep
        // now and then for those whose backoff outlived their actor.
        if self.links.len() >= 64 && self.links.len().is_power_of_two() {
            self.links.retain(|_, l| !l.forgettable());
        }
        self.links
            .entry(key)
            .or_insert_with(|| Arc::new(Link::new(local, remote)))
            .clone()
    }

    /// Forgets `link` if nothing waits on it any more.
    pub(crate) fn forget(&self, link: &Arc<Link>) {
        self.links
            .remove_if(&(link.local.clone(), link.remote.clone()), |_, l| {
                Arc::ptr_eq(l, link) && l.forgettable()
            });
    }

    /// Asks `remote`'s authoritative server, over our stream from `local`,
    /// whether it made `key` for the stream `id` it opened to us (XEP-0220
    /// §2.1.2-§2.1.3).
    pub(crate) async fn verify_key(
        self: &Arc<Self>,
        local: &str,
        remote: &str,
        id: &str,
        key: &str,
    ) -> Verified {
        let (mut tx, rx) = tokio::sync::oneshot::channel();
        // A link forgotten between the lookup and the request: a fresh one.
        for _ in 0..3 {
            match self
                .link(local, remote)
                .verify(self, id.to_owned(), key.to_owned(), tx)
            {
                Ok(()) => break,
                Err(back) => tx = back,
            }
        }
        let timeout = self.config().connect_timeout();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(v)) => v,
            // The stream to the authoritative server failed (XEP-0220 §2.4).
            Ok(Err(_)) => Verified::Failed("remote-connection-failed"),
            Err(_) => Verified::Failed("remote-server-timeout"),
        }
    }

    /// Every stream, incoming and outgoing.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut out: Vec<StreamInfo> = self.links.iter().filter_map(|l| l.info()).collect();
        for s in self.incoming.iter() {
            out.extend(s.value().streams());
        }
        out.sort_by(|a, b| (&a.remote, a.direction).cmp(&(&b.remote, b.direction)));
        out
    }

    /// Closes every stream with `domain`; returns how many there were.
    /// Queued stanzas stay queued for the next stream.
    pub fn close(&self, domain: &str) -> usize {
        let mut n = 0;
        for l in self.links.iter() {
            if l.remote == domain && l.close() {
                n += 1;
            }
        }
        for s in self.incoming.iter() {
            if s.value().remote_domains().iter().any(|d| d == domain) {
                s.value().close();
                n += 1;
            }
        }
        n
    }

    pub(crate) fn bounced(&self) {
        self.c2s
            .metrics
            .s2s_bounced
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The server stops: incoming streams end with `system-shutdown`
    /// (RFC 6120 §4.9.3.17), outgoing ones close.
    pub fn shutdown(&self) {
        for s in self.incoming.iter() {
            let _ = s.value().actor.cast(incoming::InMsg::Shutdown);
        }
        for l in self.links.iter() {
            l.close();
        }
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.c2s
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The route table's handler for every domain it does not know.
pub struct Remote(pub Arc<S2sContext>);

/// An error for `stanza`'s sender, or None when none is owed (RFC 6120
/// §8.3.1: never for an error; presence is dropped, as servers do for
/// presence they cannot deliver).
pub(crate) fn bounce(
    stanza: &Element,
    condition: StanzaErrorCondition,
    text: &str,
) -> Option<Element> {
    if StanzaKind::of(stanza) == Some(StanzaKind::Presence) {
        return None;
    }
    let mut err = StanzaError::new(condition);
    if !text.is_empty() {
        err = err.with_text(text);
    }
    error_reply(stanza, &err)
}

/// `domain` as DNS, SNI and certificates spell it: A-labels (RFC 5890).
pub(crate) fn ascii(domain: &str) -> String {
    idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_owned())
}

fn domain_of(jid: &str) -> Option<String> {
    jid.parse::<chorus_jid::Jid>()
        .ok()
        .map(|j| j.domain().to_owned())
}

impl Service for Remote {
    fn name(&self) -> &str {
        "s2s"
    }

    fn handle<'a>(&'a self, _router: &'a Router, stanza: Element) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let ctx = &self.0;
            let reply = |c, text: &str| match bounce(&stanza, c, text) {
                Some(e) => {
                    ctx.bounced();
                    Outcome::Reply(e)
                }
                None => Outcome::Dropped,
            };
            let (Some(to), Some(from)) = (
                stanza.attr("to").and_then(domain_of),
                stanza.attr("from").and_then(domain_of),
            ) else {
                return Outcome::Dropped;
            };
            if !ctx.config().enabled || !ctx.config().allows(&to) {
                return reply(
                    StanzaErrorCondition::RemoteServerNotFound,
                    "federation with this domain is not allowed",
                );
            }
            // Never a relay: only what one of our domains sends leaves.
            if !ctx.is_ours(&from) {
                tracing::debug!(from, to, "not relaying a stanza between two remote domains");
                return Outcome::Dropped;
            }
            let mut stanza = stanza;
            loop {
                match ctx.link(&from, &to).push(ctx, stanza) {
                    Ok(()) => return Outcome::Delivered,
                    Err(outgoing::Pushed::Removed(s)) => stanza = s,
                    Err(outgoing::Pushed::Bounce(s, condition, text)) => {
                        return match bounce(&s, condition, text) {
                            Some(e) => {
                                ctx.bounced();
                                Outcome::Reply(e)
                            }
                            None => Outcome::Dropped,
                        }
                    }
                }
            }
        })
    }
}
