//! Who hears of an event on a PEP node, and the notifications themselves
//! (XEP-0060 §4.3 and §7.1.2.1, XEP-0163 §4.3).
//!
//! Recipients are the owner's own available resources and its contacts'
//! (a presence subscription `from` or `both`, RFC 6121 §3) that asked for
//! the node with `+notify` in their caps, plus the node's explicit
//! subscribers; each must still pass the node's access model. Contacts on
//! other servers are reached once server-to-server exists.

use std::collections::HashSet;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{ns, StanzaErrorCondition};
use chorus_router::Router;
use chorus_storage::{PubsubItem, PubsubStore, RosterItem, RosterStore, Storage, Subscription};
use chorus_xml::Element;

use super::caps::{Features, Interest};
use super::config::{form_fields, AccessModel, NodeConfig, SendLast};
use super::Svc;
use crate::Services;

/// Why an entity may not see a node: the condition and `pubsub#errors`
/// child XEP-0060 §6.1.3 and §6.5.9 give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied(pub StanzaErrorCondition, pub &'static str);

/// What the node's access model says about `who`, given the owner's
/// roster item for them, their affiliation and whether the owner approved
/// a subscription of theirs.
pub fn access(
    config: &NodeConfig,
    owner: &BareJid,
    who: &BareJid,
    item: Option<&RosterItem>,
    affiliation: Option<&str>,
    approved: bool,
) -> Result<(), Denied> {
    if who == owner || affiliation == Some("owner") {
        return Ok(());
    }
    if affiliation == Some("outcast") {
        return Err(Denied(StanzaErrorCondition::Forbidden, ""));
    }
    let subscribed =
        item.is_some_and(|i| matches!(i.subscription, Subscription::From | Subscription::Both));
    match config.access_model {
        AccessModel::Open => Ok(()),
        AccessModel::Presence if subscribed => Ok(()),
        AccessModel::Presence => Err(Denied(
            StanzaErrorCondition::NotAuthorized,
            "presence-subscription-required",
        )),
        AccessModel::Roster
            if item.is_some_and(|i| {
                i.groups
                    .iter()
                    .any(|g| config.roster_groups_allowed.contains(g))
            }) =>
        {
            Ok(())
        }
        AccessModel::Roster => Err(Denied(
            StanzaErrorCondition::NotAuthorized,
            "not-in-roster-group",
        )),
        AccessModel::Whitelist if matches!(affiliation, Some("member" | "publisher")) => Ok(()),
        AccessModel::Whitelist => Err(Denied(StanzaErrorCondition::NotAllowed, "closed-node")),
        AccessModel::Authorize
            if approved || matches!(affiliation, Some("member" | "publisher")) =>
        {
            Ok(())
        }
        AccessModel::Authorize => Err(Denied(
            StanzaErrorCondition::NotAuthorized,
            "not-subscribed",
        )),
    }
}

/// A notification message from the service: the owner's bare JID for PEP
/// (XEP-0163 §4.3.2), the service's domain otherwise.
pub fn event_message(from: &str, to: &Jid, event_child: Element) -> Element {
    Element::new("message", ns::JABBER_CLIENT)
        .with_attr("from", from)
        .with_attr("to", to.as_str())
        .with_attr("type", "headline")
        .with_child(Element::new("event", ns::PUBSUB_EVENT).with_child(event_child))
}

/// `<items node><item id [publisher]>payload</item></items>` as the node's
/// configuration says to deliver it.
pub fn items_event(node: &str, config: &NodeConfig, items: &[PubsubItem]) -> Element {
    let mut el = Element::new("items", ns::PUBSUB_EVENT).with_attr("node", node);
    for item in items {
        let mut i = Element::new("item", ns::PUBSUB_EVENT).with_attr("id", item.id.as_str());
        if config.itemreply_publisher && !item.publisher.is_empty() {
            i.set_attr("publisher", item.publisher.as_str());
        }
        if config.deliver_payloads {
            if let Ok(p) = Element::from_xml(&item.payload) {
                i.push(p);
            }
        }
        el.push(i);
    }
    el
}

fn interested(session: &chorus_router::Session, node: &str) -> bool {
    session.available()
        && session
            .marked::<Interest>()
            .is_some_and(|Interest(f)| f.notify(node))
}

/// The node's affiliations, by JID.
pub async fn affiliations(storage: &Storage, service: &str, node: &str) -> Vec<(String, String)> {
    storage
        .pubsub_affiliations(service, node)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "pubsub affiliations unreadable");
            Vec::new()
        })
}

