//! External components (XEP-0114) over real sockets: a raw component on a
//! `component` listener, and real clients on the c2s listener. The
//! handshake and its refusals (each with its stream error), the `from` and
//! `to` checks on the component's stanzas, routing both ways, and the
//! domain answering `service-unavailable` whenever no component serves it:
//! never connected, and after its actor is killed through the admin API,
//! until it reconnects.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chorus_config::{Config, ListenerConfig, ListenerKind};
use chorus_server::Server;
use chorus_xml::{Element, StreamEvent};
use sha1::Digest;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const NS: &str = "jabber:component:accept";
const DOMAIN: &str = "irc.localhost";
const SECRET: &str = "s3cret-of-the-bridge";
const COMPONENT_PORT: &str = "port:component@127.0.0.1:0";

fn configured(tag: &str) -> Config {
    let mut c = Config::from_toml(&format!(
        "[[components]]\ndomain = '{DOMAIN}'\nsecret = '{SECRET}'\n"
    ))
    .unwrap();
    let base = test_config(tag);
    c.server.data_dir = base.server.data_dir;
    c.metrics = base.metrics;
    c.listeners = base.listeners;
    c.listeners.push(ListenerConfig {
        kind: ListenerKind::Component,
        address: "127.0.0.1:0".parse().unwrap(),
    });
    c
}

async fn started(tag: &str) -> Server {
    let server = start(configured(tag)).await;
    assert!(
        wait_until(Duration::from_secs(10), || server
            .bound_addr(COMPONENT_PORT)
            .is_some())
        .await
    );
    add_user(&server, "alice", "wonderland").await;
    server
}

fn c2s_addr(server: &Server) -> std::net::SocketAddr {
    server.bound_addr("port:c2s@127.0.0.1:0").unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens a component stream to `domain`; returns the connection and the
/// server's header attributes (`from`, `id`).
async fn open(server: &Server, domain: &str) -> (XmppClient, Option<String>, String) {
    let mut c = XmppClient::connect(server.bound_addr(COMPONENT_PORT).unwrap()).await;
    c.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS}' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
    ))
    .await;
    match c.next_event().await {
        Some(StreamEvent::Header(h)) => {
            assert_eq!(h.default_ns, NS);
            let from = h.attr("from").map(str::to_owned);
            let id = h.attr("id").unwrap_or_default().to_owned();
            (c, from, id)
        }
        other => panic!("expected the server's header, got {other:?}"),
    }
}

/// A connected component: stream, handshake, `<handshake/>`.
async fn connect(server: &Server) -> XmppClient {
    let (mut c, from, id) = open(server, DOMAIN).await;
    assert_eq!(from.as_deref(), Some(DOMAIN));
    assert_eq!(id.len(), 32, "a fresh random id: {id}");
    let digest = hex(&sha1::Sha1::digest(format!("{id}{SECRET}").as_bytes()));
    c.send(&format!("<handshake>{digest}</handshake>")).await;
    let ok = c.next_element().await;
    assert!(ok.is("handshake", NS), "{}", ok.to_xml());
    assert!(ok.nodes().is_empty());
    c
}

/// The next element `name`, skipping others (presence the component gets).
async fn next_named(c: &mut XmppClient, name: &str) -> Element {
    loop {
        let e = c.next_element().await;
        if e.name() == name {
            return e;
        }
    }
}

/// A message from alice to the component's domain; what she gets back.
async fn message_to_domain(alice: &mut XmppClient, id: &str) -> Element {
    alice
        .send(&format!(
            "<message to='bot@{DOMAIN}' id='{id}' type='chat'><body>ping</body></message>"
        ))
        .await;
    alice.expect("message").await
}

fn component_paths(server: &Server) -> Vec<String> {
    server.registry.paths_matching(&format!(
        "root/listeners/{COMPONENT_PORT}/conns/*/component"
    ))
}

