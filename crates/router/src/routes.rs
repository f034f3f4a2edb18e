//! The route table: which destination serves a domain (ejabberd's
//! `ejabberd_router` with `register_route`, Prosody's hosts table).
//!
//! Every stanza, whatever its origin (a client's c2s, a hosted service, a
//! feature module, later a server-to-server stream or a component), goes
//! through [`Router::route`](crate::Router::route), which looks the
//! destination domain up here:
//! - [`Destination::Local`]: a domain this server hosts. Its accounts'
//!   sessions receive by the rules of RFC 6121 §8, and what is addressed to
//!   the domain itself, or on an account's behalf to its bare JID, goes to
//!   the local server handler (the feature modules).
//! - [`Destination::Service`]: a domain a feature registered for itself
//!   (`conference.example.org`); the service gets every stanza for it.
//! - anything else is remote, and goes to the remote handler: until
//!   server-to-server exists that answers `remote-server-not-found` (RFC
//!   6120 §8.3.3.15); s2s replaces it with [`Routes::set_remote`]. Another
//!   cluster node would be one more [`Destination`] variant.
//!
//! The table is a `DashMap` read on every stanza and written only when a
//! service starts or stops, so a lookup never waits on a mailbox.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chorus_proto::{error_reply, StanzaError, StanzaErrorCondition, StanzaKind};
use chorus_xml::Element;
use dashmap::DashMap;
use futures_util::future::BoxFuture;

use crate::route::{Outcome, Router};

/// Something that stanzas can be routed to: a hosted service, the local
/// server's feature dispatch, the remote (s2s) handler.
///
/// `handle` runs in the routing caller's task (the sender's actor, as in
/// ejabberd), so a slow handler slows its sender and nobody else; a
/// service that needs its own pace forwards to its actor(s) and returns.
/// An answer the service wants to send goes back through
/// [`Router::route`] like any stanza.
pub trait Service: Send + Sync + 'static {
    /// For logs and the route listing.
    fn name(&self) -> &str;
    /// Takes one stanza. `Outcome::Reply` hands an error back to the
    /// caller to deliver (a c2s writes it straight to its client).
    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> BoxFuture<'a, Outcome>;
    /// The concrete service, for code that registered it to find it again
    /// in the table (an external component's connection finds its domain's
    /// service, XEP-0114); `None` for services nobody looks up.
    fn as_any(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        None
    }
}

/// Where stanzas for one domain go.
#[derive(Clone)]
pub enum Destination {
    /// A domain hosted here: accounts, their sessions, and the server.
    Local,
    /// A service hosted here on a domain of its own.
    Service(Arc<dyn Service>),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Local => f.write_str("Local"),
            Destination::Service(s) => write!(f, "Service({})", s.name()),
        }
    }
}

/// Why a route could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the domain {0} is already routed")]
    Taken(String),
}

/// Until server-to-server exists: every remote domain is unreachable
/// (RFC 6120 §8.3.3.15). Presence is dropped rather than bounced, as
/// servers do for presence they cannot deliver (RFC 6121 §4.2.2 leaves it
/// to the server), so a roster with remote contacts does not fill a
/// client with presence errors at every login.
struct Unreachable;

impl Service for Unreachable {
    fn name(&self) -> &str {
        "unreachable"
    }

    fn handle<'a>(&'a self, _router: &'a Router, stanza: Element) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if StanzaKind::of(&stanza) == Some(StanzaKind::Presence) {
                return Outcome::Dropped;
            }
            tracing::debug!(to = stanza.attr("to"), "no route to a remote domain");
            match error_reply(
                &stanza,
                &StanzaError::new(StanzaErrorCondition::RemoteServerNotFound),
            ) {
                Some(e) => Outcome::Reply(e),
                None => Outcome::Dropped,
            }
        })
    }
}

