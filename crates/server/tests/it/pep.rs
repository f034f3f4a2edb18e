//! XEP-0163 Personal Eventing Protocol over XEP-0060, through real sockets:
//! auto-created nodes, `+notify` filtering from the clients' XEP-0115 caps
//! (asked once per verification string, then cached), the last item at
//! initial presence, access models, publish-options (XEP-0223), explicit
//! subscriptions, owner operations, and each error condition with its
//! `pubsub#errors` child.
//!
//! Notifications of a publish are routed in the publisher's actor before
//! its result is written, and a client's next input is read only once the
//! previous one is handled, so after the publisher has its result and the
//! recipient its own ping answer, the recipient has read every
//! notification meant for it (the same reasoning as blocking.rs).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use chorus_storage::{PubsubStore, RosterItem, RosterStore, Subscription};
use chorus_supervisor::StopMode;
use chorus_xml::Element;
use sha2::Digest;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DATA_FORMS: &str = "jabber:x:data";
const CAPS_NODE: &str = "https://chorus.example/test-client";

const NICK: &str = "http://jabber.org/protocol/nick";
const AVATAR_META: &str = "urn:xmpp:avatar:metadata";
const OMEMO_DEVICES: &str = "urn:xmpp:omemo:2:devices";

fn password(user: &str) -> String {
    format!("{user}-secret")
}

/// alice with two contacts, bob and carol (carol in her group "Friends"),
/// and dave, a stranger to everyone.
async fn server(tag: &str) -> chorus_server::Server {
    server_with(test_config(tag)).await
}

async fn server_with(config: chorus_config::Config) -> chorus_server::Server {
    let server = start(config).await;
    for u in ["alice", "bob", "carol", "dave"] {
        add_user(&server, u, &password(u)).await;
    }
    let both = |jid: &str, groups: &[&str]| RosterItem {
        jid: jid.to_owned(),
        name: None,
        subscription: Subscription::Both,
        ask: false,
        approved: false,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    let s = &server.storage;
    s.put_roster_item("alice", "localhost", &both("bob@localhost", &[]))
        .await
        .unwrap();
    s.put_roster_item("alice", "localhost", &both("carol@localhost", &["Friends"]))
        .await
        .unwrap();
    s.put_roster_item("bob", "localhost", &both("alice@localhost", &[]))
        .await
        .unwrap();
    s.put_roster_item("carol", "localhost", &both("alice@localhost", &[]))
        .await
        .unwrap();
    server
}

/// The XEP-0115 verification string of a test client with `features`,
/// hashed with SHA-256.
fn ver(features: &[String]) -> String {
    let mut sorted = features.to_vec();
    sorted.sort();
    let mut s = "client/pc//Chorus test<".to_owned();
    for f in &sorted {
        s.push_str(f);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s.as_bytes()))
}

fn features_for(notify: &[&str]) -> Vec<String> {
    let mut f = vec![
        DISCO_INFO.to_owned(),
        "http://jabber.org/protocol/caps".to_owned(),
    ];
    f.extend(notify.iter().map(|n| format!("{n}+notify")));
    f
}

async fn login(server: &chorus_server::Server, user: &str, resource: &str) -> XmppClient {
    let (c, _) = XmppClient::login(
        server.first_addr().unwrap(),
        user,
        &password(user),
        Some(resource),
    )
    .await;
    c
}

/// Logs in and sends initial presence with caps asking for `notify`.
/// When `asked`, the server must query the caps (once per verification
/// string): the client answers, then waits for `last` last-item
/// notifications, which the server sends once it knows what the client
/// wants. Returns the client and those notifications.
async fn login_with_caps(
    server: &chorus_server::Server,
    user: &str,
    resource: &str,
    notify: &[&str],
    asked: bool,
    last: usize,
) -> (XmppClient, Vec<Element>) {
    let mut c = login(server, user, resource).await;
    let features = features_for(notify);
    let v = ver(&features);
    c.send(&format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-256' node='{CAPS_NODE}' ver='{v}'/></presence>"
    ))
    .await;
    let mut events = Vec::new();
    if asked {
        let query = loop {
            let e = c.next_element().await;
            if e.name() == "iq" && e.attr("type") == Some("get") {
                break e;
            }
            if is_event(&e) {
                events.push(e);
            }
        };
        let q = query
            .get_child("query", DISCO_INFO)
            .expect("a disco#info query");
        assert_eq!(q.attr("node"), Some(format!("{CAPS_NODE}#{v}").as_str()));
        assert_eq!(
            query.attr("from"),
            Some(format!("{user}@localhost").as_str())
        );
        let mut answer = format!(
            "<iq type='result' id='{}' to='{}'><query xmlns='{DISCO_INFO}' node='{CAPS_NODE}#{v}'>\
             <identity category='client' type='pc' name='Chorus test'/>",
            query.attr("id").unwrap(),
            query.attr("from").unwrap()
        );
        for f in &features {
            answer.push_str(&format!("<feature var='{f}'/>"));
        }
        answer.push_str("</query></iq>");
        c.send(&answer).await;
    }
    while events.len() < last {
        let e = c.next_element().await;
        if is_event(&e) {
            events.push(e);
        }
    }
    (c, events)
}

fn is_event(e: &Element) -> bool {
    e.name() == "message" && e.get_child("event", EVENT).is_some()
}

static IDS: AtomicUsize = AtomicUsize::new(0);

/// Sends an IQ (its `id` filled in) and returns what arrived before its
/// answer, and the answer.
async fn ask(c: &mut XmppClient, iq: &str) -> (Vec<Element>, Element) {
    let id = format!("q{}", IDS.fetch_add(1, Ordering::Relaxed));
    c.send(&iq.replacen("<iq ", &format!("<iq id='{id}' "), 1))
        .await;
    let mut before = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            return (before, e);
        }
        if e.name() != "presence" {
            before.push(e);
        }
    }
}

