//! XEP-0292: vCard4 Over XMPP (version 1.1.0), kept in step with vcard-temp
//! (XEP-0054): the `urn:xmpp:vcard4` PEP node is served like any PEP node,
//! and the fields both formats carry are copied from whichever a client
//! writes into the other:
//!
//! | vcard-temp | vCard4 (RFC 6351) |
//! |---|---|
//! | FN | fn/text |
//! | N (FAMILY, GIVEN, MIDDLE, PREFIX, SUFFIX) | n (surname, given, additional, prefix, suffix) |
//! | NICKNAME | nickname/text |
//! | BDAY | bday/date |
//! | URL | url/uri |
//! | DESC | note/text |
//! | TITLE, ROLE | title/text, role/text |
//! | ORG/ORGNAME | org/text |
//! | EMAIL/USERID | email/text |
//! | TEL/NUMBER | tel/uri (`tel:`) |
//!
//! A write replaces those fields in the other format and keeps everything
//! else there (photos, addresses, parameters), so neither format loses
//! what only it can say. The copies are written by the server directly,
//! so neither starts the other.

use chorus_jid::BareJid;
use chorus_proto::ns;
use chorus_router::Router;
use chorus_storage::{PubsubItem, PubsubStore, StorageError, VcardStore};
use chorus_xml::Element;

use super::avatar::server_publish;
use super::Shared;
use crate::Services;

/// XEP-0292's node and payload namespace.
pub const NODE: &str = "urn:xmpp:vcard4";
const VCARD4: &str = "urn:ietf:params:xml:ns:vcard-4.0";

/// (vcard-temp element, vCard4 element, vCard4 value element) for the
/// single-valued text fields.
const TEXT_FIELDS: &[(&str, &str, &str)] = &[
    ("FN", "fn", "text"),
    ("NICKNAME", "nickname", "text"),
    ("BDAY", "bday", "date"),
    ("URL", "url", "uri"),
    ("DESC", "note", "text"),
    ("TITLE", "title", "text"),
    ("ROLE", "role", "text"),
];

/// N's parts, in both formats.
const NAME_PARTS: &[(&str, &str)] = &[
    ("FAMILY", "surname"),
    ("GIVEN", "given"),
    ("MIDDLE", "additional"),
    ("PREFIX", "prefix"),
    ("SUFFIX", "suffix"),
];

/// The vCard4 elements this conversion owns.
const V4_OWNED: &[&str] = &[
    "fn", "nickname", "bday", "url", "note", "title", "role", "n", "org", "email", "tel",
];
/// The vcard-temp elements this conversion owns.
const TEMP_OWNED: &[&str] = &[
    "FN", "NICKNAME", "BDAY", "URL", "DESC", "TITLE", "ROLE", "N", "ORG", "EMAIL", "TEL",
];

fn text_of(e: &Element, name: &str, n: &str) -> Option<String> {
    e.get_child(name, n)
        .map(Element::text)
        .filter(|t| !t.trim().is_empty())
}

/// The vCard4 fields a vcard-temp carries.
fn v4_fields(temp: &Element) -> Vec<Element> {
    let t = ns::VCARD;
    let mut out = Vec::new();
    for (tn, vn, value) in TEXT_FIELDS {
        if let Some(v) = text_of(temp, tn, t) {
            out.push(
                Element::new(*vn, VCARD4).with_child(Element::new(*value, VCARD4).with_text(v)),
            );
        }
    }
    if let Some(n) = temp.get_child("N", t) {
        let mut v = Element::new("n", VCARD4);
        for (tp, vp) in NAME_PARTS {
            if let Some(x) = text_of(n, tp, t) {
                v.push(Element::new(*vp, VCARD4).with_text(x));
            }
        }
        if v.children().next().is_some() {
            out.push(v);
        }
    }
    for org in temp.children().filter(|c| c.is("ORG", t)) {
        if let Some(name) = text_of(org, "ORGNAME", t) {
            out.push(
                Element::new("org", VCARD4)
                    .with_child(Element::new("text", VCARD4).with_text(name)),
            );
        }
    }
    for email in temp.children().filter(|c| c.is("EMAIL", t)) {
        if let Some(a) = text_of(email, "USERID", t) {
            out.push(
                Element::new("email", VCARD4).with_child(Element::new("text", VCARD4).with_text(a)),
            );
        }
    }
    for tel in temp.children().filter(|c| c.is("TEL", t)) {
        if let Some(n) = text_of(tel, "NUMBER", t) {
            out.push(
                Element::new("tel", VCARD4)
                    .with_child(Element::new("uri", VCARD4).with_text(format!("tel:{n}"))),
            );
        }
    }
    out
}

/// The vcard-temp fields a vCard4 carries.
fn temp_fields(v4: &Element) -> Vec<Element> {
    let t = ns::VCARD;
    let mut out = Vec::new();
    for (tn, vn, value) in TEXT_FIELDS {
        if let Some(v) = v4
            .get_child(vn, VCARD4)
            .and_then(|f| text_of(f, value, VCARD4))
        {
            out.push(Element::new(*tn, t).with_text(v));
        }
    }
    if let Some(n) = v4.get_child("n", VCARD4) {
        let mut e = Element::new("N", t);
        for (tp, vp) in NAME_PARTS {
            if let Some(x) = text_of(n, vp, VCARD4) {
                e.push(Element::new(*tp, t).with_text(x));
            }
        }
        if e.children().next().is_some() {
            out.push(e);
        }
    }
    for org in v4.children().filter(|c| c.is("org", VCARD4)) {
        if let Some(name) = text_of(org, "text", VCARD4) {
            out.push(Element::new("ORG", t).with_child(Element::new("ORGNAME", t).with_text(name)));
        }
    }
    for email in v4.children().filter(|c| c.is("email", VCARD4)) {
        if let Some(a) = text_of(email, "text", VCARD4) {
            out.push(
                Element::new("EMAIL", t)
                    .with_child(Element::new("INTERNET", t))
                    .with_child(Element::new("USERID", t).with_text(a)),
            );
        }
    }
    for tel in v4.children().filter(|c| c.is("tel", VCARD4)) {
        let number = text_of(tel, "uri", VCARD4)
            .map(|u| u.strip_prefix("tel:").map(str::to_owned).unwrap_or(u))
            .or_else(|| text_of(tel, "text", VCARD4));
        if let Some(n) = number {
            out.push(Element::new("TEL", t).with_child(Element::new("NUMBER", t).with_text(n)));
        }
    }
    out
}

