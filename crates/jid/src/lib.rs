//! XMPP addresses (JIDs) as RFC 7622 defines them.
//!
//! Every JID in Chorus is parsed here once, at the edge, and carried in
//! normalized form afterwards: the localpart through the PRECIS
//! UsernameCaseMapped profile, the resourcepart through OpaqueString (both from
//! the `precis-profiles` crate, never hand-rolled), the domainpart through IDNA
//! to its Unicode form. Comparing two JIDs is then comparing two strings.
//!
//! - [`Jid`] is any JID; [`BareJid`] never has a resource and [`FullJid`]
//!   always has one, so the form is checked by the compiler.
//! - [`JidError`] says which rule failed; on the wire every failure is the
//!   `jid-malformed` stanza error ([`JidError::condition`]).

mod error;
mod jid;
mod parts;

pub use error::{JidError, PrecisError};
pub use jid::{BareJid, FullJid, Jid};
