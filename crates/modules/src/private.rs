//! XEP-0049: Private XML Storage (version 1.2). A user stores an XML
//! element on the server, keyed by its name and namespace, and reads it
//! back; nobody else can do either (the XEP's security considerations).
//!
//! Requests carry exactly one element in `<query xmlns='jabber:iq:private'/>`.
//! The XEP lets an IQ set hold several elements; like Prosody, Chorus
//! accepts one per request and answers `bad-request` otherwise, so that a
//! set is one atomic write and an error names one element. Clients in use
//! (bookmarks, XEP-0048; client preferences) send one.
//!
//! Errors, mapped from the XEP's legacy names onto RFC 6120 conditions:
//! - to anyone but the sender's own account: `forbidden` (the XEP prefers
//!   it to `service-unavailable`);
//! - no child element ("Bad Format"): `bad-request`;
//! - a child in no namespace, or in one the XEP calls reserved (beginning
//!   with `jabber:` or `http://jabber.org/`, and `vcard-temp`): the XEP's
//!   optional `not-acceptable`. Refusing them keeps private storage from
//!   shadowing protocol data, e.g. a "vCard" that is not the vCard.
//!
//! Not yet: a per-account quota on the number of stored elements (each is
//! bounded by the stanza size limit, their count is not).

use chorus_proto::{ns, StanzaErrorCondition};
use chorus_storage::PrivateStore;
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::pubsub::bookmarks;
use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

/// The private XML module; with PEP on, `storage:bookmarks` is kept in
/// step with PEP Native Bookmarks (XEP-0411, `pubsub/bookmarks.rs`).
pub struct Private {
    pub pep: Option<std::sync::Arc<crate::pubsub::Shared>>,
}

/// Namespace prefixes XEP-0049 §2.3 reserves for protocol use.
const RESERVED_PREFIXES: &[&str] = &["jabber:", "http://jabber.org/"];

/// Whether an element in this namespace may not be stored.
fn namespace_refused(namespace: &str) -> bool {
    namespace.is_empty()
        || namespace == ns::VCARD
        || RESERVED_PREFIXES.iter().any(|p| namespace.starts_with(p))
}

/// Reads back what we stored with [`Element::to_xml`], through the same
/// hardened parser as stream input.
pub(crate) fn parse_fragment(xml: &str) -> Option<Element> {
    Element::from_xml(xml).ok()
}

/// The one element a request's `<query/>` must carry, or the error.
fn requested_element(iq: &Element) -> Result<&Element, StanzaErrorCondition> {
    let query = iq
        .children()
        .next()
        .ok_or(StanzaErrorCondition::BadRequest)?;
    let mut children = query.children();
    let (Some(child), None) = (children.next(), children.next()) else {
        return Err(StanzaErrorCondition::BadRequest);
    };
    if namespace_refused(child.ns()) {
        return Err(StanzaErrorCondition::NotAcceptable);
    }
    Ok(child)
}

fn query_with(child: Element) -> Element {
    Element::new("query", ns::PRIVATE).with_child(child)
}

impl Private {
    async fn answer(&self, ctx: &IqCtx<'_>, iq: &Element) -> Result<IqReply, StanzaErrorCondition> {
        // Checked first: someone else's storage is not even validated,
        // so the error says nothing about it.
        if !ctx.is_own_account() {
            return Err(StanzaErrorCondition::Forbidden);
        }
        let me = ctx.me()?;
        let Some(localpart) = me.node() else {
            return Err(StanzaErrorCondition::Forbidden);
        };
        let domain = me.domain();
        let child = requested_element(iq)?;
        let store = &ctx.services.storage;
        if iq.attr("type") == Some("set") {
            store
                .set_private_xml(localpart, domain, child.name(), child.ns(), &child.to_xml())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "storing private XML failed");
                    StanzaErrorCondition::InternalServerError
                })?;
            if let (Some(shared), true) = (&self.pep, child.ns() == bookmarks::LEGACY) {
                bookmarks::from_legacy(ctx.router, ctx.services, shared, &me.bare(), child).await;
            }
            return Ok(IqReply::Result(None));
        }
        let stored = store
            .private_xml(localpart, domain, child.name(), child.ns())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading private XML failed");
                StanzaErrorCondition::InternalServerError
            })?;
        let element = match stored {
            // Nothing stored: the XEP answers with the element asked for,
            // empty, rather than an error.
            None => Element::new(child.name(), child.ns()),
            Some(xml) => parse_fragment(&xml).ok_or_else(|| {
                tracing::error!(namespace = child.ns(), "stored private XML does not parse");
                StanzaErrorCondition::InternalServerError
            })?,
        };
        let element = match (&self.pep, element.is("storage", bookmarks::LEGACY)) {
            (Some(_), true) => bookmarks::legacy_view(ctx.services, &me.bare(), Some(element))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "reading PEP bookmarks failed");
                    StanzaErrorCondition::InternalServerError
                })?,
            _ => element,
        };
        Ok(IqReply::Result(Some(query_with(element))))
    }
}