/// The answer must be a result: its payload.
async fn ok(c: &mut XmppClient, iq: &str) -> Option<Element> {
    let (_, r) = ask(c, iq).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    let payload = r.children().next().cloned();
    payload
}

/// The answer must be an error: its condition and `pubsub#errors` child.
async fn err(c: &mut XmppClient, iq: &str) -> (String, String) {
    let (_, r) = ask(c, iq).await;
    assert_eq!(r.attr("type"), Some("error"), "{}", r.to_xml());
    let app = r
        .get_child("error", "jabber:client")
        .and_then(|e| e.children().find(|c| c.ns() == ERRORS))
        .map(|a| a.name().to_owned())
        .unwrap_or_default();
    (stanza_error_condition(&r), app)
}

/// What reached `c` before a ping answer (see the module docs).
async fn sync(c: &mut XmppClient) -> Vec<Element> {
    ask(
        c,
        "<iq to='localhost' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await
    .0
}

fn publish(node: &str, id: Option<&str>, payload: &str) -> String {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    format!(
        "<iq type='set'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item{id}>{payload}</item></publish></pubsub></iq>"
    )
}

fn publish_with(node: &str, payload: &str, options: &[(&str, &str)]) -> String {
    let mut form = format!(
        "<x xmlns='{DATA_FORMS}' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
    );
    for (var, v) in options {
        form.push_str(&format!("<field var='{var}'><value>{v}</value></field>"));
    }
    form.push_str("</x>");
    format!(
        "<iq type='set'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='current'>{payload}</item></publish>\
         <publish-options>{form}</publish-options></pubsub></iq>"
    )
}

fn items_of(to: &str, node: &str) -> String {
    format!(
        "<iq type='get' to='{to}'><pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub></iq>"
    )
}

fn nick(n: &str) -> String {
    format!("<nick xmlns='{NICK}'>{n}</nick>")
}

/// The item ids and the text of their payloads in an `<items/>`.
fn items(el: &Element) -> Vec<(String, String)> {
    el.children()
        .filter(|i| i.name() == "item")
        .map(|i| {
            (
                i.attr("id").unwrap_or_default().to_owned(),
                i.children().next().map(Element::text).unwrap_or_default(),
            )
        })
        .collect()
}

/// The `<items/>` (or other child) of an event notification, checking
/// who sent it.
fn event_child(m: &Element, from: &str) -> Element {
    assert_eq!(m.attr("from"), Some(from), "{}", m.to_xml());
    assert_eq!(m.attr("type"), Some("headline"));
    m.get_child("event", EVENT)
        .and_then(|e| e.children().next())
        .cloned()
        .unwrap_or_else(|| panic!("no event in {}", m.to_xml()))
}

fn only_events(got: Vec<Element>) -> Vec<Element> {
    got.into_iter().filter(is_event).collect()
}

#[tokio::test]
async fn an_account_is_a_pep_service_in_its_disco() {
    let server = server("pep-disco").await;
    let mut alice = login(&server, "alice", "a").await;
    let info = ok(
        &mut alice,
        &format!("<iq type='get'><query xmlns='{DISCO_INFO}'/></iq>"),
    )
    .await
    .unwrap();
    let has_identity = info.children().any(|i| {
        i.name() == "identity"
            && i.attr("category") == Some("pubsub")
            && i.attr("type") == Some("pep")
    });
    assert!(has_identity, "{}", info.to_xml());
    let features: Vec<&str> = info.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        PUBSUB,
        "http://jabber.org/protocol/pubsub#publish",
        "http://jabber.org/protocol/pubsub#publish-options",
        "http://jabber.org/protocol/pubsub#auto-create",
        "http://jabber.org/protocol/pubsub#filtered-notifications",
        "http://jabber.org/protocol/pubsub#access-presence",
    ] {
        assert!(features.contains(&f), "{f} missing: {features:?}");
    }
    server.stop();
}

#[tokio::test]
async fn publishing_creates_the_node_names_the_item_and_keeps_the_newest() {
    let server = server("pep-publish").await;
    let mut alice = login(&server, "alice", "a").await;
    let r = ok(&mut alice, &publish(NICK, None, &nick("Alice")))
        .await
        .unwrap();
    // §7.1.2: the generated id comes back.
    let p = r.get_child("publish", PUBSUB).unwrap();
    assert_eq!(p.attr("node"), Some(NICK));
    let generated = p
        .get_child("item", PUBSUB)
        .unwrap()
        .attr("id")
        .unwrap()
        .to_owned();
    assert!(!generated.is_empty());
    let r = ok(&mut alice, &items_of("alice@localhost", NICK))
        .await
        .unwrap();
    assert_eq!(
        items(r.get_child("items", PUBSUB).unwrap()),
        [(generated, "Alice".to_owned())]
    );
    // A PEP node keeps one item by default: the current state.
    ok(&mut alice, &publish(NICK, Some("n2"), &nick("Alice L."))).await;
    let r = ok(&mut alice, &items_of("alice@localhost", NICK))
        .await
        .unwrap();
    assert_eq!(
        items(r.get_child("items", PUBSUB).unwrap()),
        [("n2".to_owned(), "Alice L.".to_owned())]
    );
    // The configuration a PEP node gets (XEP-0163 §5).
    let r = ok(
        &mut alice,
        &format!("<iq type='get'><pubsub xmlns='{OWNER}'><configure node='{NICK}'/></pubsub></iq>"),
    )
    .await
    .unwrap();
    let form = r
        .get_child("configure", OWNER)
        .and_then(|c| c.get_child("x", DATA_FORMS))
        .unwrap();
    let value = |var: &str| {
        form.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.get_child("value", DATA_FORMS))
            .map(Element::text)
    };
    assert_eq!(value("pubsub#access_model").as_deref(), Some("presence"));
    assert_eq!(value("pubsub#max_items").as_deref(), Some("1"));
    assert_eq!(
        value("pubsub#send_last_published_item").as_deref(),
        Some("on_sub_and_presence")
    );
    server.stop();
}

