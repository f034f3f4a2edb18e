//! XEP-0313 Message Archive Management (version 1.1.1) over real sockets,
//! with XEP-0359 stanza-ids, XEP-0059 paging, XEP-0441 preferences and
//! XEP-0334 hints: what gets archived (both directions, offline messages
//! too, as the recipient saw it), what a query returns (every filter,
//! paging both ways over 10k messages with an exact `complete`), who may
//! query (only the owner), and the operator's purge.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;
use chorus_server::Server;
use chorus_storage::{ArchiveStore, ArchivedMessage};
use chorus_xml::Element;

const MAM: &str = "urn:xmpp:mam:2";
const SID: &str = "urn:xmpp:sid:0";
const RSM: &str = "http://jabber.org/protocol/rsm";
const FORWARD: &str = "urn:xmpp:forward:0";
const CLIENT: &str = "jabber:client";

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

async fn login(server: &Server, user: &str) -> XmppClient {
    let (mut c, _) = XmppClient::login(
        server.first_addr().unwrap(),
        user,
        &password(user),
        Some("r"),
    )
    .await;
    // The ping is answered after the initial presence was handled: from
    // here on, messages to the bare JID reach this resource.
    settle(&mut c).await;
    c
}

/// Sends an IQ and reads until its answer; returns the non-presence
/// stanzas that came before it, and the answer.
async fn iq(c: &mut XmppClient, id: &str, xml: &str) -> (Vec<Element>, Element) {
    c.send(xml).await;
    let mut before = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id) {
            return (before, e);
        }
        if e.name() != "presence" {
            before.push(e);
        }
    }
}

/// A ping round trip: everything routed to `c` before it has arrived.
async fn settle(c: &mut XmppClient) -> Vec<Element> {
    iq(
        c,
        "settle",
        "<iq to='localhost' type='get' id='settle'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await
    .0
}

/// One MAM query's outcome.
struct Answer {
    /// The `<result/>` of every result message, in arrival order.
    results: Vec<Element>,
    iq: Element,
}

impl Answer {
    fn ids(&self) -> Vec<String> {
        self.results
            .iter()
            .map(|r| r.attr("id").unwrap().to_owned())
            .collect()
    }

    /// The archived messages' bodies.
    fn bodies(&self) -> Vec<String> {
        self.results.iter().map(|r| body(forwarded(r))).collect()
    }

    fn fin(&self) -> &Element {
        assert_eq!(self.iq.attr("type"), Some("result"), "{}", self.iq.to_xml());
        self.iq.get_child("fin", MAM).unwrap()
    }

    fn complete(&self) -> bool {
        self.fin().attr("complete") == Some("true")
    }

    fn rsm(&self, name: &str) -> Option<String> {
        self.fin()
            .get_child("set", RSM)
            .unwrap()
            .get_child(name, RSM)
            .map(Element::text)
    }
}

fn forwarded(result: &Element) -> &Element {
    result
        .get_child("forwarded", FORWARD)
        .and_then(|f| f.get_child("message", CLIENT))
        .unwrap()
}

fn body(m: &Element) -> String {
    m.get_child("body", CLIENT)
        .map(Element::text)
        .unwrap_or_default()
}

/// A query with the given form fields (`(var, value)`), RSM children (raw
/// XML) and extra query children (raw XML), answered in full.
async fn query(
    c: &mut XmppClient,
    to: Option<&str>,
    fields: &[(&str, &str)],
    rsm: &str,
    extra: &str,
) -> Answer {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (id, qid) = (format!("q{n}"), format!("qid{n}"));
    let form = if fields.is_empty() {
        String::new()
    } else {
        let mut f = format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>{MAM}</value></field>"
        );
        for (var, value) in fields {
            f.push_str(&format!(
                "<field var='{var}'><value>{value}</value></field>"
            ));
        }
        f + "</x>"
    };
    let set = if rsm.is_empty() {
        String::new()
    } else {
        format!("<set xmlns='{RSM}'>{rsm}</set>")
    };
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    let (before, answer) = iq(
        c,
        &id,
        &format!(
            "<iq type='set' id='{id}'{to}><query xmlns='{MAM}' queryid='{qid}'>{form}{set}{extra}</query></iq>"
        ),
    )
    .await;
    let mut results = Vec::new();
    for m in before {
        let Some(r) = m.get_child("result", MAM) else {
            continue;
        };
        assert_eq!(r.attr("queryid"), Some(qid.as_str()));
        // From the archive: the requester's own bare JID (§8.2).
        assert_eq!(
            m.attr("from"),
            m.attr("to").and_then(|t| t.split('/').next())
        );
        results.push(r.clone());
    }
    Answer {
        results,
        iq: answer,
    }
}

