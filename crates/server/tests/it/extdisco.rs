//! XEP-0215 external service discovery and XEP-0157 contact addresses
//! over real sockets: both come from the configuration and show only when
//! configured; services and TURN credentials are for local users only.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use chorus_router::Outcome;
use chorus_xml::Element;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const NS: &str = "urn:xmpp:extdisco:2";
const NS_DATA: &str = "jabber:x:data";
const SERVERINFO: &str = "http://jabber.org/network/serverinfo";

fn configured(tag: &str) -> chorus_config::Config {
    let toml = "[contact]\n\
        abuse = ['mailto:abuse@localhost', 'xmpp:abuse@localhost']\n\
        security = ['mailto:security@localhost']\n\
        [[extdisco.services]]\ntype = 'stun'\nhost = 'stun.example.org'\nport = 3478\ntransport = 'udp'\n\
        [[extdisco.services]]\ntype = 'turn'\nhost = 'turn.example.org'\nport = 3478\ntransport = 'udp'\n\
        secret = 'not-in-any-log'\n";
    let mut c = chorus_config::Config::from_toml(toml).unwrap();
    let base = test_config(tag);
    c.server.data_dir = base.server.data_dir;
    c.metrics = base.metrics;
    c.listeners = base.listeners;
    c
}

async fn get(c: &mut XmppClient, id: &str, to: &str, payload: &str) -> Element {
    c.send(&format!(
        "<iq type='get' id='{id}' to='{to}'>{payload}</iq>"
    ))
    .await;
    loop {
        let e = c.expect("iq").await;
        if e.attr("id") == Some(id) {
            return e;
        }
    }
}

async fn server_info(c: &mut XmppClient) -> Element {
    let r = get(
        c,
        "info",
        "localhost",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    r.get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .clone()
}

fn has_feature(info: &Element, var: &str) -> bool {
    info.children()
        .any(|f| f.name() == "feature" && f.attr("var") == Some(var))
}

#[tokio::test]
async fn nothing_configured_nothing_shown() {
    let server = start(test_config("extdisco-off")).await;
    add_user(&server, "alice", "wonderland").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let info = server_info(&mut alice).await;
    assert!(!has_feature(&info, NS));
    assert!(info.get_child("x", NS_DATA).is_none(), "{}", info.to_xml());
    let r = get(
        &mut alice,
        "s",
        "localhost",
        &format!("<services xmlns='{NS}'/>"),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");
    server.stop();
}

#[tokio::test]
async fn contact_addresses_are_a_serverinfo_form() {
    let server = start(configured("contact")).await;
    add_user(&server, "alice", "wonderland").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let info = server_info(&mut alice).await;
    let x = info.get_child("x", NS_DATA).unwrap();
    assert_eq!(x.attr("type"), Some("result"));
    let fields: Vec<(String, Vec<String>)> = x
        .children()
        .map(|f| {
            (
                f.attr("var").unwrap().to_owned(),
                f.children().map(Element::text).collect(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            ("FORM_TYPE".to_owned(), vec![SERVERINFO.to_owned()]),
            (
                "abuse-addresses".to_owned(),
                vec![
                    "mailto:abuse@localhost".into(),
                    "xmpp:abuse@localhost".into()
                ]
            ),
            (
                "security-addresses".to_owned(),
                vec!["mailto:security@localhost".into()]
            ),
        ]
    );
    server.stop();
}

#[tokio::test]
async fn services_and_turn_credentials_for_local_users() {
    let server = start(configured("extdisco")).await;
    add_user(&server, "alice", "wonderland").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    assert!(has_feature(&server_info(&mut alice).await, NS));

    // §3.1: every service; the TURN one with credentials.
    let r = get(
        &mut alice,
        "s1",
        "localhost",
        &format!("<services xmlns='{NS}'/>"),
    )
    .await;
    let services: Vec<Element> = r
        .get_child("services", NS)
        .unwrap()
        .children()
        .cloned()
        .collect();
    assert_eq!(services.len(), 2, "{}", r.to_xml());
    let stun = &services[0];
    assert_eq!(
        (
            stun.attr("type"),
            stun.attr("host"),
            stun.attr("port"),
            stun.attr("transport")
        ),
        (
            Some("stun"),
            Some("stun.example.org"),
            Some("3478"),
            Some("udp")
        )
    );
    assert_eq!(stun.attr("username"), None);
    let turn = &services[1];
    let username = turn.attr("username").unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice@localhost");
    let expiry: u64 = expiry.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A day, the default lifetime.
    assert!(
        (now + 86_300..=now + 86_500).contains(&expiry),
        "{expiry} {now}"
    );
    // An HMAC-SHA1: 20 bytes.
    let password = base64::engine::general_purpose::STANDARD
        .decode(turn.attr("password").unwrap())
        .unwrap();
    assert_eq!(password.len(), 20);
    assert_eq!(turn.attr("restricted"), Some("true"));
    // XEP-0082 DateTime in UTC: 2024-01-02T03:04:05Z.
    let expires = turn.attr("expires").unwrap();
    assert!(
        expires.len() == 20 && expires.as_bytes()[10] == b'T' && expires.ends_with('Z'),
        "{expires}"
    );
    assert!(!r.to_xml().contains("not-in-any-log"));

    // §3.2: one type.
    let r = get(
        &mut alice,
        "s2",
        "localhost",
        &format!("<services xmlns='{NS}' type='stun'/>"),
    )
    .await;
    let list = r.get_child("services", NS).unwrap();
    assert_eq!(list.attr("type"), Some("stun"));
    assert_eq!(list.children().count(), 1);

    // §3.3: credentials for one service; an unknown one is item-not-found;
    // naming none is bad-request.
    let r = get(
        &mut alice,
        "c1",
        "localhost",
        &format!("<credentials xmlns='{NS}'><service type='turn' host='turn.example.org'/></credentials>"),
    )
    .await;
    let service = r
        .get_child("credentials", NS)
        .and_then(|c| c.get_child("service", NS))
        .unwrap();
    assert!(service
        .attr("username")
        .unwrap()
        .ends_with(":alice@localhost"));
    let r = get(
        &mut alice,
        "c2",
        "localhost",
        &format!("<credentials xmlns='{NS}'><service type='turn' host='nope.example.org'/></credentials>"),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "item-not-found");
    let r = get(
        &mut alice,
        "c3",
        "localhost",
        &format!("<credentials xmlns='{NS}'/>"),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "bad-request");

    // Not for another server's users.
    let from_afar = Element::from_xml(&format!(
        "<iq xmlns='jabber:client' type='get' id='x' from='eve@elsewhere.example/x' \
         to='localhost'><services xmlns='{NS}'/></iq>"
    ))
    .unwrap();
    match server.router.route(from_afar).await {
        Outcome::Reply(e) => assert_eq!(stanza_error_condition(&e), "forbidden"),
        other => panic!("{other:?}"),
    }
    server.stop();
}
