//! [`Storage`]: the connection pool, how a URL becomes one, and the schema
//! migrations that run before the first query.
//!
//! This is where the backend behind the pool is chosen: the per-connection
//! SQLite pragmas and the choice of migration set are the dialect-specific
//! parts. Every query elsewhere is shared SQL; the one exception is the
//! archive writer's multi-row statements, whose parameter markers differ
//! (see `archive.rs`).

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, TransactionManager};

use crate::{migrations, StorageError};

/// How long a SQLite connection waits for another writer's lock before
/// failing with "database is locked". Writes are short (a few rows), so
/// waiting this long only happens under pathological contention, where an
/// error is the better answer.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// Which database server is behind a [`Storage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An embedded SQLite file (the default deployment).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a connection URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Backend, StorageError> {
        // Only the scheme goes into the message: the rest may hold a password.
        let Some((scheme, _)) = url.split_once(':') else {
            return Err(StorageError::InvalidUrl(
                "no scheme; expected sqlite://... or postgres://...".into(),
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StorageError::InvalidUrl(format!(
                "unsupported scheme `{scheme}:`; expected sqlite: or postgres:"
            ))),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A migrated database behind a connection pool. Implements the store
/// traits; cheap to clone (clones share the pool).
#[derive(Debug, Clone)]
pub struct Storage {
    /// sqlx's backend-erased pool: every query goes through it, whichever
    /// backend it connects to.
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// Block lists and archiving preferences, read on every message.
    pub(crate) cache: std::sync::Arc<crate::cache::AccountCache>,
}

impl Storage {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// - `sqlite://path/to/file.db` (relative) or `sqlite:///abs/file.db`:
    ///   the file is created if missing (its directory is not), switched to
    ///   WAL journal mode so readers never block the writer, and every pooled
    ///   connection gets foreign keys on (the cascades depend on it) and a
    ///   busy timeout. `sqlite::memory:` gives a private in-memory database
    ///   on a single connection, for tests.
    /// - `postgres://user@host:port/db` (or `postgresql://`), with any
    ///   parameters libpq-style URLs take (`options=-c search_path=...`).
    ///   No TLS support is compiled in: use loopback or a unix socket.
    ///
    /// Migrations are embedded and run on every connect; they are recorded
    /// in `_sqlx_migrations`, so a second connect applies nothing. Several
    /// processes may connect at once: PostgreSQL serializes the migration
    /// with an advisory lock, SQLite with its write lock.
    pub async fn connect(url: &str) -> Result<Storage, StorageError> {
        Self::connect_with(url, true).await
    }

    /// [`Storage::connect`], choosing SQLite's durability: with
    /// `sqlite_normal_sync`, `PRAGMA synchronous = NORMAL` (with the
    /// write-ahead log a commit survives a crash of the process, and a
    /// power loss may undo the last few); without, `FULL` (every commit
    /// flushed to disk). No effect on PostgreSQL.
    pub async fn connect_with(
        url: &str,
        sqlite_normal_sync: bool,
    ) -> Result<Storage, StorageError> {
        // Registers the drivers behind `Any` once per process; later calls
        // are no-ops.
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let (url, in_memory) = match backend {
            Backend::Sqlite => sqlite_url(url),
            Backend::Postgres => (url.to_owned(), false),
        };
        let options = AnyConnectOptions::from_str(&url)?;

        // A caller may be dropped at any await (an actor killed on purpose
        // drops its storage call where it stands). sqlx's SQLite driver can
        // then hand the connection back inside a transaction nobody owns:
        // dropped after its custom `BEGIN` was acknowledged but before the
        // `Transaction` existed. That connection would keep the write lock
        // and fail every later `BEGIN`, so it is rolled back on release.
        let mut pool_options = AnyPoolOptions::new().after_release(|conn, _meta| {
            Box::pin(async move {
                type Manager = <sqlx::Any as sqlx::Database>::TransactionManager;
                while Manager::get_transaction_depth(conn) > 0 {
                    tracing::debug!("rolling back a transaction left open by a dropped caller");
                    Manager::rollback(conn).await?;
                }
                Ok(true)
            })
        });
        if backend == Backend::Sqlite {
            // Per connection, because SQLite keeps these per connection. Set
            // here rather than trusting sqlx's defaults: deleting an account
            // must cascade, and that only happens with foreign keys on.
            let synchronous = if sqlite_normal_sync { "NORMAL" } else { "FULL" };
            pool_options = pool_options.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute(
                        format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str(),
                    )
                    .await?;
                    conn.execute(format!("PRAGMA synchronous = {synchronous}").as_str())
                        .await?;
                    Ok(())
                })
            });
            if in_memory {
                // Each new connection to `:memory:` would open a new, empty
                // database: keep exactly one, forever.
                pool_options = pool_options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
        }
        let pool = pool_options.connect_with(options).await?;

        if backend == Backend::Sqlite && !in_memory {
            // Once, not per connection: WAL is a property of the file that
            // persists, and switching to it needs an exclusive lock that the
            // busy timeout does not wait for, so it is done while this pool
            // holds the only connection we opened.
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                .fetch_one(&pool)
                .await?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StorageError::Database(format!(
                    "SQLite refused WAL journal mode (still `{mode}`)"
                )));
            }
        }

        let migrator = migrations::migrator(backend).await?;
        migrator.run(&pool).await?;
        let schema_version = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        tracing::info!(%backend, schema_version, "storage ready");
        Ok(Storage {
            pool,
            backend,
            cache: Default::default(),
        })
    }

    /// Which backend this storage talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers a trivial query, for readiness
    /// probes.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    /// Afterwards every operation fails. On SQLite this lets the last
    /// connection checkpoint the WAL into the main file.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Adds `mode=rwc` (create if missing) to a SQLite URL unless it chooses a
