//! The feature modules over real sockets: XEP-0092 Software Version,
//! XEP-0202 Entity Time, XEP-0012 Last Activity, XEP-0049 Private XML
//! Storage and XEP-0054 vcard-temp, and what the server advertises of them
//! (XEP-0030 disco#info, the XEP-0115 caps in the stream features). Each
//! test asserts the reply or the exact RFC 6120 condition the XEP names.
#![allow(clippy::unwrap_used)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;
use chorus_sasl::{ChannelBindingType, Mechanism};
use chorus_xml::Element;

const NS_VERSION: &str = "jabber:iq:version";
const NS_TIME: &str = "urn:xmpp:time";
const NS_LAST: &str = "jabber:iq:last";
const NS_PRIVATE: &str = "jabber:iq:private";
const NS_VCARD: &str = "vcard-temp";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_CAPS: &str = "http://jabber.org/protocol/caps";

async fn server_with_users(tag: &str) -> chorus_server::Server {
    let server = start(test_config(tag)).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    server
}

async fn login(server: &chorus_server::Server, user: &str, password: &str) -> XmppClient {
    let (c, _) = XmppClient::login(server.first_addr().unwrap(), user, password, Some("r")).await;
    c
}

/// Sends an IQ and returns the reply with the same id, skipping whatever
/// else the server pushes meanwhile (presence, roster pushes).
async fn ask(c: &mut XmppClient, id: &str, iq: &str) -> Element {
    c.send(iq).await;
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id) {
            return e;
        }
    }
}

/// The reply must be a result; returns its payload (if any).
fn result_payload(reply: &Element) -> Option<&Element> {
    assert_eq!(reply.attr("type"), Some("result"), "{}", reply.to_xml());
    reply.children().next()
}

/// XEP-0082 `CCYY-MM-DDThh:mm:ssZ` as seconds since the Unix epoch.
fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[test]
fn parse_utc_reads_xep_0082_datetimes() {
    assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_utc("2009-02-13T23:31:30Z"), Some(1_234_567_890));
    assert_eq!(parse_utc("2009-02-13T23:31:30+00:00"), None);
    assert_eq!(parse_utc("2009-13-13T23:31:30Z"), None);
}

// XEP-0092

#[tokio::test]
async fn server_reports_its_software_name_and_version_but_not_its_os() {
    let server = server_with_users("version").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let r = ask(
        &mut alice,
        "v1",
        "<iq to='localhost' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>",
    )
    .await;
    assert_eq!(r.attr("from"), Some("localhost"));
    let q = result_payload(&r).unwrap();
    assert!(q.is("query", NS_VERSION));
    assert_eq!(q.get_child("name", NS_VERSION).unwrap().text(), "Chorus");
    assert_eq!(
        q.get_child("version", NS_VERSION).unwrap().text(),
        env!("CARGO_PKG_VERSION")
    );
    assert!(q.get_child("os", NS_VERSION).is_none(), "{}", q.to_xml());
    server.stop();
}

