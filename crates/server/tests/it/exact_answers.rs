//! The exact RFC and XEP answers the black-box pass found missing, each
//! over real sockets: messages to a resource that is gone (RFC 6121
//! §8.5.3.2.1), the initial presence echo before offline messages (§4.2.2,
//! XEP-0160), who may read an account's disco#info (XEP-0030 §8), the
//! server's own caps node (XEP-0115), stream management before
//! authentication (XEP-0198 §3), the stream after an account removal
//! (XEP-0077 §3.2), accounts' last activity (XEP-0012), and a message being
//! in the archive before its recipient can query for it (XEP-0313).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chorus_xml::{Element, StreamEvent};

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NS_CAPS: &str = "http://jabber.org/protocol/caps";
const NS_LAST: &str = "jabber:iq:last";

async fn server(tag: &str) -> chorus_server::Server {
    let server = start(test_config(tag)).await;
    for (u, p) in [("alice", "wonderland"), ("bob", "builder"), ("carol", "cc")] {
        add_user(&server, u, p).await;
    }
    server
}

async fn login(
    server: &chorus_server::Server,
    user: &str,
    password: &str,
    res: &str,
) -> XmppClient {
    XmppClient::login(server.first_addr().unwrap(), user, password, Some(res))
        .await
        .0
}

/// Sends an IQ and returns the answer, skipping anything else.
async fn ask(c: &mut XmppClient, id: &str, iq: &str) -> Element {
    c.send(iq).await;
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id) {
            return e;
        }
    }
}

/// Everything that arrives before the answer to a ping.
async fn settle(c: &mut XmppClient, id: &str) -> Vec<Element> {
    c.send(&format!(
        "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let mut got = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id) {
            return got;
        }
        got.push(e);
    }
}