#[tokio::test]
async fn messages_reach_the_component_and_its_answers_reach_the_client() {
    let server = started("component-route").await;
    let mut comp = connect(&server).await;
    // The connection is a group of three under its port, like a client's.
    let paths = component_paths(&server);
    assert_eq!(paths.len(), 1, "{paths:?}");
    let group = paths[0].trim_end_matches("/component");
    for member in ["socket", "receiver"] {
        assert!(server
            .registry
            .lookup(&format!("{group}/{member}"))
            .is_some());
    }

    let (mut alice, alice_jid) =
        XmppClient::login(c2s_addr(&server), "alice", "wonderland", Some("a")).await;
    alice
        .send(&format!(
            "<message to='bot@{DOMAIN}' id='m1' type='chat'><body>ping</body></message>"
        ))
        .await;
    let got = next_named(&mut comp, "message").await;
    assert_eq!(
        got.ns(),
        NS,
        "re-namespaced for the component: {}",
        got.to_xml()
    );
    assert_eq!(got.attr("from"), Some(alice_jid.as_str()));
    assert_eq!(got.attr("to"), Some(&*format!("bot@{DOMAIN}")));
    assert_eq!(got.get_child("body", NS).unwrap().text(), "ping");

    // The answer, from a JID of the component's domain, is routed as is.
    comp.send(&format!(
        "<message from='bot@{DOMAIN}/x' to='{alice_jid}' type='chat' id='r1'>\
         <body>pong</body></message>"
    ))
    .await;
    let answer = alice.expect("message").await;
    assert_eq!(answer.attr("from"), Some(&*format!("bot@{DOMAIN}/x")));
    assert_eq!(
        answer.get_child("body", "jabber:client").unwrap().text(),
        "pong"
    );

    // An IQ to the server from the component gets the server's answer.
    comp.send(&format!(
        "<iq type='get' id='v1' from='{DOMAIN}' to='localhost'>\
         <query xmlns='jabber:iq:version'/></iq>"
    ))
    .await;
    let version = next_named(&mut comp, "iq").await;
    assert_eq!(version.attr("type"), Some("result"), "{}", version.to_xml());
    assert_eq!(version.attr("to"), Some(DOMAIN));

    // An error the router hands back goes to the component: nobody is
    // nobody@localhost.
    comp.send(&format!(
        "<iq type='get' id='e1' from='bot@{DOMAIN}' to='nobody@localhost/r'>\
         <ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let err = next_named(&mut comp, "iq").await;
    assert_eq!(err.attr("type"), Some("error"), "{}", err.to_xml());
    assert!(err.get_child("error", NS).is_some(), "{}", err.to_xml());
    server.stop();
}

#[tokio::test]
async fn a_wrong_secret_is_not_authorized() {
    let server = started("component-secret").await;
    let (mut c, _, id) = open(&server, DOMAIN).await;
    let wrong = hex(&sha1::Sha1::digest(format!("{id}guess").as_bytes()));
    c.send(&format!("<handshake>{wrong}</handshake>")).await;
    assert_eq!(c.expect_stream_error().await, "not-authorized");
    // The domain is still free: the right secret gets in.
    let _comp = connect(&server).await;
    server.stop();
}

#[tokio::test]
async fn anything_before_the_handshake_is_not_authorized() {
    let server = started("component-first").await;
    let (mut c, _, _) = open(&server, DOMAIN).await;
    c.send(&format!(
        "<message from='{DOMAIN}' to='alice@localhost'><body>x</body></message>"
    ))
    .await;
    assert_eq!(c.expect_stream_error().await, "not-authorized");
    server.stop();
}

#[tokio::test]
async fn an_unknown_domain_is_host_unknown() {
    let server = started("component-unknown").await;
    for domain in ["nope.localhost", "localhost", "conference.localhost"] {
        let out = exchange(
            server.bound_addr(COMPONENT_PORT).unwrap(),
            format!(
                "<?xml version='1.0'?><stream:stream xmlns='{NS}' \
                 xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
            )
            .as_bytes(),
        )
        .await;
        // Our header, the error, then </stream:stream> and the close.
        assert_stream_error(&out, "host-unknown");
        assert!(out.contains(&format!("xmlns='{NS}'")), "{out}");
    }
    server.stop();
}

#[tokio::test]
async fn a_client_namespace_is_invalid_namespace() {
    let server = started("component-ns").await;
    let mut c = XmppClient::connect(server.bound_addr(COMPONENT_PORT).unwrap()).await;
    c.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}'>"
    ))
    .await;
    assert_eq!(c.expect_stream_error().await, "invalid-namespace");
    server.stop();
}

#[tokio::test]
async fn a_spoofed_from_is_invalid_from_and_a_missing_to_improper_addressing() {
    let server = started("component-from").await;
    for spoofed in ["alice@localhost", "localhost", "evil-irc.localhost", ""] {
        let mut comp = connect(&server).await;
        let from = if spoofed.is_empty() {
            String::new()
        } else {
            format!(" from='{spoofed}'")
        };
        comp.send(&format!(
            "<message{from} to='alice@localhost'><body>x</body></message>"
        ))
        .await;
        assert_eq!(
            comp.expect_stream_error().await,
            "invalid-from",
            "{spoofed}"
        );
        // The domain is free again once the stream ended.
        assert!(
            wait_until(Duration::from_secs(5), || component_paths(&server)
                .is_empty())
            .await
        );
    }
    let mut comp = connect(&server).await;
    comp.send(&format!(
        "<message from='a.b.{DOMAIN}'><body>x</body></message>"
    ))
    .await;
    assert_eq!(comp.expect_stream_error().await, "improper-addressing");
    server.stop();
}

