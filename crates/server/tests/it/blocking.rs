//! XEP-0191: Blocking Command (version 1.3) over real sockets: the block
//! list (§3.2), blocking and unblocking with pushes to the interested
//! resources (§3.3-§3.5), what a block does to messages, IQs and presence
//! in both directions (§3.3), the errors the XEP names, and a list that
//! outlives the session. Each test asserts the exact stanzas.
//!
//! "Nothing arrived" is checked with [`sync`]: stanzas are routed in the
//! sender's actor and queued in order on the recipient's, and a client's
//! next input is read only once its previous one is handled, so after the
//! sender and then the recipient have each had a ping answered, anything
//! the sender caused is in what the recipient read before its pong.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::client::XmppClient;
use crate::common::*;
use chorus_xml::{Element, Node};

const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// `<not-acceptable/>` with `<blocked/>`: to a JID the sender blocked
/// (§3.3, example 12).
const BLOCKED: &str = "<error type='cancel'>\
    <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
    <blocked xmlns='urn:xmpp:blocking:errors'/></error>";
/// From a JID the recipient blocked (§3.3).
const UNAVAILABLE: &str = "<error type='cancel'>\
    <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";

async fn server() -> chorus_server::Server {
    let server = start(test_config("blocking")).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    add_user(&server, "carol", "singer").await;
    server
}

fn password(user: &str) -> &'static str {
    match user {
        "alice" => "wonderland",
        "bob" => "builder",
        _ => "singer",
    }
}

/// Logs `user` in as `resource` (with initial presence) and drains what
/// the login brought.
async fn login(server: &chorus_server::Server, user: &str, resource: &str) -> XmppClient {
    let (mut c, _) = XmppClient::login(
        server.first_addr().unwrap(),
        user,
        password(user),
        Some(resource),
    )
    .await;
    sync(&mut c).await;
    c
}

static PINGS: AtomicUsize = AtomicUsize::new(0);

/// Pings the server and returns every element that arrived before the
/// answer (see the module docs).
async fn sync(c: &mut XmppClient) -> Vec<Element> {
    let id = format!("sync-{}", PINGS.fetch_add(1, Ordering::Relaxed));
    c.send(&format!(
        "<iq to='localhost' type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let mut before = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            assert_eq!(e.attr("type"), Some("result"), "{}", e.to_xml());
            return before;
        }
        before.push(e);
    }
}

/// Asserts that nothing arrives at `c`.
async fn assert_silent(c: &mut XmppClient) {
    let got = sync(c).await;
    assert!(got.is_empty(), "unexpected: {}", xml(&got));
}

