//! Routing a stanza: RFC 6120 §8 and §10, RFC 6121 §8.5, in one place.
//!
//! Runs in the sender's task (a client's c2s actor, a service...). The
//! origin has already checked and stamped `from`; this finds the
//! destination in the route table (routes.rs), and for a local domain
//! decides who receives the stanza and what the sender gets back when
//! nobody does. Chat and normal messages for an account with no available
//! resource go to offline storage (XEP-0160).

use std::sync::{Arc, OnceLock};

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{
    error_reply, IqType, MessageType, PresenceType, StanzaError, StanzaErrorCondition, StanzaKind,
};
use chorus_storage::{AccountStore, Storage};
use chorus_xml::Element;

use crate::hooks::{Hooks, NoHooks};
use crate::iq::Pending;
use crate::routes::{Destination, Routes, Service};
use crate::table::{Session, SessionTable};

/// What happened to a routed stanza.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Handed to at least one session.
    Delivered,
    /// Kept in offline storage for the account (XEP-0160).
    Stored,
    /// Silently ignored, as the RFC asks for this case.
    Dropped,
    /// An error for the sender (already addressed to it). A c2s writes
    /// it to its client; any other origin routes it
    /// ([`Router::send`] does both).
    Reply(Element),
}

/// Routes every stanza, whatever its origin, by the route table.
pub struct Router {
    pub sessions: Arc<SessionTable>,
    /// Domain -> destination (routes.rs).
    pub routes: Routes,
    /// What is addressed to a local domain itself, or on an account's
    /// behalf to its bare JID: the feature modules, installed once at start.
    server: OnceLock<Arc<dyn Service>>,
    /// IQ requests awaiting their answers (iq.rs).
    pub(crate) pending: Pending,
    /// Accounts and rosters (RFC 6121 is the router's own business).
    pub storage: Arc<Storage>,
    /// What features do at routing's hook points (hooks.rs), installed
    /// once at start.
    hooks: OnceLock<Arc<dyn Hooks>>,
}

/// `service-unavailable` for `stanza`'s sender (or nothing, for a stanza
/// that must not be answered): the answer for a recipient that is not
/// there (RFC 6121 §8.5).
pub(crate) fn unavailable(stanza: &Element) -> Outcome {
    reply(stanza, StanzaErrorCondition::ServiceUnavailable)
}

fn reply(stanza: &Element, cond: StanzaErrorCondition) -> Outcome {
    tracing::debug!(
        to = stanza.attr("to"),
        kind = stanza.name(),
        typ = stanza.attr("type"),
        condition = ?cond,
        "undeliverable"
    );
    match error_reply(stanza, &StanzaError::new(cond)) {
        Some(e) => Outcome::Reply(e),
        None => Outcome::Dropped,
    }
}

/// RFC 6121 §8.5.2.1.1: chat and normal go to the resource(s) with the
/// highest non-negative priority; headline to every non-negative one.
pub fn message_targets(all: &[Arc<Session>], highest_only: bool) -> Vec<Arc<Session>> {
    let eligible: Vec<&Arc<Session>> = all
        .iter()
        .filter(|s| s.available() && s.priority() >= 0)
        .collect();
    let Some(max) = eligible.iter().map(|s| s.priority()).max() else {
        return Vec::new();
    };
    eligible
        .into_iter()
        .filter(|s| !highest_only || s.priority() == max)
        .cloned()
        .collect()
}

impl Router {
    pub fn new(sessions: Arc<SessionTable>, domains: Vec<String>, storage: Arc<Storage>) -> Self {
        let routes = Routes::default();
        for d in domains {
            // Config validation refuses duplicates; a repeat is harmless.
            let _ = routes.add(&d, Destination::Local);
        }
        Router {
            sessions,
            routes,
            server: OnceLock::new(),
            pending: Pending::default(),
            storage,
            hooks: OnceLock::new(),
        }
    }

    /// Installs the feature modules' hooks. Once only.
    pub fn set_hooks(&self, hooks: Arc<dyn Hooks>) -> Result<(), Arc<dyn Hooks>> {
        self.hooks.set(hooks)
    }