/// Domain -> destination, plus the handler of every other domain.
pub struct Routes {
    /// The hosted domains: a handful, read on every stanza, changed almost
    /// never. A short scan under a read lock costs less than hashing the
    /// domain into the map.
    locals: RwLock<Vec<String>>,
    /// The hosted services.
    by_domain: DashMap<String, Destination>,
    remote: RwLock<Arc<dyn Service>>,
    /// A server-to-server handler replaced the unreachable one.
    has_remote: AtomicBool,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            locals: RwLock::new(Vec::new()),
            by_domain: DashMap::new(),
            remote: RwLock::new(Arc::new(Unreachable)),
            has_remote: AtomicBool::new(false),
        }
    }
}

impl Routes {
    /// Routes `domain` (lowercase, as JIDs are normalized) to `dest`.
    pub fn add(&self, domain: &str, dest: Destination) -> Result<(), RouteError> {
        use dashmap::mapref::entry::Entry;
        let domain = domain.to_ascii_lowercase();
        let mut locals = self.locals.write().unwrap_or_else(|p| p.into_inner());
        if locals.contains(&domain) {
            return Err(RouteError::Taken(domain));
        }
        match self.by_domain.entry(domain.clone()) {
            Entry::Occupied(_) => Err(RouteError::Taken(domain.to_owned())),
            Entry::Vacant(v) => {
                tracing::info!(domain, destination = ?dest, "route added");
                match dest {
                    Destination::Local => locals.push(domain),
                    service => {
                        v.insert(service);
                    }
                }
                Ok(())
            }
        }
    }

    /// Removes the route of `domain`; its stanzas are remote from then on.
    pub fn remove(&self, domain: &str) -> Option<Destination> {
        let removed = {
            let mut locals = self.locals.write().unwrap_or_else(|p| p.into_inner());
            match locals.iter().position(|d| d == domain) {
                Some(i) => {
                    locals.remove(i);
                    Some(Destination::Local)
                }
                None => self.by_domain.remove(domain).map(|(_, d)| d),
            }
        };
        if removed.is_some() {
            tracing::info!(domain, "route removed");
        }
        removed
    }

    /// The destination of `domain`, `None` when it is remote.
    pub fn get(&self, domain: &str) -> Option<Destination> {
        if self.is_local(domain) {
            return Some(Destination::Local);
        }
        self.by_domain.get(domain).map(|d| d.value().clone())
    }

    /// Whether `domain` is one this server hosts accounts on.
    pub fn is_local(&self, domain: &str) -> bool {
        self.locals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|d| d == domain)
    }

    /// The handler of domains not in the table (server-to-server).
    pub fn remote(&self) -> Arc<dyn Service> {
        self.remote
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Installs the handler of domains not in the table.
    pub fn set_remote(&self, remote: Arc<dyn Service>) {
        match self.remote.write() {
            Ok(mut r) => *r = remote,
            Err(p) => *p.into_inner() = remote,
        }
        self.has_remote.store(true, Ordering::Relaxed);
    }

    /// Whether other domains can be reached at all (a server-to-server
    /// handler is installed).
    pub fn has_remote(&self) -> bool {
        self.has_remote.load(Ordering::Relaxed)
    }

    /// The hosted services, sorted by domain, as (domain, service name):
    /// what the server lists in its disco#items (XEP-0030).
    pub fn services(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .by_domain
            .iter()
            .filter_map(|e| match e.value() {
                Destination::Service(s) => Some((e.key().clone(), s.name().to_owned())),
                Destination::Local => None,
            })
            .collect();
        out.sort();
        out
    }

    /// Every route, sorted by domain, as (domain, destination name).
    pub fn list(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .locals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|d| (d.clone(), "local".to_owned()))
            .collect();
        out.extend(self.by_domain.iter().map(|e| {
            let name = match e.value() {
                Destination::Local => "local".to_owned(),
                Destination::Service(s) => s.name().to_owned(),
            };
            (e.key().clone(), name)
        }));
        out.sort();
        out
    }
}
