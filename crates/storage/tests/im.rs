//! Instant-messaging storage (rosters, pending subscriptions, offline
//! messages, private XML, vCards, block lists), specified once and run
//! against both backends (see `common` for how).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use chorus_storage::{
    AccountStore, ArchiveStore, Backend, BlockStore, OfflineStore, OfflineStored, PrivateStore,
    RosterChange, RosterItem, RosterStore, StorageError, Subscription, VcardStore,
    ROSTER_REMOVALS_KEPT,
};

use common::Db;

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
    offline_messages_come_back_oldest_first_with_their_time,
    offline_quota_is_enforced,
    concurrent_offline_stores_respect_the_quota,
    delete_offline_up_to_spares_later_messages_and_ids_are_not_reused,
    private_xml_is_keyed_by_name_and_namespace_and_replaced,
    vcard_set_replaces_and_delete_removes,
    block_list_is_idempotent_and_sorted,
    is_blocked_follows_the_xep_matching_rules,
    deleting_account_cascades_to_every_table,
);

const DOMAIN: &str = "example.org";

async fn account(db: &Db, localpart: &str) {
    db.storage
        .create_account(localpart, DOMAIN, &[])
        .await
        .unwrap();
}

fn item(jid: &str, groups: &[&str]) -> RosterItem {
    RosterItem {
        jid: jid.to_owned(),
        name: None,
        subscription: Subscription::None,
        ask: false,
        approved: false,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn updated(version: u64, item: RosterItem) -> RosterChange {
    RosterChange::Updated { version, item }
}

fn removed(version: u64, jid: &str) -> RosterChange {
    RosterChange::Removed {
        version,
        jid: jid.to_owned(),
    }
}

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

async fn offline_messages_come_back_oldest_first_with_their_time(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    let before = SystemTime::now();
    let mut ids = Vec::new();
    for n in 0..3 {
        let stanza = format!("<message id='m{n}'><body>ünïcödé &amp; {n}</body></message>");
        match s
            .store_offline("alice", DOMAIN, &stanza, 100)
            .await
            .unwrap()
        {
            OfflineStored::Stored(id) => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    s.store_offline("bob", DOMAIN, "<message id='bob'/>", 100)
        .await
        .unwrap();
    let after = SystemTime::now();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let messages = s.offline_messages("alice", DOMAIN, 10).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    for (n, m) in messages.iter().enumerate() {
        assert_eq!(
            m.stanza,
            format!("<message id='m{n}'><body>ünïcödé &amp; {n}</body></message>")
        );
        // Stored at microsecond precision, so up to 1µs before `before`.
        assert!(m.stored_at + Duration::from_micros(1) >= before);
        assert!(m.stored_at <= after);
    }
    assert!(messages
        .windows(2)
        .all(|w| w[0].stored_at <= w[1].stored_at));

    let first_two = s.offline_messages("alice", DOMAIN, 2).await.unwrap();
    assert_eq!(first_two, messages[..2].to_vec());
    assert_eq!(s.count_offline("alice", DOMAIN).await.unwrap(), 3);
    assert_eq!(s.count_offline("bob", DOMAIN).await.unwrap(), 1);
    assert_eq!(s.count_offline("ghost", DOMAIN).await.unwrap(), 0);
    assert_eq!(
        s.offline_messages("ghost", DOMAIN, 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        s.store_offline("ghost", DOMAIN, "<message/>", 100).await,
        Err(StorageError::NotFound)
    );
}

async fn offline_quota_is_enforced(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    assert_eq!(
        s.store_offline("alice", DOMAIN, "<message/>", 0)
            .await
            .unwrap(),
        OfflineStored::QuotaExceeded
    );
    let first = s
        .store_offline("alice", DOMAIN, "<message n='1'/>", 2)
        .await
        .unwrap();
    let second = s
        .store_offline("alice", DOMAIN, "<message n='2'/>", 2)
        .await
        .unwrap();
    assert!(matches!(first, OfflineStored::Stored(_)));
    assert!(matches!(second, OfflineStored::Stored(_)));
    assert_eq!(
        s.store_offline("alice", DOMAIN, "<message n='3'/>", 2)
            .await
            .unwrap(),
        OfflineStored::QuotaExceeded
    );
    assert_eq!(s.count_offline("alice", DOMAIN).await.unwrap(), 2);
    // The refused message left nothing behind.
    assert!(s
        .offline_messages("alice", DOMAIN, 10)
        .await
        .unwrap()
        .iter()
        .all(|m| m.stanza != "<message n='3'/>"));
    // A larger quota admits more; delivery makes room under the old one.
    assert!(matches!(
        s.store_offline("alice", DOMAIN, "<message n='4'/>", 3)
            .await
            .unwrap(),
        OfflineStored::Stored(_)
    ));
    let OfflineStored::Stored(first_id) = first else {
        unreachable!()
    };
    assert_eq!(
        s.delete_offline_up_to("alice", DOMAIN, first_id)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        s.store_offline("alice", DOMAIN, "<message n='5'/>", 3)
            .await
            .unwrap(),
        OfflineStored::Stored(_)
    ));
    assert_eq!(s.count_offline("alice", DOMAIN).await.unwrap(), 3);
}

async fn concurrent_offline_stores_respect_the_quota(db: &Db) {
    account(db, "alice").await;
    let senders: Vec<_> = (0..16)
        .map(|n| {
            let s = db.storage.clone();
            tokio::spawn(async move {
                s.store_offline("alice", DOMAIN, &format!("<message n='{n}'/>"), 5)
                    .await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut refused = 0;
    for sender in senders {
        match sender.await.unwrap().unwrap() {
            OfflineStored::Stored(id) => assert!(ids.insert(id), "id {id} twice"),
            OfflineStored::QuotaExceeded => refused += 1,
        }
    }
    assert_eq!((ids.len(), refused), (5, 11));
    assert_eq!(db.storage.count_offline("alice", DOMAIN).await.unwrap(), 5);
}

async fn delete_offline_up_to_spares_later_messages_and_ids_are_not_reused(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let OfflineStored::Stored(id) = s
            .store_offline("alice", DOMAIN, &format!("<message n='{n}'/>"), 10)
            .await
            .unwrap()
        else {
            panic!("quota")
        };
        ids.push(id);
    }
    let OfflineStored::Stored(bobs) = s
        .store_offline("bob", DOMAIN, "<message/>", 10)
        .await
        .unwrap()
    else {
        panic!("quota")
    };

    assert_eq!(
        s.delete_offline_up_to("alice", DOMAIN, ids[1])
            .await
            .unwrap(),
        2
    );
    let left = s.offline_messages("alice", DOMAIN, 10).await.unwrap();
    assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[2]]);
    // Bob's message is untouched even where its id is in alice's range.
    assert!(bobs <= ids[1]);
    assert_eq!(s.count_offline("bob", DOMAIN).await.unwrap(), 1);

    // Emptying the queue does not recycle ids: a stale "up to" from an
    // earlier fetch cannot reach a message stored afterwards.
    assert_eq!(
        s.delete_offline_up_to("alice", DOMAIN, ids[2])
            .await
            .unwrap(),
        1
    );
    let OfflineStored::Stored(next) = s
        .store_offline("alice", DOMAIN, "<message n='late'/>", 10)
        .await
        .unwrap()
    else {
        panic!("quota")
    };
    assert!(next > ids[2]);
    assert_eq!(
        s.delete_offline_up_to("alice", DOMAIN, ids[2])
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.count_offline("alice", DOMAIN).await.unwrap(), 1);
    assert_eq!(
        s.delete_offline_up_to("ghost", DOMAIN, i64::MAX)
            .await
            .unwrap(),
        0
    );
}

async fn private_xml_is_keyed_by_name_and_namespace_and_replaced(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    let bookmarks = "<storage xmlns='storage:bookmarks'>\
                     <conference name='Ω \"quoted\" &amp; more' jid='room@muc.example'/>\
                     </storage>";
    s.set_private_xml("alice", DOMAIN, "storage", "storage:bookmarks", bookmarks)
        .await
        .unwrap();
    s.set_private_xml(
        "alice",
        DOMAIN,
        "storage",
        "storage:rosternotes",
        "<storage xmlns='storage:rosternotes'/>",
    )
    .await
    .unwrap();
    s.set_private_xml("alice", DOMAIN, "prefs", "storage:bookmarks", "<prefs/>")
        .await
        .unwrap();

    let get = |who: &'static str, name: &'static str, ns: &'static str| {
        s.private_xml(who, DOMAIN, name, ns)
    };
    assert_eq!(
        get("alice", "storage", "storage:bookmarks").await.unwrap(),
        Some(bookmarks.to_owned())
    );
    assert_eq!(
        get("alice", "storage", "storage:rosternotes")
            .await
            .unwrap()
            .as_deref(),
        Some("<storage xmlns='storage:rosternotes'/>")
    );
    assert_eq!(
        get("alice", "prefs", "storage:bookmarks")
            .await
            .unwrap()
            .as_deref(),
        Some("<prefs/>")
    );
    assert_eq!(get("alice", "other", "urn:x").await.unwrap(), None);
    assert_eq!(
        get("bob", "storage", "storage:bookmarks").await.unwrap(),
        None
    );

    // A set replaces the whole fragment under its key, and only that one.
    s.set_private_xml(
        "alice",
        DOMAIN,
        "storage",
        "storage:bookmarks",
        "<storage xmlns='storage:bookmarks'/>",
    )
    .await
    .unwrap();
    assert_eq!(
        get("alice", "storage", "storage:bookmarks")
            .await
            .unwrap()
            .as_deref(),
        Some("<storage xmlns='storage:bookmarks'/>")
    );
    assert_eq!(
        get("alice", "prefs", "storage:bookmarks")
            .await
            .unwrap()
            .as_deref(),
        Some("<prefs/>")
    );

    assert_eq!(
        s.set_private_xml("ghost", DOMAIN, "storage", "storage:bookmarks", "<x/>")
            .await,
        Err(StorageError::NotFound)
    );
}

async fn vcard_set_replaces_and_delete_removes(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    assert_eq!(s.vcard("alice", DOMAIN).await.unwrap(), None);
    let card = "<vCard xmlns='vcard-temp'><FN>Alice Ærø</FN></vCard>";
    s.set_vcard("alice", DOMAIN, card).await.unwrap();
    s.set_vcard(
        "bob",
        DOMAIN,
        "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>",
    )
    .await
    .unwrap();
    assert_eq!(
        s.vcard("alice", DOMAIN).await.unwrap().as_deref(),
        Some(card)
    );

    let new_card = "<vCard xmlns='vcard-temp'><NICKNAME>al</NICKNAME></vCard>";
    s.set_vcard("alice", DOMAIN, new_card).await.unwrap();
    assert_eq!(
        s.vcard("alice", DOMAIN).await.unwrap().as_deref(),
        Some(new_card)
    );

    assert!(s.delete_vcard("alice", DOMAIN).await.unwrap());
    assert_eq!(s.vcard("alice", DOMAIN).await.unwrap(), None);
    assert!(!s.delete_vcard("alice", DOMAIN).await.unwrap());
    assert_eq!(
        s.vcard("bob", DOMAIN).await.unwrap().as_deref(),
        Some("<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>")
    );

    assert_eq!(
        s.set_vcard("ghost", DOMAIN, card).await,
        Err(StorageError::NotFound)
    );
    assert!(!s.delete_vcard("ghost", DOMAIN).await.unwrap());
}

async fn block_list_is_idempotent_and_sorted(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        s.block(
            "alice",
            DOMAIN,
            &["b@x.example", "a@x.example/res", "b@x.example"]
        )
        .await
        .unwrap(),
        2
    );
    assert_eq!(
        s.block("alice", DOMAIN, &["b@x.example", "Z.example", "_.example"])
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.block("alice", DOMAIN, &["b@x.example"]).await.unwrap(), 0);
    assert_eq!(s.block("alice", DOMAIN, &[]).await.unwrap(), 0);
    // Byte-wise: 'Z' < '_' < 'a'.
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        ["Z.example", "_.example", "a@x.example/res", "b@x.example"]
    );
    s.block("bob", DOMAIN, &["b@x.example"]).await.unwrap();

    assert_eq!(
        s.unblock(
            "alice",
            DOMAIN,
            &["b@x.example", "never@x.example", "b@x.example"]
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        ["Z.example", "_.example", "a@x.example/res"]
    );
    assert_eq!(s.unblock_all("alice", DOMAIN).await.unwrap(), 3);
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(s.unblock_all("alice", DOMAIN).await.unwrap(), 0);
    // Bob's list is his own.
    assert_eq!(s.blocklist("bob", DOMAIN).await.unwrap(), ["b@x.example"]);

    assert_eq!(
        s.block("ghost", DOMAIN, &["b@x.example"]).await,
        Err(StorageError::NotFound)
    );
    assert_eq!(
        s.block("ghost", DOMAIN, &[]).await,
        Err(StorageError::NotFound)
    );
    assert_eq!(
        s.unblock("ghost", DOMAIN, &["b@x.example"]).await.unwrap(),
        0
    );
    assert!(!s.is_blocked("ghost", DOMAIN, "b@x.example").await.unwrap());
}

async fn is_blocked_follows_the_xep_matching_rules(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    s.block(
        "alice",
        DOMAIN,
        &[
            "romeo@montague.example",
            "evil.example",
            "nurse@capulet.example/balcony",
            "capulet.example/chamber",
        ],
    )
    .await
    .unwrap();
    let cases = [
        // A bare JID covers itself and every resource of it.
        ("romeo@montague.example", true),
        ("romeo@montague.example/orchard", true),
        ("benvolio@montague.example", false),
        ("montague.example", false),
        // A domain covers itself, its users and its resources.
        ("evil.example", true),
        ("imp@evil.example", true),
        ("imp@evil.example/x", true),
        ("evil.example/component", true),
        ("sub.evil.example", false),
        ("evil.example.org", false),
        // A full JID covers only itself.
        ("nurse@capulet.example/balcony", true),
        ("nurse@capulet.example/kitchen", false),
        ("nurse@capulet.example", false),
        // domain/resource covers that resource of the domain and of its users.
        ("capulet.example/chamber", true),
        ("juliet@capulet.example/chamber", true),
        ("capulet.example/hall", false),
        ("capulet.example", false),
    ];
    for (jid, blocked) in cases {
        assert_eq!(
            s.is_blocked("alice", DOMAIN, jid).await.unwrap(),
            blocked,
            "{jid}"
        );
    }
    assert!(!s
        .is_blocked("bob", DOMAIN, "romeo@montague.example")
        .await
        .unwrap());
}

/// Every table, and which of them hold per-account rows.
const PER_ACCOUNT_TABLES: &[&str] = &[
    "scram_credentials",
    "roster_versions",
    "roster_items",
    "roster_groups",
    "roster_tombstones",
    "roster_pending_in",
    "offline_sequences",
    "offline_messages",
    "private_xml",
    "vcards",
    "blocked_jids",
    "archive_sequences",
    "archive_messages",
    "archive_prefs",
    "archive_pref_jids",
];
const OTHER_TABLES: &[&str] = &["_sqlx_migrations", "accounts"];

async fn populate(db: &Db, localpart: &str) {
    let s = &db.storage;
    s.create_account(localpart, DOMAIN, &[]).await.unwrap();
    s.set_credentials(
        localpart,
        DOMAIN,
        &[chorus_storage::StoredCredentials {
            hash: "SHA-256".into(),
            salt: vec![1; 16],
            iterations: 4096,
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
        }],
    )
    .await
    .unwrap();
    s.put_roster_item(localpart, DOMAIN, &item("kept@example.net", &["A", "B"]))
        .await
        .unwrap();
    s.put_roster_item(localpart, DOMAIN, &item("gone@example.net", &["C"]))
        .await
        .unwrap();
    s.remove_roster_item(localpart, DOMAIN, "gone@example.net")
        .await
        .unwrap();
    s.add_pending_subscription(localpart, DOMAIN, "asker@example.net", "<presence/>")
        .await
        .unwrap();
    s.store_offline(localpart, DOMAIN, "<message/>", 10)
        .await
        .unwrap();
    s.set_private_xml(localpart, DOMAIN, "storage", "storage:bookmarks", "<x/>")
        .await
        .unwrap();
    s.set_vcard(localpart, DOMAIN, "<vCard xmlns='vcard-temp'/>")
        .await
        .unwrap();
    s.block(localpart, DOMAIN, &["spam.example"]).await.unwrap();
    s.archive_append(
        localpart,
        DOMAIN,
        &chorus_storage::ArchivedMessage {
            stanza_id: "a1".into(),
            timestamp: SystemTime::now(),
            with: "romeo@example.net/r".into(),
            outgoing: false,
            stanza: "<message/>".into(),
        },
    )
    .await
    .unwrap();
    s.set_archive_prefs(
        localpart,
        DOMAIN,
        &chorus_storage::ArchivePrefs {
            default: chorus_storage::ArchiveDefault::Roster,
            always: vec!["romeo@example.net".into()],
            never: vec![],
        },
    )
    .await
    .unwrap();
}

async fn deleting_account_cascades_to_every_table(db: &Db) {
    let raw = &db.raw().await;

    // The list above is the whole schema, so a table added later without
    // being listed (and so without this test checking its cascade) fails here.
    let listing = match db.storage.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    let tables: BTreeSet<String> = sqlx::query_scalar::<_, String>(listing)
        .fetch_all(raw)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let known: BTreeSet<String> = PER_ACCOUNT_TABLES
        .iter()
        .chain(OTHER_TABLES)
        .map(|t| t.to_string())
        .collect();
    assert_eq!(tables, known);

    populate(db, "alice").await;
    populate(db, "bob").await;
    let counts = || async move {
        let mut counts = Vec::new();
        for table in PER_ACCOUNT_TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(raw)
                .await
                .unwrap();
            counts.push((*table, n));
        }
        counts
    };
    let both = counts().await;
    for (table, n) in &both {
        // Something to delete in every table, or the check below proves
        // nothing about it.
        assert!(*n >= 2, "{table} holds {n} rows for two accounts");
    }

    assert!(db.storage.delete_account("alice", DOMAIN).await.unwrap());
    // Exactly half of every table is gone: the database removed alice's
    // rows and left bob's.
    let after = counts().await;
    let halves: Vec<_> = both.iter().map(|(t, n)| (*t, n / 2)).collect();
    assert_eq!(after, halves);

    // A new account under the old name starts from nothing.
    let s = &db.storage;
    s.create_account("alice", DOMAIN, &[]).await.unwrap();
    let roster = s.roster("alice", DOMAIN).await.unwrap();
    assert_eq!((roster.version, roster.items.len()), (0, 0));
    assert_eq!(
        s.pending_subscriptions("alice", DOMAIN).await.unwrap(),
        vec![]
    );
    assert_eq!(s.count_offline("alice", DOMAIN).await.unwrap(), 0);
    assert_eq!(s.vcard("alice", DOMAIN).await.unwrap(), None);
    assert_eq!(
        s.private_xml("alice", DOMAIN, "storage", "storage:bookmarks")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.blocklist("alice", DOMAIN).await.unwrap(),
        Vec::<String>::new()
    );
    // Bob still has everything.
    assert_eq!(s.roster("bob", DOMAIN).await.unwrap().items.len(), 1);
    assert_eq!(s.count_offline("bob", DOMAIN).await.unwrap(), 1);
    assert!(s.is_blocked("bob", DOMAIN, "x@spam.example").await.unwrap());
}
