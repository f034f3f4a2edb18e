//! XEP-0054: vcard-temp (version 1.2). Each account has at most one vCard,
//! which its user replaces whole with an IQ set (the XEP has no partial
//! update) and which anyone may read with an IQ get to the bare JID: a
//! vCard is world-readable by design (the XEP's security considerations).
//!
//! Answers, per the XEP's use cases:
//! - get of one's own (no 'to', or one's own bare JID): the stored vCard, or
//!   an empty `<vCard/>` (the XEP allows this or `item-not-found`; the
//!   empty card is what clients treat as "nothing set yet" without
//!   showing an error);
//! - get of another account's: the stored vCard, or `service-unavailable`
//!   when there is none, which the XEP requires to be an error. It is the
//!   same answer the router gives for an account that does not exist
//!   (RFC 6121 §8.5.1), so a stranger cannot tell the two apart;
//! - get to the server: `item-not-found` (the XEP lets a server have a
//!   vCard; Chorus has none to give);
//! - set of anyone's but one's own, the server's included: `forbidden`;
//! - set of a vCard over [`MAX_VCARD_BYTES`]: `policy-violation`.
//!
//! Later: XEP-0153 (vCard-based avatars) puts a hash of the vCard's PHOTO
//! into the user's presence; that needs the presence broadcast to consult
//! this store and is left for the presence work.

use chorus_proto::{ns, StanzaErrorCondition};
use chorus_storage::VcardStore;
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::private::parse_fragment;
use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

/// The vcard-temp module; with PEP on, a stored PHOTO also becomes the
/// PEP avatar (XEP-0398, `pubsub/avatar.rs`).
pub struct Vcard {
    pub pep: Option<std::sync::Arc<crate::pubsub::Shared>>,
}

/// The largest vCard stored, in bytes of its serialization. vCards carry
/// avatars (PHOTO, base64), and 64 KiB holds any reasonable one (XEP-0153
/// asks for avatars under 8 KiB) while bounding what each read costs: anyone
/// may fetch a card, as often as they like.
///
/// A larger one gets `policy-violation` (RFC 6120 §8.3.3.12, type modify):
/// it names the breach of a local rule, the rule RFC 6120 itself illustrates
/// with a size limit for the stream error of the same name (§4.9.3.14), and
/// `modify` tells the client a smaller card will do. `not-acceptable`
/// (§8.3.3.9) speaks of a request lacking what the recipient needs, and
/// `resource-constraint` (§8.3.3.18, type wait) would have the client retry
/// the same card later, to the same answer.
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

fn empty_vcard() -> Element {
    Element::new("vCard", ns::VCARD)
}

fn storage_failed(e: chorus_storage::StorageError) -> StanzaErrorCondition {
    tracing::error!(error = %e, "vCard storage failed");
    StanzaErrorCondition::InternalServerError
}

impl Vcard {
    async fn answer(&self, ctx: &IqCtx<'_>, iq: &Element) -> Result<IqReply, StanzaErrorCondition> {
        let store = &ctx.services.storage;
        if iq.attr("type") == Some("set") {
            if !ctx.is_own_account() {
                return Err(StanzaErrorCondition::Forbidden);
            }
            let me = ctx.me()?;
            let (Some(localpart), Some(card)) = (me.node(), iq.children().next()) else {
                return Err(StanzaErrorCondition::Forbidden);
            };
            let xml = card.to_xml();
            if xml.len() > MAX_VCARD_BYTES {
                return Err(StanzaErrorCondition::PolicyViolation);
            }
            store
                .set_vcard(localpart, me.domain(), &xml)
                .await
                .map_err(storage_failed)?;
            if let Some(shared) = &self.pep {
                let owner = me.bare();
                crate::pubsub::avatar::from_vcard(ctx.router, ctx.services, shared, &owner, card)
                    .await;
                crate::pubsub::vcard4::from_vcard_temp(
                    ctx.router,
                    ctx.services,
                    shared,
                    &owner,
                    card,
                )
                .await;
            }
            return Ok(IqReply::Result(None));
        }
        let Some(account) = ctx.account else {
            return Err(StanzaErrorCondition::ItemNotFound);
        };
        // A bare JID routed to an account always has a localpart; a
        // domain-only one would have been the server's.
        let Some(localpart) = account.node() else {
            return Err(StanzaErrorCondition::ItemNotFound);
        };
        let stored = store
            .vcard(localpart, account.domain())
            .await
            .map_err(storage_failed)?;
        match stored {
            Some(xml) => match parse_fragment(&xml) {
                Some(card) => Ok(IqReply::Result(Some(card))),
                None => {
                    tracing::error!(account = %account.as_str(), "stored vCard does not parse");
                    Err(StanzaErrorCondition::InternalServerError)
                }
            },
            None if ctx.is_own_account() => Ok(IqReply::Result(Some(empty_vcard()))),
            None => Err(StanzaErrorCondition::ServiceUnavailable),
        }
    }
}

static INFO: ModuleInfo = ModuleInfo {
    name: "vcard",
    file: file!(),
    xeps: &[Xep {
        number: 54,
        name: "vcard-temp",
        version: "1.2",
        support: Support::Complete,
        note: "",
    }],
    iqs: &[IqSpec::anyone("vCard", ns::VCARD)],
    features: &[ns::VCARD],
    ..ModuleInfo::EMPTY
};

impl Module for Vcard {
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

    #[test]
    fn a_vcard_round_trips_through_its_stored_form() {
        let card = Element::new("vCard", ns::VCARD)
            .with_child(Element::new("FN", ns::VCARD).with_text("Alice Liddell"))
            .with_child(
                Element::new("PHOTO", ns::VCARD)
                    .with_child(Element::new("TYPE", ns::VCARD).with_text("image/png"))
                    .with_child(Element::new("BINVAL", ns::VCARD).with_text("iVBORw0KGgo=")),
            );
        assert_eq!(parse_fragment(&card.to_xml()).unwrap(), card);
    }

    #[test]
    fn the_empty_vcard_is_in_vcard_temp() {
        let e = empty_vcard();
        assert!(e.is("vCard", ns::VCARD));
        assert_eq!(e.to_xml(), "<vCard xmlns='vcard-temp'/>");
    }
}
