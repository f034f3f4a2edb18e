//! RFC 6121 instant messaging and presence over real sockets: the roster
//! (§2: get, set, update, remove, pushes, versioning, bad requests),
//! presence subscriptions (§3, with every row of the Appendix A state
//! tables, pre-approval and pending requests) and presence exchange (§4:
//! initial presence, probes, updates, unavailable on logout and on a killed
//! session, directed presence), plus §8.5.2.1.1 for negative priorities.
//!
//! Each test is a scripted conversation named after the rule it checks:
//! someone sends, then every party's received stanzas are compared with the
//! exact list the RFC asks for. Expected stanzas are written as XML; an
//! attribute value `*` matches any value, and an `id` the server generated
//! (roster pushes) is ignored unless the expectation gives one.
//! Offline messages are covered in `c2s.rs`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;
use chorus_server::Server;
use chorus_storage::RosterStore;
use chorus_supervisor::StopMode;
use chorus_xml::Element;

const NS_ROSTER: &str = "jabber:iq:roster";

fn password(user: &str) -> String {
    format!("{user}-secret")
}

async fn server_with(tag: &str, users: &[&str]) -> Server {
    let server = start(test_config(tag)).await;
    for u in users {
        add_user(&server, u, &password(u)).await;
    }
    server
}

/// One bound resource of an account.
struct Res {
    c: XmppClient,
    /// The full JID, `user@localhost/resource`.
    full: String,
    /// What arrived in answer to the login's initial presence (own presence,
    /// probe answers, pending subscription requests).
    initial: Vec<Element>,
    pings: usize,
}

impl Res {
    /// Logs in; the login ends with initial presence, whose consequences
    /// are read into `initial`.
    async fn login(server: &Server, user: &str, resource: &str) -> Res {
        let (c, full) = XmppClient::login(
            server.first_addr().unwrap(),
            user,
            &password(user),
            Some(resource),
        )
        .await;
        let mut r = Res {
            c,
            full,
            initial: Vec::new(),
            pings: 0,
        };
        r.initial = r.settle().await;
        r
    }