static INFO: ModuleInfo = ModuleInfo {
    name: "private",
    file: file!(),
    xeps: &[
        Xep {
            number: 49,
            name: "Private XML Storage",
            version: "1.2",
            support: Support::Complete,
            note: "One element per request, as Prosody.",
        },
        Xep {
            number: 48,
            name: "Bookmarks",
            version: "1.2",
            support: Support::Complete,
            note: "storage:bookmarks in private XML, kept in step with PEP Native Bookmarks (XEP-0411).",
        },
    ],
    iqs: &[IqSpec::local("query", ns::PRIVATE)],
    features: &[ns::PRIVATE],
    ..ModuleInfo::EMPTY
};

impl Module for Private {
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

    fn request(query: Element) -> Element {
        Element::new("iq", ns::JABBER_CLIENT)
            .with_attr("type", "set")
            .with_child(query)
    }

    #[test]
    fn parse_fragment_round_trips_to_xml() {
        let e = Element::new("storage", "storage:bookmarks")
            .with_child(
                Element::new("conference", "storage:bookmarks")
                    .with_attr("jid", "room@muc.example")
                    .with_attr("autojoin", "true")
                    .with_child(Element::new("nick", "storage:bookmarks").with_text("a<&>'\"")),
            )
            .with_child(Element::new("x", "urn:example:other"))
            .with_child(Element::new("bare", ""));
        assert_eq!(parse_fragment(&e.to_xml()).unwrap(), e);
    }

    #[test]
    fn parse_fragment_refuses_anything_but_one_element() {
        assert!(parse_fragment("").is_none());
        assert!(parse_fragment("<a xmlns='urn:x'/><b xmlns='urn:x'/>").is_none());
        assert!(parse_fragment("<a xmlns='urn:x'><b></a>").is_none());
        assert!(parse_fragment("<a xmlns='urn:x'>").is_none());
        assert!(parse_fragment("<a xmlns='urn:x'/><b>").is_none());
        assert!(parse_fragment("</stream:stream>").is_none());
    }

    #[test]
    fn parse_fragment_reads_elements_larger_than_the_default_stanza_limit() {
        let big = "x".repeat(chorus_xml::Limits::default().max_stanza_bytes + 10);
        let e = Element::new("blob", "urn:example:big").with_text(big);
        assert_eq!(parse_fragment(&e.to_xml()).unwrap(), e);
    }

    #[test]
    fn reserved_and_missing_namespaces_are_refused() {
        for refused in [
            "",
            ns::JABBER_CLIENT,
            ns::JABBER_SERVER,
            ns::PRIVATE,
            ns::DATA_FORMS,
            ns::DISCO_INFO,
            ns::VCARD,
        ] {
            assert!(namespace_refused(refused), "{refused:?}");
        }
        for allowed in ["storage:bookmarks", "exodus:prefs", "urn:xmpp:bookmarks:1"] {
            assert!(!namespace_refused(allowed), "{allowed:?}");
        }
    }

    #[test]
    fn a_query_needs_exactly_one_child() {
        let empty = request(Element::new("query", ns::PRIVATE));
        assert_eq!(
            requested_element(&empty).err(),
            Some(StanzaErrorCondition::BadRequest)
        );
        let two = request(
            Element::new("query", ns::PRIVATE)
                .with_child(Element::new("a", "urn:x"))
                .with_child(Element::new("b", "urn:x")),
        );
        assert_eq!(
            requested_element(&two).err(),
            Some(StanzaErrorCondition::BadRequest)
        );
        let one = request(
            Element::new("query", ns::PRIVATE)
                .with_text("\n  ")
                .with_child(Element::new("a", "urn:x")),
        );
        assert_eq!(requested_element(&one).unwrap().name(), "a");
    }

    #[test]
    fn a_child_in_a_reserved_namespace_is_not_acceptable() {
        let iq = request(
            Element::new("query", ns::PRIVATE).with_child(Element::new("vCard", ns::VCARD)),
        );
        assert_eq!(
            requested_element(&iq).err(),
            Some(StanzaErrorCondition::NotAcceptable)
        );
    }
}
