//! XEP-0191: Blocking Command (version 1.3): the IQ protocol and what a
//! block list does to the stanzas and presence between two entities.
//!
//! The protocol: a user reads their block list (`<blocklist/>`, §3.2), adds
//! JIDs to it (`<block/>`, §3.3), and removes some or all (`<unblock/>`,
//! §3.4, §3.5). Every change is pushed to each of the account's resources
//! that has asked for the list. Requests are about the sender's own account
//! only (no `to`, or its own bare JID); anything else is `forbidden`, as
//! for the roster.
//!
//! Errors: a `<block/>` with no item is `bad-request` (§3.3); an item
//! whose `jid` does not parse is `jid-malformed` (§3.3), and an item with
//! no `jid` at all `bad-request`. Either refuses the whole request, so a
//! request is applied all or not at all. An `<unblock/>` with no item
//! empties the list (§3.5). A `get` of `<block/>` or `<unblock/>`, or a
//! `set` of `<blocklist/>`, is `bad-request`.
//!
//! Entries are stored normalized (RFC 7622), so `Romeo@Montague.example`
//! and `romeo@montague.example` are one entry, and the list and the pushes
//! show the normalized form.
//!
//! Who gets pushes: §3.2 says a resource that retrieved the list is
//! interested in changes to it. The module keeps that set itself: for each
//! account, the connection ids of the sessions that sent a `<blocklist/>`
//! get. The connection id, not the full JID, is the key, so a new
//! connection that binds the same resource does not inherit the interest of
//! the old one. Ended sessions are pruned whenever their account's set is
//! read, which bounds the set by the accounts that ever asked, times their
//! resources.
//!
//! Enforcement, the [`Module::filter`] hook (first thing in routing),
//! applies both directions of §3.3:
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
//! Presence the router sends on its own asks [`Module::presence_blocked`].
//!
//! JID matching is that of XEP-0191 §6 (XEP-0016 §2.1): an entry covers a
//! JID if it is the JID, its bare JID, its domain with its resource, or its
//! domain. Routing asks storage (`BlockStore::is_blocked`, cached); the
//! presence notifications for a block or unblock test the entries just
//! changed in memory ([`covers`]).
//!
//! A storage failure fails closed: a stanza whose fate cannot be read is
//! refused with `internal-server-error` (presence is dropped), so a
//! database hiccup never lets a blocked entity through.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use std::sync::Arc;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{error_reply, ns, ErrorType, StanzaError, StanzaErrorCondition, StanzaKind};
use chorus_router::{Outcome, Router, Session};
use chorus_storage::{BlockStore, RosterStore, StorageError, Subscription};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{HookCtx, HookSet, IqCtx, IqReply, IqSpec, Module, ModuleInfo, Services, Support, Xep};

#[derive(Default)]
pub struct Blocking {
    /// Per account, the connection ids of the sessions that asked for the
    /// list (see the module docs).
    interested: Mutex<HashMap<BareJid, HashSet<u64>>>,
    /// Numbers the pushes' ids, so that each is unique on its stream.
    pushes: AtomicU64,
}

fn db_error(e: StorageError) -> StanzaErrorCondition {
    tracing::error!(error = %e, "block list storage failed");
    StanzaErrorCondition::InternalServerError
}

/// The JIDs of the `<item/>` children of `<block/>` or `<unblock/>`,
/// normalized, in request order, without repeats. Elements other than
/// `<item/>` are ignored, as unknown extensions are.
fn items(payload: &Element) -> Result<Vec<Jid>, StanzaErrorCondition> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for item in payload.children().filter(|c| c.is("item", ns::BLOCKING)) {
        let jid: Jid = item
            .attr("jid")
            .ok_or(StanzaErrorCondition::BadRequest)?
            .parse()
            .map_err(|_| StanzaErrorCondition::JidMalformed)?;
        if seen.insert(jid.clone()) {
            out.push(jid);
        }
    }
    Ok(out)
}

