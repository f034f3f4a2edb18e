//! Rosters and pending subscriptions: items round-trip in byte-wise JID
//! order with their groups, versions and the changes since one (removals
//! pruned past a bound), concurrent writers, and inbound requests that
//! live outside the roster.

use super::*;

on_both_backends!(
    roster_items_round_trip_replace_and_remove,
    roster_is_ordered_by_jid_byte_wise,
    roster_groups_keep_their_order,
    duplicate_group_is_invalid_input_and_changes_nothing,
    roster_writes_on_missing_account,
    roster_changes_since_lists_updates_and_removals,
    roster_changes_since_unknown_version_is_none,
    roster_changes_since_forgets_only_pruned_removals,
    concurrent_roster_writes_get_distinct_versions,
    pending_subscriptions_live_outside_the_roster,
);

async fn roster_items_round_trip_replace_and_remove(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    let empty = s.roster("alice", DOMAIN).await.unwrap();
    assert_eq!((empty.version, empty.items.len()), (0, 0));
    assert_eq!(s.roster_version("alice", DOMAIN).await.unwrap(), 0);

    let romeo = RosterItem {
        jid: "romeo@example.net".into(),
        name: Some("Romeo «ρωμαίος» 'x' \"y\"".into()),
        subscription: Subscription::Both,
        ask: true,
        approved: true,
        groups: vec!["Friends".into(), "Lovers".into()],
    };
    assert_eq!(s.put_roster_item("alice", DOMAIN, &romeo).await.unwrap(), 1);
    assert_eq!(
        s.roster_item("alice", DOMAIN, "romeo@example.net")
            .await
            .unwrap(),
        Some(romeo.clone())
    );
    let roster = s.roster("alice", DOMAIN).await.unwrap();
    assert_eq!(roster.version, 1);
    assert_eq!(roster.items, vec![romeo.clone()]);

    // Every field of a replacement wins, groups included.
    let replaced = RosterItem {
        jid: "romeo@example.net".into(),
        name: None,
        subscription: Subscription::From,
        ask: false,
        approved: false,
        groups: vec!["Enemies".into()],
    };
    assert_eq!(
        s.put_roster_item("alice", DOMAIN, &replaced).await.unwrap(),
        2
    );
    assert_eq!(
        s.roster_item("alice", DOMAIN, "romeo@example.net")
            .await
            .unwrap(),
        Some(replaced.clone())
    );
    assert_eq!(
        s.roster("alice", DOMAIN).await.unwrap().items,
        vec![replaced]
    );

    for subscription in [Subscription::None, Subscription::To] {
        let mut other = item("nurse@example.net", &[]);
        other.subscription = subscription;
        s.put_roster_item("alice", DOMAIN, &other).await.unwrap();
        assert_eq!(
            s.roster_item("alice", DOMAIN, "nurse@example.net")
                .await
                .unwrap()
                .unwrap()
                .subscription,
            subscription
        );
    }
    assert_eq!(s.roster_version("alice", DOMAIN).await.unwrap(), 4);

    assert_eq!(
        s.remove_roster_item("alice", DOMAIN, "romeo@example.net")
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(
        s.roster_item("alice", DOMAIN, "romeo@example.net")
            .await
            .unwrap(),
        None
    );
    // Removing what is not there changes nothing, the version included.
    assert_eq!(
        s.remove_roster_item("alice", DOMAIN, "romeo@example.net")
            .await
            .unwrap(),
        None
    );
    let roster = s.roster("alice", DOMAIN).await.unwrap();
    assert_eq!(roster.version, 5);
    assert_eq!(
        roster
            .items
            .iter()
            .map(|i| i.jid.as_str())
            .collect::<Vec<_>>(),
        ["nurse@example.net"]
    );

    // Another account's roster is separate, versions included.
    account(db, "bob").await;
    assert_eq!(s.roster("bob", DOMAIN).await.unwrap().items, vec![]);
    assert_eq!(
        s.put_roster_item("bob", DOMAIN, &item("nurse@example.net", &[]))
            .await
            .unwrap(),
        1
    );
}

async fn roster_is_ordered_by_jid_byte_wise(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    // Under a locale collation "a_b" sorts with "ab" and "Zed" after "alice".
    let jids = [
        "zed@x.example",
        "émile@x.example",
        "ab@x.example",
        "a_b@x.example",
        "Zed@x.example",
        "alice@x.example",
    ];
    for jid in jids {
        // Groups too, so the (item, group) rows have to be folded back.
        s.put_roster_item("alice", DOMAIN, &item(jid, &["g1", "g2"]))
            .await
            .unwrap();
    }
    let mut expected: Vec<&str> = jids.to_vec();
    expected.sort();
    let roster = s.roster("alice", DOMAIN).await.unwrap();
    assert_eq!(
        roster
            .items
            .iter()
            .map(|i| i.jid.as_str())
            .collect::<Vec<_>>(),
        expected
    );
    assert!(roster.items.iter().all(|i| i.groups == ["g1", "g2"]));
    assert_eq!(roster.version, jids.len() as u64);
}

async fn roster_groups_keep_their_order(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    // Neither sorted nor reverse-sorted, in any collation.
    let groups = ["Zeta", "alpha", "Mid", "Ärger", "10", "9"];
    s.put_roster_item("alice", DOMAIN, &item("romeo@example.net", &groups))
        .await
        .unwrap();
    s.put_roster_item("alice", DOMAIN, &item("benvolio@example.net", &[]))
        .await
        .unwrap();
    let read = s
        .roster_item("alice", DOMAIN, "romeo@example.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.groups, groups);
    let roster = s.roster("alice", DOMAIN).await.unwrap();
    assert_eq!(roster.items[0].groups, Vec::<String>::new());
    assert_eq!(roster.items[1].groups, groups);

    // Reordering is a change that sticks.
    let reordered = ["9", "Mid", "Zeta"];
    s.put_roster_item("alice", DOMAIN, &item("romeo@example.net", &reordered))
        .await
        .unwrap();
    assert_eq!(
        s.roster_item("alice", DOMAIN, "romeo@example.net")
            .await
            .unwrap()
            .unwrap()
            .groups,
        reordered
    );
    let delta = s.roster_changes_since("alice", DOMAIN, 2).await.unwrap();
    assert_eq!(
        delta,
        Some(vec![updated(3, item("romeo@example.net", &reordered))])
    );
}

async fn duplicate_group_is_invalid_input_and_changes_nothing(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    s.put_roster_item("alice", DOMAIN, &item("romeo@example.net", &["A"]))
        .await
        .unwrap();
    assert!(matches!(
        s.put_roster_item(
            "alice",
            DOMAIN,
            &item("romeo@example.net", &["B", "C", "B"])
        )
        .await,
        Err(StorageError::InvalidInput(_))
    ));
    assert_eq!(s.roster_version("alice", DOMAIN).await.unwrap(), 1);
    assert_eq!(
        s.roster_item("alice", DOMAIN, "romeo@example.net")
            .await
            .unwrap()
            .unwrap()
            .groups,
        ["A"]
    );
}

async fn roster_writes_on_missing_account(db: &Db) {
    let s = &db.storage;
    assert_eq!(
        s.put_roster_item("ghost", DOMAIN, &item("romeo@example.net", &["A"]))
            .await,
        Err(StorageError::NotFound)
    );
    assert_eq!(
        s.remove_roster_item("ghost", DOMAIN, "romeo@example.net")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.add_pending_subscription("ghost", DOMAIN, "romeo@example.net", "<presence/>")
            .await,
        Err(StorageError::NotFound)
    );
    let roster = s.roster("ghost", DOMAIN).await.unwrap();
    assert_eq!((roster.version, roster.items.len()), (0, 0));
    assert_eq!(
        s.roster_changes_since("ghost", DOMAIN, 0).await.unwrap(),
        None
    );
    // Nothing was left behind for an account created later under the name.
    account(db, "ghost").await;
    assert_eq!(s.roster_version("ghost", DOMAIN).await.unwrap(), 0);
    assert_eq!(
        s.roster_changes_since("ghost", DOMAIN, 0).await.unwrap(),
        Some(vec![])
    );
}

async fn roster_changes_since_lists_updates_and_removals(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    let a = item("a@example.net", &["G"]);
    let b = item("b@example.net", &[]);
    let mut c = item("c@example.net", &["X", "Y"]);
    c.name = Some("Cee".into());
    assert_eq!(s.put_roster_item("alice", DOMAIN, &a).await.unwrap(), 1);
    assert_eq!(s.put_roster_item("alice", DOMAIN, &b).await.unwrap(), 2);
    assert_eq!(s.put_roster_item("alice", DOMAIN, &c).await.unwrap(), 3);
    assert_eq!(
        s.remove_roster_item("alice", DOMAIN, &b.jid).await.unwrap(),
        Some(4)
    );
    let mut a2 = a.clone();
    a2.subscription = Subscription::To;
    a2.groups = vec!["H".into(), "G".into()];
    assert_eq!(s.put_roster_item("alice", DOMAIN, &a2).await.unwrap(), 5);

    // Oldest change first, one entry per JID, each with the version that
    // made it; a's first version (1) is superseded by 5.
    let since = |v| s.roster_changes_since("alice", DOMAIN, v);
    let all = vec![
        updated(3, c.clone()),
        removed(4, &b.jid),
        updated(5, a2.clone()),
    ];
    assert_eq!(since(0).await.unwrap(), Some(all.clone()));
    assert_eq!(since(2).await.unwrap(), Some(all.clone()));
    assert_eq!(since(3).await.unwrap(), Some(all[1..].to_vec()));
    assert_eq!(since(4).await.unwrap(), Some(all[2..].to_vec()));
    // Current: nothing to send.
    assert_eq!(since(5).await.unwrap(), Some(vec![]));

    // Re-adding a removed JID replaces its removal in the delta.
    assert_eq!(s.put_roster_item("alice", DOMAIN, &b).await.unwrap(), 6);
    assert_eq!(
        since(3).await.unwrap(),
        Some(vec![updated(5, a2.clone()), updated(6, b.clone())])
    );
    // And removing it again puts the removal back, at the new version.
    assert_eq!(
        s.remove_roster_item("alice", DOMAIN, &b.jid).await.unwrap(),
        Some(7)
    );
    let delta = since(5).await.unwrap().unwrap();
    assert_eq!(delta, vec![removed(7, &b.jid)]);
    // The last change carries the current version.
    assert_eq!(
        delta.last().map(RosterChange::version),
        Some(s.roster_version("alice", DOMAIN).await.unwrap())
    );
    assert_eq!(delta[0].jid(), "b@example.net");

    // Applying the delta to the roster as it was at version 3 yields the
    // roster as it is now.
    let mut cached: Vec<RosterItem> = vec![a.clone(), b.clone(), c.clone()];
    for change in since(3).await.unwrap().unwrap() {
        cached.retain(|i| i.jid != change.jid());
        if let RosterChange::Updated { item, .. } = change {
            cached.push(item);
        }
    }
    cached.sort_by(|x, y| x.jid.cmp(&y.jid));
    assert_eq!(cached, s.roster("alice", DOMAIN).await.unwrap().items);
}

async fn roster_changes_since_unknown_version_is_none(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    // A fresh roster knows only version 0.
    assert_eq!(
        s.roster_changes_since("alice", DOMAIN, 0).await.unwrap(),
        Some(vec![])
    );
    assert_eq!(
        s.roster_changes_since("alice", DOMAIN, 1).await.unwrap(),
        None
    );
    s.put_roster_item("alice", DOMAIN, &item("romeo@example.net", &[]))
        .await
        .unwrap();
    for unknown in [2, 1000, i64::MAX as u64, u64::MAX] {
        assert_eq!(
            s.roster_changes_since("alice", DOMAIN, unknown)
                .await
                .unwrap(),
            None,
            "{unknown}"
        );
    }
    assert_eq!(
        s.roster_changes_since("alice", DOMAIN, 1).await.unwrap(),
        Some(vec![])
    );
}

async fn roster_changes_since_forgets_only_pruned_removals(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    let kept = u64::from(ROSTER_REMOVALS_KEPT);
    let jid = |n: u64| format!("c{n:04}@example.net");
    // Items at versions 1..=kept+1, removed at versions kept+2..=2*kept+2.
    for n in 1..=kept + 1 {
        s.put_roster_item("alice", DOMAIN, &item(&jid(n), &[]))
            .await
            .unwrap();
    }
    let last_put = kept + 1;
    for n in 1..=kept + 1 {
        assert_eq!(
            s.remove_roster_item("alice", DOMAIN, &jid(n))
                .await
                .unwrap(),
            Some(last_put + n)
        );
    }
    let current = 2 * kept + 2;
    assert_eq!(s.roster_version("alice", DOMAIN).await.unwrap(), current);
    assert_eq!(s.roster("alice", DOMAIN).await.unwrap().items, vec![]);

    // The first removal (at last_put + 1) was pruned: a client that has not
    // seen it cannot be given a delta.
    for stale in [0, 1, last_put] {
        assert_eq!(
            s.roster_changes_since("alice", DOMAIN, stale)
                .await
                .unwrap(),
            None,
            "{stale}"
        );
    }
    // A client that has seen it gets exactly the remembered removals.
    let delta = s
        .roster_changes_since("alice", DOMAIN, last_put + 1)
        .await
        .unwrap()
        .unwrap();
    let expected: Vec<_> = (2..=kept + 1)
        .map(|n| removed(last_put + n, &jid(n)))
        .collect();
    assert_eq!(delta, expected);
    assert_eq!(
        s.roster_changes_since("alice", DOMAIN, current)
            .await
            .unwrap(),
        Some(vec![])
    );
}

async fn concurrent_roster_writes_get_distinct_versions(db: &Db) {
    account(db, "alice").await;
    let writers: Vec<_> = (0..8)
        .map(|n| {
            let s = db.storage.clone();
            tokio::spawn(async move {
                s.put_roster_item("alice", DOMAIN, &item(&format!("c{n}@example.net"), &["G"]))
                    .await
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for writer in writers {
        versions.insert(writer.await.unwrap().unwrap());
    }
    assert_eq!(versions, (1..=8).collect());
    let roster = db.storage.roster("alice", DOMAIN).await.unwrap();
    assert_eq!((roster.version, roster.items.len()), (8, 8));
    assert_eq!(
        db.storage
            .roster_changes_since("alice", DOMAIN, 0)
            .await
            .unwrap()
            .unwrap()
            .iter()
            .map(RosterChange::version)
            .collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
}

async fn pending_subscriptions_live_outside_the_roster(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    let request = "<presence from='romeo@example.net' type='subscribe'>\
                   <status>It's me, Romeo ♥</status></presence>";
    let before = SystemTime::now();
    s.add_pending_subscription("alice", DOMAIN, "romeo@example.net", request)
        .await
        .unwrap();
    // Not a roster change: no item, no version bump.
    let roster = s.roster("alice", DOMAIN).await.unwrap();
    assert_eq!((roster.version, roster.items.len()), (0, 0));
    let pending = s
        .pending_subscription("alice", DOMAIN, "romeo@example.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.jid, "romeo@example.net");
    assert_eq!(pending.stanza, request);
    assert!(pending.received_at + Duration::from_micros(1) >= before);
    assert!(pending.received_at <= SystemTime::now());
    assert_eq!(
        s.pending_subscription("alice", DOMAIN, "nurse@example.net")
            .await
            .unwrap(),
        None
    );

    // Oldest first for redelivery.
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.add_pending_subscription("alice", DOMAIN, "benvolio@example.net", "<presence n='2'/>")
        .await
        .unwrap();
    let order = |list: Vec<chorus_storage::PendingSubscription>| {
        list.into_iter().map(|p| p.jid).collect::<Vec<_>>()
    };
    assert_eq!(
        order(s.pending_subscriptions("alice", DOMAIN).await.unwrap()),
        ["romeo@example.net", "benvolio@example.net"]
    );

    // A repeated request replaces the stored one (and counts as newer).
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.add_pending_subscription("alice", DOMAIN, "romeo@example.net", "<presence n='3'/>")
        .await
        .unwrap();
    let all = s.pending_subscriptions("alice", DOMAIN).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|p| (p.jid.as_str(), p.stanza.as_str()))
            .collect::<Vec<_>>(),
        [
            ("benvolio@example.net", "<presence n='2'/>"),
            ("romeo@example.net", "<presence n='3'/>")
        ]
    );

    // Roster removal leaves the request alone; only an answer clears it.
    s.put_roster_item("alice", DOMAIN, &item("romeo@example.net", &[]))
        .await
        .unwrap();
    s.remove_roster_item("alice", DOMAIN, "romeo@example.net")
        .await
        .unwrap();
    assert!(s
        .pending_subscription("alice", DOMAIN, "romeo@example.net")
        .await
        .unwrap()
        .is_some());
    assert!(s
        .remove_pending_subscription("alice", DOMAIN, "romeo@example.net")
        .await
        .unwrap());
    assert!(!s
        .remove_pending_subscription("alice", DOMAIN, "romeo@example.net")
        .await
        .unwrap());
    assert_eq!(
        order(s.pending_subscriptions("alice", DOMAIN).await.unwrap()),
        ["benvolio@example.net"]
    );
}