    /// The installed hooks, or none.
    pub fn hooks(&self) -> &dyn Hooks {
        match self.hooks.get() {
            Some(h) => h.as_ref(),
            None => &NoHooks,
        }
    }

    /// Whether `domain` is one this server hosts accounts on.
    pub fn is_local(&self, domain: &str) -> bool {
        self.routes.is_local(domain)
    }

    /// Installs the handler of stanzas for the local server itself (the
    /// feature modules). Once only: a second call is refused.
    pub fn set_server(&self, server: Arc<dyn Service>) -> Result<(), Arc<dyn Service>> {
        self.server.set(server)
    }

    /// Routes a stanza from an origin that is not a client's c2s (a
    /// service, a module, the server): an error the router hands back goes
    /// to the stanza's sender like any other stanza.
    pub async fn send(&self, stanza: Element) {
        if let Outcome::Reply(e) = self.route(stanza).await {
            // An error about an error is never sent (error_reply), so this
            // recursion ends after one step.
            Box::pin(self.route(e)).await;
        }
    }

    /// Routes the server's answer (`Outcome::Reply`) to a stanza that an
    /// origin other than a c2s sent (a server-to-server stream), past the
    /// block lists, as a c2s writes such an answer straight to its client:
    /// a sender a contact blocked is told so (XEP-0191 §3.2).
    pub async fn answer(&self, error: Element) {
        let _ = self.route_filtered(error, false).await;
    }

    /// To the local server itself, or on an account's behalf to its bare
    /// JID (RFC 6121 §8.5.2.1.3, §8.5.1 having been checked).
    async fn to_server(&self, kind: StanzaKind, stanza: Element) -> Outcome {
        match self.server.get() {
            Some(server) => server.handle(self, stanza).await,
            // Only a router without modules (unit tests): nothing answers.
            None => match kind {
                StanzaKind::Presence => Outcome::Dropped,
                _ => reply(&stanza, StanzaErrorCondition::ServiceUnavailable),
            },
        }
    }

    /// Whether `bare` is an account here (false on a storage error: fail
    /// closed toward the asker).
    pub async fn account_exists(&self, bare: &BareJid) -> bool {
        match bare.node() {
            Some(node) => self
                .storage
                .account_exists(node, bare.domain())
                .await
                .unwrap_or_else(|e| {
                    // Fail closed toward the sender: treated as unknown.
                    tracing::error!(error = %e, "storage error during routing");
                    false
                }),
            None => false,
        }
    }

    /// Routes a stanza whose `to` is set and whose `from` is stamped.
    pub async fn route(&self, stanza: Element) -> Outcome {
        self.route_filtered(stanza, true).await
    }

    /// [`Router::route`], optionally past the sender's side of the block
    /// lists: for the subscription stanzas that keep both rosters in step
    /// when a user removes a blocked contact (RFC 6121 §2.5.2 must hold;
    /// the contact's side still delivers nothing across the block).
    pub(crate) async fn route_filtered(&self, stanza: Element, filter: bool) -> Outcome {
        let Some(kind) = StanzaKind::of(&stanza) else {
            return Outcome::Dropped;
        };
        // The answer to a request the server or a service awaits (iq.rs).
        let stanza =
            if kind == StanzaKind::Iq && IqType::of(&stanza).is_some_and(|t| !t.is_request()) {
                match self.pending.complete(stanza) {
                    Ok(()) => return Outcome::Delivered,
                    Err(s) => s,
                }
            } else {
                stanza
            };
        // XEP-0191: a block list in either direction decides before any
        // delivery rule (blocking.rs).
        if filter {
            if let Some(outcome) = self.hooks().filter(self, kind, &stanza).await {
                return outcome;
            }
        }
        let to: Jid = match stanza.attr("to").unwrap_or_default().parse() {
            Ok(j) => j,
            Err(e) => {
                return match error_reply(&stanza, &StanzaError::from(&e)) {
                    Some(r) => Outcome::Reply(r),
                    None => Outcome::Dropped,
                }
            }
        };
        match self.routes.get(to.domain()) {
            Some(Destination::Local) => {}
            Some(Destination::Service(service)) => return service.handle(self, stanza).await,
            None => return self.routes.remote().handle(self, stanza).await,
        }
        if to.node().is_none() {
            return self.to_server(kind, stanza).await;
        }
        if kind == StanzaKind::Message {
            // Hooks may change the message before delivery (a stanza-id)
            // and act on where it went (the archive).
            let mut stanza = stanza;
            let state = self.hooks().message_inbound(self, &to, &mut stanza).await;
            let outcome = self.route_local(kind, &to, stanza).await;
            // Nothing to hand back (nothing archived, say): no call.
            if !state.is_empty() {
                self.hooks().message_routed(self, state, &outcome).await;
            }
            return outcome;
        }
        self.route_local(kind, &to, stanza).await
    }

