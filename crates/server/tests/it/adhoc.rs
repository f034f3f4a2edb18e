//! XEP-0050 ad-hoc commands and XEP-0133 service administration through
//! real sockets, from the XEPs' examples: who sees which commands, the
//! ping, every admin command and its effect on accounts and sessions, the
//! message of the day at login, and the failure paths (a non-admin, an
//! unknown node, bad and ended sessions, bad actions and payloads).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use chorus_sasl::{ChannelBindingType, Mechanism};
use chorus_storage::{AdminStore, LastActivityStore, RosterItem, RosterStore, Subscription};
use chorus_xml::Element;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const CMD: &str = "http://jabber.org/protocol/commands";
const ADMIN: &str = "http://jabber.org/protocol/admin";
const DATA: &str = "jabber:x:data";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";

async fn server(tag: &str) -> chorus_server::Server {
    let mut cfg = test_config(tag);
    cfg.admin.admins = vec!["admin@localhost".into()];
    let server = start(cfg).await;
    for u in ["admin", "alice", "bob"] {
        add_user(&server, u, &format!("{u}-secret")).await;
    }
    server
}

async fn login(server: &chorus_server::Server, user: &str, resource: &str) -> XmppClient {
    let (c, _) = XmppClient::login(
        server.first_addr().unwrap(),
        user,
        &format!("{user}-secret"),
        Some(resource),
    )
    .await;
    c
}

/// Whether `user` can authenticate with `password`.
async fn can_log_in(server: &chorus_server::Server, user: &str, password: &str) -> bool {
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    c.scram(
        Mechanism::ScramSha256Plus,
        user,
        password,
        Some(ChannelBindingType::TlsExporter),
    )
    .await
    .is_ok()
}

static IDS: AtomicUsize = AtomicUsize::new(0);

/// Sends an IQ to the server (id and `to` filled in); returns the
/// messages that came before its answer, and the answer.
async fn ask(c: &mut XmppClient, iq: &str) -> (Vec<Element>, Element) {
    let id = format!("a{}", IDS.fetch_add(1, Ordering::Relaxed));
    c.send(&iq.replacen("<iq ", &format!("<iq id='{id}' to='localhost' "), 1))
        .await;
    let mut before = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            return (before, e);
        }
        if e.name() == "message" {
            before.push(e);
        }
    }
}

