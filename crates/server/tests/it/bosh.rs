//! BOSH (XEP-0124, XEP-0206) on `/http-bind`, over real sockets: a session
//! created with the stream's features, SASL and the restart, binding, a
//! chat with a TCP client, the answer to a repeated `rid`, and the
//! terminal conditions (unknown sid, a rid out of the window, bad XML,
//! the client's terminate).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use chorus_config::{ListenerConfig, ListenerKind};
use chorus_xml::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::client::XmppClient;
use crate::common::*;

const NS_BOSH: &str = "http://jabber.org/protocol/httpbind";

async fn server(tag: &str) -> (chorus_server::Server, SocketAddr) {
    server_with(tag, |_| {}).await
}

async fn server_with(
    tag: &str,
    tweak: impl FnOnce(&mut chorus_config::Config),
) -> (chorus_server::Server, SocketAddr) {
    let mut config = test_config(tag);
    tweak(&mut config);
    config.listeners.push(ListenerConfig {
        kind: ListenerKind::Http,
        address: "127.0.0.1:0".parse().unwrap(),
    });
    // As behind a TLS-terminating proxy: the session may log in.
    config.http.consider_websocket_secure = true;
    let server = start(config).await;
    assert!(
        wait_until(Duration::from_secs(10), || server
            .bound_addr("port:http@127.0.0.1:0")
            .is_some())
        .await
    );
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let addr = server.bound_addr("port:http@127.0.0.1:0").unwrap();
    (server, addr)
}

