//! XEP-0357 push notifications over real sockets. A second client plays
//! the app server: its full JID is the push `jid`, and it answers each
//! notification as the test says. Covered: enabling and disabling and
//! their errors (over-long nodes, jids and publish-options included), a notification per message to an offline account or a
//! detached session (none while attached, none again when the detached
//! session ends), what the summary carries (nothing by default; body and
//! sender when configured; never an encrypted message's text), the
//! throttle, the app server's `cancel` removing a registration and `wait`
//! keeping it, and registrations surviving a restart and going with the
//! account.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;
use chorus_jid::{BareJid, FullJid};
use chorus_router::Outcome;
use chorus_storage::PushStore;
use chorus_xml::Element;

const NS_PUSH: &str = "urn:xmpp:push:0";
const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_DATA: &str = "jabber:x:data";
const NS_SM: &str = "urn:xmpp:sm:3";
/// The app server: a plain client whose full JID is the push jid.
const APP: &str = "app@localhost/push";

async fn server_with(
    tag: &str,
    tune: impl FnOnce(&mut chorus_config::Config),
) -> chorus_server::Server {
    let mut cfg = test_config(tag);
    tune(&mut cfg);
    let server = start(cfg).await;
    for (user, pw) in [
        ("alice", "wonderland"),
        ("bob", "builder"),
        ("app", "server"),
    ] {
        add_user(&server, user, pw).await;
    }
    server
}

async fn app_server(addr: std::net::SocketAddr) -> XmppClient {
    XmppClient::login(addr, "app", "server", Some("push"))
        .await
        .0
}

/// Sends an IQ set (or what `attrs` make it) and returns its answer,
/// skipping anything else.
async fn iq(c: &mut XmppClient, id: &str, attrs: &str, payload: &str) -> Element {
    let typ = if attrs.contains("type=") {
        ""
    } else {
        " type='set'"
    };
    c.send(&format!("<iq id='{id}'{typ}{attrs}>{payload}</iq>"))
        .await;
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id) {
            return e;
        }
    }
}

/// `<enable/>` with a publish-options form holding `secret`.
fn enable_xml(node: &str, secret: &str) -> String {
    format!(
        "<enable xmlns='{NS_PUSH}' jid='{APP}' node='{node}'>\
         <x xmlns='{NS_DATA}' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         <field var='secret'><value>{secret}</value></field></x></enable>"
    )
}

async fn enable(c: &mut XmppClient, node: &str, secret: &str) {
    let r = iq(c, "en", "", &enable_xml(node, secret)).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
}

/// Alice enables push and goes offline.
async fn alice_enables_then_leaves(server: &chorus_server::Server) {
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("phone")).await;
    enable(&mut alice, "node-1", "s3cret").await;
    alice.drop_connection();
    let bare: BareJid = "alice@localhost".parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || server
            .sessions
            .resources(&bare)
            .is_empty())
        .await
    );
}

async fn chat(c: &mut XmppClient, to: &str, id: &str, payload: &str) {
    c.send(&format!(
        "<message to='{to}' type='chat' id='{id}'>{payload}</message>"
    ))
    .await;
}

/// The next notification at the app server.
async fn next_push(app: &mut XmppClient) -> Element {
    loop {
        let e = app.next_element().await;
        if e.name() == "presence" {
            continue;
        }
        assert!(
            e.name() == "iq" && e.attr("type") == Some("set"),
            "expected a notification: {}",
            e.to_xml()
        );
        return e;
    }
}

/// Answers a notification: a result, or an error of type `kind`.
async fn answer(app: &mut XmppClient, push: &Element, error: Option<(&str, &str)>) {
    let (id, from) = (push.attr("id").unwrap(), push.attr("from").unwrap());
    let xml = match error {
        None => format!("<iq type='result' id='{id}' to='{from}'/>"),
        Some((kind, cond)) => format!(
            "<iq type='error' id='{id}' to='{from}'><error type='{kind}'>\
             <{cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ),
    };
    app.send(&xml).await;
}

/// Nothing more reaches the app server: notifications go out from tasks
/// of their own, so give them a moment, then a ping comes back with
/// nothing before it.
async fn no_more_pushes(app: &mut XmppClient) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.send("<iq to='localhost' type='get' id='quiet'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = app.next_element().await;
        if e.name() == "presence" {
            continue;
        }
        assert_eq!(e.attr("id"), Some("quiet"), "unexpected: {}", e.to_xml());
        return;
    }
}

