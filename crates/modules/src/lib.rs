//! Feature modules, one file per XEP (Prosody's `mod_*.lua`, ejabberd's
//! `mod_*.erl`), and the API they are written against.
//!
//! A module declares what it is once, as data ([`ModuleInfo`]): the XEPs it
//! implements, the IQ payloads it answers and who may send them, the disco
//! features it adds to the server and to accounts, and the stream features
//! it offers. `docs/XEPS.md`, `chorus.doap`, disco#info, the XEP-0115 hash
//! and the stream features are all derived from these declarations, so
//! nothing is advertised that no module declares.
//!
//! [`Modules`] is the list the server runs. It is the router's handler for
//! the local server itself (installed by [`Modules::install`]): an IQ addressed to a
//! hosted domain, or on an account's behalf to its bare JID (RFC 6121
//! §8.5.2.1.3), is dispatched by payload, whatever its origin. Payloads no
//! module claims get `service-unavailable` (RFC 6120 §8.4); a request IQ
//! with no payload or two gets `bad-request` (§8.2.3); a handler that panics
//! is caught: the sender gets `internal-server-error`, the connection stays
//! up, and the panic is logged and counted.

mod avatar;
mod blocking;
mod bucket;
mod carbons;
mod contact;
mod disco;
mod extdisco;
mod forms;
mod last;
mod mam;
mod muc;
mod offline;
mod ping;
mod private;
mod pubsub;
mod push;
pub mod register;
mod roster;
mod rsm;
mod time;
pub mod upload;
mod vcard;
mod version;

mod api;
mod registry;

pub use api::*;
pub use disco::{caps_ver, caps_ver_with_forms};
pub use mam::account_archive_metadata;
pub use muc::{MucAdminError, MucRooms, RoomDetails, RoomSummary};
pub use pubsub::{pep_config_form, pep_config_from_form};
pub use registry::{InstallError, Modules};
