//! Sessions, the route table, and routing.
//!
//! - [`Routes`]: domain -> destination (local accounts and server, hosted
//!   services, and the remote handler for every other domain).
//! - [`SessionTable`]: bound sessions by bare JID, a shared `DashMap` that
//!   outlives the `sessions` actor, so routing never waits on a mailbox and a
//!   crashed `sessions` actor loses nothing.
//! - [`SessionsActor`]: owns registration (resource cap, replacement with
//!   `conflict`), off the hot path.
//! - [`Router::route`]: the one call every origin routes through; runs in
//!   the sender's actor (as in ejabberd) and applies RFC 6120 §8 and RFC
//!   6121 §8.5 delivery rules, calling the feature modules' hooks where
//!   they act (`hooks.rs`: block lists, archiving, carbons, offline storage).
//! - [`Router::request`]: an IQ the server sends and awaits (`iq.rs`).

mod hooks;
mod iq;
mod presence;
mod route;
mod routes;
mod sessions;
mod table;

pub use hooks::{HookState, Hooks, NoHooks};
pub use iq::IqError;
pub use presence::item_element;
pub use route::{message_targets, Outcome, Router};
pub use routes::{Destination, RouteError, Routes, Service};
pub use sessions::{RegisterError, SessionsActor, SessionsMsg};
pub use table::{Session, SessionSink, SessionTable};