/// The summary form's fields, FORM_TYPE first.
fn summary(push: &Element) -> Vec<(String, String)> {
    let publish = push
        .get_child("pubsub", NS_PUBSUB)
        .and_then(|p| p.get_child("publish", NS_PUBSUB))
        .unwrap_or_else(|| panic!("no publish: {}", push.to_xml()));
    let x = publish
        .get_child("item", NS_PUBSUB)
        .and_then(|i| i.get_child("notification", NS_PUSH))
        .and_then(|n| n.get_child("x", NS_DATA))
        .unwrap_or_else(|| panic!("no summary: {}", push.to_xml()));
    x.children()
        .filter(|f| f.is("field", NS_DATA))
        .map(|f| {
            let value = f
                .get_child("value", NS_DATA)
                .map(Element::text)
                .unwrap_or_default();
            (f.attr("var").unwrap_or_default().to_owned(), value)
        })
        .collect()
}

/// The `secret` field of the publish-options sent back.
fn secret(push: &Element) -> Option<String> {
    push.get_child("pubsub", NS_PUBSUB)?
        .get_child("publish-options", NS_PUBSUB)?
        .get_child("x", NS_DATA)?
        .children()
        .find(|f| f.attr("var") == Some("secret"))?
        .get_child("value", NS_DATA)
        .map(Element::text)
}

fn count_only() -> Vec<(String, String)> {
    vec![
        ("FORM_TYPE".into(), "urn:xmpp:push:summary".into()),
        ("message-count".into(), "1".into()),
    ]
}

