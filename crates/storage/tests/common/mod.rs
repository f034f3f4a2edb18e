//! The harness every storage test file shares: one private database per
//! test on each backend, and `on_both_backends!`, which turns each scenario
//! (a plain `async fn(&Db)`) into `sqlite::<name>` (a fresh file in a temp
//! dir, always run) and `postgres::<name>` (a fresh schema in the database
//! at `CHORUS_TEST_POSTGRES_URL`). Without that variable the PostgreSQL half
//! is skipped loudly, or fails if `CHORUS_REQUIRE_POSTGRES=1`, so CI cannot
//! pass by silently testing one backend. A database or schema per test keeps
//! the tests independent when they run in parallel.
// Each test file compiles this module on its own and uses a different part
// of it.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chorus_storage::{Backend, Storage};
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor as _};
use tempfile::TempDir;

/// One test's private database.
pub struct Db {
    pub storage: Storage,
    /// The URL `storage` was opened with, for second connections.
    pub url: String,
    /// Keeps the SQLite file's directory alive for the test's duration.
    pub dir: Option<TempDir>,
    /// PostgreSQL only: the server URL and the schema to drop afterwards.
    pub pg_schema: Option<(String, String)>,
}

impl Db {
    /// A second, raw pool on the same database, to look underneath the API.
    pub async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url).await.unwrap()
    }

    /// Drops the PostgreSQL schema. Not reached when the test panics, which
    /// leaves the schema for inspection; the CI cluster is thrown away anyway.
    pub async fn finish(self) {
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
pub fn unique_name(prefix: &str) -> String {
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

pub async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chorus.db").display());
    let storage = Storage::connect(&url).await.unwrap();
    assert_eq!(storage.backend(), Backend::Sqlite);
    Db {
        storage,
        url,
        dir: Some(dir),
        pg_schema: None,
    }
}

/// A fresh schema on the test server, or `None` after announcing the skip.
pub async fn postgres_db(test: &str) -> Option<Db> {
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
        dir: None,
        pg_schema: Some((server, schema)),
    })
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::sqlite_db().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::postgres_db(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}
