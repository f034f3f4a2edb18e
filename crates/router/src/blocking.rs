//! XEP-0191: Blocking Command (version 1.3), the routing half: what a block
//! list does to the stanzas and presence that flow between two entities.
//! The IQ protocol (the list, `<block/>`, `<unblock/>`, the pushes) lives
//! in `chorus-modules`' `blocking` module, which calls the presence
//! helpers here.
//!
//! Enforcement ([`Router::blocking_verdict`], called first thing in
//! [`Router::route`]) applies both directions of §3.3:
//! - the user's own list, outbound: a stanza to a blocked JID is not
//!   routed, and the user gets `not-acceptable` with the application
//!   condition `<blocked xmlns='urn:xmpp:blocking:errors'/>` (§3.3,
//!   example 12, whose `type='cancel'` is kept);
//! - the recipient's list, inbound: presence is dropped without an answer
//!   (it "MUST NOT respond"); a message gets `service-unavailable` (the
//!   XEP's SHOULD); an IQ get or set gets `service-unavailable` (MUST);
//!   IQ results and errors are dropped (MUST). With these, the user
//!   appears offline to the blocked entity.
//!
//! Two exemptions keep a user in control of their own account: stanzas
//! between resources of one account, and stanzas to the server itself (a
//! domain JID of ours), are never blocked. Without the second, blocking
//! one's own domain would also block the `<unblock/>` that undoes it.
//!
//! Presence that does not pass through `route` (broadcasts, probe answers,
//! subscription stanzas) is filtered by the presence code through
//! [`Router::blocked_between`], [`Router::to_available_unblocked`] and
//! [`Router::subscription_blocked`].
//!
//! JID matching is that of XEP-0191 §6 (XEP-0016 §2.1): an entry covers a
//! JID if it is the JID, its bare JID, its domain with its resource, or its
//! domain. Routing asks storage ([`BlockStore::is_blocked`]); the presence
//! notifications for a block or unblock test the entries just changed in
//! memory ([`covers`]).
//!
//! A storage failure fails closed: a stanza whose fate cannot be read is
//! refused with `internal-server-error` (presence is dropped), so a
//! database hiccup never lets a blocked entity through.

use std::sync::Arc;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{error_reply, ns, ErrorType, StanzaError, StanzaErrorCondition, StanzaKind};
use chorus_storage::{BlockStore, RosterStore, StorageError, Subscription};
use chorus_xml::Element;

use crate::route::{Outcome, Router};
use crate::table::Session;

/// Whether the block-list entry `entry` covers `jid` (XEP-0191 §6, which
/// takes XEP-0016 §2.1): every part the entry has must match, and the
/// localpart and resource it lacks are wildcards. That is exactly the four
/// entry forms the XEP lists: `user@domain/resource`, `user@domain`,
/// `domain/resource`, `domain`.
pub(crate) fn covers(entry: &Jid, jid: &Jid) -> bool {
    entry.domain() == jid.domain()
        && entry.node().is_none_or(|n| jid.node() == Some(n))
        && entry.resource().is_none_or(|r| jid.resource() == Some(r))
}

/// The error for an outbound stanza to a blocked JID (§3.3, example 12).
fn blocked_error() -> StanzaError {
    StanzaError::new(StanzaErrorCondition::NotAcceptable)
        .with_type(ErrorType::Cancel)
        .with_app(Element::new("blocked", ns::BLOCKING_ERRORS))
}

/// `error` as the reply to `stanza`, or `Dropped` where no error may be
/// sent (errors, IQ results).
fn refuse(stanza: &Element, error: &StanzaError) -> Outcome {
    match error_reply(stanza, error) {
        Some(e) => Outcome::Reply(e),
        None => Outcome::Dropped,
    }
}

/// §3.3, the recipient's side: presence silently, messages and IQ requests
/// with `service-unavailable`, IQ responses silently.
fn refuse_inbound(kind: StanzaKind, stanza: &Element) -> Outcome {
    match kind {
        StanzaKind::Presence => Outcome::Dropped,
        StanzaKind::Message | StanzaKind::Iq => refuse(
            stanza,
            &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
        ),
    }
}

/// A storage error while deciding: fail closed (see the module docs).
fn failed(kind: StanzaKind, stanza: &Element, e: &StorageError) -> Outcome {
    tracing::error!(error = %e, "block list read failed; stanza refused");
    match kind {
        StanzaKind::Presence => Outcome::Dropped,
        _ => refuse(
            stanza,
            &StanzaError::new(StanzaErrorCondition::InternalServerError),
        ),
    }
}

fn unavailable(from: &FullJid, to: &BareJid) -> Element {
    Element::new("presence", ns::JABBER_CLIENT)
        .with_attr("type", "unavailable")
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string())
}