fn xml(elements: &[Element]) -> String {
    elements
        .iter()
        .map(Element::to_xml)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `e` with sorted attributes and without whitespace-only text, so that
/// two stanzas compare by content. XEP-0359 stanza-ids (random, stamped on
/// archived messages; mam.rs checks them) are left out.
fn canon(e: &Element) -> Element {
    let mut out = Element::new(e.name(), e.ns());
    let mut attrs: Vec<(&str, &str)> = e.attrs().collect();
    attrs.sort_unstable();
    for (k, v) in attrs {
        out.set_attr(k, v);
    }
    for n in e.nodes() {
        match n {
            Node::Element(c) if c.is("stanza-id", "urn:xmpp:sid:0") => {}
            Node::Element(c) => out.push(canon(c)),
            Node::Text(t) if !t.trim().is_empty() => out.push_text(t.clone()),
            Node::Text(_) => {}
        }
    }
    out
}

/// Asserts that `got` is `want`, written in `jabber:client`.
fn assert_stanza(got: &Element, want: &str) {
    let want = Element::from_xml(want).unwrap();
    assert_eq!(
        canon(got),
        canon(&want),
        "\n got: {}\nwant: {}",
        got.to_xml(),
        want.to_xml()
    );
}

/// Asserts that `got` holds exactly the stanzas `want`, in order.
fn assert_stanzas(got: &[Element], want: &[&str]) {
    assert_eq!(got.len(), want.len(), "got:\n{}", xml(got));
    for (g, w) in got.iter().zip(want) {
        assert_stanza(g, w);
    }
}

/// Asserts that `got` is a push (§3.3, §3.4, §3.5) of `payload` to `to`:
/// an IQ set from the account's bare JID, whose id the server chose.
fn assert_push(got: &Element, to: &str, payload: &str) {
    let mut got = got.clone();
    let id = got.remove_attr("id").unwrap_or_default();
    assert!(!id.is_empty(), "a push has an id: {}", got.to_xml());
    let bare = to.split('/').next().unwrap();
    assert_stanza(
        &got,
        &format!("<iq xmlns='jabber:client' type='set' from='{bare}' to='{to}'>{payload}</iq>"),
    );
}

/// Sends an IQ and returns the next stanza that is not presence: the
/// answer, unless something else (which the caller's assertion then
/// catches) came first. Presence is left to the tests that [`sync`].
async fn ask(c: &mut XmppClient, iq: &str) -> Element {
    c.send(iq).await;
    c.expect("iq").await
}

fn result(id: &str, to: &str) -> String {
    let bare = to.split('/').next().unwrap();
    format!("<iq xmlns='jabber:client' type='result' id='{id}' from='{bare}' to='{to}'/>")
}

fn iq_error(id: &str, from: &str, to: &str, error: &str) -> String {
    format!("<iq xmlns='jabber:client' type='error' id='{id}' from='{from}' to='{to}'>{error}</iq>")
}

fn condition(name: &str, kind: &str) -> String {
    format!("<error type='{kind}'><{name} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
}

fn block(id: &str, jids: &[&str]) -> String {
    format!(
        "<iq type='set' id='{id}'><block xmlns='urn:xmpp:blocking'>{}</block></iq>",
        items(jids)
    )
}

fn unblock(id: &str, jids: &[&str]) -> String {
    format!(
        "<iq type='set' id='{id}'><unblock xmlns='urn:xmpp:blocking'>{}</unblock></iq>",
        items(jids)
    )
}

fn items(jids: &[&str]) -> String {
    jids.iter().map(|j| format!("<item jid='{j}'/>")).collect()
}

fn get(id: &str) -> String {
    format!("<iq type='get' id='{id}'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
}

/// The `<blocklist/>` result `c` (bound as `to`) gets, asserted exactly.
async fn assert_blocklist(c: &mut XmppClient, to: &str, jids: &[&str]) {
    let id = format!("list-{}", PINGS.fetch_add(1, Ordering::Relaxed));
    let r = ask(c, &get(&id)).await;
    let bare = to.split('/').next().unwrap();
    assert_stanza(
        &r,
        &format!(
            "<iq xmlns='jabber:client' type='result' id='{id}' from='{bare}' to='{to}'>\
             <blocklist xmlns='urn:xmpp:blocking'>{}</blocklist></iq>",
            items(jids)
        ),
    );
}

/// Blocks `jids` from `c` (bound as `to`), which asked for the list
/// before: the result, then the push.
async fn block_ok(c: &mut XmppClient, to: &str, jids: &[&str]) {
    let id = format!("blk-{}", PINGS.fetch_add(1, Ordering::Relaxed));
    c.send(&block(&id, jids)).await;
    let got = sync(c).await;
    assert_eq!(got.len(), 2, "{}", xml(&got));
    assert_stanza(&got[0], &result(&id, to));
    assert_push(
        &got[1],
        to,
        &format!("<block xmlns='urn:xmpp:blocking'>{}</block>", items(jids)),
    );
}

fn message(to: &str, id: &str) -> String {
    format!("<message to='{to}' type='chat' id='{id}'><body>hello</body></message>")
}

#[tokio::test]
async fn the_server_advertises_blocking_and_an_empty_list_is_an_empty_element() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    let r = ask(
        &mut alice,
        "<iq to='localhost' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let features: Vec<&str> = r
        .get_child("query", NS_DISCO_INFO)
        .unwrap()
        .children()
        .filter(|e| e.is("feature", NS_DISCO_INFO))
        .filter_map(|e| e.attr("var"))
        .collect();
    assert!(features.contains(&"urn:xmpp:blocking"), "{features:?}");

    // §3.2, example 5: no JIDs, an empty <blocklist/>.
    let r = ask(&mut alice, &get("b1")).await;
    assert_stanza(
        &r,
        "<iq xmlns='jabber:client' type='result' id='b1' from='alice@localhost' \
         to='alice@localhost/a'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    );
    server.stop();
}

#[tokio::test]
async fn a_block_is_pushed_to_each_resource_that_asked_for_the_list() {
    let server = server().await;
    let mut a = login(&server, "alice", "a").await;
    let mut b = login(&server, "alice", "b").await;
    let mut c = login(&server, "alice", "c").await;
    sync(&mut a).await;
    sync(&mut b).await;
    assert_blocklist(&mut a, "alice@localhost/a", &[]).await;
    assert_blocklist(&mut b, "alice@localhost/b", &[]).await;

    // Stored and pushed normalized (RFC 7622), two items in one request.
    a.send(&block("blk1", &["Bob@Localhost", "elsewhere.example"]))
        .await;
    let got = sync(&mut a).await;
    assert_eq!(got.len(), 2, "{}", xml(&got));
    assert_stanza(&got[0], &result("blk1", "alice@localhost/a"));
    let pushed = "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/>\
                  <item jid='elsewhere.example'/></block>";
    assert_push(&got[1], "alice@localhost/a", pushed);
    let got = sync(&mut b).await;
    assert_eq!(got.len(), 1, "{}", xml(&got));
    assert_push(&got[0], "alice@localhost/b", pushed);
    // c never asked for the list: no push (§3.3).
    assert_silent(&mut c).await;

    // The list is ordered byte-wise; asking makes c interested.
    assert_blocklist(
        &mut c,
        "alice@localhost/c",
        &["bob@localhost", "elsewhere.example"],
    )
    .await;
    block_ok(&mut c, "alice@localhost/c", &["carol@localhost"]).await;
    let pushed = "<block xmlns='urn:xmpp:blocking'><item jid='carol@localhost'/></block>";
    for (client, to) in [(&mut a, "alice@localhost/a"), (&mut b, "alice@localhost/b")] {
        let got = sync(client).await;
        assert_eq!(got.len(), 1, "{}", xml(&got));
        assert_push(&got[0], to, pushed);
    }
    server.stop();
}

#[tokio::test]
async fn messages_are_refused_both_ways() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    assert_blocklist(&mut alice, "alice@localhost/a", &[]).await;
    block_ok(&mut alice, "alice@localhost/a", &["bob@localhost"]).await;

    // §3.3: to a blocked JID, not-acceptable with <blocked/>, to a bare
    // JID and to a full one alike.
    for (to, id) in [("bob@localhost", "m1"), ("bob@localhost/b", "m2")] {
        alice.send(&message(to, id)).await;
        let got = sync(&mut alice).await;
        assert_stanzas(
            &got,
            &[&format!(
                "<message xmlns='jabber:client' type='error' id='{id}' from='{to}' \
                 to='alice@localhost/a'>{BLOCKED}</message>"
            )],
        );
    }
    assert_silent(&mut bob).await;

    // From the blocked JID: service-unavailable, and alice sees nothing.
    for (to, id) in [("alice@localhost", "m3"), ("alice@localhost/a", "m4")] {
        bob.send(&message(to, id)).await;
        let got = sync(&mut bob).await;
        assert_stanzas(
            &got,
            &[&format!(
                "<message xmlns='jabber:client' type='error' id='{id}' from='{to}' \
                 to='bob@localhost/b'>{UNAVAILABLE}</message>"
            )],
        );
    }
    assert_silent(&mut alice).await;

    // An error is never answered (RFC 6120 §8.3.1), nor delivered.
    bob.send("<message to='alice@localhost/a' type='error' id='m5'/>")
        .await;
    assert_silent(&mut bob).await;
    assert_silent(&mut alice).await;

    // Others still get through.
    let mut carol = login(&server, "carol", "c").await;
    carol.send(&message("alice@localhost/a", "m6")).await;
    assert_silent(&mut carol).await;
    let got = sync(&mut alice).await;
    assert_eq!(got.len(), 1, "{}", xml(&got));
    assert_eq!(got[0].attr("id"), Some("m6"));
    server.stop();
}

#[tokio::test]
async fn iqs_are_refused_both_ways() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    assert_blocklist(&mut alice, "alice@localhost/a", &[]).await;
    block_ok(&mut alice, "alice@localhost/a", &["bob@localhost"]).await;

    // To a blocked JID.
    let r = ask(
        &mut alice,
        "<iq to='bob@localhost/b' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    assert_stanza(
        &r,
        &iq_error("q1", "bob@localhost/b", "alice@localhost/a", BLOCKED),
    );
    assert_silent(&mut bob).await;

    // From the blocked JID, to a resource and to the account (which the
    // server would otherwise answer itself): service-unavailable (MUST).
    let r = ask(
        &mut bob,
        "<iq to='alice@localhost/a' type='get' id='q2'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    assert_stanza(
        &r,
        &iq_error("q2", "alice@localhost/a", "bob@localhost/b", UNAVAILABLE),
    );
    let r = ask(
        &mut bob,
        "<iq to='alice@localhost' type='get' id='q3'><vCard xmlns='vcard-temp'/></iq>",
    )
    .await;
    assert_stanza(
        &r,
        &iq_error("q3", "alice@localhost", "bob@localhost/b", UNAVAILABLE),
    );
    // IQ responses from the blocked JID are dropped silently (MUST).
    bob.send("<iq to='alice@localhost/a' type='result' id='q4'/>")
        .await;
    assert_silent(&mut bob).await;
    assert_silent(&mut alice).await;

    // The user's own server still answers her, blocked or not.
    let r = ask(
        &mut alice,
        "<iq to='localhost' type='get' id='q5'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    server.stop();
}

#[tokio::test]
async fn presence_is_dropped_from_a_blocked_jid_and_refused_toward_it() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    assert_blocklist(&mut alice, "alice@localhost/a", &[]).await;
    block_ok(&mut alice, "alice@localhost/a", &["bob@localhost"]).await;

    // §3.3: presence from the blocked JID: no answer, no error.
    bob.send("<presence to='alice@localhost/a'/>").await;
    bob.send("<presence to='alice@localhost'><show>chat</show></presence>")
        .await;
    assert_silent(&mut bob).await;
    assert_silent(&mut alice).await;

    // Toward it: not routed, and the user is told why.
    alice.send("<presence to='bob@localhost' id='p1'/>").await;
    let got = sync(&mut alice).await;
    assert_stanzas(
        &got,
        &[&format!(
            "<presence xmlns='jabber:client' type='error' id='p1' from='bob@localhost' \
             to='alice@localhost/a'>{BLOCKED}</presence>"
        )],
    );
    assert_silent(&mut bob).await;
    server.stop();
}

#[tokio::test]
async fn a_domain_entry_blocks_every_jid_at_that_domain_but_not_the_server() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    assert_blocklist(&mut alice, "alice@localhost/a", &[]).await;
    block_ok(&mut alice, "alice@localhost/a", &["localhost"]).await;

    bob.send(&message("alice@localhost", "m1")).await;
    let got = sync(&mut bob).await;
    assert_stanzas(
        &got,
        &[&format!(
            "<message xmlns='jabber:client' type='error' id='m1' from='alice@localhost' \
             to='bob@localhost/b'>{UNAVAILABLE}</message>"
        )],
    );
    assert_silent(&mut alice).await;

    // Her own server and her own resources stay reachable, or she could
    // never unblock.
    let mut alice2 = login(&server, "alice", "a2").await;
    sync(&mut alice).await;
    alice2.send(&message("alice@localhost/a", "m2")).await;
    assert_silent(&mut alice2).await;
    let got = sync(&mut alice).await;
    assert_eq!(got.len(), 1, "{}", xml(&got));
    assert_eq!(got[0].attr("id"), Some("m2"));
    let r = ask(&mut alice, &unblock("u1", &["localhost"])).await;
    assert_stanza(&r, &result("u1", "alice@localhost/a"));
    server.stop();
}

#[tokio::test]
async fn unblocking_one_jid_restores_it_alone() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    let mut carol = login(&server, "carol", "c").await;
    assert_blocklist(&mut alice, "alice@localhost/a", &[]).await;
    block_ok(
        &mut alice,
        "alice@localhost/a",
        &["bob@localhost", "carol@localhost"],
    )
    .await;

    // §3.4: the result, then the push naming what was unblocked.
    alice.send(&unblock("u1", &["Bob@localhost"])).await;
    let got = sync(&mut alice).await;
    assert_eq!(got.len(), 2, "{}", xml(&got));
    assert_stanza(&got[0], &result("u1", "alice@localhost/a"));
    assert_push(
        &got[1],
        "alice@localhost/a",
        "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock>",
    );
    assert_blocklist(&mut alice, "alice@localhost/a", &["carol@localhost"]).await;

    bob.send(&message("alice@localhost/a", "m1")).await;
    assert_silent(&mut bob).await;
    let got = sync(&mut alice).await;
    assert_eq!(got.len(), 1, "{}", xml(&got));
    assert_stanza(
        &got[0],
        "<message xmlns='jabber:client' type='chat' id='m1' from='bob@localhost/b' \
         to='alice@localhost/a'><body>hello</body></message>",
    );

    carol.send(&message("alice@localhost/a", "m2")).await;
    let got = sync(&mut carol).await;
    assert_stanzas(
        &got,
        &[&format!(
            "<message xmlns='jabber:client' type='error' id='m2' from='alice@localhost/a' \
             to='carol@localhost/c'>{UNAVAILABLE}</message>"
        )],
    );
    assert_silent(&mut alice).await;

    // Unblocking a JID that is not blocked is no error.
    let r = ask(&mut alice, &unblock("u2", &["nobody@localhost"])).await;
    assert_stanza(&r, &result("u2", "alice@localhost/a"));
    server.stop();
}

