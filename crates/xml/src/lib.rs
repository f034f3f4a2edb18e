//! Chorus's one XML layer: every byte a peer sends passes through here.
//!
//! - [`Element`] is the tree every stanza lives in; stanzas are always
//!   re-serialized from it ([`Element::write_to`]), never forwarded as raw bytes.
//! - [`StreamParser`] turns a byte stream, fed in chunks of any size, into
//!   [`StreamEvent`]s: the stream header, each complete top-level element, and the
//!   stream end. It enforces RFC 6120 §11.1 restricted XML and the [`Limits`] while
//!   bytes arrive, so memory stays bounded by the limits whatever the peer sends.
//! - Every rejection is an [`XmlError`] whose [`XmlError::condition`] names the
//!   RFC 6120 §4.9.3 stream error to send.

mod element;
mod error;
mod parser;
mod scanner;
mod serialize;

pub use element::{Element, Node};
pub use error::{StreamErrorKind, XmlError};
pub use parser::{Limits, StreamEvent, StreamHeader, StreamParser};
pub use serialize::{escape_attr, escape_text, NsContext};

/// The namespace of `xml:` prefixed attributes (`xml:lang`), bound by the XML
/// Namespaces recommendation and never declared.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// RFC 6120 §4.2 stream namespace, conventionally prefixed `stream:`.
pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";
