//! Account storage, specified once and run against both backends (see
//! `common` for how).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chorus_storage::{AccountStore, Storage, StorageError, StoredCredentials};

use common::{sqlite_db, Db};

on_both_backends!(
    created_account_has_its_credentials,
    set_credentials_replaces_all_of_them,
    set_credentials_on_missing_account_creates_nothing,
    delete_account_reports_whether_it_existed,
    duplicate_account_is_already_exists,
    concurrent_creates_of_one_name_have_exactly_one_winner,
    two_credentials_for_one_hash_are_invalid_input,
    list_accounts_is_byte_wise_sorted_and_filters_by_domain,
    credential_bytes_round_trip_exactly,
    migrations_are_idempotent_across_connects,
    deleting_account_cascades_to_credentials,
);

fn creds(hash: &str, seed: u8) -> StoredCredentials {
    StoredCredentials {
        hash: hash.to_owned(),
        salt: vec![seed; 16],
        iterations: 4096,
        stored_key: vec![seed.wrapping_add(1); 20],
        server_key: vec![seed.wrapping_add(2); 20],
    }
}

async fn created_account_has_its_credentials(db: &Db) {
    let s = &db.storage;
    s.ping().await.unwrap();
    let (sha1, sha256) = (creds("SHA-1", 1), creds("SHA-256", 2));
    s.create_account("alice", "example.org", &[sha1.clone(), sha256.clone()])
        .await
        .unwrap();

    assert!(s.account_exists("alice", "example.org").await.unwrap());
    assert!(!s.account_exists("alice", "example.net").await.unwrap());
    assert!(!s.account_exists("bob", "example.org").await.unwrap());
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-1")
            .await
            .unwrap(),
        Some(sha1)
    );
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-256")
            .await
            .unwrap(),
        Some(sha256)
    );
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-512")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.credentials("bob", "example.org", "SHA-1").await.unwrap(),
        None
    );
}

async fn set_credentials_replaces_all_of_them(db: &Db) {
    let s = &db.storage;
    s.create_account(
        "alice",
        "example.org",
        &[creds("SHA-1", 1), creds("SHA-256", 2)],
    )
    .await
    .unwrap();

    let new = creds("SHA-256", 9);
    assert!(s
        .set_credentials("alice", "example.org", std::slice::from_ref(&new))
        .await
        .unwrap());
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-256")
            .await
            .unwrap(),
        Some(new)
    );

    // Replacing with nothing leaves an account that cannot log in.
    assert!(s
        .set_credentials("alice", "example.org", &[])
        .await
        .unwrap());
    assert!(s.account_exists("alice", "example.org").await.unwrap());
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-256")
            .await
            .unwrap(),
        None
    );
}

async fn set_credentials_on_missing_account_creates_nothing(db: &Db) {
    let s = &db.storage;
    assert!(!s
        .set_credentials("ghost", "example.org", &[creds("SHA-1", 1)])
        .await
        .unwrap());
    assert!(!s.account_exists("ghost", "example.org").await.unwrap());
    assert_eq!(
        s.credentials("ghost", "example.org", "SHA-1")
            .await
            .unwrap(),
        None
    );
}

async fn delete_account_reports_whether_it_existed(db: &Db) {
    let s = &db.storage;
    s.create_account("alice", "example.org", &[creds("SHA-1", 1)])
        .await
        .unwrap();
    s.create_account("alice", "example.net", &[creds("SHA-1", 1)])
        .await
        .unwrap();

    assert!(s.delete_account("alice", "example.org").await.unwrap());
    assert!(!s.account_exists("alice", "example.org").await.unwrap());
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-1")
            .await
            .unwrap(),
        None
    );
    assert!(!s.delete_account("alice", "example.org").await.unwrap());
    // Same localpart, other domain: untouched.
    assert!(s.account_exists("alice", "example.net").await.unwrap());

    // The name is free again.
    s.create_account("alice", "example.org", &[]).await.unwrap();
}