fn has_from(s: Subscription) -> bool {
    matches!(s, Subscription::From | Subscription::Both)
}

fn has_to(s: Subscription) -> bool {
    matches!(s, Subscription::To | Subscription::Both)
}

impl Router {
    /// Whether `owner`'s block list covers `other`. Only a local account
    /// has a list; anything else blocks nothing.
    async fn has_blocked(&self, owner: &BareJid, other: &Jid) -> Result<bool, StorageError> {
        let Some(node) = owner.node() else {
            return Ok(false);
        };
        if !self.is_local(owner.domain()) {
            return Ok(false);
        }
        self.storage
            .is_blocked(node, owner.domain(), other.as_str())
            .await
    }

    /// XEP-0191 §3.3 for a stanza from a local session: `Some` with what
    /// happens to it when a block list stops it, `None` to route it on.
    /// Runs before any other routing rule, so a blocked entity learns
    /// nothing, not even whether the user exists. A stanza whose `to`
    /// does not parse is left to `route`, which answers `jid-malformed`.
    pub(crate) async fn blocking_verdict(
        &self,
        kind: StanzaKind,
        stanza: &Element,
    ) -> Option<Outcome> {
        let from: Jid = stanza.attr("from")?.parse().ok()?;
        let to: Jid = stanza.attr("to")?.parse().ok()?;
        if from.bare() == to.bare() {
            return None;
        }
        if to.node().is_none() && self.is_local(to.domain()) {
            return None;
        }
        match self.has_blocked(&from.bare(), &to).await {
            Ok(true) => {
                tracing::debug!(from = %from, to = %to, kind = kind.as_str(), "to a blocked JID");
                return Some(refuse(stanza, &blocked_error()));
            }
            Ok(false) => {}
            Err(e) => return Some(failed(kind, stanza, &e)),
        }
        match self.has_blocked(&to.bare(), &from).await {
            Ok(true) => {
                tracing::debug!(from = %from, to = %to, kind = kind.as_str(), "from a blocked JID");
                Some(refuse_inbound(kind, stanza))
            }
            Ok(false) => None,
            Err(e) => Some(failed(kind, stanza, &e)),
        }
    }

    /// Whether a block list stands between `a` and `b`, in either
    /// direction: `a`'s account blocked `b`, or `b`'s account blocked `a`.
    /// For presence that does not pass through `route` (XEP-0191 §3.3: no
    /// presence flows either way). Give full JIDs where they are known: a
    /// bare JID is not covered by an entry naming one of its resources.
    /// Never true within one account; true on a storage error (fail closed:
    /// the presence is not sent).
    pub async fn blocked_between(&self, a: &Jid, b: &Jid) -> bool {
        if a.bare() == b.bare() {
            return false;
        }
        for (owner, other) in [(a, b), (b, a)] {
            match self.has_blocked(&owner.bare(), other).await {
                Ok(false) => {}
                Ok(true) => return true,
                Err(e) => {
                    tracing::error!(error = %e, "block list read failed; presence withheld");
                    return true;
                }
            }
        }
        false
    }

    /// Delivers `stanza` (presence from `from`) to every available resource
    /// of `to` that no block list separates from `from`: the per-resource
    /// form of the presence code's `to_available`, so an entry naming one
    /// resource of a contact hides presence from that resource alone.
    pub async fn to_available_unblocked(&self, from: &Jid, to: &BareJid, stanza: &Element) -> bool {
        let mut any = false;
        for s in self.available_of(to) {
            if !self.blocked_between(from, s.full.as_jid()).await {
                any |= s.sink.deliver(stanza.clone());
            }
        }
        any
    }

    /// XEP-0191 §3.3 for subscription stanzas, which the presence code
    /// handles without `route`: true when a block list stops `stanza`
    /// between `user` and `contact`, and it must go no further. Toward a
    /// JID the user blocked, the sending session (the stanza's full `from`,
    /// when it has one) gets the `not-acceptable` error; from a JID the
    /// contact blocked, nothing is answered.
    pub async fn subscription_blocked(
        &self,
        user: &BareJid,
        contact: &BareJid,
        stanza: &Element,
    ) -> bool {
        let sender: Option<FullJid> = stanza.attr("from").and_then(|f| f.parse().ok());
        // Addressed as it will travel, so the error reads from the contact.
        let mut addressed = stanza.clone();
        addressed.set_attr(
            "from",
            sender
                .as_ref()
                .map_or_else(|| user.to_string(), ToString::to_string),
        );
        addressed.set_attr("to", contact.to_string());
        let Some(outcome) = self
            .blocking_verdict(StanzaKind::Presence, &addressed)
            .await
        else {
            return false;
        };
        if let (Outcome::Reply(e), Some(sender)) = (outcome, sender) {
            if let Some(s) = self.sessions.get(&sender) {
                s.sink.deliver(e);
            }
        }
        true
    }

