//! No message twice (XEP-0198 with XEP-0313): each case here used to get
//! the messages its client had already shown back from offline storage at
//! the next login: a clean quit, an archive reader that never acknowledged,
//! a resume timeout, a server shutdown.

use super::*;

impl SmClient {
    /// Reads (answering `<r/>` when `auto_ack` is set) until the server has
    /// asked for an acknowledgement `n` times; false when it did not within
    /// `limit`.
    async fn wait_for_requests(&mut self, n: u32, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.requests < n {
            // next_stanza counts the requests it reads on its way to a
            // stanza; none may follow them.
            match tokio::time::timeout_at(deadline, self.next_stanza()).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return self.requests >= n,
            }
        }
        true
    }
}

/// Alice queries her archive (XEP-0313), as modern clients do at login.
async fn read_archive(c: &mut XmppClient) -> usize {
    c.send(
        "<iq type='set' id='mam'><query xmlns='urn:xmpp:mam:2' queryid='q'>\
         <set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set></query></iq>",
    )
    .await;
    let mut results = 0;
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some("mam") {
            assert_eq!(e.attr("type"), Some("result"), "{}", e.to_xml());
            return results;
        }
        if e.name() == "message" && e.get_child("result", "urn:xmpp:mam:2").is_some() {
            results += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_acks_gets_each_message_once_after_a_clean_quit() {
    let server = server_with("sm-dup-quit", |c| c.c2s.sm_request_ack_after_ms = 200).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", false, None).await;
    alice.auto_ack = true;
    let mut bob = bob(addr).await;
    send_messages(&mut bob, "alice@localhost", 0..3).await;
    for _ in 0..3 {
        alice.next_message().await;
    }
    // Fewer than five stanzas, but they waited: the server asks for an
    // acknowledgement, which the client gives, as profanity does.
    assert!(
        alice.wait_for_requests(1, Duration::from_secs(5)).await,
        "the server never asked for an acknowledgement of what it sent"
    );
    // A clean quit.
    alice.c.send("</stream:stream>").await;
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    assert_eq!(
        offline_at_login(addr, 0).await,
        Vec::<String>::new(),
        "messages already shown came back"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_reader_that_quits_without_acking_is_not_sent_its_messages_again() {
    let server = server_with("sm-dup-mam", |_| {}).await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", false, None).await;
    assert_eq!(read_archive(&mut alice.c).await, 0);
    let mut bob = bob(addr).await;
    send_messages(&mut bob, "alice@localhost", 0..3).await;
    for _ in 0..3 {
        alice.next_message().await;
    }
    // Quits at once, acknowledging nothing: the messages are in the archive
    // the client reads, so they are not stored offline again.
    alice.c.send("</stream:stream>").await;
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    assert_eq!(offline_at_login(addr, 0).await, Vec::<String>::new());
    assert_eq!(offline_count(&server).await, 0);
    let (mut again, _) = XmppClient::login(addr, "alice", "wonderland", Some("c")).await;
    assert_eq!(
        read_archive(&mut again).await,
        3,
        "all three are in the archive"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_reader_whose_session_times_out_is_not_sent_its_messages_again() {
    let server = server_with("sm-dup-timeout", |c| {
        c.c2s.sm_resume_timeout_secs = 1;
    })
    .await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", true, None).await;
    assert_eq!(read_archive(&mut alice.c).await, 0);
    let mut bob = bob(addr).await;
    send_messages(&mut bob, "alice@localhost", 0..2).await;
    for _ in 0..2 {
        alice.next_message().await;
    }
    alice.c.drop_connection();
    // Detached, then the resume timeout ends the session.
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    assert_eq!(offline_at_login(addr, 0).await, Vec::<String>::new());
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutdown_asks_for_acks_first_so_nothing_comes_back() {
    let mut cfg = test_config("sm-dup-shutdown");
    cfg.offline.quota = 5000;
    // Only the request made before closing can cover the messages.
    cfg.c2s.sm_request_ack_after_ms = 60_000;
    let server = start(cfg.clone()).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = SmClient::login(addr, "alice", "wonderland", "a", false, None).await;
    alice.auto_ack = true;
    let mut bob = bob(addr).await;
    send_messages(&mut bob, "alice@localhost", 0..2).await;
    for _ in 0..2 {
        alice.next_message().await;
    }
    let server = std::sync::Arc::new(server);
    let stopping = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown(Duration::from_secs(5)).await })
    };
    // The client answers the server's request, then gets system-shutdown.
    let err = loop {
        match alice.next_stanza().await {
            Some(e) if e.name() == "error" => break e,
            Some(_) => {}
            None => panic!("closed without a stream error"),
        }
    };
    assert!(
        alice.requests >= 1,
        "no acknowledgement was asked for before the shutdown"
    );
    assert!(
        err.get_child("system-shutdown", "urn:ietf:params:xml:ns:xmpp-streams")
            .is_some(),
        "{}",
        err.to_xml()
    );
    stopping.await.unwrap();
    assert!(wait_until(Duration::from_secs(10), || server.sessions.is_empty()).await);
    // Nothing was rerouted to offline storage (the reroute runs in a task
    // of its own, so give it the time it would take).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        offline_count(&server).await,
        0,
        "acknowledged messages were stored offline"
    );
}
