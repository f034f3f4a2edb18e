//! A bound session: resource binding and its conflicts and limits, routing
//! between local sessions with the RFC's answers for the undeliverable,
//! spoofed senders, and what killing actors or a client that never reads
//! does to routes and to everyone else.

use super::*;

#[tokio::test]
async fn bind_generates_a_resource_when_none_is_requested() {
    let server = server_with_users("genres").await;
    let (_c, jid) =
        XmppClient::login(server.first_addr().unwrap(), "alice", "wonderland", None).await;
    assert!(
        jid.starts_with("alice@localhost/") && jid.len() > "alice@localhost/".len(),
        "{jid}"
    );
    assert_eq!(server.sessions.len(), 1);
    server.stop();
}

#[tokio::test]
async fn binding_a_bound_resource_replaces_the_old_session_with_conflict() {
    let server = server_with_users("conflict").await;
    let addr = server.first_addr().unwrap();
    let (mut old, _) = XmppClient::login(addr, "alice", "wonderland", Some("desk")).await;
    let (mut new, jid) = XmppClient::login(addr, "alice", "wonderland", Some("desk")).await;
    assert_eq!(jid, "alice@localhost/desk");
    assert_eq!(old.expect_stream_error().await, "conflict");
    // The new session is the one that receives.
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    bob.send("<message to='alice@localhost/desk' id='m1'><body>hi</body></message>")
        .await;
    let m = new.expect("message").await;
    assert_eq!(m.attr("from"), Some("bob@localhost/b"));
    server.stop();
}

#[tokio::test]
async fn resource_cap_is_resource_constraint() {
    let mut cfg = test_config("cap");
    cfg.c2s.max_resources = 2;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    let addr = server.first_addr().unwrap();
    let (_a, _) = XmppClient::login(addr, "alice", "wonderland", Some("one")).await;
    let (_b, _) = XmppClient::login(addr, "alice", "wonderland", Some("two")).await;
    let mut c = XmppClient::connect(addr).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    c.scram(Mechanism::ScramSha256, "alice", "wonderland", None)
        .await
        .unwrap();
    c.open().await;
    assert_eq!(
        c.bind(Some("three")).await.unwrap_err(),
        "resource-constraint"
    );
    server.stop();
}

#[tokio::test]
async fn stanza_before_bind_is_not_authorized() {
    let server = server_with_users("prebind").await;
    let (mut c, _) = tls_client(server.first_addr().unwrap()).await;
    c.scram(Mechanism::ScramSha256, "alice", "wonderland", None)
        .await
        .unwrap();
    c.open().await;
    c.send("<message to='bob@localhost'><body>too early</body></message>")
        .await;
    assert_eq!(c.expect_stream_error().await, "not-authorized");
    server.stop();
}

#[tokio::test]
async fn messages_route_to_full_and_bare_jids_with_stamped_from() {
    let server = server_with_users("route").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob_hi, _) = XmppClient::login(addr, "bob", "builder", Some("hi")).await;
    let (mut bob_lo, _) = XmppClient::login(addr, "bob", "builder", Some("lo")).await;
    bob_hi
        .send("<presence><priority>5</priority></presence>")
        .await;
    bob_lo
        .send("<presence><priority>1</priority></presence>")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    alice
        .send("<message to='bob@localhost/lo' type='chat' id='1'><body>to lo</body></message>")
        .await;
    let m = bob_lo.expect("message").await;
    assert_eq!(m.attr("from"), Some("alice@localhost/a"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "to lo"
    );

    // RFC 6121 §8.5.2.1.1: bare JID -> highest priority resource.
    alice
        .send("<message to='bob@localhost' type='chat' id='2'><body>to bare</body></message>")
        .await;
    let m = bob_hi.expect("message").await;
    assert_eq!(m.attr("id"), Some("2"));

    // A claimed 'from' of our own bare JID is accepted and re-stamped.
    alice
        .send(
            "<message from='alice@localhost' to='bob@localhost/hi' id='3'><body>x</body></message>",
        )
        .await;
    assert_eq!(
        bob_hi.expect("message").await.attr("from"),
        Some("alice@localhost/a")
    );

    // An IQ to a full JID is delivered; the answer comes back.
    alice
        .send("<iq to='bob@localhost/hi' type='get' id='q1'><query xmlns='urn:example'/></iq>")
        .await;
    let iq = bob_hi.expect("iq").await;
    assert_eq!(iq.attr("from"), Some("alice@localhost/a"));
    bob_hi
        .send("<iq to='alice@localhost/a' type='result' id='q1'/>")
        .await;
    let r = alice.expect("iq").await;
    assert_eq!(
        (r.attr("type"), r.attr("from")),
        (Some("result"), Some("bob@localhost/hi"))
    );
    server.stop();
}