/// Sends a `<command/>` (attributes and children as given) and returns
/// the `<command/>` of the result.
async fn command(c: &mut XmppClient, attrs: &str, children: &str) -> Element {
    let (_, r) = ask(
        c,
        &format!("<iq type='set'><command xmlns='{CMD}' {attrs}>{children}</command></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    assert_eq!(r.attr("from"), Some("localhost"));
    r.get_child("command", CMD).unwrap().clone()
}

/// Sends a `<command/>` that must fail; returns the stanza error condition
/// and XEP-0050's specific one ("" for none).
async fn refused(c: &mut XmppClient, attrs: &str, children: &str) -> (String, String) {
    let (_, r) = ask(
        c,
        &format!("<iq type='set'><command xmlns='{CMD}' {attrs}>{children}</command></iq>"),
    )
    .await;
    assert_eq!(r.attr("type"), Some("error"), "{}", r.to_xml());
    let specific = r
        .get_child("error", "jabber:client")
        .and_then(|e| e.children().find(|c| c.ns() == CMD))
        .map(|a| a.name().to_owned())
        .unwrap_or_default();
    (stanza_error_condition(&r), specific)
}

fn node(name: &str) -> String {
    format!("{ADMIN}#{name}")
}

/// A submitted form with FORM_TYPE and these fields.
fn submit(fields: &[(&str, &[&str])]) -> String {
    let mut x = format!(
        "<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{ADMIN}</value></field>"
    );
    for (var, values) in fields {
        x.push_str(&format!("<field var='{var}'>"));
        for v in *values {
            x.push_str(&format!("<value>{v}</value>"));
        }
        x.push_str("</field>");
    }
    x.push_str("</x>");
    x
}

/// Executes `name` and returns its session id after checking the first
/// answer is a form.
async fn open(c: &mut XmppClient, name: &str) -> (String, Element) {
    let r = command(c, &format!("node='{}' action='execute'", node(name)), "").await;
    assert_eq!(r.attr("status"), Some("executing"), "{}", r.to_xml());
    let form = r.get_child("x", DATA).unwrap();
    assert_eq!(form.attr("type"), Some("form"));
    (r.attr("sessionid").unwrap().to_owned(), r)
}

/// Executes `name`, submits `fields` with `complete` and returns the
/// completed `<command/>`.
async fn run(c: &mut XmppClient, name: &str, fields: &[(&str, &[&str])]) -> Element {
    let (sid, _) = open(c, name).await;
    let r = command(
        c,
        &format!("node='{}' sessionid='{sid}' action='complete'", node(name)),
        &submit(fields),
    )
    .await;
    assert_eq!(r.attr("status"), Some("completed"), "{}", r.to_xml());
    assert_eq!(r.attr("sessionid"), Some(sid.as_str()));
    r
}

fn field_values(x: &Element, var: &str) -> Vec<String> {
    x.children()
        .find(|f| f.name() == "field" && f.attr("var") == Some(var))
        .map(|f| {
            f.children()
                .filter(|v| v.name() == "value")
                .map(Element::text)
                .collect()
        })
        .unwrap_or_default()
}

fn notes(cmd: &Element) -> Vec<(String, String)> {
    cmd.children()
        .filter(|n| n.is("note", CMD))
        .map(|n| (n.attr("type").unwrap_or("info").to_owned(), n.text()))
        .collect()
}

/// Reads until the next message (presence skipped).
async fn next_message(c: &mut XmppClient) -> Element {
    loop {
        let e = c.next_element().await;
        if e.name() == "message" {
            return e;
        }
    }
}

#[tokio::test]
async fn the_command_list_depends_on_who_asks() {
    let server = server("adhoc-disco").await;
    let mut admin = login(&server, "admin", "a").await;
    let mut alice = login(&server, "alice", "a").await;

    // §2.1: the server supports the protocol.
    let (_, r) = ask(
        &mut alice,
        &format!("<iq type='get'><query xmlns='{DISCO_INFO}'/></iq>"),
    )
    .await;
    let q = r.get_child("query", DISCO_INFO).unwrap();
    assert!(q
        .children()
        .any(|f| f.name() == "feature" && f.attr("var") == Some(CMD)));

    let items = |r: &Element| -> Vec<(String, String, String)> {
        r.get_child("query", DISCO_ITEMS)
            .unwrap()
            .children()
            .map(|i| {
                (
                    i.attr("jid").unwrap().to_owned(),
                    i.attr("node").unwrap().to_owned(),
                    i.attr("name").unwrap().to_owned(),
                )
            })
            .collect()
    };
    let list = format!("<iq type='get'><query xmlns='{DISCO_ITEMS}' node='{CMD}'/></iq>");
    // §2.2: an admin sees the XEP-0133 commands besides the ping...
    let (_, r) = ask(&mut admin, &list).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    let admin_items = items(&r);
    assert_eq!(admin_items.len(), 17, "{admin_items:?}");
    assert_eq!(
        admin_items[0],
        ("localhost".into(), "ping".into(), "Ping".into())
    );
    for name in [
        "add-user",
        "delete-user",
        "disable-user",
        "reenable-user",
        "end-user-session",
        "change-user-password",
        "get-user-roster",
        "get-user-lastlogin",
        "get-registered-users-num",
        "get-online-users-num",
        "get-registered-users-list",
        "get-online-users-list",
        "announce",
        "set-motd",
        "edit-motd",
        "delete-motd",
    ] {
        assert!(
            admin_items.iter().any(|(_, n, _)| *n == node(name)),
            "{name} missing"
        );
    }
    // ... anyone else only what is open to all.
    let (_, r) = ask(&mut alice, &list).await;
    assert_eq!(
        items(&r),
        [("localhost".into(), "ping".into(), "Ping".into())]
    );

    // The command list node's own identity.
    let (_, r) = ask(
        &mut alice,
        &format!("<iq type='get'><query xmlns='{DISCO_INFO}' node='{CMD}'/></iq>"),
    )
    .await;
    let id = r
        .get_child("query", DISCO_INFO)
        .unwrap()
        .get_child("identity", DISCO_INFO)
        .unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type")),
        (Some("automation"), Some("command-list"))
    );

    // A command node: identity and features for the admin, forbidden for
    // the others (§2.2), nothing at all for an unknown node.
    let info = format!(
        "<iq type='get'><query xmlns='{DISCO_INFO}' node='{}'/></iq>",
        node("add-user")
    );
    let (_, r) = ask(&mut admin, &info).await;
    let q = r.get_child("query", DISCO_INFO).unwrap();
    assert_eq!(q.attr("node"), Some(node("add-user").as_str()));
    let id = q.get_child("identity", DISCO_INFO).unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type"), id.attr("name")),
        (Some("automation"), Some("command-node"), Some("Add a User"))
    );
    let features: Vec<_> = q
        .children()
        .filter(|f| f.name() == "feature")
        .filter_map(|f| f.attr("var"))
        .collect();
    assert_eq!(features, [CMD, DATA]);
    let (_, r) = ask(&mut alice, &info).await;
    assert_eq!(stanza_error_condition(&r), "forbidden");
    let (_, r) = ask(
        &mut admin,
        &format!("<iq type='get'><query xmlns='{DISCO_INFO}' node='{ADMIN}#nope'/></iq>"),
    )
    .await;
    assert_eq!(stanza_error_condition(&r), "item-not-found");
}

