//! RFC 6120 §4.9 stream errors: the one way a stream ends because of a fault.
//!
//! A stream error is unrecoverable: the sender writes `<stream:error/>`, then
//! `</stream:stream>`, then closes. [`StreamError`] has one variant per
//! §4.9.3 condition so that every place that ends a stream names the reason
//! as a type, and the wire form is built in exactly one place.

use std::str::FromStr;

use chorus_xml::{Element, StreamErrorKind};

use crate::ns;
use crate::UnknownCondition;

/// A defined stream error condition (RFC 6120 §4.9.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum StreamError {
    /// §4.9.3.1: XML that cannot be processed as XMPP.
    #[error("bad-format")]
    BadFormat,
    /// §4.9.3.2: an unsupported namespace prefix, or none where one is needed.
    #[error("bad-namespace-prefix")]
    BadNamespacePrefix,
    /// §4.9.3.3: a new stream replaces this one (same resource, or s2s).
    #[error("conflict")]
    Conflict,
    /// §4.9.3.4: the peer was silent too long.
    #[error("connection-timeout")]
    ConnectionTimeout,
    /// §4.9.3.5: the `to` domain is no longer served here.
    #[error("host-gone")]
    HostGone,
    /// §4.9.3.6: the `to` domain is not served here.
    #[error("host-unknown")]
    HostUnknown,
    /// §4.9.3.7: a stanza between servers lacks `to` or `from`.
    #[error("improper-addressing")]
    ImproperAddressing,
    /// §4.9.3.8: our fault; the peer cannot fix it.
    #[error("internal-server-error")]
    InternalServerError,
    /// §4.9.3.9: a `from` the peer is not authorized to use.
    #[error("invalid-from")]
    InvalidFrom,
    /// §4.9.3.10: the stream or content namespace is wrong.
    #[error("invalid-namespace")]
    InvalidNamespace,
    /// §4.9.3.11: XML that fails validation (when validating).
    #[error("invalid-xml")]
    InvalidXml,
    /// §4.9.3.12: data sent before authentication that requires it.
    #[error("not-authorized")]
    NotAuthorized,
    /// §4.9.3.13: not well-formed XML.
    #[error("not-well-formed")]
    NotWellFormed,
    /// §4.9.3.14: a local policy (a size or rate limit) was broken.
    #[error("policy-violation")]
    PolicyViolation,
    /// §4.9.3.15: a server could not reach the remote server it needed.
    #[error("remote-connection-failed")]
    RemoteConnectionFailed,
    /// §4.9.3.16: security or configuration changed; reconnect.
    #[error("reset")]
    Reset,
    /// §4.9.3.17: the server lacks the resources to serve the stream.
    #[error("resource-constraint")]
    ResourceConstraint,
    /// §4.9.3.18: comments, processing instructions, DTDs or entity references.
    #[error("restricted-xml")]
    RestrictedXml,
    /// §4.9.3.19: reconnect to this host instead: `host`, `host:port` or
    /// `[v6]:port`, written as the condition element's character data.
    #[error("see-other-host: {0}")]
    SeeOtherHost(String),
    /// §4.9.3.20: the server is shutting down.
    #[error("system-shutdown")]
    SystemShutdown,
    /// §4.9.3.21: none of the others; usually with an application condition.
    #[error("undefined-condition")]
    UndefinedCondition,
    /// §4.9.3.22: an encoding other than UTF-8.
    #[error("unsupported-encoding")]
    UnsupportedEncoding,
    /// §4.9.3.23: a mandatory stream feature the peer does not offer.
    #[error("unsupported-feature")]
    UnsupportedFeature,
    /// §4.9.3.24: a first-level child the server does not understand.
    #[error("unsupported-stanza-type")]
    UnsupportedStanzaType,
    /// §4.9.3.25: a stream `version` the server does not support.
    #[error("unsupported-version")]
    UnsupportedVersion,
}

impl StreamError {
    /// Every condition's name, in RFC 6120 §4.9.3 order: what a counter of
    /// stream errors by condition starts with, each at zero.
    pub const CONDITIONS: [&'static str; 25] = [
        "bad-format",
        "bad-namespace-prefix",
        "conflict",
        "connection-timeout",
        "host-gone",
        "host-unknown",
        "improper-addressing",
        "internal-server-error",
        "invalid-from",
        "invalid-namespace",
        "invalid-xml",
        "not-authorized",
        "not-well-formed",
        "policy-violation",
        "remote-connection-failed",
        "reset",
        "resource-constraint",
        "restricted-xml",
        "see-other-host",
        "system-shutdown",
        "undefined-condition",
        "unsupported-encoding",
        "unsupported-feature",
        "unsupported-stanza-type",
        "unsupported-version",
    ];

