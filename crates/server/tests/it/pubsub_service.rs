//! The hosted XEP-0060 service on `pubsub.localhost`, through real
//! sockets: discovery, node creation (named and instant) by local
//! accounts, the publish model, subscriptions with the last item and
//! notifications, subscription options, items with RSM paging, owner
//! management, and the refusals XEP-0060 names. The PEP side of the same
//! code is in pep.rs.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use chorus_xml::Element;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const DATA_FORMS: &str = "jabber:x:data";
const RSM: &str = "http://jabber.org/protocol/rsm";
const SVC: &str = "pubsub.localhost";

async fn server(tag: &str) -> chorus_server::Server {
    let server = start(test_config(tag)).await;
    for u in ["alice", "bob", "carol"] {
        add_user(&server, u, &format!("{u}-secret")).await;
    }
    server
}

async fn login(server: &chorus_server::Server, user: &str) -> XmppClient {
    let (c, _) = XmppClient::login(
        server.first_addr().unwrap(),
        user,
        &format!("{user}-secret"),
        Some("r"),
    )
    .await;
    c
}

static IDS: AtomicUsize = AtomicUsize::new(0);

/// Sends an IQ to the service (id and `to` filled in) and returns what
/// came before its answer, and the answer.
async fn ask(c: &mut XmppClient, iq: &str) -> (Vec<Element>, Element) {
    let id = format!("s{}", IDS.fetch_add(1, Ordering::Relaxed));
    c.send(&iq.replacen("<iq ", &format!("<iq id='{id}' to='{SVC}' "), 1))
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

async fn ok(c: &mut XmppClient, iq: &str) -> Option<Element> {
    let (_, r) = ask(c, iq).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    assert_eq!(r.attr("from"), Some(SVC));
    let payload = r.children().next().cloned();
    payload
}

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

/// Elements that reached `c` before a ping answer.
async fn sync(c: &mut XmppClient) -> Vec<Element> {
    let id = format!("p{}", IDS.fetch_add(1, Ordering::Relaxed));
    c.send(&format!(
        "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let mut before = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            return before;
        }
        if e.name() == "message" {
            before.push(e);
        }
    }
}

fn publish(node: &str, id: &str, text: &str) -> String {
    format!(
        "<iq type='set'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{id}'>\
         <entry xmlns='http://www.w3.org/2005/Atom'><title>{text}</title></entry></item></publish></pubsub></iq>"
    )
}

fn create(node: &str, fields: &[(&str, &str)]) -> String {
    let mut configure = String::new();
    if !fields.is_empty() {
        configure.push_str(&format!(
            "<configure><x xmlns='{DATA_FORMS}' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>http://jabber.org/protocol/pubsub#node_config</value></field>"
        ));
        for (var, v) in fields {
            configure.push_str(&format!("<field var='{var}'><value>{v}</value></field>"));
        }
        configure.push_str("</x></configure>");
    }
    format!(
        "<iq type='set'><pubsub xmlns='{PUBSUB}'><create node='{node}'/>{configure}</pubsub></iq>"
    )
}

fn item_ids(pubsub: &Element) -> Vec<String> {
    pubsub
        .get_child("items", PUBSUB)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("id"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_service_is_listed_and_describes_itself() {
    let server = server("pubsub-disco").await;
    let mut alice = login(&server, "alice").await;
    alice
        .send(&format!(
            "<iq type='get' id='d1' to='localhost'><query xmlns='{DISCO_ITEMS}'/></iq>"
        ))
        .await;
    let r = alice.expect("iq").await;
    let listed = r
        .get_child("query", DISCO_ITEMS)
        .unwrap()
        .children()
        .any(|i| i.attr("jid") == Some(SVC));
    assert!(listed, "{}", r.to_xml());
    let info = ok(
        &mut alice,
        &format!("<iq type='get'><query xmlns='{DISCO_INFO}'/></iq>"),
    )
    .await
    .unwrap();
    let identity = info.get_child("identity", DISCO_INFO).unwrap();
    assert_eq!(identity.attr("category"), Some("pubsub"));
    assert_eq!(identity.attr("type"), Some("service"));
    let features: Vec<&str> = info.children().filter_map(|f| f.attr("var")).collect();
    assert!(features.contains(&PUBSUB));
    assert!(features.contains(&"http://jabber.org/protocol/pubsub#instant-nodes"));
    // Not a PEP service: no auto-create, no presence-based delivery.
    assert!(!features.contains(&"http://jabber.org/protocol/pubsub#auto-create"));
    // What it does not handle.
    assert_eq!(
        err(
            &mut alice,
            "<iq type='get'><query xmlns='jabber:iq:version'/></iq>"
        )
        .await
        .0,
        "service-unavailable"
    );
    server.stop();
}

#[tokio::test]
async fn nodes_are_created_named_or_instant_and_listed() {
    let server = server("pubsub-create").await;
    let mut alice = login(&server, "alice").await;
    ok(&mut alice, &create("news", &[("pubsub#title", "News")])).await;
    assert_eq!(err(&mut alice, &create("news", &[])).await.0, "conflict");
    // §8.1.2: an instant node's id comes back.
    let r = ok(
        &mut alice,
        &format!("<iq type='set'><pubsub xmlns='{PUBSUB}'><create/></pubsub></iq>"),
    )
    .await
    .unwrap();
    let instant = r
        .get_child("create", PUBSUB)
        .and_then(|c| c.attr("node"))
        .unwrap()
        .to_owned();
    assert!(!instant.is_empty());
    let items = ok(
        &mut alice,
        &format!("<iq type='get'><query xmlns='{DISCO_ITEMS}'/></iq>"),
    )
    .await
    .unwrap();
    let mut nodes: Vec<(String, String)> = items
        .children()
        .map(|i| {
            (
                i.attr("node").unwrap().to_owned(),
                i.attr("name").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    nodes.sort();
    let mut expected = vec![
        ("news".to_owned(), "News".to_owned()),
        (instant.clone(), String::new()),
    ];
    expected.sort();
    assert_eq!(nodes, expected);
    // Node metadata (§5.4) names the owner.
    let meta = ok(
        &mut alice,
        &format!("<iq type='get'><query xmlns='{DISCO_INFO}' node='news'/></iq>"),
    )
    .await
    .unwrap();
    let owner = meta
        .get_child("x", DATA_FORMS)
        .unwrap()
        .children()
        .find(|f| f.attr("var") == Some("pubsub#owner"))
        .and_then(|f| f.get_child("value", DATA_FORMS))
        .map(Element::text);
    assert_eq!(owner.as_deref(), Some("alice@localhost"));
    // A publish to a node that does not exist: no auto-create here.
    assert_eq!(
        err(&mut alice, &publish("nowhere", "1", "x")).await.0,
        "item-not-found"
    );
    server.stop();
}

#[tokio::test]
async fn subscribers_get_the_last_item_then_notifications_and_only_publishers_publish() {
    let server = server("pubsub-subscribe").await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    ok(&mut alice, &create("news", &[])).await;
    ok(&mut alice, &publish("news", "first", "Hello")).await;
    let subscribe = format!(
        "<iq type='set'><pubsub xmlns='{PUBSUB}'><subscribe node='news' jid='bob@localhost'/></pubsub></iq>"
    );
    let r = ok(&mut bob, &subscribe).await.unwrap();
    assert_eq!(
        r.get_child("subscription", PUBSUB)
            .and_then(|s| s.attr("subscription")),
        Some("subscribed")
    );
    // The last item (send_last_published_item = on_sub), from the service.
    let got = sync(&mut bob).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("from"), Some(SVC));
    let items = got[0]
        .get_child("event", EVENT)
        .and_then(|e| e.get_child("items", EVENT))
        .unwrap();
    assert_eq!(
        items.get_child("item", EVENT).and_then(|i| i.attr("id")),
        Some("first")
    );
    // bob may not publish (publish_model = publishers) until alice makes
    // him a publisher.
    assert_eq!(
        err(&mut bob, &publish("news", "b1", "mine")).await.0,
        "forbidden"
    );
    ok(
        &mut alice,
        &format!(
            "<iq type='set'><pubsub xmlns='{OWNER}'><affiliations node='news'>\
             <affiliation jid='bob@localhost' affiliation='publisher'/></affiliations></pubsub></iq>"
        ),
    )
    .await;
    ok(&mut bob, &publish("news", "b1", "mine")).await;
    ok(&mut alice, &publish("news", "second", "Again")).await;
    let got = sync(&mut bob).await;
    let ids: Vec<&str> = got
        .iter()
        .filter_map(|m| m.get_child("event", EVENT))
        .filter_map(|e| e.get_child("items", EVENT))
        .filter_map(|i| i.get_child("item", EVENT))
        .filter_map(|i| i.attr("id"))
        .collect();
    assert_eq!(ids, ["b1", "second"]);
    // Subscription options (§6.3): delivery off, then nothing arrives.
    let options = ok(
        &mut bob,
        &format!("<iq type='get'><pubsub xmlns='{PUBSUB}'><options node='news' jid='bob@localhost'/></pubsub></iq>"),
    )
    .await
    .unwrap();
    assert!(options
        .get_child("options", PUBSUB)
        .and_then(|o| o.get_child("x", DATA_FORMS))
        .is_some());
    let set_options = |deliver: &str| {
        format!(
            "<iq type='set'><pubsub xmlns='{PUBSUB}'><options node='news' jid='bob@localhost'>\
             <x xmlns='{DATA_FORMS}' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>http://jabber.org/protocol/pubsub#subscribe_options</value></field>\
             <field var='pubsub#deliver'><value>{deliver}</value></field></x></options></pubsub></iq>"
        )
    };
    ok(&mut bob, &set_options("false")).await;
    ok(&mut alice, &publish("news", "third", "Quiet")).await;
    assert!(sync(&mut bob).await.is_empty());
    assert_eq!(
        err(&mut carol_or(&server).await, &set_options("true"))
            .await
            .0,
        "forbidden"
    );
    // The owner sees and removes the subscription (§8.8).
    let subs = ok(
        &mut alice,
        &format!(
            "<iq type='get'><pubsub xmlns='{OWNER}'><subscriptions node='news'/></pubsub></iq>"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        subs.get_child("subscriptions", OWNER)
            .unwrap()
            .children()
            .count(),
        1
    );
    ok(
        &mut alice,
        &format!(
            "<iq type='set'><pubsub xmlns='{OWNER}'><subscriptions node='news'>\
             <subscription jid='bob@localhost' subscription='none'/></subscriptions></pubsub></iq>"
        ),
    )
    .await;
    assert_eq!(
        err(&mut bob, &format!("<iq type='set'><pubsub xmlns='{PUBSUB}'><unsubscribe node='news' jid='bob@localhost'/></pubsub></iq>")).await,
        ("unexpected-request".into(), "not-subscribed".into())
    );
    server.stop();
}

async fn carol_or(server: &chorus_server::Server) -> XmppClient {
    login(server, "carol").await
}

#[tokio::test]
async fn items_page_with_rsm_and_owners_manage_the_node() {
    let server = server("pubsub-rsm").await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    ok(&mut alice, &create("log", &[("pubsub#max_items", "20")])).await;
    for i in 0..7 {
        ok(
            &mut alice,
            &publish("log", &format!("i{i}"), &format!("entry {i}")),
        )
        .await;
    }
    let page = |set: &str| {
        format!("<iq type='get'><pubsub xmlns='{PUBSUB}'><items node='log'/><set xmlns='{RSM}'>{set}</set></pubsub></iq>")
    };
    let r = ok(&mut bob, &page("<max>3</max>")).await.unwrap();
    assert_eq!(item_ids(&r), ["i0", "i1", "i2"]);
    let set = r.get_child("set", RSM).unwrap();
    assert_eq!(
        set.get_child("count", RSM).map(Element::text).as_deref(),
        Some("7")
    );
    assert_eq!(
        set.get_child("last", RSM).map(Element::text).as_deref(),
        Some("i2")
    );
    let r = ok(&mut bob, &page("<max>3</max><after>i2</after>"))
        .await
        .unwrap();
    assert_eq!(item_ids(&r), ["i3", "i4", "i5"]);
    let r = ok(&mut bob, &page("<max>2</max><before/>")).await.unwrap();
    assert_eq!(item_ids(&r), ["i5", "i6"]);
    assert_eq!(
        err(&mut bob, &page("<max>2</max><after>nope</after>"))
            .await
            .0,
        "item-not-found"
    );
    // Only an owner configures, purges or deletes (§8).
    for iq in [
        format!("<iq type='get'><pubsub xmlns='{OWNER}'><configure node='log'/></pubsub></iq>"),
        format!("<iq type='set'><pubsub xmlns='{OWNER}'><purge node='log'/></pubsub></iq>"),
        format!("<iq type='set'><pubsub xmlns='{OWNER}'><delete node='log'/></pubsub></iq>"),
    ] {
        assert_eq!(err(&mut bob, &iq).await.0, "forbidden", "{iq}");
    }
    // Co-owners: alice adds bob; removing every owner is refused.
    ok(
        &mut alice,
        &format!(
            "<iq type='set'><pubsub xmlns='{OWNER}'><affiliations node='log'>\
             <affiliation jid='bob@localhost' affiliation='owner'/></affiliations></pubsub></iq>"
        ),
    )
    .await;
    ok(
        &mut bob,
        &format!("<iq type='set'><pubsub xmlns='{OWNER}'><purge node='log'/></pubsub></iq>"),
    )
    .await;
    assert!(item_ids(
        &ok(
            &mut alice,
            &format!("<iq type='get'><pubsub xmlns='{PUBSUB}'><items node='log'/></pubsub></iq>")
        )
        .await
        .unwrap()
    )
    .is_empty());
    assert_eq!(
        err(
            &mut alice,
            &format!(
                "<iq type='set'><pubsub xmlns='{OWNER}'><affiliations node='log'>\
                 <affiliation jid='alice@localhost' affiliation='none'/>\
                 <affiliation jid='bob@localhost' affiliation='member'/></affiliations></pubsub></iq>"
            )
        )
        .await
        .0,
        "not-acceptable"
    );
    ok(
        &mut bob,
        &format!("<iq type='set'><pubsub xmlns='{OWNER}'><delete node='log'/></pubsub></iq>"),
    )
    .await;
    assert_eq!(
        err(
            &mut alice,
            &format!("<iq type='get'><pubsub xmlns='{PUBSUB}'><items node='log'/></pubsub></iq>")
        )
        .await
        .0,
        "item-not-found"
    );
    server.stop();
}

#[tokio::test]
async fn a_whitelisted_node_is_closed_to_strangers() {
    let server = server("pubsub-whitelist").await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    ok(
        &mut alice,
        &create("private", &[("pubsub#access_model", "whitelist")]),
    )
    .await;
    ok(&mut alice, &publish("private", "1", "secret")).await;
    let items =
        format!("<iq type='get'><pubsub xmlns='{PUBSUB}'><items node='private'/></pubsub></iq>");
    assert_eq!(
        err(&mut bob, &items).await,
        ("not-allowed".into(), "closed-node".into())
    );
    assert_eq!(
        err(&mut bob, &format!("<iq type='set'><pubsub xmlns='{PUBSUB}'><subscribe node='private' jid='bob@localhost'/></pubsub></iq>")).await,
        ("not-allowed".into(), "closed-node".into())
    );
    // Not listed either.
    let listed = ok(
        &mut bob,
        &format!("<iq type='get'><query xmlns='{DISCO_ITEMS}'/></iq>"),
    )
    .await
    .unwrap();
    assert_eq!(listed.children().count(), 0);
    ok(
        &mut alice,
        &format!(
            "<iq type='set'><pubsub xmlns='{OWNER}'><affiliations node='private'>\
             <affiliation jid='bob@localhost' affiliation='member'/></affiliations></pubsub></iq>"
        ),
    )
    .await;
    assert_eq!(item_ids(&ok(&mut bob, &items).await.unwrap()), ["1"]);
    server.stop();
}
