//! The three stanza kinds and their `type` attributes, as small enums.
//!
//! Every module dispatches on "is this an IQ get?" or "is this a chat
//! message?"; matching on enums instead of comparing strings keeps the RFC's
//! defaulting rules (an absent message type is `normal`, an absent presence
//! type is available) in one place instead of in each module.

use std::fmt;

use chorus_xml::Element;

use crate::ns;

/// The kind of a top-level stanza (RFC 6120 §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
}

impl StanzaKind {
    /// Every kind (for counters that start at zero for each).
    pub const ALL: [StanzaKind; 3] = [StanzaKind::Message, StanzaKind::Presence, StanzaKind::Iq];

    /// The kind of `el`; `None` unless it is `message`, `presence` or `iq` in
    /// `jabber:client` or `jabber:server` (a `<message/>` in any other
    /// namespace is not a stanza, RFC 6120 §4.8.3).
    pub fn of(el: &Element) -> Option<StanzaKind> {
        if el.ns() != ns::JABBER_CLIENT && el.ns() != ns::JABBER_SERVER {
            return None;
        }
        Some(match el.name() {
            "message" => StanzaKind::Message,
            "presence" => StanzaKind::Presence,
            "iq" => StanzaKind::Iq,
            _ => return None,
        })
    }

    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            StanzaKind::Message => "message",
            StanzaKind::Presence => "presence",
            StanzaKind::Iq => "iq",
        }
    }
}

