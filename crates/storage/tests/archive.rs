//! Message archive storage (XEP-0313, version 1.1.1) and archiving
//! preferences (XEP-0441, version 0.2.0), specified once and run against
//! both backends (see `common` for how): appends and their ordering, the
//! query filters, paging in both directions with an exact `complete`, the
//! count, both purges, preferences, and the cascade on account deletion.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_storage::{
    AccountStore, ArchiveCursor, ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery,
    ArchiveStore, ArchivedMessage, StorageError,
};

use common::Db;

on_both_backends!(
    appended_messages_come_back_with_every_field,
    places_are_strictly_increasing_whatever_the_clock,
    taken_stanza_id_is_already_exists_and_writes_nothing,
    one_message_is_removed_by_its_id_from_its_own_archive_only,
    a_batch_spans_accounts_keeps_order_and_can_be_written_twice,
    a_batch_larger_than_one_statement_places_every_message,
    batches_and_other_writers_interleave_without_failing,
    a_batch_dropped_half_way_leaves_the_database_usable,
    missing_account_reads_empty_and_refuses_writes,
    with_filter_matches_bare_and_full_jids,
    start_and_end_are_inclusive,
    before_id_and_after_id_are_exclusive_and_combine_with_paging,
    ids_fetch_exactly_those_messages,
    unknown_ids_are_not_found,
    forward_paging_is_complete_only_on_the_last_page,
    backward_paging_is_complete_only_on_the_first_page,
    count_ignores_the_cursor_and_limit,
    purge_by_age_deletes_the_oldest_of_every_account_in_batches,
    purge_account_deletes_only_that_archive,
    deleting_the_account_deletes_its_archive_and_prefs,
    prefs_round_trip_sorted_and_deduplicated,
    concurrent_appends_get_distinct_places_in_commit_order,
);

const DOMAIN: &str = "example.org";

async fn account(db: &Db, localpart: &str) {
    db.storage
        .create_account(localpart, DOMAIN, &[])
        .await
        .unwrap();
}

/// A fixed, round instant plus `secs`: stored times are exact microseconds.
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn msg(id: &str, secs: u64, with: &str, outgoing: bool) -> ArchivedMessage {
    ArchivedMessage {
        stanza_id: id.to_owned(),
        timestamp: at(secs),
        with: with.to_owned(),
        outgoing,
        stanza: format!("<message xmlns='jabber:client' id='{id}'><body>{id}</body></message>"),
    }
}

fn query() -> ArchiveQuery {
    ArchiveQuery {
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        cursor: ArchiveCursor::First,
        limit: 100,
    }
}

fn ids(page: &ArchivePage) -> Vec<&str> {
    page.messages.iter().map(|m| m.stanza_id.as_str()).collect()
}

/// `n` messages `m0..m{n-1}`, one second apart from `at(0)`, alternating
/// between two contacts (romeo's two resources and the nurse).
async fn fill(db: &Db, localpart: &str, n: usize) -> Vec<ArchivedMessage> {
    let all: Vec<ArchivedMessage> = (0..n)
        .map(|i| {
            let with = match i % 3 {
                0 => "romeo@example.net/orchard",
                1 => "romeo@example.net/balcony",
                _ => "nurse@example.net",
            };
            msg(&format!("m{i}"), i as u64, with, i % 2 == 0)
        })
        .collect();
    db.storage
        .archive_append_many(localpart, DOMAIN, &all)
        .await
        .unwrap();
    all
}

async fn appended_messages_come_back_with_every_field(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    let a = msg("a", 1, "romeo@example.net/orchard", true);
    let b = ArchivedMessage {
        stanza: "<message xmlns='jabber:client'><body>«ρωμαίος» &amp; 'x'</body></message>".into(),
        ..msg("b", 2, "nurse@example.net", false)
    };
    s.archive_append("alice", DOMAIN, &a).await.unwrap();
    s.archive_append("alice", DOMAIN, &b).await.unwrap();
    let page = s.archive_query("alice", DOMAIN, &query()).await.unwrap();
    assert_eq!(page.messages, vec![a, b]);
    assert!(page.complete);
}