#[tokio::test]
async fn the_ping_command_answers_pong_to_anyone() {
    let server = server("adhoc-ping").await;
    let mut alice = login(&server, "alice", "a").await;
    let r = command(&mut alice, "node='ping' action='execute'", "").await;
    assert_eq!(r.attr("status"), Some("completed"));
    assert_eq!(r.attr("node"), Some("ping"));
    assert!(r.attr("sessionid").is_some_and(|s| !s.is_empty()));
    assert_eq!(notes(&r), [("info".to_owned(), "Pong".to_owned())]);
    assert!(r.get_child("actions", CMD).is_none());
    // A completed command's session is over.
    let sid = r.attr("sessionid").unwrap().to_owned();
    assert_eq!(
        refused(&mut alice, &format!("node='ping' sessionid='{sid}'"), "").await,
        ("not-allowed".into(), "session-expired".into())
    );
    // action defaults to execute (§4.1).
    let r = command(&mut alice, "node='ping'", "").await;
    assert_eq!(r.attr("status"), Some("completed"));
}

#[tokio::test]
async fn refusals_name_the_xep_conditions() {
    let server = server("adhoc-refusals").await;
    let mut admin = login(&server, "admin", "a").await;
    let mut alice = login(&server, "alice", "a").await;

    // XEP-0133 §4: only admins.
    let add = format!("node='{}' action='execute'", node("add-user"));
    assert_eq!(
        refused(&mut alice, &add, "").await,
        ("forbidden".into(), "".into())
    );
    // An unknown node.
    assert_eq!(
        refused(&mut admin, &format!("node='{ADMIN}#nope'"), "").await,
        ("item-not-found".into(), "".into())
    );
    // An action the XEP does not define.
    assert_eq!(
        refused(
            &mut admin,
            &format!("node='{}' action='go'", node("add-user")),
            ""
        )
        .await,
        ("bad-request".into(), "malformed-action".into())
    );
    // A session nobody opened.
    assert_eq!(
        refused(
            &mut admin,
            &format!(
                "node='{}' sessionid='bogus' action='complete'",
                node("add-user")
            ),
            &submit(&[])
        )
        .await,
        ("bad-request".into(), "bad-sessionid".into())
    );

    let (sid, first) = open(&mut admin, "add-user").await;
    // The form the XEP shows: FORM_TYPE and its fields; one stage, so
    // complete is the only (and the default) action.
    let actions = first.get_child("actions", CMD).unwrap();
    assert_eq!(actions.attr("execute"), Some("complete"));
    assert_eq!(
        actions.children().map(|a| a.name()).collect::<Vec<_>>(),
        ["complete"]
    );
    let x = first.get_child("x", DATA).unwrap();
    assert_eq!(field_values(x, "FORM_TYPE"), [ADMIN]);
    for var in ["accountjid", "password", "password-verify", "email"] {
        assert!(
            x.children().any(|f| f.attr("var") == Some(var)),
            "{var} missing"
        );
    }
    let this = |action: &str| {
        format!(
            "node='{}' sessionid='{sid}' action='{action}'",
            node("add-user")
        )
    };
    // prev on the first stage, next on the last.
    assert_eq!(
        refused(&mut admin, &this("prev"), "").await,
        ("bad-request".into(), "bad-action".into())
    );
    assert_eq!(
        refused(&mut admin, &this("next"), &submit(&[])).await,
        ("bad-request".into(), "bad-action".into())
    );
    // No form, or one missing a required field.
    assert_eq!(
        refused(&mut admin, &this("complete"), "").await,
        ("bad-request".into(), "bad-payload".into())
    );
    assert_eq!(
        refused(
            &mut admin,
            &this("complete"),
            &submit(&[("password", &["x"]), ("password-verify", &["x"])])
        )
        .await,
        ("bad-request".into(), "bad-payload".into())
    );
    // Another command's session.
    assert_eq!(
        refused(
            &mut admin,
            &format!("node='{}' sessionid='{sid}'", node("delete-user")),
            ""
        )
        .await,
        ("bad-request".into(), "bad-sessionid".into())
    );
    // Canceled (§4.3), the session is over: session-expired after.
    let r = command(&mut admin, &this("cancel"), "").await;
    assert_eq!(r.attr("status"), Some("canceled"));
    assert_eq!(r.attr("sessionid"), Some(sid.as_str()));
    assert_eq!(
        refused(&mut admin, &this("complete"), &submit(&[])).await,
        ("not-allowed".into(), "session-expired".into())
    );
    // Another resource of the same admin does not share the sessions.
    let (sid2, _) = open(&mut admin, "add-user").await;
    let mut admin2 = login(&server, "admin", "b").await;
    assert_eq!(
        refused(
            &mut admin2,
            &format!(
                "node='{}' sessionid='{sid2}' action='cancel'",
                node("add-user")
            ),
            ""
        )
        .await,
        ("bad-request".into(), "bad-sessionid".into())
    );
}