/// `target` with the elements `owned` names replaced by `fields`.
fn merged(mut target: Element, owned: &[&str], namespace: &str, fields: Vec<Element>) -> Element {
    target.remove_children(|c| c.ns() == namespace && owned.contains(&c.name()));
    for f in fields {
        target.push(f);
    }
    target
}

/// A vcard-temp was stored: the vCard4 item follows its shared fields.
pub async fn from_vcard_temp(
    router: &Router,
    services: &Services,
    shared: &Shared,
    owner: &BareJid,
    temp: &Element,
) {
    let result = async {
        let storage = &services.storage;
        let current = storage
            .pubsub_items(owner.as_str(), NODE, &[], Some(1))
            .await?
            .into_iter()
            .next();
        let (id, base) = match &current {
            Some(item) => (
                item.id.clone(),
                Element::from_xml(&item.payload).unwrap_or_else(|_| Element::new("vcard", VCARD4)),
            ),
            None => ("current".to_owned(), Element::new("vcard", VCARD4)),
        };
        let next = merged(base, V4_OWNED, VCARD4, v4_fields(temp));
        let payload = next.to_xml();
        if current.as_ref().is_some_and(|c| c.payload == payload)
            || (current.is_none() && next.children().next().is_none())
        {
            return Ok::<(), StorageError>(());
        }
        let item = PubsubItem {
            id,
            publisher: owner.as_str().to_owned(),
            payload,
        };
        server_publish(router, services, shared, owner, NODE, item).await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(jid = %owner, error = %e, "vCard4 conversion failed");
    }
}

/// A vCard4 was published: the stored vcard-temp follows its shared
/// fields.
pub async fn to_vcard_temp(services: &Services, owner: &BareJid, v4: &Element) {
    let result = async {
        let storage = &services.storage;
        let Some(localpart) = owner.node() else {
            return Ok::<(), StorageError>(());
        };
        let stored = storage.vcard(localpart, owner.domain()).await?;
        let base = stored
            .as_deref()
            .and_then(|x| Element::from_xml(x).ok())
            .unwrap_or_else(|| Element::new("vCard", ns::VCARD));
        let next = merged(base, TEMP_OWNED, ns::VCARD, temp_fields(v4)).to_xml();
        if stored.as_deref() == Some(next.as_str()) || next.len() > crate::vcard::MAX_VCARD_BYTES {
            return Ok(());
        }
        storage.set_vcard(localpart, owner.domain(), &next).await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(jid = %owner, error = %e, "vCard4 conversion to vcard-temp failed");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shared_fields_convert_both_ways_and_the_rest_stays() {
        let temp = Element::from_xml(
            "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN></N>\
             <NICKNAME>ally</NICKNAME><EMAIL><INTERNET/><USERID>alice@example.org</USERID></EMAIL>\
             <TEL><NUMBER>+44 1865 000</NUMBER></TEL><PHOTO><TYPE>image/png</TYPE><BINVAL>AA==</BINVAL></PHOTO></vCard>",
        )
        .unwrap();
        let v4 = merged(
            Element::new("vcard", VCARD4),
            V4_OWNED,
            VCARD4,
            v4_fields(&temp),
        );
        assert_eq!(
            v4.get_child("fn", VCARD4)
                .unwrap()
                .get_child("text", VCARD4)
                .unwrap()
                .text(),
            "Alice Liddell"
        );
        assert_eq!(
            v4.get_child("tel", VCARD4)
                .unwrap()
                .get_child("uri", VCARD4)
                .unwrap()
                .text(),
            "tel:+44 1865 000"
        );
        // Back again: the same shared fields, and the PHOTO kept.
        let back = merged(temp.clone(), TEMP_OWNED, ns::VCARD, temp_fields(&v4));
        assert!(back.get_child("PHOTO", ns::VCARD).is_some());
        assert_eq!(
            back.get_child("NICKNAME", ns::VCARD).unwrap().text(),
            "ally"
        );
        assert_eq!(
            back.get_child("N", ns::VCARD)
                .unwrap()
                .get_child("GIVEN", ns::VCARD)
                .unwrap()
                .text(),
            "Alice"
        );
        assert_eq!(
            back.get_child("EMAIL", ns::VCARD)
                .unwrap()
                .get_child("USERID", ns::VCARD)
                .unwrap()
                .text(),
            "alice@example.org"
        );
        // What only vCard4 says survives a vcard-temp write.
        let rich = Element::from_xml(
            "<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'><fn><text>Old</text></fn>\
             <adr><locality>Oxford</locality></adr></vcard>",
        )
        .unwrap();
        let next = merged(rich, V4_OWNED, VCARD4, v4_fields(&temp));
        assert!(next.get_child("adr", VCARD4).is_some());
        assert_eq!(
            next.get_child("fn", VCARD4)
                .unwrap()
                .get_child("text", VCARD4)
                .unwrap()
                .text(),
            "Alice Liddell"
        );
    }
}