    /// The condition element's name, as written on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamError::BadFormat => "bad-format",
            StreamError::BadNamespacePrefix => "bad-namespace-prefix",
            StreamError::Conflict => "conflict",
            StreamError::ConnectionTimeout => "connection-timeout",
            StreamError::HostGone => "host-gone",
            StreamError::HostUnknown => "host-unknown",
            StreamError::ImproperAddressing => "improper-addressing",
            StreamError::InternalServerError => "internal-server-error",
            StreamError::InvalidFrom => "invalid-from",
            StreamError::InvalidNamespace => "invalid-namespace",
            StreamError::InvalidXml => "invalid-xml",
            StreamError::NotAuthorized => "not-authorized",
            StreamError::NotWellFormed => "not-well-formed",
            StreamError::PolicyViolation => "policy-violation",
            StreamError::RemoteConnectionFailed => "remote-connection-failed",
            StreamError::Reset => "reset",
            StreamError::ResourceConstraint => "resource-constraint",
            StreamError::RestrictedXml => "restricted-xml",
            StreamError::SeeOtherHost(_) => "see-other-host",
            StreamError::SystemShutdown => "system-shutdown",
            StreamError::UndefinedCondition => "undefined-condition",
            StreamError::UnsupportedEncoding => "unsupported-encoding",
            StreamError::UnsupportedFeature => "unsupported-feature",
            StreamError::UnsupportedStanzaType => "unsupported-stanza-type",
            StreamError::UnsupportedVersion => "unsupported-version",
        }
    }

    /// `<stream:error>` with this condition and an optional human-readable
    /// `<text xml:lang='en'/>`. The element is in the stream namespace, so a
    /// serializer in stream context writes it with the `stream:` prefix.
    pub fn to_element(&self, text: Option<&str>) -> Element {
        self.to_element_with(text, None)
    }

    /// Like [`StreamError::to_element`], plus an application-specific condition
    /// element in its own namespace (RFC 6120 §4.9.4), such as XEP-0198's
    /// `<handled-count-too-high/>`, placed last as the schema requires.
    pub fn to_element_with(&self, text: Option<&str>, app: Option<Element>) -> Element {
        let mut condition = Element::new(self.as_str(), ns::STREAMS);
        if let StreamError::SeeOtherHost(host) = self {
            condition.push_text(host.as_str());
        }
        let mut error = Element::new("error", ns::STREAM).with_child(condition);
        if let Some(text) = text {
            error.push(
                Element::new("text", ns::STREAMS)
                    .with_attr("xml:lang", "en")
                    .with_text(text),
            );
        }
        if let Some(app) = app {
            error.push(app);
        }
        error
    }

    /// Reads a received `<stream:error/>`: its first child in the streams
    /// namespace other than `<text/>` is the condition. An unknown condition
    /// reads as `undefined-condition` (a newer peer may define more); `None`
    /// when the element is not a stream error or carries no condition.
    pub fn parse(el: &Element) -> Option<StreamError> {
        if !el.is("error", ns::STREAM) {
            return None;
        }
        let cond = el
            .children()
            .find(|c| c.ns() == ns::STREAMS && c.name() != "text")?;
        Some(match cond.name() {
            "see-other-host" => StreamError::SeeOtherHost(cond.text()),
            name => name.parse().unwrap_or(StreamError::UndefinedCondition),
        })
    }
}

impl FromStr for StreamError {
    type Err = UnknownCondition;