/// bob and alice subscribed to each other (both), once both rosters say so
/// (the two halves run in the two senders' actors).
async fn befriend(server: &chorus_server::Server, alice: &mut XmppClient, bob: &mut XmppClient) {
    // One step at a time: each runs both halves in its sender's actor, so
    // it is complete once the sender's ping comes back.
    for (step, (kind, to)) in [
        ("subscribe", "bob@localhost"),
        ("subscribed", "alice@localhost"),
        ("subscribe", "alice@localhost"),
        ("subscribed", "bob@localhost"),
    ]
    .into_iter()
    .enumerate()
    {
        let c: &mut XmppClient = if to == "bob@localhost" {
            &mut *alice
        } else {
            &mut *bob
        };
        c.send(&format!("<presence type='{kind}' to='{to}'/>"))
            .await;
        settle(c, &format!("f{step}")).await;
    }
    use chorus_storage::{RosterStore, Subscription};
    for (user, contact) in [("alice", "bob@localhost"), ("bob", "alice@localhost")] {
        let mut both = false;
        for _ in 0..200 {
            let item = server
                .storage
                .roster_item(user, "localhost", contact)
                .await
                .unwrap();
            if item.is_some_and(|i| i.subscription == Subscription::Both) {
                both = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(both, "{user} and {contact} never became contacts");
    }
}

#[tokio::test]
async fn messages_to_a_resource_that_is_gone_follow_rfc_6121_8_5_3_2_1() {
    let server = server("gone-resource").await;
    let mut alice = login(&server, "alice", "wonderland", "a").await;
    let mut bob = login(&server, "bob", "builder", "b").await;
    settle(&mut bob, "s0").await;
    // normal: service-unavailable to the sender, not delivered elsewhere.
    alice
        .send("<message to='bob@localhost/gone' id='n'><body>normal</body></message>")
        .await;
    // headline: silently ignored.
    alice
        .send("<message to='bob@localhost/gone' type='headline' id='h'><body>news</body></message>")
        .await;
    // chat: as if sent to the bare JID, so bob's available resource gets it.
    alice
        .send("<message to='bob@localhost/gone' type='chat' id='c'><body>chat</body></message>")
        .await;
    let got = settle(&mut alice, "s1").await;
    let errors: Vec<(&str, String)> = got
        .iter()
        .filter(|e| e.name() == "message")
        .map(|e| (e.attr("id").unwrap_or_default(), stanza_error_condition(e)))
        .collect();
    assert_eq!(errors, vec![("n", "service-unavailable".to_owned())]);
    let to_bob: Vec<String> = settle(&mut bob, "s2")
        .await
        .iter()
        .filter(|e| e.name() == "message")
        .filter_map(|e| e.attr("id").map(str::to_owned))
        .collect();
    assert_eq!(to_bob, vec!["c".to_owned()]);
    server.stop();
}

#[tokio::test]
async fn the_initial_presence_echo_comes_before_offline_messages() {
    let server = server("echo-first").await;
    let mut bob = login(&server, "bob", "builder", "b").await;
    bob.send("<message to='alice@localhost' type='chat' id='o'><body>while away</body></message>")
        .await;
    settle(&mut bob, "s").await;
    // login() sends the initial presence.
    let mut alice = login(&server, "alice", "wonderland", "a").await;
    let first = alice.next_element().await;
    assert!(
        first.name() == "presence" && first.attr("from") == Some("alice@localhost/a"),
        "RFC 6121 §4.2.2 echo first, got {}",
        first.to_xml()
    );
    let second = alice.next_element().await;
    assert_eq!(second.attr("id"), Some("o"), "{}", second.to_xml());
    server.stop();
}

#[tokio::test]
async fn an_accounts_disco_info_is_only_for_those_who_see_its_presence() {
    let server = server("disco-8").await;
    let mut alice = login(&server, "alice", "wonderland", "a").await;
    let mut bob = login(&server, "bob", "builder", "b").await;
    let mut carol = login(&server, "carol", "cc", "c").await;
    befriend(&server, &mut alice, &mut bob).await;
    let info = |id: &str, to: &str, node: &str| {
        format!("<iq type='get' id='{id}' to='{to}'><query xmlns='{NS_DISCO_INFO}'{node}/></iq>")
    };
    // XEP-0030 §8: a stranger learns nothing, with or without a node.
    for (id, node) in [("i1", ""), ("i2", " node='x'")] {
        let r = ask(&mut carol, id, &info(id, "alice@localhost", node)).await;
        assert_eq!(
            stanza_error_condition(&r),
            "service-unavailable",
            "{}",
            r.to_xml()
        );
    }
    // ... and the same for an account that does not exist.
    let r = ask(&mut carol, "i3", &info("i3", "nobody@localhost", "")).await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");
    // A contact with a subscription sees the account.
    let r = ask(&mut bob, "i4", &info("i4", "alice@localhost", "")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    let q = r.get_child("query", NS_DISCO_INFO).unwrap();
    let id = q.get_child("identity", NS_DISCO_INFO).unwrap();
    assert_eq!(id.attr("category"), Some("account"));
    // disco#items of an account that does not exist: an empty result.
    let r = ask(
        &mut carol,
        "i5",
        &format!(
            "<iq type='get' id='i5' to='nobody@localhost'><query xmlns='{NS_DISCO_ITEMS}'/></iq>"
        ),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    assert_eq!(
        r.get_child("query", NS_DISCO_ITEMS)
            .unwrap()
            .children()
            .count(),
        0
    );
    server.stop();
}

#[tokio::test]
async fn the_servers_caps_feature_and_node_are_answered() {
    let server = server("caps-node").await;
    let addr = server.first_addr().unwrap();
    let (mut c, features) = XmppClient::authenticate(addr, "alice", "wonderland").await;
    let caps = features.get_child("c", NS_CAPS).unwrap();
    // The node is the project's address, declared once (the workspace
    // manifest's `repository`).
    assert_eq!(caps.attr("node"), Some(env!("CARGO_PKG_REPOSITORY")));
    let node = format!(
        "{}#{}",
        caps.attr("node").unwrap(),
        caps.attr("ver").unwrap()
    );
    c.bind(Some("r")).await.unwrap();
    let plain = ask(
        &mut c,
        "d1",
        &format!("<iq type='get' id='d1' to='localhost'><query xmlns='{NS_DISCO_INFO}'/></iq>"),
    )
    .await;
    let features = |r: &Element| -> Vec<String> {
        r.get_child("query", NS_DISCO_INFO)
            .unwrap()
            .children()
            .filter_map(|f| f.attr("var").map(str::to_owned))
            .collect()
    };
    // XEP-0115 §7: an entity that supports caps says so.
    assert!(
        features(&plain).contains(&NS_CAPS.to_owned()),
        "{}",
        plain.to_xml()
    );
    // §6.2: the node#ver of the advertised caps is answered, node echoed,
    // with exactly the features that were hashed.
    let r = ask(
        &mut c,
        "d2",
        &format!("<iq type='get' id='d2' to='localhost'><query xmlns='{NS_DISCO_INFO}' node='{node}'/></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    assert_eq!(
        r.get_child("query", NS_DISCO_INFO).unwrap().attr("node"),
        Some(node.as_str())
    );
    assert_eq!(features(&r), features(&plain));
    server.stop();
}

#[tokio::test]
async fn stream_management_before_authentication_is_failed_and_the_stream_goes_on() {
    let server = server("sm-preauth").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    c.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    let failed = c.next_element().await;
    assert!(failed.is("failed", "urn:xmpp:sm:3"), "{}", failed.to_xml());
    assert!(failed
        .get_child("unexpected-request", "urn:ietf:params:xml:ns:xmpp-stanzas")
        .is_some());
    // The stream is still there: authentication works.
    c.scram(
        chorus_sasl::Mechanism::ScramSha256Plus,
        "alice",
        "wonderland",
        Some(chorus_sasl::ChannelBindingType::TlsExporter),
    )
    .await
    .unwrap();
    server.stop();
}

#[tokio::test]
async fn removing_ones_account_answers_then_ends_the_stream_with_not_authorized() {
    let mut cfg = test_config("unregister");
    cfg.register.enabled = true;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    let mut alice = login(&server, "alice", "wonderland", "a").await;
    let r = ask(
        &mut alice,
        "u",
        "<iq type='set' id='u'><query xmlns='jabber:iq:register'><remove/></query></iq>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    // XEP-0077 §3.2: "the server SHOULD then return a <not-authorized/>
    // stream error".
    assert_eq!(alice.expect_stream_error().await, "not-authorized");
    server.stop();
}

#[tokio::test]
async fn an_accounts_last_activity_is_for_its_contacts() {
    let server = server("last-account").await;
    let mut alice = login(&server, "alice", "wonderland", "a").await;
    let mut bob = login(&server, "bob", "builder", "b").await;
    let mut carol = login(&server, "carol", "cc", "c").await;
    befriend(&server, &mut alice, &mut bob).await;
    let query = |id: &str| {
        format!("<iq type='get' id='{id}' to='alice@localhost'><query xmlns='{NS_LAST}'/></iq>")
    };
    // Online: 0 seconds (XEP-0012 §3).
    let r = ask(&mut bob, "l1", &query("l1")).await;
    let q = r
        .get_child("query", NS_LAST)
        .unwrap_or_else(|| panic!("{}", r.to_xml()));
    assert_eq!(q.attr("seconds"), Some("0"));
    // Not a contact: forbidden (§3: MUST).
    let r = ask(&mut carol, "l2", &query("l2")).await;
    assert_eq!(stanza_error_condition(&r), "forbidden");
    // Logged out with a status: the time since, and the status.
    alice
        .send("<presence type='unavailable'><status>off to sleep</status></presence>")
        .await;
    alice.send("</stream:stream>").await;
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 2).await);
    let mut answer = None;
    for i in 0..50 {
        let id = format!("l3-{i}");
        let r = ask(&mut bob, &id, &query(&id)).await;
        if r.attr("type") == Some("result") {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = answer.expect("an answer once the logout is recorded");
    let q = r.get_child("query", NS_LAST).unwrap();
    let seconds: u64 = q.attr("seconds").unwrap().parse().unwrap();
    assert!(seconds < 60, "{}", r.to_xml());
    assert_eq!(q.text(), "off to sleep");
    server.stop();
}

#[tokio::test]
async fn a_delivered_message_is_already_in_the_recipients_archive() {
    let server = server("mam-visible").await;
    let mut alice = login(&server, "alice", "wonderland", "a").await;
    let mut bob = login(&server, "bob", "builder", "b").await;
    settle(&mut alice, "s").await;
    for i in 0..20 {
        bob.send(&format!(
            "<message to='alice@localhost' type='chat' id='m{i}'><body>{i}</body></message>"
        ))
        .await;
        // As soon as alice has it, her archive has it: she asks for the
        // last message at once.
        let m = loop {
            let e = alice.next_element().await;
            if e.name() == "message" {
                break e;
            }
        };
        let sid = m
            .children()
            .find(|c| c.is("stanza-id", "urn:xmpp:sid:0"))
            .and_then(|c| c.attr("id"))
            .unwrap()
            .to_owned();
        let id = format!("q{i}");
        alice
            .send(&format!(
                "<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='{id}'>\
                 <x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
                 <field var='ids'><value>{sid}</value></field></x></query></iq>"
            ))
            .await;
        let mut found = false;
        loop {
            match alice.next_event().await {
                Some(StreamEvent::Element(e)) if e.name() == "iq" && e.attr("id") == Some(&id) => {
                    assert_eq!(e.attr("type"), Some("result"), "{}", e.to_xml());
                    break;
                }
                Some(StreamEvent::Element(e))
                    if e.get_child("result", "urn:xmpp:mam:2").is_some() =>
                {
                    found = true;
                }
                Some(_) => {}
                None => panic!("closed"),
            }
        }
        assert!(found, "message {i} was delivered before it was archived");
    }
    server.stop();
}