    /// Logs in and requests the roster, so this resource gets roster pushes
    /// (RFC 6121 §2.1.6): an interested, available resource.
    async fn online(server: &Server, user: &str, resource: &str) -> Res {
        let mut r = Res::login(server, user, resource).await;
        r.send("<iq type='get' id='roster-0'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        let got = r.settle().await;
        assert!(
            got.iter().any(|e| e.attr("id") == Some("roster-0")),
            "{}",
            show(&got)
        );
        r
    }

    fn bare(&self) -> &str {
        self.full.split('/').next().unwrap()
    }

    async fn send(&mut self, xml: &str) {
        self.c.send(xml).await;
    }

    /// Pings the server and returns everything that arrived before the
    /// answer. The c2s actor handles its mailbox in order, so whatever was
    /// routed to this resource before the ping was sent is in the list.
    async fn settle(&mut self) -> Vec<Element> {
        self.pings += 1;
        let id = format!("settle-{}", self.pings);
        self.c
            .send(&format!(
                "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .await;
        let mut got = Vec::new();
        loop {
            let mut e = self.c.next_element().await;
            if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
                return got;
            }
            // The server's XEP-0153 avatar annotation and XEP-0359 archive
            // ids are tested with their modules; these scripts compare the
            // RFC 6121 content.
            if e.name() == "presence" {
                e.remove_children(|c| c.is("x", "vcard-temp:x:update"));
            }
            if e.name() == "message" {
                e.remove_children(|c| c.is("stanza-id", "urn:xmpp:sid:0"));
            }
            got.push(e);
        }
    }

    /// Sends, then checks that exactly `expected` arrived.
    async fn expect_after(&mut self, xml: &str, expected: &[String]) {
        self.send(xml).await;
        assert_stanzas(&self.settle().await, expected);
    }

    /// Checks that exactly `expected` arrived since the last settle.
    async fn expect(&mut self, expected: &[String]) {
        assert_stanzas(&self.settle().await, expected);
    }

    /// The roster as a plain get returns it: the `<query/>`.
    async fn roster(&mut self) -> Element {
        self.send("<iq type='get' id='roster-get'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        let got = self.settle().await;
        assert_eq!(got.len(), 1, "{}", show(&got));
        got[0]
            .get_child("query", NS_ROSTER)
            .cloned()
            .unwrap_or_else(|| panic!("no roster in {}", got[0].to_xml()))
    }

    /// The roster items, each as `<item/>` XML, for comparison.
    async fn items(&mut self) -> Vec<String> {
        let q = self.roster().await;
        q.children().map(Element::to_xml).collect()
    }
}

/// Does `got` match the expectation `want`? Same name, namespace,
/// attributes (`*` matching any value; a generated `id` ignored), children
/// in order, and text.
fn matches(want: &Element, got: &Element) -> bool {
    if want.name() != got.name() || want.ns() != got.ns() {
        return false;
    }
    let relevant = |e: &Element, other: &Element| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = e
            .attrs()
            .filter(|(k, _)| !k.starts_with("xmlns"))
            .filter(|(k, _)| !(*k == "id" && other.attr("id").is_none()))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        v.sort();
        v
    };
    let (wa, ga) = (relevant(want, got), relevant(got, want));
    if wa.len() != ga.len()
        || wa
            .iter()
            .zip(&ga)
            .any(|((wk, wv), (gk, gv))| wk != gk || (wv != "*" && wv != gv))
    {
        return false;
    }
    let wc: Vec<&Element> = want.children().collect();
    let gc: Vec<&Element> = got.children().collect();
    if wc.len() != gc.len() || wc.iter().zip(&gc).any(|(w, g)| !matches(w, g)) {
        return false;
    }
    want.text().trim() == got.text().trim()
}

fn show(got: &[Element]) -> String {
    let lines: Vec<String> = got.iter().map(|e| format!("  {}", e.to_xml())).collect();
    format!("[\n{}\n]", lines.join("\n"))
}

#[track_caller]
fn assert_stanzas(got: &[Element], expected: &[String]) {
    let want: Vec<Element> = expected
        .iter()
        .map(|x| Element::from_xml(x).unwrap_or_else(|e| panic!("bad expectation {x}: {e}")))
        .collect();
    let ok = want.len() == got.len() && want.iter().zip(got).all(|(w, g)| matches(w, g));
    assert!(
        ok,
        "expected:\n[\n  {}\n]\ngot:\n{}",
        expected.join("\n  "),
        show(got)
    );
}

/// A roster push to `to` (a full JID) carrying `item`.
fn push(to: &str, item: &str) -> String {
    let bare = to.split('/').next().unwrap();
    format!(
        "<iq type='set' from='{bare}' to='{to}'><query xmlns='jabber:iq:roster' ver='*'>{item}</query></iq>"
    )
}

/// The answer to a roster IQ, which the server gives for the account.
fn result(to: &str, id: &str) -> String {
    let bare = to.split('/').next().unwrap();
    format!("<iq type='result' id='{id}' from='{bare}' to='{to}'/>")
}

/// A presence stanza as received; `kind` "" for available.
fn pres(kind: &str, from: &str, to: &str) -> String {
    if kind.is_empty() {
        format!("<presence from='{from}' to='{to}'/>")
    } else {
        format!("<presence type='{kind}' from='{from}' to='{to}'/>")
    }
}

fn subscription(kind: &str, to: &str) -> String {
    format!("<presence type='{kind}' to='{to}'/>")
}

fn roster_set(id: &str, item: &str) -> String {
    format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'>{item}</query></iq>")
}

/// `x` subscribes to `y` and `y` approves; everything that caused is read.
async fn subscribe(x: &mut Res, y: &mut Res) {
    let to = y.bare().to_owned();
    x.send(&subscription("subscribe", &to)).await;
    x.settle().await;
    y.settle().await;
    let to = x.bare().to_owned();
    y.send(&subscription("subscribed", &to)).await;
    y.settle().await;
    x.settle().await;
}

/// The c2s actor path of the session bound to `full`.
fn c2s_path(server: &Server, full: &str) -> String {
    let full: chorus_jid::FullJid = full.parse().unwrap();
    let conn = server.sessions.get(&full).unwrap().conn_id;
    let suffix = format!("/conns/conn-{conn}/c2s");
    server
        .registry
        .paths_matching("root/listeners/*/conns/*/c2s")
        .into_iter()
        .find(|p| p.ends_with(&suffix))
        .unwrap_or_else(|| panic!("no c2s actor for conn {conn}"))
}

// ---------------------------------------------------------------- §2 roster

#[tokio::test]
async fn roster_get_returns_the_items_with_the_version_in_ver() {
    let server = server_with("im-get", &["alice"]).await;
    let mut a = Res::login(&server, "alice", "a").await;
    a.expect_after(
        "<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>",
        &["<iq type='result' id='g1' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='0'/></iq>".into()],
    )
    .await;
    a.expect_after(
        &roster_set(
            "s1",
            "<item jid='bob@localhost' name='Bob'><group>Friends</group></item>",
        ),
        &[
            result("alice@localhost/a", "s1"),
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' name='Bob' subscription='none'><group>Friends</group></item>",
            ),
        ],
    )
    .await;
    a.expect_after(
        "<iq type='get' id='g2'><query xmlns='jabber:iq:roster'/></iq>",
        &["<iq type='result' id='g2' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='1'><item jid='bob@localhost' name='Bob' subscription='none'><group>Friends</group></item></query></iq>".into()],
    )
    .await;
    server.stop();
}

#[tokio::test]
async fn roster_set_is_pushed_to_every_interested_resource() {
    let server = server_with("im-push", &["alice"]).await;
    let mut a1 = Res::online(&server, "alice", "a1").await;
    let mut a2 = Res::online(&server, "alice", "a2").await;
    // a3 never asked for the roster, so it gets no pushes (§2.1.6).
    let mut a3 = Res::login(&server, "alice", "a3").await;
    a1.settle().await;
    a2.settle().await;
    a1.expect_after(
        &roster_set("s1", "<item jid='bob@localhost' name='Bob'/>"),
        &[
            result("alice@localhost/a1", "s1"),
            push(
                "alice@localhost/a1",
                "<item jid='bob@localhost' name='Bob' subscription='none'/>",
            ),
        ],
    )
    .await;
    a2.expect(&[push(
        "alice@localhost/a2",
        "<item jid='bob@localhost' name='Bob' subscription='none'/>",
    )])
    .await;
    a3.expect(&[]).await;
    server.stop();
}

#[tokio::test]
async fn roster_update_replaces_name_and_groups_but_never_the_subscription() {
    let server = server_with("im-update", &["alice"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.send(&roster_set(
        "s1",
        "<item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item>",
    ))
    .await;
    a.settle().await;
    // §2.1.2.5 / §2.3.2: 'subscription' (other than remove) and 'ask' in a
    // roster set are ignored: subscriptions change through presence only.
    a.expect_after(
        &roster_set(
            "s2",
            "<item jid='bob@localhost' name='Robert' subscription='both' ask='subscribe'><group>Family</group></item>",
        ),
        &[
            result("alice@localhost/a", "s2"),
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' name='Robert' subscription='none'><group>Family</group></item>",
            ),
        ],
    )
    .await;
    // No name and no group: both are cleared.
    a.expect_after(
        &roster_set("s3", "<item jid='bob@localhost'/>"),
        &[
            result("alice@localhost/a", "s3"),
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='none'/>",
            ),
        ],
    )
    .await;
    assert_eq!(
        a.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='bob@localhost' subscription='none'/>"]
    );
    server.stop();
}

#[tokio::test]
async fn roster_remove_is_pushed_with_subscription_remove() {
    let server = server_with("im-remove", &["alice"]).await;
    let mut a1 = Res::online(&server, "alice", "a1").await;
    let mut a2 = Res::online(&server, "alice", "a2").await;
    a1.settle().await;
    a1.send(&roster_set("s1", "<item jid='bob@localhost' name='Bob'/>"))
        .await;
    a1.settle().await;
    a2.settle().await;
    // §2.5.2: the removal is pushed to every interested resource.
    a1.expect_after(
        &roster_set("r1", "<item jid='bob@localhost' subscription='remove'/>"),
        &[
            result("alice@localhost/a1", "r1"),
            push(
                "alice@localhost/a1",
                "<item jid='bob@localhost' subscription='remove'/>",
            ),
        ],
    )
    .await;
    a2.expect(&[push(
        "alice@localhost/a2",
        "<item jid='bob@localhost' subscription='remove'/>",
    )])
    .await;
    assert!(a1.items().await.is_empty());
    // §2.5.3: removing an item that is not there is item-not-found.
    a1.send(&roster_set(
        "r2",
        "<item jid='bob@localhost' subscription='remove'/>",
    ))
    .await;
    let got = a1.settle().await;
    assert_eq!(got.len(), 1, "{}", show(&got));
    assert_eq!(got[0].attr("type"), Some("error"));
    assert_eq!(stanza_error_condition(&got[0]), "item-not-found");
    a2.expect(&[]).await;
    server.stop();
}

#[tokio::test]
async fn roster_get_with_the_current_version_returns_an_empty_result() {
    let server = server_with("im-ver-same", &["alice"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.send(&roster_set("s1", "<item jid='bob@localhost'/>"))
        .await;
    a.settle().await;
    let ver = a.roster().await.attr("ver").unwrap().to_owned();
    assert_eq!(ver, "1");
    // §2.6.3: nothing changed, so an empty result and no pushes.
    a.expect_after(
        &format!("<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver='{ver}'/></iq>"),
        &[result("alice@localhost/a", "g")],
    )
    .await;
    server.stop();
}

#[tokio::test]
async fn roster_get_with_an_older_version_pushes_only_the_changes_since() {
    let server = server_with("im-ver-delta", &["alice"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    for (id, item) in [
        ("s1", "<item jid='bob@localhost'/>"),
        ("s2", "<item jid='carol@localhost'/>"),
    ] {
        a.send(&roster_set(id, item)).await;
        a.settle().await;
    }
    let cached = a.roster().await.attr("ver").unwrap().to_owned();
    assert_eq!(cached, "2");
    // Changes after the client cached version 2.
    a.send(&roster_set(
        "r3",
        "<item jid='carol@localhost' subscription='remove'/>",
    ))
    .await;
    a.send(&roster_set(
        "s4",
        "<item jid='dave@localhost' name='Dave'/>",
    ))
    .await;
    a.settle().await;

    // §2.6.3: a new session with version 2 gets an empty result, then one
    // push per change (the removal as subscription='remove'), each with its
    // own version; bob, unchanged, is not sent.
    let mut b = Res::login(&server, "alice", "b").await;
    b.expect_after(
        &format!("<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver='{cached}'/></iq>"),
        &[
            result("alice@localhost/b", "g"),
            "<iq type='set' from='alice@localhost' to='alice@localhost/b'><query xmlns='jabber:iq:roster' ver='3'><item jid='carol@localhost' subscription='remove'/></query></iq>".into(),
            "<iq type='set' from='alice@localhost' to='alice@localhost/b'><query xmlns='jabber:iq:roster' ver='4'><item jid='dave@localhost' name='Dave' subscription='none'/></query></iq>".into(),
        ],
    )
    .await;
    // §2.6.3: a version the server cannot serve a delta for gets the whole
    // roster, with the current version.
    for unknown in ["999", "not-a-version", ""] {
        b.expect_after(
            &format!("<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='{unknown}'/></iq>"),
            &["<iq type='result' id='g2' from='alice@localhost' to='alice@localhost/b'><query xmlns='jabber:iq:roster' ver='4'><item jid='bob@localhost' subscription='none'/><item jid='dave@localhost' name='Dave' subscription='none'/></query></iq>".into()],
        )
        .await;
    }
    server.stop();
}

/// A roster set that must be refused with `condition`, changing nothing
/// and pushing nothing.
async fn assert_roster_set_refused(tag: &str, query: &str, condition: &str) {
    let server = server_with(tag, &["alice"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.send(&format!("<iq type='set' id='bad'>{query}</iq>"))
        .await;
    let got = a.settle().await;
    assert_eq!(got.len(), 1, "only the error, no push: {}", show(&got));
    assert_eq!(
        (got[0].attr("type"), got[0].attr("id")),
        (Some("error"), Some("bad"))
    );
    assert_eq!(stanza_error_condition(&got[0]), condition);
    assert!(a.items().await.is_empty());
    server.stop();
}

#[tokio::test]
async fn roster_set_with_two_items_is_bad_request() {
    // §2.3.3: the query contains more than one item.
    assert_roster_set_refused(
        "im-two",
        "<query xmlns='jabber:iq:roster'><item jid='bob@localhost'/><item jid='carol@localhost'/></query>",
        "bad-request",
    )
    .await;
}

#[tokio::test]
async fn roster_item_with_a_full_jid_is_bad_request() {
    // §2.1.2.4: a roster item's JID is a bare JID.
    assert_roster_set_refused(
        "im-full",
        "<query xmlns='jabber:iq:roster'><item jid='bob@localhost/phone'/></query>",
        "bad-request",
    )
    .await;
}

#[tokio::test]
async fn roster_item_with_a_duplicate_group_is_bad_request() {
    // §2.3.3: two groups with the same character data.
    assert_roster_set_refused(
        "im-dup",
        "<query xmlns='jabber:iq:roster'><item jid='bob@localhost'><group>A</group><group>A</group></item></query>",
        "bad-request",
    )
    .await;
}

#[tokio::test]
async fn roster_item_with_an_empty_group_is_not_acceptable() {
    // §2.3.3: a group of zero length is not-acceptable (a client leaves the
    // group element out to put an item in no group).
    assert_roster_set_refused(
        "im-empty",
        "<query xmlns='jabber:iq:roster'><item jid='bob@localhost'><group></group></item></query>",
        "not-acceptable",
    )
    .await;
}

#[tokio::test]
async fn roster_of_another_account_is_forbidden() {
    // §2.1.3 / §2.1.5: only the account's own resources read or write it.
    let server = server_with("im-forbid", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    for typ in ["get", "set"] {
        let payload = if typ == "set" {
            "<item jid='carol@localhost'/>"
        } else {
            ""
        };
        a.send(&format!(
            "<iq type='{typ}' id='x' to='bob@localhost'><query xmlns='jabber:iq:roster'>{payload}</query></iq>"
        ))
        .await;
        let got = a.settle().await;
        assert_eq!(got.len(), 1, "{}", show(&got));
        assert_eq!(stanza_error_condition(&got[0]), "forbidden");
    }
    server.stop();
}

// ------------------------------------------------- §3 subscription requests

#[tokio::test]
async fn subscribe_then_subscribed_gives_both_sides_the_right_state() {
    let server = server_with("im-sub", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    a.settle().await;

    // §3.1.2: the user's roster shows the pending request (ask); §3.1.3 the
    // contact gets the request from the user's bare JID, and no roster push
    // (a pending inbound request is not a roster item).
    a.expect_after(
        &subscription("subscribe", "bob@localhost"),
        &[push(
            "alice@localhost/a",
            "<item jid='bob@localhost' subscription='none' ask='subscribe'/>",
        )],
    )
    .await;
    b.expect(&[pres("subscribe", "alice@localhost", "bob@localhost")])
        .await;

    // §3.1.5: approving gives the contact 'from'; §3.1.6 the user gets the
    // approval, 'to', and the contact's current presence.
    b.expect_after(
        &subscription("subscribed", "alice@localhost"),
        &[push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='from'/>",
        )],
    )
    .await;
    a.expect(&[
        push(
            "alice@localhost/a",
            "<item jid='bob@localhost' subscription='to'/>",
        ),
        pres("subscribed", "bob@localhost", "alice@localhost"),
        pres("", "bob@localhost/b", "alice@localhost"),
    ])
    .await;
    assert_eq!(
        a.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='bob@localhost' subscription='to'/>"]
    );
    assert_eq!(
        b.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='alice@localhost' subscription='from'/>"]
    );

    // Presence now flows from bob to alice, and not the other way.
    b.send("<presence><show>away</show></presence>").await;
    b.settle().await;
    a.expect(&[
        "<presence from='bob@localhost/b' to='alice@localhost'><show>away</show></presence>".into(),
    ])
    .await;
    a.send("<presence><show>chat</show></presence>").await;
    a.settle().await;
    b.expect(&[]).await;
    server.stop();
}

#[tokio::test]
async fn subscribing_back_makes_the_subscription_both() {
    let server = server_with("im-both", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    a.settle().await;
    subscribe(&mut a, &mut b).await;

    // Bob ("From") asks alice ("To"): From + Pending Out.
    b.expect_after(
        &subscription("subscribe", "alice@localhost"),
        &[push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='from' ask='subscribe'/>",
        )],
    )
    .await;
    a.expect(&[pres("subscribe", "bob@localhost", "alice@localhost")])
        .await;
    a.expect_after(
        &subscription("subscribed", "bob@localhost"),
        &[push(
            "alice@localhost/a",
            "<item jid='bob@localhost' subscription='both'/>",
        )],
    )
    .await;
    b.expect(&[
        push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='both'/>",
        ),
        pres("subscribed", "alice@localhost", "bob@localhost"),
        pres("", "alice@localhost/a", "bob@localhost"),
    ])
    .await;
    assert_eq!(
        a.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='bob@localhost' subscription='both'/>"]
    );
    assert_eq!(
        b.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='alice@localhost' subscription='both'/>"]
    );
    server.stop();
}

/// A state of one side's relation to the other, as Appendix A names it:
/// `none`, `to`, `from` or `both`, then `+out` (ask='subscribe'), `+in` (a
/// pending inbound request) and `+approved` (§3.4).
async fn state_of(server: &Server, user: &str, contact: &str) -> String {
    let item = server
        .storage
        .roster_item(user, "localhost", &format!("{contact}@localhost"))
        .await
        .unwrap();
    let pending = server
        .storage
        .pending_subscription(user, "localhost", &format!("{contact}@localhost"))
        .await
        .unwrap()
        .is_some();
    let mut s = item
        .as_ref()
        .map_or("none", |i| i.subscription.as_str())
        .to_owned();
    if item.as_ref().is_some_and(|i| i.ask) {
        s.push_str("+out");
    }
    if pending {
        s.push_str("+in");
    }
    if item.as_ref().is_some_and(|i| i.approved) {
        s.push_str("+approved");
    }
    s
}

/// The same relation seen from the other side.
fn mirror(state: &str) -> String {
    let mut parts = state.split('+');
    let sub = match parts.next().unwrap() {
        "to" => "from",
        "from" => "to",
        s => s,
    };
    let flags: Vec<&str> = parts.collect();
    let mut s = sub.to_owned();
    if flags.contains(&"in") {
        s.push_str("+out");
    }
    if flags.contains(&"out") {
        s.push_str("+in");
    }
    s
}

/// The roster-visible part of a state: what a push shows.
fn item_for(jid: &str, state: &str) -> Option<String> {
    let mut parts = state.split('+');
    let sub = parts.next().unwrap();
    let flags: Vec<&str> = parts.collect();
    let ask = flags.contains(&"out");
    let approved = flags.contains(&"approved");
    if sub == "none" && !ask && !approved {
        return None;
    }
    let mut x = format!("<item jid='{jid}' subscription='{sub}'");
    if ask {
        x.push_str(" ask='subscribe'");
    }
    if approved {
        x.push_str(" approved='true'");
    }
    x.push_str("/>");
    Some(x)
}

/// How the two accounts reach `state` (alice's side): who sends what.
fn setup_steps(state: &str) -> &'static [(char, &'static str)] {
    match state {
        "none" => &[],
        "none+out" => &[('a', "subscribe")],
        "none+in" => &[('b', "subscribe")],
        "none+out+in" => &[('a', "subscribe"), ('b', "subscribe")],
        "to" => &[('a', "subscribe"), ('b', "subscribed")],
        "to+in" => &[('a', "subscribe"), ('b', "subscribed"), ('b', "subscribe")],
        "from" => &[('b', "subscribe"), ('a', "subscribed")],
        "from+out" => &[('b', "subscribe"), ('a', "subscribed"), ('a', "subscribe")],
        "both" => &[
            ('a', "subscribe"),
            ('b', "subscribed"),
            ('b', "subscribe"),
            ('a', "subscribed"),
        ],
        other => panic!("no setup for {other}"),
    }
}

/// What one side received, pushes aside: each presence as its type (from
/// the other's bare JID) or `available` / `unavailable` (from the other's
/// resource), joined with `+`. Pushes are checked against the state.
fn received(got: &[Element], me: &Res, other: &Res, state_after: &str, changed: bool) -> String {
    let mut tokens = Vec::new();
    let mut pushes = Vec::new();
    for e in got {
        match e.name() {
            "presence" if e.attr("from") == Some(other.bare()) => {
                assert_eq!(e.attr("to"), Some(me.bare()), "{}", e.to_xml());
                tokens.push(e.attr("type").unwrap_or("available").to_owned());
            }
            "presence" if e.attr("from") == Some(other.full.as_str()) => {
                tokens.push(e.attr("type").unwrap_or("available").to_owned());
            }
            "iq" if e.attr("type") == Some("set") => pushes.push(e.clone()),
            _ => panic!("unexpected for {}: {}", me.full, e.to_xml()),
        }
    }
    // §2.1.6: a roster push exactly when the item the user sees changed.
    let expected_pushes: Vec<String> = match (changed, item_for(other.bare(), state_after)) {
        (false, _) => vec![],
        (true, Some(item)) => vec![push(&me.full, &item)],
        (true, None) => vec![push(
            &me.full,
            &format!("<item jid='{}' subscription='none'/>", other.bare()),
        )],
    };
    assert_stanzas(&pushes, &expected_pushes);
    tokens.join("+")
}

/// One row of an Appendix A table: alice, in `state` toward bob, sends
/// `kind`; alice ends in `alice_after` (A.2, outbound), bob, whose state is
/// the mirror image, in `bob_after` (A.3, inbound); `bob_gets` and
/// `alice_gets` are what their clients receive (see [`received`]).
struct Row {
    state: &'static str,
    alice_after: &'static str,
    bob_after: &'static str,
    bob_gets: &'static str,
    alice_gets: &'static str,
}

const fn row(
    state: &'static str,
    alice_after: &'static str,
    bob_after: &'static str,
    bob_gets: &'static str,
    alice_gets: &'static str,
) -> Row {
    Row {
        state,
        alice_after,
        bob_after,
        bob_gets,
        alice_gets,
    }
}

async fn run_table(tag: &str, kind: &str, rows: &[Row]) {
    let server = start(test_config(tag)).await;
    for (n, r) in rows.iter().enumerate() {
        let (an, bn) = (format!("a{n}"), format!("b{n}"));
        add_user(&server, &an, &password(&an)).await;
        add_user(&server, &bn, &password(&bn)).await;
        let mut a = Res::online(&server, &an, "r").await;
        let mut b = Res::online(&server, &bn, "r").await;
        for (who, step) in setup_steps(r.state) {
            let (from, to) = if *who == 'a' {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let target = to.bare().to_owned();
            from.send(&subscription(step, &target)).await;
            from.settle().await;
            to.settle().await;
        }
        a.settle().await;
        b.settle().await;
        assert_eq!(
            state_of(&server, &an, &bn).await,
            r.state,
            "setup of {}",
            r.state
        );
        assert_eq!(
            state_of(&server, &bn, &an).await,
            mirror(r.state),
            "setup of {}",
            r.state
        );

        let target = b.bare().to_owned();
        a.send(&subscription(kind, &target)).await;
        let got_a = a.settle().await;
        let got_b = b.settle().await;
        let (alice_after, bob_after) = (
            state_of(&server, &an, &bn).await,
            state_of(&server, &bn, &an).await,
        );
        let case = format!("alice {} sends {kind}", r.state);
        assert_eq!(
            (alice_after.as_str(), bob_after.as_str()),
            (r.alice_after, r.bob_after),
            "{case}: states (alice, bob)"
        );
        let a_changed = item_for("", r.state) != item_for("", r.alice_after);
        let b_changed = item_for("", &mirror(r.state)) != item_for("", r.bob_after);
        assert_eq!(
            received(&got_b, &b, &a, r.bob_after, b_changed),
            r.bob_gets,
            "{case}: what bob receives"
        );
        assert_eq!(
            received(&got_a, &a, &b, r.alice_after, a_changed),
            r.alice_gets,
            "{case}: what alice receives"
        );
    }
    server.stop();
}

#[tokio::test]
async fn subscribe_follows_appendix_a_in_every_state() {
    // A.2.1 (outbound) on alice's side, A.3.1 (inbound) on bob's. An
    // already-subscribed contact's server answers 'subscribed' for it
    // (§3.1.3), which alice's server ignores as she has no pending request
    // (A.3.2). A repeated request is not delivered again (A.3.1).
    run_table(
        "im-a-subscribe",
        "subscribe",
        &[
            row("none", "none+out", "none+in", "subscribe", ""),
            row("none+out", "none+out", "none+in", "", ""),
            row("none+in", "none+out+in", "none+out+in", "subscribe", ""),
            row("none+out+in", "none+out+in", "none+out+in", "", ""),
            row("to", "to", "from", "", ""),
            row("to+in", "to+in", "from+out", "", ""),
            row("from", "from+out", "to+in", "subscribe", ""),
            row("from+out", "from+out", "to+in", "", ""),
            row("both", "both", "both", "", ""),
        ],
    )
    .await;
}

#[tokio::test]
async fn subscribed_follows_appendix_a_in_every_state() {
    // A.2.2 and A.3.2. Without a pending request, 'subscribed' is a
    // pre-approval (§3.4): not routed, shown as approved='true'. An approval
    // is followed by the approver's presence (§3.1.5).
    run_table(
        "im-a-subscribed",
        "subscribed",
        &[
            row("none", "none+approved", "none", "", ""),
            row("none+out", "none+out+approved", "none+in", "", ""),
            row("none+in", "from", "to", "subscribed+available", ""),
            row(
                "none+out+in",
                "from+out",
                "to+in",
                "subscribed+available",
                "",
            ),
            row("to", "to+approved", "from", "", ""),
            row("to+in", "both", "both", "subscribed+available", ""),
            row("from", "from", "to", "", ""),
            row("from+out", "from+out", "to+in", "", ""),
            row("both", "both", "both", "", ""),
        ],
    )
    .await;
}

#[tokio::test]
async fn unsubscribe_follows_appendix_a_in_every_state() {
    // A.2.3 and A.3.3. A contact that loses a subscriber also sends it
    // unavailable from its resources (§3.3.3); a pending request is
    // withdrawn.
    run_table(
        "im-a-unsubscribe",
        "unsubscribe",
        &[
            row("none", "none", "none", "", ""),
            row("none+out", "none", "none", "unsubscribe", ""),
            row("none+in", "none+in", "none+out", "", ""),
            row("none+out+in", "none+in", "none+out", "unsubscribe", ""),
            row("to", "none", "none", "unsubscribe", "unavailable"),
            row("to+in", "none+in", "none+out", "unsubscribe", "unavailable"),
            row("from", "from", "to", "", ""),
            row("from+out", "from", "to", "unsubscribe", ""),
            row("both", "from", "to", "unsubscribe", "unavailable"),
        ],
    )
    .await;
}

#[tokio::test]
async fn unsubscribed_follows_appendix_a_in_every_state() {
    // A.2.4 and A.3.4: denying a request or cancelling a subscription; the
    // former subscriber gets unavailable from alice's resources (§3.2.2).
    run_table(
        "im-a-unsubscribed",
        "unsubscribed",
        &[
            row("none", "none", "none", "", ""),
            row("none+out", "none+out", "none+in", "", ""),
            row("none+in", "none", "none", "unsubscribed", ""),
            row("none+out+in", "none+out", "none+in", "unsubscribed", ""),
            row("to", "to", "from", "", ""),
            row("to+in", "to", "from", "unsubscribed", ""),
            row("from", "none", "none", "unavailable+unsubscribed", ""),
            row(
                "from+out",
                "none+out",
                "none+in",
                "unavailable+unsubscribed",
                "",
            ),
            row("both", "to", "from", "unavailable+unsubscribed", ""),
        ],
    )
    .await;
}

#[tokio::test]
async fn subscribing_to_a_missing_local_account_is_answered_unsubscribed() {
    // §3.1.3: no such contact: the contact's server answers unsubscribed,
    // which cancels the pending request on the user's side (A.3.4).
    let server = server_with("im-nobody", &["alice"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.expect_after(
        &subscription("subscribe", "nobody@localhost"),
        &[
            push(
                "alice@localhost/a",
                "<item jid='nobody@localhost' subscription='none' ask='subscribe'/>",
            ),
            push(
                "alice@localhost/a",
                "<item jid='nobody@localhost' subscription='none'/>",
            ),
            pres("unsubscribed", "nobody@localhost", "alice@localhost"),
        ],
    )
    .await;
    assert_eq!(
        a.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='nobody@localhost' subscription='none'/>"]
    );
    server.stop();
}

#[tokio::test]
async fn pre_approval_answers_the_later_request_at_once() {
    let server = server_with("im-preapp", &["alice", "bob", "carol"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    let mut c = Res::online(&server, "carol", "c").await;
    a.settle().await;
    b.settle().await;

    // §3.4.1: 'subscribed' without a request is a pre-approval: not routed,
    // shown to the contact's resources as approved='true'.
    b.expect_after(
        &subscription("subscribed", "alice@localhost"),
        &[push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='none' approved='true'/>",
        )],
    )
    .await;
    a.expect(&[]).await;

    // §3.4.2: the request is approved at once; bob is not asked.
    a.expect_after(
        &subscription("subscribe", "bob@localhost"),
        &[
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='none' ask='subscribe'/>",
            ),
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='to'/>",
            ),
            pres("subscribed", "bob@localhost", "alice@localhost"),
            pres("", "bob@localhost/b", "alice@localhost"),
        ],
    )
    .await;
    b.expect(&[push(
        "bob@localhost/b",
        "<item jid='alice@localhost' subscription='from'/>",
    )])
    .await;

    // §3.4: 'unsubscribed' withdraws a pre-approval; the next request is
    // an ordinary one.
    c.send(&subscription("subscribed", "alice@localhost")).await;
    c.settle().await;
    c.expect_after(
        &subscription("unsubscribed", "alice@localhost"),
        &[push(
            "carol@localhost/c",
            "<item jid='alice@localhost' subscription='none'/>",
        )],
    )
    .await;
    a.expect(&[]).await;
    a.send(&subscription("subscribe", "carol@localhost")).await;
    a.settle().await;
    c.expect(&[pres("subscribe", "alice@localhost", "carol@localhost")])
        .await;
    server.stop();
}

#[tokio::test]
async fn subscription_stanzas_to_oneself_change_nothing() {
    // §4.2.2: a user is implicitly subscribed to its own presence, and its
    // own JID is not a roster item (§2.3.3: the roster set is refused).
    let server = server_with("im-self", &["alice"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    for kind in ["subscribe", "subscribed", "unsubscribe", "unsubscribed"] {
        a.expect_after(&subscription(kind, "alice@localhost"), &[])
            .await;
    }
    assert!(a.items().await.is_empty());
    assert_eq!(state_of(&server, "alice", "alice").await, "none");
    a.send(&roster_set("me", "<item jid='alice@localhost'/>"))
        .await;
    let got = a.settle().await;
    assert_eq!(got.len(), 1, "{}", show(&got));
    assert_eq!(stanza_error_condition(&got[0]), "not-allowed");
    server.stop();
}

#[tokio::test]
async fn stream_features_advertise_roster_versioning_and_pre_approval() {
    // §2.6.1 and §3.4: after authentication.
    use chorus_sasl::{ChannelBindingType, Mechanism};
    let server = server_with("im-features", &["alice"]).await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    c.scram(
        Mechanism::ScramSha256Plus,
        "alice",
        &password("alice"),
        Some(ChannelBindingType::TlsExporter),
    )
    .await
    .unwrap();
    let f = c.open().await;
    assert!(f.get_child("ver", "urn:xmpp:features:rosterver").is_some());
    assert!(f
        .get_child("sub", "urn:xmpp:features:pre-approval")
        .is_some());
    server.stop();
}

#[tokio::test]
async fn pending_subscription_requests_are_redelivered_at_each_login_until_answered() {
    let server = server_with("im-pending", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.send(&subscription("subscribe", "bob@localhost")).await;
    a.settle().await;

    // §3.1.3: bob was offline; the request waits for his next login.
    for resource in ["b1", "b2"] {
        let b = Res::login(&server, "bob", resource).await;
        let me = format!("bob@localhost/{resource}");
        assert_stanzas(
            &b.initial,
            &[
                pres("", &me, &me),
                pres("subscribe", "alice@localhost", "bob@localhost"),
            ],
        );
        drop(b);
        assert!(wait_until(Duration::from_secs(2), || server.sessions.len() == 1).await);
    }
    // Answered: not delivered again.
    let mut b = Res::login(&server, "bob", "b3").await;
    b.initial.clear();
    b.send(&subscription("subscribed", "alice@localhost")).await;
    b.settle().await;
    drop(b);
    assert!(wait_until(Duration::from_secs(2), || server.sessions.len() == 1).await);
    let b = Res::login(&server, "bob", "b4").await;
    assert_stanzas(
        &b.initial,
        &[pres("", "bob@localhost/b4", "bob@localhost/b4")],
    );
    server.stop();
}

#[tokio::test]
async fn unsubscribe_withdraws_a_request_the_contact_has_not_seen() {
    // A.3.3: "None + Pending In" becomes "None".
    let server = server_with("im-withdraw", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.send(&subscription("subscribe", "bob@localhost")).await;
    a.settle().await;
    a.expect_after(
        &subscription("unsubscribe", "bob@localhost"),
        &[push(
            "alice@localhost/a",
            "<item jid='bob@localhost' subscription='none'/>",
        )],
    )
    .await;
    assert_eq!(state_of(&server, "bob", "alice").await, "none");
    let b = Res::login(&server, "bob", "b").await;
    assert_stanzas(
        &b.initial,
        &[pres("", "bob@localhost/b", "bob@localhost/b")],
    );
    server.stop();
}

#[tokio::test]
async fn removing_a_roster_item_cancels_both_subscriptions() {
    // §2.5.2: unsubscribe and unsubscribed go to the contact, who stops
    // seeing the user and whom the user stops seeing; the user's resources
    // get only the removal push.
    let server = server_with("im-rm-both", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    a.settle().await;
    subscribe(&mut a, &mut b).await;
    subscribe(&mut b, &mut a).await;
    a.expect_after(
        &roster_set("rm", "<item jid='bob@localhost' subscription='remove'/>"),
        &[
            result("alice@localhost/a", "rm"),
            pres("unavailable", "bob@localhost/b", "alice@localhost"),
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='remove'/>",
            ),
        ],
    )
    .await;
    b.expect(&[
        push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='to'/>",
        ),
        pres("unsubscribe", "alice@localhost", "bob@localhost"),
        pres("unavailable", "alice@localhost/a", "bob@localhost"),
        push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='none'/>",
        ),
        pres("unsubscribed", "alice@localhost", "bob@localhost"),
    ])
    .await;
    assert!(a.items().await.is_empty());
    assert_eq!(state_of(&server, "bob", "alice").await, "none");
    server.stop();
}

#[tokio::test]
async fn removing_a_roster_item_declines_a_pending_request() {
    // §2.5.2 with A.2.4: a pending inbound request is answered unsubscribed.
    let server = server_with("im-rm-pending", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    a.send(&roster_set("s", "<item jid='bob@localhost' name='Bob'/>"))
        .await;
    a.settle().await;
    b.send(&subscription("subscribe", "alice@localhost")).await;
    b.settle().await;
    a.settle().await;
    assert_eq!(state_of(&server, "alice", "bob").await, "none+in");
    a.expect_after(
        &roster_set("rm", "<item jid='bob@localhost' subscription='remove'/>"),
        &[
            result("alice@localhost/a", "rm"),
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='remove'/>",
            ),
        ],
    )
    .await;
    b.expect(&[
        push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='none'/>",
        ),
        pres("unsubscribed", "alice@localhost", "bob@localhost"),
    ])
    .await;
    assert_eq!(state_of(&server, "alice", "bob").await, "none");
    assert_eq!(state_of(&server, "bob", "alice").await, "none");
    server.stop();
}

// --------------------------------------------------------- §4 presence

/// alice/a1 online with: bob subscribed to her ('from'), carol mutual
/// ('both'), dave whom she is subscribed to ('to'), erin a roster item with
/// no subscription. Everyone online, everything read.
async fn presence_world(tag: &str) -> (Server, Res, Res, Res, Res, Res) {
    let server = server_with(tag, &["alice", "bob", "carol", "dave", "erin"]).await;
    let mut a1 = Res::online(&server, "alice", "a1").await;
    let mut b = Res::online(&server, "bob", "b").await;
    let mut c = Res::online(&server, "carol", "c").await;
    let mut d = Res::online(&server, "dave", "d").await;
    let mut e = Res::online(&server, "erin", "e").await;
    subscribe(&mut b, &mut a1).await;
    subscribe(&mut a1, &mut c).await;
    subscribe(&mut c, &mut a1).await;
    subscribe(&mut a1, &mut d).await;
    a1.send(&roster_set("erin", "<item jid='erin@localhost'/>"))
        .await;
    for r in [&mut a1, &mut b, &mut c, &mut d, &mut e] {
        r.settle().await;
    }
    assert_eq!(
        a1.items().await,
        vec![
            "<item xmlns='jabber:iq:roster' jid='bob@localhost' subscription='from'/>",
            "<item xmlns='jabber:iq:roster' jid='carol@localhost' subscription='both'/>",
            "<item xmlns='jabber:iq:roster' jid='dave@localhost' subscription='to'/>",
            "<item xmlns='jabber:iq:roster' jid='erin@localhost' subscription='none'/>",
        ]
    );
    (server, a1, b, c, d, e)
}

#[tokio::test]
async fn initial_presence_reaches_from_and_both_contacts_and_own_resources_only() {
    let (server, mut a1, mut b, mut c, mut d, mut e) = presence_world("im-initial").await;
    let a2 = Res::login(&server, "alice", "a2").await;
    // §4.2.2: to each contact with 'from' or 'both', to every available
    // resource of the user including the new one itself; §4.3.2 the probes
    // of 'to' and 'both' contacts are answered with their presence; §4.2.3
    // (own resources) the other resources' presence comes too.
    assert_stanzas(
        &a2.initial,
        &[
            pres("", "carol@localhost/c", "alice@localhost/a2"),
            pres("", "dave@localhost/d", "alice@localhost/a2"),
            pres("", "alice@localhost/a2", "alice@localhost/a2"),
            pres("", "alice@localhost/a1", "alice@localhost/a2"),
        ],
    );
    b.expect(&[pres("", "alice@localhost/a2", "bob@localhost")])
        .await;
    c.expect(&[pres("", "alice@localhost/a2", "carol@localhost")])
        .await;
    d.expect(&[]).await;
    e.expect(&[]).await;
    a1.expect(&[pres("", "alice@localhost/a2", "alice@localhost/a1")])
        .await;
    server.stop();
}

#[tokio::test]
async fn login_probes_are_answered_with_each_contacts_current_presence() {
    let server = server_with("im-probe", &["alice", "bob", "carol", "dave"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    let mut c1 = Res::online(&server, "carol", "c1").await;
    let mut d = Res::online(&server, "dave", "d").await;
    subscribe(&mut a, &mut c1).await;
    subscribe(&mut a, &mut d).await;
    subscribe(&mut b, &mut a).await;
    let mut c2 = Res::login(&server, "carol", "c2").await;
    c1.send("<presence><show>away</show><status>lunch</status></presence>")
        .await;
    c2.send("<presence><priority>5</priority></presence>").await;
    c1.settle().await;
    c2.settle().await;
    // dave goes offline: a probe finds no resource to answer for.
    d.send("<presence type='unavailable'/>").await;
    d.settle().await;
    a.send("<presence type='unavailable'/>").await;
    a.settle().await;
    b.settle().await;

    // §4.3.2: the last presence of each available resource of each contact
    // alice is subscribed to; bob ('from' only) is not probed.
    a.send("<presence/>").await;
    a.expect(&[
        "<presence from='carol@localhost/c1' to='alice@localhost/a'><show>away</show><status>lunch</status></presence>".into(),
        "<presence from='carol@localhost/c2' to='alice@localhost/a'><priority>5</priority></presence>".into(),
        pres("", "alice@localhost/a", "alice@localhost/a"),
    ])
    .await;
    b.expect(&[pres("", "alice@localhost/a", "bob@localhost")])
        .await;
    server.stop();
}

#[tokio::test]
async fn presence_updates_go_to_subscribers_and_own_resources() {
    let (server, mut a1, mut b, mut c, mut d, mut e) = presence_world("im-update-pres").await;
    let mut a2 = Res::login(&server, "alice", "a2").await;
    for r in [&mut a1, &mut b, &mut c] {
        r.settle().await;
    }
    // §4.4.2: the full stanza, to 'from' and 'both' contacts and to every
    // available resource of the user (RFC 6121 §4.2.2: a user is implicitly
    // subscribed to its own presence).
    let update = "<presence><show>dnd</show><status>busy</status></presence>";
    let seen = |to: &str| {
        format!(
            "<presence from='alice@localhost/a1' to='{to}'><show>dnd</show><status>busy</status></presence>"
        )
    };
    a1.expect_after(update, &[seen("alice@localhost/a1")]).await;
    a2.expect(&[seen("alice@localhost/a2")]).await;
    b.expect(&[seen("bob@localhost")]).await;
    c.expect(&[seen("carol@localhost")]).await;
    d.expect(&[]).await;
    e.expect(&[]).await;
    server.stop();
}

#[tokio::test]
async fn logging_out_broadcasts_unavailable_to_subscribers() {
    let server = server_with("im-logout", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    subscribe(&mut b, &mut a).await;

    // §4.5.2: explicit unavailable presence.
    a.expect_after(
        "<presence type='unavailable'><status>gone</status></presence>",
        &[],
    )
    .await;
    b.expect(&["<presence type='unavailable' from='alice@localhost/a' to='bob@localhost'><status>gone</status></presence>".into()])
        .await;
    // Closing the stream afterwards sends nothing more.
    a.send("</stream:stream>").await;
    assert!(wait_until(Duration::from_secs(2), || server.sessions.len() == 1).await);
    b.expect(&[]).await;

    // §4.5.2: a stream closed without unavailable presence still ends the
    // presence of that resource, for the contacts.
    let mut a2 = Res::login(&server, "alice", "a2").await;
    b.expect(&[pres("", "alice@localhost/a2", "bob@localhost")])
        .await;
    a2.send("</stream:stream>").await;
    let got = b.c.next_element().await;
    assert_stanzas(
        &[got],
        &[pres("unavailable", "alice@localhost/a2", "bob@localhost")],
    );
    b.expect(&[]).await;
    server.stop();
}

#[tokio::test]
async fn killing_the_session_broadcasts_unavailable_to_subscribers() {
    let server = server_with("im-kill", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    subscribe(&mut b, &mut a).await;
    let mut a2 = Res::login(&server, "alice", "a2").await;
    b.settle().await;
    a.settle().await;
    // An administrator kills alice's c2s actor for resource a.
    let path = c2s_path(&server, &a.full);
    server.registry.kill(&path, StopMode::Kill).unwrap();
    // §4.5.2: the server sends unavailable on the user's behalf, to the
    // subscribers and to the user's other resources.
    let got = b.c.next_element().await;
    assert_stanzas(
        &[got],
        &[pres("unavailable", "alice@localhost/a", "bob@localhost")],
    );
    b.expect(&[]).await;
    let got = a2.c.next_element().await;
    assert_stanzas(
        &[got],
        &[pres(
            "unavailable",
            "alice@localhost/a",
            "alice@localhost/a2",
        )],
    );
    a2.expect(&[]).await;
    drop(a);
    server.stop();
}

#[tokio::test]
async fn directed_presence_is_followed_by_unavailable_when_the_sender_goes_offline() {
    let server = server_with("im-directed", &["alice", "carol", "erin"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut c = Res::online(&server, "carol", "c").await;
    let mut e = Res::online(&server, "erin", "e").await;

    // §4.6.2: directed presence to a full and to a bare JID, no subscription.
    a.send("<presence to='carol@localhost/c'><status>hi</status></presence>")
        .await;
    a.send("<presence to='erin@localhost'/>").await;
    a.settle().await;
    c.expect(&[
        "<presence from='alice@localhost/a' to='carol@localhost/c'><status>hi</status></presence>"
            .into(),
    ])
    .await;
    e.expect(&[pres("", "alice@localhost/a", "erin@localhost")])
        .await;

    // §4.6.3: broadcast unavailable reaches them too.
    a.send("<presence type='unavailable'/>").await;
    a.settle().await;
    c.expect(&[pres(
        "unavailable",
        "alice@localhost/a",
        "carol@localhost/c",
    )])
    .await;
    e.expect(&[pres("unavailable", "alice@localhost/a", "erin@localhost")])
        .await;

    // §4.6.3: and so does the end of the session.
    a.send("<presence/>").await;
    a.send("<presence to='carol@localhost/c'/>").await;
    a.settle().await;
    c.expect(&[pres("", "alice@localhost/a", "carol@localhost/c")])
        .await;
    a.send("</stream:stream>").await;
    let got = c.c.next_element().await;
    assert_stanzas(
        &[got],
        &[pres(
            "unavailable",
            "alice@localhost/a",
            "carol@localhost/c",
        )],
    );
    c.expect(&[]).await;
    e.expect(&[]).await;
    server.stop();
}

#[tokio::test]
async fn bare_jid_messages_skip_resources_with_negative_priority() {
    let server = server_with("im-negprio", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut neg = Res::login(&server, "bob", "neg").await;
    let mut pos = Res::login(&server, "bob", "pos").await;
    neg.send("<presence><priority>-1</priority></presence>")
        .await;
    pos.send("<presence><priority>1</priority></presence>")
        .await;
    neg.settle().await;
    pos.settle().await;
    neg.settle().await;

    // §8.5.2.1.1: never to a resource with a negative priority.
    a.send("<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
        .await;
    a.settle().await;
    pos.expect(&["<message from='alice@localhost/a' to='bob@localhost' type='chat' id='m1'><body>hi</body></message>".into()])
        .await;
    neg.expect(&[]).await;

    // Not even when it is the only available resource (§8.5.2.2.1: then
    // the account counts as having none); nothing bounces to the sender.
    pos.send("<presence type='unavailable'/>").await;
    pos.settle().await;
    neg.settle().await;
    a.expect_after(
        "<message to='bob@localhost' type='chat' id='m2'><body>there?</body></message>",
        &[],
    )
    .await;
    neg.expect(&[]).await;
    // §8.5.3.1: its full JID still reaches it.
    a.send("<message to='bob@localhost/neg' type='chat' id='m3'><body>you</body></message>")
        .await;
    a.settle().await;
    neg.expect(&["<message from='alice@localhost/a' to='bob@localhost/neg' type='chat' id='m3'><body>you</body></message>".into()])
        .await;
    server.stop();
}