    /// Parses a condition name. `see-other-host` yields an empty host: the
    /// host is element content, which [`StreamError::parse`] reads.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "bad-format" => StreamError::BadFormat,
            "bad-namespace-prefix" => StreamError::BadNamespacePrefix,
            "conflict" => StreamError::Conflict,
            "connection-timeout" => StreamError::ConnectionTimeout,
            "host-gone" => StreamError::HostGone,
            "host-unknown" => StreamError::HostUnknown,
            "improper-addressing" => StreamError::ImproperAddressing,
            "internal-server-error" => StreamError::InternalServerError,
            "invalid-from" => StreamError::InvalidFrom,
            "invalid-namespace" => StreamError::InvalidNamespace,
            "invalid-xml" => StreamError::InvalidXml,
            "not-authorized" => StreamError::NotAuthorized,
            "not-well-formed" => StreamError::NotWellFormed,
            "policy-violation" => StreamError::PolicyViolation,
            "remote-connection-failed" => StreamError::RemoteConnectionFailed,
            "reset" => StreamError::Reset,
            "resource-constraint" => StreamError::ResourceConstraint,
            "restricted-xml" => StreamError::RestrictedXml,
            "see-other-host" => StreamError::SeeOtherHost(String::new()),
            "system-shutdown" => StreamError::SystemShutdown,
            "undefined-condition" => StreamError::UndefinedCondition,
            "unsupported-encoding" => StreamError::UnsupportedEncoding,
            "unsupported-feature" => StreamError::UnsupportedFeature,
            "unsupported-stanza-type" => StreamError::UnsupportedStanzaType,
            "unsupported-version" => StreamError::UnsupportedVersion,
            other => return Err(UnknownCondition(other.to_owned())),
        })
    }
}