async fn all(c: &mut XmppClient) -> Answer {
    query(c, None, &[], "", "").await
}

/// The `<stanza-id/>`s on a delivered message, as `(by, id)`.
fn stanza_ids(m: &Element) -> Vec<(String, String)> {
    m.children()
        .filter(|c| c.is("stanza-id", SID))
        .map(|c| {
            (
                c.attr("by").unwrap_or_default().to_owned(),
                c.attr("id").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn error_condition(answer: &Element) -> String {
    assert_eq!(answer.attr("type"), Some("error"), "{}", answer.to_xml());
    stanza_error_condition(answer)
}

#[tokio::test]
async fn both_directions_are_archived_under_the_stanza_id_the_recipient_sees() {
    let server = server_with("mam-both", &["alice", "bob"]).await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;

    // A stanza-id claiming bob's archive is forged (XEP-0359 §3) and goes;
    // someone else's stays.
    alice
        .send(
            "<message to='bob@localhost' type='chat' id='m1'><body>hello bob</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='muc.example' id='theirs'/></message>",
        )
        .await;
    settle(&mut alice).await;
    let got = settle(&mut bob).await;
    assert_eq!(got.len(), 1);
    let sids = stanza_ids(&got[0]);
    let mine: Vec<&(String, String)> = sids
        .iter()
        .filter(|(by, _)| by == "bob@localhost")
        .collect();
    assert_eq!(mine.len(), 1, "{sids:?}");
    let sid = mine[0].1.clone();
    assert_ne!(sid, "forged");
    assert!(sids.contains(&("muc.example".into(), "theirs".into())));

    // bob's archive: the message as he received it, under that id.
    let a = all(&mut bob).await;
    assert_eq!(a.ids(), std::slice::from_ref(&sid));
    assert!(a.complete());
    assert_eq!(
        (a.rsm("first"), a.rsm("last")),
        (Some(sid.clone()), Some(sid.clone()))
    );
    let m = forwarded(&a.results[0]);
    assert_eq!(body(m), "hello bob");
    assert_eq!(m.attr("from"), Some("alice@localhost/r"));
    assert_eq!(m.attr("id"), Some("m1"));
    let delay = a.results[0]
        .get_child("forwarded", FORWARD)
        .unwrap()
        .get_child("delay", "urn:xmpp:delay")
        .unwrap();
    assert!(delay.attr("stamp").unwrap().ends_with('Z'));

    // alice's archive: her outgoing copy, under an id of her own.
    let a = all(&mut alice).await;
    assert_eq!(a.bodies(), ["hello bob"]);
    assert_ne!(a.ids(), [sid]);
    let m = forwarded(&a.results[0]);
    assert_eq!(m.attr("to"), Some("bob@localhost"));
    assert_eq!(m.attr("from"), Some("alice@localhost/r"));

    // And back, to a full JID.
    bob.send("<message to='alice@localhost/r' type='chat'><body>hi alice</body></message>")
        .await;
    settle(&mut bob).await;
    let got = settle(&mut alice).await;
    let sid = stanza_ids(&got[0]);
    assert_eq!(sid.len(), 1);
    assert_eq!(sid[0].0, "alice@localhost");
    let a = all(&mut alice).await;
    assert_eq!(a.bodies(), ["hello bob", "hi alice"]);
    assert_eq!(a.ids()[1], sid[0].1);
    assert_eq!(all(&mut bob).await.bodies(), ["hello bob", "hi alice"]);

    // XEP-0313 §7: advertised on the account and the server.
    for (id, to) in [("d1", "alice@localhost"), ("d2", "localhost")] {
        let (_, info) = iq(
            &mut alice,
            id,
            &format!(
                "<iq type='get' id='{id}' to='{to}'>\
                 <query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
            ),
        )
        .await;
        let features: HashSet<String> = info
            .get_child("query", "http://jabber.org/protocol/disco#info")
            .unwrap()
            .children()
            .filter_map(|f| f.attr("var").map(str::to_owned))
            .collect();
        assert!(features.contains(MAM), "{to}: {features:?}");
        assert!(features.contains("urn:xmpp:mam:2#extended"), "{to}");
    }
}

#[tokio::test]
async fn offline_messages_are_archived_as_delivered_later() {
    let server = server_with("mam-offline", &["alice", "bob"]).await;
    let mut alice = login(&server, "alice").await;
    alice
        .send("<message to='bob@localhost' type='chat' id='o1'><body>while you were out</body></message>")
        .await;
    settle(&mut alice).await;
    // Logged in by hand: the offline message arrives after the initial
    // presence, before the answer to the ping that follows it.
    let (mut bob, _) = XmppClient::login(
        server.first_addr().unwrap(),
        "bob",
        &password("bob"),
        Some("r"),
    )
    .await;
    let got = settle(&mut bob).await;
    let m = got.iter().find(|e| e.name() == "message").unwrap();
    assert!(m.get_child("delay", "urn:xmpp:delay").is_some());
    let sid = stanza_ids(m);
    assert_eq!(sid.len(), 1);
    let a = all(&mut bob).await;
    assert_eq!(a.ids(), [sid[0].1.clone()]);
    assert_eq!(a.bodies(), ["while you were out"]);
    assert_eq!(all(&mut alice).await.bodies(), ["while you were out"]);
}

/// `n` messages for `user`'s archive from `base`, one minute apart,
/// cycling through three correspondents; ids `id0`, `id1`...
fn history(n: usize, base: SystemTime) -> Vec<ArchivedMessage> {
    (0..n)
        .map(|i| {
            let with = [
                "romeo@montague.lit/orchard",
                "romeo@montague.lit/balcony",
                "nurse@capulet.lit",
            ][i % 3];
            ArchivedMessage {
                stanza_id: format!("id{i}"),
                timestamp: base + Duration::from_secs(60 * i as u64),
                with: with.to_owned(),
                outgoing: false,
                stanza: format!(
                    "<message xmlns='jabber:client' from='{with}' to='alice@localhost' type='chat'>\
                     <body>{i}</body></message>"
                ),
            }
        })
        .collect()
}

#[tokio::test]
async fn paging_over_10k_messages_sees_every_id_once_and_complete_only_at_the_end() {
    let server = server_with("mam-paging", &["alice"]).await;
    let base = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let n = 10_000;
    server
        .storage
        .archive_append_many("alice", "localhost", &history(n, base))
        .await
        .unwrap();
    let mut alice = login(&server, "alice").await;
    let expected: Vec<String> = (0..n).map(|i| format!("id{i}")).collect();

    // Forward: max=250 asked, pages of the configured 100 served.
    let mut seen = Vec::new();
    let mut rsm = "<max>250</max>".to_owned();
    loop {
        let a = query(&mut alice, None, &[], &rsm, "").await;
        let ids = a.ids();
        assert_eq!(a.rsm("first").as_ref(), ids.first());
        assert_eq!(a.rsm("last").as_ref(), ids.last());
        seen.extend(ids.iter().cloned());
        if a.complete() {
            break;
        }
        assert_eq!(ids.len(), 100, "capped at mam.max_page_size");
        rsm = format!("<max>250</max><after>{}</after>", ids.last().unwrap());
    }
    assert_eq!(seen, expected, "every id once, in archive order");

    // Backward from the end, pages of 250 asked: each page chronological,
    // complete only on the oldest.
    let mut pages = Vec::new();
    let mut rsm = "<max>250</max><before/>".to_owned();
    loop {
        let a = query(&mut alice, None, &[], &rsm, "").await;
        let ids = a.ids();
        let complete = a.complete();
        pages.push(ids.clone());
        if complete {
            break;
        }
        rsm = format!("<max>250</max><before>{}</before>", ids[0]);
    }
    assert_eq!(pages.len(), 100);
    pages.reverse();
    assert_eq!(pages.concat(), expected);

    // The count alone (XEP-0059 §2.6), whole archive and filtered.
    let a = query(&mut alice, None, &[], "<max>0</max>", "").await;
    assert!(a.results.is_empty());
    assert_eq!(a.rsm("count").as_deref(), Some("10000"));
    let a = query(
        &mut alice,
        None,
        &[("with", "nurse@capulet.lit")],
        "<max>0</max>",
        "",
    )
    .await;
    assert_eq!(a.rsm("count").as_deref(), Some("3333"));

    // A page flipped (#extended): the same results, newest first.
    let a = query(
        &mut alice,
        None,
        &[],
        "<max>3</max><after>id10</after>",
        "<flip-page/>",
    )
    .await;
    assert_eq!(a.ids(), ["id13", "id12", "id11"]);
    assert!(!a.complete());
    assert_eq!(
        (a.rsm("first").unwrap(), a.rsm("last").unwrap()),
        ("id11".into(), "id13".into())
    );

    // The metadata (#extended): first and last.
    let (_, md) = iq(
        &mut alice,
        "md",
        "<iq type='get' id='md'><metadata xmlns='urn:xmpp:mam:2'/></iq>",
    )
    .await;
    let md = md.get_child("metadata", MAM).unwrap();
    assert_eq!(md.get_child("start", MAM).unwrap().attr("id"), Some("id0"));
    assert_eq!(md.get_child("end", MAM).unwrap().attr("id"), Some("id9999"));
    assert!(md
        .get_child("start", MAM)
        .unwrap()
        .attr("timestamp")
        .unwrap()
        .starts_with("2020-09-13T12:26:40"));

    // chorusctl mam purge empties it.
    let socket = server.admin_socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::common::chorusctl_bin())
            .arg("--socket")
            .arg(&socket)
            .args(["mam", "purge", "alice@localhost"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("10000 archived messages"));
    let a = all(&mut alice).await;
    assert!(a.results.is_empty() && a.complete());
    let (_, md) = iq(
        &mut alice,
        "md2",
        "<iq type='get' id='md2'><metadata xmlns='urn:xmpp:mam:2'/></iq>",
    )
    .await;
    assert_eq!(md.get_child("metadata", MAM).unwrap().children().count(), 0);
}

#[tokio::test]
async fn filters_select_by_with_start_end_and_ids() {
    let server = server_with("mam-filters", &["alice"]).await;
    // 2020-01-01T00:00:00Z, then one message a minute.
    let base = UNIX_EPOCH + Duration::from_secs(1_577_836_800);
    server
        .storage
        .archive_append_many("alice", "localhost", &history(12, base))
        .await
        .unwrap();
    let mut alice = login(&server, "alice").await;
    let ids = |r: &[usize]| -> Vec<String> { r.iter().map(|i| format!("id{i}")).collect() };

    let a = query(&mut alice, None, &[("with", "romeo@montague.lit")], "", "").await;
    assert_eq!(a.ids(), ids(&[0, 1, 3, 4, 6, 7, 9, 10]));
    let a = query(
        &mut alice,
        None,
        &[("with", "romeo@montague.lit/balcony")],
        "",
        "",
    )
    .await;
    assert_eq!(a.ids(), ids(&[1, 4, 7, 10]));
    let a = query(&mut alice, None, &[("with", "nurse@capulet.lit")], "", "").await;
    assert_eq!(a.ids(), ids(&[2, 5, 8, 11]));
    assert!(a.complete());

    // start and end are inclusive, in any XEP-0082 zone.
    let a = query(
        &mut alice,
        None,
        &[
            ("start", "2020-01-01T00:03:00Z"),
            ("end", "2020-01-01T01:06:00+01:00"),
        ],
        "",
        "",
    )
    .await;
    assert_eq!(a.ids(), ids(&[3, 4, 5, 6]));
    let stamp = a.results[0]
        .get_child("forwarded", FORWARD)
        .unwrap()
        .get_child("delay", "urn:xmpp:delay")
        .unwrap()
        .attr("stamp")
        .unwrap()
        .to_owned();
    assert!(stamp.starts_with("2020-01-01T00:03:00"), "{stamp}");
    let a = query(
        &mut alice,
        None,
        &[
            ("with", "nurse@capulet.lit"),
            ("start", "2020-01-01T00:03:00Z"),
        ],
        "<max>1</max>",
        "",
    )
    .await;
    assert_eq!((a.ids(), a.complete()), (ids(&[5]), false));

    // after-id and before-id (#extended), with RSM on top.
    let a = query(
        &mut alice,
        None,
        &[("after-id", "id2"), ("before-id", "id9")],
        "",
        "",
    )
    .await;
    assert_eq!(a.ids(), ids(&[3, 4, 5, 6, 7, 8]));
    let a = query(
        &mut alice,
        None,
        &[("after-id", "id2"), ("before-id", "id9")],
        "<max>2</max><before/>",
        "",
    )
    .await;
    assert_eq!((a.ids(), a.complete()), (ids(&[7, 8]), false));

    // ids (#extended): exactly those, in archive order.
    let (before, r) = iq(
        &mut alice,
        "ids",
        &format!(
            "<iq type='set' id='ids'><query xmlns='{MAM}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>{MAM}</value></field>\
             <field var='ids'><value>id8</value><value>id1</value></field></x></query></iq>"
        ),
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let got: Vec<&str> = before
        .iter()
        .filter_map(|m| m.get_child("result", MAM)?.attr("id"))
        .collect();
    assert_eq!(got, ["id1", "id8"]);

    // Unknown ids anywhere: item-not-found (§4.1.2, §4.3.2).
    for (fields, rsm) in [
        (vec![("after-id", "nope")], ""),
        (vec![], "<after>nope</after>"),
        (vec![], "<before>nope</before>"),
    ] {
        let a = query(&mut alice, None, &fields, rsm, "").await;
        assert_eq!(error_condition(&a.iq), "item-not-found");
    }
    // Unknown fields: feature-not-implemented (§4.1.5); bad dates: bad-request.
    let a = query(&mut alice, None, &[("include-groupchat", "true")], "", "").await;
    assert_eq!(error_condition(&a.iq), "feature-not-implemented");
    let a = query(&mut alice, None, &[("start", "yesterday")], "", "").await;
    assert_eq!(error_condition(&a.iq), "bad-request");

    // The form lists every field (§4.1.5).
    let (_, form) = iq(
        &mut alice,
        "form",
        "<iq type='get' id='form'><query xmlns='urn:xmpp:mam:2'/></iq>",
    )
    .await;
    let vars: Vec<String> = form
        .get_child("query", MAM)
        .unwrap()
        .get_child("x", "jabber:x:data")
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    assert_eq!(
        vars,
        [
            "FORM_TYPE",
            "with",
            "start",
            "end",
            "before-id",
            "after-id",
            "ids"
        ]
    );
}

async fn prefs(c: &mut XmppClient, xml: &str) -> Element {
    let (_, r) = iq(c, "p", &format!("<iq type='set' id='p'>{xml}</iq>")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    r.get_child("prefs", MAM).unwrap().clone()
}

/// alice sends bob a message; returns whether it reached bob with a
/// stanza-id, and checks that bob's archive agrees.
async fn archived_by_bob(alice: &mut XmppClient, bob: &mut XmppClient, text: &str) -> bool {
    alice
        .send(&format!(
            "<message to='bob@localhost' type='chat'><body>{text}</body></message>"
        ))
        .await;
    settle(alice).await;
    let got = settle(bob).await;
    assert_eq!(got.len(), 1, "{text}");
    let stamped = !stanza_ids(&got[0]).is_empty();
    let in_archive = all(bob).await.bodies().contains(&text.to_owned());
    assert_eq!(stamped, in_archive, "{text}");
    stamped
}

#[tokio::test]
async fn preferences_never_always_and_roster_decide_per_owner() {
    let server = server_with("mam-prefs", &["alice", "bob"]).await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;

    // The server default until bob sets his own.
    let (_, r) = iq(
        &mut bob,
        "g",
        "<iq type='get' id='g'><prefs xmlns='urn:xmpp:mam:2'/></iq>",
    )
    .await;
    assert_eq!(
        r.get_child("prefs", MAM).unwrap().attr("default"),
        Some("always")
    );
    assert!(archived_by_bob(&mut alice, &mut bob, "default always").await);

    let p = prefs(&mut bob, "<prefs xmlns='urn:xmpp:mam:2' default='never'/>").await;
    assert_eq!(p.attr("default"), Some("never"));
    assert!(!archived_by_bob(&mut alice, &mut bob, "never").await);

    let p = prefs(
        &mut bob,
        "<prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>Alice@Localhost</jid></always><never/></prefs>",
    )
    .await;
    let listed: Vec<String> = p
        .get_child("always", MAM)
        .unwrap()
        .children()
        .map(Element::text)
        .collect();
    assert_eq!(listed, ["alice@localhost"]);
    assert!(archived_by_bob(&mut alice, &mut bob, "always listed").await);

    prefs(&mut bob, "<prefs xmlns='urn:xmpp:mam:2' default='roster'/>").await;
    assert!(!archived_by_bob(&mut alice, &mut bob, "not in roster").await);
    let (_, r) = iq(
        &mut bob,
        "ra",
        "<iq type='set' id='ra'><query xmlns='jabber:iq:roster'><item jid='alice@localhost'/></query></iq>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert!(archived_by_bob(&mut alice, &mut bob, "in roster").await);

    prefs(
        &mut bob,
        "<prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>alice@localhost</jid></never></prefs>",
    )
    .await;
    assert!(!archived_by_bob(&mut alice, &mut bob, "never listed").await);

    // A JID on both lists, or no default: bad-request.
    let (_, r) = iq(
        &mut bob,
        "bad",
        "<iq type='set' id='bad'><prefs xmlns='urn:xmpp:mam:2' default='always'>\
         <always><jid>x@y</jid></always><never><jid>x@y</jid></never></prefs></iq>",
    )
    .await;
    assert_eq!(error_condition(&r), "bad-request");
    let (_, r) = iq(
        &mut bob,
        "bad2",
        "<iq type='set' id='bad2'><prefs xmlns='urn:xmpp:mam:2'/></iq>",
    )
    .await;
    assert_eq!(error_condition(&r), "bad-request");

    // alice (server default: always) kept every one of her outgoing copies;
    // once she says never, her copy goes and bob's stays.
    assert_eq!(all(&mut alice).await.results.len(), 6);
    prefs(
        &mut alice,
        "<prefs xmlns='urn:xmpp:mam:2' default='never'/>",
    )
    .await;
    prefs(&mut bob, "<prefs xmlns='urn:xmpp:mam:2' default='always'/>").await;
    assert!(archived_by_bob(&mut alice, &mut bob, "alice says never").await);
    assert_eq!(all(&mut alice).await.results.len(), 6);
}

#[tokio::test]
async fn hints_and_bodiless_messages_are_not_archived() {
    let server = server_with("mam-hints", &["alice", "bob"]).await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    for payload in [
        "<body>secret one</body><no-store xmlns='urn:xmpp:hints'/>",
        "<body>secret two</body><no-permanent-store xmlns='urn:xmpp:hints'/>",
        "<active xmlns='http://jabber.org/protocol/chatstates'/>",
    ] {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat'>{payload}</message>"
            ))
            .await;
    }
    alice
        .send("<message to='bob@localhost' type='headline'><body>news</body></message>")
        .await;
    settle(&mut alice).await;
    let got = settle(&mut bob).await;
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|m| stanza_ids(m).is_empty()));
    assert!(all(&mut bob).await.results.is_empty());
    assert!(all(&mut alice).await.results.is_empty());
    // <store/> asks for a bodiless message to be kept.
    alice
        .send("<message to='bob@localhost' type='chat'><store xmlns='urn:xmpp:hints'/><x xmlns='urn:example'/></message>")
        .await;
    settle(&mut alice).await;
    settle(&mut bob).await;
    assert_eq!(all(&mut bob).await.results.len(), 1);
}

#[tokio::test]
async fn only_the_owner_may_use_an_archive() {
    let server = server_with("mam-forbidden", &["alice", "bob"]).await;
    server
        .storage
        .archive_append_many("bob", "localhost", &history(3, SystemTime::now()))
        .await
        .unwrap();
    let mut alice = login(&server, "alice").await;
    for to in ["bob@localhost", "localhost"] {
        let a = query(&mut alice, Some(to), &[], "", "").await;
        assert!(a.results.is_empty(), "nothing of bob's leaks");
        assert_eq!(error_condition(&a.iq), "forbidden", "{to}");
    }
    for (id, payload) in [
        ("p", "<prefs xmlns='urn:xmpp:mam:2'/>"),
        ("m", "<metadata xmlns='urn:xmpp:mam:2'/>"),
    ] {
        let (_, r) = iq(
            &mut alice,
            id,
            &format!("<iq type='get' id='{id}' to='bob@localhost'>{payload}</iq>"),
        )
        .await;
        assert_eq!(error_condition(&r), "forbidden");
    }
    // Addressed explicitly to her own bare JID, it works.
    let a = query(&mut alice, Some("alice@localhost"), &[], "", "").await;
    assert!(a.complete() && a.results.is_empty());
}

#[tokio::test]
async fn retention_deletes_old_messages_from_the_start() {
    let mut config = test_config("mam-retention");
    config.mam.retention_days = 30;
    // An archive from before this server started: two months old, then
    // from just now.
    let storage = chorus_storage::Storage::connect(&config.storage_url())
        .await
        .unwrap();
    chorus_storage::AccountStore::create_account(&storage, "alice", "localhost", &[])
        .await
        .unwrap();
    let old = history(3, SystemTime::now() - Duration::from_secs(60 * 86_400));
    let new: Vec<ArchivedMessage> = history(5, SystemTime::now()).into_iter().skip(3).collect();
    storage
        .archive_append_many("alice", "localhost", &[old, new].concat())
        .await
        .unwrap();
    storage.close().await;

    let server = start(config).await;
    let everything = chorus_storage::ArchiveQuery {
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        cursor: chorus_storage::ArchiveCursor::First,
        limit: 100,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = server
            .storage
            .archive_query("alice", "localhost", &everything)
            .await
            .unwrap();
        let ids: Vec<&str> = page.messages.iter().map(|m| m.stanza_id.as_str()).collect();
        if ids == ["id3", "id4"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {ids:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_page_of_large_messages_stops_at_the_byte_budget_and_pages_on() {
    let mut config = test_config("mam-budget");
    // The floor: pages may queue 32 KiB of results.
    config.limits.max_outbound_bytes = 64 * 1024;
    let server = start(config).await;
    add_user(&server, "alice", &password("alice")).await;
    let big = "x".repeat(10_000);
    let msgs: Vec<ArchivedMessage> = history(10, SystemTime::now())
        .into_iter()
        .map(|m| ArchivedMessage {
            stanza: format!(
                "<message xmlns='jabber:client' type='chat'><body>{big}</body></message>"
            ),
            ..m
        })
        .collect();
    server
        .storage
        .archive_append_many("alice", "localhost", &msgs)
        .await
        .unwrap();
    let mut alice = login(&server, "alice").await;
    let mut seen = Vec::new();
    let mut rsm = "<max>10</max>".to_owned();
    loop {
        let a = query(&mut alice, None, &[], &rsm, "").await;
        let ids = a.ids();
        assert!(!ids.is_empty() && ids.len() <= 3, "{ids:?}");
        seen.extend(ids.iter().cloned());
        if a.complete() {
            break;
        }
        rsm = format!("<max>10</max><after>{}</after>", ids.last().unwrap());
    }
    let expected: Vec<String> = (0..10).map(|i| format!("id{i}")).collect();
    assert_eq!(seen, expected);
    // Still connected: nothing tripped the outbound limit.
    settle(&mut alice).await;
}

/// Every message id in `owner`'s archive, by reading the storage once the
/// writer caught up (a MAM query waits for it).
async fn archived_ids(server: &Server, c: &mut XmppClient, owner: &str) -> Vec<String> {
    // Read-your-writes: the query returns once everything routed before it
    // is written; then storage holds all of it.
    query(c, None, &[], "<max>1</max>", "").await;
    let mut ids = Vec::new();
    let mut cursor = chorus_storage::ArchiveCursor::First;
    loop {
        let page = server
            .storage
            .archive_query(
                owner,
                "localhost",
                &chorus_storage::ArchiveQuery {
                    with: None,
                    start: None,
                    end: None,
                    before_id: None,
                    after_id: None,
                    ids: Vec::new(),
                    cursor,
                    limit: 500,
                },
            )
            .await
            .unwrap();
        let done = page.complete;
        let last = page.messages.last().map(|m| m.stanza_id.clone());
        ids.extend(page.messages.into_iter().map(|m| {
            Element::from_xml(&m.stanza)
                .unwrap()
                .attr("id")
                .unwrap_or_default()
                .to_owned()
        }));
        match (done, last) {
            (false, Some(last)) => cursor = chorus_storage::ArchiveCursor::After(last),
            _ => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_archive_writer_loses_no_message_and_writes_none_twice() {
    let server = server_with("mam-writer-kill", &["alice", "bob"]).await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    let path = "root/modules/archive-writer";
    assert!(
        server.registry.lookup(path).is_some(),
        "no {path} in the tree"
    );
    let n = 400;
    let killer = {
        let registry = server.registry.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(15)).await;
                if let Some(cell) = registry.lookup(path) {
                    cell.kill();
                }
            }
        })
    };
    for i in 0..n {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='k{i}'><body>{i}</body></message>"
            ))
            .await;
    }
    let mut got = 0;
    while got < n {
        if bob.next_element().await.name() == "message" {
            got += 1;
        }
    }
    killer.await.unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .lookup(path)
            .is_some())
        .await,
        "the writer was not restarted"
    );
    let expected: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    assert_eq!(archived_ids(&server, &mut alice, "alice").await, expected);
    assert_eq!(archived_ids(&server, &mut bob, "bob").await, expected);
    server.stop();
}

#[tokio::test]
async fn a_sender_that_queries_at_once_finds_what_it_just_sent() {
    let server = server_with("mam-ryw", &["alice", "bob"]).await;
    let mut alice = login(&server, "alice").await;
    for i in 0..10 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='s{i}'><body>{i}</body></message>"
            ))
            .await;
        // The last message of the archive is the one just sent.
        let a = query(&mut alice, None, &[], "<before/><max>1</max>", "").await;
        assert_eq!(
            a.bodies(),
            vec![i.to_string()],
            "message {i} was not in the archive yet"
        );
    }
    server.stop();
}