    /// To an account of a local domain, by full or bare JID.
    async fn route_local(&self, kind: StanzaKind, to: &Jid, stanza: Element) -> Outcome {
        match FullJid::try_from(to.clone()) {
            Ok(full) => self.to_full(kind, &full, stanza).await,
            Err(_) => self.to_bare(kind, &to.bare(), stanza).await,
        }
    }

    fn deliver_all(&self, targets: &[Arc<Session>], stanza: Element) -> bool {
        let mut delivered = false;
        if let Some((last, rest)) = targets.split_last() {
            for s in rest {
                delivered |= s.sink.deliver(stanza.clone());
            }
            delivered |= last.sink.deliver(stanza);
        }
        delivered
    }

    async fn to_bare(&self, kind: StanzaKind, bare: &BareJid, stanza: Element) -> Outcome {
        let resources = self.sessions.resources(bare);
        match kind {
            // §8.5.2.1.3: the server answers on the account's behalf; the
            // feature modules decide what it says when the account does not
            // exist (§8.5.1: service-unavailable, but XEP-0030's empty
            // disco#items).
            StanzaKind::Iq => self.to_server(kind, stanza).await,
            StanzaKind::Message => {
                let mt = MessageType::of(&stanza);
                if mt == MessageType::Error {
                    return Outcome::Dropped;
                }
                if mt == MessageType::Groupchat {
                    // §8.5.2.1.1 / §8.5.2.2.1: never delivered to a bare JID.
                    return reply(&stanza, StanzaErrorCondition::ServiceUnavailable);
                }
                let targets = message_targets(&resources, mt != MessageType::Headline);
                let delivered_to: Vec<FullJid> = targets.iter().map(|s| s.full.clone()).collect();
                if self.deliver_all(&targets, stanza.clone()) {
                    self.hooks()
                        .message_delivered(self, bare, &delivered_to, &stanza);
                    return Outcome::Delivered;
                }
                match mt {
                    // §8.5.2.2.1: headlines are not stored; ignore.
                    MessageType::Headline => Outcome::Dropped,
                    // §8.5.2.2.1: chat and normal go to offline storage
                    // (§8.5.1 for an account that does not exist).
                    _ => self.hooks().offline_message(self, bare, &stanza).await,
                }
            }
            StanzaKind::Presence => {
                let Some(from) = stanza.attr("from").and_then(|f| f.parse::<Jid>().ok()) else {
                    return Outcome::Dropped;
                };
                match PresenceType::of(&stanza) {
                    // RFC 6121 §3: the contact's server half (presence.rs).
                    Some(k) if k.is_subscription() => {
                        Box::pin(self.inbound_subscription(bare, &from.bare(), k, stanza)).await;
                        Outcome::Delivered
                    }
                    // §4.3.2: the contact's server answers for its account.
                    Some(PresenceType::Probe) => {
                        Box::pin(self.probe(bare, &from)).await;
                        Outcome::Delivered
                    }
                    Some(PresenceType::Error) | None => Outcome::Dropped,
                    // Broadcast and directed presence (§4.2-§4.6) reach
                    // every available resource no block list separates
                    // from the sender (XEP-0191 §3.3, per resource).
                    Some(_) => {
                        if self.to_available_unblocked(&from, bare, &stanza).await {
                            Outcome::Delivered
                        } else {
                            Outcome::Dropped
                        }
                    }
                }
            }
        }
    }