#[tokio::test]
async fn contacts_that_asked_with_plus_notify_are_notified_and_nobody_else() {
    let server = server("pep-notify").await;
    let mut alice = login(&server, "alice", "a").await;
    ok(&mut alice, &publish(NICK, Some("n0"), &nick("Alice"))).await;
    // bob wants nicknames: his caps are asked for, then he gets the last
    // item. carol and dave present caps without that interest.
    let (mut bob, last) = login_with_caps(&server, "bob", "b", &[NICK], true, 1).await;
    assert_eq!(
        items(&event_child(&last[0], "alice@localhost")),
        [("n0".into(), "Alice".into())]
    );
    let (mut carol, _) = login_with_caps(&server, "carol", "c", &[AVATAR_META], true, 0).await;
    // Same caps as bob's: known already, not asked again.
    let (mut dave, _) = login_with_caps(&server, "dave", "d", &[NICK], false, 0).await;
    // alice's own second resource wants them too.
    let (mut alice2, mine) = login_with_caps(&server, "alice", "a2", &[NICK], false, 1).await;
    assert_eq!(
        items(&event_child(&mine[0], "alice@localhost")),
        [("n0".into(), "Alice".into())]
    );
    sync(&mut carol).await;
    sync(&mut dave).await;

    ok(
        &mut alice,
        &publish(NICK, Some("n1"), &nick("Alice Liddell")),
    )
    .await;
    let got = only_events(sync(&mut bob).await);
    assert_eq!(got.len(), 1, "{got:?}");
    let e = event_child(&got[0], "alice@localhost");
    assert_eq!(e.attr("node"), Some(NICK));
    assert_eq!(items(&e), [("n1".into(), "Alice Liddell".into())]);
    assert_eq!(only_events(sync(&mut alice2).await).len(), 1);
    // carol did not ask; dave has no presence subscription.
    assert!(only_events(sync(&mut carol).await).is_empty());
    assert!(only_events(sync(&mut dave).await).is_empty());
    // alice's first resource sent no caps: nothing for it either.
    assert!(only_events(sync(&mut alice).await).is_empty());
    server.stop();
}

#[tokio::test]
async fn known_caps_are_not_asked_again_and_bring_the_last_item_at_once() {
    let server = server("pep-caps-cache").await;
    let mut alice = login(&server, "alice", "a").await;
    ok(&mut alice, &publish(AVATAR_META, Some("h1"), &format!("<metadata xmlns='{AVATAR_META}'><info id='h1' bytes='3' type='image/png'/></metadata>"))).await;
    let (_bob, last) = login_with_caps(&server, "bob", "b1", &[AVATAR_META], true, 1).await;
    assert_eq!(
        event_child(&last[0], "alice@localhost").attr("node"),
        Some(AVATAR_META)
    );
    // Another session with the same verification string: no query (the
    // helper would see it and fail), the last item all the same.
    let (mut bob2, last) = login_with_caps(&server, "bob", "b2", &[AVATAR_META], false, 1).await;
    assert_eq!(
        event_child(&last[0], "alice@localhost").attr("node"),
        Some(AVATAR_META)
    );
    assert!(sync(&mut bob2).await.iter().all(|e| e.name() != "iq"));
    server.stop();
}

#[tokio::test]
async fn access_models_decide_who_may_retrieve_items() {
    let server = server("pep-access").await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    let mut carol = login(&server, "carol", "c").await;
    let mut dave = login(&server, "dave", "d").await;
    // presence (the default): contacts yes, strangers no (§6.5.9.6).
    ok(&mut alice, &publish(NICK, Some("1"), &nick("A"))).await;
    ok(&mut bob, &items_of("alice@localhost", NICK)).await;
    assert_eq!(
        err(&mut dave, &items_of("alice@localhost", NICK)).await,
        (
            "not-authorized".into(),
            "presence-subscription-required".into()
        )
    );
    // open: anyone, as OMEMO device lists need.
    let devices = "<devices xmlns='urn:xmpp:omemo:2'><device id='12345'/></devices>";
    ok(
        &mut alice,
        &publish_with(OMEMO_DEVICES, devices, &[("pubsub#access_model", "open")]),
    )
    .await;
    let r = ok(&mut dave, &items_of("alice@localhost", OMEMO_DEVICES))
        .await
        .unwrap();
    assert_eq!(items(r.get_child("items", PUBSUB).unwrap()).len(), 1);
    // roster: the allowed groups only (§6.5.9.7).
    ok(
        &mut alice,
        &publish_with(
            "urn:example:roster",
            "<x xmlns='urn:example:roster'/>",
            &[
                ("pubsub#access_model", "roster"),
                ("pubsub#roster_groups_allowed", "Friends"),
            ],
        ),
    )
    .await;
    ok(
        &mut carol,
        &items_of("alice@localhost", "urn:example:roster"),
    )
    .await;
    assert_eq!(
        err(&mut bob, &items_of("alice@localhost", "urn:example:roster")).await,
        ("not-authorized".into(), "not-in-roster-group".into())
    );
    // whitelist: affiliated entities only (§6.5.9.8), until the owner
    // makes bob a member.
    ok(
        &mut alice,
        &publish_with(
            "urn:example:w",
            "<x xmlns='urn:example:w'/>",
            &[("pubsub#access_model", "whitelist")],
        ),
    )
    .await;
    assert_eq!(
        err(&mut bob, &items_of("alice@localhost", "urn:example:w")).await,
        ("not-allowed".into(), "closed-node".into())
    );
    ok(
        &mut alice,
        &format!(
            "<iq type='set'><pubsub xmlns='{OWNER}'><affiliations node='urn:example:w'>\
             <affiliation jid='bob@localhost' affiliation='member'/></affiliations></pubsub></iq>"
        ),
    )
    .await;
    ok(&mut bob, &items_of("alice@localhost", "urn:example:w")).await;
    // An outcast is refused whatever the model.
    ok(
        &mut alice,
        &format!(
            "<iq type='set'><pubsub xmlns='{OWNER}'><affiliations node='{OMEMO_DEVICES}'>\
             <affiliation jid='dave@localhost' affiliation='outcast'/></affiliations></pubsub></iq>"
        ),
    )
    .await;
    assert_eq!(
        err(&mut dave, &items_of("alice@localhost", OMEMO_DEVICES))
            .await
            .0,
        "forbidden"
    );
    // disco#items lists what the requester may see (XEP-0163 §6.2).
    let visible = |q: Element| -> Vec<String> {
        q.children()
            .filter_map(|i| i.attr("node"))
            .map(str::to_owned)
            .collect()
    };
    let disco = "<iq type='get' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>";
    let mut for_bob = visible(ok(&mut bob, disco).await.unwrap());
    for_bob.sort();
    assert_eq!(for_bob, [NICK, "urn:example:w", OMEMO_DEVICES]);
    assert!(visible(ok(&mut dave, disco).await.unwrap()).is_empty());
    server.stop();
}