#[tokio::test]
async fn software_version_of_a_bare_jid_or_a_set_is_refused() {
    let server = server_with_users("version-neg").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    // The server does not know which client a user runs.
    let r = ask(
        &mut alice,
        "v2",
        "<iq to='bob@localhost' type='get' id='v2'><query xmlns='jabber:iq:version'/></iq>",
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");
    let r = ask(
        &mut alice,
        "v3",
        "<iq type='get' id='v3'><query xmlns='jabber:iq:version'/></iq>",
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");
    let r = ask(
        &mut alice,
        "v4",
        "<iq to='localhost' type='set' id='v4'><query xmlns='jabber:iq:version'/></iq>",
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "bad-request");
    server.stop();
}

// XEP-0202

#[tokio::test]
async fn server_time_is_the_current_utc_time() {
    let server = server_with_users("time").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let r = ask(
        &mut alice,
        "t1",
        "<iq to='localhost' type='get' id='t1'><time xmlns='urn:xmpp:time'/></iq>",
    )
    .await;
    let t = result_payload(&r).unwrap();
    assert!(t.is("time", NS_TIME));
    assert_eq!(t.get_child("tzo", NS_TIME).unwrap().text(), "+00:00");
    let utc = t.get_child("utc", NS_TIME).unwrap().text();
    let their = parse_utc(&utc).unwrap_or_else(|| panic!("not XEP-0082: {utc:?}"));
    let ours = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (ours - their).abs() <= 5,
        "server says {utc}, now is {ours}"
    );

    let r = ask(
        &mut alice,
        "t2",
        "<iq to='bob@localhost' type='get' id='t2'><time xmlns='urn:xmpp:time'/></iq>",
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");
    server.stop();
}

// XEP-0012

#[tokio::test]
async fn last_activity_of_the_server_is_its_uptime() {
    let before_start = Instant::now();
    let server = server_with_users("last").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let r = ask(
        &mut alice,
        "l1",
        "<iq to='localhost' type='get' id='l1'><query xmlns='jabber:iq:last'/></iq>",
    )
    .await;
    let q = result_payload(&r).unwrap();
    assert!(q.is("query", NS_LAST));
    let seconds: u64 = q.attr("seconds").unwrap().parse().unwrap();
    assert!(seconds <= before_start.elapsed().as_secs());
    assert_eq!(q.text(), "");

    // XEP-0012 §3: an account's last activity only to those who may see
    // its presence; alice is no contact of bob's (the answer to contacts
    // is tested in correctness.rs).
    let r = ask(
        &mut alice,
        "l2",
        "<iq to='bob@localhost' type='get' id='l2'><query xmlns='jabber:iq:last'/></iq>",
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "forbidden");
    server.stop();
}

// XEP-0049

fn prefs(nick: &str) -> Element {
    Element::new("exodus", "exodus:prefs")
        .with_child(Element::new("defaultnick", "exodus:prefs").with_text(nick))
}

fn private_set(id: &str, child: &Element) -> String {
    format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:private'>{}</query></iq>",
        child.to_xml()
    )
}

fn private_get(id: &str, child_xml: &str) -> String {
    format!("<iq type='get' id='{id}'><query xmlns='jabber:iq:private'>{child_xml}</query></iq>")
}

/// The element inside a private XML result's `<query/>`.
fn private_element(reply: &Element) -> Element {
    let q = result_payload(reply).unwrap();
    assert!(q.is("query", NS_PRIVATE));
    assert_eq!(q.children().count(), 1, "{}", q.to_xml());
    q.children().next().unwrap().clone()
}

#[tokio::test]
async fn private_xml_is_stored_read_back_and_replaced() {
    let server = server_with_users("private").await;
    let mut alice = login(&server, "alice", "wonderland").await;

    // Nothing stored yet: the empty element asked for.
    let r = ask(
        &mut alice,
        "p1",
        &private_get("p1", "<exodus xmlns='exodus:prefs'/>"),
    )
    .await;
    assert_eq!(private_element(&r), Element::new("exodus", "exodus:prefs"));

    let r = ask(&mut alice, "p2", &private_set("p2", &prefs("Hamlet"))).await;
    assert_eq!(result_payload(&r), None);
    let r = ask(
        &mut alice,
        "p3",
        &private_get("p3", "<exodus xmlns='exodus:prefs'/>"),
    )
    .await;
    assert_eq!(private_element(&r), prefs("Hamlet"));

    // Another namespace is another slot.
    let bookmarks = Element::new("storage", "storage:bookmarks").with_child(
        Element::new("conference", "storage:bookmarks")
            .with_attr("jid", "council@chat.example")
            .with_attr("autojoin", "true"),
    );
    let r = ask(&mut alice, "p4", &private_set("p4", &bookmarks)).await;
    result_payload(&r);

    // A set replaces, it does not merge.
    let r = ask(&mut alice, "p5", &private_set("p5", &prefs("Macbeth"))).await;
    result_payload(&r);
    let r = ask(
        &mut alice,
        "p6",
        &private_get("p6", "<exodus xmlns='exodus:prefs'/>"),
    )
    .await;
    assert_eq!(private_element(&r), prefs("Macbeth"));

    // Stored, not per session: another login reads the same, and an
    // explicit 'to' of one's own bare JID is the same as none.
    let mut again = login(&server, "alice", "wonderland").await;
    let r = ask(
        &mut again,
        "p7",
        "<iq to='alice@localhost' type='get' id='p7'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>",
    )
    .await;
    assert_eq!(private_element(&r), bookmarks);
    server.stop();
}

#[tokio::test]
async fn private_xml_belongs_to_its_owner_alone() {
    let server = server_with_users("private-own").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let mut bob = login(&server, "bob", "builder").await;
    let r = ask(&mut alice, "o1", &private_set("o1", &prefs("Alice"))).await;
    result_payload(&r);

    // Neither reading nor writing someone else's, nor the server's.
    for (id, iq) in [
        (
            "o2",
            "<iq to='alice@localhost' type='get' id='o2'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>",
        ),
        (
            "o3",
            "<iq to='alice@localhost' type='set' id='o3'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Bob</defaultnick></exodus></query></iq>",
        ),
        (
            "o4",
            "<iq to='localhost' type='get' id='o4'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>",
        ),
    ] {
        let r = ask(&mut bob, id, iq).await;
        assert_eq!(stanza_error_condition(&r), "forbidden", "{id}");
    }

    // Bob's own slot for the namespace is his, and empty.
    let r = ask(
        &mut bob,
        "o5",
        &private_get("o5", "<exodus xmlns='exodus:prefs'/>"),
    )
    .await;
    assert_eq!(private_element(&r), Element::new("exodus", "exodus:prefs"));
    // Alice's is untouched.
    let r = ask(
        &mut alice,
        "o6",
        &private_get("o6", "<exodus xmlns='exodus:prefs'/>"),
    )
    .await;
    assert_eq!(private_element(&r), prefs("Alice"));
    server.stop();
}

#[tokio::test]
async fn private_xml_queries_need_one_element_in_an_unreserved_namespace() {
    let server = server_with_users("private-bad").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let cases = [
        // No element: XEP-0049's "Bad Format".
        ("b1", "<query xmlns='jabber:iq:private'/>", "bad-request"),
        (
            "b2",
            "<query xmlns='jabber:iq:private'><a xmlns='urn:example:a'/><b xmlns='urn:example:b'/></query>",
            "bad-request",
        ),
        // Unprefixed without a declaration: it inherits jabber:iq:private.
        ("b3", "<query xmlns='jabber:iq:private'><prefs/></query>", "not-acceptable"),
        (
            "b4",
            "<query xmlns='jabber:iq:private'><prefs xmlns=''/></query>",
            "not-acceptable",
        ),
        (
            "b5",
            "<query xmlns='jabber:iq:private'><vCard xmlns='vcard-temp'><FN>x</FN></vCard></query>",
            "not-acceptable",
        ),
        (
            "b6",
            "<query xmlns='jabber:iq:private'><x xmlns='jabber:x:data'/></query>",
            "not-acceptable",
        ),
        (
            "b7",
            "<query xmlns='jabber:iq:private'><query xmlns='http://jabber.org/protocol/disco#info'/></query>",
            "not-acceptable",
        ),
    ];
    for (id, query, condition) in cases {
        for ty in ["get", "set"] {
            let r = ask(
                &mut alice,
                id,
                &format!("<iq type='{ty}' id='{id}'>{query}</iq>"),
            )
            .await;
            assert_eq!(stanza_error_condition(&r), condition, "{ty} {query}");
        }
    }
    server.stop();
}

// XEP-0054

fn card(full_name: &str) -> Element {
    Element::new("vCard", NS_VCARD)
        .with_child(Element::new("FN", NS_VCARD).with_text(full_name))
        .with_child(
            Element::new("N", NS_VCARD)
                .with_child(Element::new("FAMILY", NS_VCARD).with_text("Liddell"))
                .with_child(Element::new("GIVEN", NS_VCARD).with_text("Alice")),
        )
}

fn vcard_set(id: &str, to: Option<&str>, card: &Element) -> String {
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    format!("<iq type='set' id='{id}'{to}>{}</iq>", card.to_xml())
}

fn vcard_get(id: &str, to: Option<&str>) -> String {
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    format!("<iq type='get' id='{id}'{to}><vCard xmlns='vcard-temp'/></iq>")
}

#[tokio::test]
async fn own_vcard_is_empty_until_set_then_replaced_whole() {
    let server = server_with_users("vcard").await;
    let mut alice = login(&server, "alice", "wonderland").await;

    let r = ask(&mut alice, "c1", &vcard_get("c1", None)).await;
    assert_eq!(
        result_payload(&r).unwrap().clone(),
        Element::new("vCard", NS_VCARD)
    );

    let r = ask(
        &mut alice,
        "c2",
        &vcard_set("c2", None, &card("Alice Liddell")),
    )
    .await;
    assert_eq!(result_payload(&r), None);
    let r = ask(&mut alice, "c3", &vcard_get("c3", None)).await;
    assert_eq!(result_payload(&r).unwrap().clone(), card("Alice Liddell"));

    // To one's own bare JID is the same; a set replaces the whole card.
    let short = Element::new("vCard", NS_VCARD)
        .with_child(Element::new("NICKNAME", NS_VCARD).with_text("alice"));
    let r = ask(
        &mut alice,
        "c4",
        &vcard_set("c4", Some("alice@localhost"), &short),
    )
    .await;
    result_payload(&r);
    let r = ask(&mut alice, "c5", &vcard_get("c5", Some("alice@localhost"))).await;
    assert_eq!(result_payload(&r).unwrap().clone(), short);
    server.stop();
}

#[tokio::test]
async fn another_accounts_vcard_is_readable_by_anyone() {
    let server = server_with_users("vcard-other").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let mut bob = login(&server, "bob", "builder").await;
    let r = ask(
        &mut alice,
        "a1",
        &vcard_set("a1", None, &card("Alice Liddell")),
    )
    .await;
    result_payload(&r);

    // Answered by the server on Alice's behalf (XEP-0054 §3.3).
    let r = ask(&mut bob, "a2", &vcard_get("a2", Some("alice@localhost"))).await;
    assert_eq!(r.attr("from"), Some("alice@localhost"));
    assert_eq!(result_payload(&r).unwrap().clone(), card("Alice Liddell"));

    // No card is an error for others (the XEP's MUST), the same one as for
    // an account that does not exist, so the two look alike.
    let r = ask(&mut alice, "a3", &vcard_get("a3", Some("bob@localhost"))).await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");
    let r = ask(&mut alice, "a4", &vcard_get("a4", Some("nobody@localhost"))).await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");

    // The server has no vCard of its own.
    let r = ask(&mut alice, "a5", &vcard_get("a5", Some("localhost"))).await;
    assert_eq!(stanza_error_condition(&r), "item-not-found");
    server.stop();
}

#[tokio::test]
async fn setting_someone_elses_vcard_is_forbidden() {
    let server = server_with_users("vcard-forbid").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let mut bob = login(&server, "bob", "builder").await;
    let r = ask(
        &mut alice,
        "f1",
        &vcard_set("f1", None, &card("Alice Liddell")),
    )
    .await;
    result_payload(&r);

    for (id, to) in [("f2", "alice@localhost"), ("f3", "localhost")] {
        let r = ask(&mut bob, id, &vcard_set(id, Some(to), &card("Mallory"))).await;
        assert_eq!(stanza_error_condition(&r), "forbidden", "to {to}");
    }
    let r = ask(&mut alice, "f4", &vcard_get("f4", None)).await;
    assert_eq!(result_payload(&r).unwrap().clone(), card("Alice Liddell"));
    server.stop();
}

#[tokio::test]
async fn an_oversized_vcard_is_a_policy_violation_and_changes_nothing() {
    let server = server_with_users("vcard-big").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let r = ask(
        &mut alice,
        "s1",
        &vcard_set("s1", None, &card("Alice Liddell")),
    )
    .await;
    result_payload(&r);

    let huge = card("Alice Liddell").with_child(
        Element::new("PHOTO", NS_VCARD)
            .with_child(Element::new("TYPE", NS_VCARD).with_text("image/png"))
            .with_child(Element::new("BINVAL", NS_VCARD).with_text("A".repeat(70 * 1024))),
    );
    let r = ask(&mut alice, "s2", &vcard_set("s2", None, &huge)).await;
    assert_eq!(stanza_error_condition(&r), "policy-violation");
    let r = ask(&mut alice, "s3", &vcard_get("s3", None)).await;
    assert_eq!(result_payload(&r).unwrap().clone(), card("Alice Liddell"));
    server.stop();
}

// What the server advertises.

/// Every feature the modules of this issue (and ping, disco) add.
const MODULE_FEATURES: &[&str] = &[
    NS_DISCO_INFO,
    "urn:xmpp:ping",
    NS_VERSION,
    NS_TIME,
    NS_LAST,
    NS_PRIVATE,
    NS_VCARD,
];

#[tokio::test]
async fn server_disco_info_lists_every_module_feature_and_matches_its_caps() {
    let server = server_with_users("disco").await;
    let addr = server.first_addr().unwrap();

    // XEP-0115 §6.3: caps in the stream features, before TLS, after it,
    // and after authentication; the same value each time.
    let caps = |f: &Element| {
        let c = f
            .get_child("c", NS_CAPS)
            .unwrap_or_else(|| panic!("no caps in {}", f.to_xml()));
        assert_eq!(c.attr("hash"), Some("sha-1"));
        assert!(c.attr("node").is_some_and(|n| !n.is_empty()));
        c.attr("ver").unwrap().to_owned()
    };
    let mut c = XmppClient::connect(addr).await;
    let ver = caps(&c.open().await);
    c.starttls().await;
    assert_eq!(caps(&c.open().await), ver);
    c.scram(
        Mechanism::ScramSha256Plus,
        "alice",
        "wonderland",
        Some(ChannelBindingType::TlsExporter),
    )
    .await
    .unwrap();
    assert_eq!(caps(&c.open().await), ver);
    c.bind(Some("r")).await.unwrap();

    let r = ask(
        &mut c,
        "d1",
        "<iq to='localhost' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let q = result_payload(&r).unwrap();
    let identities: Vec<(&str, &str)> = q
        .children()
        .filter(|e| e.is("identity", NS_DISCO_INFO))
        .map(|e| {
            (
                e.attr("category").unwrap_or_default(),
                e.attr("type").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(identities, vec![("server", "im")]);
    let features: Vec<String> = q
        .children()
        .filter(|e| e.is("feature", NS_DISCO_INFO))
        .map(|e| e.attr("var").unwrap().to_owned())
        .collect();
    for f in MODULE_FEATURES {
        assert!(features.iter().any(|g| g == f), "{f} missing: {features:?}");
    }

    // The caps hash is over exactly what disco#info lists (XEP-0115 §5.4):
    // recomputing it from the features received must give the value the
    // stream features carried.
    let received: Vec<&'static str> = features
        .into_iter()
        .map(|f| &*Box::leak(f.into_boxed_str()))
        .collect();
    assert_eq!(chorus_modules::caps_ver(&received), ver);
    server.stop();
}

#[tokio::test]
async fn an_accounts_disco_info_is_the_registered_account_identity() {
    let server = server_with_users("disco-acct").await;
    let mut alice = login(&server, "alice", "wonderland").await;
    let r = ask(
        &mut alice,
        "d2",
        "<iq to='alice@localhost' type='get' id='d2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let q = result_payload(&r).unwrap();
    let id = q.get_child("identity", NS_DISCO_INFO).unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type")),
        (Some("account"), Some("registered"))
    );
    server.stop();
}

/// XEP-0153: after a user stores a vCard with a PHOTO, its broadcast
/// presence carries the photo's SHA-1; before, an empty <photo/>.
#[tokio::test]
async fn presence_carries_the_vcard_avatar_hash() {
    let server = start(test_config("avatar")).await;
    add_user(&server, "alice", "wonderland").await;
    let addr = server.first_addr().unwrap();
    let (mut a1, _) = XmppClient::login(addr, "alice", "wonderland", Some("one")).await;
    let (mut a2, _) = XmppClient::login(addr, "alice", "wonderland", Some("two")).await;
    // Own presence comes back to the sender (RFC 6121 §4.2.2): no avatar yet.
    let p = a2.expect("presence").await;
    let photo = p
        .get_child("x", "vcard-temp:x:update")
        .and_then(|x| x.get_child("photo", "vcard-temp:x:update"))
        .expect("an update element");
    assert_eq!(photo.text(), "");
    // "hello" as the photo: its SHA-1 is known.
    a1.send("<iq type='set' id='v'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard></iq>").await;
    assert_eq!(a1.expect("iq").await.attr("type"), Some("result"));
    a1.send("<presence><show>chat</show></presence>").await;
    loop {
        let p = a2.expect("presence").await;
        if p.attr("from") != Some("alice@localhost/one") {
            continue;
        }
        let hash = p
            .get_child("x", "vcard-temp:x:update")
            .and_then(|x| x.get_child("photo", "vcard-temp:x:update"))
            .map(|ph| ph.text());
        if hash.as_deref() == Some("") {
            continue; // an earlier broadcast
        }
        assert_eq!(
            hash.as_deref(),
            Some("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
        );
        break;
    }
    server.stop();
}