/// One POST to /http-bind; the answer's `<body/>`.
async fn post(addr: SocketAddr, body: &str) -> Element {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let xml = text.split("\r\n\r\n").nth(1).unwrap();
    let el = Element::from_xml(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    assert!(el.is("body", NS_BOSH), "{xml}");
    el
}

fn wrap(sid: &str, rid: u64, extra: &str, children: &str) -> String {
    format!(
        "<body rid='{rid}' sid='{sid}' xmlns='{NS_BOSH}' xmlns:xmpp='urn:xmpp:xbosh' {extra}>{children}</body>"
    )
}

/// Polls until a child named `name` comes (or `tries` answers pass).
async fn poll_for(addr: SocketAddr, sid: &str, rid: &mut u64, name: &str) -> Element {
    for _ in 0..5 {
        *rid += 1;
        let b = post(addr, &wrap(sid, *rid, "", "")).await;
        let found = b.children().find(|c| c.name() == name).cloned();
        if let Some(c) = found {
            return c;
        }
    }
    panic!("no {name}");
}

#[tokio::test]
async fn a_bosh_session_logs_in_binds_and_chats() {
    let (server, addr) = server("bosh-login").await;
    let (mut bob, bob_jid) = XmppClient::login(
        server.bound_addr("port:c2s@127.0.0.1:0").unwrap(),
        "bob",
        "builder",
        Some("tcp"),
    )
    .await;

    // XEP-0206 §3: the session, and the stream's features at once.
    let created = post(
        addr,
        &format!(
            "<body content='text/xml; charset=utf-8' hold='1' rid='1000' to='localhost' wait='2' \
             ver='1.6' xml:lang='en' xmpp:version='1.0' xmlns='{NS_BOSH}' xmlns:xmpp='urn:xmpp:xbosh'/>"
        ),
    )
    .await;
    let sid = created.attr("sid").unwrap().to_owned();
    assert_eq!(created.attr("wait"), Some("2"));
    assert_eq!(created.attr("hold"), Some("1"));
    assert_eq!(created.attr("from"), Some("localhost"));
    assert!(created.attr("authid").is_some_and(|a| !a.is_empty()));
    let features = created
        .get_child("features", "http://etherx.jabber.org/streams")
        .unwrap();
    assert!(features
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .is_some());

    let plain = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0wonderland");
    let mut rid = 1001;
    let auth = post(
        addr,
        &wrap(
            &sid,
            rid,
            "",
            &format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
            ),
        ),
    )
    .await;
    assert!(
        auth.children().any(|c| c.name() == "success"),
        "{}",
        auth.to_xml()
    );
    // §5: the restart, answered with the new features.
    rid += 1;
    let restarted = post(
        addr,
        &wrap(&sid, rid, "xmpp:restart='true' to='localhost'", ""),
    )
    .await;
    assert!(
        restarted
            .to_xml()
            .contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "{}",
        restarted.to_xml()
    );
    rid += 1;
    let bound = post(
        addr,
        &wrap(
            &sid,
            rid,
            "",
            "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>",
        ),
    )
    .await;
    assert!(
        bound.to_xml().contains("alice@localhost/web"),
        "{}",
        bound.to_xml()
    );

    rid += 1;
    post(
        addr,
        &wrap(
            &sid,
            rid,
            "",
            &format!("<presence xmlns='jabber:client'/><message xmlns='jabber:client' to='{bob_jid}' type='chat' id='m1'><body>over BOSH</body></message>"),
        ),
    )
    .await;
    let m = bob.expect("message").await;
    assert_eq!(m.attr("from"), Some("alice@localhost/web"));
    bob.send("<message to='alice@localhost/web' type='chat' id='m2'><body>back</body></message>")
        .await;
    let got = poll_for(addr, &sid, &mut rid, "message").await;
    assert_eq!(got.attr("id"), Some("m2"));
    // §14.3: a request seen again is answered again.
    let again = post(addr, &wrap(&sid, rid, "", "")).await;
    assert!(again.to_xml().contains("id='m2'"), "{}", again.to_xml());

    // The session is a connection group in the tree.
    let tree = server
        .registry
        .snapshot("root/listeners", None)
        .unwrap()
        .render(None);
    // Under the http port, not the c2s one bob is on.
    let http_port: String = tree
        .lines()
        .skip_while(|l| !l.contains("port:http@"))
        .skip(1)
        .take_while(|l| !l.contains("port:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        http_port.contains("conn-") && http_port.contains("c2s"),
        "{tree}"
    );

    // §13: the client ends it.
    rid += 1;
    let end = post(
        addr,
        &wrap(
            &sid,
            rid,
            "type='terminate'",
            "<presence xmlns='jabber:client' type='unavailable'/>",
        ),
    )
    .await;
    assert_eq!(end.attr("type"), Some("terminate"));
    let gone = post(addr, &wrap(&sid, rid + 1, "", "")).await;
    assert_eq!(gone.attr("condition"), Some("item-not-found"));
    server.stop();
}

#[tokio::test]
async fn bad_requests_end_with_their_terminal_conditions() {
    let (server, addr) = server("bosh-errors").await;
    let unknown = post(addr, &wrap("nope", 5, "", "")).await;
    assert_eq!(unknown.attr("type"), Some("terminate"));
    assert_eq!(unknown.attr("condition"), Some("item-not-found"));
    let bad = post(
        addr,
        "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'><unclosed></body>",
    )
    .await;
    assert_eq!(bad.attr("condition"), Some("bad-request"));
    let host = post(
        addr,
        &format!("<body rid='1' to='elsewhere.example' wait='2' hold='1' xmlns='{NS_BOSH}'/>"),
    )
    .await;
    assert_eq!(host.attr("condition"), Some("host-unknown"));
    // A rid far ahead of the window ends the session.
    let created = post(
        addr,
        &format!("<body rid='10' to='localhost' wait='2' hold='1' xmlns='{NS_BOSH}'/>"),
    )
    .await;
    let sid = created.attr("sid").unwrap().to_owned();
    let ahead = post(addr, &wrap(&sid, 50, "", "")).await;
    assert_eq!(ahead.attr("condition"), Some("item-not-found"));
    // §7.1: rids stay below 2^53.
    let huge = post(
        addr,
        &format!(
            "<body rid='9007199254740992' to='localhost' wait='2' hold='1' xmlns='{NS_BOSH}'/>"
        ),
    )
    .await;
    assert_eq!(huge.attr("condition"), Some("bad-request"));
    server.stop();
}

#[tokio::test]
async fn sessions_per_address_are_capped_and_hold_zero_is_honoured() {
    let (server, addr) = server_with("bosh-cap", |c| c.http.bosh_sessions_per_ip = 2).await;
    let create = |hold: u32| {
        format!("<body rid='1' to='localhost' wait='2' hold='{hold}' xmlns='{NS_BOSH}'/>")
    };
    let first = post(addr, &create(0)).await;
    // §7.1: the client's hold, when below ours, is the session's.
    assert_eq!(first.attr("hold"), Some("0"));
    assert!(first.attr("sid").is_some());
    assert!(post(addr, &create(1)).await.attr("sid").is_some());
    let third = post(addr, &create(1)).await;
    assert_eq!(third.attr("condition"), Some("policy-violation"));
    // With hold 0 a poll is answered at once, even with nothing to say.
    let sid = first.attr("sid").unwrap();
    let polled = post(addr, &wrap(sid, 2, "", "")).await;
    assert_eq!(polled.attr("type"), None);
    assert_eq!(polled.children().count(), 0);
    server.stop();
}