async fn places_are_strictly_increasing_whatever_the_clock(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    // The same instant twice, then a clock that stepped back: archive order
    // is append order, and every message has its own instant.
    s.archive_append("alice", DOMAIN, &msg("x", 10, "a@b", true))
        .await
        .unwrap();
    s.archive_append("alice", DOMAIN, &msg("y", 10, "a@b", true))
        .await
        .unwrap();
    s.archive_append_many(
        "alice",
        DOMAIN,
        &[msg("z", 5, "a@b", true), msg("w", 5, "a@b", true)],
    )
    .await
    .unwrap();
    let page = s.archive_query("alice", DOMAIN, &query()).await.unwrap();
    assert_eq!(ids(&page), ["x", "y", "z", "w"]);
    let us = Duration::from_micros(1);
    let times: Vec<SystemTime> = page.messages.iter().map(|m| m.timestamp).collect();
    assert_eq!(
        times,
        [at(10), at(10) + us, at(10) + 2 * us, at(10) + 3 * us]
    );

    // Purging does not hand old places out again.
    s.archive_purge_account("alice", DOMAIN).await.unwrap();
    s.archive_append("alice", DOMAIN, &msg("v", 1, "a@b", true))
        .await
        .unwrap();
    let page = s.archive_query("alice", DOMAIN, &query()).await.unwrap();
    assert_eq!(page.messages[0].timestamp, at(10) + 4 * us);
}

async fn a_batch_spans_accounts_keeps_order_and_can_be_written_twice(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    let (a1, b1, a2, gone) = (
        msg("a1", 5, "b@x", true),
        msg("b1", 5, "a@x", false),
        msg("a2", 1, "b@x", true),
        msg("g1", 1, "b@x", true),
    );
    let batch = [
        ("alice", DOMAIN, &a1),
        ("bob", DOMAIN, &b1),
        ("nobody", DOMAIN, &gone),
        ("alice", DOMAIN, &a2),
    ];
    s.archive_append_batch(&batch).await.unwrap();
    // A writer that died before it learnt of its commit writes it again.
    s.archive_append_batch(&batch).await.unwrap();
    // In batch order, whatever the clock said (a2 is older than a1).
    assert_eq!(
        ids(&s.archive_query("alice", DOMAIN, &query()).await.unwrap()),
        ["a1", "a2"]
    );
    assert_eq!(
        ids(&s.archive_query("bob", DOMAIN, &query()).await.unwrap()),
        ["b1"]
    );
}

