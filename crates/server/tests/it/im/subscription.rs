//! RFC 6121 §3, presence subscriptions: requests and approvals, every row
//! of the Appendix A state tables, pre-approval, pending requests kept
//! across logins, and what removing a roster item cancels.

use super::*;

#[tokio::test]
async fn subscribe_then_subscribed_gives_both_sides_the_right_state() {
    let server = server_with("im-sub", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    a.settle().await;

    // §3.1.2: the user's roster shows the pending request (ask); §3.1.3 the
    // contact gets the request from the user's bare JID, and no roster push
    // (a pending inbound request is not a roster item).
    a.expect_after(
        &subscription("subscribe", "bob@localhost"),
        &[push(
            "alice@localhost/a",
            "<item jid='bob@localhost' subscription='none' ask='subscribe'/>",
        )],
    )
    .await;
    b.expect(&[pres("subscribe", "alice@localhost", "bob@localhost")])
        .await;

    // §3.1.5: approving gives the contact 'from'; §3.1.6 the user gets the
    // approval, 'to', and the contact's current presence.
    b.expect_after(
        &subscription("subscribed", "alice@localhost"),
        &[push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='from'/>",
        )],
    )
    .await;
    a.expect(&[
        push(
            "alice@localhost/a",
            "<item jid='bob@localhost' subscription='to'/>",
        ),
        pres("subscribed", "bob@localhost", "alice@localhost"),
        pres("", "bob@localhost/b", "alice@localhost"),
    ])
    .await;
    assert_eq!(
        a.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='bob@localhost' subscription='to'/>"]
    );
    assert_eq!(
        b.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='alice@localhost' subscription='from'/>"]
    );

    // Presence now flows from bob to alice, and not the other way.
    b.send("<presence><show>away</show></presence>").await;
    b.settle().await;
    a.expect(&[
        "<presence from='bob@localhost/b' to='alice@localhost'><show>away</show></presence>".into(),
    ])
    .await;
    a.send("<presence><show>chat</show></presence>").await;
    a.settle().await;
    b.expect(&[]).await;
    server.stop();
}

#[tokio::test]
async fn subscribing_back_makes_the_subscription_both() {
    let server = server_with("im-both", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    a.settle().await;
    subscribe(&mut a, &mut b).await;

    // Bob ("From") asks alice ("To"): From + Pending Out.
    b.expect_after(
        &subscription("subscribe", "alice@localhost"),
        &[push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='from' ask='subscribe'/>",
        )],
    )
    .await;
    a.expect(&[pres("subscribe", "bob@localhost", "alice@localhost")])
        .await;
    a.expect_after(
        &subscription("subscribed", "bob@localhost"),
        &[push(
            "alice@localhost/a",
            "<item jid='bob@localhost' subscription='both'/>",
        )],
    )
    .await;
    b.expect(&[
        push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='both'/>",
        ),
        pres("subscribed", "alice@localhost", "bob@localhost"),
        pres("", "alice@localhost/a", "bob@localhost"),
    ])
    .await;
    assert_eq!(
        a.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='bob@localhost' subscription='both'/>"]
    );
    assert_eq!(
        b.items().await,
        vec!["<item xmlns='jabber:iq:roster' jid='alice@localhost' subscription='both'/>"]
    );
    server.stop();
}

/// A state of one side's relation to the other, as Appendix A names it:
/// `none`, `to`, `from` or `both`, then `+out` (ask='subscribe'), `+in` (a
/// pending inbound request) and `+approved` (§3.4).
async fn state_of(server: &Server, user: &str, contact: &str) -> String {
    let item = server
        .storage
        .roster_item(user, "localhost", &format!("{contact}@localhost"))
        .await
        .unwrap();
    let pending = server
        .storage
        .pending_subscription(user, "localhost", &format!("{contact}@localhost"))
        .await
        .unwrap()
        .is_some();
    let mut s = item
        .as_ref()
        .map_or("none", |i| i.subscription.as_str())
        .to_owned();
    if item.as_ref().is_some_and(|i| i.ask) {
        s.push_str("+out");
    }
    if pending {
        s.push_str("+in");
    }
    if item.as_ref().is_some_and(|i| i.approved) {
        s.push_str("+approved");
    }
    s
}

/// The same relation seen from the other side.
fn mirror(state: &str) -> String {
    let mut parts = state.split('+');
    let sub = match parts.next().unwrap() {
        "to" => "from",
        "from" => "to",
        s => s,
    };
    let flags: Vec<&str> = parts.collect();
    let mut s = sub.to_owned();
    if flags.contains(&"in") {
        s.push_str("+out");
    }
    if flags.contains(&"out") {
        s.push_str("+in");
    }
    s
}

