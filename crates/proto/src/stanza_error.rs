//! RFC 6120 §8.3 stanza errors, and the error reply built from a stanza.
//!
//! Unlike a stream error, a stanza error answers one stanza and the stream goes
//! on. Handlers return a [`StanzaError`]; [`error_reply`] turns it into the
//! reply stanza, so addressing and the "never answer an error" rule live in one
//! place instead of in every module.

use std::fmt;
use std::str::FromStr;

use chorus_jid::JidError;
use chorus_xml::Element;

use crate::ns;
use crate::stanza::{IqType, StanzaKind};
use crate::UnknownCondition;

/// The `type` attribute of `<error/>` (RFC 6120 §8.3.2): what the sender
/// should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry: the error cannot be remedied.
    Cancel,
    /// Proceed: the condition was only a warning.
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting: the error is temporary.
    Wait,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }

    /// The type for an attribute value; `None` for anything else.
    pub fn parse(s: &str) -> Option<ErrorType> {
        Some(match s {
            "auth" => ErrorType::Auth,
            "cancel" => ErrorType::Cancel,
            "continue" => ErrorType::Continue,
            "modify" => ErrorType::Modify,
            "wait" => ErrorType::Wait,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A defined stanza error condition (RFC 6120 §8.3.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StanzaErrorCondition {
    /// §8.3.3.1: malformed or unprocessable stanza.
    BadRequest,
    /// §8.3.3.2: a resource or session with that name already exists.
    Conflict,
    /// §8.3.3.3: understood but not implemented here.
    FeatureNotImplemented,
    /// §8.3.3.4: the sender lacks the permissions.
    Forbidden,
    /// §8.3.3.5: the recipient no longer exists; optionally its new address
    /// as an XMPP URI, written as the condition element's character data.
    Gone(Option<String>),
    /// §8.3.3.6: our fault.
    InternalServerError,
    /// §8.3.3.7: the addressed JID or item does not exist.
    ItemNotFound,
    /// §8.3.3.8: a JID that breaks RFC 7622.
    JidMalformed,
    /// §8.3.3.9: the request breaks the recipient's rules (e.g. a missing field).
    NotAcceptable,
    /// §8.3.3.10: nobody may perform this action.
    NotAllowed,
    /// §8.3.3.11: the sender must authenticate first.
    NotAuthorized,
    /// §8.3.3.12: a local policy (such as a size limit) was broken.
    PolicyViolation,
    /// §8.3.3.13: the recipient is temporarily unavailable.
    RecipientUnavailable,
    /// §8.3.3.14: send to another address instead, optionally given as an
    /// XMPP URI in the condition element's character data.
    Redirect(Option<String>),
    /// §8.3.3.15: the sender must register first.
    RegistrationRequired,
    /// §8.3.3.16: the remote domain does not exist or cannot be resolved.
    RemoteServerNotFound,
    /// §8.3.3.17: the remote domain could not be reached in time.
    RemoteServerTimeout,
    /// §8.3.3.18: the recipient lacks the resources to answer.
    ResourceConstraint,
    /// §8.3.3.19: the recipient does not offer this service (also the reply
    /// that reveals nothing, RFC 6121 §8.5).
    ServiceUnavailable,
    /// §8.3.3.20: the sender must subscribe first.
    SubscriptionRequired,
    /// §8.3.3.21: none of the others; usually with an application condition.
    UndefinedCondition,
    /// §8.3.3.22: valid, but not expected now (e.g. out of order).
    UnexpectedRequest,
}

impl StanzaErrorCondition {
    /// The condition element's name, as written on the wire.
    pub fn as_str(&self) -> &'static str {
        use StanzaErrorCondition as C;
        match self {
            C::BadRequest => "bad-request",
            C::Conflict => "conflict",
            C::FeatureNotImplemented => "feature-not-implemented",
            C::Forbidden => "forbidden",
            C::Gone(_) => "gone",
            C::InternalServerError => "internal-server-error",
            C::ItemNotFound => "item-not-found",
            C::JidMalformed => "jid-malformed",
            C::NotAcceptable => "not-acceptable",
            C::NotAllowed => "not-allowed",
            C::NotAuthorized => "not-authorized",
            C::PolicyViolation => "policy-violation",
            C::RecipientUnavailable => "recipient-unavailable",
            C::Redirect(_) => "redirect",
            C::RegistrationRequired => "registration-required",
            C::RemoteServerNotFound => "remote-server-not-found",
            C::RemoteServerTimeout => "remote-server-timeout",
            C::ResourceConstraint => "resource-constraint",
            C::ServiceUnavailable => "service-unavailable",
            C::SubscriptionRequired => "subscription-required",
            C::UndefinedCondition => "undefined-condition",
            C::UnexpectedRequest => "unexpected-request",
        }
    }

    /// The error type RFC 6120 §8.3.3 says this condition SHOULD carry. Where
    /// it allows two (feature-not-implemented: cancel or modify;
    /// policy-violation: modify or wait; unexpected-request: wait or modify)
    /// the first is used; undefined-condition allows any type, and `cancel`
    /// is chosen because an unknown failure is not worth retrying.
    pub fn default_type(&self) -> ErrorType {
        use StanzaErrorCondition as C;
        match self {
            C::BadRequest => ErrorType::Modify,
            C::Conflict => ErrorType::Cancel,
            C::FeatureNotImplemented => ErrorType::Cancel,
            C::Forbidden => ErrorType::Auth,
            C::Gone(_) => ErrorType::Cancel,
            C::InternalServerError => ErrorType::Cancel,
            C::ItemNotFound => ErrorType::Cancel,
            C::JidMalformed => ErrorType::Modify,
            C::NotAcceptable => ErrorType::Modify,
            C::NotAllowed => ErrorType::Cancel,
            C::NotAuthorized => ErrorType::Auth,
            C::PolicyViolation => ErrorType::Modify,
            C::RecipientUnavailable => ErrorType::Wait,
            C::Redirect(_) => ErrorType::Modify,
            C::RegistrationRequired => ErrorType::Auth,
            C::RemoteServerNotFound => ErrorType::Cancel,
            C::RemoteServerTimeout => ErrorType::Wait,
            C::ResourceConstraint => ErrorType::Wait,
            C::ServiceUnavailable => ErrorType::Cancel,
            C::SubscriptionRequired => ErrorType::Auth,
            C::UndefinedCondition => ErrorType::Cancel,
            C::UnexpectedRequest => ErrorType::Wait,
        }
    }

    /// The condition element, `<gone/>` and `<redirect/>` with their address.
    pub fn to_element(&self) -> Element {
        let mut el = Element::new(self.as_str(), ns::STANZAS);
        if let StanzaErrorCondition::Gone(Some(uri)) | StanzaErrorCondition::Redirect(Some(uri)) =
            self
        {
            el.push_text(uri.as_str());
        }
        el
    }
}

impl FromStr for StanzaErrorCondition {
    type Err = UnknownCondition;

    /// Parses a condition name; `gone` and `redirect` come without address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use StanzaErrorCondition as C;
        Ok(match s {
            "bad-request" => C::BadRequest,
            "conflict" => C::Conflict,
            "feature-not-implemented" => C::FeatureNotImplemented,
            "forbidden" => C::Forbidden,
            "gone" => C::Gone(None),
            "internal-server-error" => C::InternalServerError,
            "item-not-found" => C::ItemNotFound,
            "jid-malformed" => C::JidMalformed,
            "not-acceptable" => C::NotAcceptable,
            "not-allowed" => C::NotAllowed,
            "not-authorized" => C::NotAuthorized,
            "policy-violation" => C::PolicyViolation,
            "recipient-unavailable" => C::RecipientUnavailable,
            "redirect" => C::Redirect(None),
            "registration-required" => C::RegistrationRequired,
            "remote-server-not-found" => C::RemoteServerNotFound,
            "remote-server-timeout" => C::RemoteServerTimeout,
            "resource-constraint" => C::ResourceConstraint,
            "service-unavailable" => C::ServiceUnavailable,
            "subscription-required" => C::SubscriptionRequired,
            "undefined-condition" => C::UndefinedCondition,
            "unexpected-request" => C::UnexpectedRequest,
            other => return Err(UnknownCondition(other.to_owned())),
        })
    }
}

impl fmt::Display for StanzaErrorCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stanza error: what a handler returns when it refuses a stanza.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {condition}{}", .text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct StanzaError {
    /// What the sender should do next; [`StanzaError::new`] picks the
    /// condition's default.
    pub kind: ErrorType,
    pub condition: StanzaErrorCondition,
    /// Human-readable detail, sent as `<text xml:lang='en'/>`. It goes to the
    /// peer: never put internal state or another user's data in it.
    pub text: Option<String>,
    /// The entity that generated the error (RFC 6120 §8.3.2 `by`), when it
    /// is not the one the error appears to come from.
    pub by: Option<String>,
    /// An application-specific condition element (RFC 6120 §8.3.4), e.g.
    /// XEP-0191's `<blocked xmlns='urn:xmpp:blocking:errors'/>`.
    pub app: Option<Element>,
}

impl StanzaError {
    /// An error with the condition's default type and nothing else.
    pub fn new(condition: StanzaErrorCondition) -> StanzaError {
        StanzaError {
            kind: condition.default_type(),
            condition,
            text: None,
            by: None,
            app: None,
        }
    }

    /// Overrides the default type.
    #[must_use]
    pub fn with_type(mut self, kind: ErrorType) -> StanzaError {
        self.kind = kind;
        self
    }

    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> StanzaError {
        self.text = Some(text.into());
        self
    }

    #[must_use]
    pub fn with_by(mut self, by: impl Into<String>) -> StanzaError {
        self.by = Some(by.into());
        self
    }

    #[must_use]
    pub fn with_app(mut self, app: Element) -> StanzaError {
        self.app = Some(app);
        self
    }

    /// `<error/>` in `jabber:client`, for a c2s stream.
    pub fn to_element(&self) -> Element {
        self.to_element_in(ns::JABBER_CLIENT)
    }

    /// `<error type='..' [by='..']>` in the namespace of the stanza it is a
    /// child of (`jabber:client` or `jabber:server`), holding the condition,
    /// then the text, then the application condition, in the order of the
    /// RFC 6120 §8.3.2 schema.
    pub fn to_element_in(&self, stanza_ns: &str) -> Element {
        let mut el = Element::new("error", stanza_ns).with_attr("type", self.kind.as_str());
        if let Some(by) = &self.by {
            el.set_attr("by", by.as_str());
        }
        el.push(self.condition.to_element());
        if let Some(text) = &self.text {
            el.push(
                Element::new("text", ns::STANZAS)
                    .with_attr("xml:lang", "en")
                    .with_text(text.as_str()),
            );
        }
        if let Some(app) = &self.app {
            el.push(app.clone());
        }
        el
    }

    /// Reads an `<error/>` element (the child of a `type='error'` stanza).
    ///
    /// Liberal in what it accepts from peers, since the error is only
    /// reported onwards: a missing or unknown `type` falls back to the
    /// condition's default, and an unknown condition in the stanzas
    /// namespace reads as `undefined-condition`. `None` when the element is
    /// not `<error/>` in a stanza namespace or has no condition at all.
    pub fn parse(el: &Element) -> Option<StanzaError> {
        if el.name() != "error" || !(el.ns() == ns::JABBER_CLIENT || el.ns() == ns::JABBER_SERVER) {
            return None;
        }
        let cond_el = el
            .children()
            .find(|c| c.ns() == ns::STANZAS && c.name() != "text")?;
        let address = || Some(cond_el.text()).filter(|t| !t.is_empty());
        let condition = match cond_el.name() {
            "gone" => StanzaErrorCondition::Gone(address()),
            "redirect" => StanzaErrorCondition::Redirect(address()),
            name => name
                .parse()
                .unwrap_or(StanzaErrorCondition::UndefinedCondition),
        };
        let kind = el
            .attr("type")
            .and_then(ErrorType::parse)
            .unwrap_or_else(|| condition.default_type());
        Some(StanzaError {
            kind,
            condition,
            text: el.get_child("text", ns::STANZAS).map(Element::text),
            by: el.attr("by").map(str::to_owned),
            app: el.children().find(|c| c.ns() != ns::STANZAS).cloned(),
        })
    }
}

impl From<StanzaErrorCondition> for StanzaError {
    fn from(condition: StanzaErrorCondition) -> Self {
        StanzaError::new(condition)
    }
}

impl From<&JidError> for StanzaError {
    /// `jid-malformed` (RFC 6120 §8.3.3.8), saying which RFC 7622 rule broke:
    /// the JID came from the peer, so the detail discloses nothing new.
    fn from(err: &JidError) -> Self {
        StanzaError::new(StanzaErrorCondition::JidMalformed).with_text(err.to_string())
    }
}

impl From<JidError> for StanzaError {
    fn from(err: JidError) -> Self {
        StanzaError::from(&err)
    }
}

/// The error reply to `stanza` (RFC 6120 §8.3.1): the same element name and
/// namespace, `to` and `from` swapped (either may be absent, and stays absent),
/// the same `id`, `type='error'`, and the `<error/>` child.
///
/// Returns `None`, and the caller sends nothing, when:
/// - `stanza` is itself `type='error'`: answering an error with an error
///   could loop between two entities forever (§8.3.1);
/// - `stanza` is an IQ of type `result`: a response is never answered with
///   another response (§8.2.3);
/// - `stanza` is not a message, presence or IQ in a stanza namespace.
///
/// The original payload is not echoed back, although §8.3.1 allows it
/// (MAY): for an IQ it is useless to the requester, who matches by `id`; for
/// a message or presence it would reflect content, possibly large or private,
/// back across the network for no protocol benefit.
pub fn error_reply(stanza: &Element, err: &StanzaError) -> Option<Element> {
    let kind = StanzaKind::of(stanza)?;
    match stanza.attr("type") {
        Some("error") => return None,
        Some(t) if kind == StanzaKind::Iq && IqType::parse(t) == Some(IqType::Result) => {
            return None
        }
        _ => {}
    }
    let mut reply = Element::new(stanza.name(), stanza.ns());
    if let Some(from) = stanza.attr("from") {
        reply.set_attr("to", from);
    }
    if let Some(to) = stanza.attr("to") {
        reply.set_attr("from", to);
    }
    if let Some(id) = stanza.attr("id") {
        reply.set_attr("id", id);
    }
    reply.set_attr("type", "error");
    reply.push(err.to_element_in(stanza.ns()));
    Some(reply)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chorus_xml::NsContext;
    use StanzaErrorCondition as C;

    /// RFC 6120 §8.3.3, in order, with the type each subsection names first.
    const RFC_TABLE: &[(&str, ErrorType)] = &[
        ("bad-request", ErrorType::Modify),
        ("conflict", ErrorType::Cancel),
        ("feature-not-implemented", ErrorType::Cancel),
        ("forbidden", ErrorType::Auth),
        ("gone", ErrorType::Cancel),
        ("internal-server-error", ErrorType::Cancel),
        ("item-not-found", ErrorType::Cancel),
        ("jid-malformed", ErrorType::Modify),
        ("not-acceptable", ErrorType::Modify),
        ("not-allowed", ErrorType::Cancel),
        ("not-authorized", ErrorType::Auth),
        ("policy-violation", ErrorType::Modify),
        ("recipient-unavailable", ErrorType::Wait),
        ("redirect", ErrorType::Modify),
        ("registration-required", ErrorType::Auth),
        ("remote-server-not-found", ErrorType::Cancel),
        ("remote-server-timeout", ErrorType::Wait),
        ("resource-constraint", ErrorType::Wait),
        ("service-unavailable", ErrorType::Cancel),
        ("subscription-required", ErrorType::Auth),
        ("undefined-condition", ErrorType::Cancel),
        ("unexpected-request", ErrorType::Wait),
    ];

    fn in_stream(el: &Element) -> String {
        let mut out = Vec::new();
        el.write_to(&mut out, &NsContext::stream(ns::JABBER_CLIENT));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_condition_has_the_rfc_default_type() {
        assert_eq!(RFC_TABLE.len(), 22);
        for (name, kind) in RFC_TABLE {
            let cond: StanzaErrorCondition = name.parse().unwrap();
            assert_eq!(cond.as_str(), *name);
            assert_eq!(cond.default_type(), *kind, "{name}");
            assert_eq!(StanzaError::new(cond).kind, *kind, "{name}");
        }
        assert_eq!(
            "no-such".parse::<StanzaErrorCondition>(),
            Err(UnknownCondition("no-such".into()))
        );
    }

    #[test]
    fn error_type_parse_and_invalid() {
        for t in [
            ErrorType::Auth,
            ErrorType::Cancel,
            ErrorType::Continue,
            ErrorType::Modify,
            ErrorType::Wait,
        ] {
            assert_eq!(ErrorType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ErrorType::parse("Cancel"), None);
        assert_eq!(ErrorType::parse(""), None);
    }

    #[test]
    fn minimal_error_serializes_exactly() {
        let el = StanzaError::new(C::ServiceUnavailable).to_element();
        assert_eq!(
            in_stream(&el),
            "<error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
        );
    }

    #[test]
    fn full_error_serializes_exactly() {
        let el = StanzaError::new(C::Redirect(Some("xmpp:room@conf.example.net".into())))
            .with_by("example.net")
            .with_text("moved")
            .with_app(Element::new("blocked", ns::BLOCKING_ERRORS))
            .to_element();
        assert_eq!(
            in_stream(&el),
            "<error type='modify' by='example.net'>\
             <redirect xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:room@conf.example.net</redirect>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>moved</text>\
             <blocked xmlns='urn:xmpp:blocking:errors'/></error>"
        );
    }

    #[test]
    fn server_namespace_error() {
        let el = StanzaError::new(C::RemoteServerTimeout).to_element_in(ns::JABBER_SERVER);
        assert_eq!(el.ns(), ns::JABBER_SERVER);
        let mut out = Vec::new();
        el.write_to(&mut out, &NsContext::stream(ns::JABBER_SERVER));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<error type='wait'>\
             <remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
        );
    }

    #[test]
    fn parse_round_trips() {
        let cases = [
            StanzaError::new(C::BadRequest),
            StanzaError::new(C::Gone(Some("xmpp:new@example.org".into()))),
            StanzaError::new(C::Gone(None)).with_text("bye"),
            StanzaError::new(C::Forbidden)
                .with_type(ErrorType::Cancel)
                .with_by("muc.example.org")
                .with_app(Element::new("blocked", ns::BLOCKING_ERRORS)),
        ];
        for e in cases {
            assert_eq!(StanzaError::parse(&e.to_element()), Some(e.clone()));
            assert_eq!(
                StanzaError::parse(&e.to_element_in(ns::JABBER_SERVER)),
                Some(e.clone())
            );
        }
        for (name, _) in RFC_TABLE {
            let e = StanzaError::new(name.parse().unwrap()).with_text("t");
            assert_eq!(StanzaError::parse(&e.to_element()), Some(e));
        }
    }

    #[test]
    fn parse_invalid_inputs() {
        // Wrong element or namespace.
        let wrong_ns =
            Element::new("error", ns::STREAM).with_child(Element::new("conflict", ns::STANZAS));
        assert_eq!(StanzaError::parse(&wrong_ns), None);
        let wrong_name = Element::new("err", ns::JABBER_CLIENT)
            .with_child(Element::new("conflict", ns::STANZAS));
        assert_eq!(StanzaError::parse(&wrong_name), None);
        // No condition.
        let empty = Element::new("error", ns::JABBER_CLIENT).with_attr("type", "cancel");
        assert_eq!(StanzaError::parse(&empty), None);
        // Unknown type: the condition's default.
        let bad_type = Element::new("error", ns::JABBER_CLIENT)
            .with_attr("type", "explode")
            .with_child(Element::new("not-allowed", ns::STANZAS));
        assert_eq!(
            StanzaError::parse(&bad_type),
            Some(StanzaError::new(C::NotAllowed))
        );
        // Unknown condition: undefined-condition, keeping the given type.
        let unknown = Element::new("error", ns::JABBER_CLIENT)
            .with_attr("type", "wait")
            .with_child(Element::new("from-the-future", ns::STANZAS));
        assert_eq!(
            StanzaError::parse(&unknown),
            Some(StanzaError::new(C::UndefinedCondition).with_type(ErrorType::Wait))
        );
    }

    #[test]
    fn jid_error_is_jid_malformed_with_detail() {
        let jid_err = "@example.com".parse::<chorus_jid::Jid>().unwrap_err();
        let e = StanzaError::from(&jid_err);
        assert_eq!(e.condition, C::JidMalformed);
        assert_eq!(e.kind, ErrorType::Modify);
        assert_eq!(e.text.as_deref(), Some("empty localpart"));
        assert_eq!(e.condition.as_str(), jid_err.condition());
    }

    #[test]
    fn display_is_type_condition_text() {
        assert_eq!(
            StanzaError::new(C::ItemNotFound).to_string(),
            "cancel item-not-found"
        );
        assert_eq!(
            StanzaError::new(C::BadRequest)
                .with_text("no id")
                .to_string(),
            "modify bad-request: no id"
        );
    }

    fn iq(ty: &str) -> Element {
        Element::new("iq", ns::JABBER_CLIENT)
            .with_attr("from", "juliet@example.com/balcony")
            .with_attr("to", "romeo@example.net/orchard")
            .with_attr("id", "q1")
            .with_attr("type", ty)
            .with_child(Element::new("query", ns::VERSION))
    }

    #[test]
    fn error_reply_swaps_addresses_keeps_id_drops_payload() {
        let reply = error_reply(&iq("get"), &StanzaError::new(C::ServiceUnavailable)).unwrap();
        assert_eq!(
            in_stream(&reply),
            "<iq to='juliet@example.com/balcony' from='romeo@example.net/orchard' id='q1' type='error'>\
             <error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
    }

    #[test]
    fn error_reply_with_absent_addresses() {
        let msg = Element::new("message", ns::JABBER_CLIENT)
            .with_attr("to", "romeo@example.net")
            .with_child(Element::new("body", ns::JABBER_CLIENT).with_text("secret"));
        let reply = error_reply(&msg, &StanzaError::new(C::ItemNotFound)).unwrap();
        assert_eq!(reply.attr("to"), None);
        assert_eq!(reply.attr("from"), Some("romeo@example.net"));
        assert_eq!(reply.attr("id"), None);
        assert_eq!(reply.attr("type"), Some("error"));
        assert_eq!(reply.get_child("body", ns::JABBER_CLIENT), None);
        assert_eq!(reply.children().count(), 1);
    }

    #[test]
    fn error_reply_keeps_the_stanza_namespace() {
        let pres = Element::new("presence", ns::JABBER_SERVER)
            .with_attr("from", "a@x")
            .with_attr("to", "b@y")
            .with_attr("type", "subscribe");
        let reply = error_reply(&pres, &StanzaError::new(C::RemoteServerNotFound)).unwrap();
        assert!(reply.is("presence", ns::JABBER_SERVER));
        assert!(reply
            .get_child("error", ns::JABBER_SERVER)
            .is_some_and(|e| e.attr("type") == Some("cancel")));
    }

    #[test]
    fn no_error_reply_to_an_error_or_a_result() {
        let err = StanzaError::new(C::BadRequest);
        assert_eq!(error_reply(&iq("error"), &err), None);
        assert_eq!(error_reply(&iq("result"), &err), None);
        let msg = Element::new("message", ns::JABBER_CLIENT).with_attr("type", "error");
        assert_eq!(error_reply(&msg, &err), None);
        let pres = Element::new("presence", ns::JABBER_CLIENT).with_attr("type", "error");
        assert_eq!(error_reply(&pres, &err), None);
    }

    #[test]
    fn no_error_reply_to_a_non_stanza() {
        let err = StanzaError::new(C::BadRequest);
        assert_eq!(error_reply(&Element::new("r", ns::SM), &err), None);
        assert_eq!(
            error_reply(&Element::new("message", ns::STREAM), &err),
            None
        );
    }
}