#[tokio::test]
async fn add_user_creates_an_account_that_can_log_in() {
    let server = server("adhoc-add").await;
    let mut admin = login(&server, "admin", "a").await;

    // Passwords that differ: bad-payload, and the session stays for a
    // corrected form.
    let (sid, _) = open(&mut admin, "add-user").await;
    let complete = format!(
        "node='{}' sessionid='{sid}' action='complete'",
        node("add-user")
    );
    let (cond, specific) = refused(
        &mut admin,
        &complete,
        &submit(&[
            ("accountjid", &["juliet@localhost"]),
            ("password", &["R0m30"]),
            ("password-verify", &["R0m3o"]),
        ]),
    )
    .await;
    assert_eq!(
        (cond.as_str(), specific.as_str()),
        ("bad-request", "bad-payload")
    );
    let r = command(
        &mut admin,
        &complete,
        &submit(&[
            ("accountjid", &["juliet@localhost"]),
            ("password", &["R0m30"]),
            ("password-verify", &["R0m30"]),
            ("email", &["juliet@capulet.com"]),
        ]),
    )
    .await;
    assert_eq!(r.attr("status"), Some("completed"));
    assert!(can_log_in(&server, "juliet", "R0m30").await);

    // XEP-0133 §5: the account exists.
    let (sid, _) = open(&mut admin, "add-user").await;
    let (cond, _) = refused(
        &mut admin,
        &format!(
            "node='{}' sessionid='{sid}' action='complete'",
            node("add-user")
        ),
        &submit(&[
            ("accountjid", &["juliet@localhost"]),
            ("password", &["other"]),
            ("password-verify", &["other"]),
        ]),
    )
    .await;
    assert_eq!(cond, "conflict");
    // A domain not served here.
    let (sid, _) = open(&mut admin, "add-user").await;
    let (cond, specific) = refused(
        &mut admin,
        &format!(
            "node='{}' sessionid='{sid}' action='complete'",
            node("add-user")
        ),
        &submit(&[
            ("accountjid", &["juliet@example.org"]),
            ("password", &["p"]),
            ("password-verify", &["p"]),
        ]),
    )
    .await;
    assert_eq!(
        (cond.as_str(), specific.as_str()),
        ("bad-request", "bad-payload")
    );
}

