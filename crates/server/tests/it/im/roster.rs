//! RFC 6121 §2, the roster: get, set, update and remove, the pushes they
//! cause, versioning, and the requests the server must refuse.

use super::*;

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
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' name='Bob' subscription='none'><group>Friends</group></item>",
            ),
            result("alice@localhost/a", "s1"),
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
            push(
                "alice@localhost/a1",
                "<item jid='bob@localhost' name='Bob' subscription='none'/>",
            ),
            result("alice@localhost/a1", "s1"),
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
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' name='Robert' subscription='none'><group>Family</group></item>",
            ),
            result("alice@localhost/a", "s2"),
        ],
    )
    .await;
    // No name and no group: both are cleared.
    a.expect_after(
        &roster_set("s3", "<item jid='bob@localhost'/>"),
        &[
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='none'/>",
            ),
            result("alice@localhost/a", "s3"),
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
            push(
                "alice@localhost/a1",
                "<item jid='bob@localhost' subscription='remove'/>",
            ),
            result("alice@localhost/a1", "r1"),
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
