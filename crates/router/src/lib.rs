//! Sessions and routing between local sessions.
//!
//! - [`SessionTable`]: bound sessions by bare JID, a shared `DashMap` that
//!   outlives the `sessions` actor, so routing never waits on a mailbox and a
//!   crashed `sessions` actor loses nothing.
//! - [`SessionsActor`]: owns registration (resource cap, replacement with
//!   `conflict`), off the hot path.
//! - [`Router::route`]: runs in the sender's actor (as in ejabberd) and
//!   applies RFC 6120 §8 and RFC 6121 §8.5 delivery rules; messages are
//!   archived there too (XEP-0313, `archive.rs`).

mod archive;
mod blocking;
mod carbons;
mod presence;
mod route;
mod sessions;
mod table;

pub use archive::{archivable, ArchiveOptions};
pub use presence::item_element;
pub use route::{Outcome, Router};
pub use sessions::{RegisterError, SessionsActor, SessionsMsg};
pub use table::{Session, SessionSink, SessionTable};