/// The roster-visible part of a state: what a push shows.
fn item_for(jid: &str, state: &str) -> Option<String> {
    let mut parts = state.split('+');
    let sub = parts.next().unwrap();
    let flags: Vec<&str> = parts.collect();
    let ask = flags.contains(&"out");
    let approved = flags.contains(&"approved");
    if sub == "none" && !ask && !approved {
        return None;
    }
    let mut x = format!("<item jid='{jid}' subscription='{sub}'");
    if ask {
        x.push_str(" ask='subscribe'");
    }
    if approved {
        x.push_str(" approved='true'");
    }
    x.push_str("/>");
    Some(x)
}

/// How the two accounts reach `state` (alice's side): who sends what.
fn setup_steps(state: &str) -> &'static [(char, &'static str)] {
    match state {
        "none" => &[],
        "none+out" => &[('a', "subscribe")],
        "none+in" => &[('b', "subscribe")],
        "none+out+in" => &[('a', "subscribe"), ('b', "subscribe")],
        "to" => &[('a', "subscribe"), ('b', "subscribed")],
        "to+in" => &[('a', "subscribe"), ('b', "subscribed"), ('b', "subscribe")],
        "from" => &[('b', "subscribe"), ('a', "subscribed")],
        "from+out" => &[('b', "subscribe"), ('a', "subscribed"), ('a', "subscribe")],
        "both" => &[
            ('a', "subscribe"),
            ('b', "subscribed"),
            ('b', "subscribe"),
            ('a', "subscribed"),
        ],
        other => panic!("no setup for {other}"),
    }
}

/// What one side received, pushes aside: each presence as its type (from
/// the other's bare JID) or `available` / `unavailable` (from the other's
/// resource), joined with `+`. Pushes are checked against the state.
fn received(got: &[Element], me: &Res, other: &Res, state_after: &str, changed: bool) -> String {
    let mut tokens = Vec::new();
    let mut pushes = Vec::new();
    for e in got {
        match e.name() {
            "presence" if e.attr("from") == Some(other.bare()) => {
                assert_eq!(e.attr("to"), Some(me.bare()), "{}", e.to_xml());
                tokens.push(e.attr("type").unwrap_or("available").to_owned());
            }
            "presence" if e.attr("from") == Some(other.full.as_str()) => {
                tokens.push(e.attr("type").unwrap_or("available").to_owned());
            }
            "iq" if e.attr("type") == Some("set") => pushes.push(e.clone()),
            _ => panic!("unexpected for {}: {}", me.full, e.to_xml()),
        }
    }
    // §2.1.6: a roster push exactly when the item the user sees changed.
    let expected_pushes: Vec<String> = match (changed, item_for(other.bare(), state_after)) {
        (false, _) => vec![],
        (true, Some(item)) => vec![push(&me.full, &item)],
        (true, None) => vec![push(
            &me.full,
            &format!("<item jid='{}' subscription='none'/>", other.bare()),
        )],
    };
    assert_stanzas(&pushes, &expected_pushes);
    tokens.join("+")
}

/// One row of an Appendix A table: alice, in `state` toward bob, sends
/// `kind`; alice ends in `alice_after` (A.2, outbound), bob, whose state is
/// the mirror image, in `bob_after` (A.3, inbound); `bob_gets` and
/// `alice_gets` are what their clients receive (see [`received`]).
struct Row {
    state: &'static str,
    alice_after: &'static str,
    bob_after: &'static str,
    bob_gets: &'static str,
    alice_gets: &'static str,
}

const fn row(
    state: &'static str,
    alice_after: &'static str,
    bob_after: &'static str,
    bob_gets: &'static str,
    alice_gets: &'static str,
) -> Row {
    Row {
        state,
        alice_after,
        bob_after,
        bob_gets,
        alice_gets,
    }
}