/// More accounts and rows than one of the batch's statements carries, each
/// account twice, with the later message older by the clock: every row is
/// written, in batch order, and the next append lands after the batch.
/// A batch reads (its accounts) before it writes; on SQLite that must not
/// turn into "database is locked" when another writer commits in between.
/// Several batches and single appends at once, each must succeed.
async fn batches_and_other_writers_interleave_without_failing(db: &Db) {
    for u in ["a", "b", "c"] {
        account(db, u).await;
    }
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let s = db.storage.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u64 {
                let x = msg(&format!("a-{t}-{i}"), i, "b@x", true);
                let y = msg(&format!("b-{t}-{i}"), i, "a@x", false);
                s.archive_append_batch(&[("a", DOMAIN, &x), ("b", DOMAIN, &y)])
                    .await?;
            }
            Ok::<_, chorus_storage::StorageError>(())
        }));
    }
    for t in 0..2u64 {
        let s = db.storage.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u64 {
                s.archive_append("c", DOMAIN, &msg(&format!("c-{t}-{i}"), i, "a@x", true))
                    .await?;
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let s = &db.storage;
    assert_eq!(s.archive_count("a", DOMAIN, &query()).await.unwrap(), 100);
    assert_eq!(s.archive_count("b", DOMAIN, &query()).await.unwrap(), 100);
    assert_eq!(s.archive_count("c", DOMAIN, &query()).await.unwrap(), 50);
}

/// A caller can be dropped at any await: an actor killed on purpose drops
/// its storage call where it stands. Whatever point a batch was dropped at,
/// the next one succeeds (no connection comes back inside a transaction
/// holding the write lock), and each message is written once.
async fn a_batch_dropped_half_way_leaves_the_database_usable(db: &Db) {
    account(db, "a").await;
    let s = &db.storage;
    let n = 300u64;
    for i in 0..n {
        let m = msg(&format!("x{i}"), i, "b@x", true);
        let batch = [("a", DOMAIN, &m)];
        // Cut off after 0 to about 3 ms: every stage of the transaction.
        let cut = Duration::from_micros((i * 37) % 3000);
        let _ = tokio::time::timeout(cut, s.archive_append_batch(&batch)).await;
        s.archive_append_batch(&batch).await.unwrap();
    }
    assert_eq!(s.archive_count("a", DOMAIN, &query()).await.unwrap(), n);
}

async fn a_batch_larger_than_one_statement_places_every_message(db: &Db) {
    let s = &db.storage;
    let users: Vec<String> = (0..150).map(|i| format!("u{i}")).collect();
    for u in &users {
        account(db, u).await;
    }
    let messages: Vec<(String, ArchivedMessage)> = (0..2)
        .flat_map(|round| {
            users.iter().map(move |u| {
                (
                    u.clone(),
                    msg(&format!("{u}-{round}"), 10 - round, "c@x", true),
                )
            })
        })
        .collect();
    let batch: Vec<(&str, &str, &ArchivedMessage)> = messages
        .iter()
        .map(|(u, m)| (u.as_str(), DOMAIN, m))
        .collect();
    s.archive_append_batch(&batch).await.unwrap();
    for u in &users {
        s.archive_append(u, DOMAIN, &msg(&format!("{u}-2"), 1, "c@x", true))
            .await
            .unwrap();
        let page = s.archive_query(u, DOMAIN, &query()).await.unwrap();
        let expected = [format!("{u}-0"), format!("{u}-1"), format!("{u}-2")];
        assert_eq!(
            ids(&page),
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
        let us = Duration::from_micros(1);
        let times: Vec<SystemTime> = page.messages.iter().map(|m| m.timestamp).collect();
        assert_eq!(times, [at(10), at(10) + us, at(10) + 2 * us]);
    }
}

async fn one_message_is_removed_by_its_id_from_its_own_archive_only(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    for (who, id) in [("alice", "m1"), ("alice", "m2"), ("bob", "m1")] {
        s.archive_append(who, DOMAIN, &msg(id, 1, "a@b", true))
            .await
            .unwrap();
    }
    assert!(s.archive_remove("alice", DOMAIN, "m1").await.unwrap());
    assert!(!s.archive_remove("alice", DOMAIN, "m1").await.unwrap());
    assert!(!s.archive_remove("nobody", DOMAIN, "m2").await.unwrap());
    assert_eq!(
        ids(&s.archive_query("alice", DOMAIN, &query()).await.unwrap()),
        ["m2"]
    );
    assert_eq!(
        ids(&s.archive_query("bob", DOMAIN, &query()).await.unwrap()),
        ["m1"]
    );
}

async fn taken_stanza_id_is_already_exists_and_writes_nothing(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    s.archive_append("alice", DOMAIN, &msg("same", 1, "a@b", true))
        .await
        .unwrap();
    assert_eq!(
        s.archive_append("alice", DOMAIN, &msg("same", 2, "a@b", true))
            .await,
        Err(StorageError::AlreadyExists)
    );
    // A batch with a taken id writes none of its messages.
    assert_eq!(
        s.archive_append_many(
            "alice",
            DOMAIN,
            &[msg("new", 3, "a@b", true), msg("same", 4, "a@b", true)],
        )
        .await,
        Err(StorageError::AlreadyExists)
    );
    assert_eq!(
        ids(&s.archive_query("alice", DOMAIN, &query()).await.unwrap()),
        ["same"]
    );
    // Ids are per archive: bob may hold the same one.
    s.archive_append("bob", DOMAIN, &msg("same", 1, "a@b", true))
        .await
        .unwrap();
}

async fn missing_account_reads_empty_and_refuses_writes(db: &Db) {
    let s = &db.storage;
    assert_eq!(
        s.archive_append("ghost", DOMAIN, &msg("a", 1, "a@b", true))
            .await,
        Err(StorageError::NotFound)
    );
    let page = s.archive_query("ghost", DOMAIN, &query()).await.unwrap();
    assert!(page.messages.is_empty() && page.complete);
    assert_eq!(s.archive_count("ghost", DOMAIN, &query()).await.unwrap(), 0);
    assert_eq!(s.archive_prefs("ghost", DOMAIN).await.unwrap(), None);
    let prefs = ArchivePrefs {
        default: ArchiveDefault::Never,
        always: vec![],
        never: vec![],
    };
    assert_eq!(
        s.set_archive_prefs("ghost", DOMAIN, &prefs).await,
        Err(StorageError::NotFound)
    );
    assert_eq!(s.archive_purge_account("ghost", DOMAIN).await.unwrap(), 0);
}

async fn with_filter_matches_bare_and_full_jids(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    fill(db, "alice", 9).await;
    let with = |w: &str| ArchiveQuery {
        with: Some(w.to_owned()),
        ..query()
    };
    let page = s
        .archive_query("alice", DOMAIN, &with("romeo@example.net"))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["m0", "m1", "m3", "m4", "m6", "m7"]);
    let page = s
        .archive_query("alice", DOMAIN, &with("romeo@example.net/balcony"))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["m1", "m4", "m7"]);
    let page = s
        .archive_query("alice", DOMAIN, &with("nurse@example.net"))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["m2", "m5", "m8"]);
    // A resource the contact never used, and a prefix of a real JID.
    for w in ["nurse@example.net/x", "romeo@example.ne"] {
        let page = s.archive_query("alice", DOMAIN, &with(w)).await.unwrap();
        assert!(page.messages.is_empty() && page.complete, "{w}");
    }
    // The filter pages like everything else, backwards too.
    let page = s
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                cursor: ArchiveCursor::Last,
                limit: 2,
                ..with("romeo@example.net")
            },
        )
        .await
        .unwrap();
    assert_eq!((ids(&page), page.complete), (vec!["m6", "m7"], false));
}