#[tokio::test]
async fn publish_options_configure_a_new_node_and_must_match_an_existing_one() {
    let server = server("pep-options").await;
    let mut alice = login(&server, "alice", "a").await;
    // XEP-0223 private storage, as bookmarks (XEP-0402) are stored.
    let conference = "<conference xmlns='urn:xmpp:bookmarks:1' name='Tea' autojoin='true'/>";
    let private = [
        ("pubsub#persist_items", "true"),
        ("pubsub#access_model", "whitelist"),
        ("pubsub#max_items", "max"),
        ("pubsub#send_last_published_item", "never"),
    ];
    let node = "urn:xmpp:bookmarks:1";
    let publish_bookmark = |id: &str, opts: &[(&str, &str)]| {
        publish_with(node, conference, opts).replace("id='current'", &format!("id='{id}'"))
    };
    ok(
        &mut alice,
        &publish_bookmark("tea@conference.localhost", &private),
    )
    .await;
    // The same options again: the preconditions hold.
    ok(
        &mut alice,
        &publish_bookmark("coffee@conference.localhost", &private),
    )
    .await;
    let r = ok(&mut alice, &items_of("alice@localhost", node))
        .await
        .unwrap();
    assert_eq!(
        items(r.get_child("items", PUBSUB).unwrap()).len(),
        2,
        "max_items=max keeps both"
    );
    // Different ones: conflict with <precondition-not-met/> (§7.1.5).
    assert_eq!(
        err(
            &mut alice,
            &publish_bookmark("x", &[("pubsub#access_model", "open")])
        )
        .await,
        ("conflict".into(), "precondition-not-met".into())
    );
    assert_eq!(
        err(
            &mut alice,
            &publish_bookmark("x", &[("pubsub#colour", "blue")])
        )
        .await,
        ("conflict".into(), "precondition-not-met".into())
    );
    // Contacts do not see private data.
    let mut bob = login(&server, "bob", "b").await;
    assert_eq!(
        err(&mut bob, &items_of("alice@localhost", node)).await,
        ("not-allowed".into(), "closed-node".into())
    );
    server.stop();
}

#[tokio::test]
async fn a_bad_publish_gets_the_condition_xep_0060_names() {
    let mut config = test_config("pep-publish-errors");
    config.pubsub.max_payload_bytes = 1024;
    let server = server_with(config).await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    // §7.1.3.1: only the account publishes to its PEP service.
    let to_alice = publish(NICK, None, &nick("B")).replacen("<iq ", "<iq to='alice@localhost' ", 1);
    assert_eq!(err(&mut bob, &to_alice).await.0, "forbidden");
    let cases = [
        (
            format!("<iq type='set'><pubsub xmlns='{PUBSUB}'><publish><item>{}</item></publish></pubsub></iq>", nick("A")),
            ("bad-request", "nodeid-required"),
        ),
        (
            format!("<iq type='set'><pubsub xmlns='{PUBSUB}'><publish node='{NICK}'/></pubsub></iq>"),
            ("bad-request", "item-required"),
        ),
        (publish(NICK, None, ""), ("bad-request", "payload-required")),
        (publish(NICK, None, &(nick("A") + &nick("B"))), ("bad-request", "invalid-payload")),
        (
            publish(NICK, None, &nick(&"x".repeat(2000))),
            ("not-acceptable", "payload-too-big"),
        ),
    ];
    for (iq, (condition, app)) in cases {
        assert_eq!(
            err(&mut alice, &iq).await,
            (condition.into(), app.into()),
            "{iq}"
        );
    }
    // Nothing was created by the refused requests.
    assert!(server
        .storage
        .pubsub_nodes("alice@localhost")
        .await
        .unwrap()
        .is_empty());
    server.stop();
}

