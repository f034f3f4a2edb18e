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
//! Offline messages are covered in `c2s/`.
//!
//! This file holds the harness; the tests are in `roster.rs` (§2),
//! `subscription.rs` (§3 and Appendix A) and `presence.rs` (§4, §8.5.2.1.1).
#![allow(clippy::unwrap_used)]

mod presence;
mod roster;
mod subscription;

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