async fn start_and_end_are_inclusive(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    fill(db, "alice", 10).await;
    let page = s
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                start: Some(at(3)),
                end: Some(at(6)),
                ..query()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&page), ["m3", "m4", "m5", "m6"]);
    let page = s
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                start: Some(at(3) + Duration::from_micros(1)),
                with: Some("nurse@example.net".into()),
                ..query()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&page), ["m5", "m8"]);
    // An empty window.
    let page = s
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                start: Some(at(7)),
                end: Some(at(6)),
                ..query()
            },
        )
        .await
        .unwrap();
    assert!(page.messages.is_empty() && page.complete);
}

async fn before_id_and_after_id_are_exclusive_and_combine_with_paging(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    fill(db, "alice", 10).await;
    let between = ArchiveQuery {
        after_id: Some("m2".into()),
        before_id: Some("m8".into()),
        ..query()
    };
    let page = s.archive_query("alice", DOMAIN, &between).await.unwrap();
    assert_eq!(ids(&page), ["m3", "m4", "m5", "m6", "m7"]);
    // The last two of that range, then the two before them.
    let last = ArchiveQuery {
        cursor: ArchiveCursor::Last,
        limit: 2,
        ..between.clone()
    };
    let page = s.archive_query("alice", DOMAIN, &last).await.unwrap();
    assert_eq!((ids(&page), page.complete), (vec!["m6", "m7"], false));
    let page = s
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                cursor: ArchiveCursor::Before("m6".into()),
                ..last.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!((ids(&page), page.complete), (vec!["m4", "m5"], false));
    let page = s
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                cursor: ArchiveCursor::Before("m4".into()),
                ..last
            },
        )
        .await
        .unwrap();
    assert_eq!((ids(&page), page.complete), (vec!["m3"], true));
}

