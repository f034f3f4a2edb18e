//! The server's integration tests, in one binary: one link instead of a dozen
//! keeps the test build small on disk and quick on two cores.
#![allow(clippy::unwrap_used)]

mod common;

mod acme;
mod adhoc;
mod binary;
mod blocking;
mod bosh;
mod c2s;
mod carbons;
mod component;
mod data_dir;
mod declared;
mod exact_answers;
mod extdisco;
mod hooks;
// The hostile-input suite lives at the top of the repository.
#[path = "../../../../tests/hostile/mod.rs"]
mod hostile;
// The chaos soak lives at the top of the repository (tests/chaos/).
#[path = "../../../../tests/chaos/mod.rs"]
mod chaos;
mod im;
mod mam;
mod metrics;
mod modules;
mod muc;
mod pep;
mod piefxis;
mod pubsub_service;
mod push;
mod routes;
mod s2s;
mod sm;
mod stream_errors;
mod tree;
mod upload;
mod websocket;
