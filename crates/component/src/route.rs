//! A component's domain in the route table: where stanzas for it go.
//!
//! One [`ComponentService`] per `[[components]]` entry, added to the route
//! table at start (`Module::hosted`) and there for the server's whole life,
//! connected or not. The connection that completes the handshake attaches
//! itself ([`ComponentService::attach`]); from then on a stanza routed to
//! the domain is re-namespaced, serialized with that connection's framing
//! and queued on its socket, in the sender's task, as routing to a client
//! session is. While nothing is attached (never connected, disconnected,
//! its actor killed) IQs and messages are answered `service-unavailable`
//! (RFC 6120 §8.3.3.19) and presence is dropped, as for an account with no
//! available resource (RFC 6121 §8.5.2).
//!
//! The attachment leaves with the connection: `Drop` of the stream state
//! detaches (a kill drops the state too), and a forward checks that the
//! stream actor still runs, so nothing is queued on a connection that is
//! going away.

use std::sync::{Arc, Mutex, MutexGuard};

use chorus_c2s::framing::Framing;
use chorus_c2s::socket::SocketHandle;
use chorus_proto::{error_reply, ns, StanzaError, StanzaErrorCondition, StanzaKind};
use chorus_router::{Outcome, Router, Service};
use chorus_xml::{Element, Node};
use futures_util::future::BoxFuture;
use ractor::{ActorRef, ActorStatus};

use crate::stream::ComponentMsg;
use crate::NS_COMPONENT;

/// The connected component of one domain.
#[derive(Clone)]
pub(crate) struct Attached {
    pub(crate) conn_id: u64,
    pub(crate) socket: SocketHandle,
    pub(crate) framing: Arc<dyn Framing>,
    /// The stream actor: a forward checks it still runs.
    pub(crate) stream: ActorRef<ComponentMsg>,
}

impl Attached {
    fn alive(&self) -> bool {
        matches!(
            self.stream.get_status(),
            ActorStatus::Running | ActorStatus::Starting | ActorStatus::Upgrading
        )
    }
}

/// Why a connection could not attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// Another connection serves the domain: the newcomer is refused, as
    /// ejabberd does (Prosody replaces the old one instead). A component
    /// that lost its connection without the server noticing gets its
    /// domain back once the old stream's socket fails or is killed.
    #[error("another connection serves this component domain")]
    Conflict,
}

/// One configured component in the route table.
pub struct ComponentService {
    shared: Arc<ComponentDomain>,
}

/// One configured component: its domain, its secret, and the connection
/// serving it, if any; shared by its service and its connections.
pub struct ComponentDomain {
    domain: String,
    /// The shared secret; never logged (no Debug on this type).
    secret: String,
    attached: Mutex<Option<Attached>>,
}

impl ComponentService {
    pub fn new(domain: &str, secret: &str) -> ComponentService {
        ComponentService {
            shared: Arc::new(ComponentDomain {
                domain: domain.to_ascii_lowercase(),
                secret: secret.to_owned(),
                attached: Mutex::new(None),
            }),
        }
    }

    /// The component's domain, lowercase.
    pub fn domain(&self) -> &str {
        &self.shared.domain
    }

    /// Whether a live connection serves the domain.
    pub fn connected(&self) -> bool {
        self.shared.connected()
    }

    /// The component of `domain` in `router`'s table, if it is one.
    pub fn find(router: &Router, domain: &str) -> Option<Arc<ComponentDomain>> {
        match router.routes.get(domain)? {
            chorus_router::Destination::Service(s) => s
                .as_any()
                .and_then(|a| a.downcast_ref::<ComponentService>())
                .map(|c| c.shared.clone()),
            chorus_router::Destination::Local => None,
        }
    }
}

impl ComponentDomain {
    /// The component's domain, lowercase.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    fn slot(&self) -> MutexGuard<'_, Option<Attached>> {
        // Nothing under the lock can panic half-way through a change.
        self.attached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a live connection serves the domain.
    pub fn connected(&self) -> bool {
        self.slot().as_ref().is_some_and(Attached::alive)
    }

    /// The connection `conn_id` completed the handshake: it serves the
    /// domain from now on, unless a live one already does.
    pub(crate) fn attach(&self, a: Attached) -> Result<(), AttachError> {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(Attached::alive) {
            return Err(AttachError::Conflict);
        }
        *slot = Some(a);
        Ok(())
    }

    /// The connection `conn_id` ends; a newer one's attachment stays.
    pub(crate) fn detach(&self, conn_id: u64) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|a| a.conn_id == conn_id) {
            *slot = None;
        }
    }
}

/// `el` with every element in namespace `from` moved to `to`, recursively:
/// stanzas are `jabber:client` inside the server and on client streams,
/// `jabber:component:accept` on a component's stream (XEP-0114 §3), and
/// their children in the content namespace (`<body/>`, `<error/>`) move
/// with them.
pub fn renamespace(el: &Element, from: &str, to: &str) -> Element {
    let ns = if el.ns() == from { to } else { el.ns() };
    let mut out = Element::new(el.name(), ns);
    for (k, v) in el.attrs() {
        out.set_attr(k, v);
    }
    for node in el.nodes() {
        match node {
            Node::Element(c) => out.push(renamespace(c, from, to)),
            Node::Text(t) => out.push_text(t.clone()),
        }
    }
    out
}

impl Service for ComponentService {
    fn name(&self) -> &str {
        "component"
    }

    fn handle<'a>(&'a self, _router: &'a Router, stanza: Element) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let target = self.shared.slot().clone().filter(Attached::alive);
            if let Some(a) = target {
                let el = renamespace(&stanza, ns::JABBER_CLIENT, NS_COMPONENT);
                let mut out = Vec::with_capacity(256);
                a.framing.element(&el, &mut out);
                match a.socket.send(out) {
                    Ok(()) => return Outcome::Delivered,
                    // The connection is closing (gone, or its queue
                    // overflowed): as if it were not there.
                    Err(e) => tracing::debug!(
                        conn = a.conn_id,
                        domain = %self.shared.domain,
                        error = ?e,
                        "component connection cannot take the stanza"
                    ),
                }
            }
            if StanzaKind::of(&stanza) == Some(StanzaKind::Presence) {
                return Outcome::Dropped;
            }
            match error_reply(
                &stanza,
                &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
            ) {
                Some(e) => Outcome::Reply(e),
                None => Outcome::Dropped,
            }
        })
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        Some(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renamespace_moves_the_stanza_and_its_content_children() {
        let el = Element::from_xml(
            "<message to='a@b' id='1'><body>hi</body><x xmlns='urn:x'><y/></x></message>",
        )
        .unwrap();
        let c = renamespace(&el, ns::JABBER_CLIENT, NS_COMPONENT);
        assert_eq!(
            c.to_xml(),
            "<message xmlns='jabber:component:accept' to='a@b' id='1'><body>hi</body>\
             <x xmlns='urn:x'><y/></x></message>"
        );
        assert_eq!(renamespace(&c, NS_COMPONENT, ns::JABBER_CLIENT), el);
    }
}