async fn ids_fetch_exactly_those_messages(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    fill(db, "alice", 10).await;
    let q = ArchiveQuery {
        ids: vec!["m7".into(), "m2".into(), "m5".into(), "m2".into()],
        ..query()
    };
    let page = s.archive_query("alice", DOMAIN, &q).await.unwrap();
    // Archive order, each once.
    assert_eq!((ids(&page), page.complete), (vec!["m2", "m5", "m7"], true));
    assert_eq!(s.archive_count("alice", DOMAIN, &q).await.unwrap(), 3);
    // Paged and filtered like any result set.
    let page = s
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                limit: 1,
                cursor: ArchiveCursor::After("m2".into()),
                ..q.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!((ids(&page), page.complete), (vec!["m5"], false));
    let page = s
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                with: Some("nurse@example.net".into()),
                ..q
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&page), ["m2", "m5"]);
}

async fn unknown_ids_are_not_found(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    fill(db, "alice", 3).await;
    fill(db, "bob", 5).await;
    // bob's m4 is not in alice's archive.
    let queries = [
        ArchiveQuery {
            cursor: ArchiveCursor::After("m4".into()),
            ..query()
        },
        ArchiveQuery {
            cursor: ArchiveCursor::Before("nope".into()),
            ..query()
        },
        ArchiveQuery {
            after_id: Some("m4".into()),
            ..query()
        },
        ArchiveQuery {
            before_id: Some("nope".into()),
            ..query()
        },
        ArchiveQuery {
            ids: vec!["m1".into(), "m4".into()],
            ..query()
        },
    ];
    for q in &queries {
        assert_eq!(
            s.archive_query("alice", DOMAIN, q).await,
            Err(StorageError::NotFound),
            "{q:?}"
        );
        assert_eq!(
            s.archive_count("alice", DOMAIN, q).await.map(|_| ()),
            if q.cursor == ArchiveCursor::First {
                Err(StorageError::NotFound)
            } else {
                // The count ignores the cursor.
                Ok(())
            },
            "{q:?}"
        );
    }
}

/// Pages through everything with `next` until `complete`, checking that
/// only the last page says so; returns the ids in the order received.
async fn page_all(
    db: &Db,
    limit: u32,
    first: ArchiveCursor,
    next: impl Fn(&ArchivePage) -> ArchiveCursor,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor = first;
    loop {
        let page = db
            .storage
            .archive_query(
                "alice",
                DOMAIN,
                &ArchiveQuery {
                    cursor,
                    limit,
                    ..query()
                },
            )
            .await
            .unwrap();
        pages.push(ids(&page).iter().map(|s| s.to_string()).collect());
        if page.complete {
            return pages;
        }
        assert_eq!(
            page.messages.len(),
            limit as usize,
            "only the last page is short"
        );
        cursor = next(&page);
    }
}

async fn forward_paging_is_complete_only_on_the_last_page(db: &Db) {
    account(db, "alice").await;
    fill(db, "alice", 25).await;
    let after_last =
        |p: &ArchivePage| ArchiveCursor::After(p.messages.last().unwrap().stanza_id.clone());
    let pages = page_all(db, 10, ArchiveCursor::First, after_last).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let all: Vec<String> = pages.concat();
    let expected: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
    assert_eq!(all, expected);

    // A page that ends exactly at the end of the archive is complete: no
    // empty page is needed to find out.
    let pages = page_all(db, 5, ArchiveCursor::First, after_last).await;
    assert_eq!(pages.len(), 5);
    assert_eq!(pages.concat(), expected);

    // After the newest message: an empty, complete page.
    let page = db
        .storage
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                cursor: ArchiveCursor::After("m24".into()),
                ..query()
            },
        )
        .await
        .unwrap();
    assert!(page.messages.is_empty() && page.complete);
}

async fn backward_paging_is_complete_only_on_the_first_page(db: &Db) {
    account(db, "alice").await;
    fill(db, "alice", 25).await;
    let before_first =
        |p: &ArchivePage| ArchiveCursor::Before(p.messages.first().unwrap().stanza_id.clone());
    let pages = page_all(db, 10, ArchiveCursor::Last, before_first).await;
    // Each page is chronological; the pages come newest first.
    let expected: Vec<Vec<String>> = [15..25, 5..15, 0..5]
        .into_iter()
        .map(|r| r.map(|i| format!("m{i}")).collect())
        .collect();
    assert_eq!(pages, expected);
    let pages = page_all(db, 25, ArchiveCursor::Last, before_first).await;
    assert_eq!(pages.len(), 1);
    let page = db
        .storage
        .archive_query(
            "alice",
            DOMAIN,
            &ArchiveQuery {
                cursor: ArchiveCursor::Before("m0".into()),
                ..query()
            },
        )
        .await
        .unwrap();
    assert!(page.messages.is_empty() && page.complete);
}