/// `<name xmlns='urn:xmpp:blocking'>` holding one `<item/>` per JID.
fn list(name: &str, jids: impl IntoIterator<Item = impl Into<String>>) -> Element {
    let mut e = Element::new(name, ns::BLOCKING);
    for j in jids {
        e.push(Element::new("item", ns::BLOCKING).with_attr("jid", j.into()));
    }
    e
}

fn strs(jids: &[Jid]) -> Vec<&str> {
    jids.iter().map(Jid::as_str).collect()
}

impl Blocking {
    fn interested(&self) -> MutexGuard<'_, HashMap<BareJid, HashSet<u64>>> {
        // Nothing under the lock can panic half-way through a change, so a
        // poisoned map is still consistent.
        self.interested
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps only the entries of `user` whose session is still bound.
    fn prune(map: &mut HashMap<BareJid, HashSet<u64>>, services: &Services, user: &BareJid) {
        let live: HashSet<u64> = services
            .sessions
            .resources(user)
            .iter()
            .map(|s| s.conn_id)
            .collect();
        if let Some(ids) = map.get_mut(user) {
            ids.retain(|id| live.contains(id));
            if ids.is_empty() {
                map.remove(user);
            }
        }
    }

    /// §3.2: the requesting session wants pushes from now on.
    fn mark_interested(&self, ctx: &IqCtx<'_>, user: &BareJid) {
        let Some(session) = ctx.user.and_then(|me| ctx.services.sessions.get(me)) else {
            return;
        };
        let mut map = self.interested();
        Self::prune(&mut map, ctx.services, user);
        map.entry(user.clone()).or_default().insert(session.conn_id);
    }

    /// §3.3, §3.4, §3.5: `payload` as an IQ set from the account's bare JID
    /// to each interested resource, the requester included.
    fn push(&self, services: &Services, user: &BareJid, payload: &Element) {
        let ids = {
            let mut map = self.interested();
            Self::prune(&mut map, services, user);
            map.get(user).cloned().unwrap_or_default()
        };
        for s in services.sessions.resources(user) {
            if !ids.contains(&s.conn_id) {
                continue;
            }
            let n = self.pushes.fetch_add(1, Ordering::Relaxed);
            let iq = Element::new("iq", ns::JABBER_CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("block-push-{n}"))
                .with_attr("from", user.to_string())
                .with_attr("to", s.full.to_string())
                .with_child(payload.clone());
            s.sink.deliver(iq);
        }
    }

    async fn answer(&self, ctx: &IqCtx<'_>, iq: &Element) -> Result<IqReply, StanzaErrorCondition> {
        if !ctx.is_own_account() {
            return Err(StanzaErrorCondition::Forbidden);
        }
        let user = ctx.me()?.bare();
        let Some(node) = user.node() else {
            return Err(StanzaErrorCondition::Forbidden);
        };
        let domain = user.domain();
        let storage = &ctx.services.storage;
        let router = &ctx.router;
        let payload = iq
            .children()
            .next()
            .ok_or(StanzaErrorCondition::BadRequest)?;
        match (iq.attr("type"), payload.name()) {
            (Some("get"), "blocklist") => {
                // Marked before reading, so a change made between the read
                // and the mark still reaches this resource as a push.
                self.mark_interested(ctx, &user);
                let jids = storage.blocklist(node, domain).await.map_err(db_error)?;
                Ok(IqReply::Result(Some(list("blocklist", jids))))
            }
            (Some("set"), "block") => {
                let jids = items(payload)?;
                if jids.is_empty() {
                    return Err(StanzaErrorCondition::BadRequest);
                }
                storage
                    .block(node, domain, &strs(&jids))
                    .await
                    .map_err(db_error)?;
                self.push(ctx.services, &user, &list("block", strs(&jids)));
                presence_after_block(router, &user, &jids).await;
                Ok(IqReply::Result(None))
            }
            (Some("set"), "unblock") => {
                let mut jids = items(payload)?;
                if jids.is_empty() {
                    // §3.5: everything. The old list says whose presence
                    // to restore afterwards.
                    jids = storage
                        .blocklist(node, domain)
                        .await
                        .map_err(db_error)?
                        .iter()
                        .filter_map(|j| j.parse().ok())
                        .collect();
                    storage.unblock_all(node, domain).await.map_err(db_error)?;
                    self.push(ctx.services, &user, &list("unblock", Vec::<String>::new()));
                } else {
                    storage
                        .unblock(node, domain, &strs(&jids))
                        .await
                        .map_err(db_error)?;
                    self.push(ctx.services, &user, &list("unblock", strs(&jids)));
                }
                presence_after_unblock(router, &user, &jids).await;
                Ok(IqReply::Result(None))
            }
            _ => Err(StanzaErrorCondition::BadRequest),
        }
    }
}

