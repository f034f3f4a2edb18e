//! XEP-0198 stream management over real sockets: enabling, acks both ways,
//! the errors the XEP names, resumption after a dropped connection (by the
//! client, or by killing the connection's socket or receiver actor), the
//! resume timeout sending unacknowledged messages to offline storage, a
//! killed c2s doing the same, and no message lost out of 1000.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;
use chorus_jid::BareJid;
use chorus_storage::OfflineStore;
use chorus_supervisor::StopMode;
use chorus_xml::{Element, StreamEvent};

const NS_SM: &str = "urn:xmpp:sm:3";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

async fn server_with(
    tag: &str,
    tune: impl FnOnce(&mut chorus_config::Config),
) -> chorus_server::Server {
    let mut cfg = test_config(tag);
    cfg.offline.quota = 5000;
    tune(&mut cfg);
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    server
}

/// A client that counts the stanzas it handled since `<enabled/>`, as a
/// XEP-0198 client does.
struct SmClient {
    c: XmppClient,
    jid: String,
    /// The resumption id, when resumption was enabled.
    id: Option<String>,
    /// Stanzas received since stream management was enabled.
    h: u32,
    /// Answer the server's `<r/>` with `<a/>`.
    auto_ack: bool,
    /// `<r/>` requests seen.
    requests: u32,
}

impl SmClient {
    /// Logs in, enables stream management (with resumption when asked, and
    /// `max` if given), then sends initial presence.
    async fn login(
        addr: std::net::SocketAddr,
        user: &str,
        password: &str,
        resource: &str,
        resume: bool,
        max: Option<u64>,
    ) -> (SmClient, Element) {
        let (mut c, features) = XmppClient::authenticate(addr, user, password).await;
        assert!(
            features.get_child("sm", NS_SM).is_some(),
            "XEP-0198 §3: advertised after authentication: {}",
            features.to_xml()
        );
        let jid = c.bind(Some(resource)).await.unwrap();
        let mut enable = Element::new("enable", NS_SM);
        if resume {
            enable.set_attr("resume", "true");
        }
        if let Some(m) = max {
            enable.set_attr("max", m.to_string());
        }
        c.send(&enable.to_xml()).await;
        let enabled = c.next_element().await;
        assert!(enabled.is("enabled", NS_SM), "{}", enabled.to_xml());
        let id = enabled.attr("id").map(str::to_owned);
        assert_eq!(id.is_some(), resume, "{}", enabled.to_xml());
        c.send("<presence/>").await;
        (
            SmClient {
                c,
                jid,
                id,
                h: 0,
                auto_ack: false,
                requests: 0,
            },
            enabled,
        )
    }

    /// The next stanza, counted; `<r/>` is answered when `auto_ack` is set.
    /// None when the server closed the connection (or the stream).
    async fn next_stanza(&mut self) -> Option<Element> {
        loop {
            match self.c.next_event().await? {
                StreamEvent::Element(e) if e.ns() == NS_SM => {
                    if e.name() == "r" {
                        self.requests += 1;
                        if self.auto_ack {
                            self.ack().await;
                        }
                    }
                }
                StreamEvent::Element(e) => {
                    if matches!(e.name(), "message" | "presence" | "iq") {
                        self.h += 1;
                    }
                    return Some(e);
                }
                StreamEvent::Header(_) => {}
                StreamEvent::End => return None,
            }
        }
    }

    /// The next message, counting what comes before it.
    async fn next_message(&mut self) -> Element {
        loop {
            let e = self.next_stanza().await.expect("a message");
            if e.name() == "message" {
                return e;
            }
        }
    }

    async fn ack(&mut self) {
        self.c
            .send(&format!("<a xmlns='{NS_SM}' h='{}'/>", self.h))
            .await;
    }

    /// Asks the server for its count: the `h` of its `<a/>`.
    async fn request(&mut self) -> u32 {
        self.c.send(&format!("<r xmlns='{NS_SM}'/>")).await;
        loop {
            match self.c.next_event().await {
                Some(StreamEvent::Element(e)) if e.is("a", NS_SM) => {
                    return e.attr("h").unwrap().parse().unwrap();
                }
                Some(StreamEvent::Element(e)) if e.is("r", NS_SM) => {}
                Some(StreamEvent::Element(e)) => {
                    if matches!(e.name(), "message" | "presence" | "iq") {
                        self.h += 1;
                    }
                }
                other => panic!("expected <a/>, got {other:?}"),
            }
        }
    }
}

