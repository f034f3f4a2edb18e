//! Client sessions end to end over real sockets (RFC 6120): STARTTLS and
//! direct TLS, SASL SCRAM with channel binding and PLAIN, resource binding,
//! and routing between local sessions. Each test asserts the exact
//! condition the RFC names.
//!
//! This file holds the shared helpers; the tests are in `auth.rs` (STARTTLS,
//! direct TLS, SASL), `session.rs` (binding, routing, killed actors, slow
//! readers), `delivery.rs` (offline messages, pings, client state
//! indication) and `register.rs` (XEP-0077 in-band registration).
#![allow(clippy::unwrap_used)]

mod auth;
mod delivery;
mod register;
mod sasl2;
mod session;

use std::time::Duration;

use crate::common;
use crate::common::client::{failure_condition, stanza_error_condition, XmppClient};
use crate::common::*;
use chorus_config::{ListenerConfig, ListenerKind};
use chorus_sasl::{ChannelBindingType, Mechanism, ScramClient};
use chorus_supervisor::StopMode;

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

async fn server_with_users(tag: &str) -> chorus_server::Server {
    let server = start(test_config(tag)).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    server
}

fn mechanisms(features: &chorus_xml::Element) -> Vec<String> {
    features
        .get_child("mechanisms", NS_SASL)
        .map(|m| m.children().map(|c| c.text()).collect())
        .unwrap_or_default()
}

async fn tls_client(addr: std::net::SocketAddr) -> (XmppClient, chorus_xml::Element) {
    let mut c = XmppClient::connect(addr).await;
    c.open().await;
    c.starttls().await;
    let f = c.open().await;
    (c, f)
}
