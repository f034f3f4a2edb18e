//! The three actors of one client connection, and how they are started.
//!
//! A connection is a one_for_all group `conn-<id>` under its port's `conns`
//! supervisor (see `chorus-supervisor` groups), and nothing is restarted.
//! c2s is the group's significant member: its exit ends the connection.
//! Socket and receiver are insignificant and monitored by c2s, which ends
//! itself when they go, unless its session is resumable (XEP-0198): it then
//! stays, detached, until a new connection resumes it or the timeout passes.
//!
//! - [`socket`]: owns the write half; a bounded outbound queue.
//! - [`receiver`]: owns the read half and the `chorus-xml` parser; hands each
//!   complete element to c2s and waits for its answer before reading more, so
//!   a slow c2s becomes TCP backpressure rather than mailbox growth.
//! - [`c2s`]: the stream state machine (RFC 6120 §4-§8): STARTTLS, SASL,
//!   resource binding, `from` stamping, routing through `chorus-router`.
//! - [`tls`]: rustls configurations, SNI, the dev certificate, channel
//!   bindings for SCRAM -PLUS.
//!
//! **Architecture Invariant:** only the socket actor writes to a TCP stream.

pub mod c2s;
pub mod conn;
pub mod framing;
pub mod receiver;
pub mod socket;
pub mod tls;
pub mod ws;

pub use conn::{connection_group, C2sContext, C2sShared, ClientConnections};

/// The declarations of what the client stream itself implements (RFC 6120
/// negotiation, SASL, SASL2 with Bind 2 and FAST, XEP-0198, XEP-0352, XEP-0368), as feature modules:
/// they add the stream features the state machine offers and take part in
/// `docs/XEPS.md` like any module.
pub fn stream_modules() -> Vec<Box<dyn chorus_modules::Module>> {
    vec![
        Box::new(c2s::Stream),
        Box::new(c2s::Sasl),
        Box::new(c2s::Sasl2),
        Box::new(c2s::StreamManagement),
        Box::new(c2s::ClientStateIndication),
        Box::new(tls::DirectTls),
    ]
}
