//! XEP-0191: Blocking Command (version 1.3), the IQ protocol: a user reads
//! their block list (`<blocklist/>`, §3.2), adds JIDs to it (`<block/>`,
//! §3.3), and removes some or all (`<unblock/>`, §3.4, §3.5). Every change
//! is pushed to each of the account's resources that has asked for the
//! list. What a block does to stanzas and presence is `chorus-router`'s
//! `blocking.rs`; this module calls its presence helpers after each change.
//!
//! Requests are about the sender's own account only (no `to`, or its own
//! bare JID); anything else is `forbidden`, as for the roster.
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
//! interested in changes to it. `chorus_router::Session` has no field for
//! that, so the module keeps the set itself: for each account, the
//! connection ids of the sessions that sent a `<blocklist/>` get. The
//! connection id, not the full JID, is the key, so a new connection that
//! binds the same resource does not inherit the interest of the old one.
//! Ended sessions are pruned whenever their account's set is read, which
//! bounds the set by the accounts that ever asked, times their resources.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use chorus_jid::{BareJid, Jid};
use chorus_proto::{ns, StanzaErrorCondition};
use chorus_storage::{BlockStore, StorageError};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Services, Support, Xep};

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
                router.presence_after_block(&user, &jids).await;
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
                router.presence_after_unblock(&user, &jids).await;
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
    ..ModuleInfo::EMPTY
};

impl Module for Blocking {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move { self.answer(ctx, iq).await.unwrap_or_else(IqReply::Error) })
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

    #[test]
    fn other_children_are_not_items() {
        let e = Element::new("block", ns::BLOCKING)
            .with_child(Element::new("item", "urn:example:other").with_attr("jid", "x@y"))
            .with_text("\n");
        assert!(items(&e).unwrap().is_empty());
    }
}