async fn registrations(server: &chorus_server::Server) -> usize {
    server
        .storage
        .push_registrations("alice", "localhost")
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn enabling_and_disabling_with_their_errors() {
    let server = server_with("push-enable", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("phone")).await;

    // §5: the feature is on the account's bare JID.
    let info = iq(
        &mut alice,
        "d",
        " type='get' to='alice@localhost'",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    assert!(info.to_xml().contains(NS_PUSH), "{}", info.to_xml());

    // No jid: bad-request. A malformed one: jid-malformed.
    let r = iq(
        &mut alice,
        "e1",
        "",
        &format!("<enable xmlns='{NS_PUSH}' node='n'/>"),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "bad-request");
    let r = iq(
        &mut alice,
        "e2",
        "",
        &format!("<enable xmlns='{NS_PUSH}' jid='@x' node='n'/>"),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "jid-malformed");
    // Publish-options that are another form: bad-request.
    let r = iq(
        &mut alice,
        "e3",
        "",
        &format!(
            "<enable xmlns='{NS_PUSH}' jid='{APP}' node='n'><x xmlns='{NS_DATA}' type='submit'>\
             <field var='FORM_TYPE'><value>urn:example:other</value></field></x></enable>"
        ),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "bad-request");
    // Another account's registrations are not alice's to change.
    let r = iq(
        &mut alice,
        "e4",
        " to='bob@localhost'",
        &enable_xml("n", "s"),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "forbidden");
    // A sender of another server never reaches the handler.
    let from_afar = Element::from_xml(&format!(
        "<iq xmlns='jabber:client' type='set' id='x' from='eve@elsewhere.example/x' \
         to='alice@localhost'>{}</iq>",
        enable_xml("n", "s")
    ))
    .unwrap();
    match server.router.route(from_afar).await {
        Outcome::Reply(e) => assert_eq!(stanza_error_condition(&e), "forbidden"),
        other => panic!("{other:?}"),
    }
    // What would be stored is bounded: a node past 1024 bytes, a jid and
    // node together past 2048, publish-options past 4096 are
    // not-acceptable (RFC 6120 §8.3.3.9), before anything is stored.
    let r = iq(&mut alice, "e5", "", &enable_xml(&"n".repeat(1025), "s")).await;
    assert_eq!(
        stanza_error_condition(&r),
        "not-acceptable",
        "{}",
        r.to_xml()
    );
    let long_jid = format!("{}@localhost/{}", "a".repeat(1000), "r".repeat(1000));
    let r = iq(
        &mut alice,
        "e6",
        "",
        &format!(
            "<enable xmlns='{NS_PUSH}' jid='{long_jid}' node='{}'/>",
            "n".repeat(100)
        ),
    )
    .await;
    assert_eq!(
        stanza_error_condition(&r),
        "not-acceptable",
        "{}",
        r.to_xml()
    );
    let r = iq(&mut alice, "e7", "", &enable_xml("n", &"s".repeat(5000))).await;
    assert_eq!(
        stanza_error_condition(&r),
        "not-acceptable",
        "{}",
        r.to_xml()
    );
    assert_eq!(registrations(&server).await, 0);
    // At the bound, accepted.
    enable(&mut alice, &"n".repeat(1024), "s").await;
    assert_eq!(registrations(&server).await, 1);
    let r = iq(
        &mut alice,
        "x0",
        "",
        &format!("<disable xmlns='{NS_PUSH}' jid='{APP}'/>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(registrations(&server).await, 0);

    // Enabled twice with the same node: one registration, replaced.
    enable(&mut alice, "n1", "a").await;
    enable(&mut alice, "n1", "b").await;
    enable(&mut alice, "n2", "c").await;
    assert_eq!(registrations(&server).await, 2);
    // A node: that one; no node: every node of the app server. No jid:
    // bad-request.
    let r = iq(
        &mut alice,
        "x1",
        "",
        &format!("<disable xmlns='{NS_PUSH}'/>"),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "bad-request");
    let r = iq(
        &mut alice,
        "x2",
        "",
        &format!("<disable xmlns='{NS_PUSH}' jid='{APP}' node='n1'/>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(registrations(&server).await, 1);
    let r = iq(
        &mut alice,
        "x3",
        "",
        &format!("<disable xmlns='{NS_PUSH}' jid='{APP}'/>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(registrations(&server).await, 0);
    server.stop();
}

#[tokio::test]
async fn a_message_to_an_offline_account_notifies_once_without_body_or_sender() {
    let server = server_with("push-offline", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let mut app = app_server(addr).await;
    alice_enables_then_leaves(&server).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;

    chat(
        &mut bob,
        "alice@localhost",
        "m1",
        "<body>meet me at noon</body>",
    )
    .await;
    let push = next_push(&mut app).await;
    assert_eq!(
        (push.attr("from"), push.attr("to")),
        (Some("alice@localhost"), Some(APP))
    );
    let publish = push
        .get_child("pubsub", NS_PUBSUB)
        .and_then(|p| p.get_child("publish", NS_PUBSUB))
        .unwrap();
    assert_eq!(publish.attr("node"), Some("node-1"));
    assert_eq!(summary(&push), count_only());
    assert_eq!(secret(&push).as_deref(), Some("s3cret"));
    assert!(!push.to_xml().contains("noon"), "{}", push.to_xml());
    answer(&mut app, &push, None).await;

    // A chat state alone is nothing to wake a device for.
    chat(
        &mut bob,
        "alice@localhost",
        "m2",
        "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
    )
    .await;
    no_more_pushes(&mut app).await;
    assert_eq!(registrations(&server).await, 1);
    server.stop();
}

#[tokio::test]
async fn a_message_to_a_detached_session_notifies_once_and_not_again_when_it_ends() {
    let server = server_with("push-detached", |c| c.c2s.sm_resume_timeout_secs = 3).await;
    let addr = server.first_addr().unwrap();
    let mut app = app_server(addr).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;

    // Alice with stream management and resumption.
    let (mut alice, _) = XmppClient::authenticate(addr, "alice", "wonderland").await;
    let jid = alice.bind(Some("phone")).await.unwrap();
    alice
        .send(&format!("<enable xmlns='{NS_SM}' resume='true'/>"))
        .await;
    assert!(alice.next_element().await.is("enabled", NS_SM));
    alice.send("<presence/>").await;
    enable(&mut alice, "node-1", "s3cret").await;

    // Attached: the message is delivered, nobody is notified.
    chat(&mut bob, &jid, "attached", "<body>here?</body>").await;
    assert_eq!(alice.expect("message").await.attr("id"), Some("attached"));
    no_more_pushes(&mut app).await;

    // Detached: kept for resumption, and the app server is told once.
    alice.drop_connection();
    let full: FullJid = jid.parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || server
            .sessions
            .get(&full)
            .is_some_and(|s| s.detached()))
        .await
    );
    chat(&mut bob, &jid, "away", "<body>there?</body>").await;
    let push = next_push(&mut app).await;
    assert_eq!(summary(&push), count_only());
    assert_eq!(secret(&push).as_deref(), Some("s3cret"));
    answer(&mut app, &push, None).await;
    no_more_pushes(&mut app).await;

    // The resumption never comes: what the session kept goes offline,
    // without a second notification for the same messages.
    assert!(
        wait_until(Duration::from_secs(15), || server
            .sessions
            .get(&full)
            .is_none())
        .await
    );
    let mut kept = false;
    for _ in 0..500 {
        use chorus_storage::OfflineStore;
        if server
            .storage
            .count_offline("alice", "localhost")
            .await
            .unwrap()
            >= 1
        {
            kept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(kept, "the detached session's messages went offline");
    no_more_pushes(&mut app).await;
    server.stop();
}

#[tokio::test]
async fn body_and_sender_when_configured_never_an_encrypted_messages_text() {
    let server = server_with("push-body", |c| {
        c.push.include_body = true;
        c.push.include_sender = true;
    })
    .await;
    let addr = server.first_addr().unwrap();
    let mut app = app_server(addr).await;
    alice_enables_then_leaves(&server).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;

    chat(
        &mut bob,
        "alice@localhost",
        "m1",
        "<body>meet me at noon</body>",
    )
    .await;
    let push = next_push(&mut app).await;
    let mut want = count_only();
    want.push(("last-message-sender".into(), "bob@localhost".into()));
    want.push(("last-message-body".into(), "meet me at noon".into()));
    assert_eq!(summary(&push), want);
    answer(&mut app, &push, None).await;

    // OMEMO, with the usual fallback body: notified, flagged by the
    // sender only, its text never sent.
    chat(
        &mut bob,
        "alice@localhost",
        "m2",
        "<body>I sent you an OMEMO encrypted message</body>\
         <encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/><payload>AAAA</payload></encrypted>\
         <encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations.axolotl'/>",
    )
    .await;
    let push = next_push(&mut app).await;
    want.pop();
    assert_eq!(summary(&push), want);
    assert!(!push.to_xml().contains("OMEMO"), "{}", push.to_xml());
    answer(&mut app, &push, None).await;

    // Encrypted without any body at all (kept offline for its store
    // hint, as Conversations sends OMEMO) still wakes the device.
    chat(
        &mut bob,
        "alice@localhost",
        "m3",
        "<encrypted xmlns='eu.siacs.conversations.axolotl'><payload>AAAA</payload></encrypted>\
         <store xmlns='urn:xmpp:hints'/>",
    )
    .await;
    let push = next_push(&mut app).await;
    assert_eq!(summary(&push), want);
    answer(&mut app, &push, None).await;
    no_more_pushes(&mut app).await;
    server.stop();
}

#[tokio::test]
async fn the_throttle_drops_what_exceeds_the_burst() {
    let server = server_with("push-throttle", |c| {
        c.push.burst = 2;
        c.push.rate_per_minute = 1;
    })
    .await;
    let addr = server.first_addr().unwrap();
    let mut app = app_server(addr).await;
    alice_enables_then_leaves(&server).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    for i in 0..5 {
        chat(
            &mut bob,
            "alice@localhost",
            &format!("m{i}"),
            "<body>hey</body>",
        )
        .await;
    }
    for _ in 0..2 {
        let push = next_push(&mut app).await;
        answer(&mut app, &push, None).await;
    }
    no_more_pushes(&mut app).await;
    server.stop();
}

#[tokio::test]
async fn an_app_servers_cancel_removes_the_registration_and_wait_keeps_it() {
    let server = server_with("push-errors", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let mut app = app_server(addr).await;
    alice_enables_then_leaves(&server).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;

    chat(&mut bob, "alice@localhost", "m1", "<body>1</body>").await;
    let push = next_push(&mut app).await;
    answer(&mut app, &push, Some(("wait", "resource-constraint"))).await;
    // Kept: the next message is notified too.
    chat(&mut bob, "alice@localhost", "m2", "<body>2</body>").await;
    let push = next_push(&mut app).await;
    assert_eq!(registrations(&server).await, 1);
    answer(&mut app, &push, Some(("cancel", "item-not-found"))).await;
    // Removed: nothing for the next message.
    let mut gone = false;
    for _ in 0..500 {
        if registrations(&server).await == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the registration outlived a cancel");
    chat(&mut bob, "alice@localhost", "m3", "<body>3</body>").await;
    no_more_pushes(&mut app).await;
    server.stop();
}

#[tokio::test]
async fn registrations_survive_a_restart_and_go_with_the_account() {
    let config = {
        let mut c = test_config("push-restart");
        c.register.enabled = false;
        c
    };
    let server = start(config.clone()).await;
    for (user, pw) in [
        ("alice", "wonderland"),
        ("bob", "builder"),
        ("app", "server"),
    ] {
        add_user(&server, user, pw).await;
    }
    alice_enables_then_leaves(&server).await;
    server.shutdown(Duration::from_secs(5)).await;
    server.wait().await;

    let server = start(config).await;
    let addr = server.first_addr().unwrap();
    let mut app = app_server(addr).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    chat(
        &mut bob,
        "alice@localhost",
        "m1",
        "<body>still there?</body>",
    )
    .await;
    let push = next_push(&mut app).await;
    assert_eq!(secret(&push).as_deref(), Some("s3cret"));
    answer(&mut app, &push, None).await;

    // Alice removes her account (XEP-0077 §3.2); the same name later
    // starts without registrations.
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("phone")).await;
    let r = iq(
        &mut alice,
        "rm",
        "",
        "<query xmlns='jabber:iq:register'><remove/></query>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    add_user(&server, "alice", "again").await;
    assert_eq!(registrations(&server).await, 0);
    chat(&mut bob, "alice@localhost", "m2", "<body>hello?</body>").await;
    no_more_pushes(&mut app).await;
    server.stop();
}
