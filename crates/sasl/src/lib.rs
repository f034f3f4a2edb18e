//! Sans-I/O SASL for XMPP (RFC 6120 §6): SCRAM-SHA-1, SCRAM-SHA-256 and
//! their -PLUS channel binding variants (RFC 5802, RFC 7677, RFC 5056,
//! RFC 9266), and PLAIN (RFC 4616), both server and client sides.
//!
//! Nothing here reads a socket or a database: each step takes bytes and
//! returns bytes, and the account lookup happens *between* steps, in the
//! caller, so it can be asynchronous. Errors are [`SaslError`] values whose
//! [`SaslError::condition`] is the RFC 6120 §6.5 `<failure/>` child.
//!
//! **Architecture Invariant:** passwords are never stored. Storage keeps one
//! [`ScramCredentials`] per [`ScramHash`]; PLAIN is verified against them.
//!
//! **Authzid:** the crate returns the requested authorization identity but
//! never judges it, because it does not know the domain. The caller accepts
//! it only if absent or equal to the authenticated bare JID, and otherwise
//! fails with [`SaslError::InvalidAuthzid`].
//!
//! A whole SCRAM exchange, both sides in one process:
//!
//! ```
//! use chorus_sasl::*;
//!
//! // Registration: storage keeps this, never the password.
//! let stored = ScramCredentials::derive("pencil", ScramHash::Sha256, DEFAULT_ITERATIONS)?;
//!
//! let mut client = ScramClient::new(Mechanism::ScramSha256, "user", "pencil", None)?;
//! let mut server = ScramServer::new(Mechanism::ScramSha256, ChannelBindingData::none(), false);
//!
//! let first = server.handle_client_first(&client.client_first())?;
//! let creds = (first.username == "user").then_some(&stored); // the account lookup
//! let challenge = server.server_first(creds)?;
//! let response = client.handle_server_first(&challenge)?;
//! let (success, outcome) = server.handle_client_final(&response)?;
//! client.handle_server_final(&success)?;
//! assert_eq!(outcome.username, "user");
//! # Ok::<(), SaslError>(())
//! ```
//!
//! Code map:
//! - `mechanism`: [`Mechanism`] names and [`ScramHash`].
//! - `credentials`: [`ScramCredentials`] (what storage keeps) and
//!   [`SaltedPassword`] (what a client may cache).
//! - `channel_binding`: [`ChannelBindingData`] from the TLS layer.
//! - `scram_server` / `scram_client`: the two SCRAM state machines, over the
//!   parsers in `scram_message`.
//! - `plain`: PLAIN parse / verify, and [`plain_message`] for clients.
//! - `ht`: the HT token mechanisms of XEP-0484 (FAST), [`HtRequest`].
//! - `payload`: the base64 of the XML elements.
//! - `saslprep`, `crypto`: RFC 4013 preparation and the RFC 5802 primitives.

mod channel_binding;
mod credentials;
mod crypto;
mod error;
mod ht;
mod mechanism;
mod payload;
mod plain;
mod saslprep;
mod scram_client;
mod scram_message;
mod scram_server;

pub use channel_binding::{ChannelBindingData, ChannelBindingType};
pub use credentials::{SaltedPassword, ScramCredentials, DEFAULT_ITERATIONS, SALT_LEN};
pub use error::{Condition, SaslError};
pub use ht::{ht_client_message, seal, server_key, token_hash, HtMechanism, HtRequest, NewToken};
pub use mechanism::{Mechanism, ScramHash};
pub use payload::{decode_payload, encode_payload};
pub use plain::{plain_message, verify_plain, PlainOutcome, PlainRequest};
pub use scram_client::{ScramClient, MAX_CLIENT_ITERATIONS};
pub use scram_server::{ClientFirst, ScramOutcome, ScramServer};