    async fn to_full(&self, kind: StanzaKind, full: &FullJid, mut stanza: Element) -> Outcome {
        if let Some(session) = self.sessions.get(full) {
            if kind == StanzaKind::Message {
                self.hooks().message_delivered(
                    self,
                    &full.bare(),
                    std::slice::from_ref(full),
                    &stanza,
                );
            }
            match session.sink.try_deliver(stanza) {
                Ok(()) => return Outcome::Delivered,
                // The session ended between the lookup and the delivery: as
                // if it had not been there (a message falls back to offline
                // storage).
                Err(back) => stanza = back,
            }
        }
        match kind {
            // §8.5.3.2.2
            StanzaKind::Iq => reply(&stanza, StanzaErrorCondition::ServiceUnavailable),
            // §8.5.3.2.3
            StanzaKind::Presence => Outcome::Dropped,
            // §8.5.3.2.1: only chat is treated as if sent to the bare JID.
            // For normal, groupchat and headline the server "MUST either
            // (a) silently ignore the stanza or (b) return an error stanza
            // to the sender, which SHOULD be <service-unavailable/>": a
            // normal message or a groupchat one is answered, so its sender
            // learns it went nowhere; a headline, meant to be fire and
            // forget, is ignored. Errors are always ignored.
            StanzaKind::Message => match MessageType::of(&stanza) {
                MessageType::Error | MessageType::Headline => Outcome::Dropped,
                MessageType::Normal | MessageType::Groupchat => {
                    reply(&stanza, StanzaErrorCondition::ServiceUnavailable)
                }
                MessageType::Chat => self.to_bare(kind, &full.bare(), stanza).await,
            },
        }
    }
}

impl Router {
    /// A stanza a session sent to its client and the client never
    /// acknowledged (XEP-0198), once that session is over: chat and normal
    /// messages go to another available resource of the account, else
    /// (those worth keeping) to its offline storage; other
    /// messages (headline, groupchat) and IQ requests bounce to their sender
    /// with `service-unavailable`, as for a resource that is gone (RFC 6121
    /// §8.5.3.2); presence, results, errors and bare chat states are dropped.
    pub async fn unacknowledged(
        &self,
        owner: &BareJid,
        stanza: Element,
        session: Option<&Session>,
    ) {
        if session.is_some_and(|s| self.hooks().unacknowledged_kept(self, s, &stanza)) {
            tracing::debug!(jid = %owner, id = stanza.attr("id"), "unacknowledged, kept in the archive the client reads");
            return;
        }
        let bounce = match StanzaKind::of(&stanza) {
            Some(StanzaKind::Message) => match MessageType::of(&stanza) {
                MessageType::Error => false,
                MessageType::Chat | MessageType::Normal => {
                    let bare = stanza
                        .attr("to")
                        .and_then(|t| t.parse::<Jid>().ok())
                        .map(|j| j.bare())
                        .filter(|b| b.node().is_some() && self.is_local(b.domain()))
                        .unwrap_or_else(|| owner.clone());
                    // XEP-0198 §4: as a stanza sent to an unavailable
                    // resource, that is (RFC 6121 §8.5.3.2.1) as one sent to
                    // the bare JID: another available resource (the client
                    // may already have logged in again), else offline
                    // storage. Not archived or carbon-copied again.
                    let targets = message_targets(&self.sessions.resources(&bare), true);
                    if !self.deliver_all(&targets, stanza.clone()) {
                        if let Outcome::Reply(e) =
                            self.hooks().offline_message(self, &bare, &stanza).await
                        {
                            let _ = self.route(e).await;
                        }
                    }
                    false
                }
                MessageType::Groupchat | MessageType::Headline => true,
            },
            Some(StanzaKind::Iq) => true,
            _ => false,
        };
        if bounce {
            // error_reply refuses results and errors.
            if let Some(e) = error_reply(
                &stanza,
                &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
            ) {
                let _ = self.route(e).await;
            }
        }
    }
}