async fn count_ignores_the_cursor_and_limit(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    fill(db, "alice", 12).await;
    let count =
        |q: ArchiveQuery| async move { s.archive_count("alice", DOMAIN, &q).await.unwrap() };
    assert_eq!(count(query()).await, 12);
    assert_eq!(
        count(ArchiveQuery {
            cursor: ArchiveCursor::After("m3".into()),
            limit: 1,
            ..query()
        })
        .await,
        12
    );
    assert_eq!(
        count(ArchiveQuery {
            with: Some("romeo@example.net".into()),
            ..query()
        })
        .await,
        8
    );
    assert_eq!(
        count(ArchiveQuery {
            with: Some("romeo@example.net/orchard".into()),
            start: Some(at(3)),
            ..query()
        })
        .await,
        3
    );
    assert_eq!(
        count(ArchiveQuery {
            after_id: Some("m9".into()),
            ..query()
        })
        .await,
        2
    );
}

async fn purge_by_age_deletes_the_oldest_of_every_account_in_batches(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    // More than two purge batches in all, with every message of alice's
    // sharing its instant with one of bob's (ties across accounts).
    let batch = |prefix: &str, n: u64| -> Vec<ArchivedMessage> {
        (0..n)
            .map(|i| msg(&format!("{prefix}{i}"), i / 1000, "a@b", true))
            .collect()
    };
    // Seconds 0..=7 for alice (8000 messages), 0..=3 for bob (4000).
    s.archive_append_many("alice", DOMAIN, &batch("a", 8_000))
        .await
        .unwrap();
    s.archive_append_many("bob", DOMAIN, &batch("b", 4_000))
        .await
        .unwrap();
    // Places were spread by a microsecond each: alice's 1000 messages of
    // second k sit in [k s, k s + 999 us].
    let deleted = s.archive_purge_older_than(at(2)).await.unwrap();
    assert_eq!(deleted, 4_000);
    let left = |who: &'static str| async move {
        s.archive_query(
            who,
            DOMAIN,
            &ArchiveQuery {
                limit: 1,
                ..query()
            },
        )
        .await
        .unwrap()
        .messages[0]
            .stanza_id
            .clone()
    };
    assert_eq!(left("alice").await, "a2000");
    assert_eq!(left("bob").await, "b2000");
    assert_eq!(
        s.archive_count("alice", DOMAIN, &query()).await.unwrap(),
        6_000
    );
    assert_eq!(
        s.archive_count("bob", DOMAIN, &query()).await.unwrap(),
        2_000
    );
    // Everything older than now: both archives empty.
    let deleted = s.archive_purge_older_than(SystemTime::now()).await.unwrap();
    assert_eq!(deleted, 8_000);
    assert_eq!(
        s.archive_purge_older_than(SystemTime::now()).await.unwrap(),
        0
    );
}

async fn purge_account_deletes_only_that_archive(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    account(db, "bob").await;
    let many: Vec<ArchivedMessage> = (0..6_001)
        .map(|i| msg(&format!("a{i}"), i, "a@b", true))
        .collect();
    s.archive_append_many("alice", DOMAIN, &many).await.unwrap();
    fill(db, "bob", 3).await;
    assert_eq!(
        s.archive_purge_account("alice", DOMAIN).await.unwrap(),
        6_001
    );
    assert_eq!(s.archive_count("alice", DOMAIN, &query()).await.unwrap(), 0);
    assert_eq!(s.archive_count("bob", DOMAIN, &query()).await.unwrap(), 3);
    assert_eq!(s.archive_purge_account("alice", DOMAIN).await.unwrap(), 0);
}

