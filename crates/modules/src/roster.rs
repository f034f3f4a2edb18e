//! RFC 6121 §2: roster management (get, set, remove), roster pushes to
//! every interested resource, and roster versioning (§2.6, advertised as
//! `urn:xmpp:features:rosterver` in the stream features by c2s).
//!
//! Subscription state is never changed by a roster set (§2.1.5 ignores the
//! `subscription` attribute except `remove`); it changes through presence
//! subscription stanzas, handled in `chorus-router`'s presence module.

use chorus_jid::BareJid;
use chorus_proto::{ns, StanzaErrorCondition};
use chorus_router::item_element;
use chorus_storage::{RosterChange, RosterItem, RosterStore, StorageError, Subscription};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, StreamCtx, StreamFeature};

pub struct Roster;

/// Longest item name and group name accepted (bytes), a safety limit.
const MAX_TEXT: usize = 1024;

static INFO: ModuleInfo = ModuleInfo {
    name: "roster",
    file: file!(),
    iqs: &[IqSpec::local("query", ns::ROSTER)],
    stream_features: &[
        StreamFeature {
            name: "ver",
            ns: ns::ROSTER_VER,
        },
        StreamFeature {
            name: "sub",
            ns: ns::PRE_APPROVAL,
        },
    ],
    ..ModuleInfo::EMPTY
};

impl Module for Roster {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    /// RFC 6121 §2.6.1 and §3.4: roster versioning and pre-approval.
    fn stream_features(&self, ctx: &StreamCtx<'_>, out: &mut Vec<Element>) {
        if ctx.authenticated {
            out.push(Element::new("ver", ns::ROSTER_VER));
            out.push(Element::new("sub", ns::PRE_APPROVAL));
        }
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            // §2.1.3 / §2.1.5: only the account's own resources may touch it.
            if !ctx.is_own_account() {
                return IqReply::Error(StanzaErrorCondition::Forbidden);
            }
            let Some(query) = iq.get_child("query", ns::ROSTER) else {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            };
            match iq.attr("type") {
                Some("get") => get(ctx, query).await,
                Some("set") => set(ctx, iq, query).await,
                _ => IqReply::Error(StanzaErrorCondition::BadRequest),
            }
        })
    }
}

fn db_error(e: StorageError) -> IqReply {
    tracing::error!(error = %e, "roster storage failed");
    IqReply::Error(StanzaErrorCondition::InternalServerError)
}

async fn get(ctx: &IqCtx<'_>, query: &Element) -> IqReply {
    let Ok(me) = ctx.me() else {
        return IqReply::Error(StanzaErrorCondition::Forbidden);
    };
    let user = me.bare();
    let Some(node) = user.node() else {
        return IqReply::Error(StanzaErrorCondition::BadRequest);
    };
    let storage = &ctx.services.storage;
    // §2.1.6: this resource now receives roster pushes.
    if let Some(s) = ctx.services.sessions.get(me) {
        s.set_interested();
    }
    // §2.6.3: with a known version, send only what changed, as pushes.
    if let Some(ver) = query.attr("ver").and_then(|v| v.parse::<u64>().ok()) {
        match storage.roster_changes_since(node, user.domain(), ver).await {
            Ok(Some(changes)) => {
                for c in changes {
                    let item = match &c {
                        RosterChange::Updated { item, .. } => item_element(item),
                        RosterChange::Removed { jid, .. } => Element::new("item", ns::ROSTER)
                            .with_attr("jid", jid.as_str())
                            .with_attr("subscription", "remove"),
                    };
                    ctx.router.push_roster(&user, c.version(), item);
                }
                return IqReply::Result(None);
            }
            Ok(None) => {}
            Err(e) => return db_error(e),
        }
    }
    match storage.roster(node, user.domain()).await {
        Ok(r) => {
            let mut q = Element::new("query", ns::ROSTER).with_attr("ver", r.version.to_string());
            for item in &r.items {
                q.push(item_element(item));
            }
            IqReply::Result(Some(q))
        }
        Err(e) => db_error(e),
    }
}

