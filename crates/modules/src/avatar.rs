//! XEP-0153: vCard-Based Avatars (version 1.1), the server's part: a
//! client that does not announce its avatar itself gets the hash of the
//! PHOTO in its stored vcard-temp added to its broadcast presence, so that
//! contacts see avatar changes without fetching the vCard each time.

use base64::Engine;
use chorus_jid::BareJid;
use chorus_proto::{ns, PresenceType};
use chorus_storage::{Storage, VcardStore};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use sha1::Digest;

use crate::{HookSet, Module, ModuleInfo, SessionCtx, Support, Xep};

pub struct Avatar;

static INFO: ModuleInfo = ModuleInfo {
    name: "avatar",
    file: file!(),
    xeps: &[Xep {
        number: 153,
        name: "vCard-Based Avatars",
        version: "1.1",
        support: Support::Complete,
        note: "The server adds the hash of the stored photo to broadcast presence.",
    }],
    hooks: HookSet::USER_SENT,
    ..ModuleInfo::EMPTY
};

impl Module for Avatar {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    /// Broadcast available presence (no `to`) gets the hash.
    fn user_sent<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, ()>> {
        let broadcast = stanza.name() == "presence"
            && stanza.attr("to").is_none()
            && PresenceType::of(stanza) == Some(PresenceType::Available);
        if !broadcast {
            return None;
        }
        Some(Box::pin(async move {
            annotate(&ctx.services.storage, &ctx.full.bare(), stanza).await;
        }))
    }
}

/// The SHA-1 (hex) of the avatar in a vCard, or None without a photo.
pub fn photo_hash(vcard: &Element) -> Option<String> {
    let photo = vcard.get_child("PHOTO", ns::VCARD)?;
    let binval = photo.get_child("BINVAL", ns::VCARD)?.text();
    // Base64 in vCards is often wrapped over lines.
    let compact: String = binval.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    let digest = sha1::Sha1::digest(&bytes);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Adds `<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>` to an
/// available presence that carries none (XEP-0153 §3.1: an empty `<photo/>`
/// when there is no avatar). A client's own element is left alone.
async fn annotate(storage: &Storage, user: &BareJid, presence: &mut Element) {
    if presence.get_child("x", ns::VCARD_UPDATE).is_some() {
        return;
    }
    let Some(node) = user.node() else { return };
    let stored = match storage.vcard(node, user.domain()).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "vCard read failed; presence sent without avatar hash");
            return;
        }
    };
    let hash = stored
        .as_deref()
        .and_then(|xml| Element::from_xml(xml).ok())
        .and_then(|v| photo_hash(&v));
    let mut photo = Element::new("photo", ns::VCARD_UPDATE);
    if let Some(h) = hash {
        photo.push_text(h);
    }
    presence.push(Element::new("x", ns::VCARD_UPDATE).with_child(photo));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha1_hex_of_the_decoded_photo() {
        let v = Element::new("vCard", ns::VCARD).with_child(
            Element::new("PHOTO", ns::VCARD)
                .with_child(Element::new("TYPE", ns::VCARD).with_text("image/png"))
                .with_child(Element::new("BINVAL", ns::VCARD).with_text("aGVs\nbG8=")),
        );
        // sha1("hello")
        assert_eq!(
            photo_hash(&v).unwrap(),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
        assert!(photo_hash(&Element::new("vCard", ns::VCARD)).is_none());
    }
}