#[tokio::test]
async fn retract_purge_and_delete_notify_and_refuse_what_they_cannot_do() {
    let server = server("pep-owner-ops").await;
    let mut alice = login(&server, "alice", "a").await;
    let node = "urn:example:list";
    ok(
        &mut alice,
        &publish_with(
            node,
            "<x xmlns='urn:example:list'>1</x>",
            &[("pubsub#max_items", "10")],
        ),
    )
    .await;
    ok(
        &mut alice,
        &publish(node, Some("two"), "<x xmlns='urn:example:list'>2</x>"),
    )
    .await;
    let (mut bob, _) = login_with_caps(&server, "bob", "b", &[node], true, 1).await;
    let retract = |id: &str| {
        format!("<iq type='set'><pubsub xmlns='{PUBSUB}'><retract node='{node}' notify='true'><item id='{id}'/></retract></pubsub></iq>")
    };
    ok(&mut alice, &retract("two")).await;
    let got = only_events(sync(&mut bob).await);
    let e = event_child(&got[0], "alice@localhost");
    assert_eq!(
        e.get_child("retract", EVENT).and_then(|r| r.attr("id")),
        Some("two")
    );
    assert_eq!(err(&mut alice, &retract("two")).await.0, "item-not-found");
    assert_eq!(
        err(
            &mut bob,
            &retract("current").replacen("<iq ", "<iq to='alice@localhost' ", 1)
        )
        .await
        .0,
        "forbidden"
    );
    // Purge (§8.5): one <purge/> notification, no items left.
    ok(
        &mut alice,
        &format!("<iq type='set'><pubsub xmlns='{OWNER}'><purge node='{node}'/></pubsub></iq>"),
    )
    .await;
    let got = only_events(sync(&mut bob).await);
    assert_eq!(event_child(&got[0], "alice@localhost").name(), "purge");
    let r = ok(&mut alice, &items_of("alice@localhost", node))
        .await
        .unwrap();
    assert!(items(r.get_child("items", PUBSUB).unwrap()).is_empty());
    // Delete (§8.4) with a redirect; then the node is gone.
    let delete = format!(
        "<iq type='set'><pubsub xmlns='{OWNER}'><delete node='{node}'><redirect uri='xmpp:alice@localhost?;node=urn:example:new'/></delete></pubsub></iq>"
    );
    assert_eq!(
        err(
            &mut bob,
            &delete.replacen("<iq ", "<iq to='alice@localhost' ", 1)
        )
        .await
        .0,
        "forbidden"
    );
    ok(&mut alice, &delete).await;
    let got = only_events(sync(&mut bob).await);
    let d = event_child(&got[0], "alice@localhost");
    assert_eq!(d.name(), "delete");
    assert_eq!(
        d.get_child("redirect", EVENT).and_then(|r| r.attr("uri")),
        Some("xmpp:alice@localhost?;node=urn:example:new")
    );
    assert_eq!(
        err(&mut alice, &items_of("alice@localhost", node)).await.0,
        "item-not-found"
    );
    assert_eq!(err(&mut alice, &delete).await.0, "item-not-found");
    server.stop();
}

#[tokio::test]
async fn an_explicit_subscription_gets_the_last_item_then_notifications() {
    let server = server("pep-subscribe").await;
    let mut alice = login(&server, "alice", "a").await;
    let mut dave = login(&server, "dave", "d").await;
    let devices = "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices>";
    ok(
        &mut alice,
        &publish_with(OMEMO_DEVICES, devices, &[("pubsub#access_model", "open")]),
    )
    .await;
    let subscribe = |node: &str, jid: &str| {
        format!("<iq type='set' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><subscribe node='{node}' jid='{jid}'/></pubsub></iq>")
    };
    assert_eq!(
        err(&mut dave, &subscribe(OMEMO_DEVICES, "bob@localhost")).await,
        ("bad-request".into(), "invalid-jid".into())
    );
    let (before, r) = ask(&mut dave, &subscribe(OMEMO_DEVICES, "dave@localhost/d")).await;
    assert!(
        before.iter().all(|e| !is_event(e)),
        "the last item comes after the result"
    );
    let s = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("subscription", PUBSUB))
        .unwrap();
    assert_eq!(s.attr("subscription"), Some("subscribed"));
    assert_eq!(s.attr("jid"), Some("dave@localhost/d"));
    // §6.1.7: the last item follows.
    let got = only_events(sync(&mut dave).await);
    assert_eq!(items(&event_child(&got[0], "alice@localhost")).len(), 1);
    // Then every publish.
    ok(
        &mut alice,
        &publish_with(OMEMO_DEVICES, devices, &[("pubsub#access_model", "open")]),
    )
    .await;
    assert_eq!(only_events(sync(&mut dave).await).len(), 1);
    // The subscription is listed for dave, and for alice as owner.
    let mine = ok(&mut dave, &format!("<iq type='get' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><subscriptions/></pubsub></iq>")).await.unwrap();
    assert_eq!(
        mine.get_child("subscriptions", PUBSUB)
            .unwrap()
            .children()
            .count(),
        1
    );
    let theirs = ok(&mut alice, &format!("<iq type='get'><pubsub xmlns='{OWNER}'><subscriptions node='{OMEMO_DEVICES}'/></pubsub></iq>")).await.unwrap();
    assert_eq!(
        theirs
            .get_child("subscriptions", OWNER)
            .unwrap()
            .children()
            .next()
            .and_then(|s| s.attr("jid")),
        Some("dave@localhost/d")
    );
    let unsubscribe = format!("<iq type='set' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><unsubscribe node='{OMEMO_DEVICES}' jid='dave@localhost/d'/></pubsub></iq>");
    ok(&mut dave, &unsubscribe).await;
    assert_eq!(
        err(&mut dave, &unsubscribe).await,
        ("unexpected-request".into(), "not-subscribed".into())
    );
    // A presence-model node is closed to a stranger (§6.1.3.2).
    ok(&mut alice, &publish(NICK, None, &nick("A"))).await;
    assert_eq!(
        err(&mut dave, &subscribe(NICK, "dave@localhost")).await,
        (
            "not-authorized".into(),
            "presence-subscription-required".into()
        )
    );
    assert_eq!(
        err(&mut dave, &subscribe("urn:example:none", "dave@localhost"))
            .await
            .0,
        "item-not-found"
    );
    server.stop();
}

