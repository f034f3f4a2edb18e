//! Account storage, specified once and run against both backends.
//!
//! Every scenario is a plain `async fn(&Db)`; `on_both_backends!` turns each
//! into `sqlite::<name>` (a fresh file in a temp dir, always run) and
//! `postgres::<name>` (a fresh schema in the database at
//! `CHORUS_TEST_POSTGRES_URL`). Without that variable the PostgreSQL half
//! is skipped loudly, or fails if `CHORUS_REQUIRE_POSTGRES=1`, so CI cannot
//! pass by silently testing one backend. A database or schema per test keeps
//! the tests independent when they run in parallel.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chorus_storage::{AccountStore, Backend, Storage, StorageError, StoredCredentials};
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor as _};
use tempfile::TempDir;

/// One test's private database.
struct Db {
    storage: Storage,
    /// The URL `storage` was opened with, for second connections.
    url: String,
    /// Keeps the SQLite file's directory alive for the test's duration.
    _dir: Option<TempDir>,
    /// PostgreSQL only: the server URL and the schema to drop afterwards.
    pg_schema: Option<(String, String)>,
}

impl Db {
    /// A second, raw pool on the same database, to look underneath the API.
    async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url).await.unwrap()
    }

    /// Drops the PostgreSQL schema. Not reached when the test panics, which
    /// leaves the schema for inspection; the CI cluster is thrown away anyway.
    async fn finish(self) {
        self.storage.close().await;
        if let Some((server, schema)) = self.pg_schema {
            let mut conn = AnyConnection::connect(&server).await.unwrap();
            conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await
                .unwrap();
        }
    }
}

/// A name no other test in any concurrent run of this suite uses.
fn unique_name(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chorus.db").display());
    let storage = Storage::connect(&url).await.unwrap();
    assert_eq!(storage.backend(), Backend::Sqlite);
    Db {
        storage,
        url,
        _dir: Some(dir),
        pg_schema: None,
    }
}

/// A fresh schema on the test server, or `None` after announcing the skip.
async fn postgres_db(test: &str) -> Option<Db> {
    let server = match std::env::var("CHORUS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("CHORUS_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CHORUS_REQUIRE_POSTGRES=1 but CHORUS_TEST_POSTGRES_URL is unset: \
                 run `source .ci/postgres.sh` first"
            );
            // Straight to the stderr handle: libtest captures `eprintln!` of
            // passing tests, and a skip must never be silent. One write, so
            // the line is not split by other tests' output, starting on a
            // fresh line in case libtest is mid-line on stdout.
            let line = format!(
                "\nSKIPPED: PostgreSQL tests need CHORUS_TEST_POSTGRES_URL (postgres::{test})\n"
            );
            std::io::stderr().write_all(line.as_bytes()).unwrap();
            return None;
        }
    };
    sqlx::any::install_default_drivers();
    let schema = unique_name("chorus_test");
    let mut conn = AnyConnection::connect(&server).await.unwrap();
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    conn.close().await.unwrap();
    let separator = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
    let storage = Storage::connect(&url).await.unwrap();
    assert_eq!(storage.backend(), Backend::Postgres);
    Some(Db {
        storage,
        url,
        _dir: None,
        pg_schema: Some((server, schema)),
    })
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::sqlite_db().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::postgres_db(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

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
    let path = db._dir.as_ref().unwrap().path().join("chorus.db");
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
