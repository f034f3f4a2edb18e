//! Hostile stanzas from an authenticated client (RFC 6120 §8): a spoofed
//! `from` ends the stream (`invalid-from`, §4.9.3.9, §8.1.2.1); everything
//! else is a stanza error and the stream goes on: malformed addresses
//! (`jid-malformed`, §8.3.3.8), IQs without an id or with two payloads
//! (`bad-request`, §8.2.3), payloads nobody serves (`service-unavailable`,
//! §8.3.3.19). An error is never answered with an error (§8.3.1), and
//! binding a resource already bound replaces the old session with
//! `conflict` (§7.7.2.2).

use super::*;
use crate::common::client::stanza_error_condition;

/// Stanzas an attacker pipelines in one go; each gets its answer.
const REPEAT: usize = 200;

async fn attacker(a: &Arena, resource: &str) -> XmppClient {
    let (c, _) = XmppClient::login(a.addr(), "eve", PASSWORD, Some(resource)).await;
    c
}

/// Sends all of `stanzas` at once, then reads one answer per stanza.
async fn pipelined(c: &mut XmppClient, stanzas: &[String]) -> Vec<chorus_xml::Element> {
    c.send(&stanzas.concat()).await;
    let mut out = Vec::with_capacity(stanzas.len());
    while out.len() < stanzas.len() {
        let e = c.next_element().await;
        // Presence broadcasts (the attacker's own) are not answers.
        if e.name() != "presence" || e.attr("type") == Some("error") {
            out.push(e);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_from_is_invalid_from() {
    let mut a = Arena::start("hostile-from", "", &["eve"]).await;
    a.mark();
    for (i, from) in [
        "good@localhost/watch",
        "good@localhost",
        "localhost",
        "eve@localhost/another-resource",
        "eve@elsewhere.example",
        "a@b@c",
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = attacker(&a, &format!("spoof{i}")).await;
        c.send(&format!(
            "<message from='{from}' to='good@localhost/watch'><body>spoofed</body></message>"
        ))
        .await;
        assert_eq!(c.expect_stream_error().await, "invalid-from", "{from}");
    }
    // Claiming one's own full or bare JID is allowed (§8.1.2.1).
    let mut c = attacker(&a, "honest").await;
    c.send("<iq from='eve@localhost/honest' type='get' id='own' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(c.expect("iq").await.attr("type"), Some("result"));
    // None of the spoofed messages reached the good session.
    a.ping().await;
    a.finish(1, MEM_BOUND_KIB).await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jids_in_to_are_jid_malformed() {
    let mut a = Arena::start("hostile-jid", "", &["eve"]).await;
    let mut c = attacker(&a, "r").await;
    a.mark();
    let long_local = "l".repeat(1024);
    let long_res = "r".repeat(1024);
    let bad = [
        "a@b@c".to_owned(),
        "@localhost".to_owned(),
        "user@".to_owned(),
        "user@localhost/".to_owned(),
        "us er@localhost".to_owned(),
        "user@local host".to_owned(),
        "user@[::1".to_owned(),
        format!("{long_local}@localhost"),
        format!("user@localhost/{long_res}"),
        "user@.localhost".to_owned(),
    ];
    let mut stanzas = Vec::new();
    for i in 0..REPEAT {
        let to = &bad[i % bad.len()];
        stanzas.push(match i % 3 {
            0 => format!("<message to='{to}' id='m{i}'><body>x</body></message>"),
            1 => format!("<iq to='{to}' type='get' id='m{i}'><ping xmlns='urn:xmpp:ping'/></iq>"),
            _ => format!("<presence to='{to}' type='subscribe' id='m{i}'/>"),
        });
    }
    let answers = pipelined(&mut c, &stanzas).await;
    for (i, e) in answers.iter().enumerate() {
        assert_eq!(
            e.attr("id"),
            Some(format!("m{i}").as_str()),
            "{}",
            e.to_xml()
        );
        assert_eq!(e.attr("type"), Some("error"), "{}", e.to_xml());
        assert_eq!(stanza_error_condition(e), "jid-malformed", "{}", e.to_xml());
    }
    a.ping().await;
    a.finish(1, MEM_BOUND_KIB).await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_without_id_is_bad_request() {
    let mut a = Arena::start("hostile-iq-noid", "", &["eve"]).await;
    let mut c = attacker(&a, "r").await;
    a.mark();
    let stanzas: Vec<String> = (0..REPEAT)
        .map(|i| match i % 3 {
            0 => "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>".to_owned(),
            1 => "<iq type='get' to='good@localhost/watch'><ping xmlns='urn:xmpp:ping'/></iq>"
                .to_owned(),
            _ => "<iq type='set'><query xmlns='jabber:iq:roster'/></iq>".to_owned(),
        })
        .collect();
    let answers = pipelined(&mut c, &stanzas).await;
    for e in &answers {
        // §8.3.1: the reply carries the request's id, here none.
        assert_eq!(
            (e.name(), e.attr("type"), e.attr("id")),
            ("iq", Some("error"), None),
            "{}",
            e.to_xml()
        );
        assert_eq!(stanza_error_condition(e), "bad-request", "{}", e.to_xml());
    }
    // The stream goes on, and nothing reached the good session.
    c.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(c.expect("iq").await.attr("id"), Some("after"));
    a.ping().await;
    a.finish(1, MEM_BOUND_KIB).await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_with_two_payloads_is_bad_request() {
    let mut a = Arena::start("hostile-iq-two", "", &["eve"]).await;
    let mut c = attacker(&a, "r").await;
    a.mark();
    let stanzas: Vec<String> = (0..REPEAT)
        .map(|i| match i % 3 {
            0 => format!("<iq type='get' id='t{i}' to='localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>"),
            1 => format!("<iq type='get' id='t{i}' to='good@localhost/watch'><ping xmlns='urn:xmpp:ping'/><query xmlns='jabber:iq:version'/></iq>"),
            // No payload at all.
            _ => format!("<iq type='set' id='t{i}'/>"),
        })
        .collect();
    let answers = pipelined(&mut c, &stanzas).await;
    for (i, e) in answers.iter().enumerate() {
        assert_eq!(
            (e.name(), e.attr("type"), e.attr("id")),
            ("iq", Some("error"), Some(format!("t{i}").as_str())),
            "{}",
            e.to_xml()
        );
        assert_eq!(stanza_error_condition(e), "bad-request", "{}", e.to_xml());
    }
    a.ping().await;
    a.finish(1, MEM_BOUND_KIB).await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_iq_payload_is_service_unavailable() {
    let mut a = Arena::start("hostile-iq-unknown", "", &["eve"]).await;
    let mut c = attacker(&a, "r").await;
    a.mark();
    let stanzas: Vec<String> = (0..REPEAT)
        .map(|i| match i % 4 {
            0 => format!("<iq type='get' id='u{i}' to='localhost'><query xmlns='urn:example:unknown'/></iq>"),
            1 => format!("<iq type='set' id='u{i}' to='localhost'><x xmlns='urn:example:unknown:{i}'/></iq>"),
            // On the account's behalf (its bare JID), and with no 'to'.
            2 => format!("<iq type='get' id='u{i}' to='eve@localhost'><query xmlns='urn:example:unknown'/></iq>"),
            _ => format!("<iq type='get' id='u{i}'><query xmlns='urn:example:unknown'/></iq>"),
        })
        .collect();
    let answers = pipelined(&mut c, &stanzas).await;
    for (i, e) in answers.iter().enumerate() {
        assert_eq!(
            (e.name(), e.attr("type"), e.attr("id")),
            ("iq", Some("error"), Some(format!("u{i}").as_str())),
            "{}",
            e.to_xml()
        );
        assert_eq!(
            stanza_error_condition(e),
            "service-unavailable",
            "{}",
            e.to_xml()
        );
    }
    a.ping().await;
    a.finish(1, MEM_BOUND_KIB).await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_stanzas_are_never_answered_with_errors() {
    let mut a = Arena::start("hostile-errloop", "", &["eve"]).await;
    let mut c = attacker(&a, "r").await;
    a.mark();
    let err = "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
    let stanzas: Vec<String> = (0..REPEAT)
        .map(|i| match i % 6 {
            // To the server, to nobody, to a resource that is not there:
            // every one of these would bounce if it were not an error.
            0 => format!("<iq type='error' id='e{i}' to='localhost'>{err}</iq>"),
            1 => format!("<message type='error' id='e{i}' to='localhost'>{err}</message>"),
            2 => format!("<message type='error' id='e{i}' to='nobody@localhost'>{err}</message>"),
            3 => format!("<iq type='error' id='e{i}' to='good@localhost/gone'>{err}</iq>"),
            4 => {
                format!("<presence type='error' id='e{i}' to='nobody@localhost/x'>{err}</presence>")
            }
            // A response is not answered either (§8.2.3).
            _ => format!("<iq type='result' id='e{i}' to='localhost'/>"),
        })
        .collect();
    c.send(&stanzas.concat()).await;
    c.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    // The first thing back is the answer to the ping.
    let e = c.expect("iq").await;
    assert_eq!(
        (e.attr("type"), e.attr("id")),
        (Some("result"), Some("after")),
        "{}",
        e.to_xml()
    );
    a.ping().await;
    a.finish(1, MEM_BOUND_KIB).await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_conflict_replaces_the_old_session() {
    let mut a = Arena::start("hostile-conflict", "", &["eve"]).await;
    a.mark();
    // Each new binding of eve/r replaces the previous one (§7.7.2.2).
    let mut old = attacker(&a, "r").await;
    for _ in 0..6 {
        let new = attacker(&a, "r").await;
        assert_eq!(old.expect_stream_error().await, "conflict");
        old = new;
    }
    // One eve session is left, and it works.
    old.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(old.expect("iq").await.attr("id"), Some("alive"));
    // The good session's own resource is not someone else's to take: eve
    // binding "watch" gets her own eve@localhost/watch.
    let (other, jid) = XmppClient::login(a.addr(), "eve", PASSWORD, Some("watch")).await;
    assert_eq!(jid, "eve@localhost/watch");
    assert_eq!(a.counts().1, 3);
    a.ping().await;
    a.finish(2, MEM_BOUND_KIB).await;
    drop((old, other));
}