#[tokio::test]
async fn an_unblock_without_items_empties_the_list() {
    let server = server().await;
    let mut a = login(&server, "alice", "a").await;
    let mut b = login(&server, "alice", "b").await;
    let mut bob = login(&server, "bob", "b").await;
    assert_blocklist(&mut a, "alice@localhost/a", &[]).await;
    assert_blocklist(&mut b, "alice@localhost/b", &[]).await;
    a.send(&block(
        "blk1",
        &["bob@localhost", "carol@localhost", "x.example"],
    ))
    .await;
    sync(&mut a).await;
    sync(&mut b).await;

    // §3.5: the result, then an empty <unblock/> pushed to both.
    b.send(&unblock("u1", &[])).await;
    let got = sync(&mut b).await;
    assert_eq!(got.len(), 2, "{}", xml(&got));
    assert_stanza(&got[0], &result("u1", "alice@localhost/b"));
    assert_push(
        &got[1],
        "alice@localhost/b",
        "<unblock xmlns='urn:xmpp:blocking'/>",
    );
    let got = sync(&mut a).await;
    assert_eq!(got.len(), 1, "{}", xml(&got));
    assert_push(
        &got[0],
        "alice@localhost/a",
        "<unblock xmlns='urn:xmpp:blocking'/>",
    );
    assert_blocklist(&mut a, "alice@localhost/a", &[]).await;

    bob.send(&message("alice@localhost/a", "m1")).await;
    assert_silent(&mut bob).await;
    let got = sync(&mut a).await;
    assert_eq!(got.len(), 1, "{}", xml(&got));
    assert_eq!(got[0].attr("id"), Some("m1"));
    server.stop();
}

