//! Parser rejections and the RFC 6120 §4.9.3 stream error each one maps to.

/// The stream error conditions the XML layer can produce. `chorus-proto` maps
/// these onto its full stream error enum; this crate cannot depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamErrorKind {
    /// §4.9.3.18: comments, processing instructions, DTDs, entity references.
    RestrictedXml,
    /// §4.9.3.13: not XML, bad UTF-8, forbidden characters, mismatched names.
    NotWellFormed,
    /// §4.9.3.2: a prefix with no namespace declaration in scope.
    BadNamespacePrefix,
    /// §4.9.3.22: an XML declaration naming anything but UTF-8.
    UnsupportedEncoding,
    /// §4.9.3.14: a configured limit (size, depth, attributes, ...) exceeded.
    PolicyViolation,
    /// §4.9.3.1: well-formed XML that is not an XMPP stream (text at stream level).
    BadFormat,
}

impl StreamErrorKind {
    /// The defined-condition element name, as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamErrorKind::RestrictedXml => "restricted-xml",
            StreamErrorKind::NotWellFormed => "not-well-formed",
            StreamErrorKind::BadNamespacePrefix => "bad-namespace-prefix",
            StreamErrorKind::UnsupportedEncoding => "unsupported-encoding",
            StreamErrorKind::PolicyViolation => "policy-violation",
            StreamErrorKind::BadFormat => "bad-format",
        }
    }
}

/// Why the parser rejected the stream. After any error the stream is dead:
/// the caller sends the stream error and closes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", kind.as_str())]
pub struct XmlError {
    pub kind: StreamErrorKind,
    /// Human-readable detail for logs and the stream error's `<text/>`.
    pub detail: String,
}

impl XmlError {
    pub(crate) fn new(kind: StreamErrorKind, detail: impl Into<String>) -> Self {
        XmlError {
            kind,
            detail: detail.into(),
        }
    }

    /// The RFC 6120 §4.9.3 condition to send.
    pub fn condition(&self) -> StreamErrorKind {
        self.kind
    }
}