static INFO: ModuleInfo = ModuleInfo {
    name: "blocking",
    file: file!(),
    xeps: &[Xep {
        number: 191,
        name: "Blocking Command",
        version: "1.3",
        support: Support::Complete,
        note: "",
    }],
    iqs: &[
        IqSpec::local("blocklist", ns::BLOCKING),
        IqSpec::local("block", ns::BLOCKING),
        IqSpec::local("unblock", ns::BLOCKING),
    ],
    features: &[ns::BLOCKING],
    hooks: HookSet::FILTER
        .and(HookSet::PRESENCE_BLOCKED)
        .and(HookSet::ACCOUNT_REMOVED),
    ..ModuleInfo::EMPTY
};

impl Module for Blocking {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move { self.answer(ctx, iq).await.unwrap_or_else(IqReply::Error) })
    }

    fn filter<'a>(
        &'a self,
        ctx: HookCtx<'a>,
        kind: StanzaKind,
        stanza: &'a Element,
    ) -> Option<BoxFuture<'a, Option<Outcome>>> {
        Some(Box::pin(verdict(ctx.router, kind, stanza)))
    }

    fn presence_blocked<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        a: &'a Jid,
        b: &'a Jid,
    ) -> Option<BoxFuture<'a, bool>> {
        Some(Box::pin(blocked_between(ctx.router, a, b)))
    }

    /// The list went with the account; so does the record of who asked.
    fn account_removed<'a>(
        &'a self,
        _ctx: &'a HookCtx<'a>,
        user: &'a BareJid,
    ) -> Option<BoxFuture<'a, ()>> {
        self.interested().remove(user);
        None
    }
}

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

/// Whether `owner`'s block list covers `other`. Only a local account has a
/// list; anything else blocks nothing.
async fn has_blocked(router: &Router, owner: &BareJid, other: &Jid) -> Result<bool, StorageError> {
    let Some(node) = owner.node() else {
        return Ok(false);
    };
    if !router.is_local(owner.domain()) {
        return Ok(false);
    }
    router
        .storage
        .is_blocked(node, owner.domain(), other.as_str())
        .await
}

/// §3.3 for a routed stanza: `Some` with what happens to it when a block
/// list stops it, `None` to route it on. Runs before any other routing
/// rule, so a blocked entity learns nothing, not even whether the user
/// exists. A stanza whose `to` does not parse is left to routing, which
/// answers `jid-malformed`.
async fn verdict(router: &Router, kind: StanzaKind, stanza: &Element) -> Option<Outcome> {
    let from: Jid = stanza.attr("from")?.parse().ok()?;
    let to: Jid = stanza.attr("to")?.parse().ok()?;
    if from.bare() == to.bare() {
        return None;
    }
    if to.node().is_none() && router.is_local(to.domain()) {
        return None;
    }
    match has_blocked(router, &from.bare(), &to).await {
        Ok(true) => {
            tracing::debug!(from = %from, to = %to, kind = kind.as_str(), "to a blocked JID");
            return Some(refuse(stanza, &blocked_error()));
        }
        Ok(false) => {}
        Err(e) => return Some(failed(kind, stanza, &e)),
    }
    match has_blocked(router, &to.bare(), &from).await {
        Ok(true) => {
            tracing::debug!(from = %from, to = %to, kind = kind.as_str(), "from a blocked JID");
            Some(refuse_inbound(kind, stanza))
        }
        Ok(false) => None,
        Err(e) => Some(failed(kind, stanza, &e)),
    }
}

