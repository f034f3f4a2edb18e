//! The schema migrations, compiled into the binary.
//!
//! Each backend has its own directory under `migrations/` because the DDL
//! differs (BLOB vs BYTEA, rowid vs identity column, collations); the two
//! directories hold the same versions with the same descriptions, and the
//! `migration_sets_match` test below keeps them in step. Queries, by
//! contrast, are shared.
//!
//! The files are embedded with `include_str!` and handed to sqlx through its
//! public [`MigrationSource`] trait rather than with `sqlx::migrate!()`:
//! that macro needs sqlx's `macros` feature, whose proc-macro build compiles
//! the whole driver stack a second time.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::Backend;

/// One embedded migration file.
struct Embedded {
    /// Applied in ascending order; recorded in `_sqlx_migrations`.
    version: i64,
    description: &'static str,
    sql: &'static str,
}

const SQLITE: &[Embedded] = &[
    Embedded {
        version: 1,
        description: "accounts",
        sql: include_str!("../migrations/sqlite/0001_accounts.sql"),
    },
    Embedded {
        version: 2,
        description: "im",
        sql: include_str!("../migrations/sqlite/0002_im.sql"),
    },
    Embedded {
        version: 3,
        description: "archive",
        sql: include_str!("../migrations/sqlite/0003_archive.sql"),
    },
    Embedded {
        version: 4,
        description: "last activity",
        sql: include_str!("../migrations/sqlite/0004_last_activity.sql"),
    },
    Embedded {
        version: 5,
        description: "pubsub",
        sql: include_str!("../migrations/sqlite/0005_pubsub.sql"),
    },
    Embedded {
        version: 6,
        description: "muc",
        sql: include_str!("../migrations/sqlite/0006_muc.sql"),
    },
    Embedded {
        version: 7,
        description: "clients",
        sql: include_str!("../migrations/sqlite/0007_clients.sql"),
    },
    Embedded {
        version: 8,
        description: "admin",
        sql: include_str!("../migrations/sqlite/0008_admin.sql"),
    },
    Embedded {
        version: 9,
        description: "push",
        sql: include_str!("../migrations/sqlite/0009_push.sql"),
    },
    Embedded {
        version: 10,
        description: "uploads",
        sql: include_str!("../migrations/sqlite/0010_uploads.sql"),
    },
];

const POSTGRES: &[Embedded] = &[
    Embedded {
        version: 1,
        description: "accounts",
        sql: include_str!("../migrations/postgres/0001_accounts.sql"),
    },
    Embedded {
        version: 2,
        description: "im",
        sql: include_str!("../migrations/postgres/0002_im.sql"),
    },
    Embedded {
        version: 3,
        description: "archive",
        sql: include_str!("../migrations/postgres/0003_archive.sql"),
    },
    Embedded {
        version: 4,
        description: "last activity",
        sql: include_str!("../migrations/postgres/0004_last_activity.sql"),
    },
    Embedded {
        version: 5,
        description: "pubsub",
        sql: include_str!("../migrations/postgres/0005_pubsub.sql"),
    },
    Embedded {
        version: 6,
        description: "muc",
        sql: include_str!("../migrations/postgres/0006_muc.sql"),
    },
    Embedded {
        version: 7,
        description: "clients",
        sql: include_str!("../migrations/postgres/0007_clients.sql"),
    },
    Embedded {
        version: 8,
        description: "admin",
        sql: include_str!("../migrations/postgres/0008_admin.sql"),
    },
    Embedded {
        version: 9,
        description: "push",
        sql: include_str!("../migrations/postgres/0009_push.sql"),
    },
    Embedded {
        version: 10,
        description: "uploads",
        sql: include_str!("../migrations/postgres/0010_uploads.sql"),
    },
];

/// Adapts an embedded set to sqlx's migration source.
#[derive(Debug)]
struct Source(Backend);

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.version, self.description)
    }
}

impl MigrationSource<'static> for Source {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let set = match self.0 {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        };
        let migrations = set
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    Cow::Borrowed(m.description),
                    MigrationType::Simple,
                    Cow::Borrowed(m.sql),
                    // Each file runs in a transaction, so a failed migration
                    // leaves no half-built schema behind (both backends have
                    // transactional DDL).
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// The migrator for `backend`, ready to `run` against a pool.
pub(crate) async fn migrator(backend: Backend) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Source(backend)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_sets_match() {
        let versions = |set: &[Embedded]| {
            set.iter()
                .map(|m| (m.version, m.description))
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(SQLITE), versions(POSTGRES));
    }

    #[test]
    fn versions_ascend() {
        for set in [SQLITE, POSTGRES] {
            assert!(set.windows(2).all(|w| w[0].version < w[1].version));
        }
    }
}
