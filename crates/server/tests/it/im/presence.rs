//! RFC 6121 §4, presence exchange: initial presence, login probes,
//! updates, unavailable on logout and on a killed session, directed
//! presence; and §8.5.2.1.1, negative priorities for bare-JID messages.

use super::*;

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

    // §4.5.2: explicit unavailable presence, reflected to the resource
    // that sent it (an entity is subscribed to its own presence, §4.2.2).
    a.expect_after(
        "<presence type='unavailable'><status>gone</status></presence>",
        &["<presence type='unavailable' from='alice@localhost/a' to='alice@localhost/a'><status>gone</status></presence>".into()],
    )
    .await;
    b.expect(&["<presence type='unavailable' from='alice@localhost/a' to='bob@localhost'><status>gone</status></presence>".into()])
        .await;
    // Closing the stream afterwards sends nothing more.
    a.send("</stream:stream>").await;
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
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
async fn directed_presence_to_a_subscriber_ends_with_one_unavailable() {
    let (server, mut a1, mut b, mut c, mut d, mut e) = presence_world("im-directed-sub").await;
    // Carol ('both') already gets alice's broadcasts: a directed presence to
    // her is not remembered (RFC 6121 §4.6.3), so she is told once when
    // alice goes.
    a1.send("<presence to='carol@localhost/c'><status>for you</status></presence>")
        .await;
    a1.settle().await;
    c.expect(&[
        "<presence from='alice@localhost/a1' to='carol@localhost/c'><status>for you</status></presence>"
            .into(),
    ])
    .await;
    a1.send("</stream:stream>").await;
    let got = c.c.next_element().await;
    assert_stanzas(
        &[got],
        &[pres("unavailable", "alice@localhost/a1", "carol@localhost")],
    );
    // Once: nothing follows.
    c.expect(&[]).await;
    let got = b.c.next_element().await;
    assert_stanzas(
        &[got],
        &[pres("unavailable", "alice@localhost/a1", "bob@localhost")],
    );
    d.expect(&[]).await;
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
