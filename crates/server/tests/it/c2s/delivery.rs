//! Delivery beyond the live stream: offline messages (XEP-0160) and their
//! quota, keepalive pings that drop silent clients, and client state
//! indication (XEP-0352) holding back presence for inactive clients.

use super::*;

#[tokio::test]
async fn offline_messages_are_delivered_with_delay_on_next_login_then_deleted() {
    let server = server_with_users("offline").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    alice
        .send("<message to='bob@localhost' type='chat' id='o1'><body>first</body></message>")
        .await;
    // RFC 6121 §8.5.3.2.1: a chat message to a resource that is gone is
    // treated as sent to the bare JID.
    alice
        .send("<message to='bob@localhost/gone' type='chat' id='o2'><body>second</body></message>")
        .await;
    // Not stored: headline, a bare chat state, a no-store hint.
    alice
        .send("<message to='bob@localhost' type='headline' id='h'><body>news</body></message>")
        .await;
    alice
        .send("<message to='bob@localhost' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    alice
        .send("<message to='bob@localhost' type='chat' id='ns'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>")
        .await;
    // Nothing bounced: a ping is the next thing Alice reads.
    alice
        .send("<iq to='localhost' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(alice.expect("iq").await.attr("id"), Some("p"));

    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    for (id, body) in [("o1", "first"), ("o2", "second")] {
        let m = bob.expect("message").await;
        assert_eq!(m.attr("id"), Some(id));
        assert_eq!(m.attr("from"), Some("alice@localhost/a"));
        assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), body);
        let delay = m
            .get_child("delay", "urn:xmpp:delay")
            .expect("XEP-0203 stamp");
        assert_eq!(delay.attr("from"), Some("localhost"));
        assert!(delay.attr("stamp").unwrap().ends_with('Z'));
    }
    bob.send("<iq to='localhost' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(
        bob.expect("iq").await.attr("id"),
        Some("p2"),
        "nothing else was stored"
    );
    drop(bob);
    // Delivered messages are gone: the next login gets none.
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b2")).await;
    bob.send("<iq to='localhost' type='get' id='p3'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(bob.expect("iq").await.attr("id"), Some("p3"));
    server.stop();
}

#[tokio::test]
async fn full_offline_quota_is_service_unavailable() {
    let mut cfg = test_config("quota");
    cfg.offline.quota = 2;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let (mut alice, _) = XmppClient::login(
        server.first_addr().unwrap(),
        "alice",
        "wonderland",
        Some("a"),
    )
    .await;
    for i in 0..3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' id='q{i}'><body>{i}</body></message>"
            ))
            .await;
    }
    let e = alice.expect("message").await;
    assert_eq!((e.attr("id"), e.attr("type")), (Some("q2"), Some("error")));
    assert_eq!(stanza_error_condition(&e), "service-unavailable");
    server.stop();
}

#[tokio::test]
async fn silent_clients_are_pinged_and_dropped_without_an_answer() {
    let mut cfg = test_config("keepalive");
    cfg.c2s.ping_interval_secs = 1;
    cfg.c2s.ping_timeout_secs = 1;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    // Alice answers the server's ping; Bob ignores it.
    let ping = alice.expect("iq").await;
    assert_eq!(
        (ping.attr("type"), ping.attr("from")),
        (Some("get"), Some("localhost"))
    );
    assert!(ping.get_child("ping", "urn:xmpp:ping").is_some());
    alice
        .send(&format!(
            "<iq to='localhost' type='result' id='{}'/>",
            ping.attr("id").unwrap()
        ))
        .await;
    assert_eq!(bob.expect("iq").await.attr("type"), Some("get"));
    assert_eq!(bob.expect_stream_error().await, "connection-timeout");
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    // Alice's session is still there and answers.
    alice
        .send("<iq to='localhost' type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = alice.expect("iq").await;
        if e.attr("id") == Some("still") {
            break;
        }
        // Further keepalive pings may arrive meanwhile; answer them.
        alice
            .send(&format!(
                "<iq to='localhost' type='result' id='{}'/>",
                e.attr("id").unwrap()
            ))
            .await;
    }
    server.stop();
}

#[tokio::test]
async fn inactive_clients_get_latest_presence_only_and_messages_at_once() {
    let server = server_with_users("csi").await;
    add_user(&server, "carol", "c4r0l").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    let (mut carol, _) = XmppClient::login(addr, "carol", "c4r0l", Some("c")).await;
    let features_have_csi = {
        let mut c = XmppClient::connect(addr).await;
        c.open().await;
        c.starttls().await;
        c.open().await;
        c.scram(Mechanism::ScramSha256, "alice", "wonderland", None)
            .await
            .unwrap();
        c.open().await.get_child("csi", "urn:xmpp:csi:0").is_some()
    };
    assert!(
        features_have_csi,
        "XEP-0352 §3: advertised after authentication"
    );

    alice.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    // Alice's <inactive/> is in effect once her next ping is answered.
    alice
        .send("<iq to='localhost' type='get' id='a0'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        if alice.expect("iq").await.attr("id") == Some("a0") {
            break;
        }
    }
    // Directed presence from bob (three updates), then carol (one), is held;
    // each sender's ping orders its presence before the next sender's.
    for show in ["away", "xa", "dnd"] {
        bob.send(&format!(
            "<presence to='alice@localhost/a'><show>{show}</show></presence>"
        ))
        .await;
    }
    bob.send("<iq to='localhost' type='get' id='b1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    bob.expect("iq").await;
    carol
        .send("<presence to='alice@localhost/a'><show>chat</show></presence>")
        .await;
    carol
        .send("<iq to='localhost' type='get' id='c1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    carol.expect("iq").await;
    alice
        .send("<iq to='localhost' type='get' id='a1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    // Nothing from others arrives while inactive (her own presence echo,
    // RFC 6121 §4.2.2, came before she went inactive).
    loop {
        let e = alice.next_element().await;
        if e.name() == "iq" {
            assert_eq!(e.attr("id"), Some("a1"));
            break;
        }
        assert_eq!(e.attr("from"), Some("alice@localhost/a"), "{}", e.to_xml());
    }

    // A message with a body goes out at once, after the held presence,
    // which is the latest per sender only.
    bob.send("<message to='alice@localhost/a' type='chat' id='urgent'><body>now</body></message>")
        .await;
    let mut got = Vec::new();
    loop {
        let e = alice.next_element().await;
        let done = e.name() == "message";
        got.push(e);
        if done {
            break;
        }
    }
    let shows: Vec<String> = got
        .iter()
        .filter(|e| e.name() == "presence")
        .map(|p| p.get_child("show", "jabber:client").unwrap().text())
        .collect();
    assert_eq!(
        shows,
        vec!["dnd", "chat"],
        "latest per contact, in arrival order"
    );
    assert_eq!(got.last().unwrap().attr("id"), Some("urgent"));

    // Held again, then flushed by <active/>.
    bob.send("<presence to='alice@localhost/a'><show>away</show></presence>")
        .await;
    bob.send("<iq to='localhost' type='get' id='b2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    bob.expect("iq").await;
    alice.send("<active xmlns='urn:xmpp:csi:0'/>").await;
    let p = alice.next_element().await;
    assert_eq!(p.name(), "presence");
    assert_eq!(p.get_child("show", "jabber:client").unwrap().text(), "away");
    server.stop();
}