impl fmt::Display for StanzaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type` of an IQ (RFC 6120 §8.2.3), which is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IqType {
    Get,
    Set,
    Result,
    Error,
}

impl IqType {
    /// The type for an attribute value; `None` for anything else, which the
    /// caller answers with `bad-request` (RFC 6120 §8.3.3.1).
    pub fn parse(s: &str) -> Option<IqType> {
        Some(match s {
            "get" => IqType::Get,
            "set" => IqType::Set,
            "result" => IqType::Result,
            "error" => IqType::Error,
            _ => return None,
        })
    }

    /// The type of an IQ element; `None` when absent or invalid.
    pub fn of(el: &Element) -> Option<IqType> {
        el.attr("type").and_then(IqType::parse)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IqType::Get => "get",
            IqType::Set => "set",
            IqType::Result => "result",
            IqType::Error => "error",
        }
    }

    /// True for `get` and `set`, which must be answered (RFC 6120 §8.2.3).
    pub fn is_request(self) -> bool {
        matches!(self, IqType::Get | IqType::Set)
    }
}

impl fmt::Display for IqType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type` of a message (RFC 6121 §5.2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MessageType {
    Chat,
    Error,
    Groupchat,
    Headline,
    /// Also what an absent or unknown type means (RFC 6121 §5.2.2: "the
    /// receiving entity MUST treat it as normal").
    #[default]
    Normal,
}

impl MessageType {
    /// The type for an attribute value, absent or not; never fails.
    pub fn parse(s: Option<&str>) -> MessageType {
        match s {
            Some("chat") => MessageType::Chat,
            Some("error") => MessageType::Error,
            Some("groupchat") => MessageType::Groupchat,
            Some("headline") => MessageType::Headline,
            _ => MessageType::Normal,
        }
    }

    /// The type of a message element.
    pub fn of(el: &Element) -> MessageType {
        MessageType::parse(el.attr("type"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Chat => "chat",
            MessageType::Error => "error",
            MessageType::Groupchat => "groupchat",
            MessageType::Headline => "headline",
            MessageType::Normal => "normal",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type` of a presence (RFC 6121 §4.7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceType {
    /// No `type` attribute: the sender is available.
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    Error,
}

impl PresenceType {
    /// The type for an attribute value. Absent means available; any other
    /// value, `available` included (it is not a defined value), is `None`,
    /// which the caller answers with `bad-request`.
    pub fn parse(s: Option<&str>) -> Option<PresenceType> {
        Some(match s {
            None => PresenceType::Available,
            Some("unavailable") => PresenceType::Unavailable,
            Some("subscribe") => PresenceType::Subscribe,
            Some("subscribed") => PresenceType::Subscribed,
            Some("unsubscribe") => PresenceType::Unsubscribe,
            Some("unsubscribed") => PresenceType::Unsubscribed,
            Some("probe") => PresenceType::Probe,
            Some("error") => PresenceType::Error,
            Some(_) => return None,
        })
    }

    /// The type of a presence element.
    pub fn of(el: &Element) -> Option<PresenceType> {
        PresenceType::parse(el.attr("type"))
    }

    /// The attribute value to write; `None` for available, which has none.
    pub fn as_attr(self) -> Option<&'static str> {
        match self {
            PresenceType::Available => None,
            other => Some(other.as_str()),
        }
    }

    /// A name for logs: `available` for the attribute-less form.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceType::Available => "available",
            PresenceType::Unavailable => "unavailable",
            PresenceType::Subscribe => "subscribe",
            PresenceType::Subscribed => "subscribed",
            PresenceType::Unsubscribe => "unsubscribe",
            PresenceType::Unsubscribed => "unsubscribed",
            PresenceType::Probe => "probe",
            PresenceType::Error => "error",
        }
    }

    /// True for the four subscription management types (RFC 6121 §3).
    pub fn is_subscription(self) -> bool {
        matches!(
            self,
            PresenceType::Subscribe
                | PresenceType::Subscribed
                | PresenceType::Unsubscribe
                | PresenceType::Unsubscribed
        )
    }
}

impl fmt::Display for PresenceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_kind_of() {
        for (name, kind) in [
            ("message", StanzaKind::Message),
            ("presence", StanzaKind::Presence),
            ("iq", StanzaKind::Iq),
        ] {
            assert_eq!(
                StanzaKind::of(&Element::new(name, ns::JABBER_CLIENT)),
                Some(kind)
            );
            assert_eq!(
                StanzaKind::of(&Element::new(name, ns::JABBER_SERVER)),
                Some(kind)
            );
            assert_eq!(kind.as_str(), name);
        }
        assert_eq!(StanzaKind::of(&Element::new("message", ns::STREAM)), None);
        assert_eq!(StanzaKind::of(&Element::new("message", "")), None);
        assert_eq!(
            StanzaKind::of(&Element::new("Message", ns::JABBER_CLIENT)),
            None
        );
        assert_eq!(StanzaKind::of(&Element::new("r", ns::SM)), None);
    }

    #[test]
    fn iq_type_parse_and_invalid() {
        for t in [IqType::Get, IqType::Set, IqType::Result, IqType::Error] {
            assert_eq!(IqType::parse(t.as_str()), Some(t));
        }
        assert_eq!(IqType::parse("GET"), None);
        assert_eq!(IqType::parse(""), None);
        assert_eq!(IqType::of(&Element::new("iq", ns::JABBER_CLIENT)), None);
        assert_eq!(
            IqType::of(&Element::new("iq", ns::JABBER_CLIENT).with_attr("type", "set")),
            Some(IqType::Set)
        );
        assert!(IqType::Get.is_request() && !IqType::Result.is_request());
    }

    #[test]
    fn message_type_defaults_to_normal() {
        for t in [
            MessageType::Chat,
            MessageType::Error,
            MessageType::Groupchat,
            MessageType::Headline,
            MessageType::Normal,
        ] {
            assert_eq!(MessageType::parse(Some(t.as_str())), t);
        }
        assert_eq!(MessageType::parse(None), MessageType::Normal);
        assert_eq!(MessageType::parse(Some("bogus")), MessageType::Normal);
        assert_eq!(MessageType::parse(Some("Chat")), MessageType::Normal);
        assert_eq!(MessageType::default(), MessageType::Normal);
        assert_eq!(
            MessageType::of(&Element::new("message", ns::JABBER_CLIENT)),
            MessageType::Normal
        );
    }

    #[test]
    fn presence_type_parse_and_invalid() {
        for t in [
            PresenceType::Unavailable,
            PresenceType::Subscribe,
            PresenceType::Subscribed,
            PresenceType::Unsubscribe,
            PresenceType::Unsubscribed,
            PresenceType::Probe,
            PresenceType::Error,
        ] {
            assert_eq!(PresenceType::parse(t.as_attr()), Some(t));
        }
        assert_eq!(PresenceType::parse(None), Some(PresenceType::Available));
        assert_eq!(PresenceType::Available.as_attr(), None);
        assert_eq!(PresenceType::parse(Some("available")), None);
        assert_eq!(PresenceType::parse(Some("invisible")), None);
        assert_eq!(PresenceType::parse(Some("")), None);
        assert!(PresenceType::Subscribed.is_subscription());
        assert!(!PresenceType::Probe.is_subscription());
    }
}
