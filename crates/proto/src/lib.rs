//! The XMPP vocabulary every other Chorus crate shares, with no I/O.
//!
//! - [`ns`]: every namespace URI, one constant each.
//! - [`StreamError`]: the RFC 6120 §4.9.3 stream errors and their wire form.
//! - [`StanzaError`], [`StanzaErrorCondition`], [`ErrorType`]: the RFC 6120
//!   §8.3 stanza errors; [`error_reply`] builds the reply to a refused stanza.
//! - [`StanzaKind`], [`IqType`], [`MessageType`], [`PresenceType`]: the stanza
//!   kinds and their `type` attributes with the RFC defaults applied.
//!
//! **Architecture Invariant:** this crate does no I/O and holds no state; it
//! only turns protocol facts into types and elements, so it is tested entirely
//! by unit tests.

pub mod ns;
mod stanza;
mod stanza_error;
mod stream_error;

pub use stanza::{IqType, MessageType, PresenceType, StanzaKind};
pub use stanza_error::{error_reply, ErrorType, StanzaError, StanzaErrorCondition};
pub use stream_error::StreamError;

/// A condition name that no RFC 6120 condition has (from `FromStr`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown condition {0:?}")]
pub struct UnknownCondition(pub String);
