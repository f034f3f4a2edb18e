//! Offline messages: kept oldest first with the time they were stored,
//! under a per-account quota that holds against concurrent stores, deleted
//! up to an id without reusing ids.

use super::*;

on_both_backends!(
    offline_messages_come_back_oldest_first_with_their_time,
    offline_quota_is_enforced,
    concurrent_offline_stores_respect_the_quota,
    delete_offline_up_to_spares_later_messages_and_ids_are_not_reused,
);

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