async fn run_table(tag: &str, kind: &str, rows: &[Row]) {
    let server = start(test_config(tag)).await;
    for (n, r) in rows.iter().enumerate() {
        let (an, bn) = (format!("a{n}"), format!("b{n}"));
        add_user(&server, &an, &password(&an)).await;
        add_user(&server, &bn, &password(&bn)).await;
        let mut a = Res::online(&server, &an, "r").await;
        let mut b = Res::online(&server, &bn, "r").await;
        for (who, step) in setup_steps(r.state) {
            let (from, to) = if *who == 'a' {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let target = to.bare().to_owned();
            from.send(&subscription(step, &target)).await;
            from.settle().await;
            to.settle().await;
        }
        a.settle().await;
        b.settle().await;
        assert_eq!(
            state_of(&server, &an, &bn).await,
            r.state,
            "setup of {}",
            r.state
        );
        assert_eq!(
            state_of(&server, &bn, &an).await,
            mirror(r.state),
            "setup of {}",
            r.state
        );

        let target = b.bare().to_owned();
        a.send(&subscription(kind, &target)).await;
        let got_a = a.settle().await;
        let got_b = b.settle().await;
        let (alice_after, bob_after) = (
            state_of(&server, &an, &bn).await,
            state_of(&server, &bn, &an).await,
        );
        let case = format!("alice {} sends {kind}", r.state);
        assert_eq!(
            (alice_after.as_str(), bob_after.as_str()),
            (r.alice_after, r.bob_after),
            "{case}: states (alice, bob)"
        );
        let a_changed = item_for("", r.state) != item_for("", r.alice_after);
        let b_changed = item_for("", &mirror(r.state)) != item_for("", r.bob_after);
        assert_eq!(
            received(&got_b, &b, &a, r.bob_after, b_changed),
            r.bob_gets,
            "{case}: what bob receives"
        );
        assert_eq!(
            received(&got_a, &a, &b, r.alice_after, a_changed),
            r.alice_gets,
            "{case}: what alice receives"
        );
    }
    server.stop();
}

#[tokio::test]
async fn subscribe_follows_appendix_a_in_every_state() {
    // A.2.1 (outbound) on alice's side, A.3.1 (inbound) on bob's. An
    // already-subscribed contact's server answers 'subscribed' for it
    // (§3.1.3), which alice's server ignores as she has no pending request
    // (A.3.2). A repeated request is not delivered again (A.3.1).
    run_table(
        "im-a-subscribe",
        "subscribe",
        &[
            row("none", "none+out", "none+in", "subscribe", ""),
            row("none+out", "none+out", "none+in", "", ""),
            row("none+in", "none+out+in", "none+out+in", "subscribe", ""),
            row("none+out+in", "none+out+in", "none+out+in", "", ""),
            row("to", "to", "from", "", ""),
            row("to+in", "to+in", "from+out", "", ""),
            row("from", "from+out", "to+in", "subscribe", ""),
            row("from+out", "from+out", "to+in", "", ""),
            row("both", "both", "both", "", ""),
        ],
    )
    .await;
}

#[tokio::test]
async fn subscribed_follows_appendix_a_in_every_state() {
    // A.2.2 and A.3.2. Without a pending request, 'subscribed' is a
    // pre-approval (§3.4): not routed, shown as approved='true'. An approval
    // is followed by the approver's presence (§3.1.5).
    run_table(
        "im-a-subscribed",
        "subscribed",
        &[
            row("none", "none+approved", "none", "", ""),
            row("none+out", "none+out+approved", "none+in", "", ""),
            row("none+in", "from", "to", "subscribed+available", ""),
            row(
                "none+out+in",
                "from+out",
                "to+in",
                "subscribed+available",
                "",
            ),
            row("to", "to+approved", "from", "", ""),
            row("to+in", "both", "both", "subscribed+available", ""),
            row("from", "from", "to", "", ""),
            row("from+out", "from+out", "to+in", "", ""),
            row("both", "both", "both", "", ""),
        ],
    )
    .await;
}

#[tokio::test]
async fn unsubscribe_follows_appendix_a_in_every_state() {
    // A.2.3 and A.3.3. A contact that loses a subscriber also sends it
    // unavailable from its resources (§3.3.3); a pending request is
    // withdrawn.
    run_table(
        "im-a-unsubscribe",
        "unsubscribe",
        &[
            row("none", "none", "none", "", ""),
            row("none+out", "none", "none", "unsubscribe", ""),
            row("none+in", "none+in", "none+out", "", ""),
            row("none+out+in", "none+in", "none+out", "unsubscribe", ""),
            row("to", "none", "none", "unsubscribe", "unavailable"),
            row("to+in", "none+in", "none+out", "unsubscribe", "unavailable"),
            row("from", "from", "to", "", ""),
            row("from+out", "from", "to", "unsubscribe", ""),
            row("both", "from", "to", "unsubscribe", "unavailable"),
        ],
    )
    .await;
}

#[tokio::test]
async fn unsubscribed_follows_appendix_a_in_every_state() {
    // A.2.4 and A.3.4: denying a request or cancelling a subscription; the
    // former subscriber gets unavailable from alice's resources (§3.2.2).
    run_table(
        "im-a-unsubscribed",
        "unsubscribed",
        &[
            row("none", "none", "none", "", ""),
            row("none+out", "none+out", "none+in", "", ""),
            row("none+in", "none", "none", "unsubscribed", ""),
            row("none+out+in", "none+out", "none+in", "unsubscribed", ""),
            row("to", "to", "from", "", ""),
            row("to+in", "to", "from", "unsubscribed", ""),
            row("from", "none", "none", "unavailable+unsubscribed", ""),
            row(
                "from+out",
                "none+out",
                "none+in",
                "unavailable+unsubscribed",
                "",
            ),
            row("both", "to", "from", "unavailable+unsubscribed", ""),
        ],
    )
    .await;
}

#[tokio::test]
async fn subscribing_to_a_missing_local_account_is_an_error_and_changes_no_roster() {
    // RFC 6121 §3.1.2: the user's server cannot deliver a request to a
    // local contact that does not exist, and "MUST return an appropriate
    // error stanza to the user": no roster push, no pending request; the
    // contact's side (§8.5.1) would silently ignore it.
    let server = server_with("im-nobody", &["alice"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.expect_after(
        &subscription("subscribe", "nobody@localhost"),
        &[
            "<presence type='error' from='nobody@localhost' to='alice@localhost/a'>\
           <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
           </error></presence>"
                .into(),
        ],
    )
    .await;
    assert!(a.items().await.is_empty());
    server.stop();
}

#[tokio::test]
async fn pre_approval_answers_the_later_request_at_once() {
    let server = server_with("im-preapp", &["alice", "bob", "carol"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    let mut c = Res::online(&server, "carol", "c").await;
    a.settle().await;
    b.settle().await;

    // §3.4.1: 'subscribed' without a request is a pre-approval: not routed,
    // shown to the contact's resources as approved='true'.
    b.expect_after(
        &subscription("subscribed", "alice@localhost"),
        &[push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='none' approved='true'/>",
        )],
    )
    .await;
    a.expect(&[]).await;

    // §3.4.2: the request is approved at once; bob is not asked.
    a.expect_after(
        &subscription("subscribe", "bob@localhost"),
        &[
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='none' ask='subscribe'/>",
            ),
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='to'/>",
            ),
            pres("subscribed", "bob@localhost", "alice@localhost"),
            pres("", "bob@localhost/b", "alice@localhost"),
        ],
    )
    .await;
    b.expect(&[push(
        "bob@localhost/b",
        "<item jid='alice@localhost' subscription='from'/>",
    )])
    .await;

    // §3.4: 'unsubscribed' withdraws a pre-approval; the next request is
    // an ordinary one.
    c.send(&subscription("subscribed", "alice@localhost")).await;
    c.settle().await;
    c.expect_after(
        &subscription("unsubscribed", "alice@localhost"),
        &[push(
            "carol@localhost/c",
            "<item jid='alice@localhost' subscription='none'/>",
        )],
    )
    .await;
    a.expect(&[]).await;
    a.send(&subscription("subscribe", "carol@localhost")).await;
    a.settle().await;
    c.expect(&[pres("subscribe", "alice@localhost", "carol@localhost")])
        .await;
    server.stop();
}

#[tokio::test]
async fn subscription_stanzas_to_oneself_change_nothing() {
    // §4.2.2: a user is implicitly subscribed to its own presence, and its
    // own JID is not a roster item (§2.3.3: the roster set is refused).
    let server = server_with("im-self", &["alice"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    for kind in ["subscribe", "subscribed", "unsubscribe", "unsubscribed"] {
        a.expect_after(&subscription(kind, "alice@localhost"), &[])
            .await;
    }
    assert!(a.items().await.is_empty());
    assert_eq!(state_of(&server, "alice", "alice").await, "none");
    a.send(&roster_set("me", "<item jid='alice@localhost'/>"))
        .await;
    let got = a.settle().await;
    assert_eq!(got.len(), 1, "{}", show(&got));
    assert_eq!(stanza_error_condition(&got[0]), "not-allowed");
    server.stop();
}

#[tokio::test]
async fn stream_features_advertise_roster_versioning_and_pre_approval() {
    // §2.6.1 and §3.4: after authentication.
    use chorus_sasl::{ChannelBindingType, Mechanism};
    let server = server_with("im-features", &["alice"]).await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    c.scram(
        Mechanism::ScramSha256Plus,
        "alice",
        &password("alice"),
        Some(ChannelBindingType::TlsExporter),
    )
    .await
    .unwrap();
    let f = c.open().await;
    assert!(f.get_child("ver", "urn:xmpp:features:rosterver").is_some());
    assert!(f
        .get_child("sub", "urn:xmpp:features:pre-approval")
        .is_some());
    server.stop();
}

#[tokio::test]
async fn pending_subscription_requests_are_redelivered_at_each_login_until_answered() {
    let server = server_with("im-pending", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.send(&subscription("subscribe", "bob@localhost")).await;
    a.settle().await;

    // §3.1.3: bob was offline; the request waits for his next login.
    for resource in ["b1", "b2"] {
        let b = Res::login(&server, "bob", resource).await;
        let me = format!("bob@localhost/{resource}");
        assert_stanzas(
            &b.initial,
            &[
                pres("", &me, &me),
                pres("subscribe", "alice@localhost", "bob@localhost"),
            ],
        );
        drop(b);
        assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    }
    // Answered: not delivered again.
    let mut b = Res::login(&server, "bob", "b3").await;
    b.initial.clear();
    b.send(&subscription("subscribed", "alice@localhost")).await;
    b.settle().await;
    drop(b);
    assert!(wait_until(Duration::from_secs(10), || server.sessions.len() == 1).await);
    let b = Res::login(&server, "bob", "b4").await;
    assert_stanzas(
        &b.initial,
        &[pres("", "bob@localhost/b4", "bob@localhost/b4")],
    );
    server.stop();
}

#[tokio::test]
async fn unsubscribe_withdraws_a_request_the_contact_has_not_seen() {
    // A.3.3: "None + Pending In" becomes "None".
    let server = server_with("im-withdraw", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    a.send(&subscription("subscribe", "bob@localhost")).await;
    a.settle().await;
    a.expect_after(
        &subscription("unsubscribe", "bob@localhost"),
        &[push(
            "alice@localhost/a",
            "<item jid='bob@localhost' subscription='none'/>",
        )],
    )
    .await;
    assert_eq!(state_of(&server, "bob", "alice").await, "none");
    let b = Res::login(&server, "bob", "b").await;
    assert_stanzas(
        &b.initial,
        &[pres("", "bob@localhost/b", "bob@localhost/b")],
    );
    server.stop();
}

#[tokio::test]
async fn removing_a_roster_item_cancels_both_subscriptions() {
    // §2.5.2: unsubscribe and unsubscribed go to the contact, who stops
    // seeing the user and whom the user stops seeing; the user's resources
    // get only the removal push.
    let server = server_with("im-rm-both", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    a.settle().await;
    subscribe(&mut a, &mut b).await;
    subscribe(&mut b, &mut a).await;
    a.expect_after(
        &roster_set("rm", "<item jid='bob@localhost' subscription='remove'/>"),
        &[
            pres("unavailable", "bob@localhost/b", "alice@localhost"),
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='remove'/>",
            ),
            result("alice@localhost/a", "rm"),
        ],
    )
    .await;
    b.expect(&[
        push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='to'/>",
        ),
        pres("unsubscribe", "alice@localhost", "bob@localhost"),
        pres("unavailable", "alice@localhost/a", "bob@localhost"),
        push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='none'/>",
        ),
        pres("unsubscribed", "alice@localhost", "bob@localhost"),
    ])
    .await;
    assert!(a.items().await.is_empty());
    assert_eq!(state_of(&server, "bob", "alice").await, "none");
    server.stop();
}

#[tokio::test]
async fn removing_a_roster_item_declines_a_pending_request() {
    // §2.5.2 with A.2.4: a pending inbound request is answered unsubscribed.
    let server = server_with("im-rm-pending", &["alice", "bob"]).await;
    let mut a = Res::online(&server, "alice", "a").await;
    let mut b = Res::online(&server, "bob", "b").await;
    a.send(&roster_set("s", "<item jid='bob@localhost' name='Bob'/>"))
        .await;
    a.settle().await;
    b.send(&subscription("subscribe", "alice@localhost")).await;
    b.settle().await;
    a.settle().await;
    assert_eq!(state_of(&server, "alice", "bob").await, "none+in");
    a.expect_after(
        &roster_set("rm", "<item jid='bob@localhost' subscription='remove'/>"),
        &[
            push(
                "alice@localhost/a",
                "<item jid='bob@localhost' subscription='remove'/>",
            ),
            result("alice@localhost/a", "rm"),
        ],
    )
    .await;
    b.expect(&[
        push(
            "bob@localhost/b",
            "<item jid='alice@localhost' subscription='none'/>",
        ),
        pres("unsubscribed", "alice@localhost", "bob@localhost"),
    ])
    .await;
    assert_eq!(state_of(&server, "alice", "bob").await, "none");
    assert_eq!(state_of(&server, "bob", "alice").await, "none");
    server.stop();
}