async fn deleting_the_account_deletes_its_archive_and_prefs(db: &Db) {
    let s = &db.storage;
    let raw = &db.raw().await;
    for who in ["alice", "bob"] {
        account(db, who).await;
        fill(db, who, 4).await;
        s.set_archive_prefs(
            who,
            DOMAIN,
            &ArchivePrefs {
                default: ArchiveDefault::Roster,
                always: vec!["x@y".into()],
                never: vec!["z@y".into()],
            },
        )
        .await
        .unwrap();
    }
    let count = |table: &'static str| async move {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(raw)
            .await
            .unwrap();
        n
    };
    let tables = [
        "archive_messages",
        "archive_sequences",
        "archive_prefs",
        "archive_pref_jids",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(count(t).await);
    }
    assert_eq!(before, [8, 2, 2, 4]);
    assert!(s.delete_account("alice", DOMAIN).await.unwrap());
    let mut after = Vec::new();
    for t in tables {
        after.push(count(t).await);
    }
    assert_eq!(after, [4, 1, 1, 2]);
    // A new alice starts from nothing.
    account(db, "alice").await;
    assert_eq!(s.archive_count("alice", DOMAIN, &query()).await.unwrap(), 0);
    assert_eq!(s.archive_prefs("alice", DOMAIN).await.unwrap(), None);
}

async fn prefs_round_trip_sorted_and_deduplicated(db: &Db) {
    let s = &db.storage;
    account(db, "alice").await;
    assert_eq!(s.archive_prefs("alice", DOMAIN).await.unwrap(), None);
    let set = ArchivePrefs {
        default: ArchiveDefault::Roster,
        always: vec!["romeo@example.net".into(), "b@x".into(), "b@x".into()],
        never: vec!["nurse@example.net/r".into()],
    };
    s.set_archive_prefs("alice", DOMAIN, &set).await.unwrap();
    assert_eq!(
        s.archive_prefs("alice", DOMAIN).await.unwrap(),
        Some(ArchivePrefs {
            default: ArchiveDefault::Roster,
            always: vec!["b@x".into(), "romeo@example.net".into()],
            never: vec!["nurse@example.net/r".into()],
        })
    );
    // A set replaces everything, lists included.
    let empty = ArchivePrefs {
        default: ArchiveDefault::Never,
        always: vec![],
        never: vec![],
    };
    s.set_archive_prefs("alice", DOMAIN, &empty).await.unwrap();
    assert_eq!(
        s.archive_prefs("alice", DOMAIN).await.unwrap(),
        Some(empty.clone())
    );
    // A JID on both lists is refused and changes nothing.
    let both = ArchivePrefs {
        default: ArchiveDefault::Always,
        always: vec!["a@b".into()],
        never: vec!["a@b".into()],
    };
    assert!(matches!(
        s.set_archive_prefs("alice", DOMAIN, &both).await,
        Err(StorageError::InvalidInput(_))
    ));
    assert_eq!(s.archive_prefs("alice", DOMAIN).await.unwrap(), Some(empty));
}

async fn concurrent_appends_get_distinct_places_in_commit_order(db: &Db) {
    account(db, "alice").await;
    let now = SystemTime::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = db.storage.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let m = ArchivedMessage {
                    timestamp: now,
                    ..msg(&format!("t{t}-{i}"), 0, "a@b", true)
                };
                s.archive_append("alice", DOMAIN, &m).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let page = db
        .storage
        .archive_query("alice", DOMAIN, &query())
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 80);
    let distinct: HashSet<SystemTime> = page.messages.iter().map(|m| m.timestamp).collect();
    assert_eq!(distinct.len(), 80);
    assert!(page
        .messages
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp));
    // Each task's own messages keep their order.
    for t in 0..8 {
        let own: Vec<&str> = page
            .messages
            .iter()
            .map(|m| m.stanza_id.as_str())
            .filter(|id| id.starts_with(&format!("t{t}-")))
            .collect();
        let expected: Vec<String> = (0..10).map(|i| format!("t{t}-{i}")).collect();
        assert_eq!(own, expected);
    }
}