pub fn affiliation_of<'a>(affs: &'a [(String, String)], who: &BareJid) -> Option<&'a str> {
    affs.iter()
        .find(|(j, _)| j == who.as_str())
        .map(|(_, a)| a.as_str())
}

/// A subscription options form (XEP-0060 §16.4.2) with the one option
/// Chorus honours, `pubsub#deliver`.
pub fn options_form(deliver: bool) -> Element {
    let mut x = super::config::form_head("result", ns::PUBSUB_SUBSCRIBE_OPTIONS);
    x.push(
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", "pubsub#deliver")
            .with_attr("type", "boolean")
            .with_attr("label", "Enable delivery?")
            .with_child(Element::new("value", ns::DATA_FORMS).with_text(if deliver {
                "1"
            } else {
                "0"
            })),
    );
    x
}

/// Whether a subscription's options (XEP-0060 §6.3) let notifications
/// through: `pubsub#deliver` off holds them.
pub fn delivers(options: &str) -> bool {
    if options.is_empty() {
        return true;
    }
    Element::from_xml(options).map_or(true, |x| {
        !form_fields(&x).iter().any(|(var, v)| {
            var == "pubsub#deliver" && matches!(v.first().map(String::as_str), Some("0" | "false"))
        })
    })
}

/// The first owner of a hosted service's node: whose roster the
/// `presence` and `roster` access models read.
pub fn first_owner(affs: &[(String, String)]) -> Option<BareJid> {
    affs.iter()
        .filter(|(_, a)| a == "owner")
        .find_map(|(j, _)| j.parse::<BareJid>().ok())
}

/// Everyone who hears of an event on the node.
pub async fn recipients(
    router: &Router,
    services: &Services,
    svc: &Svc,
    node: &str,
    config: &NodeConfig,
) -> Vec<Jid> {
    match svc {
        Svc::Pep(owner) => pep_recipients(router, services, owner, node, config).await,
        Svc::Hosted(h) => subscribers(services, &h.jid, node, config).await,
    }
}

/// A hosted node's subscribers that its access model still admits.
async fn subscribers(
    services: &Services,
    service: &str,
    node: &str,
    config: &NodeConfig,
) -> Vec<Jid> {
    let mut out = Vec::new();
    if !config.deliver_notifications {
        return out;
    }
    let storage = &services.storage;
    let affs = affiliations(storage, service, node).await;
    let owner = first_owner(&affs);
    let subs = storage
        .pubsub_subscriptions(service, Some(node), None)
        .await
        .unwrap_or_default();
    for sub in subs
        .iter()
        .filter(|s| s.state == "subscribed" && delivers(&s.options))
    {
        let Ok(jid) = sub.jid.parse::<Jid>() else {
            continue;
        };
        let who = jid.bare();
        let allowed = match &owner {
            Some(owner) => {
                let item = roster_item_of(storage, owner, &who).await;
                access(
                    config,
                    owner,
                    &who,
                    item.as_ref(),
                    affiliation_of(&affs, &who),
                    true,
                )
                .is_ok()
            }
            // No owner left: only the open model admits anyone.
            None => config.access_model == AccessModel::Open,
        };
        if allowed && !out.contains(&jid) {
            out.push(jid);
        }
    }
    out
}

/// `owner`'s roster item for `who`, None when there is none or it cannot
/// be read (fail closed).
pub async fn roster_item_of(
    storage: &Storage,
    owner: &BareJid,
    who: &BareJid,
) -> Option<RosterItem> {
    let localpart = owner.node()?;
    storage
        .roster_item(localpart, owner.domain(), who.as_str())
        .await
        .ok()
        .flatten()
}