#[tokio::test]
async fn delete_user_reviews_goes_back_and_deletes() {
    let server = server("adhoc-delete").await;
    let mut admin = login(&server, "admin", "a").await;
    let mut bob = login(&server, "bob", "b").await;

    let (sid, _) = open(&mut admin, "delete-user").await;
    let at = |action: &str| {
        format!(
            "node='{}' sessionid='{sid}' action='{action}'",
            node("delete-user")
        )
    };
    // next: the review stage, which can go back or complete.
    let r = command(
        &mut admin,
        &at("next"),
        &submit(&[("accountjids", &["bob@localhost", "nobody@localhost"])]),
    )
    .await;
    assert_eq!(r.attr("status"), Some("executing"));
    let actions = r.get_child("actions", CMD).unwrap();
    assert_eq!(actions.attr("execute"), Some("complete"));
    assert_eq!(
        actions.children().map(|a| a.name()).collect::<Vec<_>>(),
        ["prev", "complete"]
    );
    let review = r.get_child("x", DATA).unwrap().to_xml();
    assert!(
        review.contains("bob@localhost: 1 session(s) online"),
        "{review}"
    );
    assert!(
        review.contains("nobody@localhost: no such account"),
        "{review}"
    );
    // prev: the first form again, with what was submitted.
    let r = command(&mut admin, &at("prev"), "").await;
    assert_eq!(r.attr("status"), Some("executing"));
    let x = r.get_child("x", DATA).unwrap();
    assert_eq!(
        field_values(x, "accountjids"),
        ["bob@localhost", "nobody@localhost"]
    );
    // Corrected, reviewed, completed.
    command(
        &mut admin,
        &at("next"),
        &submit(&[("accountjids", &["bob@localhost"])]),
    )
    .await;
    let r = command(&mut admin, &at("complete"), &submit(&[])).await;
    assert_eq!(r.attr("status"), Some("completed"));
    assert_eq!(
        notes(&r),
        [("info".to_owned(), "bob@localhost: deleted".to_owned())]
    );
    // As `chorusctl user del`: the account and its session are gone.
    assert_eq!(bob.expect_stream_error().await, "not-authorized");
    assert!(!can_log_in(&server, "bob", "bob-secret").await);

    // An account that does not exist, alone: item-not-found.
    let (sid, _) = open(&mut admin, "delete-user").await;
    let (cond, _) = refused(
        &mut admin,
        &format!(
            "node='{}' sessionid='{sid}' action='complete'",
            node("delete-user")
        ),
        &submit(&[("accountjids", &["bob@localhost"])]),
    )
    .await;
    assert_eq!(cond, "item-not-found");
}

#[tokio::test]
async fn change_user_password_replaces_the_old_one() {
    let server = server("adhoc-passwd").await;
    let mut admin = login(&server, "admin", "a").await;
    run(
        &mut admin,
        "change-user-password",
        &[
            ("accountjid", &["alice@localhost"]),
            ("password", &["V3r0n4"]),
        ],
    )
    .await;
    assert!(!can_log_in(&server, "alice", "alice-secret").await);
    assert!(can_log_in(&server, "alice", "V3r0n4").await);
}

