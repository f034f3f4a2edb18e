//! XEP-0398: User Avatar to vCard-Based Avatars Conversion (version
//! 0.3.1). One picture, whichever way a client sets it: a PEP avatar
//! (XEP-0084) becomes the vCard's PHOTO, so that clients of vcard-temp
//! (XEP-0054, XEP-0153) see it and the `vcard-temp:x:update` hash the
//! server adds to presence is its SHA-1, which is also the PEP avatar's
//! id; a vCard PHOTO becomes the PEP avatar, data and metadata. An empty
//! metadata item and a vCard without PHOTO both mean "no avatar".
//!
//! Neither direction starts the other: the vCard is written to storage
//! directly, the PEP items are published by the server (`server_publish`),
//! not through the request path that converts.

use base64::Engine;
use chorus_jid::BareJid;
use chorus_proto::ns;
use chorus_router::Router;
use chorus_storage::{PubsubItem, PubsubStore, StorageError, VcardStore};
use chorus_xml::Element;

use super::config::NodeConfig;
use super::notify::{self, items_event};
use super::{Shared, Svc};
use crate::Services;

pub const DATA: &str = "urn:xmpp:avatar:data";
pub const METADATA: &str = "urn:xmpp:avatar:metadata";
/// The account feature that says the server converts (XEP-0398 §3).
pub const CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";

/// Publishes an item as the server does on the account's behalf: the node
/// is created with the PEP defaults if needed, the item stored and the
/// usual notifications sent.
pub async fn server_publish(
    router: &Router,
    services: &Services,
    shared: &Shared,
    owner: &BareJid,
    node: &str,
    item: PubsubItem,
) -> Result<(), StorageError> {
    server_publish_with(
        router,
        services,
        shared,
        owner,
        node,
        item,
        NodeConfig::pep_default(),
    )
    .await
}

/// [`server_publish`], creating a missing node with `config`.
pub async fn server_publish_with(
    router: &Router,
    services: &Services,
    shared: &Shared,
    owner: &BareJid,
    node: &str,
    item: PubsubItem,
    config: NodeConfig,
) -> Result<(), StorageError> {
    let storage = &services.storage;
    let config = match storage.pubsub_node(owner.as_str(), node).await? {
        Some(n) => NodeConfig::from_stored(&n.config),
        None => {
            let account = owner.node().map(|l| (l, owner.domain()));
            match storage
                .pubsub_create_node(
                    owner.as_str(),
                    node,
                    account,
                    &config.to_stored(),
                    owner.as_str(),
                )
                .await
            {
                Ok(()) | Err(StorageError::AlreadyExists) => config,
                Err(e) => return Err(e),
            }
        }
    };
    if config.persist_items {
        let keep = config.max_items.resolve(shared.options.max_items);
        storage
            .pubsub_publish(owner.as_str(), node, &item, Some(keep))
            .await?;
    }
    let event = items_event(node, &config, &[item]);
    notify::broadcast(
        router,
        services,
        &Svc::Pep(owner.clone()),
        node,
        &config,
        &event,
    )
    .await;
    Ok(())
}

/// A PEP avatar metadata item was published: the vCard's PHOTO becomes
/// the picture it points at in the data node (or goes, for empty
/// metadata). A picture only available by URL, or larger than a vCard may
/// be, leaves the vCard alone.
pub async fn to_vcard(services: &Services, owner: &BareJid, metadata: &Element) {
    if let Err(e) = try_to_vcard(services, owner, metadata).await {
        tracing::error!(jid = %owner, error = %e, "avatar conversion to vCard failed");
    }
}