async fn duplicate_account_is_already_exists(db: &Db) {
    let s = &db.storage;
    let original = creds("SHA-256", 1);
    s.create_account("alice", "example.org", std::slice::from_ref(&original))
        .await
        .unwrap();
    assert_eq!(
        s.create_account("alice", "example.org", &[creds("SHA-256", 7)])
            .await,
        Err(StorageError::AlreadyExists)
    );
    // The failed attempt rolled back entirely.
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-256")
            .await
            .unwrap(),
        Some(original)
    );
    assert_eq!(s.count_accounts(None).await.unwrap(), 1);
}

async fn concurrent_creates_of_one_name_have_exactly_one_winner(db: &Db) {
    let racers: Vec<_> = (0..8u8)
        .map(|i| {
            let s = db.storage.clone();
            tokio::spawn(async move {
                s.create_account("popular", "example.org", &[creds("SHA-256", i)])
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(()) => won += 1,
            Err(StorageError::AlreadyExists) => {}
            Err(other) => panic!("a losing racer must see AlreadyExists, got {other:?}"),
        }
    }
    assert_eq!(won, 1);

    // Distinct names in parallel all succeed: writers wait, they do not fail.
    let writers: Vec<_> = (0..8u8)
        .map(|i| {
            let s = db.storage.clone();
            tokio::spawn(async move {
                s.create_account(&format!("user{i}"), "example.org", &[creds("SHA-256", i)])
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(db.storage.count_accounts(None).await.unwrap(), 9);
}

async fn two_credentials_for_one_hash_are_invalid_input(db: &Db) {
    let s = &db.storage;
    let twice = [creds("SHA-1", 1), creds("SHA-1", 2)];
    assert!(matches!(
        s.create_account("alice", "example.org", &twice).await,
        Err(StorageError::InvalidInput(_))
    ));
    assert!(!s.account_exists("alice", "example.org").await.unwrap());

    s.create_account("alice", "example.org", &[creds("SHA-1", 3)])
        .await
        .unwrap();
    assert!(matches!(
        s.set_credentials("alice", "example.org", &twice).await,
        Err(StorageError::InvalidInput(_))
    ));
    assert_eq!(
        s.credentials("alice", "example.org", "SHA-1")
            .await
            .unwrap(),
        Some(creds("SHA-1", 3))
    );
}

async fn list_accounts_is_byte_wise_sorted_and_filters_by_domain(db: &Db) {
    let s = &db.storage;
    // Under a locale collation (en_US) "a_b" sorts with "ab" and "Zed"
    // after "alice"; byte-wise, '_' < 'a' and 'Z' < 'a', and the non-ASCII
    // "émile" (0xC3...) comes last.
    let localparts = ["zed", "émile", "ab", "a_b", "aa", "Zed", "alice"];
    let domains = ["b.example", "a.example", "xn--bcher-kva.example"];
    for domain in domains {
        for local in localparts {
            s.create_account(local, domain, &[]).await.unwrap();
        }
    }

    let mut expected: Vec<(String, String)> = domains
        .iter()
        .flat_map(|d| localparts.iter().map(|l| (l.to_string(), d.to_string())))
        .collect();
    // String's Ord compares UTF-8 bytes: domain first, then localpart.
    expected.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    assert_eq!(s.list_accounts(None).await.unwrap(), expected);
    assert_eq!(
        s.count_accounts(None).await.unwrap(),
        (domains.len() * localparts.len()) as u64
    );

    let in_b: Vec<_> = expected
        .iter()
        .filter(|(_, d)| d == "b.example")
        .cloned()
        .collect();
    assert_eq!(s.list_accounts(Some("b.example")).await.unwrap(), in_b);
    assert_eq!(
        in_b.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        ["Zed", "a_b", "aa", "ab", "alice", "zed", "émile"]
    );
    assert_eq!(
        s.count_accounts(Some("b.example")).await.unwrap(),
        localparts.len() as u64
    );

    assert_eq!(s.list_accounts(Some("c.example")).await.unwrap(), vec![]);
    assert_eq!(s.count_accounts(Some("c.example")).await.unwrap(), 0);
}

async fn credential_bytes_round_trip_exactly(db: &Db) {
    let s = &db.storage;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let awkward = StoredCredentials {
        hash: "SHA-256".into(),
        // Zero bytes first, in the middle and last: a C-string or text path
        // anywhere would truncate or mangle them.
        salt: [&[0u8, 0, 1][..], &every_byte, &[0]].concat(),
        iterations: u32::MAX,
        stored_key: vec![0; 32],
        server_key: every_byte.iter().rev().copied().collect(),
    };
    let empty = StoredCredentials {
        hash: "SHA-1".into(),
        salt: vec![],
        iterations: 1,
        stored_key: vec![],
        server_key: vec![0xFF],
    };
    s.create_account("bytes", "example.org", &[awkward.clone(), empty.clone()])
        .await
        .unwrap();
    assert_eq!(
        s.credentials("bytes", "example.org", "SHA-256")
            .await
            .unwrap(),
        Some(awkward)
    );
    assert_eq!(
        s.credentials("bytes", "example.org", "SHA-1")
            .await
            .unwrap(),
        Some(empty)
    );
}

async fn migrations_are_idempotent_across_connects(db: &Db) {
    db.storage
        .create_account("alice", "example.org", &[creds("SHA-1", 1)])
        .await
        .unwrap();
    let raw = &db.raw().await;
    let applied = || async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(raw)
            .await
            .unwrap()
    };
    let before = applied().await;
    assert!(before >= 1);

    for _ in 0..2 {
        let again = Storage::connect(&db.url).await.unwrap();
        assert_eq!(
            again
                .credentials("alice", "example.org", "SHA-1")
                .await
                .unwrap(),
            Some(creds("SHA-1", 1))
        );
        again.close().await;
    }
    assert_eq!(applied().await, before);
}

async fn deleting_account_cascades_to_credentials(db: &Db) {
    let s = &db.storage;
    s.create_account(
        "alice",
        "example.org",
        &[creds("SHA-1", 1), creds("SHA-256", 2)],
    )
    .await
    .unwrap();
    s.create_account(
        "bob",
        "example.org",
        &[creds("SHA-1", 3), creds("SHA-256", 4)],
    )
    .await
    .unwrap();
    let raw = &db.raw().await;
    let rows = || async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM scram_credentials")
            .fetch_one(raw)
            .await
            .unwrap()
    };
    assert_eq!(rows().await, 4);

    assert!(s.delete_account("alice", "example.org").await.unwrap());
    // Only bob's rows are left: the database removed alice's, not the API
    // hiding them.
    assert_eq!(rows().await, 2);
    assert_eq!(
        s.credentials("bob", "example.org", "SHA-256")
            .await
            .unwrap(),
        Some(creds("SHA-256", 4))
    );
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    let db = sqlite_db().await;
    let path = db.dir.as_ref().unwrap().path().join("chorus.db");
    assert!(path.exists());
    // journal_mode is stored in the file, so a fresh connection that does
    // not ask for WAL reports what Storage set.
    let raw = db.raw().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    raw.close().await;
    db.finish().await;
}

#[tokio::test]
async fn sqlite_in_memory_database_keeps_its_data() {
    let s = Storage::connect("sqlite::memory:").await.unwrap();
    s.create_account("alice", "example.org", &[creds("SHA-1", 1)])
        .await
        .unwrap();
    // Several sequential operations may use different pool checkouts; they
    // must all see the same database.
    for _ in 0..3 {
        assert!(s.account_exists("alice", "example.org").await.unwrap());
    }
    assert!(s.delete_account("alice", "example.org").await.unwrap());
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("no/such/dir/chorus.db").display()
    );
    assert!(matches!(
        Storage::connect(&url).await,
        Err(StorageError::Database(_))
    ));
}

#[tokio::test]
async fn unsupported_url_is_invalid_url() {
    for url in ["mysql://root@localhost/chorus", "chorus.db", ""] {
        assert!(
            matches!(
                Storage::connect(url).await,
                Err(StorageError::InvalidUrl(_))
            ),
            "{url}"
        );
    }
}