#[tokio::test]
async fn undeliverable_stanzas_get_the_rfc_answers() {
    let server = server_with_users("undeliv").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;

    // §8.5.1: no such user.
    alice
        .send("<message to='nobody@localhost' type='chat' id='1'><body>x</body></message>")
        .await;
    let e = alice.expect("message").await;
    assert_eq!(
        (e.attr("type"), e.attr("from")),
        (Some("error"), Some("nobody@localhost"))
    );
    assert_eq!(stanza_error_condition(&e), "service-unavailable");

    // §8.5.3.2.2: IQ to an unavailable resource.
    alice
        .send("<iq to='bob@localhost/gone' type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(
        stanza_error_condition(&alice.expect("iq").await),
        "service-unavailable"
    );

    // Remote domain without server-to-server.
    alice
        .send("<message to='x@elsewhere.example' id='3'><body>x</body></message>")
        .await;
    assert_eq!(
        stanza_error_condition(&alice.expect("message").await),
        "remote-server-not-found"
    );

    // Malformed JID.
    alice
        .send("<message to='a@b@c' id='4'><body>x</body></message>")
        .await;
    assert_eq!(
        stanza_error_condition(&alice.expect("message").await),
        "jid-malformed"
    );

    // The server answers ping, and service-unavailable for the unknown.
    alice
        .send("<iq to='localhost' type='get' id='5'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let r = alice.expect("iq").await;
    assert_eq!((r.attr("type"), r.attr("id")), (Some("result"), Some("5")));
    alice
        .send("<iq type='get' id='6'><query xmlns='urn:example:unknown'/></iq>")
        .await;
    assert_eq!(
        stanza_error_condition(&alice.expect("iq").await),
        "service-unavailable"
    );

    // §8.2.3: an IQ request carries exactly one payload.
    alice.send("<iq to='localhost' type='get' id='7'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>").await;
    assert_eq!(
        stanza_error_condition(&alice.expect("iq").await),
        "bad-request"
    );
    alice.send("<iq to='localhost' type='get' id='8'/>").await;
    assert_eq!(
        stanza_error_condition(&alice.expect("iq").await),
        "bad-request"
    );

    // An error is never answered with an error (§8.3.1): nothing comes back,
    // and the next ping is the next thing we read.
    alice
        .send("<message to='nobody@localhost' type='error' id='9'/>")
        .await;
    alice
        .send("<iq to='localhost' type='get' id='10'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(alice.expect("iq").await.attr("id"), Some("10"));
    server.stop();
}

#[tokio::test]
async fn spoofed_from_is_invalid_from() {
    let server = server_with_users("spoof").await;
    let (mut alice, _) = XmppClient::login(
        server.first_addr().unwrap(),
        "alice",
        "wonderland",
        Some("a"),
    )
    .await;
    alice
        .send("<message from='bob@localhost/b' to='alice@localhost'><body>x</body></message>")
        .await;
    assert_eq!(alice.expect_stream_error().await, "invalid-from");
    server.stop();
}

#[tokio::test]
async fn killing_c2s_removes_its_routes_within_a_second() {
    let server = server_with_users("killroute").await;
    let addr = server.first_addr().unwrap();
    let (_alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    assert_eq!(server.sessions.len(), 2);
    let path = server
        .registry
        .paths_matching("root/listeners/*/conns/*/c2s")
        .into_iter()
        .next()
        .unwrap();
    server.registry.kill(&path, StopMode::Kill).unwrap();
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    // The survivor gets service-unavailable for the dead resource.
    bob.send("<iq to='alice@localhost/a' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let r = bob.expect("iq").await;
    assert_eq!(stanza_error_condition(&r), "service-unavailable");
    server.stop();
}

#[tokio::test]
async fn killing_sessions_disconnects_nobody() {
    let server = server_with_users("killsessions").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    let old = server.registry.lookup("root/sessions").unwrap().get_id();
    server
        .registry
        .kill("root/sessions", StopMode::Kill)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .lookup("root/sessions")
            .is_some_and(|c| c.get_id() != old))
        .await
    );
    alice
        .send("<message to='bob@localhost/b' id='after'><body>still here</body></message>")
        .await;
    assert_eq!(bob.expect("message").await.attr("id"), Some("after"));
    // And binding still works through the restarted actor.
    let (_c, jid) = XmppClient::login(addr, "alice", "wonderland", Some("second")).await;
    assert_eq!(jid, "alice@localhost/second");
    let _ = &mut alice;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_others_go_on() {
    let mut cfg = test_config("slowreader");
    cfg.limits.max_outbound_stanzas = 64;
    cfg.limits.max_outbound_bytes = 64 * 1024;
    cfg.c2s.write_timeout_secs = 1;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (_bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    // Bob never reads again. Alice floods him with 20 MB of messages, more
    // than the loopback socket buffers on both sides can absorb. Headlines,
    // so that once Bob is gone they are dropped (RFC 6121 §8.5.2.2.1) rather
    // than bounced to Alice, who is not reading either.
    // The flood stops once he is cut off, so that what Alice still has in
    // flight does not delay her ping below.
    let body = "x".repeat(4000);
    for i in 0..5000 {
        if i % 100 == 0 && server.sessions.len() == 1 {
            break;
        }
        alice
            .send(&format!(
                "<message to='bob@localhost/b' type='headline' id='f{i}'><body>{body}</body></message>"
            ))
            .await;
    }
    // Bob's connection is dropped once his queue overflows or a write stalls.
    assert!(
        wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await,
        "the slow reader was cut off"
    );
    // Alice's session is untouched and still answered, after the errors
    // for what was still queued for Bob (if any came back to her).
    alice
        .send("<iq to='localhost' type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let e = loop {
        let e = alice.next_element().await;
        if e.name() == "message" && e.attr("type") == Some("error") {
            continue;
        }
        if e.name() != "presence" {
            break e;
        }
    };
    assert_eq!(e.name(), "iq", "{}", e.to_xml());
    assert_eq!(e.attr("id"), Some("alive"));
    server.stop();
}

#[tokio::test]
async fn a_legacy_session_after_binding_is_answered() {
    // RFC 6121 Appendix E: <session><optional/> is advertised; Strophe.js
    // (Converse.js) still sends the IQ after binding, and fails the login
    // on an error.
    let server = server_with_users("legacy-session").await;
    let (mut c, _) =
        XmppClient::authenticate(server.first_addr().unwrap(), "alice", "wonderland").await;
    c.bind(Some("r")).await.unwrap();
    c.send("<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        .await;
    let r = c.expect("iq").await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    assert_eq!(r.attr("id"), Some("sess"));
    c.send("<iq type='set' id='s2' to='localhost'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        .await;
    assert_eq!(c.expect("iq").await.attr("type"), Some("result"));
    server.stop();
}