    fn available_of(&self, user: &BareJid) -> Vec<Arc<Session>> {
        self.sessions
            .resources(user)
            .into_iter()
            .filter(|s| s.available())
            .collect()
    }

    /// `user`'s local roster contacts with their subscription states.
    async fn local_contacts(&self, user: &BareJid) -> Vec<(BareJid, Subscription)> {
        let Some(node) = user.node() else {
            return Vec::new();
        };
        let roster = match self.storage.roster(node, user.domain()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "roster read failed");
                return Vec::new();
            }
        };
        roster
            .items
            .into_iter()
            .filter_map(|i| Some((i.jid.parse::<BareJid>().ok()?, i.subscription)))
            .filter(|(c, _)| self.is_local(c.domain()))
            .collect()
    }

    /// XEP-0191 §3.3: once `user` has blocked `entries`, each contact
    /// resource they cover that was receiving the user's presence gets
    /// unavailable from each of the user's available resources; and, since
    /// the contact's presence will no longer reach the user, the user's
    /// resources get unavailable from it (as RFC 6121 §3.2 does when a
    /// subscription ends), so no client is left showing a stale status.
    pub async fn presence_after_block(&self, user: &BareJid, entries: &[Jid]) {
        let mine = self.available_of(user);
        for (contact, sub) in self.local_contacts(user).await {
            for s in self.available_of(&contact) {
                if !entries.iter().any(|e| covers(e, s.full.as_jid())) {
                    continue;
                }
                if has_from(sub) {
                    for r in &mine {
                        s.sink.deliver(unavailable(&r.full, &contact));
                    }
                }
                if has_to(sub) {
                    for r in &mine {
                        r.sink.deliver(unavailable(&s.full, user));
                    }
                }
            }
        }
    }

    /// XEP-0191 §3.4 and §3.5: once `user` has unblocked `entries`, each
    /// contact resource they covered and that nothing blocks any more gets
    /// the user's current presence if subscribed to it, and the user's
    /// resources get the contact's current presence if subscribed to it:
    /// what a probe would have brought.
    pub async fn presence_after_unblock(&self, user: &BareJid, entries: &[Jid]) {
        let mine = self.available_of(user);
        for (contact, sub) in self.local_contacts(user).await {
            for s in self.available_of(&contact) {
                if !entries.iter().any(|e| covers(e, s.full.as_jid())) {
                    continue;
                }
                if self.blocked_between(user.as_jid(), s.full.as_jid()).await {
                    continue;
                }
                if has_from(sub) {
                    for r in &mine {
                        if let Some(mut p) = r.last_presence() {
                            p.set_attr("from", r.full.to_string());
                            p.set_attr("to", contact.to_string());
                            s.sink.deliver(p);
                        }
                    }
                }
                if has_to(sub) {
                    if let Some(mut p) = s.last_presence() {
                        p.set_attr("from", s.full.to_string());
                        p.set_attr("to", user.to_string());
                        for r in &mine {
                            r.sink.deliver(p.clone());
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::covers;
    use chorus_jid::Jid;

    fn j(s: &str) -> Jid {
        s.parse().unwrap()
    }

    #[test]
    fn each_entry_form_covers_what_xep_0016_says() {
        let full = j("romeo@montague.example/orchard");
        for entry in [
            "romeo@montague.example/orchard",
            "romeo@montague.example",
            "montague.example/orchard",
            "montague.example",
        ] {
            assert!(covers(&j(entry), &full), "{entry}");
        }
        for entry in [
            "romeo@montague.example/balcony",
            "benvolio@montague.example",
            "montague.example/balcony",
            "capulet.example",
            "romeo@capulet.example",
        ] {
            assert!(!covers(&j(entry), &full), "{entry}");
        }
    }

    #[test]
    fn a_bare_jid_is_not_covered_by_one_of_its_resources() {
        let bare = j("romeo@montague.example");
        assert!(!covers(&j("romeo@montague.example/orchard"), &bare));
        assert!(covers(&j("romeo@montague.example"), &bare));
        assert!(covers(&j("montague.example"), &bare));
        assert!(!covers(&j("montague.example/orchard"), &bare));
    }

    #[test]
    fn a_domain_entry_covers_the_domain_itself() {
        assert!(covers(&j("montague.example"), &j("montague.example")));
        assert!(!covers(
            &j("romeo@montague.example"),
            &j("montague.example")
        ));
    }
}
