//! Multi-user chat (XEP-0045) on `conference.localhost`, through real
//! sockets, written from the XEP's examples: creating reserved and instant
//! rooms (§10.1), entering with history and subject (§7.2) and each way
//! in is refused (§7.2.5-§7.2.10), nick changes (§7.6), messages to all
//! and private ones (§7.4, §7.5), several resources under one nick,
//! moderation (§8), affiliation lists as deltas (§9, §10), configuration
//! and destruction (§10.2, §10.9), invitations (§7.8.2), voice requests
//! (§8.6), self-pings (XEP-0410), occupant ids (XEP-0421), a session that
//! ends leaving its rooms, persistence across a restart, and a room whose
//! actor is killed going on with its occupants.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chorus_supervisor::StopMode;
use chorus_xml::Element;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const SVC: &str = "conference.localhost";
const MUC: &str = "http://jabber.org/protocol/muc";
const USER: &str = "http://jabber.org/protocol/muc#user";
const ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const OWNER: &str = "http://jabber.org/protocol/muc#owner";
const DATA: &str = "jabber:x:data";

/// The test config, with a message bucket big enough for the tests'
/// bursts.
fn muc_config(tag: &str) -> chorus_config::Config {
    let mut config = test_config(tag);
    config.muc.message_burst = 1000;
    config
}