/// The conn id of `jid`'s session.
fn conn_of(server: &chorus_server::Server, jid: &str) -> u64 {
    let bare: BareJid = jid.split('/').next().unwrap().parse().unwrap();
    server
        .sessions
        .resources(&bare)
        .into_iter()
        .find(|s| s.full.to_string() == jid)
        .map(|s| s.conn_id)
        .unwrap_or_else(|| panic!("no session for {jid}"))
}

fn conn_path(server: &chorus_server::Server, conn: u64) -> String {
    format!("{}/conn-{conn}", conns_path(server))
}

/// The member ids of a connection group in the tree.
fn members(server: &chorus_server::Server, conn: u64) -> Vec<String> {
    let mut m: Vec<String> = server
        .registry
        .paths_matching(&format!("{}/*", conn_path(server, conn)))
        .into_iter()
        .map(|p| p.rsplit('/').next().unwrap().to_owned())
        .collect();
    m.sort();
    m
}

/// Reads to the end of the stream error and returns it.
async fn stream_error(c: &mut XmppClient) -> Element {
    loop {
        match c.next_event().await {
            Some(StreamEvent::Element(e)) if e.name() == "error" => return e,
            Some(_) => {}
            None => panic!("closed without a stream error"),
        }
    }
}

/// Bob's session, plain (no stream management).
async fn bob(addr: std::net::SocketAddr) -> XmppClient {
    XmppClient::login(addr, "bob", "builder", Some("b")).await.0
}

async fn send_messages(bob: &mut XmppClient, to: &str, ids: std::ops::Range<u32>) {
    for i in ids {
        bob.send(&format!(
            "<message to='{to}' type='chat' id='m{i}'><body>n{i}</body></message>"
        ))
        .await;
    }
}

/// Resumes on a new connection; returns the `<resumed/>` or `<failed/>`.
async fn resume(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    previd: &str,
    h: u32,
) -> (XmppClient, Element) {
    let (mut c, _) = XmppClient::authenticate(addr, user, password).await;
    c.send(&format!(
        "<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>"
    ))
    .await;
    let answer = c.next_element().await;
    (c, answer)
}

fn failed_condition(failed: &Element) -> String {
    assert!(failed.is("failed", NS_SM), "{}", failed.to_xml());
    failed
        .children()
        .find(|c| c.ns() == NS_STANZAS)
        .map(|c| c.name().to_owned())
        .unwrap_or_default()
}

/// Logs in plainly and collects the offline messages delivered at login
/// (ids), stopping after a ping round trip once `expected` arrived.
async fn offline_at_login(addr: std::net::SocketAddr, expected: usize) -> Vec<String> {
    let (mut c, _) = XmppClient::login(addr, "alice", "wonderland", Some("later")).await;
    let mut ids = Vec::new();
    while ids.len() < expected {
        let e = c.next_element().await;
        if e.name() == "message" {
            assert!(
                e.get_child("delay", "urn:xmpp:delay").is_some(),
                "from offline storage: {}",
                e.to_xml()
            );
            ids.push(e.attr("id").unwrap().to_owned());
        }
    }
    // Nothing more than expected.
    c.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some("end") {
            break;
        }
        if e.name() == "message" {
            ids.push(e.attr("id").unwrap().to_owned());
        }
    }
    ids
}