/// Whether a block list stands between `a` and `b`, in either direction.
/// Give full JIDs where they are known: a bare JID is not covered by an
/// entry naming one of its resources. Never true within one account; true
/// on a storage error (fail closed: the presence is not sent).
async fn blocked_between(router: &Router, a: &Jid, b: &Jid) -> bool {
    if a.bare() == b.bare() {
        return false;
    }
    for (owner, other) in [(a, b), (b, a)] {
        match has_blocked(router, &owner.bare(), other).await {
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

fn available_of(router: &Router, user: &BareJid) -> Vec<Arc<Session>> {
    router
        .sessions
        .resources(user)
        .into_iter()
        .filter(|s| s.available())
        .collect()
}

/// `user`'s local roster contacts with their subscription states.
async fn local_contacts(router: &Router, user: &BareJid) -> Vec<(BareJid, Subscription)> {
    let Some(node) = user.node() else {
        return Vec::new();
    };
    let roster = match router.storage.roster(node, user.domain()).await {
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
        .filter(|(c, _)| router.is_local(c.domain()))
        .collect()
}

/// §3.3: once `user` has blocked `entries`, each contact resource they
/// cover that was receiving the user's presence gets unavailable from each
/// of the user's available resources; and, since the contact's presence
/// will no longer reach the user, the user's resources get unavailable from
/// it (as RFC 6121 §3.2 does when a subscription ends), so no client is
/// left showing a stale status.
async fn presence_after_block(router: &Router, user: &BareJid, entries: &[Jid]) {
    let mine = available_of(router, user);
    for (contact, sub) in local_contacts(router, user).await {
        for s in available_of(router, &contact) {
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

/// §3.4 and §3.5: once `user` has unblocked `entries`, each contact
/// resource they covered and that nothing blocks any more gets the user's
/// current presence if subscribed to it, and the user's resources get the
/// contact's current presence if subscribed to it: what a probe would have
/// brought.
async fn presence_after_unblock(router: &Router, user: &BareJid, entries: &[Jid]) {
    let mine = available_of(router, user);
    for (contact, sub) in local_contacts(router, user).await {
        for s in available_of(router, &contact) {
            if !entries.iter().any(|e| covers(e, s.full.as_jid())) {
                continue;
            }
            if blocked_between(router, user.as_jid(), s.full.as_jid()).await {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn block(items: &[Option<&str>]) -> Element {
        let mut e = Element::new("block", ns::BLOCKING);
        for i in items {
            let mut item = Element::new("item", ns::BLOCKING);
            if let Some(j) = i {
                item.set_attr("jid", *j);
            }
            e.push(item);
        }
        e
    }

    #[test]
    fn items_are_normalized_and_deduplicated_in_order() {
        let jids = items(&block(&[
            Some("Romeo@Montague.example"),
            Some("capulet.example"),
            Some("romeo@montague.example"),
        ]))
        .unwrap();
        assert_eq!(
            strs(&jids),
            vec!["romeo@montague.example", "capulet.example"]
        );
    }

    #[test]
    fn a_bad_item_refuses_the_whole_request() {
        assert_eq!(
            items(&block(&[Some("ok@example.com"), Some("a@b@c")])).err(),
            Some(StanzaErrorCondition::JidMalformed)
        );
        assert_eq!(
            items(&block(&[Some("ok@example.com"), None])).err(),
            Some(StanzaErrorCondition::BadRequest)
        );
    }

    fn j(s: &str) -> Jid {
        s.parse().unwrap()
    }

    #[test]
    fn other_children_are_not_items() {
        let e = Element::new("block", ns::BLOCKING)
            .with_child(Element::new("item", "urn:example:other").with_attr("jid", "x@y"))
            .with_text("\n");
        assert!(items(&e).unwrap().is_empty());
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