async fn set(ctx: &IqCtx<'_>, iq: &Element, query: &Element) -> IqReply {
    // §2.3.3: exactly one item.
    let mut items = query.children();
    let (Some(item), None) = (items.next(), items.next()) else {
        return IqReply::Error(StanzaErrorCondition::BadRequest);
    };
    if !item.is("item", ns::ROSTER) {
        return IqReply::Error(StanzaErrorCondition::BadRequest);
    }
    let Ok(me) = ctx.me() else {
        return IqReply::Error(StanzaErrorCondition::Forbidden);
    };
    let user = me.bare();
    let Some(node) = user.node() else {
        return IqReply::Error(StanzaErrorCondition::BadRequest);
    };
    let contact: BareJid = match item.attr("jid").map(str::parse::<chorus_jid::Jid>) {
        Some(Ok(j)) if j.resource().is_none() => j.bare(),
        // §2.3.3: a full JID in a roster item is not allowed.
        Some(Ok(_)) => return IqReply::Error(StanzaErrorCondition::BadRequest),
        Some(Err(_)) => return IqReply::Error(StanzaErrorCondition::JidMalformed),
        None => return IqReply::Error(StanzaErrorCondition::BadRequest),
    };
    if contact == user {
        // §2.3.3 lets the server refuse the user's own JID.
        return IqReply::Error(StanzaErrorCondition::NotAllowed);
    }
    let storage = &ctx.services.storage;
    let router = &ctx.router;
    let existing = match storage
        .roster_item(node, user.domain(), &contact.to_string())
        .await
    {
        Ok(i) => i,
        Err(e) => return db_error(e),
    };
    if item.attr("subscription") == Some("remove") {
        // §2.5: remove, cancelling both subscriptions first.
        let Some(old) = existing else {
            return IqReply::Error(StanzaErrorCondition::ItemNotFound);
        };
        // The contact learns both subscriptions are over; the intermediate
        // states are not pushed to the user, only the removal below.
        router.cancel_subscriptions(&user, &contact, &old).await;
        return match storage
            .remove_roster_item(node, user.domain(), &contact.to_string())
            .await
        {
            Ok(Some(version)) => {
                router.push_roster(
                    &user,
                    version,
                    Element::new("item", ns::ROSTER)
                        .with_attr("jid", contact.to_string())
                        .with_attr("subscription", "remove"),
                );
                // §2.5.2 allows either order; the push first, so a client
                // never sees the result of a change it has not been shown.
                ctx.answer_in_order(iq, None)
            }
            Ok(None) => IqReply::Error(StanzaErrorCondition::ItemNotFound),
            Err(e) => db_error(e),
        };
    }
    let name = item
        .attr("name")
        .map(str::to_owned)
        .filter(|n| !n.is_empty());
    let mut groups: Vec<String> = Vec::new();
    for g in item.children() {
        if !g.is("group", ns::ROSTER) {
            continue;
        }
        let text = g.text();
        // §2.3.3: an empty group, or one longer than the server's limit, is
        // not-acceptable; the same group twice is a bad request.
        if text.is_empty() || text.len() > MAX_TEXT {
            return IqReply::Error(StanzaErrorCondition::NotAcceptable);
        }
        if groups.contains(&text) {
            return IqReply::Error(StanzaErrorCondition::BadRequest);
        }
        groups.push(text);
    }
    if name.as_ref().is_some_and(|n| n.len() > MAX_TEXT) {
        return IqReply::Error(StanzaErrorCondition::NotAcceptable);
    }
    let updated = match existing {
        Some(old) => RosterItem {
            name,
            groups,
            ..old
        },
        None => RosterItem {
            jid: contact.to_string(),
            name,
            subscription: Subscription::None,
            ask: false,
            approved: false,
            groups,
        },
    };
    match storage.put_roster_item(node, user.domain(), &updated).await {
        Ok(version) => {
            router.push_roster(&user, version, item_element(&updated));
            // §2.3.2 allows either order; the push first (see above).
            ctx.answer_in_order(iq, None)
        }
        Err(StorageError::InvalidInput(_)) => IqReply::Error(StanzaErrorCondition::BadRequest),
        Err(e) => db_error(e),
    }
}
