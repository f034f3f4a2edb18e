//! XEP-0411: Bookmarks Conversion (version 1.1.0). Clients of XEP-0048
//! bookmarks in private XML storage (`storage:bookmarks` through
//! XEP-0049) and clients of PEP Native Bookmarks (XEP-0402,
//! `urn:xmpp:bookmarks:1`) see the same rooms:
//!
//! - storing `storage:bookmarks` publishes one XEP-0402 item per room (id:
//!   the room's JID) and retracts the rooms it no longer lists, with the
//!   usual notifications;
//! - reading `storage:bookmarks` answers from the XEP-0402 node when it
//!   exists, so rooms bookmarked by a newer client show up too.
//!
//! URL bookmarks have no XEP-0402 form: they stay in the stored private
//! XML and are read back from there.

use chorus_jid::{BareJid, Jid};
use chorus_proto::ns;
use chorus_router::Router;
use chorus_storage::{PubsubItem, PubsubStore, StorageError};
use chorus_xml::Element;

use super::avatar::server_publish_with;
use super::config::{AccessModel, MaxItems, NodeConfig, SendLast};
use super::notify;
use super::{Shared, Svc};
use crate::Services;

/// XEP-0402's node.
pub const NODE: &str = "urn:xmpp:bookmarks:1";
/// XEP-0048's private XML namespace.
pub const LEGACY: &str = "storage:bookmarks";
/// The account feature that says the server converts (XEP-0411 §4).
pub const COMPAT: &str = "urn:xmpp:bookmarks:1#compat";

/// What XEP-0402 §5 asks the node to be: private, every item kept, no
/// last item on presence.
pub fn node_config() -> NodeConfig {
    NodeConfig {
        access_model: AccessModel::Whitelist,
        max_items: MaxItems::Max,
        send_last_published_item: SendLast::Never,
        persist_items: true,
        ..NodeConfig::pep_default()
    }
}

/// A XEP-0048 `<conference/>` as a XEP-0402 item: (room JID, payload).
fn to_native(conference: &Element) -> Option<(String, Element)> {
    let jid = conference.attr("jid")?.parse::<Jid>().ok()?.bare();
    let mut c = Element::new("conference", NODE);
    if let Some(name) = conference.attr("name") {
        c.set_attr("name", name);
    }
    if matches!(conference.attr("autojoin"), Some("1" | "true")) {
        c.set_attr("autojoin", "true");
    }
    for (child, _) in [("nick", ()), ("password", ())] {
        if let Some(v) = conference.get_child(child, LEGACY) {
            c.push(Element::new(child, NODE).with_text(v.text()));
        }
    }
    Some((jid.as_str().to_owned(), c))
}

/// A XEP-0402 item as a XEP-0048 `<conference/>`.
fn to_legacy(id: &str, native: &Element) -> Element {
    let mut c = Element::new("conference", LEGACY).with_attr("jid", id);
    if let Some(name) = native.attr("name") {
        c.set_attr("name", name);
    }
    if matches!(native.attr("autojoin"), Some("1" | "true")) {
        c.set_attr("autojoin", "true");
    }
    for child in ["nick", "password"] {
        if let Some(v) = native.get_child(child, NODE) {
            c.push(Element::new(child, LEGACY).with_text(v.text()));
        }
    }
    c
}

/// `storage:bookmarks` as a private XML read returns it: the rooms of the
/// XEP-0402 node if there is one, the URLs of what was stored.
pub async fn legacy_view(
    services: &Services,
    owner: &BareJid,
    stored: Option<Element>,
) -> Result<Element, StorageError> {
    let storage = &services.storage;
    if storage.pubsub_node(owner.as_str(), NODE).await?.is_none() {
        return Ok(stored.unwrap_or_else(|| Element::new("storage", LEGACY)));
    }
    let mut out = Element::new("storage", LEGACY);
    for item in storage
        .pubsub_items(owner.as_str(), NODE, &[], None)
        .await?
    {
        if let Ok(native) = Element::from_xml(&item.payload) {
            out.push(to_legacy(&item.id, &native));
        }
    }
    if let Some(stored) = stored {
        for url in stored.children().filter(|c| c.is("url", LEGACY)) {
            out.push(url.clone());
        }
    }
    Ok(out)
}

/// `storage:bookmarks` was stored: the XEP-0402 node follows it.
pub async fn from_legacy(
    router: &Router,
    services: &Services,
    shared: &Shared,
    owner: &BareJid,
    legacy: &Element,
) {
    if let Err(e) = try_from_legacy(router, services, shared, owner, legacy).await {
        tracing::error!(jid = %owner, error = %e, "bookmarks conversion to PEP failed");
    }
}

async fn try_from_legacy(
    router: &Router,
    services: &Services,
    shared: &Shared,
    owner: &BareJid,
    legacy: &Element,
) -> Result<(), StorageError> {
    let storage = &services.storage;
    let wanted: Vec<(String, Element)> = legacy
        .children()
        .filter(|c| c.is("conference", LEGACY))
        .filter_map(to_native)
        .collect();
    let current = if storage.pubsub_node(owner.as_str(), NODE).await?.is_some() {
        storage
            .pubsub_items(owner.as_str(), NODE, &[], None)
            .await?
    } else {
        Vec::new()
    };
    for (id, payload) in &wanted {
        let xml = payload.to_xml();
        if current.iter().any(|i| i.id == *id && i.payload == xml) {
            continue;
        }
        let item = PubsubItem {
            id: id.clone(),
            publisher: owner.as_str().to_owned(),
            payload: xml,
        };
        server_publish_with(router, services, shared, owner, NODE, item, node_config()).await?;
    }
    let config = match storage.pubsub_node(owner.as_str(), NODE).await? {
        Some(n) => NodeConfig::from_stored(&n.config),
        None => return Ok(()),
    };
    for gone in current
        .iter()
        .filter(|i| !wanted.iter().any(|(id, _)| *id == i.id))
    {
        if storage
            .pubsub_retract(owner.as_str(), NODE, &gone.id)
            .await?
            && config.notify_retract
        {
            let event = Element::new("items", ns::PUBSUB_EVENT)
                .with_attr("node", NODE)
                .with_child(
                    Element::new("retract", ns::PUBSUB_EVENT).with_attr("id", gone.id.as_str()),
                );
            notify::broadcast(
                router,
                services,
                &Svc::Pep(owner.clone()),
                NODE,
                &config,
                &event,
            )
            .await;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_room_converts_both_ways_without_loss() {
        let legacy = Element::from_xml(
            "<conference xmlns='storage:bookmarks' jid='Tea@Conference.Example.org' name='Tea' autojoin='1'>\
             <nick>alice</nick><password>p</password></conference>",
        )
        .unwrap();
        let (id, native) = to_native(&legacy).unwrap();
        assert_eq!(id, "tea@conference.example.org");
        assert_eq!(native.attr("autojoin"), Some("true"));
        assert_eq!(native.get_child("nick", NODE).unwrap().text(), "alice");
        let back = to_legacy(&id, &native);
        assert_eq!(back.attr("jid"), Some("tea@conference.example.org"));
        assert_eq!(back.attr("name"), Some("Tea"));
        assert_eq!(back.get_child("password", LEGACY).unwrap().text(), "p");
        assert!(to_native(&Element::new("conference", LEGACY)).is_none());
    }
}