async fn server(tag: &str) -> chorus_server::Server {
    let server = start(muc_config(tag)).await;
    for u in ["alice", "bob", "carol", "dave"] {
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

fn room(name: &str) -> String {
    format!("{name}@{SVC}")
}

/// The next stanza `pred` accepts; the others are skipped.
async fn until(c: &mut XmppClient, pred: impl Fn(&Element) -> bool) -> Element {
    loop {
        let e = c.next_element().await;
        if pred(&e) {
            return e;
        }
    }
}

fn codes(e: &Element) -> Vec<String> {
    e.get_child("x", USER)
        .map(|x| {
            x.children()
                .filter(|c| c.is("status", USER))
                .filter_map(|c| c.attr("code").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn item(e: &Element) -> Element {
    e.get_child("x", USER)
        .and_then(|x| x.get_child("item", USER))
        .cloned()
        .unwrap_or_else(|| panic!("no muc#user item in {}", e.to_xml()))
}

/// A presence from an occupant of `room`.
fn from_room(e: &Element, room: &str) -> bool {
    e.name() == "presence"
        && e.attr("from")
            .is_some_and(|f| f.starts_with(&format!("{room}/")))
}

/// The condition of the next message error.
async fn message_error(c: &mut XmppClient) -> String {
    let e = until(c, |e| {
        e.name() == "message" && e.attr("type") == Some("error")
    })
    .await;
    stanza_error_condition(&e)
}

/// The next unavailable presence.
async fn unavailable(c: &mut XmppClient) -> Element {
    until(c, |e| {
        e.name() == "presence" && e.attr("type") == Some("unavailable")
    })
    .await
}

fn is_subject(e: &Element) -> bool {
    e.name() == "message" && e.get_child("subject", "jabber:client").is_some()
}

/// Enters `room` as `nick` (`x` is the MUC `<x/>`'s content) and returns
/// everything up to the subject, which ends the entrance (§7.2.16).
async fn join(c: &mut XmppClient, room: &str, nick: &str, x: &str) -> Vec<Element> {
    c.send(&format!(
        "<presence to='{room}/{nick}'><x xmlns='{MUC}'>{x}</x></presence>"
    ))
    .await;
    let mut got = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.attr("type") == Some("error") && e.attr("from") == Some(&format!("{room}/{nick}")) {
            panic!("entering failed: {}", e.to_xml());
        }
        let done = is_subject(&e) && e.attr("from").is_some_and(|f| f.starts_with(room));
        got.push(e);
        if done {
            return got;
        }
    }
}

/// Tries to enter and returns the error condition.
async fn join_refused(c: &mut XmppClient, room: &str, nick: &str, x: &str) -> String {
    c.send(&format!(
        "<presence to='{room}/{nick}'><x xmlns='{MUC}'>{x}</x></presence>"
    ))
    .await;
    let from = format!("{room}/{nick}");
    let e = until(c, |e| {
        e.name() == "presence" && e.attr("from") == Some(from.as_str())
    })
    .await;
    assert_eq!(e.attr("type"), Some("error"), "{}", e.to_xml());
    stanza_error_condition(&e)
}

static IDS: AtomicUsize = AtomicUsize::new(0);

/// An IQ to `to`; its answer.
async fn iq(c: &mut XmppClient, to: &str, kind: &str, payload: &str) -> Element {
    let id = format!("m{}", IDS.fetch_add(1, Ordering::Relaxed));
    c.send(&format!(
        "<iq id='{id}' to='{to}' type='{kind}'>{payload}</iq>"
    ))
    .await;
    until(c, |e| e.name() == "iq" && e.attr("id") == Some(id.as_str())).await
}

async fn iq_ok(c: &mut XmppClient, to: &str, kind: &str, payload: &str) -> Element {
    let r = iq(c, to, kind, payload).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    r
}

async fn iq_err(c: &mut XmppClient, to: &str, kind: &str, payload: &str) -> String {
    let r = iq(c, to, kind, payload).await;
    assert_eq!(r.attr("type"), Some("error"), "{}", r.to_xml());
    stanza_error_condition(&r)
}

fn field(var: &str, value: &str) -> String {
    format!("<field var='{var}'><value>{value}</value></field>")
}

/// A configuration form with these fields.
fn config(fields: &[(&str, &str)]) -> String {
    let mut x = format!(
        "<query xmlns='{OWNER}'><x xmlns='{DATA}' type='submit'>{}",
        field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig")
    );
    for (var, value) in fields {
        x.push_str(&field(var, value));
    }
    x.push_str("</x></query>");
    x
}

/// Creates an instant room (§10.1.2) owned by `c` as `nick`, with these
/// settings.
async fn create(c: &mut XmppClient, room: &str, nick: &str, fields: &[(&str, &str)]) {
    let got = join(c, room, nick, "").await;
    let me = got
        .iter()
        .find(|e| e.name() == "presence" && codes(e).contains(&"110".to_owned()))
        .unwrap();
    assert!(codes(me).contains(&"201".to_owned()), "{}", me.to_xml());
    iq_ok(c, room, "set", &config(fields)).await;
}

fn body_of(e: &Element) -> Option<String> {
    e.get_child("body", "jabber:client").map(Element::text)
}

async fn say(c: &mut XmppClient, room: &str, text: &str) {
    c.send(&format!(
        "<message to='{room}' type='groupchat' id='{text}'><body>{text}</body></message>"
    ))
    .await;
}

/// The groupchat message with `text` as its body.
async fn heard(c: &mut XmppClient, text: &str) -> Element {
    until(c, |e| {
        e.name() == "message" && body_of(e).as_deref() == Some(text)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_room_is_locked_until_its_owner_configures_it() {
    let server = server("muc-reserved").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let r = room("tea");
    // §10.1.1: the room is created, alice its owner, and it is locked.
    let got = join(&mut alice, &r, "Alice", "").await;
    let me = got.iter().find(|e| from_room(e, &r)).unwrap();
    assert_eq!(me.attr("from"), Some(format!("{r}/Alice").as_str()));
    let mut c = codes(me);
    c.sort();
    // 170: the room keeps an archive (logging is on by default).
    assert_eq!(c, ["110", "170", "201"]);
    assert_eq!(item(me).attr("affiliation"), Some("owner"));
    assert_eq!(item(me).attr("role"), Some("moderator"));
    assert!(me
        .get_child("occupant-id", "urn:xmpp:occupant-id:0")
        .is_some());
    // Nobody else gets in, nor sees it.
    assert_eq!(
        join_refused(&mut bob, &r, "Bob", "").await,
        "item-not-found"
    );
    assert_eq!(
        iq_err(
            &mut bob,
            &r,
            "get",
            "<query xmlns='http://jabber.org/protocol/disco#info'/>"
        )
        .await,
        "item-not-found"
    );
    // §10.2: the owner's form has every standard field.
    let form = iq_ok(&mut alice, &r, "get", &format!("<query xmlns='{OWNER}'/>")).await;
    let x = form
        .get_child("query", OWNER)
        .and_then(|q| q.get_child("x", DATA))
        .unwrap();
    let vars: Vec<&str> = x.children().filter_map(|f| f.attr("var")).collect();
    for v in [
        "muc#roomconfig_roomname",
        "muc#roomconfig_roomdesc",
        "muc#roomconfig_persistentroom",
        "muc#roomconfig_publicroom",
        "muc#roomconfig_membersonly",
        "muc#roomconfig_moderatedroom",
        "muc#roomconfig_passwordprotectedroom",
        "muc#roomconfig_roomsecret",
        "muc#roomconfig_whois",
        "muc#roomconfig_maxusers",
        "muc#roomconfig_enablelogging",
        "muc#roomconfig_changesubject",
        "muc#roomconfig_allowinvites",
        "muc#roomconfig_allowpm",
        "muc#roomconfig_roomadmins",
        "muc#roomconfig_roomowners",
    ] {
        assert!(vars.contains(&v), "{v} missing from {}", x.to_xml());
    }
    // Someone else may not configure it.
    assert_eq!(
        iq_err(&mut bob, &r, "get", &format!("<query xmlns='{OWNER}'/>")).await,
        "item-not-found",
        "a locked room is not there for others"
    );
    iq_ok(
        &mut alice,
        &r,
        "set",
        &config(&[("muc#roomconfig_roomname", "Tea time")]),
    )
    .await;
    // Unlocked: bob gets in and sees the name in disco (§6.4).
    join(&mut bob, &r, "Bob", "").await;
    let info = iq_ok(
        &mut bob,
        &r,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    let q = info.children().next().unwrap();
    let identity = q.children().find(|c| c.name() == "identity").unwrap();
    assert_eq!(identity.attr("category"), Some("conference"));
    assert_eq!(identity.attr("name"), Some("Tea time"));
    let features: Vec<&str> = q
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .collect();
    for f in [
        MUC,
        "muc_temporary",
        "muc_public",
        "muc_open",
        "muc_unmoderated",
        "muc_semianonymous",
        "muc_unsecured",
        "urn:xmpp:occupant-id:0",
    ] {
        assert!(features.contains(&f), "{f} missing: {features:?}");
    }
    // §10.2: a non-owner is refused the form now that the room is there.
    assert_eq!(
        iq_err(&mut bob, &r, "get", &format!("<query xmlns='{OWNER}'/>")).await,
        "forbidden"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_first_configuration_destroys_the_room() {
    let server = server("muc-cancel").await;
    let mut alice = login(&server, "alice", "r").await;
    let r = room("gone");
    join(&mut alice, &r, "Alice", "").await;
    alice
        .send(&format!(
            "<iq id='c1' to='{r}' type='set'><query xmlns='{OWNER}'><x xmlns='{DATA}' type='cancel'/></query></iq>"
        ))
        .await;
    // §10.1.3: the creator is sent out, and the IQ answered.
    let left = until(&mut alice, |e| from_room(e, &r)).await;
    assert_eq!(left.attr("type"), Some("unavailable"));
    let answer = until(&mut alice, |e| e.attr("id") == Some("c1")).await;
    assert_eq!(answer.attr("type"), Some("result"));
    // Gone: asking for it again creates a new room.
    let got = join(&mut alice, &r, "Alice", "").await;
    assert!(got.iter().any(|e| codes(e).contains(&"201".to_owned())));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupants_see_each_other_talk_and_get_history_and_subject() {
    let server = server("muc-talk").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let mut carol = login(&server, "carol", "r").await;
    let r = room("talk");
    create(&mut alice, &r, "Alice", &[]).await;
    // §7.2.3: bob first sees alice, then himself (110), then the subject.
    let got = join(&mut bob, &r, "Bob", "").await;
    let presences: Vec<&Element> = got.iter().filter(|e| from_room(e, &r)).collect();
    assert_eq!(
        presences[0].attr("from"),
        Some(format!("{r}/Alice").as_str())
    );
    assert!(
        item(presences[0]).attr("jid").is_none(),
        "semi-anonymous: bob does not see alice's JID"
    );
    assert_eq!(presences[1].attr("from"), Some(format!("{r}/Bob").as_str()));
    assert!(codes(presences[1]).contains(&"110".to_owned()));
    // Alice, a moderator, sees bob's full JID (§7.2.4).
    let bob_arrives = until(&mut alice, |e| from_room(e, &r)).await;
    assert_eq!(
        item(&bob_arrives).attr("jid"),
        Some("bob@localhost/r"),
        "{}",
        bob_arrives.to_xml()
    );
    // §7.4: the message reaches everyone, the sender too, with a stanza-id
    // and an occupant-id the room vouches for.
    bob.send(&format!(
        "<message to='{r}' type='groupchat' id='b1'><body>hello</body>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='{r}' id='forged'/>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>"
    ))
    .await;
    for c in [&mut alice, &mut bob] {
        let m = heard(c, "hello").await;
        assert_eq!(m.attr("from"), Some(format!("{r}/Bob").as_str()));
        assert_eq!(m.attr("type"), Some("groupchat"));
        assert_eq!(m.attr("id"), Some("b1"), "the id is kept (muc#stable_id)");
        let sids: Vec<&Element> = m
            .children()
            .filter(|c| c.is("stanza-id", "urn:xmpp:sid:0"))
            .collect();
        assert_eq!(sids.len(), 1, "{}", m.to_xml());
        assert_ne!(sids[0].attr("id"), Some("forged"));
        assert_eq!(sids[0].attr("by"), Some(r.as_str()));
        let oids: Vec<&Element> = m
            .children()
            .filter(|c| c.is("occupant-id", "urn:xmpp:occupant-id:0"))
            .collect();
        assert_eq!(oids.len(), 1);
        assert_ne!(oids[0].attr("id"), Some("forged"));
    }
    // §8.1: the subject.
    alice
        .send(&format!(
            "<message to='{r}' type='groupchat'><subject>Cakes</subject></message>"
        ))
        .await;
    let s = until(&mut bob, is_subject).await;
    assert_eq!(
        s.get_child("subject", "jabber:client").unwrap().text(),
        "Cakes"
    );
    say(&mut alice, &r, "second").await;
    heard(&mut bob, "second").await;
    // §7.2.15: carol asks for one message of history, and gets the last,
    // delayed, then the subject.
    let got = join(&mut carol, &r, "Carol", "<history maxstanzas='1'/>").await;
    let history: Vec<&Element> = got
        .iter()
        .filter(|e| e.name() == "message" && body_of(e).is_some())
        .collect();
    assert_eq!(history.len(), 1);
    assert_eq!(body_of(history[0]).as_deref(), Some("second"));
    assert!(history[0].get_child("delay", "urn:xmpp:delay").is_some());
    let subject = got.last().unwrap();
    assert_eq!(
        subject
            .get_child("subject", "jabber:client")
            .unwrap()
            .text(),
        "Cakes"
    );
    // 210: a nick in another Unicode form is normalized (RFC 7622), and
    // the client is told the nick it has.
    let mut erin = login(&server, "dave", "r2").await;
    let got = join(&mut erin, &r, "Cafe\u{301}", "<history maxstanzas='0'/>").await;
    let me = got
        .iter()
        .find(|e| from_room(e, &r) && codes(e).contains(&"110".to_owned()))
        .unwrap();
    assert!(codes(me).contains(&"210".to_owned()), "{}", me.to_xml());
    assert_eq!(me.attr("from"), Some(format!("{r}/Caf\u{e9}").as_str()));
    // maxchars='0': no history at all.
    let mut dave = login(&server, "dave", "r").await;
    let got = join(&mut dave, &r, "Dave", "<history maxchars='0'/>").await;
    assert!(got.iter().all(|e| body_of(e).is_none()));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entering_is_refused_as_the_xep_says() {
    let server = server("muc-refused").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let mut carol = login(&server, "carol", "r").await;
    // §7.2.9: a nick in use by someone else.
    let open = room("open");
    create(
        &mut alice,
        &open,
        "Alice",
        &[("muc#roomconfig_maxusers", "2")],
    )
    .await;
    assert_eq!(join_refused(&mut bob, &open, "Alice", "").await, "conflict");
    // §7.2.10: full (two occupants at most).
    join(&mut bob, &open, "Bob", "").await;
    assert_eq!(
        join_refused(&mut carol, &open, "Carol", "").await,
        "service-unavailable"
    );
    // §7.2.6: members only.
    let members = room("members");
    create(
        &mut alice,
        &members,
        "Alice",
        &[("muc#roomconfig_membersonly", "1")],
    )
    .await;
    assert_eq!(
        join_refused(&mut carol, &members, "Carol", "").await,
        "registration-required"
    );
    // §7.2.5: a password.
    let secret = room("secret");
    create(
        &mut alice,
        &secret,
        "Alice",
        &[
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "pw"),
        ],
    )
    .await;
    assert_eq!(
        join_refused(&mut carol, &secret, "Carol", "").await,
        "not-authorized"
    );
    assert_eq!(
        join_refused(&mut carol, &secret, "Carol", "<password>wrong</password>").await,
        "not-authorized"
    );
    join(&mut carol, &secret, "Carol", "<password>pw</password>").await;
    // §7.2.7: banned.
    let banned = room("banned");
    create(&mut alice, &banned, "Alice", &[]).await;
    iq_ok(
        &mut alice,
        &banned,
        "set",
        &format!(
            "<query xmlns='{ADMIN}'><item affiliation='outcast' jid='bob@localhost'/></query>"
        ),
    )
    .await;
    assert_eq!(
        join_refused(&mut bob, &banned, "Bob", "").await,
        "forbidden"
    );
    // §7.2.1: no nick.
    bob.send(&format!(
        "<presence to='{banned}'><x xmlns='{MUC}'/></presence>"
    ))
    .await;
    let e = until(&mut bob, |e| {
        e.name() == "presence" && e.attr("from") == Some(banned.as_str())
    })
    .await;
    assert_eq!(stanza_error_condition(&e), "jid-malformed");
    // §10.1.1 with the default policy: only local accounts create rooms;
    // the service itself answers disco.
    let info = iq_ok(
        &mut carol,
        SVC,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    assert!(
        info.to_xml().contains("category=\"conference\"")
            || info.to_xml().contains("category='conference'")
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nicks_change_and_private_messages_follow_the_rules() {
    let server = server("muc-nick").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let r = room("nicks");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob", "").await;
    until(&mut alice, |e| from_room(e, &r)).await;
    // §7.6.2: taken.
    bob.send(&format!("<presence to='{r}/Alice'/>")).await;
    let e = until(&mut bob, |e| from_room(e, &r)).await;
    assert_eq!(stanza_error_condition(&e), "conflict");
    // §7.6.3: unavailable with 303 and the new nick, then available.
    bob.send(&format!("<presence to='{r}/Robert'/>")).await;
    let gone = until(&mut alice, |e| from_room(e, &r)).await;
    assert_eq!(gone.attr("type"), Some("unavailable"));
    assert_eq!(gone.attr("from"), Some(format!("{r}/Bob").as_str()));
    assert!(codes(&gone).contains(&"303".to_owned()));
    assert_eq!(item(&gone).attr("nick"), Some("Robert"));
    let back = until(&mut alice, |e| from_room(e, &r)).await;
    assert_eq!(back.attr("from"), Some(format!("{r}/Robert").as_str()));
    assert_eq!(back.attr("type"), None);
    let mine = until(&mut bob, |e| {
        e.name() == "presence" && codes(e).contains(&"303".to_owned())
    })
    .await;
    assert!(codes(&mine).contains(&"110".to_owned()));
    // §7.5: a private message, from the room nick.
    alice
        .send(&format!(
            "<message to='{r}/Robert' type='chat'><body>psst</body></message>"
        ))
        .await;
    let pm = heard(&mut bob, "psst").await;
    assert_eq!(pm.attr("from"), Some(format!("{r}/Alice").as_str()));
    assert!(pm.get_child("x", USER).is_some());
    // To nobody: item-not-found; of type groupchat: bad-request.
    alice
        .send(&format!(
            "<message to='{r}/Nobody' type='chat'><body>x</body></message>"
        ))
        .await;
    assert_eq!(message_error(&mut alice).await, "item-not-found");
    alice
        .send(&format!(
            "<message to='{r}/Robert' type='groupchat'><body>x</body></message>"
        ))
        .await;
    assert_eq!(message_error(&mut alice).await, "bad-request");
    // From outside the room (§7.4, §7.5): not-acceptable.
    let mut carol = login(&server, "carol", "r").await;
    carol
        .send(&format!(
            "<message to='{r}' type='groupchat'><body>x</body></message>"
        ))
        .await;
    let e = until(&mut carol, |e| e.name() == "message").await;
    assert_eq!(stanza_error_condition(&e), "not-acceptable");
    // No private messages in this room.
    iq_ok(
        &mut alice,
        &r,
        "set",
        &config(&[("muc#roomconfig_allowpm", "none")]),
    )
    .await;
    bob.send(&format!(
        "<message to='{r}/Alice' type='chat'><body>x</body></message>"
    ))
    .await;
    assert_eq!(message_error(&mut bob).await, "forbidden");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_from_two_clients_is_one_occupant() {
    let server = server("muc-two").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob1 = login(&server, "bob", "one").await;
    let mut bob2 = login(&server, "bob", "two").await;
    let r = room("two");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob1, &r, "Bob", "").await;
    join(&mut bob2, &r, "Bob", "").await;
    // A message reaches both of bob's clients once.
    say(&mut alice, &r, "to both").await;
    heard(&mut bob1, "to both").await;
    heard(&mut bob2, "to both").await;
    // One leaves: the other stays, and alice still sees bob.
    bob1.send(&format!("<presence to='{r}/Bob' type='unavailable'/>"))
        .await;
    let left = until(&mut bob1, |e| from_room(e, &r)).await;
    assert_eq!(left.attr("type"), Some("unavailable"));
    assert!(codes(&left).contains(&"110".to_owned()));
    say(&mut alice, &r, "still here").await;
    heard(&mut bob2, "still here").await;
    let list = iq_ok(
        &mut alice,
        &r,
        "get",
        &format!("<query xmlns='{ADMIN}'><item role='participant'/></query>"),
    )
    .await;
    assert!(list.to_xml().contains("nick=\"Bob\"") || list.to_xml().contains("nick='Bob'"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderators_kick_and_grant_voice_and_the_xep_errors_hold() {
    let server = server("muc-moderate").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let mut carol = login(&server, "carol", "r").await;
    let r = room("mod");
    create(
        &mut alice,
        &r,
        "Alice",
        &[("muc#roomconfig_moderatedroom", "1")],
    )
    .await;
    // bob is an admin, carol nobody: she enters as a visitor.
    iq_ok(
        &mut alice,
        &r,
        "set",
        &format!("<query xmlns='{ADMIN}'><item affiliation='admin' jid='bob@localhost'/></query>"),
    )
    .await;
    join(&mut bob, &r, "Bob", "").await;
    let got = join(&mut carol, &r, "Carol", "").await;
    let me = got
        .iter()
        .find(|e| e.name() == "presence" && codes(e).contains(&"110".to_owned()))
        .unwrap();
    assert_eq!(item(me).attr("role"), Some("visitor"));
    // §7.4: a visitor has no voice.
    say(&mut carol, &r, "may I?").await;
    assert_eq!(message_error(&mut carol).await, "forbidden");
    // §8.2, §8.4: a visitor may not kick or silence; nobody kicks an admin.
    assert_eq!(
        iq_err(
            &mut carol,
            &r,
            "set",
            &format!("<query xmlns='{ADMIN}'><item nick='Bob' role='none'/></query>")
        )
        .await,
        "forbidden"
    );
    assert_eq!(
        iq_err(
            &mut alice,
            &r,
            "set",
            &format!("<query xmlns='{ADMIN}'><item nick='Bob' role='visitor'/></query>")
        )
        .await,
        "not-allowed"
    );
    // §8.6: carol asks for voice; the moderators get the form.
    carol
        .send(&format!(
            "<message to='{r}'><x xmlns='{DATA}' type='submit'>{}{}</x></message>",
            field("FORM_TYPE", "http://jabber.org/protocol/muc#request"),
            field("muc#role", "participant")
        ))
        .await;
    let request = until(&mut alice, |e| {
        e.name() == "message" && e.get_child("x", DATA).is_some()
    })
    .await;
    assert!(request.to_xml().contains("muc#request_allow"));
    assert!(request.to_xml().contains("Carol"));
    // Alice approves: carol is a participant and may speak.
    alice
        .send(&format!(
            "<message to='{r}'><x xmlns='{DATA}' type='submit'>{}{}{}{}</x></message>",
            field("FORM_TYPE", "http://jabber.org/protocol/muc#request"),
            field("muc#role", "participant"),
            field("muc#roomnick", "Carol"),
            field("muc#request_allow", "true")
        ))
        .await;
    let voiced = until(&mut carol, |e| {
        e.name() == "presence" && codes(e).contains(&"110".to_owned())
    })
    .await;
    assert_eq!(item(&voiced).attr("role"), Some("participant"));
    say(&mut carol, &r, "thanks").await;
    heard(&mut bob, "thanks").await;
    // §8.2: bob kicks carol with a reason; she hears 307 and 110.
    iq_ok(
        &mut bob,
        &r,
        "set",
        &format!(
            "<query xmlns='{ADMIN}'><item nick='Carol' role='none'><reason>Enough</reason></item></query>"
        ),
    )
    .await;
    let kicked = unavailable(&mut carol).await;
    let mut c = codes(&kicked);
    c.sort();
    assert_eq!(c, ["110", "307"]);
    let it = item(&kicked);
    assert_eq!(it.get_child("reason", USER).unwrap().text(), "Enough");
    assert_eq!(
        it.get_child("actor", USER).and_then(|a| a.attr("nick")),
        Some("Bob")
    );
    let seen = unavailable(&mut alice).await;
    assert!(codes(&seen).contains(&"307".to_owned()));
    // Kicked, not banned: she may come back.
    join(&mut carol, &r, "Carol", "").await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affiliation_lists_change_as_deltas_with_the_right_authority() {
    let server = server("muc-lists").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let mut carol = login(&server, "carol", "r").await;
    let r = room("lists");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut carol, &r, "Carol", "").await;
    // The same user under a second nick from another client.
    let mut carol2 = login(&server, "carol", "r2").await;
    join(&mut carol2, &r, "Carol2", "").await;
    // §9.1 + §9.3 in one IQ: a ban (carol, in the room: 301) and a member
    // on another domain.
    iq_ok(
        &mut alice,
        &r,
        "set",
        &format!(
            "<query xmlns='{ADMIN}'>\
             <item affiliation='outcast' jid='carol@localhost'><reason>Spam</reason></item>\
             <item affiliation='member' jid='friend@elsewhere.example'/>\
             <item affiliation='admin' jid='bob@localhost'/>\
             </query>"
        ),
    )
    .await;
    let banned = unavailable(&mut carol).await;
    assert!(codes(&banned).contains(&"301".to_owned()));
    assert_eq!(item(&banned).attr("affiliation"), Some("outcast"));
    // Both of her nicks go.
    let banned2 = until(&mut carol2, |e| {
        from_room(e, &r)
            && e.attr("type") == Some("unavailable")
            && codes(e).contains(&"110".to_owned())
    })
    .await;
    assert!(codes(&banned2).contains(&"301".to_owned()));
    // The lists are what the deltas made.
    let outcasts = iq_ok(
        &mut alice,
        &r,
        "get",
        &format!("<query xmlns='{ADMIN}'><item affiliation='outcast'/></query>"),
    )
    .await;
    assert!(outcasts.to_xml().contains("carol@localhost"));
    assert!(outcasts.to_xml().contains("Spam"));
    let members = iq_ok(
        &mut alice,
        &r,
        "get",
        &format!("<query xmlns='{ADMIN}'><item affiliation='member'/></query>"),
    )
    .await;
    assert!(members.to_xml().contains("friend@elsewhere.example"));
    // §10.8: only owners read the admin list; §10.3 only owners make
    // owners; §9.1 an admin does not ban the owner.
    assert_eq!(
        iq_err(
            &mut bob,
            &r,
            "get",
            &format!("<query xmlns='{ADMIN}'><item affiliation='admin'/></query>")
        )
        .await,
        "forbidden"
    );
    assert_eq!(
        iq_err(
            &mut bob,
            &r,
            "set",
            &format!(
                "<query xmlns='{ADMIN}'><item affiliation='owner' jid='bob@localhost'/></query>"
            )
        )
        .await,
        "forbidden"
    );
    assert_eq!(
        iq_err(
            &mut bob,
            &r,
            "set",
            &format!("<query xmlns='{ADMIN}'><item affiliation='outcast' jid='alice@localhost'/></query>")
        )
        .await,
        "not-allowed"
    );
    // An admin unbans.
    iq_ok(
        &mut bob,
        &r,
        "set",
        &format!("<query xmlns='{ADMIN}'><item affiliation='none' jid='carol@localhost'/></query>"),
    )
    .await;
    join(&mut carol, &r, "Carol", "").await;
    // §10.7 through the form too: making the sole owner an admin is refused.
    assert_eq!(
        iq_err(
            &mut alice,
            &r,
            "set",
            &config(&[("muc#roomconfig_roomadmins", "alice@localhost")])
        )
        .await,
        "conflict"
    );
    // §10.7: the last owner cannot step down; a failed IQ changes nothing.
    assert_eq!(
        iq_err(
            &mut alice,
            &r,
            "set",
            &format!(
                "<query xmlns='{ADMIN}'>\
                 <item affiliation='member' jid='dave@localhost'/>\
                 <item affiliation='admin' jid='alice@localhost'/></query>"
            )
        )
        .await,
        "conflict"
    );
    let members = iq_ok(
        &mut alice,
        &r,
        "get",
        &format!("<query xmlns='{ADMIN}'><item affiliation='member'/></query>"),
    )
    .await;
    assert!(!members.to_xml().contains("dave@localhost"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_make_members_and_declines_come_back() {
    let server = server("muc-invite").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let r = room("club");
    create(
        &mut alice,
        &r,
        "Alice",
        &[("muc#roomconfig_membersonly", "1")],
    )
    .await;
    alice
        .send(&format!(
            "<message to='{r}'><x xmlns='{USER}'><invite to='bob@localhost'><reason>Join us</reason></invite></x></message>"
        ))
        .await;
    let inv = until(&mut bob, |e| e.name() == "message").await;
    assert_eq!(inv.attr("from"), Some(r.as_str()));
    let invite = inv
        .get_child("x", USER)
        .and_then(|x| x.get_child("invite", USER))
        .unwrap();
    assert_eq!(invite.attr("from"), Some("alice@localhost/r"));
    assert_eq!(invite.get_child("reason", USER).unwrap().text(), "Join us");
    // Invited into a members-only room by its owner: a member now.
    join(&mut bob, &r, "Bob", "").await;
    // A decline goes back to the inviter, from the room.
    let mut carol = login(&server, "carol", "r").await;
    carol
        .send(&format!(
            "<message to='{r}'><x xmlns='{USER}'><decline to='alice@localhost/r'><reason>Busy</reason></decline></x></message>"
        ))
        .await;
    let d = until(&mut alice, |e| {
        e.name() == "message"
            && e.get_child("x", USER)
                .is_some_and(|x| x.get_child("decline", USER).is_some())
    })
    .await;
    let decline = d
        .get_child("x", USER)
        .unwrap()
        .get_child("decline", USER)
        .unwrap();
    assert_eq!(decline.attr("from"), Some("carol@localhost"));
    // Bob, a mere member, may not invite here (allowinvites is off).
    bob.send(&format!(
        "<message to='{r}'><x xmlns='{USER}'><invite to='carol@localhost'/></x></message>"
    ))
    .await;
    assert_eq!(message_error(&mut bob).await, "forbidden");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_sends_everyone_to_the_alternate_venue() {
    let server = server("muc-destroy").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let r = room("old");
    create(
        &mut alice,
        &r,
        "Alice",
        &[("muc#roomconfig_persistentroom", "1")],
    )
    .await;
    join(&mut bob, &r, "Bob", "").await;
    assert_eq!(
        iq_err(
            &mut bob,
            &r,
            "set",
            &format!("<query xmlns='{OWNER}'><destroy/></query>")
        )
        .await,
        "forbidden"
    );
    iq_ok(
        &mut alice,
        &r,
        "set",
        &format!(
            "<query xmlns='{OWNER}'><destroy jid='new@{SVC}'><reason>Moved</reason></destroy></query>"
        ),
    )
    .await;
    let out = unavailable(&mut bob).await;
    let d = out
        .get_child("x", USER)
        .and_then(|x| x.get_child("destroy", USER))
        .unwrap();
    assert_eq!(d.attr("jid"), Some(format!("new@{SVC}").as_str()));
    assert_eq!(d.get_child("reason", USER).unwrap().text(), "Moved");
    // Gone from storage too: entering creates a new room.
    let got = join(&mut bob, &r, "Bob", "").await;
    assert!(got.iter().any(|e| codes(e).contains(&"201".to_owned())));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_leaves_and_self_pings_say_who_is_in() {
    let server = server("muc-gone").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let r = room("ping");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob", "").await;
    until(&mut alice, |e| from_room(e, &r)).await;
    // XEP-0410: the room answers bob's self-ping; alice (not Bob) pinging
    // Bob's nick is relayed to bob, who answers through the room.
    iq_ok(
        &mut bob,
        &format!("{r}/Bob"),
        "get",
        "<ping xmlns='urn:xmpp:ping'/>",
    )
    .await;
    alice
        .send(&format!(
            "<iq id='p1' to='{r}/Bob' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    let relayed = until(&mut bob, |e| e.name() == "iq").await;
    assert_eq!(relayed.attr("from"), Some(format!("{r}/Alice").as_str()));
    bob.send(&format!(
        "<iq id='{}' to='{r}/Alice' type='result'/>",
        relayed.attr("id").unwrap()
    ))
    .await;
    let answer = until(&mut alice, |e| {
        e.name() == "iq" && e.attr("id") == Some("p1")
    })
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    assert_eq!(answer.attr("from"), Some(format!("{r}/Bob").as_str()));
    // Bob's connection dies without a word: he leaves, with 333.
    bob.drop_connection();
    let left = unavailable(&mut alice).await;
    assert_eq!(left.attr("from"), Some(format!("{r}/Bob").as_str()));
    assert!(codes(&left).contains(&"333".to_owned()));
    // Not joined any more: a self-ping says so.
    let mut bob = login(&server, "bob", "r2").await;
    assert_eq!(
        iq_err(
            &mut bob,
            &format!("{r}/Bob"),
            "get",
            "<ping xmlns='urn:xmpp:ping'/>"
        )
        .await,
        "not-acceptable"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_room_comes_back_after_a_restart_and_is_listed() {
    let mut config = muc_config("muc-persist");
    let dir = config.server.data_dir.clone();
    let server = start(config.clone()).await;
    for u in ["alice", "bob"] {
        add_user(&server, u, &format!("{u}-secret")).await;
    }
    let mut alice = login(&server, "alice", "r").await;
    let r = room("kept");
    create(
        &mut alice,
        &r,
        "Alice",
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_roomname", "Kept room"),
            ("muc#roomconfig_membersonly", "1"),
        ],
    )
    .await;
    iq_ok(
        &mut alice,
        &r,
        "set",
        &format!("<query xmlns='{ADMIN}'><item affiliation='member' jid='bob@localhost'/></query>"),
    )
    .await;
    // A temporary one, which the list does not keep after a restart.
    create(&mut alice, &room("fleeting"), "Alice", &[]).await;
    let items = iq_ok(
        &mut alice,
        SVC,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    )
    .await;
    assert!(items.to_xml().contains("Kept room"), "{}", items.to_xml());
    assert!(items.to_xml().contains("fleeting@"), "{}", items.to_xml());
    drop(alice);
    // A graceful stop: the rooms finish their writes first.
    server.shutdown(Duration::from_secs(5)).await;
    server.wait().await;
    config.server.data_dir = dir;
    let server = start(config).await;
    let mut bob = login(&server, "bob", "r").await;
    // The configuration and the member list survived.
    let got = join(&mut bob, &r, "Bob", "").await;
    assert!(!got.iter().any(|e| codes(e).contains(&"201".to_owned())));
    let items = iq_ok(
        &mut bob,
        SVC,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#items'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set></query>",
    )
    .await;
    let xml = items.to_xml();
    assert!(xml.contains("Kept room"), "{xml}");
    assert!(!xml.contains("fleeting@"), "{xml}");
    assert!(xml.contains("<count>1</count>"), "{xml}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_room_actor_keeps_its_occupants_and_messages() {
    let server = server("muc-kill").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let r = room("chaos");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob", "").await;
    let path = format!("root/modules/muc/{r}");
    assert!(
        server.registry.lookup(&path).is_some(),
        "the room is in the tree by name"
    );
    let mut actor = server.registry.lookup(&path).unwrap().get_id();
    // Messages in flight while the actor is killed, several times.
    for round in 0..3 {
        for n in 0..10 {
            say(&mut alice, &r, &format!("m{round}-{n}")).await;
        }
        server.registry.kill(&path, StopMode::Kill).unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || server
                .registry
                .lookup(&path)
                .is_some_and(|a| a.get_id() != actor))
            .await,
            "the room came back"
        );
        actor = server.registry.lookup(&path).unwrap().get_id();
    }
    // Bob heard every message once, in order, and the room still knows
    // both occupants.
    let mut bodies = Vec::new();
    while bodies.len() < 30 {
        let e = until(&mut bob, |e| e.name() == "message").await;
        if let Some(b) = body_of(&e) {
            bodies.push(b);
        }
    }
    let expected: Vec<String> = (0..3)
        .flat_map(|round| (0..10).map(move |n| format!("m{round}-{n}")))
        .collect();
    assert_eq!(bodies, expected);
    say(&mut bob, &r, "after").await;
    heard(&mut alice, "after").await;
    let m = heard(&mut bob, "after").await;
    assert_eq!(m.attr("from"), Some(format!("{r}/Bob").as_str()));
    // The archive has each message once, in order.
    let (results, _) = archive(&mut bob, &r, "").await;
    let archived: Vec<String> = results.iter().filter_map(body_of).collect();
    let mut all = expected.clone();
    all.push("after".into());
    assert_eq!(archived, all);
    server.stop();
}

/// A XEP-0313 query of `room`'s archive: the archived messages' bodies and
/// the `<fin/>`.
async fn archive(c: &mut XmppClient, room: &str, form: &str) -> (Vec<Element>, Element) {
    let id = format!("q{}", IDS.fetch_add(1, Ordering::Relaxed));
    c.send(&format!(
        "<iq id='{id}' to='{room}' type='set'><query xmlns='urn:xmpp:mam:2' queryid='{id}'>{form}</query></iq>"
    ))
    .await;
    let mut results = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            assert_eq!(e.attr("type"), Some("result"), "{}", e.to_xml());
            let fin = e.get_child("fin", "urn:xmpp:mam:2").unwrap().clone();
            return (results, fin);
        }
        if let Some(r) = e.get_child("result", "urn:xmpp:mam:2") {
            assert_eq!(e.attr("from"), Some(room), "results come from the room");
            assert_eq!(r.attr("queryid"), Some(id.as_str()));
            let m = r
                .get_child("forwarded", "urn:xmpp:forward:0")
                .and_then(|f| f.get_child("message", "jabber:client"))
                .unwrap()
                .clone();
            results.push(m);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_archives_what_is_said_while_logging_is_on() {
    let server = server("muc-mam").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let r = room("log");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob", "").await;
    // Logging is on by default, and disco says so (XEP-0313 §6.1).
    let info = iq_ok(
        &mut bob,
        &r,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    assert!(
        info.to_xml().contains("urn:xmpp:mam:2"),
        "{}",
        info.to_xml()
    );
    say(&mut alice, &r, "one").await;
    heard(&mut bob, "one").await;
    say(&mut bob, &r, "two").await;
    let sent = heard(&mut bob, "two").await;
    let sid = sent
        .get_child("stanza-id", "urn:xmpp:sid:0")
        .and_then(|s| s.attr("id"))
        .unwrap()
        .to_owned();
    // Read-your-writes: the archive has both at once, in order, with the
    // stanza-ids the room stamped.
    let (results, fin) = archive(&mut bob, &r, "").await;
    let bodies: Vec<String> = results.iter().filter_map(body_of).collect();
    assert_eq!(bodies, ["one", "two"]);
    assert_eq!(results[1].attr("from"), Some(format!("{r}/Bob").as_str()));
    assert!(results[1].to_xml().contains(&sid));
    assert_eq!(fin.attr("complete"), Some("true"));
    // 'with' as room/nick: one sender's messages.
    let (by_alice, _) = archive(
        &mut bob,
        &r,
        &format!(
            "<x xmlns='{DATA}' type='submit'>{}{}</x>",
            field("FORM_TYPE", "urn:xmpp:mam:2"),
            field("with", &format!("{r}/Alice"))
        ),
    )
    .await;
    assert_eq!(
        by_alice.iter().filter_map(body_of).collect::<Vec<_>>(),
        ["one"]
    );
    // §5: the metadata names the last message.
    let md = iq_ok(&mut bob, &r, "get", "<metadata xmlns='urn:xmpp:mam:2'/>").await;
    let end = md
        .get_child("metadata", "urn:xmpp:mam:2")
        .and_then(|m| m.get_child("end", "urn:xmpp:mam:2"))
        .and_then(|e| e.attr("id"))
        .unwrap()
        .to_owned();
    assert_eq!(end, sid);
    // §8.4: a sender's own muc#user <x/> (a claimed real JID) is stripped.
    bob.send(&format!(
        "<message to='{r}' type='groupchat'><body>forged</body>\
         <x xmlns='{USER}'><item jid='admin@localhost/x' role='moderator'/></x></message>"
    ))
    .await;
    let forged = heard(&mut alice, "forged").await;
    assert!(forged.get_child("x", USER).is_none(), "{}", forged.to_xml());
    // Logging off: what is said is not kept.
    iq_ok(
        &mut alice,
        &r,
        "set",
        &config(&[("muc#roomconfig_enablelogging", "0")]),
    )
    .await;
    say(&mut alice, &r, "off the record").await;
    heard(&mut bob, "off the record").await;
    let (results, _) = archive(&mut bob, &r, "").await;
    assert_eq!(results.len(), 3);
    assert!(results[2].get_child("x", USER).is_none());
    // A members-only room's archive is for its members.
    iq_ok(
        &mut alice,
        &r,
        "set",
        &config(&[("muc#roomconfig_membersonly", "1")]),
    )
    .await;
    let mut carol = login(&server, "carol", "r").await;
    assert_eq!(
        iq_err(&mut carol, &r, "set", "<query xmlns='urn:xmpp:mam:2'/>").await,
        "forbidden"
    );
    server.stop();
}

/// Runs `chorusctl` against the server; its standard output.
async fn chorusctl(server: &chorus_server::Server, args: &[&str]) -> String {
    let socket = server.admin_socket.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::common::chorusctl_bin())
            .arg("--socket")
            .arg(&socket)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chorusctl_lists_creates_inspects_and_destroys_rooms() {
    let server = server("muc-ctl").await;
    let r = room("ops");
    let out = chorusctl(&server, &["muc", "create", &r, "alice@localhost"]).await;
    assert!(out.contains("created"), "{out}");
    // The owner finds it configured, persistent, and hers.
    let mut alice = login(&server, "alice", "r").await;
    let got = join(&mut alice, &r, "Alice", "").await;
    let me = got.iter().find(|e| from_room(e, &r)).unwrap();
    assert!(
        !codes(me).contains(&"201".to_owned()),
        "not created by joining"
    );
    assert_eq!(item(me).attr("affiliation"), Some("owner"));
    let out = chorusctl(&server, &["muc", "list"]).await;
    assert!(
        out.contains(&r) && out.contains("persistent") && out.contains("live"),
        "{out}"
    );
    let out = chorusctl(&server, &["muc", "info", &r]).await;
    assert!(out.contains("alice@localhost\towner"), "{out}");
    assert!(
        out.contains("Alice\tmoderator\towner\talice@localhost/r"),
        "{out}"
    );
    // The tree shows the room by name.
    let out = chorusctl(&server, &["actors", "tree"]).await;
    assert!(out.contains(&r), "{out}");
    // Destroyed: alice is sent out with the reason, and it is gone.
    let out = chorusctl(&server, &["muc", "destroy", &r, "--reason", "Closing"]).await;
    assert!(out.contains("destroyed"), "{out}");
    let left = until(&mut alice, |e| {
        from_room(e, &r) && e.attr("type") == Some("unavailable")
    })
    .await;
    assert!(left.to_xml().contains("Closing"), "{}", left.to_xml());
    let out = chorusctl(&server, &["muc", "list"]).await;
    assert!(!out.contains(&r), "{out}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderators_retract_any_message_and_occupants_their_own() {
    let server = server("muc-retract").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let r = room("retract");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob", "").await;
    let sid = |m: &Element| {
        m.get_child("stanza-id", "urn:xmpp:sid:0")
            .and_then(|s| s.attr("id"))
            .unwrap()
            .to_owned()
    };
    say(&mut bob, &r, "spam").await;
    let spam = sid(&heard(&mut alice, "spam").await);
    say(&mut bob, &r, "oops").await;
    let oops = sid(&heard(&mut alice, "oops").await);
    heard(&mut bob, "oops").await;
    // XEP-0424: alice may not retract bob's message as an occupant...
    alice
        .send(&format!(
            "<message to='{r}' type='groupchat'><retract xmlns='urn:xmpp:message-retract:1' id='{oops}'/>\
             <body>retracted</body></message>"
        ))
        .await;
    assert_eq!(message_error(&mut alice).await, "forbidden");
    // ...bob may, and everyone sees it.
    bob.send(&format!(
        "<message to='{r}' type='groupchat' id='r1'><retract xmlns='urn:xmpp:message-retract:1' id='{oops}'/>\
         <body>I retracted a message</body></message>"
    ))
    .await;
    let seen = until(&mut alice, |e| {
        e.get_child("retract", "urn:xmpp:message-retract:1")
            .is_some()
    })
    .await;
    assert_eq!(seen.attr("from"), Some(format!("{r}/Bob").as_str()));
    // XEP-0425: bob is no moderator; alice is.
    let moderate = format!(
        "<moderate xmlns='urn:xmpp:message-moderate:1' id='{spam}'>\
         <retract xmlns='urn:xmpp:message-retract:1'/><reason>Spam</reason></moderate>"
    );
    assert_eq!(iq_err(&mut bob, &r, "set", &moderate).await, "forbidden");
    assert_eq!(
        iq_err(
            &mut alice,
            &r,
            "set",
            "<moderate xmlns='urn:xmpp:message-moderate:1' id='nope'>\
             <retract xmlns='urn:xmpp:message-retract:1'/></moderate>"
        )
        .await,
        "item-not-found"
    );
    alice
        .send(&format!(
            "<iq id='mod1' to='{r}' type='set'>{moderate}</iq>"
        ))
        .await;
    let b = until(&mut bob, |e| {
        e.name() == "message"
            && e.get_child("retract", "urn:xmpp:message-retract:1")
                .is_some()
    })
    .await;
    let retract = b
        .get_child("retract", "urn:xmpp:message-retract:1")
        .unwrap();
    assert_eq!(retract.attr("id"), Some(spam.as_str()));
    assert_eq!(b.attr("from"), Some(r.as_str()));
    let moderated = retract
        .get_child("moderated", "urn:xmpp:message-moderate:1")
        .unwrap();
    assert_eq!(moderated.attr("by"), Some(format!("{r}/Alice").as_str()));
    assert_eq!(
        retract
            .get_child("reason", "urn:xmpp:message-retract:1")
            .unwrap()
            .text(),
        "Spam"
    );
    let answer = until(&mut alice, |e| e.attr("id") == Some("mod1")).await;
    assert_eq!(answer.attr("type"), Some("result"));
    // The archive keeps tombstones in their places.
    let (results, _) = archive(&mut bob, &r, "").await;
    let spam_kept = results.iter().find(|m| m.to_xml().contains(&spam)).unwrap();
    assert!(body_of(spam_kept).is_none(), "{}", spam_kept.to_xml());
    assert!(spam_kept
        .get_child("retracted", "urn:xmpp:message-retract:1")
        .is_some());
    let oops_kept = results.iter().find(|m| m.to_xml().contains(&oops)).unwrap();
    assert!(body_of(oops_kept).is_none(), "{}", oops_kept.to_xml());
    // Latecomers get no retracted message in the history.
    let mut carol = login(&server, "carol", "r").await;
    let got = join(&mut carol, &r, "Carol", "").await;
    let bodies: Vec<String> = got.iter().filter_map(body_of).collect();
    assert!(!bodies.contains(&"spam".to_owned()) && !bodies.contains(&"oops".to_owned()));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_nick_makes_a_member_and_is_kept_for_its_owner() {
    let server = server("muc-register").await;
    let mut alice = login(&server, "alice", "r").await;
    let mut bob = login(&server, "bob", "r").await;
    let mut carol = login(&server, "carol", "r").await;
    let r = room("club2");
    create(&mut alice, &r, "Alice", &[]).await;
    // §7.10: the form, then a registration.
    let form = iq_ok(&mut bob, &r, "get", "<query xmlns='jabber:iq:register'/>").await;
    assert!(
        form.to_xml().contains("muc#register_roomnick"),
        "{}",
        form.to_xml()
    );
    iq_ok(
        &mut bob,
        &r,
        "set",
        &format!(
            "<query xmlns='jabber:iq:register'><x xmlns='{DATA}' type='submit'>{}{}</x></query>",
            field("FORM_TYPE", "http://jabber.org/protocol/muc#register"),
            field("muc#register_roomnick", "Bobby")
        ),
    )
    .await;
    // A member now: in, and the nick is his (§7.12).
    let info = iq_ok(
        &mut bob,
        &r,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>",
    )
    .await;
    assert!(info.to_xml().contains("Bobby"), "{}", info.to_xml());
    let again = iq_ok(&mut bob, &r, "get", "<query xmlns='jabber:iq:register'/>").await;
    assert!(again.to_xml().contains("registered"), "{}", again.to_xml());
    let members = iq_ok(
        &mut alice,
        &r,
        "get",
        &format!("<query xmlns='{ADMIN}'><item affiliation='member'/></query>"),
    )
    .await;
    assert!(
        members.to_xml().contains("bob@localhost"),
        "{}",
        members.to_xml()
    );
    // Someone else may not take it.
    assert_eq!(join_refused(&mut carol, &r, "Bobby", "").await, "conflict");
    assert_eq!(
        iq_err(
            &mut carol,
            &r,
            "set",
            &format!(
                "<query xmlns='jabber:iq:register'><x xmlns='{DATA}' type='submit'>{}</x></query>",
                field("muc#register_roomnick", "Bobby")
            )
        )
        .await,
        "conflict"
    );
    join(&mut bob, &r, "Bobby", "").await;
    // Where membership keeps people out, registering does not make one.
    let closed = room("closed");
    create(
        &mut alice,
        &closed,
        "Alice",
        &[("muc#roomconfig_membersonly", "1")],
    )
    .await;
    assert_eq!(
        iq_err(
            &mut carol,
            &closed,
            "set",
            &format!(
                "<query xmlns='jabber:iq:register'><x xmlns='{DATA}' type='submit'>{}</x></query>",
                field("muc#register_roomnick", "Carol")
            )
        )
        .await,
        "not-allowed"
    );
    server.stop();
}
