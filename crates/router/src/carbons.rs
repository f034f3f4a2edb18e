//! XEP-0280: Message Carbons (version 1.0.1), with the XEP-0334 `no-copy`
//! hint. A user's resources that enabled carbons get a copy of every
//! eligible message the user sends (`<sent/>`) or receives on another
//! resource (`<received/>`), wrapped in a XEP-0297 `<forwarded/>`.

use chorus_jid::{BareJid, FullJid};
use chorus_proto::{ns, MessageType};
use chorus_xml::Element;

use crate::route::Router;

/// §6: chat messages, and normal ones with a body; never errors,
/// groupchat, headlines, carbons themselves, or messages marked private
/// (§7) or no-copy (XEP-0334).
pub(crate) fn eligible(stanza: &Element) -> bool {
    if stanza.name() != "message" {
        return false;
    }
    let typed = match MessageType::of(stanza) {
        MessageType::Chat => true,
        MessageType::Normal => stanza.get_child("body", ns::JABBER_CLIENT).is_some(),
        _ => false,
    };
    typed
        && stanza.get_child("private", ns::CARBONS).is_none()
        && stanza.get_child("no-copy", ns::HINTS).is_none()
        && stanza.get_child("sent", ns::CARBONS).is_none()
        && stanza.get_child("received", ns::CARBONS).is_none()
}

fn wrap(direction: &str, owner: &BareJid, to: &FullJid, stanza: &Element) -> Element {
    let typ = stanza.attr("type").unwrap_or("normal");
    Element::new("message", ns::JABBER_CLIENT)
        .with_attr("from", owner.to_string())
        .with_attr("to", to.to_string())
        .with_attr("type", typ)
        .with_child(
            Element::new(direction, ns::CARBONS)
                .with_child(Element::new("forwarded", ns::FORWARD).with_child(stanza.clone())),
        )
}

impl Router {
    /// §4: copies of a message sent by `sender` to its other resources that
    /// enabled carbons.
    pub fn carbon_sent(&self, sender: &FullJid, stanza: &Element) {
        if !eligible(stanza) {
            return;
        }
        let owner = sender.bare();
        for s in self.sessions.resources(&owner) {
            if s.full != *sender && s.carbons() {
                s.sink.deliver(wrap("sent", &owner, &s.full, stanza));
            }
        }
    }

    /// §5: copies of a message delivered to some of `owner`'s resources
    /// (`delivered_to`) for the others that enabled carbons.
    pub(crate) fn carbon_received(
        &self,
        owner: &BareJid,
        delivered_to: &[FullJid],
        stanza: &Element,
    ) {
        if !eligible(stanza) {
            return;
        }
        for s in self.sessions.resources(owner) {
            if s.carbons() && !delivered_to.contains(&s.full) {
                s.sink.deliver(wrap("received", owner, &s.full, stanza));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(typ: Option<&str>, body: bool) -> Element {
        let mut m = Element::new("message", ns::JABBER_CLIENT);
        if let Some(t) = typ {
            m.set_attr("type", t);
        }
        if body {
            m.push(Element::new("body", ns::JABBER_CLIENT).with_text("hi"));
        }
        m
    }

    #[test]
    fn eligibility_follows_section_6() {
        assert!(eligible(&msg(Some("chat"), false)));
        assert!(eligible(&msg(None, true)));
        assert!(!eligible(&msg(None, false)));
        assert!(!eligible(&msg(Some("groupchat"), true)));
        assert!(!eligible(&msg(Some("headline"), true)));
        assert!(!eligible(&msg(Some("error"), true)));
        assert!(!eligible(
            &msg(Some("chat"), true).with_child(Element::new("private", ns::CARBONS))
        ));
        assert!(!eligible(
            &msg(Some("chat"), true).with_child(Element::new("no-copy", ns::HINTS))
        ));
    }
}