async fn try_to_vcard(
    services: &Services,
    owner: &BareJid,
    metadata: &Element,
) -> Result<(), StorageError> {
    let storage = &services.storage;
    let Some(localpart) = owner.node() else {
        return Ok(());
    };
    let photo = match metadata
        .children()
        .find(|c| c.is("info", METADATA) && c.attr("url").is_none())
    {
        Some(info) => {
            let Some(id) = info.attr("id") else {
                return Ok(());
            };
            let data = storage
                .pubsub_items(owner.as_str(), DATA, &[id.to_owned()], None)
                .await?;
            let Some(binval) = data
                .first()
                .and_then(|i| Element::from_xml(&i.payload).ok())
                .map(|d| d.text())
            else {
                // The data is not here (yet, or elsewhere): nothing to copy.
                return Ok(());
            };
            Some(
                Element::new("PHOTO", ns::VCARD)
                    .with_child(
                        Element::new("TYPE", ns::VCARD)
                            .with_text(info.attr("type").unwrap_or("image/png")),
                    )
                    .with_child(Element::new("BINVAL", ns::VCARD).with_text(binval)),
            )
        }
        None if metadata.children().next().is_none() => None,
        // Only pointers or URLs: no bytes to put in a vCard.
        None => return Ok(()),
    };
    let stored = storage.vcard(localpart, owner.domain()).await?;
    let mut vcard = stored
        .as_deref()
        .and_then(|x| Element::from_xml(x).ok())
        .unwrap_or_else(|| Element::new("vCard", ns::VCARD));
    let before = crate::avatar::photo_hash(&vcard);
    vcard.remove_children(|c| c.is("PHOTO", ns::VCARD));
    if let Some(photo) = photo {
        vcard.push(photo);
    }
    if crate::avatar::photo_hash(&vcard) == before && stored.is_some() {
        return Ok(());
    }
    let xml = vcard.to_xml();
    if xml.len() > crate::vcard::MAX_VCARD_BYTES {
        tracing::info!(jid = %owner, "PEP avatar too large for the vCard; vCard left as it was");
        return Ok(());
    }
    storage.set_vcard(localpart, owner.domain(), &xml).await
}

/// A vCard was stored: the PEP avatar becomes its PHOTO, data then
/// metadata (XEP-0084 §4.1 order), unless it is that picture already.
pub async fn from_vcard(
    router: &Router,
    services: &Services,
    shared: &Shared,
    owner: &BareJid,
    vcard: &Element,
) {
    if let Err(e) = try_from_vcard(router, services, shared, owner, vcard).await {
        tracing::error!(jid = %owner, error = %e, "avatar conversion to PEP failed");
    }
}

async fn try_from_vcard(
    router: &Router,
    services: &Services,
    shared: &Shared,
    owner: &BareJid,
    vcard: &Element,
) -> Result<(), StorageError> {
    let storage = &services.storage;
    let current = storage
        .pubsub_items(owner.as_str(), METADATA, &[], Some(1))
        .await?;
    let current_id = current
        .first()
        .and_then(|i| Element::from_xml(&i.payload).ok())
        .and_then(|m| {
            m.get_child("info", METADATA)
                .and_then(|i| i.attr("id"))
                .map(str::to_owned)
        });
    let Some(photo) = vcard.get_child("PHOTO", ns::VCARD) else {
        if current_id.is_some() {
            // XEP-0084 §4.2: empty metadata disables the avatar.
            let item = PubsubItem {
                id: "current".to_owned(),
                publisher: owner.as_str().to_owned(),
                payload: Element::new("metadata", METADATA).to_xml(),
            };
            server_publish(router, services, shared, owner, METADATA, item).await?;
        }
        return Ok(());
    };
    let Some(hash) = crate::avatar::photo_hash(vcard) else {
        return Ok(());
    };
    if current_id.as_deref() == Some(hash.as_str()) {
        return Ok(());
    }
    let binval: String = photo
        .get_child("BINVAL", ns::VCARD)
        .map(|b| b.text().chars().filter(|c| !c.is_whitespace()).collect())
        .unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&binval)
        .map(|b| b.len())
        .unwrap_or_default();
    let kind = photo
        .get_child("TYPE", ns::VCARD)
        .map(|t| t.text())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "image/png".to_owned());
    let data = PubsubItem {
        id: hash.clone(),
        publisher: owner.as_str().to_owned(),
        payload: Element::new("data", DATA).with_text(binval).to_xml(),
    };
    server_publish(router, services, shared, owner, DATA, data).await?;
    let metadata = Element::new("metadata", METADATA).with_child(
        Element::new("info", METADATA)
            .with_attr("id", hash.as_str())
            .with_attr("bytes", bytes.to_string())
            .with_attr("type", kind),
    );
    let item = PubsubItem {
        id: hash,
        publisher: owner.as_str().to_owned(),
        payload: metadata.to_xml(),
    };
    server_publish(router, services, shared, owner, METADATA, item).await
}
