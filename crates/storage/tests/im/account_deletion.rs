//! Deleting an account removes its rows from every per-account table and
//! nothing else: the list of tables is checked against the schema.

use super::*;

on_both_backends!(deleting_account_cascades_to_every_table,);

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
    "last_activity",
    "pubsub_nodes",
    "pubsub_items",
    "pubsub_affiliations",
    "pubsub_subscriptions",
    "account_disabled",
    "push_registrations",
    "clients",
    "fast_tokens",
];
/// Tables that hold no account's data: the migrations, the accounts
/// themselves, and group chat rooms (XEP-0045), which belong to their
/// service and outlive any one occupant or owner (an owner's account going
/// leaves the room to its other owners and admins, as ejabberd and Prosody
/// do).
/// The message of the day (XEP-0133) belongs to a domain, not to an
/// account. Uploads (XEP-0363) name their owner by JID: the upload module
/// deletes the rows with the files on disk when the account goes.
const OTHER_TABLES: &[&str] = &[
    "_sqlx_migrations",
    "accounts",
    "muc_messages",
    "muc_rooms",
    "motd",
    "uploads",
];

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
    s.set_last_activity(localpart, DOMAIN, SystemTime::now(), "away")
        .await
        .unwrap();
    // Disabled by an operator (XEP-0133): the flag goes with the account.
    assert!(s
        .disable_account(localpart, DOMAIN, "spam", SystemTime::now())
        .await
        .unwrap());
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
    // A PEP node with an item, its owner affiliation and a subscriber.
    let service = format!("{localpart}@{DOMAIN}");
    s.pubsub_create_node(
        &service,
        "urn:xmpp:avatar:metadata",
        Some((localpart, DOMAIN)),
        "c",
        &service,
    )
    .await
    .unwrap();
    s.pubsub_publish(
        &service,
        "urn:xmpp:avatar:metadata",
        &chorus_storage::PubsubItem {
            id: "h".into(),
            publisher: service.clone(),
            payload: "<metadata/>".into(),
        },
        None,
    )
    .await
    .unwrap();
    s.pubsub_set_subscription(
        &service,
        &chorus_storage::PubsubSubscription {
            node: "urn:xmpp:avatar:metadata".into(),
            jid: "romeo@example.net".into(),
            subid: String::new(),
            state: "subscribed".into(),
            options: String::new(),
        },
    )
    .await
    .unwrap();
    // A client (XEP-0388) with a FAST token (XEP-0484).
    s.client_seen(localpart, DOMAIN, "ua-1", "Gajim", "laptop", 10)
        .await
        .unwrap();
    assert!(s
        .fast_issue(
            localpart,
            DOMAIN,
            "ua-1",
            "HT-SHA-256-NONE",
            &[7; 32],
            SystemTime::now()
        )
        .await
        .unwrap());
    // A push registration (XEP-0357).
    s.push_enable(
        localpart,
        DOMAIN,
        &chorus_storage::PushRegistration {
            service: "push.example.net".into(),
            node: "n".into(),
            options: String::new(),
        },
        5,
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
    assert_eq!(s.account_disabled("alice", DOMAIN).await.unwrap(), None);
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