async fn offline_count(server: &chorus_server::Server) -> u64 {
    server
        .storage
        .count_offline("alice", "localhost")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_and_acks_in_both_directions() {
    let server = server_with("sm-enable", |_| {}).await;
    let addr = server.first_addr().unwrap();

    // §3: enabling before binding is refused.
    let (mut early, _) = XmppClient::authenticate(addr, "alice", "wonderland").await;
    early.send(&format!("<enable xmlns='{NS_SM}'/>")).await;
    assert_eq!(
        failed_condition(&early.next_element().await),
        "unexpected-request"
    );
    drop(early);

    let (mut alice, enabled) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    // The default resume timeout, and an id.
    assert_eq!(enabled.attr("resume"), Some("true"));
    assert_eq!(enabled.attr("max"), Some("300"));
    assert!(!alice.id.as_deref().unwrap().is_empty());
    assert_eq!(alice.next_stanza().await.unwrap().name(), "presence");
    // Enabling twice is refused.
    alice.c.send(&format!("<enable xmlns='{NS_SM}'/>")).await;
    assert_eq!(
        failed_condition(&alice.c.next_element().await),
        "unexpected-request"
    );

    // Inbound: the server counts the stanzas we sent (presence, two pings).
    for id in ["p1", "p2"] {
        alice
            .c
            .send(&format!(
                "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .await;
    }
    assert_eq!(alice.request().await, 3, "presence and two pings handled");

    // Outbound: five stanzas and the server asks for an ack.
    let mut bob = bob(addr).await;
    send_messages(&mut bob, &alice.jid, 0..5).await;
    for i in 0..5 {
        assert_eq!(
            alice.next_message().await.attr("id"),
            Some(format!("m{i}").as_str())
        );
    }
    // The echo and four messages made five stanzas: the server asked.
    assert_eq!(alice.requests, 1, "the server sent <r/> after five stanzas");
    alice.ack().await;
    // Acknowledged: a dropped connection now resends nothing.
    let id = alice.id.clone().unwrap();
    let h = alice.h;
    alice.c.drop_connection();
    let conn = conn_of(&server, &alice.jid);
    assert!(
        wait_until(Duration::from_secs(10), || members(&server, conn)
            == ["c2s"])
        .await
    );
    let (mut c, resumed) = resume(addr, "alice", "wonderland", &id, h).await;
    assert!(resumed.is("resumed", NS_SM), "{}", resumed.to_xml());
    c.send("<iq type='get' id='p3' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let pong = c.next_element().await;
    assert_eq!(
        pong.attr("id"),
        Some("p3"),
        "nothing resent: {}",
        pong.to_xml()
    );

    // A client asking for a longer timeout than allowed gets the maximum;
    // a shorter one is granted.
    let (_c2, enabled) =
        SmClient::login(addr, "alice", "wonderland", "b", true, Some(100_000)).await;
    assert_eq!(enabled.attr("max"), Some("600"));
    let (_c3, enabled) = SmClient::login(addr, "alice", "wonderland", "c", true, Some(7)).await;
    assert_eq!(enabled.attr("max"), Some("7"));
    // Without resumption: no id, and acks all the same.
    let (mut plain, enabled) = SmClient::login(addr, "alice", "wonderland", "d", false, None).await;
    assert!(enabled.attr("resume").is_none());
    assert_eq!(plain.request().await, 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_more_than_was_sent_is_handled_count_too_high() {
    let server = server_with("sm-toohigh", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    // The server sent one stanza so far (the presence echo); wait for it.
    let echo = alice.next_stanza().await.unwrap();
    assert_eq!(echo.name(), "presence");
    alice.c.send(&format!("<a xmlns='{NS_SM}' h='10'/>")).await;
    let err = stream_error(&mut alice.c).await;
    assert!(
        err.get_child("undefined-condition", "urn:ietf:params:xml:ns:xmpp-streams")
            .is_some(),
        "{}",
        err.to_xml()
    );
    let too_high = err
        .get_child("handled-count-too-high", NS_SM)
        .unwrap_or_else(|| panic!("{}", err.to_xml()));
    assert_eq!(too_high.attr("h"), Some("10"));
    assert_eq!(too_high.attr("send-count"), Some("1"));
    // A stream error ends the session: it is not resumable.
    assert!(wait_until(Duration::from_secs(10), || server.sessions.is_empty()).await);
    let (_c, answer) = resume(addr, "alice", "wonderland", alice.id.as_deref().unwrap(), 1).await;
    assert_eq!(failed_condition(&answer), "item-not-found");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_queue_overflow_is_resource_constraint_and_loses_nothing() {
    let server = server_with("sm-overflow", |c| c.c2s.sm_max_unacked = 16).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    let mut bob = bob(addr).await;
    // Alice never acknowledges: the presence echo and 15 messages fill the
    // queue, the 16th message overflows it.
    send_messages(&mut bob, &alice.jid, 0..20).await;
    let err = stream_error(&mut alice.c).await;
    assert!(
        err.get_child("resource-constraint", "urn:ietf:params:xml:ns:xmpp-streams")
            .is_some(),
        "{}",
        err.to_xml()
    );
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    // Every message, sent to her or not, is in offline storage.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while offline_count(&server).await < 20 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ids = offline_at_login(addr, 20).await;
    ids.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(ids, want);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_dropped_connection_resends_what_was_not_acknowledged() {
    let server = server_with("sm-resume", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    // The presence echo first, so that the count below is in a known order.
    assert_eq!(alice.next_stanza().await.unwrap().name(), "presence");
    let mut bob = bob(addr).await;
    send_messages(&mut bob, &alice.jid, 0..3).await;
    for i in 0..3 {
        assert_eq!(
            alice.next_message().await.attr("id"),
            Some(format!("m{i}").as_str())
        );
    }
    // Acknowledge the presence echo and m0 only: m1 and m2 were received
    // but the client "crashes" before processing them.
    let h = alice.h - 2;
    alice.c.send(&format!("<a xmlns='{NS_SM}' h='{h}'/>")).await;
    assert_eq!(alice.request().await, 1);
    let old_conn = conn_of(&server, &alice.jid);
    alice.c.drop_connection();

    // Detached: c2s alone in its group, still routed to.
    assert!(
        wait_until(Duration::from_secs(10), || members(&server, old_conn)
            == ["c2s"])
        .await,
        "{:?}",
        members(&server, old_conn)
    );
    assert_eq!(server.sessions.len(), 2);
    send_messages(&mut bob, &alice.jid, 3..5).await;
    bob.send(
        "<iq type='get' id='ping-a' to='alice@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;

    let id = alice.id.clone().unwrap();
    let (c, resumed) = resume(addr, "alice", "wonderland", &id, h).await;
    assert!(resumed.is("resumed", NS_SM), "{}", resumed.to_xml());
    assert_eq!(resumed.attr("previd"), Some(id.as_str()));
    // The server handled our presence only.
    assert_eq!(resumed.attr("h"), Some("1"));
    let mut alice = SmClient {
        c,
        jid: alice.jid.clone(),
        id: Some(id.clone()),
        h,
        auto_ack: true,
        requests: 0,
    };
    let mut got = Vec::new();
    let mut all = Vec::new();
    while got.len() < 5 {
        let e = alice.next_stanza().await.unwrap();
        got.push(e.attr("id").unwrap_or_default().to_owned());
        all.push(e.to_xml());
    }
    assert_eq!(got, ["m1", "m2", "m3", "m4", "ping-a"], "{all:#?}");

    // The session lives under the new connection now; the old group is gone.
    let new_conn = conn_of(&server, &alice.jid);
    assert_ne!(new_conn, old_conn);
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .lookup(&format!("{}/c2s", conn_path(&server, old_conn)))
            .is_none())
        .await
    );
    assert_eq!(members(&server, new_conn), ["c2s", "receiver", "socket"]);
    assert!(server
        .registry
        .kind(&conn_path(&server, old_conn))
        .is_none());
    // And it works both ways.
    send_messages(&mut bob, &alice.jid, 5..6).await;
    assert_eq!(alice.next_message().await.attr("id"), Some("m5"));
    alice
        .c
        .send("<message to='bob@localhost/b' id='back'><body>hi</body></message>")
        .await;
    assert_eq!(bob.expect("message").await.attr("id"), Some("back"));
    // The resumed session can be resumed again, with the same id.
    alice.c.drop_connection();
    assert!(
        wait_until(Duration::from_secs(10), || members(&server, new_conn)
            == ["c2s"])
        .await
    );
    let (_c, again) = resume(addr, "alice", "wonderland", &id, alice.h).await;
    assert!(again.is("resumed", NS_SM), "{}", again.to_xml());
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_session_whose_connection_still_looks_open_takes_it_over() {
    let server = server_with("sm-takeover", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut old, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    assert_eq!(old.next_stanza().await.unwrap().name(), "presence");
    let old_conn = conn_of(&server, &old.jid);
    // The client lost the connection; the server has not noticed yet.
    let (c, resumed) = resume(addr, "alice", "wonderland", old.id.as_deref().unwrap(), 1).await;
    assert!(resumed.is("resumed", NS_SM), "{}", resumed.to_xml());
    // The old connection is closed, its group gone; one session remains.
    assert!(old.next_stanza().await.is_none());
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .kind(&conn_path(&server, old_conn))
            .is_none())
        .await
    );
    assert_ne!(conn_of(&server, &old.jid), old_conn);
    assert_eq!(server.sessions.len(), 1);
    let mut bob = bob(addr).await;
    send_messages(&mut bob, &old.jid, 0..1).await;
    let mut new = SmClient {
        c,
        jid: old.jid.clone(),
        id: old.id.clone(),
        h: 1,
        auto_ack: true,
        requests: 0,
    };
    assert_eq!(new.next_message().await.attr("id"), Some("m0"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_an_unknown_or_another_users_session_is_item_not_found() {
    let server = server_with("sm-unknown", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    let id = alice.id.clone().unwrap();
    alice.c.drop_connection();
    let conn = conn_of(&server, &alice.jid);
    assert!(
        wait_until(Duration::from_secs(10), || members(&server, conn)
            == ["c2s"])
        .await
    );

    let (mut c, answer) = resume(addr, "alice", "wonderland", "no-such-id", 0).await;
    assert_eq!(failed_condition(&answer), "item-not-found");
    // The stream goes on: binding still works.
    assert_eq!(
        c.bind(Some("fresh")).await.unwrap(),
        "alice@localhost/fresh"
    );

    let (_b, answer) = resume(addr, "bob", "builder", &id, 0).await;
    assert_eq!(failed_condition(&answer), "item-not-found");
    // Alice's session was left alone and is still resumable by her.
    assert_eq!(members(&server, conn), ["c2s"]);
    let (_c, answer) = resume(addr, "alice", "wonderland", &id, 0).await;
    assert!(answer.is("resumed", NS_SM), "{}", answer.to_xml());
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_timeout_sends_unacknowledged_messages_to_offline_storage() {
    let server = server_with("sm-timeout", |c| c.c2s.sm_resume_timeout_secs = 1).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, enabled) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    assert_eq!(enabled.attr("max"), Some("1"));
    let mut bob = bob(addr).await;
    send_messages(&mut bob, &alice.jid, 0..2).await;
    // A headline is not stored: it bounces. So does an IQ.
    bob.send("<message to='alice@localhost/a' type='headline' id='news'><body>x</body></message>")
        .await;
    for _ in 0..3 {
        alice.next_message().await;
    }
    alice.c.drop_connection();
    let conn = conn_of(&server, &alice.jid);
    assert!(
        wait_until(Duration::from_secs(10), || members(&server, conn)
            == ["c2s"])
        .await
    );
    send_messages(&mut bob, &alice.jid, 2..3).await;
    bob.send(
        "<iq type='get' id='ping-a' to='alice@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    // The timeout passes: the session and its group end.
    assert!(
        wait_until(Duration::from_secs(10), || server.sessions.len() == 1
            && server.registry.kind(&conn_path(&server, conn)).is_none())
        .await
    );
    let mut bounced = HashMap::new();
    while bounced.len() < 2 {
        let e = bob.next_element().await;
        if e.name() != "presence" {
            bounced.insert(e.attr("id").unwrap().to_owned(), stanza_error_condition(&e));
        }
    }
    assert_eq!(bounced["news"], "service-unavailable");
    assert_eq!(bounced["ping-a"], "service-unavailable");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while offline_count(&server).await < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids = offline_at_login(addr, 3).await;
    assert_eq!(ids, ["m0", "m1", "m2"]);
    server.stop();
}

async fn killed_member_is_like_a_network_drop(member: &str) {
    let server = server_with(&format!("sm-kill-{member}"), |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    let mut bob = bob(addr).await;
    send_messages(&mut bob, &alice.jid, 0..2).await;
    for _ in 0..2 {
        alice.next_message().await;
    }
    let conn = conn_of(&server, &alice.jid);
    server
        .registry
        .kill(
            &format!("{}/{member}", conn_path(&server, conn)),
            StopMode::Kill,
        )
        .unwrap();
    // The client sees its connection close, without a stream error; a
    // presence written before the kill (its own echo, on a slow machine)
    // may still come first.
    while let Some(e) = alice.next_stanza().await {
        assert_eq!(e.name(), "presence", "unexpected {}", e.to_xml());
    }
    assert!(
        wait_until(Duration::from_secs(10), || members(&server, conn)
            == ["c2s"])
        .await
    );
    assert_eq!(server.sessions.len(), 2);
    send_messages(&mut bob, &alice.jid, 2..3).await;
    let (mut c, resumed) = resume(
        addr,
        "alice",
        "wonderland",
        alice.id.as_deref().unwrap(),
        alice.h,
    )
    .await;
    assert!(resumed.is("resumed", NS_SM), "{}", resumed.to_xml());
    let m = c.expect("message").await;
    assert_eq!(m.attr("id"), Some("m2"));
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .kind(&conn_path(&server, conn))
            .is_none())
        .await
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_receiver_detaches_a_resumable_session() {
    killed_member_is_like_a_network_drop("receiver").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_socket_detaches_a_resumable_session() {
    killed_member_is_like_a_network_drop("socket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_receiver_without_resumption_ends_the_session() {
    let server = server_with("sm-kill-plain", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", false, None).await;
    let mut bob = bob(addr).await;
    send_messages(&mut bob, &alice.jid, 0..2).await;
    for _ in 0..2 {
        alice.next_message().await;
    }
    let conn = conn_of(&server, &alice.jid);
    server
        .registry
        .kill(
            &format!("{}/receiver", conn_path(&server, conn)),
            StopMode::Kill,
        )
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || server.sessions.len() == 1
            && server.registry.kind(&conn_path(&server, conn)).is_none())
        .await
    );
    // Acks were on: the unacknowledged messages are not lost either.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while offline_count(&server).await < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(offline_at_login(addr, 2).await, ["m0", "m1"]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_c2s_ends_the_session_and_keeps_unacknowledged_messages() {
    let server = server_with("sm-kill-c2s", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    let mut bob = bob(addr).await;
    send_messages(&mut bob, &alice.jid, 0..3).await;
    for _ in 0..3 {
        alice.next_message().await;
    }
    let conn = conn_of(&server, &alice.jid);
    server
        .registry
        .kill(&format!("{}/c2s", conn_path(&server, conn)), StopMode::Kill)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || server.sessions.len() == 1
            && server.registry.kind(&conn_path(&server, conn)).is_none())
        .await
    );
    // Not resumable: the session is gone.
    let (_c, answer) = resume(addr, "alice", "wonderland", alice.id.as_deref().unwrap(), 0).await;
    assert_eq!(failed_condition(&answer), "item-not-found");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while offline_count(&server).await < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(offline_at_login(addr, 3).await, ["m0", "m1", "m2"]);
    server.stop();
}

/// Sends 1000 messages from bob to alice from a task; alice's receiver is
/// killed once she has read `kill_after`. Returns alice, what she counted
/// before the connection went, and bob's task.
async fn thousand_with_a_kill(
    server: &chorus_server::Server,
    kill_after: usize,
) -> (SmClient, Vec<String>, tokio::task::JoinHandle<XmppClient>) {
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    // The presence echo first, so that bob's messages are all that follow.
    assert_eq!(alice.next_stanza().await.unwrap().name(), "presence");
    let mut bob = bob(addr).await;
    let to = alice.jid.clone();
    let sender = tokio::spawn(async move {
        for chunk in 0..20u32 {
            send_messages(&mut bob, &to, chunk * 50..chunk * 50 + 50).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bob
    });
    let conn = conn_of(server, &alice.jid);
    let mut got = Vec::new();
    while got.len() < kill_after {
        got.push(alice.next_message().await.attr("id").unwrap().to_owned());
    }
    server
        .registry
        .kill(
            &format!("{}/receiver", conn_path(server, conn)),
            StopMode::Kill,
        )
        .unwrap();
    // Whatever was already on its way is read and counted.
    while let Some(e) = alice.next_stanza().await {
        if e.name() == "message" {
            got.push(e.attr("id").unwrap().to_owned());
        }
    }
    assert!(got.len() < 1000, "the kill came mid-way");
    assert!(wait_until(Duration::from_secs(10), || members(server, conn) == ["c2s"]).await);
    (alice, got, sender)
}

fn assert_exactly_once(ids: &[String]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "delivered more than once: {dups:?}");
    let missing: Vec<u32> = (0..1000)
        .filter(|i| !seen.contains_key(format!("m{i}").as_str()))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(ids.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_arrive_exactly_once_across_a_killed_receiver_and_a_resume() {
    let server = server_with("sm-1000", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (alice, mut got, sender) = thousand_with_a_kill(&server, 300).await;
    let id = alice.id.clone().unwrap();
    let (c, resumed) = resume(addr, "alice", "wonderland", &id, alice.h).await;
    assert!(resumed.is("resumed", NS_SM), "{}", resumed.to_xml());
    let mut alice = SmClient {
        c,
        jid: alice.jid.clone(),
        id: Some(id),
        h: alice.h,
        auto_ack: true,
        requests: 0,
    };
    while got.len() < 1000 {
        got.push(alice.next_message().await.attr("id").unwrap().to_owned());
    }
    let _bob = sender.await.unwrap();
    // Nothing more is on its way.
    alice
        .c
        .send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = alice.next_stanza().await.unwrap();
        if e.attr("id") == Some("end") {
            break;
        }
        if e.name() == "message" {
            got.push(e.attr("id").unwrap().to_owned());
        }
    }
    assert_exactly_once(&got);
    assert_eq!(offline_count(&server).await, 0);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_reach_offline_storage_when_the_client_never_resumes() {
    let server = server_with("sm-1000-off", |c| c.c2s.sm_resume_timeout_secs = 1).await;
    let addr = server.first_addr().unwrap();
    // Alice never acknowledges anything: all of it is hers to get again.
    let (_alice, _got, sender) = thousand_with_a_kill(&server, 300).await;
    let _bob = sender.await.unwrap();
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while offline_count(&server).await < 1000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids = offline_at_login(addr, 1000).await;
    assert_exactly_once(&ids);
    server.stop();
}

mod duplicates;

/// XEP-0410 and XEP-0198 together: a session detached by a dropped
/// connection is still in its rooms (nobody sees it leave), gets what was
/// said meanwhile on resumption, and its self-ping is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_is_still_in_its_rooms() {
    let server = server_with("sm-muc", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let room = "resume@conference.localhost";
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    alice.auto_ack = true;
    alice
        .c
        .send(&format!(
            "<presence to='{room}/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
    // An instant room (XEP-0045 §10.1.2) once the subject came.
    loop {
        let e = alice.next_stanza().await.unwrap();
        if e.name() == "message" && e.get_child("subject", "jabber:client").is_some() {
            break;
        }
    }
    alice
        .c
        .send(&format!(
            "<iq type='set' id='cfg' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'/></query></iq>"
        ))
        .await;
    loop {
        let e = alice.next_stanza().await.unwrap();
        if e.attr("id") == Some("cfg") {
            assert_eq!(e.attr("type"), Some("result"), "{}", e.to_xml());
            break;
        }
    }
    let mut bob = bob(addr).await;
    bob.send(&format!(
        "<presence to='{room}/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    loop {
        let e = bob.next_element().await;
        if e.name() == "message" && e.get_child("subject", "jabber:client").is_some() {
            break;
        }
    }
    // Everything so far acknowledged, then the connection dies.
    while alice.next_stanza().await.unwrap().name() != "presence" {}
    alice.ack().await;
    let h = alice.h;
    let id = alice.id.clone().unwrap();
    alice.c.drop_connection();
    bob.send(&format!(
        "<message to='{room}' type='groupchat'><body>while you were away</body></message>"
    ))
    .await;
    let (c, resumed) = resume(addr, "alice", "wonderland", &id, h).await;
    assert!(resumed.is("resumed", NS_SM), "{}", resumed.to_xml());
    let mut alice = SmClient {
        c,
        jid: alice.jid.clone(),
        id: Some(id),
        h,
        auto_ack: true,
        requests: 0,
    };
    let m = alice.next_message().await;
    assert_eq!(
        m.get_child("body", "jabber:client")
            .map(|b| b.text())
            .as_deref(),
        Some("while you were away")
    );
    alice
        .c
        .send(&format!(
            "<iq type='get' id='self' to='{room}/Alice'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    loop {
        let e = alice.next_stanza().await.unwrap();
        if e.attr("id") == Some("self") {
            assert_eq!(e.attr("type"), Some("result"), "{}", e.to_xml());
            break;
        }
    }
    // Bob never saw alice leave.
    bob.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = bob.next_element().await;
        assert!(
            !(e.name() == "presence" && e.attr("type") == Some("unavailable")),
            "{}",
            e.to_xml()
        );
        if e.attr("id") == Some("end") {
            break;
        }
    }
    server.stop();
}