#[tokio::test]
async fn configuration_belongs_to_the_owner_and_is_checked() {
    let server = server("pep-configure").await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    ok(&mut alice, &publish(NICK, None, &nick("A"))).await;
    let get = format!("<iq type='get' to='alice@localhost'><pubsub xmlns='{OWNER}'><configure node='{NICK}'/></pubsub></iq>");
    assert_eq!(err(&mut bob, &get).await.0, "forbidden");
    let set = |fields: &str| {
        format!(
            "<iq type='set'><pubsub xmlns='{OWNER}'><configure node='{NICK}'><x xmlns='{DATA_FORMS}' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>{fields}</x></configure></pubsub></iq>"
        )
    };
    ok(&mut alice, &set("<field var='pubsub#max_items'><value>3</value></field><field var='pubsub#title'><value>Nick</value></field>")).await;
    assert_eq!(
        err(
            &mut alice,
            &set("<field var='pubsub#max_items'><value>100000</value></field>")
        )
        .await
        .0,
        "not-acceptable"
    );
    assert_eq!(
        err(
            &mut alice,
            &set("<field var='pubsub#access_model'><value>friends</value></field>")
        )
        .await
        .0,
        "not-acceptable"
    );
    // The accepted change holds; the refused ones changed nothing.
    for i in 0..4 {
        ok(
            &mut alice,
            &publish(NICK, Some(&format!("i{i}")), &nick("A")),
        )
        .await;
    }
    let r = ok(&mut alice, &items_of("alice@localhost", NICK))
        .await
        .unwrap();
    let ids: Vec<String> = items(r.get_child("items", PUBSUB).unwrap())
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ids, ["i1", "i2", "i3"]);
    // The default configuration (§8.3).
    let d = ok(
        &mut alice,
        &format!("<iq type='get'><pubsub xmlns='{OWNER}'><default/></pubsub></iq>"),
    )
    .await
    .unwrap();
    assert!(d
        .get_child("default", OWNER)
        .and_then(|d| d.get_child("x", DATA_FORMS))
        .is_some());
    // Creating needs a node id in PEP, and not one that exists (§8.1).
    assert_eq!(
        err(
            &mut alice,
            &format!("<iq type='set'><pubsub xmlns='{PUBSUB}'><create/></pubsub></iq>")
        )
        .await,
        ("not-acceptable".into(), "nodeid-required".into())
    );
    assert_eq!(
        err(
            &mut alice,
            &format!(
                "<iq type='set'><pubsub xmlns='{PUBSUB}'><create node='{NICK}'/></pubsub></iq>"
            )
        )
        .await
        .0,
        "conflict"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_pep_worker_loses_nothing_and_it_serves_again() {
    let server = server("pep-kill").await;
    let mut alice = login(&server, "alice", "a").await;
    ok(&mut alice, &publish(NICK, Some("kept"), &nick("Alice"))).await;
    let path = "root/modules/pep";
    let old = server
        .registry
        .lookup(path)
        .expect("pep worker in the tree")
        .get_id();
    server.registry.kill(path, StopMode::Kill).unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(10), || server
            .registry
            .lookup(path)
            .is_some_and(|c| c.get_id() != old))
        .await,
        "the worker was not restarted"
    );
    let r = ok(&mut alice, &items_of("alice@localhost", NICK))
        .await
        .unwrap();
    assert_eq!(
        items(r.get_child("items", PUBSUB).unwrap()),
        [("kept".into(), "Alice".into())]
    );
    // The new worker learns caps and sends last items.
    let (_bob, last) = login_with_caps(&server, "bob", "b", &[NICK], true, 1).await;
    assert_eq!(
        items(&event_child(&last[0], "alice@localhost")),
        [("kept".into(), "Alice".into())]
    );
    server.stop();
}