impl From<StreamErrorKind> for StreamError {
    fn from(kind: StreamErrorKind) -> Self {
        match kind {
            StreamErrorKind::RestrictedXml => StreamError::RestrictedXml,
            StreamErrorKind::NotWellFormed => StreamError::NotWellFormed,
            StreamErrorKind::BadNamespacePrefix => StreamError::BadNamespacePrefix,
            StreamErrorKind::UnsupportedEncoding => StreamError::UnsupportedEncoding,
            StreamErrorKind::PolicyViolation => StreamError::PolicyViolation,
            StreamErrorKind::BadFormat => StreamError::BadFormat,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chorus_xml::NsContext;

    #[test]
    fn conditions_name_every_variant_once() {
        // Exhaustive: a new variant does not compile here until it is
        // counted, and the count below then fails until CONDITIONS lists it.
        fn variants() -> usize {
            let all = |e: &StreamError| match e {
                StreamError::BadFormat
                | StreamError::BadNamespacePrefix
                | StreamError::Conflict
                | StreamError::ConnectionTimeout
                | StreamError::HostGone
                | StreamError::HostUnknown
                | StreamError::ImproperAddressing
                | StreamError::InternalServerError
                | StreamError::InvalidFrom
                | StreamError::InvalidNamespace
                | StreamError::InvalidXml
                | StreamError::NotAuthorized
                | StreamError::NotWellFormed
                | StreamError::PolicyViolation
                | StreamError::RemoteConnectionFailed
                | StreamError::Reset
                | StreamError::ResourceConstraint
                | StreamError::RestrictedXml
                | StreamError::SeeOtherHost(_)
                | StreamError::SystemShutdown
                | StreamError::UndefinedCondition
                | StreamError::UnsupportedEncoding
                | StreamError::UnsupportedFeature
                | StreamError::UnsupportedStanzaType
                | StreamError::UnsupportedVersion => 25,
            };
            all(&StreamError::Reset)
        }
        assert_eq!(StreamError::CONDITIONS.len(), variants());
        let mut seen = std::collections::HashSet::new();
        for c in StreamError::CONDITIONS {
            assert_eq!(c.parse::<StreamError>().unwrap().as_str(), c);
            assert!(seen.insert(c), "{c} listed twice");
        }
    }

    /// Every condition, in RFC 6120 §4.9.3 order.
    fn all() -> Vec<StreamError> {
        vec![
            StreamError::BadFormat,
            StreamError::BadNamespacePrefix,
            StreamError::Conflict,
            StreamError::ConnectionTimeout,
            StreamError::HostGone,
            StreamError::HostUnknown,
            StreamError::ImproperAddressing,
            StreamError::InternalServerError,
            StreamError::InvalidFrom,
            StreamError::InvalidNamespace,
            StreamError::InvalidXml,
            StreamError::NotAuthorized,
            StreamError::NotWellFormed,
            StreamError::PolicyViolation,
            StreamError::RemoteConnectionFailed,
            StreamError::Reset,
            StreamError::ResourceConstraint,
            StreamError::RestrictedXml,
            StreamError::SeeOtherHost("example.net:5223".into()),
            StreamError::SystemShutdown,
            StreamError::UndefinedCondition,
            StreamError::UnsupportedEncoding,
            StreamError::UnsupportedFeature,
            StreamError::UnsupportedStanzaType,
            StreamError::UnsupportedVersion,
        ]
    }

    fn in_stream(el: &Element) -> String {
        let mut out = Vec::new();
        el.write_to(&mut out, &NsContext::stream(ns::JABBER_CLIENT));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn there_are_25_conditions_with_distinct_names() {
        let names: std::collections::HashSet<_> = all().iter().map(StreamError::as_str).collect();
        assert_eq!(names.len(), 25);
    }

    /// The exact bytes of each, in the same order as [`all`], written out
    /// rather than computed so that a wrong name cannot pass.
    #[test]
    fn every_condition_serializes_exactly() {
        let expected = [
            "<stream:error><bad-format xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><bad-namespace-prefix xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><host-gone xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><improper-addressing xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><invalid-namespace xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><invalid-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><reset xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>example.net:5223</see-other-host></stream:error>",
            "<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><unsupported-encoding xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><unsupported-feature xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><unsupported-stanza-type xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<stream:error><unsupported-version xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
        ];
        let all = all();
        assert_eq!(all.len(), expected.len());
        for (e, xml) in all.iter().zip(expected) {
            assert_eq!(in_stream(&e.to_element(None)), xml);
        }
    }

    #[test]
    fn text_is_english_and_escaped() {
        let el = StreamError::PolicyViolation.to_element(Some("stanza > 64 KiB & more"));
        assert_eq!(
            in_stream(&el),
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>\
             stanza &gt; 64 KiB &amp; more</text></stream:error>"
        );
    }

    #[test]
    fn application_condition_comes_last() {
        let app = Element::new("handled-count-too-high", ns::SM)
            .with_attr("h", "10")
            .with_attr("send-count", "8");
        let el = StreamError::UndefinedCondition.to_element_with(Some("h too high"), Some(app));
        assert_eq!(
            in_stream(&el),
            "<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>h too high</text>\
             <handled-count-too-high xmlns='urn:xmpp:sm:3' h='10' send-count='8'/>\
             </stream:error>"
        );
    }

    #[test]
    fn from_str_inverts_as_str() {
        for e in all() {
            let parsed: StreamError = e.as_str().parse().unwrap();
            match e {
                StreamError::SeeOtherHost(_) => {
                    assert_eq!(parsed, StreamError::SeeOtherHost(String::new()))
                }
                _ => assert_eq!(parsed, e),
            }
        }
        assert_eq!(
            "no-such-condition".parse::<StreamError>(),
            Err(UnknownCondition("no-such-condition".into()))
        );
    }

    #[test]
    fn parse_round_trips_every_condition() {
        for e in all() {
            assert_eq!(
                StreamError::parse(&e.to_element(Some("why"))),
                Some(e.clone())
            );
        }
    }

    #[test]
    fn parse_rejects_and_tolerates() {
        // Not a stream error at all.
        assert_eq!(
            StreamError::parse(&Element::new("error", ns::JABBER_CLIENT)),
            None
        );
        // A stream error with only text and no condition.
        let no_cond = Element::new("error", ns::STREAM)
            .with_child(Element::new("text", ns::STREAMS).with_text("x"));
        assert_eq!(StreamError::parse(&no_cond), None);
        // A condition from a newer spec reads as undefined-condition.
        let newer = Element::new("error", ns::STREAM)
            .with_child(Element::new("from-the-future", ns::STREAMS));
        assert_eq!(
            StreamError::parse(&newer),
            Some(StreamError::UndefinedCondition)
        );
    }

    #[test]
    fn xml_layer_kinds_map_to_the_same_condition() {
        let kinds = [
            StreamErrorKind::RestrictedXml,
            StreamErrorKind::NotWellFormed,
            StreamErrorKind::BadNamespacePrefix,
            StreamErrorKind::UnsupportedEncoding,
            StreamErrorKind::PolicyViolation,
            StreamErrorKind::BadFormat,
        ];
        for k in kinds {
            assert_eq!(StreamError::from(k).as_str(), k.as_str());
        }
    }

    #[test]
    fn display_names_the_condition() {
        assert_eq!(StreamError::Conflict.to_string(), "conflict");
        assert_eq!(
            StreamError::SeeOtherHost("[2001:db8::1]:5222".into()).to_string(),
            "see-other-host: [2001:db8::1]:5222"
        );
    }
}