/// mode itself, and reports whether the URL is an in-memory database.
fn sqlite_url(url: &str) -> (String, bool) {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let params = || query.into_iter().flat_map(|q| q.split('&'));
    let path = base
        .split_once(':')
        .map_or("", |(_, rest)| rest.trim_start_matches("//"));
    let in_memory = path == ":memory:" || params().any(|p| p == "mode=memory");
    if in_memory || params().any(|p| p.starts_with("mode=")) {
        return (url.to_owned(), in_memory);
    }
    let url = match query {
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    };
    (url, false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_durability_is_what_was_asked_for() {
        let dir = std::env::temp_dir().join(format!("chorus-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (normal, expected) in [(true, 1_i64), (false, 2)] {
            let url = format!("sqlite://{}/{normal}.db", dir.display());
            let s = Storage::connect_with(&url, normal).await.unwrap();
            let got: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&s.pool)
                .await
                .unwrap();
            assert_eq!(got, expected, "NORMAL is 1, FULL is 2");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sqlite_url_gets_create_mode() {
        assert_eq!(
            sqlite_url("sqlite://a/b.db"),
            ("sqlite://a/b.db?mode=rwc".into(), false)
        );
        assert_eq!(
            sqlite_url("sqlite:///a/b.db?cache=private"),
            ("sqlite:///a/b.db?cache=private&mode=rwc".into(), false)
        );
    }

    #[test]
    fn sqlite_url_keeps_explicit_mode() {
        assert_eq!(
            sqlite_url("sqlite://a.db?mode=ro"),
            ("sqlite://a.db?mode=ro".into(), false)
        );
    }

    #[test]
    fn sqlite_url_detects_memory() {
        assert!(sqlite_url("sqlite::memory:").1);
        assert!(sqlite_url("sqlite://:memory:").1);
        assert!(sqlite_url("sqlite://?mode=memory").1);
    }

    #[test]
    fn unknown_scheme_is_invalid_url_without_echoing_credentials() {
        let err = Backend::from_url("mysql://root:hunter2@localhost/db").unwrap_err();
        assert!(matches!(&err, StorageError::InvalidUrl(m) if !m.contains("hunter2")));
        assert!(matches!(
            Backend::from_url("no-scheme"),
            Err(StorageError::InvalidUrl(_))
        ));
    }

    #[test]
    fn known_schemes() {
        assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::from_url("PostgreSQL://h/db").unwrap(),
            Backend::Postgres
        );
    }
}
