//! XEP-0280: Message Carbons (version 1.0.1), with the XEP-0334 `no-copy`
//! hint. A resource enables or disables carbons with an IQ (§3, the flag
//! lives on its session); from then on it gets a copy of every eligible
//! message its account sends from another resource (`<sent/>`, §4, the
//! [`Module::user_sent`] hook) or receives on another resource
//! (`<received/>`, §5, the [`Module::message_delivered`] hook), wrapped in
//! a XEP-0297 `<forwarded/>`.

use chorus_jid::{BareJid, FullJid};
use chorus_proto::{ns, MessageType, StanzaErrorCondition};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{
    HookCtx, HookSet, IqCtx, IqReply, IqSpec, Module, ModuleInfo, SessionCtx, Support, Xep,
};

pub struct Carbons;

static INFO: ModuleInfo = ModuleInfo {
    name: "carbons",
    file: file!(),
    xeps: &[Xep {
        number: 280,
        name: "Message Carbons",
        version: "1.0.1",
        support: Support::Complete,
        note: "",
    }],
    iqs: &[
        IqSpec::local("enable", ns::CARBONS),
        IqSpec::local("disable", ns::CARBONS),
    ],
    features: &[ns::CARBONS],
    hooks: HookSet::USER_SENT.and(HookSet::MESSAGE_DELIVERED),
    ..ModuleInfo::EMPTY
};

/// §6: chat messages, and normal ones with a body; never errors,
/// groupchat, headlines, carbons themselves, or messages marked private
/// (§7) or no-copy (XEP-0334).
fn eligible(stanza: &Element) -> bool {
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

impl Module for Carbons {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            // §3: a set, from the user's own resource to its own account.
            if iq.attr("type") != Some("set") {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            if !ctx.is_own_account() && ctx.account.is_some() {
                return IqReply::Error(StanzaErrorCondition::Forbidden);
            }
            let enable = iq.get_child("enable", ns::CARBONS).is_some();
            match ctx.user.and_then(|me| ctx.services.sessions.get(me)) {
                Some(s) => {
                    s.set_carbons(enable);
                    IqReply::Result(None)
                }
                None => IqReply::Error(StanzaErrorCondition::UnexpectedRequest),
            }
        })
    }

    /// §4: copies of a message sent by a resource to its account's other
    /// resources that enabled carbons.
    fn user_sent<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, ()>> {
        if !eligible(stanza) {
            return None;
        }
        let owner = ctx.full.bare();
        for s in ctx.services.sessions.resources(&owner) {
            if s.full != *ctx.full && s.carbons() {
                s.sink.deliver(wrap("sent", &owner, &s.full, stanza));
            }
        }
        None
    }

    /// §5: copies of a message delivered to some of `owner`'s resources
    /// for the others that enabled carbons.
    fn message_delivered(
        &self,
        ctx: &HookCtx<'_>,
        owner: &BareJid,
        delivered_to: &[FullJid],
        stanza: &Element,
    ) {
        if !eligible(stanza) {
            return;
        }
        for s in ctx.services.sessions.resources(owner) {
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