#[tokio::test]
async fn removing_the_account_removes_its_nodes() {
    let server = server("pep-remove").await;
    let mut alice = login(&server, "alice", "a").await;
    ok(&mut alice, &publish(NICK, None, &nick("Alice"))).await;
    assert_eq!(
        server
            .storage
            .pubsub_nodes("alice@localhost")
            .await
            .unwrap()
            .len(),
        1
    );
    alice
        .send("<iq type='set' id='bye'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await;
    assert!(
        wait_until(std::time::Duration::from_secs(10), || server
            .sessions
            .is_empty())
        .await
    );
    assert!(server
        .storage
        .pubsub_nodes("alice@localhost")
        .await
        .unwrap()
        .is_empty());
    server.stop();
}

/// A 1x1 PNG, and the SHA-1 (hex) that is its XEP-0084 id and its
/// XEP-0153 hash.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

fn png_sha1() -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .unwrap();
    sha1::Sha1::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_pep_avatar_becomes_the_vcard_photo_and_the_presence_hash() {
    let server = server("pep-avatar-to-vcard").await;
    let mut alice = login(&server, "alice", "a").await;
    let info = ok(
        &mut alice,
        &format!("<iq type='get'><query xmlns='{DISCO_INFO}'/></iq>"),
    )
    .await
    .unwrap();
    assert!(
        info.children()
            .any(|f| f.attr("var") == Some("urn:xmpp:pep-vcard-conversion:0")),
        "{}",
        info.to_xml()
    );
    let id = png_sha1();
    ok(
        &mut alice,
        &publish(
            "urn:xmpp:avatar:data",
            Some(&id),
            &format!("<data xmlns='urn:xmpp:avatar:data'>{PNG_B64}</data>"),
        ),
    )
    .await;
    ok(
        &mut alice,
        &publish(
            AVATAR_META,
            Some(&id),
            &format!("<metadata xmlns='{AVATAR_META}'><info id='{id}' bytes='70' type='image/png'/></metadata>"),
        ),
    )
    .await;
    // Old clients read it from the vCard.
    let mut bob = login(&server, "bob", "b").await;
    let vcard = ok(
        &mut bob,
        "<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
    )
    .await
    .unwrap();
    let photo = vcard.get_child("PHOTO", "vcard-temp").expect("a PHOTO");
    assert_eq!(
        photo.get_child("BINVAL", "vcard-temp").unwrap().text(),
        PNG_B64
    );
    assert_eq!(
        photo.get_child("TYPE", "vcard-temp").unwrap().text(),
        "image/png"
    );
    // And their presence hash is the PEP avatar's id (XEP-0153).
    alice.send("<presence/>").await;
    let p = loop {
        let e = bob.next_element().await;
        if e.name() == "presence" && e.attr("from") == Some("alice@localhost/a") {
            break e;
        }
    };
    let hash = p
        .get_child("x", "vcard-temp:x:update")
        .and_then(|x| x.get_child("photo", "vcard-temp:x:update"))
        .map(Element::text);
    assert_eq!(hash.as_deref(), Some(id.as_str()));
    // Empty metadata: no avatar, no PHOTO.
    ok(
        &mut alice,
        &publish(
            AVATAR_META,
            Some("none"),
            &format!("<metadata xmlns='{AVATAR_META}'/>"),
        ),
    )
    .await;
    let vcard = ok(
        &mut bob,
        "<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
    )
    .await
    .unwrap();
    assert!(
        vcard.get_child("PHOTO", "vcard-temp").is_none(),
        "{}",
        vcard.to_xml()
    );
    server.stop();
}

#[tokio::test]
async fn a_vcard_photo_becomes_the_pep_avatar_and_notifies_contacts() {
    let server = server("pep-vcard-to-avatar").await;
    let mut alice = login(&server, "alice", "a").await;
    // bob wants avatar metadata (his caps say so).
    let (mut bob, _) = login_with_caps(&server, "bob", "b", &[AVATAR_META], true, 0).await;
    sync(&mut bob).await;
    let set = format!(
        "<iq type='set'><vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>{PNG_B64}</BINVAL></PHOTO></vCard></iq>"
    );
    ok(&mut alice, &set).await;
    let id = png_sha1();
    let got = only_events(sync(&mut bob).await);
    assert_eq!(got.len(), 1, "{got:?}");
    let e = event_child(&got[0], "alice@localhost");
    assert_eq!(e.attr("node"), Some(AVATAR_META));
    let info = e
        .get_child("item", EVENT)
        .and_then(|i| i.get_child("metadata", AVATAR_META))
        .and_then(|m| m.get_child("info", AVATAR_META))
        .unwrap();
    assert_eq!(info.attr("id"), Some(id.as_str()));
    assert_eq!(info.attr("bytes"), Some("70"));
    assert_eq!(info.attr("type"), Some("image/png"));
    // The data is there under the same id.
    let r = ok(
        &mut bob,
        &format!("<iq type='get' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><items node='urn:xmpp:avatar:data'><item id='{id}'/></items></pubsub></iq>"),
    )
    .await
    .unwrap();
    assert_eq!(
        items(r.get_child("items", PUBSUB).unwrap()),
        [(id.clone(), PNG_B64.to_owned())]
    );
    // The same vCard again publishes nothing new.
    ok(&mut alice, &set).await;
    assert!(only_events(sync(&mut bob).await).is_empty());
    server.stop();
}

#[tokio::test]
async fn old_and_new_bookmark_clients_see_the_same_rooms() {
    let server = server("pep-bookmarks-compat").await;
    let mut old = login(&server, "alice", "old").await;
    let bookmarks = "urn:xmpp:bookmarks:1";
    // The new client wants bookmark notifications.
    let (mut new, _) = login_with_caps(&server, "alice", "new", &[bookmarks], true, 0).await;
    sync(&mut new).await;
    let info = ok(
        &mut old,
        &format!("<iq type='get'><query xmlns='{DISCO_INFO}'/></iq>"),
    )
    .await
    .unwrap();
    assert!(info
        .children()
        .any(|f| f.attr("var") == Some("urn:xmpp:bookmarks:1#compat")));
    // XEP-0048 in private XML, as an old client stores it.
    let store = |rooms: &str| {
        format!(
            "<iq type='set'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>{rooms}\
             <url name='Notes' url='https://example.org/notes'/></storage></query></iq>"
        )
    };
    let tea = "<conference jid='tea@conference.localhost' name='Tea' autojoin='true'><nick>alice</nick></conference>";
    let cards = "<conference jid='cards@conference.localhost' name='Cards'/>";
    ok(&mut old, &store(&format!("{tea}{cards}"))).await;
    // The new client hears of both rooms, as XEP-0402 items.
    let got = only_events(sync(&mut new).await);
    let mut ids: Vec<String> = got
        .iter()
        .map(|m| event_child(m, "alice@localhost"))
        .filter_map(|e| {
            e.get_child("item", EVENT)
                .and_then(|i| i.attr("id"))
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["cards@conference.localhost", "tea@conference.localhost"]
    );
    let r = ok(&mut new, &items_of("alice@localhost", bookmarks))
        .await
        .unwrap();
    let tea_item = r
        .get_child("items", PUBSUB)
        .unwrap()
        .children()
        .find(|i| i.attr("id") == Some("tea@conference.localhost"))
        .and_then(|i| i.get_child("conference", bookmarks))
        .unwrap()
        .clone();
    assert_eq!(tea_item.attr("autojoin"), Some("true"));
    assert_eq!(
        tea_item.get_child("nick", bookmarks).unwrap().text(),
        "alice"
    );
    // The node is private, as XEP-0402 wants it.
    let mut bob = login(&server, "bob", "b").await;
    assert_eq!(
        err(&mut bob, &items_of("alice@localhost", bookmarks))
            .await
            .1,
        "closed-node"
    );
    // A room bookmarked by the new client shows in the old one's storage,
    // with the URL it stored.
    ok(
        &mut new,
        &publish_with(
            bookmarks,
            "<conference xmlns='urn:xmpp:bookmarks:1' name='Chess'/>",
            &[
                ("pubsub#persist_items", "true"),
                ("pubsub#access_model", "whitelist"),
                ("pubsub#max_items", "max"),
            ],
        )
        .replace("id='current'", "id='chess@conference.localhost'"),
    )
    .await;
    let read = "<iq type='get'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>";
    let r = ok(&mut old, read).await.unwrap();
    let storage = r.get_child("storage", "storage:bookmarks").unwrap();
    let mut rooms: Vec<&str> = storage
        .children()
        .filter(|c| c.name() == "conference")
        .filter_map(|c| c.attr("jid"))
        .collect();
    rooms.sort();
    assert_eq!(
        rooms,
        [
            "cards@conference.localhost",
            "chess@conference.localhost",
            "tea@conference.localhost"
        ]
    );
    assert!(storage.children().any(|c| c.name() == "url"));
    // The old client drops a room: the new one sees it retracted.
    sync(&mut new).await;
    ok(&mut old, &store(tea)).await;
    let got = only_events(sync(&mut new).await);
    let retracted: Vec<&str> = got
        .iter()
        .filter_map(|m| m.get_child("event", EVENT))
        .filter_map(|e| e.get_child("items", EVENT))
        .filter_map(|i| i.get_child("retract", EVENT))
        .filter_map(|r| r.attr("id"))
        .collect();
    let mut retracted = retracted;
    retracted.sort();
    assert_eq!(
        retracted,
        ["cards@conference.localhost", "chess@conference.localhost"]
    );
    server.stop();
}

#[tokio::test]
async fn vcard4_and_vcard_temp_stay_in_step() {
    let server = server("pep-vcard4").await;
    let mut alice = login(&server, "alice", "a").await;
    let vcard4 = "urn:xmpp:vcard4";
    let v4 = "urn:ietf:params:xml:ns:vcard-4.0";
    // A vcard-temp write publishes the vCard4 item, with a photo kept
    // only in vcard-temp.
    ok(
        &mut alice,
        &format!(
            "<iq type='set'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>ally</NICKNAME>\
             <EMAIL><INTERNET/><USERID>alice@example.org</USERID></EMAIL>\
             <PHOTO><TYPE>image/png</TYPE><BINVAL>{PNG_B64}</BINVAL></PHOTO></vCard></iq>"
        ),
    )
    .await;
    let mut bob = login(&server, "bob", "b").await;
    let r = ok(&mut bob, &items_of("alice@localhost", vcard4))
        .await
        .unwrap();
    let card = r
        .get_child("items", PUBSUB)
        .and_then(|i| i.get_child("item", PUBSUB))
        .and_then(|i| i.get_child("vcard", v4))
        .unwrap()
        .clone();
    let text = |card: &Element, field: &str| {
        card.get_child(field, v4)
            .and_then(|f| f.get_child("text", v4))
            .map(Element::text)
    };
    assert_eq!(text(&card, "fn").as_deref(), Some("Alice Liddell"));
    assert_eq!(text(&card, "nickname").as_deref(), Some("ally"));
    assert_eq!(text(&card, "email").as_deref(), Some("alice@example.org"));
    // A vCard4 publish updates vcard-temp's shared fields; its photo stays.
    ok(
        &mut alice,
        &publish(
            vcard4,
            Some("current"),
            &format!(
                "<vcard xmlns='{v4}'><fn><text>Alice P. Liddell</text></fn><nickname><text>ally</text></nickname>\
                 <tel><uri>tel:+44-1865-000</uri></tel><adr><locality>Oxford</locality></adr></vcard>"
            ),
        ),
    )
    .await;
    let temp = ok(
        &mut bob,
        "<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
    )
    .await
    .unwrap();
    assert_eq!(
        temp.get_child("FN", "vcard-temp").unwrap().text(),
        "Alice P. Liddell"
    );
    assert_eq!(
        temp.get_child("TEL", "vcard-temp")
            .and_then(|t| t.get_child("NUMBER", "vcard-temp"))
            .unwrap()
            .text(),
        "+44-1865-000"
    );
    assert!(
        temp.get_child("PHOTO", "vcard-temp").is_some(),
        "{}",
        temp.to_xml()
    );
    // The vCard4 item keeps what only vCard4 says.
    let r = ok(&mut bob, &items_of("alice@localhost", vcard4))
        .await
        .unwrap();
    let card = r
        .get_child("items", PUBSUB)
        .and_then(|i| i.get_child("item", PUBSUB))
        .and_then(|i| i.get_child("vcard", v4))
        .unwrap()
        .clone();
    assert!(card.get_child("adr", v4).is_some(), "{}", card.to_xml());
    server.stop();
}