/// Everyone who hears of an event on `owner`'s PEP `node`.
async fn pep_recipients(
    router: &Router,
    services: &Services,
    owner: &BareJid,
    node: &str,
    config: &NodeConfig,
) -> Vec<Jid> {
    let mut out: Vec<Jid> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    if !config.deliver_notifications {
        return out;
    }
    let storage = &services.storage;
    let affs = affiliations(storage, owner.as_str(), node).await;
    let mut push = |jid: Jid, out: &mut Vec<Jid>| {
        if seen.insert(jid.as_str().to_owned()) {
            out.push(jid);
        }
    };
    for s in services.sessions.resources(owner) {
        if interested(&s, node) {
            push(s.full.as_jid().clone(), &mut out);
        }
    }
    let Some(localpart) = owner.node() else {
        return out;
    };
    let roster = match storage.roster(localpart, owner.domain()).await {
        Ok(r) => r.items,
        Err(e) => {
            tracing::error!(error = %e, "roster unreadable; notifications to contacts skipped");
            Vec::new()
        }
    };
    let subs = storage
        .pubsub_subscriptions(owner.as_str(), Some(node), None)
        .await
        .unwrap_or_default();
    for item in &roster {
        if !matches!(item.subscription, Subscription::From | Subscription::Both) {
            continue;
        }
        let Ok(contact) = item.jid.parse::<BareJid>() else {
            continue;
        };
        if !router.is_local(contact.domain()) {
            continue;
        }
        let aff = affiliation_of(&affs, &contact);
        // Under `authorize`, only approved subscriptions count (below).
        if access(config, owner, &contact, Some(item), aff, false).is_err() {
            continue;
        }
        for s in services.sessions.resources(&contact) {
            if interested(&s, node) {
                push(s.full.as_jid().clone(), &mut out);
            }
        }
    }
    for sub in subs
        .iter()
        .filter(|s| s.state == "subscribed" && delivers(&s.options))
    {
        let Ok(jid) = sub.jid.parse::<Jid>() else {
            continue;
        };
        let who = jid.bare();
        let item = roster.iter().find(|i| i.jid == who.as_str());
        if access(config, owner, &who, item, affiliation_of(&affs, &who), true).is_ok() {
            push(jid, &mut out);
        }
    }
    out
}

/// Routes `event_child` to everyone who hears of events on the node.
pub async fn broadcast(
    router: &Router,
    services: &Services,
    svc: &Svc,
    node: &str,
    config: &NodeConfig,
    event_child: &Element,
) {
    for to in recipients(router, services, svc, node, config).await {
        router
            .route(event_message(svc.jid(), &to, event_child.clone()))
            .await;
    }
}

/// When a client asks for more (its caps changed from `old` to `new`):
/// the last item of every node of its own account and of its contacts'
/// that it newly asked for with `+notify` (XEP-0163 §4.3.3,
/// `send_last_published_item = on_sub_and_presence`).
pub async fn send_last_items(
    router: &Router,
    services: &Services,
    full: &FullJid,
    new: &Features,
    old: Option<&Features>,
) {
    let wanted = |node: &str| new.notify(node) && !old.is_some_and(|o| o.notify(node));
    let me = full.bare();
    let storage = &services.storage;
    let Some(localpart) = me.node() else { return };
    let mut owners = vec![me.clone()];
    match storage.roster(localpart, me.domain()).await {
        Ok(r) => owners.extend(
            r.items
                .iter()
                .filter(|i| matches!(i.subscription, Subscription::To | Subscription::Both))
                .filter_map(|i| i.jid.parse::<BareJid>().ok())
                .filter(|j| router.is_local(j.domain())),
        ),
        Err(e) => tracing::error!(error = %e, "roster unreadable; last items not sent"),
    }
    for owner in owners {
        let nodes = match storage.pubsub_nodes(owner.as_str()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "pubsub nodes unreadable");
                continue;
            }
        };
        let mut their_item: Option<Option<RosterItem>> = None;
        for n in nodes {
            if !wanted(&n.node) {
                continue;
            }
            let config = NodeConfig::from_stored(&n.config);
            if config.send_last_published_item != SendLast::OnSubAndPresence
                || !config.deliver_notifications
            {
                continue;
            }
            if owner != me {
                if their_item.is_none() {
                    let item = match owner.node() {
                        Some(l) => storage
                            .roster_item(l, owner.domain(), me.as_str())
                            .await
                            .ok()
                            .flatten(),
                        None => None,
                    };
                    their_item = Some(item);
                }
                let affs = affiliations(storage, owner.as_str(), &n.node).await;
                let item = their_item.as_ref().and_then(Option::as_ref);
                if access(
                    &config,
                    &owner,
                    &me,
                    item,
                    affiliation_of(&affs, &me),
                    false,
                )
                .is_err()
                {
                    continue;
                }
            }
            let last = storage
                .pubsub_items(owner.as_str(), &n.node, &[], Some(1))
                .await
                .unwrap_or_default();
            if last.is_empty() {
                continue;
            }
            let event = items_event(&n.node, &config, &last);
            router
                .route(event_message(owner.as_str(), full.as_jid(), event))
                .await;
        }
    }
}