#[tokio::test]
async fn disable_ends_sessions_and_reenable_lifts_it() {
    let server = server("adhoc-disable").await;
    let mut admin = login(&server, "admin", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    let r = run(
        &mut admin,
        "disable-user",
        &[("accountjids", &["bob@localhost"]), ("reason", &["spam"])],
    )
    .await;
    assert_eq!(
        notes(&r),
        [("info".to_owned(), "bob@localhost: disabled".to_owned())]
    );
    // XEP-0133 §4.3: its sessions end at once; its data stays.
    assert_eq!(bob.expect_stream_error().await, "policy-violation");
    assert_eq!(
        server
            .storage
            .account_disabled("bob", "localhost")
            .await
            .unwrap()
            .as_deref(),
        Some("spam")
    );
    run(
        &mut admin,
        "reenable-user",
        &[("accountjids", &["bob@localhost"])],
    )
    .await;
    assert_eq!(
        server
            .storage
            .account_disabled("bob", "localhost")
            .await
            .unwrap(),
        None
    );
    assert!(can_log_in(&server, "bob", "bob-secret").await);
}

#[tokio::test]
async fn end_user_session_ends_one_resource_or_all() {
    let server = server("adhoc-end").await;
    let mut admin = login(&server, "admin", "a").await;
    let mut bob1 = login(&server, "bob", "one").await;
    let mut bob2 = login(&server, "bob", "two").await;
    // A full JID: that session only (§4.5).
    run(
        &mut admin,
        "end-user-session",
        &[("accountjids", &["bob@localhost/one"])],
    )
    .await;
    assert_eq!(bob1.expect_stream_error().await, "policy-violation");
    let (_, pong) = ask(
        &mut bob2,
        "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    assert_eq!(pong.attr("type"), Some("result"));
    // A bare JID: every session; the account stays.
    run(
        &mut admin,
        "end-user-session",
        &[("accountjids", &["bob@localhost"])],
    )
    .await;
    assert_eq!(bob2.expect_stream_error().await, "policy-violation");
    assert!(can_log_in(&server, "bob", "bob-secret").await);
    // Nobody online: item-not-found.
    let (sid, _) = open(&mut admin, "end-user-session").await;
    let (cond, _) = refused(
        &mut admin,
        &format!(
            "node='{}' sessionid='{sid}' action='complete'",
            node("end-user-session")
        ),
        &submit(&[("accountjids", &["bob@localhost"])]),
    )
    .await;
    assert_eq!(cond, "item-not-found");
}

#[tokio::test]
async fn roster_and_last_login_of_a_user() {
    let server = server("adhoc-roster").await;
    let mut admin = login(&server, "admin", "a").await;
    server
        .storage
        .put_roster_item(
            "alice",
            "localhost",
            &RosterItem {
                jid: "romeo@example.net".into(),
                name: Some("Romeo".into()),
                subscription: Subscription::Both,
                ask: false,
                approved: false,
                groups: vec!["Friends".into(), "Lovers".into()],
            },
        )
        .await
        .unwrap();
    let r = run(
        &mut admin,
        "get-user-roster",
        &[("accountjids", &["alice@localhost"])],
    )
    .await;
    let x = r.get_child("x", DATA).unwrap();
    assert_eq!(x.attr("type"), Some("result"));
    assert_eq!(field_values(x, "accountjids"), ["alice@localhost"]);
    let q = x.get_child("query", "jabber:iq:roster").unwrap();
    let item = q.get_child("item", "jabber:iq:roster").unwrap();
    assert_eq!(
        (
            item.attr("jid"),
            item.attr("name"),
            item.attr("subscription")
        ),
        (Some("romeo@example.net"), Some("Romeo"), Some("both"))
    );
    let groups: Vec<String> = item.children().map(Element::text).collect();
    assert_eq!(groups, ["Friends", "Lovers"]);

    // Last login: online now, a recorded logout, never.
    let lastlogin = |r: &Element| field_values(r.get_child("x", DATA).unwrap(), "lastlogin");
    let r = run(
        &mut admin,
        "get-user-lastlogin",
        &[("accountjid", &["admin@localhost"])],
    )
    .await;
    assert_eq!(lastlogin(&r), ["Online"]);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_071_856_715);
    server
        .storage
        .set_last_activity("alice", "localhost", t, "")
        .await
        .unwrap();
    let r = run(
        &mut admin,
        "get-user-lastlogin",
        &[("accountjid", &["alice@localhost"])],
    )
    .await;
    assert_eq!(lastlogin(&r), ["2003-12-19T17:58:35Z"]);
    let r = run(
        &mut admin,
        "get-user-lastlogin",
        &[("accountjid", &["bob@localhost"])],
    )
    .await;
    assert_eq!(lastlogin(&r), ["Never"]);
    // One account at a time; an unknown one is not found.
    let (sid, _) = open(&mut admin, "get-user-roster").await;
    let (cond, specific) = refused(
        &mut admin,
        &format!("node='{}' sessionid='{sid}'", node("get-user-roster")),
        &submit(&[("accountjids", &["alice@localhost", "bob@localhost"])]),
    )
    .await;
    assert_eq!(
        (cond.as_str(), specific.as_str()),
        ("bad-request", "bad-payload")
    );
    let (cond, _) = refused(
        &mut admin,
        &format!("node='{}' sessionid='{sid}'", node("get-user-roster")),
        &submit(&[("accountjids", &["nobody@localhost"])]),
    )
    .await;
    assert_eq!(cond, "item-not-found");
}

#[tokio::test]
async fn counts_and_lists_of_users() {
    let server = server("adhoc-counts").await;
    let mut admin = login(&server, "admin", "a").await;
    let _alice = login(&server, "alice", "a").await;
    let _alice2 = login(&server, "alice", "b").await;

    // Counts complete at once, with no form.
    let num = |name: &'static str| format!("node='{}' action='execute'", node(name));
    let r = command(&mut admin, &num("get-registered-users-num"), "").await;
    assert_eq!(r.attr("status"), Some("completed"));
    assert_eq!(
        field_values(r.get_child("x", DATA).unwrap(), "registeredusersnum"),
        ["3"]
    );
    let r = command(&mut admin, &num("get-online-users-num"), "").await;
    // Users, not sessions: alice's two resources count once.
    assert_eq!(
        field_values(r.get_child("x", DATA).unwrap(), "onlineusersnum"),
        ["2"]
    );

    let (_, first) = open(&mut admin, "get-registered-users-list").await;
    let options: Vec<String> = first
        .get_child("x", DATA)
        .unwrap()
        .children()
        .find(|f| f.attr("var") == Some("max_items"))
        .unwrap()
        .children()
        .filter(|o| o.name() == "option")
        .map(|o| o.get_child("value", DATA).unwrap().text())
        .collect();
    assert_eq!(options, ["25", "50", "75", "100", "150", "200", "none"]);
    let r = run(
        &mut admin,
        "get-registered-users-list",
        &[("max_items", &["none"])],
    )
    .await;
    assert_eq!(
        field_values(r.get_child("x", DATA).unwrap(), "registereduserjids"),
        ["admin@localhost", "alice@localhost", "bob@localhost"]
    );
    let r = run(
        &mut admin,
        "get-registered-users-list",
        &[("max_items", &["2"])],
    )
    .await;
    assert_eq!(
        field_values(r.get_child("x", DATA).unwrap(), "registereduserjids"),
        ["admin@localhost", "alice@localhost"]
    );
    assert_eq!(
        notes(&r),
        [("warn".to_owned(), "showing 2 of 3".to_owned())]
    );
    let r = run(
        &mut admin,
        "get-online-users-list",
        &[("max_items", &["25"])],
    )
    .await;
    assert_eq!(
        field_values(r.get_child("x", DATA).unwrap(), "onlineuserjids"),
        ["admin@localhost", "alice@localhost"]
    );
}

#[tokio::test]
async fn announcements_reach_every_online_session() {
    let server = server("adhoc-announce").await;
    let mut admin = login(&server, "admin", "a").await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    let r = run(
        &mut admin,
        "announce",
        &[(
            "announcement",
            &[
                "Attention! This service will be going down for",
                "maintenance in 2 minutes.",
            ],
        )],
    )
    .await;
    assert_eq!(
        notes(&r),
        [("info".to_owned(), "sent to 3 session(s)".to_owned())]
    );
    for c in [&mut alice, &mut bob] {
        let m = next_message(c).await;
        assert_eq!(m.attr("from"), Some("localhost"));
        assert_eq!(m.attr("type"), Some("headline"));
        assert_eq!(
            m.get_child("body", "jabber:client").unwrap().text(),
            "Attention! This service will be going down for\nmaintenance in 2 minutes."
        );
    }
    // An empty announcement is refused.
    let (sid, _) = open(&mut admin, "announce").await;
    let (cond, specific) = refused(
        &mut admin,
        &format!("node='{}' sessionid='{sid}'", node("announce")),
        &submit(&[("announcement", &[])]),
    )
    .await;
    assert_eq!(
        (cond.as_str(), specific.as_str()),
        ("bad-request", "bad-payload")
    );
}

/// Logs `user` in and returns the message of the day it was sent at its
/// initial presence, if any (a ping after the presence marks the end).
async fn motd_at_login(
    server: &chorus_server::Server,
    user: &str,
    resource: &str,
) -> Option<String> {
    let mut c = login(server, user, resource).await;
    let (before, _) = ask(&mut c, "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    let motds: Vec<String> = before
        .iter()
        .filter(|m| {
            m.get_child("subject", "jabber:client")
                .is_some_and(|s| s.text() == "Message of the day")
        })
        .map(|m| m.get_child("body", "jabber:client").unwrap().text())
        .collect();
    assert!(motds.len() <= 1, "{motds:?}");
    motds.into_iter().next()
}

#[tokio::test]
async fn the_message_of_the_day_is_set_edited_and_deleted() {
    let server = server("adhoc-motd").await;
    let mut admin = login(&server, "admin", "a").await;
    let mut alice = login(&server, "alice", "a").await;
    assert_eq!(motd_at_login(&server, "bob", "before").await, None);

    run(
        &mut admin,
        "set-motd",
        &[("motd", &["Tea at five.", "--The Staff"])],
    )
    .await;
    // Sent at once to who is online (§4.24)...
    let m = next_message(&mut alice).await;
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Tea at five.\n--The Staff"
    );
    // ... and to each later session at its initial presence, once.
    assert_eq!(
        motd_at_login(&server, "bob", "r1").await.as_deref(),
        Some("Tea at five.\n--The Staff")
    );

    // §4.25: the edit form holds the current message.
    let (sid, first) = open(&mut admin, "edit-motd").await;
    assert_eq!(
        field_values(first.get_child("x", DATA).unwrap(), "motd"),
        ["Tea at five.", "--The Staff"]
    );
    command(
        &mut admin,
        &format!("node='{}' sessionid='{sid}'", node("edit-motd")),
        &submit(&[("motd", &["Tea at six."])]),
    )
    .await;
    assert_eq!(
        motd_at_login(&server, "bob", "r2").await.as_deref(),
        Some("Tea at six.")
    );
    assert_eq!(
        server.storage.motd("localhost").await.unwrap().as_deref(),
        Some("Tea at six.")
    );

    // Deleted: no form, completed at once, nothing sent any more.
    let r = command(
        &mut admin,
        &format!("node='{}' action='execute'", node("delete-motd")),
        "",
    )
    .await;
    assert_eq!(r.attr("status"), Some("completed"));
    assert_eq!(motd_at_login(&server, "bob", "r3").await, None);
    // The correction was not sent to alice, who was online.
    let (before, _) = ask(
        &mut alice,
        "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    assert!(before.is_empty(), "{before:?}");
}

/// Runs `chorusctl` against the server's socket off the runtime (the
/// server answers on it); returns the exit code and standard output.
async fn chorusctl(server: &chorus_server::Server, args: &[&str]) -> (i32, String) {
    let socket = server.admin_socket.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(chorusctl_bin())
            .arg("--socket")
            .arg(&socket)
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn chorusctl_runs_the_same_commands() {
    let server = server("adhoc-ctl").await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;

    let (code, out) = chorusctl(&server, &["user", "count", "localhost"]).await;
    assert_eq!((code, out.as_str()), (0, "3\n"));
    let (code, out) = chorusctl(&server, &["user", "lastlogin", "alice@localhost"]).await;
    assert_eq!((code, out.as_str()), (0, "alice@localhost: online (a)\n"));
    let (code, out) = chorusctl(&server, &["user", "roster", "alice@localhost"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "alice@localhost has no contacts\n")
    );

    let (code, _) = chorusctl(&server, &["announce", "Tea time", "--subject", "News"]).await;
    assert_eq!(code, 0);
    let m = next_message(&mut alice).await;
    assert_eq!(
        m.get_child("subject", "jabber:client").unwrap().text(),
        "News"
    );
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Tea time"
    );
    next_message(&mut bob).await;

    let (code, _) = chorusctl(
        &server,
        &["motd", "set", "Be kind", "--domain", "localhost"],
    )
    .await;
    assert_eq!(code, 0);
    let m = next_message(&mut alice).await;
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Be kind"
    );
    next_message(&mut bob).await;
    let (code, out) = chorusctl(&server, &["motd", "show"]).await;
    assert_eq!((code, out.as_str()), (0, "localhost:\nBe kind\n"));
    let (code, _) = chorusctl(&server, &["motd", "delete"]).await;
    assert_eq!(code, 0);
    assert_eq!(server.storage.motd("localhost").await.unwrap(), None);

    let (code, _) = chorusctl(
        &server,
        &["user", "disable", "bob@localhost", "--reason", "spam"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(bob.expect_stream_error().await, "policy-violation");
    assert_eq!(
        server
            .storage
            .account_disabled("bob", "localhost")
            .await
            .unwrap()
            .as_deref(),
        Some("spam")
    );
    let (code, out) = chorusctl(&server, &["user", "enable", "bob@localhost"]).await;
    assert_eq!((code, out.as_str()), (0, "enabled bob@localhost\n"));
    let (code, _) = chorusctl(&server, &["user", "disable", "nobody@localhost"]).await;
    assert_eq!(code, 1);
}