#[tokio::test]
async fn malformed_requests_get_the_conditions_the_xep_names_and_change_nothing() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    assert_blocklist(&mut alice, "alice@localhost/a", &[]).await;
    let me = "alice@localhost/a";

    // §3.3: a <block/> with no item.
    let r = ask(&mut alice, &block("e1", &[])).await;
    assert_stanza(
        &r,
        &iq_error(
            "e1",
            "alice@localhost",
            me,
            &condition("bad-request", "modify"),
        ),
    );
    // §3.3: a malformed JID, even beside a good one: nothing is blocked.
    let r = ask(&mut alice, &block("e2", &["bob@localhost", "a@b@c"])).await;
    assert_stanza(
        &r,
        &iq_error(
            "e2",
            "alice@localhost",
            me,
            &condition("jid-malformed", "modify"),
        ),
    );
    let r = ask(&mut alice, &unblock("e3", &["@localhost"])).await;
    assert_stanza(
        &r,
        &iq_error(
            "e3",
            "alice@localhost",
            me,
            &condition("jid-malformed", "modify"),
        ),
    );
    // An item without a JID.
    let r = ask(
        &mut alice,
        "<iq type='set' id='e4'><block xmlns='urn:xmpp:blocking'><item/></block></iq>",
    )
    .await;
    assert_stanza(
        &r,
        &iq_error(
            "e4",
            "alice@localhost",
            me,
            &condition("bad-request", "modify"),
        ),
    );
    // The wrong IQ type for the element.
    let r = ask(
        &mut alice,
        "<iq type='set' id='e5'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    )
    .await;
    assert_stanza(
        &r,
        &iq_error(
            "e5",
            "alice@localhost",
            me,
            &condition("bad-request", "modify"),
        ),
    );
    let r = ask(
        &mut alice,
        "<iq type='get' id='e6'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>",
    )
    .await;
    assert_stanza(
        &r,
        &iq_error(
            "e6",
            "alice@localhost",
            me,
            &condition("bad-request", "modify"),
        ),
    );
    // Someone else's list.
    let r = ask(
        &mut alice,
        "<iq to='bob@localhost' type='get' id='e7'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    )
    .await;
    assert_stanza(
        &r,
        &iq_error("e7", "bob@localhost", me, &condition("forbidden", "auth")),
    );

    // No push came, and the list is still empty.
    assert_silent(&mut alice).await;
    assert_blocklist(&mut alice, me, &[]).await;
    server.stop();
}

#[tokio::test]
async fn the_list_outlives_the_session_and_applies_without_being_asked_for() {
    let server = server().await;
    {
        let mut alice = login(&server, "alice", "a").await;
        let r = ask(&mut alice, &block("blk1", &["bob@localhost"])).await;
        assert_stanza(&r, &result("blk1", "alice@localhost/a"));
        // No <blocklist/> get on this connection: no push.
        assert_silent(&mut alice).await;
    }
    let mut bob = login(&server, "bob", "b").await;
    // Alice is offline: the message is refused, not stored for later.
    bob.send(&message("alice@localhost", "m1")).await;
    let got = sync(&mut bob).await;
    assert_stanzas(
        &got,
        &[&format!(
            "<message xmlns='jabber:client' type='error' id='m1' from='alice@localhost' \
             to='bob@localhost/b'>{UNAVAILABLE}</message>"
        )],
    );

    // A new session of alice's, which has not asked for the list, is
    // protected all the same, and no offline message waits for it.
    let mut alice = login(&server, "alice", "z").await;
    bob.send(&message("alice@localhost/z", "m2")).await;
    let got = sync(&mut bob).await;
    assert_eq!(got.len(), 1, "{}", xml(&got));
    assert_eq!(got[0].attr("type"), Some("error"));
    assert_silent(&mut alice).await;
    assert_blocklist(&mut alice, "alice@localhost/z", &["bob@localhost"]).await;
    server.stop();
}

/// `x` (bare `x_jid`) asks for `y`'s presence and `y` approves (RFC 6121
/// §3.1), then both drain what that brought.
async fn subscribe(x: &mut XmppClient, x_jid: &str, y: &mut XmppClient, y_jid: &str) {
    x.send(&format!("<presence to='{y_jid}' type='subscribe'/>"))
        .await;
    sync(x).await;
    y.send(&format!("<presence to='{x_jid}' type='subscribed'/>"))
        .await;
    sync(y).await;
    sync(x).await;
}

/// Makes `a` and `b` subscribed to each other's presence.
async fn subscribe_both(a: &mut XmppClient, a_jid: &str, b: &mut XmppClient, b_jid: &str) {
    subscribe(a, a_jid, b, b_jid).await;
    subscribe(b, b_jid, a, a_jid).await;
}

#[tokio::test]
async fn blocking_a_subscribed_contact_sends_unavailable_and_unblocking_restores_presence() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    subscribe_both(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    alice
        .send("<presence><status>here</status></presence>")
        .await;
    bob.send("<presence><show>away</show></presence>").await;
    sync(&mut alice).await;
    sync(&mut bob).await;
    sync(&mut alice).await;

    // §3.3: bob, subscribed to alice, sees her go offline; and alice's
    // client is told bob is gone, as his presence will not reach her.
    assert_blocklist(&mut alice, "alice@localhost/a", &[]).await;
    alice.send(&block("blk1", &["bob@localhost"])).await;
    let got = sync(&mut alice).await;
    assert_eq!(got.len(), 3, "{}", xml(&got));
    assert_stanza(&got[0], &result("blk1", "alice@localhost/a"));
    assert_push(
        &got[1],
        "alice@localhost/a",
        "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>",
    );
    assert_stanza(
        &got[2],
        "<presence xmlns='jabber:client' type='unavailable' from='bob@localhost/b' \
         to='alice@localhost'/>",
    );
    let got = sync(&mut bob).await;
    assert_stanzas(
        &got,
        &[
            "<presence xmlns='jabber:client' type='unavailable' from='alice@localhost/a' \
           to='bob@localhost'/>",
        ],
    );

    // §3.4: unblocked, each gets the other's current presence again.
    alice.send(&unblock("u1", &["bob@localhost"])).await;
    let got = sync(&mut alice).await;
    assert_eq!(got.len(), 3, "{}", xml(&got));
    assert_stanza(&got[0], &result("u1", "alice@localhost/a"));
    assert_push(
        &got[1],
        "alice@localhost/a",
        "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock>",
    );
    assert_stanza(
        &got[2],
        "<presence xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost'>\
         <show>away</show><x xmlns='vcard-temp:x:update'><photo/></x></presence>",
    );
    let got = sync(&mut bob).await;
    assert_stanzas(
        &got,
        &[
            "<presence xmlns='jabber:client' from='alice@localhost/a' to='bob@localhost'>\
           <status>here</status><x xmlns='vcard-temp:x:update'><photo/></x></presence>",
        ],
    );
    server.stop();
}

/// What `got` holds from other accounts than `own` (a user may be sent
/// her own broadcast presence, RFC 6121 §4.2.2).
fn from_others(got: Vec<Element>, own: &str) -> Vec<Element> {
    got.into_iter()
        .filter(|e| {
            e.attr("from")
                .is_none_or(|f| f.split('/').next() != Some(own))
        })
        .collect()
}

/// Needs the presence.rs call sites for XEP-0191 (broadcast, probe
/// answers, subscription stanzas, redelivered requests); see
/// `chorus-router`'s `blocking.rs`.
#[tokio::test]
async fn broadcast_presence_and_subscriptions_do_not_cross_a_block() {
    let server = server().await;
    let addr = server.first_addr().unwrap();
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    subscribe_both(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    assert_blocklist(&mut alice, "alice@localhost/a", &[]).await;
    alice.send(&block("blk1", &["bob@localhost"])).await;
    sync(&mut alice).await;
    sync(&mut bob).await;

    // Broadcast presence: neither way.
    alice.send("<presence><show>dnd</show></presence>").await;
    bob.send("<presence><show>xa</show></presence>").await;
    let got = from_others(sync(&mut alice).await, "alice@localhost");
    assert!(got.is_empty(), "{}", xml(&got));
    let got = from_others(sync(&mut bob).await, "bob@localhost");
    assert!(got.is_empty(), "{}", xml(&got));
    let got = from_others(sync(&mut alice).await, "alice@localhost");
    assert!(got.is_empty(), "{}", xml(&got));

    // A new resource's probe is not answered across the block, and its
    // initial presence does not reach the blocked user.
    let (mut bob2, _) = XmppClient::login(addr, "bob", "builder", Some("b2")).await;
    let got = from_others(sync(&mut bob2).await, "bob@localhost");
    assert!(got.is_empty(), "{}", xml(&got));
    let got = from_others(sync(&mut alice).await, "alice@localhost");
    assert!(got.is_empty(), "{}", xml(&got));

    // Subscription stanzas: from a blocked JID dropped without an answer;
    // toward it refused.
    let mut carol = login(&server, "carol", "c").await;
    let r = ask(&mut alice, &block("blk2", &["carol@localhost"])).await;
    assert_stanza(&r, &result("blk2", "alice@localhost/a"));
    sync(&mut alice).await;
    carol
        .send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    assert_silent(&mut carol).await;
    assert_silent(&mut alice).await;
    alice
        .send("<presence to='carol@localhost' type='subscribe' id='s1'/>")
        .await;
    let got = sync(&mut alice).await;
    assert_stanzas(
        &got,
        &[&format!(
            "<presence xmlns='jabber:client' type='error' id='s1' from='carol@localhost' \
             to='alice@localhost/a'>{BLOCKED}</presence>"
        )],
    );
    assert_silent(&mut carol).await;

    // A request that waited for an offline user, from a JID she has
    // blocked since, is not redelivered at her next login.
    let r = ask(&mut alice, &unblock("u1", &["carol@localhost"])).await;
    assert_stanza(&r, &result("u1", "alice@localhost/a"));
    drop(alice);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    carol
        .send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    sync(&mut carol).await;
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let got = from_others(sync(&mut alice).await, "alice@localhost");
    assert!(
        got.iter().any(|p| p.attr("type") == Some("subscribe")),
        "the request is redelivered: {}",
        xml(&got)
    );
    let r = ask(&mut alice, &block("blk3", &["carol@localhost"])).await;
    assert_stanza(&r, &result("blk3", "alice@localhost/a"));
    drop(alice);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let got = from_others(sync(&mut alice).await, "alice@localhost");
    assert!(
        got.iter().all(|p| p.attr("type") != Some("subscribe")),
        "{}",
        xml(&got)
    );
    server.stop();
}

/// Needs the optional presence.rs call sites for XEP-0191 in `inbound`
/// and `cancel_subscriptions`; see `chorus-router`'s `blocking.rs`.
#[tokio::test]
async fn removing_a_blocked_contact_ends_the_subscriptions_without_telling_it() {
    let server = server().await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    subscribe_both(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    let r = ask(&mut alice, &block("blk1", &["bob@localhost"])).await;
    assert_stanza(&r, &result("blk1", "alice@localhost/a"));
    sync(&mut alice).await;
    sync(&mut bob).await;

    // RFC 6121 §2.5.2 cancels both subscriptions; bob's side changes, but
    // no stanza reaches him across the block.
    let r = ask(
        &mut alice,
        "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>\
         <item jid='bob@localhost' subscription='remove'/></query></iq>",
    )
    .await;
    assert_stanza(&r, &result("r1", "alice@localhost/a"));
    assert_silent(&mut bob).await;
    let r = ask(
        &mut bob,
        "<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>",
    )
    .await;
    let item = r
        .get_child("query", "jabber:iq:roster")
        .and_then(|q| q.get_child("item", "jabber:iq:roster"))
        .unwrap();
    assert_eq!(
        (item.attr("jid"), item.attr("subscription")),
        (Some("alice@localhost"), Some("none")),
        "{}",
        r.to_xml()
    );
    server.stop();
}