#[tokio::test]
async fn a_second_connection_for_a_connected_domain_is_conflict() {
    let server = started("component-conflict").await;
    let mut first = connect(&server).await;
    let (mut second, _, id) = open(&server, DOMAIN).await;
    let digest = hex(&sha1::Sha1::digest(format!("{id}{SECRET}").as_bytes()));
    second
        .send(&format!("<handshake>{digest}</handshake>"))
        .await;
    assert_eq!(second.expect_stream_error().await, "conflict");
    // The first one still serves the domain.
    let (mut alice, _) =
        XmppClient::login(c2s_addr(&server), "alice", "wonderland", Some("a")).await;
    alice
        .send(&format!(
            "<message to='{DOMAIN}'><body>still there?</body></message>"
        ))
        .await;
    let got = next_named(&mut first, "message").await;
    assert_eq!(got.get_child("body", NS).unwrap().text(), "still there?");
    server.stop();
}

#[tokio::test]
async fn no_handshake_in_time_is_connection_timeout() {
    let mut config = configured("component-timeout");
    config.c2s.negotiation_timeout_secs = 1;
    let server = start(config).await;
    let (mut c, _, _) = open(&server, DOMAIN).await;
    assert_eq!(c.expect_stream_error().await, "connection-timeout");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_killed_component_is_service_unavailable_until_it_returns() {
    let server = started("component-kill").await;
    let (mut alice, _) =
        XmppClient::login(c2s_addr(&server), "alice", "wonderland", Some("a")).await;

    // Never connected: messages and IQs bounce, presence is dropped.
    let bounced = message_to_domain(&mut alice, "b1").await;
    assert_eq!(bounced.attr("type"), Some("error"));
    assert_eq!(stanza_error_condition(&bounced), "service-unavailable");
    alice.send(&format!("<presence to='bot@{DOMAIN}'/>")).await;
    alice
        .send(&format!(
            "<iq type='get' id='q1' to='{DOMAIN}'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await;
    let iq = loop {
        let e = alice.next_element().await;
        if e.name() == "iq" {
            break e;
        }
        assert_ne!(
            e.attr("type"),
            Some("error"),
            "presence bounced: {}",
            e.to_xml()
        );
    };
    assert_eq!(iq.attr("id"), Some("q1"));
    assert_eq!(stanza_error_condition(&iq), "service-unavailable");

    // Connected, then its actor killed through the admin API.
    let mut comp = connect(&server).await;
    alice
        .send(&format!(
            "<message to='bot@{DOMAIN}'><body>1</body></message>"
        ))
        .await;
    next_named(&mut comp, "message").await;
    let paths = component_paths(&server);
    assert_eq!(paths.len(), 1);
    let socket = server.admin_socket.clone();
    let path = paths[0].clone();
    tokio::task::spawn_blocking(move || {
        chorus_ctl::request(
            &socket,
            "/api/actors/kill",
            &serde_json::json!({ "path": path }),
        )
    })
    .await
    .unwrap()
    .unwrap();
    // Its connection closes, and its group leaves the tree.
    while comp.next_event().await.is_some() {}
    assert!(
        wait_until(Duration::from_secs(5), || component_paths(&server)
            .is_empty())
        .await
    );
    let bounced = message_to_domain(&mut alice, "b2").await;
    assert_eq!(stanza_error_condition(&bounced), "service-unavailable");

    // It reconnects and serves its domain again.
    let mut comp = connect(&server).await;
    alice
        .send(&format!(
            "<message to='bot@{DOMAIN}'><body>back</body></message>"
        ))
        .await;
    let got = next_named(&mut comp, "message").await;
    assert_eq!(got.get_child("body", NS).unwrap().text(), "back");

    // A component that closes its stream is gone as well.
    comp.send("</stream:stream>").await;
    while comp.next_event().await.is_some() {}
    assert!(
        wait_until(Duration::from_secs(5), || component_paths(&server)
            .is_empty())
        .await
    );
    let bounced = message_to_domain(&mut alice, "b3").await;
    assert_eq!(stanza_error_condition(&bounced), "service-unavailable");
    server.stop();
}
